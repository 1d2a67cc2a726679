//! Evaluates a parsed selector with SQL/JMS three-valued logic (JMS 2.0 §3.8.1.2).
//!
//! * A missing identifier is NULL. Comparisons, arithmetic, BETWEEN, LIKE and IN
//!   with a NULL operand are UNKNOWN (or NULL); `IS [NOT] NULL` is the only test
//!   that sees NULL as a value.
//! * AND, OR and NOT follow the JMS truth tables (Kleene logic): `FALSE AND x` is
//!   FALSE and `TRUE OR x` is TRUE whatever `x` is; otherwise UNKNOWN is
//!   contagious; `NOT UNKNOWN` is UNKNOWN.
//! * Numbers are longs or doubles; a long meeting a double is converted to double
//!   (Java's binary numeric promotion). Long arithmetic wraps on overflow, as
//!   Java's does, so it never panics. Division by zero — long or double — is NULL
//!   (so the comparison it feeds is UNKNOWN); Java would throw, or produce an
//!   infinity or NaN.
//! * Comparing values of unlike types (a string with a number, a boolean with a
//!   string, ...) is FALSE, as §3.8.1.2 specifies ("If the comparison of non-like
//!   type values is attempted, the value of the operation is false"), for every
//!   comparison operator including `<>`. Strings and booleans only support `=` and
//!   `<>`; ordering them is FALSE too.
//! * `x BETWEEN a AND b` is `a <= x AND x <= b`; `x NOT BETWEEN a AND b` is
//!   `x < a OR x > b` (the spec's own equivalences). `NOT LIKE` and `NOT IN` are
//!   the negations of `LIKE` and `IN`. LIKE or IN on a non-string (non-NULL) value
//!   is FALSE, like any comparison of unlike types.
//! * An identifier used as a condition (`WHERE flag`, `flag AND ...`) must hold a
//!   boolean; any other value is UNKNOWN.

use std::borrow::Cow;
use std::cmp::Ordering;

use crate::ast::{ArithOp, CmpOp, Expr, Literal};
use crate::SelValue;

/// The identifier lookup a selector is evaluated against.
pub(crate) type Lookup<'l> = dyn Fn(&str) -> Option<SelValue> + 'l;

/// A truth value of three-valued logic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tri {
    True,
    False,
    Unknown,
}

impl Tri {
    pub(crate) fn from_bool(b: bool) -> Tri {
        if b {
            Tri::True
        } else {
            Tri::False
        }
    }

    /// JMS NOT: swaps TRUE and FALSE, keeps UNKNOWN.
    pub(crate) fn not(self) -> Tri {
        match self {
            Tri::True => Tri::False,
            Tri::False => Tri::True,
            Tri::Unknown => Tri::Unknown,
        }
    }

    /// JMS AND: FALSE wins, then UNKNOWN.
    pub(crate) fn and(self, other: Tri) -> Tri {
        match (self, other) {
            (Tri::False, _) | (_, Tri::False) => Tri::False,
            (Tri::True, Tri::True) => Tri::True,
            _ => Tri::Unknown,
        }
    }

    /// JMS OR: TRUE wins, then UNKNOWN.
    pub(crate) fn or(self, other: Tri) -> Tri {
        match (self, other) {
            (Tri::True, _) | (_, Tri::True) => Tri::True,
            (Tri::False, Tri::False) => Tri::False,
            _ => Tri::Unknown,
        }
    }
}

/// A value during evaluation. Booleans produced by conditions are `Bool`, and
/// UNKNOWN is `Null`, which is how SQL and JMS treat them too.
#[derive(Debug, Clone, PartialEq)]
enum Val<'a> {
    Null,
    Bool(bool),
    Long(i64),
    Double(f64),
    Str(Cow<'a, str>),
}

impl From<SelValue> for Val<'_> {
    fn from(v: SelValue) -> Self {
        match v {
            SelValue::String(s) => Val::Str(Cow::Owned(s)),
            SelValue::Long(v) => Val::Long(v),
            SelValue::Double(v) => Val::Double(v),
            SelValue::Bool(v) => Val::Bool(v),
        }
    }
}

impl From<Tri> for Val<'_> {
    fn from(t: Tri) -> Self {
        match t {
            Tri::True => Val::Bool(true),
            Tri::False => Val::Bool(false),
            Tri::Unknown => Val::Null,
        }
    }
}

impl Val<'_> {
    /// The value as a condition: only booleans are TRUE or FALSE.
    fn truth(&self) -> Tri {
        match self {
            Val::Bool(b) => Tri::from_bool(*b),
            _ => Tri::Unknown,
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match *self {
            Val::Long(v) => Some(v as f64),
            Val::Double(v) => Some(v),
            _ => None,
        }
    }
}

/// Evaluates `expr` as a condition.
pub(crate) fn evaluate(expr: &Expr, lookup: &Lookup<'_>) -> Tri {
    condition(expr, lookup)
}

/// Evaluates an expression as a condition.
fn condition(expr: &Expr, lookup: &Lookup<'_>) -> Tri {
    match expr {
        Expr::And(items) => {
            let mut result = Tri::True;
            for item in items {
                match condition(item, lookup) {
                    Tri::False => return Tri::False,
                    Tri::Unknown => result = Tri::Unknown,
                    Tri::True => {}
                }
            }
            result
        }
        Expr::Or(items) => {
            let mut result = Tri::False;
            for item in items {
                match condition(item, lookup) {
                    Tri::True => return Tri::True,
                    Tri::Unknown => result = Tri::Unknown,
                    Tri::False => {}
                }
            }
            result
        }
        Expr::Not(inner) => condition(inner, lookup).not(),
        Expr::Cmp(op, left, right) => compare(*op, &value(left, lookup), &value(right, lookup)),
        Expr::Between {
            value: v,
            low,
            high,
            negated,
        } => {
            let (v, low, high) = (value(v, lookup), value(low, lookup), value(high, lookup));
            if *negated {
                compare(CmpOp::Lt, &v, &low).or(compare(CmpOp::Gt, &v, &high))
            } else {
                compare(CmpOp::Ge, &v, &low).and(compare(CmpOp::Le, &v, &high))
            }
        }
        Expr::Like {
            value: v,
            pattern,
            negated,
        } => {
            let result = match value(v, lookup) {
                Val::Null => Tri::Unknown,
                Val::Str(s) => Tri::from_bool(pattern.matches(&s)),
                _ => Tri::False,
            };
            if *negated {
                result.not()
            } else {
                result
            }
        }
        Expr::In {
            value: v,
            list,
            negated,
        } => {
            let result = match value(v, lookup) {
                Val::Null => Tri::Unknown,
                Val::Str(s) => Tri::from_bool(list.iter().any(|item| *item == *s)),
                _ => Tri::False,
            };
            if *negated {
                result.not()
            } else {
                result
            }
        }
        Expr::IsNull { value: v, negated } => {
            let is_null = matches!(value(v, lookup), Val::Null);
            Tri::from_bool(is_null != *negated)
        }
        Expr::Lit(_) | Expr::Ident(_) | Expr::Neg(_) | Expr::Pos(_) | Expr::Arith(..) => {
            value(expr, lookup).truth()
        }
    }
}

/// Evaluates an expression to a value.
fn value<'a>(expr: &'a Expr, lookup: &Lookup<'_>) -> Val<'a> {
    match expr {
        Expr::Lit(Literal::Null) => Val::Null,
        Expr::Lit(Literal::Bool(b)) => Val::Bool(*b),
        Expr::Lit(Literal::Long(v)) => Val::Long(*v),
        Expr::Lit(Literal::Double(v)) => Val::Double(*v),
        Expr::Lit(Literal::Str(s)) => Val::Str(Cow::Borrowed(s)),
        Expr::Ident(name) => lookup(name).map_or(Val::Null, Val::from),
        Expr::Neg(inner) => match value(inner, lookup) {
            Val::Long(v) => Val::Long(v.wrapping_neg()),
            Val::Double(v) => Val::Double(-v),
            _ => Val::Null,
        },
        Expr::Pos(inner) => match value(inner, lookup) {
            v @ (Val::Long(_) | Val::Double(_)) => v,
            _ => Val::Null,
        },
        Expr::Arith(op, left, right) => arith(*op, value(left, lookup), value(right, lookup)),
        _ => condition(expr, lookup).into(),
    }
}

/// Long arithmetic wraps (Java semantics); any double makes it double
/// arithmetic; division by zero and non-numeric operands give NULL.
fn arith(op: ArithOp, left: Val<'_>, right: Val<'_>) -> Val<'static> {
    if let (Val::Long(a), Val::Long(b)) = (&left, &right) {
        let (a, b) = (*a, *b);
        return match op {
            ArithOp::Add => Val::Long(a.wrapping_add(b)),
            ArithOp::Sub => Val::Long(a.wrapping_sub(b)),
            ArithOp::Mul => Val::Long(a.wrapping_mul(b)),
            ArithOp::Div if b == 0 => Val::Null,
            ArithOp::Div => Val::Long(a.wrapping_div(b)),
        };
    }
    let (Some(a), Some(b)) = (left.as_f64(), right.as_f64()) else {
        return Val::Null;
    };
    match op {
        ArithOp::Add => Val::Double(a + b),
        ArithOp::Sub => Val::Double(a - b),
        ArithOp::Mul => Val::Double(a * b),
        ArithOp::Div if b == 0.0 => Val::Null,
        ArithOp::Div => Val::Double(a / b),
    }
}

/// A comparison: UNKNOWN with a NULL operand, FALSE for unlike types.
fn compare(op: CmpOp, left: &Val<'_>, right: &Val<'_>) -> Tri {
    let ordering = match (left, right) {
        (Val::Null, _) | (_, Val::Null) => return Tri::Unknown,
        (Val::Long(a), Val::Long(b)) => Some(a.cmp(b)),
        (Val::Long(_) | Val::Double(_), Val::Long(_) | Val::Double(_)) => {
            // Both numeric, at least one double: promote (NaN compares unordered).
            left.as_f64()
                .zip(right.as_f64())
                .and_then(|(a, b)| a.partial_cmp(&b))
        }
        (Val::Str(a), Val::Str(b)) if !op.is_ordering() => {
            return Tri::from_bool((a == b) == (op == CmpOp::Eq));
        }
        (Val::Bool(a), Val::Bool(b)) if !op.is_ordering() => {
            return Tri::from_bool((a == b) == (op == CmpOp::Eq));
        }
        _ => return Tri::False,
    };
    let Some(ordering) = ordering else {
        // NaN: unordered, unequal to everything (IEEE 754, as in Java's `!=`).
        return Tri::from_bool(op == CmpOp::Ne);
    };
    Tri::from_bool(match op {
        CmpOp::Eq => ordering == Ordering::Equal,
        CmpOp::Ne => ordering != Ordering::Equal,
        CmpOp::Lt => ordering == Ordering::Less,
        CmpOp::Le => ordering != Ordering::Greater,
        CmpOp::Gt => ordering == Ordering::Greater,
        CmpOp::Ge => ordering != Ordering::Less,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::parse;

    const T: Tri = Tri::True;
    const F: Tri = Tri::False;
    const U: Tri = Tri::Unknown;

    /// Evaluates `selector` with identifiers: `t`/`f` booleans, `u` missing (NULL),
    /// `i` = 10, `j` = -3, `d` = 2.5, `s` = 'abc', `big` = i64::MAX, `nan` = NaN,
    /// `zero` = 0, `dzero` = 0.0.
    fn eval(selector: &str) -> Tri {
        let expr = parse(selector).unwrap().unwrap();
        let lookup = |name: &str| match name {
            "t" => Some(SelValue::Bool(true)),
            "f" => Some(SelValue::Bool(false)),
            "i" => Some(SelValue::Long(10)),
            "j" => Some(SelValue::Long(-3)),
            "d" => Some(SelValue::Double(2.5)),
            "s" => Some(SelValue::String("abc".into())),
            "big" => Some(SelValue::Long(i64::MAX)),
            "min" => Some(SelValue::Long(i64::MIN)),
            "nan" => Some(SelValue::Double(f64::NAN)),
            "zero" => Some(SelValue::Long(0)),
            "dzero" => Some(SelValue::Double(0.0)),
            _ => None,
        };
        evaluate(&expr, &lookup)
    }

    fn check(cases: &[(&str, Tri)]) {
        for &(selector, expected) in cases {
            assert_eq!(eval(selector), expected, "{selector}");
        }
    }

    #[test]
    fn tri_tables() {
        let all = [T, F, U];
        let and = [[T, F, U], [F, F, F], [U, F, U]];
        let or = [[T, T, T], [T, F, U], [T, U, U]];
        for (x, a) in all.iter().enumerate() {
            for (y, b) in all.iter().enumerate() {
                assert_eq!(a.and(*b), and[x][y], "{a:?} AND {b:?}");
                assert_eq!(a.or(*b), or[x][y], "{a:?} OR {b:?}");
            }
        }
        assert_eq!([T.not(), F.not(), U.not()], [F, T, U]);
    }

    /// The JMS 2.0 §3.8.1.2 truth tables, through the parser and evaluator.
    #[test]
    fn and_or_not_truth_tables() {
        let operands = [("t", T), ("f", F), ("u", U)];
        for (a, va) in operands {
            for (b, vb) in operands {
                assert_eq!(eval(&format!("{a} AND {b}")), va.and(vb), "{a} AND {b}");
                assert_eq!(eval(&format!("{a} OR {b}")), va.or(vb), "{a} OR {b}");
            }
            assert_eq!(eval(&format!("NOT {a}")), va.not(), "NOT {a}");
        }
        check(&[
            ("TRUE AND FALSE", F),
            ("TRUE OR FALSE", T),
            ("NOT FALSE", T),
            ("NULL AND FALSE", F),
            ("NULL OR TRUE", T),
            ("NULL OR FALSE", U),
            ("NOT NULL", U),
            ("u = 1 AND i = 10", U),
            ("u = 1 OR i = 10", T),
            ("u = 1 AND i = 11", F),
            ("NOT (u = 1)", U),
            ("NOT (u = 1) OR i = 10", T),
            ("t AND t AND u", U),
            ("t AND u AND f", F),
            ("f OR u OR t", T),
            ("f OR f OR u", U),
            ("NOT NOT t", T),
            ("NOT NOT u", U),
        ]);
    }

    #[test]
    fn non_boolean_conditions_are_unknown() {
        check(&[
            ("i", U),
            ("s", U),
            ("NOT s", U),
            ("i OR t", T),
            ("s AND t", U),
        ]);
    }

    #[test]
    fn comparisons() {
        check(&[
            ("i = 10", T),
            ("i = 11", F),
            ("i <> 10", F),
            ("i <> 11", T),
            ("i < 11", T),
            ("i < 10", F),
            ("i <= 10", T),
            ("i <= 9", F),
            ("i > 9", T),
            ("i > 10", F),
            ("i >= 10", T),
            ("i >= 11", F),
            ("j < 0", T),
            ("-i = -10", T),
            ("s = 'abc'", T),
            ("s = 'ABC'", F),
            ("s = 'abc '", F),
            ("s <> 'abc'", F),
            ("s <> 'xyz'", T),
            ("t = TRUE", T),
            ("t = FALSE", F),
            ("t <> FALSE", T),
            ("f = FALSE", T),
            ("t = f", F),
            ("t <> f", T),
        ]);
    }

    #[test]
    fn comparisons_with_null_are_unknown() {
        for op in ["=", "<>", "<", "<=", ">", ">="] {
            assert_eq!(eval(&format!("u {op} 1")), U, "u {op} 1");
            assert_eq!(eval(&format!("1 {op} u")), U, "1 {op} u");
            assert_eq!(eval(&format!("NOT (u {op} 1)")), U);
        }
        check(&[
            ("u = 'x'", U),
            ("u <> 'x'", U),
            ("u = TRUE", U),
            ("u = u", U),
        ]);
    }

    #[test]
    fn numeric_promotion() {
        check(&[
            ("d = 2.5", T),
            ("d > 2", T),
            ("d < 3", T),
            ("i = 10.0", T),
            ("i = 10.5", F),
            ("i < 10.5", T),
            ("10.0 = i", T),
            ("i * 1.0 = 10", T),
            ("i / 4 = 2", T),     // long division truncates
            ("i / 4.0 = 2.5", T), // double division
            ("j / 2 = -1", T),    // truncates towards zero, as Java
            ("d * 2 = 5", T),
            ("d + i = 12.5", T),
            ("i - d = 7.5", T),
            ("1e1 = i", T),
            ("0x0A = i", T),
            ("012 = i", T),
            ("i BETWEEN 9.5 AND 10.5", T),
            ("big = 9223372036854775807", T),
            ("big + 0.0 = 9223372036854775807", T),
            // Promotion to double loses precision exactly as Java's does.
            ("big = 9223372036854775806.0", T),
            ("big = 9223372036854775806", F),
            ("nan = nan", F),
            ("nan <> nan", T),
            ("nan < 1", F),
            ("nan >= 1", F),
            ("nan <> 1", T),
        ]);
    }

    #[test]
    fn unlike_types_compare_false() {
        check(&[
            ("s = 1", F),
            ("s <> 1", F),
            ("NOT (s = 1)", T),
            ("s > 1", F),
            ("s <= 1", F),
            ("i = 'abc'", F),
            ("i <> '10'", F),
            ("t = 1", F),
            ("t = 'true'", F),
            ("s = t", F),
            ("i = t", F),
            ("s < s", F),  // strings have no order in JMS
            ("t >= f", F), // nor do booleans
            ("s BETWEEN 1 AND 2", F),
            ("s NOT BETWEEN 1 AND 2", F),
            ("i LIKE 'a%'", F),
            ("i NOT LIKE 'a%'", T),
            ("t IN ('true')", F),
            ("i NOT IN ('10')", T),
        ]);
    }

    #[test]
    fn arithmetic() {
        check(&[
            ("1 + 2 * 3 = 7", T),
            ("(1 + 2) * 3 = 9", T),
            ("10 - 4 - 3 = 3", T),
            ("100 / 10 / 5 = 2", T),
            ("-i + 10 = 0", T),
            ("- -i = 10", T),
            ("+i = 10", T),
            ("i * -1 = -10", T),
            ("7 / 2 = 3", T),
            ("-7 / 2 = -3", T),
            ("7.0 / 2 = 3.5", T),
            ("u + 1 = 1", U),
            ("u + 1 IS NULL", T),
            ("i + NULL IS NULL", T),
            ("-u IS NULL", T),
            ("+s IS NULL", T), // a sign on a string is NULL
            ("-s IS NULL", T),
            ("s + 1 IS NULL", T),
            ("t * 2 IS NULL", T),
        ]);
    }

    #[test]
    fn division_by_zero_is_null() {
        check(&[
            ("i / 0 = 1", U),
            ("i / 0 IS NULL", T),
            ("i / zero IS NULL", T),
            ("i / 0.0 IS NULL", T),
            ("d / dzero IS NULL", T),
            ("d / zero IS NULL", T),
            ("NOT (i / 0 > 1)", U),
            ("i / 0 > 1 OR t", T),
            ("0 / i = 0", T),
        ]);
    }

    #[test]
    fn overflow_wraps() {
        check(&[
            ("big + 1 = -9223372036854775808", T),
            ("min - 1 = 9223372036854775807", T),
            ("big * 2 = -2", T),
            ("-min = min", T),
            ("min / -1 = min", T),
            ("big + 1.0 > big", F),    // double: 2^63 + 1 rounds to 2^63
            ("1e308 * 10 > 1e308", T), // double overflow is infinity
        ]);
    }

    #[test]
    fn between() {
        check(&[
            ("i BETWEEN 10 AND 20", T),
            ("i BETWEEN 5 AND 10", T),
            ("i BETWEEN 11 AND 20", F),
            ("i BETWEEN 20 AND 5", F),
            ("i NOT BETWEEN 11 AND 20", T),
            ("i NOT BETWEEN 10 AND 20", F),
            ("i NOT BETWEEN 5 AND 10", F),
            ("i BETWEEN i - 1 AND i + 1", T),
            ("d BETWEEN 2 AND 3", T),
            ("u BETWEEN 1 AND 2", U),
            ("u NOT BETWEEN 1 AND 2", U),
            ("i BETWEEN u AND 20", U),
            ("i BETWEEN u AND 5", F),     // 10 <= 5 is FALSE whatever u is
            ("i NOT BETWEEN u AND 5", T), // 10 > 5 is TRUE whatever u is
            ("i NOT BETWEEN u AND 20", U),
            ("i BETWEEN 1 AND u", U),
            ("i NOT BETWEEN 11 AND u", T),
            ("NOT (i BETWEEN 1 AND u)", U),
        ]);
    }

    #[test]
    fn in_lists() {
        check(&[
            ("s IN ('abc')", T),
            ("s IN ('x', 'abc', 'y')", T),
            ("s IN ('x', 'y')", F),
            ("s IN ('ABC')", F),
            ("s NOT IN ('x', 'y')", T),
            ("s NOT IN ('abc', 'y')", F),
            ("u IN ('x')", U),
            ("u NOT IN ('x')", U),
            ("NOT (u IN ('x'))", U),
        ]);
    }

    #[test]
    fn like() {
        check(&[
            ("s LIKE 'abc'", T),
            ("s LIKE 'a%'", T),
            ("s LIKE '_b_'", T),
            ("s LIKE 'b%'", F),
            ("s LIKE 'ab'", F),
            ("s NOT LIKE 'b%'", T),
            ("s NOT LIKE 'a%'", F),
            ("u LIKE '%'", U),
            ("u NOT LIKE '%'", U),
            ("s LIKE 'a\\%' ESCAPE '\\'", F),
            ("s LIKE 'ab!_' ESCAPE '!'", F),
            ("s LIKE 'ab_' ESCAPE '!'", T),
        ]);
    }

    #[test]
    fn is_null() {
        check(&[
            ("u IS NULL", T),
            ("u IS NOT NULL", F),
            ("i IS NULL", F),
            ("i IS NOT NULL", T),
            ("s IS NOT NULL", T),
            ("f IS NOT NULL", T),
            ("NOT u IS NULL", F),
            ("NULL IS NULL", T),
            ("(u = 1) IS NULL", T), // UNKNOWN is the NULL boolean
            ("(i = 1) IS NULL", F),
            ("(u = 1 OR t) IS NOT NULL", T),
        ]);
    }
}
