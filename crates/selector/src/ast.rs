//! The parsed form of a selector.

use crate::like::LikePattern;

/// A literal value written in the selector.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    Null,
    Bool(bool),
    Long(i64),
    Double(f64),
    Str(String),
}

/// `+ - * /`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
}

/// `= <> < <= > >=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    /// Whether the operator only orders numbers (strings and booleans allow just
    /// `=` and `<>`, JMS 2.0 §3.8.1.2).
    pub(crate) fn is_ordering(self) -> bool {
        !matches!(self, CmpOp::Eq | CmpOp::Ne)
    }
}

/// An expression node. `And` and `Or` are n-ary so that long chains of conditions
/// (`a = 1 OR a = 2 OR ...`) stay shallow.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Lit(Literal),
    Ident(String),
    /// Unary `-`.
    Neg(Box<Expr>),
    /// Unary `+`: numeric identity (NULL for a non-number).
    Pos(Box<Expr>),
    Arith(ArithOp, Box<Expr>, Box<Expr>),
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Between {
        value: Box<Expr>,
        low: Box<Expr>,
        high: Box<Expr>,
        negated: bool,
    },
    Like {
        value: Box<Expr>,
        pattern: LikePattern,
        negated: bool,
    },
    In {
        value: Box<Expr>,
        list: Vec<String>,
        negated: bool,
    },
    IsNull {
        value: Box<Expr>,
        negated: bool,
    },
}

/// What an expression is known to produce before any message is seen, for the
/// checks the parser makes (e.g. `'a' + 1` and `x AND 5` are rejected).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StaticType {
    Bool,
    Number,
    String,
    /// The `NULL` literal.
    Null,
    /// An identifier: its type depends on the message.
    Unknown,
}

impl StaticType {
    /// How the type reads in an error message.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            StaticType::Bool => "a boolean",
            StaticType::Number => "a number",
            StaticType::String => "a string",
            StaticType::Null => "NULL",
            StaticType::Unknown => "an identifier",
        }
    }
}

impl Expr {
    /// The statically known type of the expression's value.
    pub(crate) fn static_type(&self) -> StaticType {
        match self {
            Expr::Lit(Literal::Null) => StaticType::Null,
            Expr::Lit(Literal::Bool(_)) => StaticType::Bool,
            Expr::Lit(Literal::Long(_) | Literal::Double(_)) => StaticType::Number,
            Expr::Lit(Literal::Str(_)) => StaticType::String,
            Expr::Ident(_) => StaticType::Unknown,
            Expr::Neg(_) | Expr::Pos(_) | Expr::Arith(..) => StaticType::Number,
            Expr::Cmp(..)
            | Expr::And(_)
            | Expr::Or(_)
            | Expr::Not(_)
            | Expr::Between { .. }
            | Expr::Like { .. }
            | Expr::In { .. }
            | Expr::IsNull { .. } => StaticType::Bool,
        }
    }
}
