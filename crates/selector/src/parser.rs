//! Parser for JMS 2.0 §3.8.1 selectors.
//!
//! Precedence, loosest first:
//!
//! ```text
//! or       := and (OR and)*
//! and      := not (AND not)*
//! not      := NOT not | compare
//! compare  := sum [ (= | <> | < | <= | > | >=) sum
//!                 | [NOT] BETWEEN sum AND sum
//!                 | [NOT] LIKE 'pattern' [ESCAPE 'c']
//!                 | [NOT] IN ('s', ...)
//!                 | IS [NOT] NULL ]
//! sum      := product ((+ | -) product)*
//! product  := unary ((* | /) unary)*
//! unary    := (+ | -) unary | primary
//! primary  := literal | identifier | ( or )
//! ```
//!
//! The grammar is parsed without recursion, by operator precedence with explicit
//! operand and operator stacks (a shunting-yard parser), so a hostile selector
//! cannot exhaust the stack however it nests; the nesting limit bounds the
//! expression tree, which evaluation walks recursively.
//!
//! Comparisons do not chain (`a = b = c` is an error, as in SQL). Besides the
//! grammar, the parser rejects expressions whose types are wrong whatever the
//! message holds: a non-boolean selector (`a + 1`), a literal of the wrong kind
//! where a boolean, a number or a string is required (`x AND 5`, `'a' + 1`,
//! `'a' < 'b'`, `5 LIKE 'x'`), comparisons of operands whose types are known
//! to differ (`1 = 'a'`, `TRUE = 1`; with an identifier on either side the
//! comparison is left to run time, where unlike types compare FALSE), and
//! comparisons with the `NULL` literal (`x = NULL` is always UNKNOWN; `x IS NULL`
//! is what is meant).
//!
//! Input length and nesting depth are bounded ([`MAX_SELECTOR_LEN`],
//! [`MAX_DEPTH`]).

use crate::ast::{ArithOp, CmpOp, Expr, Literal, StaticType};
use crate::error::SelectorError;
use crate::lexer::{tokenize, Keyword, Tok, Token};
use crate::like::LikePattern;
use crate::{MAX_DEPTH, MAX_SELECTOR_LEN};

/// Parses selector text. `Ok(None)` is an empty (or all-whitespace) selector,
/// which JMS treats as no selector at all.
pub(crate) fn parse(text: &str) -> Result<Option<Expr>, SelectorError> {
    if text.len() > MAX_SELECTOR_LEN {
        return Err(SelectorError::new(
            0,
            format!("selector is longer than {MAX_SELECTOR_LEN} bytes"),
        ));
    }
    let tokens = tokenize(text)?;
    if tokens.len() == 1 {
        return Ok(None);
    }
    let mut parser = Parser {
        tokens,
        at: 0,
        operands: Vec::new(),
        ops: Vec::new(),
        nesting: 0,
    };
    let selector = parser.run()?;
    check_boolean(&selector.node.expr, selector.pos, "the selector")?;
    Ok(Some(selector.node.expr))
}

/// An expression and the depth of its tree.
struct Node {
    expr: Expr,
    depth: usize,
}

type Parsed = Result<Node, SelectorError>;

/// An entry of the operand stack.
struct Operand {
    node: Node,
    /// Where the operand starts, for error messages.
    pos: usize,
    /// Whether the operand is a comparison not in parentheses, which another
    /// comparison cannot take as its operand (`a = b = c`).
    bare_comparison: bool,
}

/// An entry of the operator stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// An open parenthesis at `pos`.
    Paren {
        pos: usize,
    },
    Or,
    And,
    Not {
        pos: usize,
    },
    Cmp {
        op: CmpOp,
        pos: usize,
    },
    /// `BETWEEN` waiting for its `AND`.
    BetweenLow {
        negated: bool,
    },
    /// `BETWEEN ... AND` waiting for its upper bound.
    BetweenHigh {
        negated: bool,
    },
    Arith(ArithOp),
    /// Unary `-` (`negate`) or `+` at `pos`.
    Sign {
        negate: bool,
        pos: usize,
    },
}

/// Binding strength of the comparison level (comparisons, BETWEEN, LIKE, IN, IS).
const COMPARISON: u8 = 4;

impl Op {
    /// How tightly the operator binds; higher binds tighter.
    fn precedence(self) -> u8 {
        match self {
            Op::Paren { .. } => 0,
            Op::Or => 1,
            Op::And => 2,
            Op::Not { .. } => 3,
            Op::Cmp { .. } | Op::BetweenLow { .. } | Op::BetweenHigh { .. } => COMPARISON,
            Op::Arith(ArithOp::Add | ArithOp::Sub) => 5,
            Op::Arith(ArithOp::Mul | ArithOp::Div) => 6,
            Op::Sign { .. } => 7,
        }
    }

    /// Whether an operand may start with NOT after this operator: only where the
    /// grammar has a condition (after AND, OR, NOT or an open parenthesis).
    fn allows_not(self) -> bool {
        matches!(self, Op::Paren { .. } | Op::Or | Op::And | Op::Not { .. })
    }
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    operands: Vec<Operand>,
    ops: Vec<Op>,
    /// Open parentheses, NOTs and signs on the operator stack.
    nesting: usize,
}

fn too_deep(pos: usize) -> SelectorError {
    SelectorError::new(
        pos,
        format!("selector is nested more than {MAX_DEPTH} levels deep"),
    )
}

/// Builds a node over children of the given depths, enforcing the depth limit on
/// the tree.
fn node(expr: Expr, children: &[usize], pos: usize) -> Parsed {
    let depth = 1 + children.iter().copied().max().unwrap_or(0);
    if depth > MAX_DEPTH {
        return Err(too_deep(pos));
    }
    Ok(Node { expr, depth })
}

fn leaf(expr: Expr) -> Node {
    Node { expr, depth: 1 }
}

/// Checks that `expr` can be used where a boolean is required.
fn check_boolean(expr: &Expr, pos: usize, what: &str) -> Result<(), SelectorError> {
    match expr.static_type() {
        StaticType::Bool | StaticType::Unknown | StaticType::Null => Ok(()),
        t => Err(SelectorError::new(
            pos,
            format!("{what} must be a boolean expression, not {}", t.describe()),
        )),
    }
}

/// Checks that `expr` can be used where a number is required.
fn check_number(expr: &Expr, pos: usize, what: &str) -> Result<(), SelectorError> {
    match expr.static_type() {
        StaticType::Number | StaticType::Unknown | StaticType::Null => Ok(()),
        t => Err(SelectorError::new(
            pos,
            format!("{what} must be a number, not {}", t.describe()),
        )),
    }
}

/// Checks that `expr` can be used where a string is required (LIKE, IN).
fn check_string(expr: &Expr, pos: usize, what: &str) -> Result<(), SelectorError> {
    match expr.static_type() {
        StaticType::String | StaticType::Unknown | StaticType::Null => Ok(()),
        t => Err(SelectorError::new(
            pos,
            format!("{what} must be a string, not {}", t.describe()),
        )),
    }
}

/// `left AND right` or `left OR right`; a junction of the same kind on either
/// side (`a OR b OR c`, `(a OR b) OR c`) is flattened into one n-ary node.
fn junction(is_or: bool, left: Operand, right: Operand) -> Parsed {
    let what = if is_or {
        "an operand of OR"
    } else {
        "an operand of AND"
    };
    check_boolean(&left.node.expr, left.pos, what)?;
    check_boolean(&right.node.expr, right.pos, what)?;
    let mut items = Vec::new();
    let mut depth = 0;
    for child in [left.node, right.node] {
        match child.expr {
            Expr::Or(inner) if is_or => {
                depth = depth.max(child.depth - 1);
                if items.is_empty() {
                    items = inner;
                } else {
                    items.extend(inner);
                }
            }
            Expr::And(inner) if !is_or => {
                depth = depth.max(child.depth - 1);
                if items.is_empty() {
                    items = inner;
                } else {
                    items.extend(inner);
                }
            }
            expr => {
                depth = depth.max(child.depth);
                items.push(expr);
            }
        }
    }
    let expr = if is_or {
        Expr::Or(items)
    } else {
        Expr::And(items)
    };
    node(expr, &[depth], left.pos)
}

fn comparison(op: CmpOp, op_pos: usize, left: Operand, right: Operand) -> Parsed {
    for operand in [&left, &right] {
        let (expr, pos) = (&operand.node.expr, operand.pos);
        if expr.static_type() == StaticType::Null {
            return Err(SelectorError::new(
                pos,
                "comparison with NULL is always unknown; use IS NULL or IS NOT NULL",
            ));
        }
        if op.is_ordering() {
            check_number(expr, pos, "an operand of <, <=, > or >=")?;
        }
    }
    let (l, r) = (left.node.expr.static_type(), right.node.expr.static_type());
    if l != StaticType::Unknown && r != StaticType::Unknown && l != r {
        return Err(SelectorError::new(
            op_pos,
            format!("cannot compare {} with {}", l.describe(), r.describe()),
        ));
    }
    let depth = [left.node.depth, right.node.depth];
    let expr = Expr::Cmp(op, Box::new(left.node.expr), Box::new(right.node.expr));
    node(expr, &depth, left.pos)
}

fn between(value: Operand, low: Operand, high: Operand, negated: bool) -> Parsed {
    check_number(&low.node.expr, low.pos, "the lower bound of BETWEEN")?;
    check_number(&high.node.expr, high.pos, "the upper bound of BETWEEN")?;
    let depth = [value.node.depth, low.node.depth, high.node.depth];
    let expr = Expr::Between {
        value: Box::new(value.node.expr),
        low: Box::new(low.node.expr),
        high: Box::new(high.node.expr),
        negated,
    };
    node(expr, &depth, value.pos)
}

fn arith(op: ArithOp, left: Operand, right: Operand) -> Parsed {
    check_number(&left.node.expr, left.pos, "an arithmetic operand")?;
    check_number(&right.node.expr, right.pos, "an arithmetic operand")?;
    let depth = [left.node.depth, right.node.depth];
    let expr = Expr::Arith(op, Box::new(left.node.expr), Box::new(right.node.expr));
    node(expr, &depth, left.pos)
}

fn sign(negate: bool, pos: usize, operand: Operand) -> Parsed {
    check_number(&operand.node.expr, operand.pos, "the operand of a sign")?;
    let boxed = Box::new(operand.node.expr);
    let expr = if negate {
        Expr::Neg(boxed)
    } else {
        Expr::Pos(boxed)
    };
    node(expr, &[operand.node.depth], pos)
}

fn not(pos: usize, operand: Operand) -> Parsed {
    check_boolean(&operand.node.expr, operand.pos, "the operand of NOT")?;
    node(
        Expr::Not(Box::new(operand.node.expr)),
        &[operand.node.depth],
        pos,
    )
}

fn cmp_op(tok: &Tok) -> Option<CmpOp> {
    Some(match tok {
        Tok::Eq => CmpOp::Eq,
        Tok::Ne => CmpOp::Ne,
        Tok::Lt => CmpOp::Lt,
        Tok::Le => CmpOp::Le,
        Tok::Gt => CmpOp::Gt,
        Tok::Ge => CmpOp::Ge,
        _ => return None,
    })
}

fn arith_op(tok: &Tok) -> Option<ArithOp> {
    Some(match tok {
        Tok::Plus => ArithOp::Add,
        Tok::Minus => ArithOp::Sub,
        Tok::Star => ArithOp::Mul,
        Tok::Slash => ArithOp::Div,
        _ => return None,
    })
}

/// What follows an operand at the comparison level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Postfix {
    Cmp(CmpOp),
    Between { negated: bool },
    Like { negated: bool },
    In { negated: bool },
    IsNull,
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.tokens[self.at].tok
    }

    fn peek_second(&self) -> &Tok {
        let i = (self.at + 1).min(self.tokens.len() - 1);
        &self.tokens[i].tok
    }

    fn pos(&self) -> usize {
        self.tokens[self.at].pos
    }

    fn bump(&mut self) -> Tok {
        let tok = self.tokens[self.at].tok.clone();
        if self.at + 1 < self.tokens.len() {
            self.at += 1;
        }
        tok
    }

    fn eat_kw(&mut self, kw: Keyword) -> bool {
        if self.peek() == &Tok::Kw(kw) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn unexpected(&self, expected: &str) -> SelectorError {
        SelectorError::new(
            self.pos(),
            format!("expected {expected}, found {}", self.peek().describe()),
        )
    }

    /// Pushes a parenthesis, NOT or sign, enforcing the nesting limit.
    fn push_nested(&mut self, op: Op) -> Result<(), SelectorError> {
        self.nesting += 1;
        if self.nesting > MAX_DEPTH {
            return Err(too_deep(self.pos()));
        }
        self.ops.push(op);
        Ok(())
    }

    fn push_operand(&mut self, node: Node, pos: usize, bare_comparison: bool) {
        self.operands.push(Operand {
            node,
            pos,
            bare_comparison,
        });
    }

    fn pop_operand(&mut self) -> Operand {
        self.operands
            .pop()
            .expect("the parser keeps an operand for every operator")
    }

    /// The whole selector.
    fn run(&mut self) -> Result<Operand, SelectorError> {
        loop {
            self.operand()?;
            if self.operator()? {
                return Ok(self.pop_operand());
            }
        }
    }

    /// Operand position: prefix operators and open parentheses, then a literal or
    /// an identifier.
    fn operand(&mut self) -> Result<(), SelectorError> {
        loop {
            let pos = self.pos();
            match self.peek() {
                Tok::LParen => {
                    self.push_nested(Op::Paren { pos })?;
                    self.bump();
                }
                Tok::Kw(Keyword::Not) if self.ops.last().is_none_or(|op| op.allows_not()) => {
                    self.push_nested(Op::Not { pos })?;
                    self.bump();
                }
                Tok::Plus | Tok::Minus => {
                    let negate = self.bump() == Tok::Minus;
                    if matches!(self.peek(), Tok::Int(_) | Tok::Float(_)) {
                        let node = self.signed_number(negate)?;
                        self.push_operand(node, pos, false);
                        return Ok(());
                    }
                    self.push_nested(Op::Sign { negate, pos })?;
                }
                _ => {
                    let node = self.atom()?;
                    self.push_operand(node, pos, false);
                    return Ok(());
                }
            }
        }
    }

    /// Operator position: operators that follow an operand, up to one that needs
    /// another operand (returns `false`) or the end of the selector (`true`).
    fn operator(&mut self) -> Result<bool, SelectorError> {
        loop {
            if let Some(op) = arith_op(self.peek()) {
                let op = Op::Arith(op);
                self.reduce_while(op.precedence())?;
                self.ops.push(op);
                self.bump();
                return Ok(false);
            }
            if let Some(postfix) = self.postfix() {
                if self.comparison(postfix)? {
                    return Ok(false);
                }
                continue;
            }
            match self.peek() {
                Tok::Kw(Keyword::And) => {
                    self.reduce_while(COMPARISON + 1)?;
                    if let Some(&Op::BetweenLow { negated }) = self.ops.last() {
                        self.ops.pop();
                        self.ops.push(Op::BetweenHigh { negated });
                    } else {
                        self.reduce_while(Op::And.precedence())?;
                        self.ops.push(Op::And);
                    }
                    self.bump();
                    return Ok(false);
                }
                Tok::Kw(Keyword::Or) => {
                    self.close_comparison_operands()?;
                    self.reduce_while(Op::Or.precedence())?;
                    self.ops.push(Op::Or);
                    self.bump();
                    return Ok(false);
                }
                Tok::RParen => {
                    self.close_comparison_operands()?;
                    self.reduce_while(1)?;
                    let Some(Op::Paren { pos }) = self.ops.pop() else {
                        return Err(self.unexpected("an operator or the end of the selector"));
                    };
                    self.nesting -= 1;
                    let operand = self.operands.last_mut().expect("an operand before ')'");
                    operand.pos = pos;
                    operand.bare_comparison = false;
                    self.bump();
                }
                Tok::Eof => {
                    self.close_comparison_operands()?;
                    self.reduce_while(1)?;
                    if !self.ops.is_empty() {
                        return Err(self.unexpected("')'"));
                    }
                    return Ok(true);
                }
                Tok::Kw(Keyword::Not) => {
                    self.bump();
                    return Err(self.unexpected("BETWEEN, LIKE or IN after NOT"));
                }
                _ => {
                    self.close_comparison_operands()?;
                    let open = self.ops.iter().any(|op| matches!(op, Op::Paren { .. }));
                    return Err(self.unexpected(if open {
                        "an operator or ')'"
                    } else {
                        "an operator or the end of the selector"
                    }));
                }
            }
        }
    }

    /// Applies pending operators that bind at least as tightly as `precedence`.
    /// Parentheses and a BETWEEN waiting for its AND are never applied here.
    fn reduce_while(&mut self, precedence: u8) -> Result<(), SelectorError> {
        while let Some(&op) = self.ops.last() {
            if op.precedence() < precedence
                || matches!(op, Op::Paren { .. } | Op::BetweenLow { .. })
            {
                return Ok(());
            }
            self.ops.pop();
            self.apply(op)?;
        }
        Ok(())
    }

    /// Before anything looser than arithmetic: applies the arithmetic, and fails if
    /// a BETWEEN is still waiting for its AND.
    fn close_comparison_operands(&mut self) -> Result<(), SelectorError> {
        self.reduce_while(COMPARISON + 1)?;
        if let Some(Op::BetweenLow { .. }) = self.ops.last() {
            return Err(self.unexpected("AND in BETWEEN"));
        }
        Ok(())
    }

    fn apply(&mut self, op: Op) -> Result<(), SelectorError> {
        let (node, pos, bare_comparison) = match op {
            Op::Or | Op::And => {
                let right = self.pop_operand();
                let left = self.pop_operand();
                let pos = left.pos;
                (junction(op == Op::Or, left, right)?, pos, false)
            }
            Op::Not { pos } => {
                self.nesting -= 1;
                let operand = self.pop_operand();
                (not(pos, operand)?, pos, false)
            }
            Op::Cmp { op, pos: op_pos } => {
                let right = self.pop_operand();
                let left = self.pop_operand();
                let pos = left.pos;
                (comparison(op, op_pos, left, right)?, pos, true)
            }
            Op::BetweenHigh { negated } => {
                let high = self.pop_operand();
                let low = self.pop_operand();
                let value = self.pop_operand();
                let pos = value.pos;
                (between(value, low, high, negated)?, pos, true)
            }
            Op::Arith(op) => {
                let right = self.pop_operand();
                let left = self.pop_operand();
                let pos = left.pos;
                (arith(op, left, right)?, pos, false)
            }
            Op::Sign { negate, pos } => {
                self.nesting -= 1;
                let operand = self.pop_operand();
                (sign(negate, pos, operand)?, pos, false)
            }
            Op::Paren { .. } | Op::BetweenLow { .. } => {
                unreachable!("parentheses and BETWEEN are closed explicitly")
            }
        };
        self.push_operand(node, pos, bare_comparison);
        Ok(())
    }

    /// The comparison-level operator at the current token, if any.
    fn postfix(&self) -> Option<Postfix> {
        if let Some(op) = cmp_op(self.peek()) {
            return Some(Postfix::Cmp(op));
        }
        let (negated, kw) = match (self.peek(), self.peek_second()) {
            (Tok::Kw(Keyword::Not), Tok::Kw(kw)) => (true, *kw),
            (Tok::Kw(kw), _) => (false, *kw),
            _ => return None,
        };
        match kw {
            Keyword::Between => Some(Postfix::Between { negated }),
            Keyword::Like => Some(Postfix::Like { negated }),
            Keyword::In => Some(Postfix::In { negated }),
            Keyword::Is if !negated => Some(Postfix::IsNull),
            _ => None,
        }
    }

    /// A comparison-level operator after its left operand. Returns whether another
    /// operand follows (a comparison's right side, BETWEEN's bounds) — LIKE, IN
    /// and IS NULL take only literals and are complete at once.
    fn comparison(&mut self, postfix: Postfix) -> Result<bool, SelectorError> {
        self.close_comparison_operands()?;
        self.reduce_while(COMPARISON)?;
        let pos = self.pos();
        if self.operands.last().is_some_and(|o| o.bare_comparison) {
            let message = format!(
                "comparisons cannot be chained; found {} after a comparison (use parentheses)",
                self.peek().describe()
            );
            return Err(SelectorError::new(pos, message));
        }
        if matches!(
            postfix,
            Postfix::Between { negated: true }
                | Postfix::Like { negated: true }
                | Postfix::In { negated: true }
        ) {
            self.bump(); // NOT
        }
        self.bump(); // the operator
        let value = match postfix {
            Postfix::Cmp(op) => {
                self.ops.push(Op::Cmp { op, pos });
                return Ok(true);
            }
            Postfix::Between { negated } => {
                let value = self.operands.last().expect("an operand before BETWEEN");
                check_number(&value.node.expr, value.pos, "the operand of BETWEEN")?;
                self.ops.push(Op::BetweenLow { negated });
                return Ok(true);
            }
            _ => self.pop_operand(),
        };
        let value_pos = value.pos;
        let node = match postfix {
            Postfix::Like { negated } => self.like(value, negated)?,
            Postfix::In { negated } => self.in_list(value, negated)?,
            _ => self.is_null(value)?,
        };
        self.push_operand(node, value_pos, true);
        Ok(false)
    }

    fn string_literal(&mut self, what: &str) -> Result<(String, usize), SelectorError> {
        let pos = self.pos();
        match self.peek() {
            Tok::Str(_) => match self.bump() {
                Tok::Str(s) => Ok((s, pos)),
                _ => unreachable!("peeked a string literal"),
            },
            _ => Err(self.unexpected(what)),
        }
    }

    /// `'pattern' [ESCAPE 'c']`, after `[NOT] LIKE`.
    fn like(&mut self, value: Operand, negated: bool) -> Parsed {
        check_string(&value.node.expr, value.pos, "the operand of LIKE")?;
        let (pattern, pattern_pos) = self.string_literal("a string literal pattern after LIKE")?;
        let escape = if self.eat_kw(Keyword::Escape) {
            let (escape, escape_pos) = self.string_literal("a string literal after ESCAPE")?;
            let mut chars = escape.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Some(c),
                _ => {
                    return Err(SelectorError::new(
                        escape_pos,
                        "the ESCAPE string must be exactly one character",
                    ))
                }
            }
        } else {
            None
        };
        let pattern = LikePattern::compile(&pattern, escape)
            .map_err(|message| SelectorError::new(pattern_pos, message))?;
        let expr = Expr::Like {
            value: Box::new(value.node.expr),
            pattern,
            negated,
        };
        node(expr, &[value.node.depth], value.pos)
    }

    /// `('a', 'b', ...)`, after `[NOT] IN`.
    fn in_list(&mut self, value: Operand, negated: bool) -> Parsed {
        check_string(&value.node.expr, value.pos, "the operand of IN")?;
        if self.peek() != &Tok::LParen {
            return Err(self.unexpected("'(' after IN"));
        }
        self.bump();
        let mut list = Vec::new();
        loop {
            let (item, _) = self.string_literal("a string literal in the IN list")?;
            list.push(item);
            match self.peek() {
                Tok::Comma => {
                    self.bump();
                }
                Tok::RParen => {
                    self.bump();
                    break;
                }
                _ => return Err(self.unexpected("',' or ')' in the IN list")),
            }
        }
        let expr = Expr::In {
            value: Box::new(value.node.expr),
            list,
            negated,
        };
        node(expr, &[value.node.depth], value.pos)
    }

    /// `[NOT] NULL`, after `IS`.
    fn is_null(&mut self, value: Operand) -> Parsed {
        let negated = self.eat_kw(Keyword::Not);
        if !self.eat_kw(Keyword::Null) {
            return Err(self.unexpected(if negated {
                "NULL after IS NOT"
            } else {
                "NULL or NOT NULL after IS"
            }));
        }
        let expr = Expr::IsNull {
            value: Box::new(value.node.expr),
            negated,
        };
        node(expr, &[value.node.depth], value.pos)
    }

    /// A numeric literal after a sign, folded into one literal; this is also how
    /// `-9223372036854775808` (`i64::MIN`) is written.
    fn signed_number(&mut self, negate: bool) -> Parsed {
        if negate && self.peek() == &Tok::Int(1 << 63) {
            self.bump();
            return Ok(leaf(Expr::Lit(Literal::Long(i64::MIN))));
        }
        let expr = match self.atom()?.expr {
            Expr::Lit(Literal::Long(v)) if negate => Expr::Lit(Literal::Long(-v)),
            Expr::Lit(Literal::Double(v)) if negate => Expr::Lit(Literal::Double(-v)),
            expr => expr,
        };
        Ok(leaf(expr))
    }

    /// A literal or an identifier.
    fn atom(&mut self) -> Parsed {
        let pos = self.pos();
        let expr = match self.peek() {
            Tok::Str(_) | Tok::Int(_) | Tok::Float(_) | Tok::Ident(_) => match self.bump() {
                Tok::Str(s) => Expr::Lit(Literal::Str(s)),
                Tok::Float(v) => Expr::Lit(Literal::Double(v)),
                Tok::Ident(name) => Expr::Ident(name),
                Tok::Int(v) => match i64::try_from(v) {
                    Ok(v) => Expr::Lit(Literal::Long(v)),
                    Err(_) => {
                        return Err(SelectorError::new(
                            pos,
                            "integer literal out of range (the largest is 9223372036854775807)",
                        ))
                    }
                },
                _ => unreachable!("peeked a literal or identifier"),
            },
            Tok::Kw(Keyword::True) => {
                self.bump();
                Expr::Lit(Literal::Bool(true))
            }
            Tok::Kw(Keyword::False) => {
                self.bump();
                Expr::Lit(Literal::Bool(false))
            }
            Tok::Kw(Keyword::Null) => {
                self.bump();
                Expr::Lit(Literal::Null)
            }
            Tok::Kw(k) => {
                let k = k.as_str();
                let message = format!(
                    "expected an expression, found {k} (a reserved word cannot be an identifier)"
                );
                return Err(SelectorError::new(pos, message));
            }
            _ => return Err(self.unexpected("an expression")),
        };
        Ok(leaf(expr))
    }
}

#[cfg(test)]
mod tests;
