//! Parser tests: structure (precedence), errors and their positions, limits.

use super::*;

/// Renders an expression fully parenthesized, to check structure.
fn show(e: &Expr) -> String {
    let join = |items: &[Expr], sep: &str| items.iter().map(show).collect::<Vec<_>>().join(sep);
    match e {
        Expr::Lit(Literal::Null) => "NULL".into(),
        Expr::Lit(Literal::Bool(b)) => b.to_string().to_uppercase(),
        Expr::Lit(Literal::Long(v)) => v.to_string(),
        Expr::Lit(Literal::Double(v)) => format!("{v:?}"),
        Expr::Lit(Literal::Str(s)) => format!("'{s}'"),
        Expr::Ident(n) => n.clone(),
        Expr::Neg(x) => format!("(-{})", show(x)),
        Expr::Pos(x) => format!("(+{})", show(x)),
        Expr::Arith(op, l, r) => {
            let op = match op {
                ArithOp::Add => "+",
                ArithOp::Sub => "-",
                ArithOp::Mul => "*",
                ArithOp::Div => "/",
            };
            format!("({} {op} {})", show(l), show(r))
        }
        Expr::Cmp(op, l, r) => {
            let op = match op {
                CmpOp::Eq => "=",
                CmpOp::Ne => "<>",
                CmpOp::Lt => "<",
                CmpOp::Le => "<=",
                CmpOp::Gt => ">",
                CmpOp::Ge => ">=",
            };
            format!("({} {op} {})", show(l), show(r))
        }
        Expr::And(items) => format!("({})", join(items, " AND ")),
        Expr::Or(items) => format!("({})", join(items, " OR ")),
        Expr::Not(x) => format!("(NOT {})", show(x)),
        Expr::Between {
            value,
            low,
            high,
            negated,
        } => format!(
            "({}{} BETWEEN {} AND {})",
            show(value),
            if *negated { " NOT" } else { "" },
            show(low),
            show(high)
        ),
        Expr::Like { value, negated, .. } => {
            format!(
                "({}{} LIKE _)",
                show(value),
                if *negated { " NOT" } else { "" }
            )
        }
        Expr::In {
            value,
            list,
            negated,
        } => format!(
            "({}{} IN {:?})",
            show(value),
            if *negated { " NOT" } else { "" },
            list
        ),
        Expr::IsNull { value, negated } => format!(
            "({} IS{} NULL)",
            show(value),
            if *negated { " NOT" } else { "" }
        ),
    }
}

fn p(text: &str) -> String {
    show(&parse(text).unwrap().unwrap())
}

fn err(text: &str) -> (usize, String) {
    let e = parse(text).unwrap_err();
    (e.position(), e.message().to_string())
}

#[test]
fn empty_selector_is_none() {
    assert_eq!(parse("").unwrap(), None);
    assert_eq!(parse("   \n\t").unwrap(), None);
}

#[test]
fn precedence() {
    let cases = [
        ("a OR b AND c", "(a OR (b AND c))"),
        ("a AND b OR c", "((a AND b) OR c)"),
        ("NOT a AND b", "((NOT a) AND b)"),
        ("NOT a OR b", "((NOT a) OR b)"),
        ("NOT a = 1", "(NOT (a = 1))"),
        ("NOT NOT a", "(NOT (NOT a))"),
        ("a = 1 + 2 * 3", "(a = (1 + (2 * 3)))"),
        ("a = (1 + 2) * 3", "(a = ((1 + 2) * 3))"),
        ("a - b - c > 0", "(((a - b) - c) > 0)"),
        ("a / b / c > 0", "(((a / b) / c) > 0)"),
        ("a * b + c * d > 0", "(((a * b) + (c * d)) > 0)"),
        ("-a * b > 0", "(((-a) * b) > 0)"),
        ("- -a > 0", "((-(-a)) > 0)"),
        ("a - -1 > 0", "((a - -1) > 0)"),
        ("+a > 0", "((+a) > 0)"),
        ("a = -1.5", "(a = -1.5)"),
        ("a = +1", "(a = 1)"),
        ("a = -9223372036854775808", "(a = -9223372036854775808)"),
        ("a BETWEEN 1 AND 2 AND b", "((a BETWEEN 1 AND 2) AND b)"),
        (
            "a NOT BETWEEN 1 + 1 AND 2 * 3",
            "(a NOT BETWEEN (1 + 1) AND (2 * 3))",
        ),
        (
            "a + 1 BETWEEN b AND c OR d",
            "(((a + 1) BETWEEN b AND c) OR d)",
        ),
        ("NOT a BETWEEN 1 AND 2", "(NOT (a BETWEEN 1 AND 2))"),
        (
            "a LIKE 'x' OR b NOT LIKE 'y'",
            "((a LIKE _) OR (b NOT LIKE _))",
        ),
        (
            "a IN ('x', 'y') AND b NOT IN ('z')",
            "((a IN [\"x\", \"y\"]) AND (b NOT IN [\"z\"]))",
        ),
        (
            "a IS NULL OR b IS NOT NULL",
            "((a IS NULL) OR (b IS NOT NULL))",
        ),
        ("NOT a IS NULL", "(NOT (a IS NULL))"),
        ("a = TRUE", "(a = TRUE)"),
        ("(a)", "a"),
        ("((a = 1))", "(a = 1)"),
        ("a AND b AND c", "(a AND b AND c)"),
        ("a OR (b OR c) OR d", "(a OR b OR c OR d)"),
        ("(a AND b) AND (c AND d)", "(a AND b AND c AND d)"),
        ("a OR b AND c OR d", "(a OR (b AND c) OR d)"),
        ("a = 0x10", "(a = 16)"),
        ("a=1AND b<>2OR c>=3", "(((a = 1) AND (b <> 2)) OR (c >= 3))"),
        ("a = 010", "(a = 8)"),
        ("TRUE", "TRUE"),
        ("(a LIKE 'x') = b", "((a LIKE _) = b)"),
        ("(a = 1) = (b = 2)", "((a = 1) = (b = 2))"),
        ("NOT NOT NOT a = 1", "(NOT (NOT (NOT (a = 1))))"),
        (
            "a AND NOT b OR NOT c AND d",
            "((a AND (NOT b)) OR ((NOT c) AND d))",
        ),
        ("a BETWEEN -1 AND +2 OR b", "((a BETWEEN -1 AND 2) OR b)"),
        (
            "a BETWEEN b - 1 AND b * 2 AND c BETWEEN 1 AND 2",
            "((a BETWEEN (b - 1) AND (b * 2)) AND (c BETWEEN 1 AND 2))",
        ),
        ("a NOT LIKE 'x' ESCAPE '!' AND b", "((a NOT LIKE _) AND b)"),
        ("- - -a = 1", "((-(-(-a))) = 1)"),
        ("-(a) * -(b) = 1", "(((-a) * (-b)) = 1)"),
        ("a * (b + c) / d = 1", "(((a * (b + c)) / d) = 1)"),
        ("((a))", "a"),
        ("NULL IS NULL", "(NULL IS NULL)"),
        ("a + NULL > 1", "((a + NULL) > 1)"),
    ];
    for (text, expected) in cases {
        assert_eq!(p(text), expected, "{text}");
    }
}

#[test]
fn keywords_in_any_case() {
    assert_eq!(
        p("a between 1 and 2 or not b like 'x' escape '!' and c is not null"),
        "((a BETWEEN 1 AND 2) OR ((NOT (b LIKE _)) AND (c IS NOT NULL)))"
    );
    assert_eq!(p("x = true Or y = False"), "((x = TRUE) OR (y = FALSE))");
}

#[test]
fn errors_with_positions() {
    let cases: &[(&str, usize, &str)] = &[
        ("a =", 3, "expected an expression, found end of selector"),
        (
            "a = 1)",
            5,
            "expected an operator or the end of the selector, found ')'",
        ),
        ("(a = 1", 6, "expected ')', found end of selector"),
        (
            "a = 1 b = 2",
            6,
            "expected an operator or the end of the selector, found identifier 'b'",
        ),
        (
            "AND a",
            0,
            "expected an expression, found AND (a reserved word cannot be an identifier)",
        ),
        (
            "a = 1 AND",
            9,
            "expected an expression, found end of selector",
        ),
        (
            "a = 1 OR OR b",
            9,
            "expected an expression, found OR (a reserved word cannot be an identifier)",
        ),
        (
            "select = 1 AND in = 2",
            15,
            "expected an expression, found IN (a reserved word cannot be an identifier)",
        ),
        (
            "a BETWEEN 1",
            11,
            "expected AND in BETWEEN, found end of selector",
        ),
        ("a BETWEEN 1 OR 2", 12, "expected AND in BETWEEN, found OR"),
        (
            "a LIKE b",
            7,
            "expected a string literal pattern after LIKE, found identifier 'b'",
        ),
        (
            "a LIKE 'x' ESCAPE 'ab'",
            18,
            "the ESCAPE string must be exactly one character",
        ),
        (
            "a LIKE 'x' ESCAPE ''",
            18,
            "the ESCAPE string must be exactly one character",
        ),
        (
            "a LIKE 'x!' ESCAPE '!'",
            7,
            "LIKE pattern ends with its escape character",
        ),
        ("a IN 'x'", 5, "expected '(' after IN, found string literal"),
        (
            "a IN ()",
            6,
            "expected a string literal in the IN list, found ')'",
        ),
        (
            "a IN ('x',)",
            10,
            "expected a string literal in the IN list, found ')'",
        ),
        (
            "a IN ('x' 'y')",
            10,
            "expected ',' or ')' in the IN list, found string literal",
        ),
        (
            "a IN (1, 2)",
            6,
            "expected a string literal in the IN list, found numeric literal",
        ),
        (
            "a IS 1",
            5,
            "expected NULL or NOT NULL after IS, found numeric literal",
        ),
        (
            "a IS NOT 1",
            9,
            "expected NULL after IS NOT, found numeric literal",
        ),
        (
            "a NOT 1",
            6,
            "expected BETWEEN, LIKE or IN after NOT, found numeric literal",
        ),
        (
            "a = b = c",
            6,
            "comparisons cannot be chained; found '=' after a comparison (use parentheses)",
        ),
        (
            "a < b < c",
            6,
            "comparisons cannot be chained; found '<' after a comparison (use parentheses)",
        ),
        (
            "a IS NULL IS NULL",
            10,
            "comparisons cannot be chained; found IS after a comparison (use parentheses)",
        ),
        (
            "a = NULL",
            4,
            "comparison with NULL is always unknown; use IS NULL or IS NOT NULL",
        ),
        (
            "NULL <> a",
            0,
            "comparison with NULL is always unknown; use IS NULL or IS NOT NULL",
        ),
        (
            "a + 1",
            0,
            "the selector must be a boolean expression, not a number",
        ),
        (
            "'abc'",
            0,
            "the selector must be a boolean expression, not a string",
        ),
        (
            "a AND 5",
            6,
            "an operand of AND must be a boolean expression, not a number",
        ),
        (
            "'x' OR a",
            0,
            "an operand of OR must be a boolean expression, not a string",
        ),
        (
            "NOT 1",
            4,
            "the operand of NOT must be a boolean expression, not a number",
        ),
        (
            "a + 'x' = 1",
            4,
            "an arithmetic operand must be a number, not a string",
        ),
        (
            "TRUE * 2 = a",
            0,
            "an arithmetic operand must be a number, not a boolean",
        ),
        (
            "(a = 1) + 2 = 3",
            0,
            "an arithmetic operand must be a number, not a boolean",
        ),
        (
            "-'x' = a",
            1,
            "the operand of a sign must be a number, not a string",
        ),
        (
            "a < 'x'",
            4,
            "an operand of <, <=, > or >= must be a number, not a string",
        ),
        (
            "TRUE >= a",
            0,
            "an operand of <, <=, > or >= must be a number, not a boolean",
        ),
        ("1 = 'a'", 2, "cannot compare a number with a string"),
        ("TRUE = 1", 5, "cannot compare a boolean with a number"),
        (
            "a BETWEEN 'a' AND 'z'",
            10,
            "the lower bound of BETWEEN must be a number, not a string",
        ),
        (
            "a BETWEEN 1 AND 'z'",
            16,
            "the upper bound of BETWEEN must be a number, not a string",
        ),
        (
            "'a' BETWEEN 1 AND 2",
            0,
            "the operand of BETWEEN must be a number, not a string",
        ),
        (
            "5 LIKE 'x'",
            0,
            "the operand of LIKE must be a string, not a number",
        ),
        (
            "TRUE IN ('x')",
            0,
            "the operand of IN must be a string, not a boolean",
        ),
        (
            "a = 9223372036854775808",
            4,
            "integer literal out of range (the largest is 9223372036854775807)",
        ),
        (
            "a = - 9223372036854775809",
            6,
            "integer literal out of range (the largest is 9223372036854775807)",
        ),
        ("()", 1, "expected an expression, found ')'"),
        ("a = 'x", 4, "unterminated string literal"),
        ("a = ,", 4, "expected an expression, found ','"),
        (
            "(a = 1 b",
            7,
            "expected an operator or ')', found identifier 'b'",
        ),
        (
            "a = NOT b",
            4,
            "expected an expression, found NOT (a reserved word cannot be an identifier)",
        ),
        (
            "a + NOT b = 1",
            4,
            "expected an expression, found NOT (a reserved word cannot be an identifier)",
        ),
        (
            "-NOT a",
            1,
            "expected an expression, found NOT (a reserved word cannot be an identifier)",
        ),
        (
            "a BETWEEN NOT b AND c",
            10,
            "expected an expression, found NOT (a reserved word cannot be an identifier)",
        ),
        (
            "a BETWEEN 1 = 2 AND 3",
            12,
            "expected AND in BETWEEN, found '='",
        ),
        (
            "a BETWEEN (1 AND 2)",
            11,
            "an operand of AND must be a boolean expression, not a number",
        ),
        (
            "(a BETWEEN 1) AND 2",
            12,
            "expected AND in BETWEEN, found ')'",
        ),
        (
            "a BETWEEN 1 AND 2 BETWEEN 3 AND 4",
            18,
            "comparisons cannot be chained; found BETWEEN after a comparison (use parentheses)",
        ),
        (
            "a BETWEEN 1 AND 2 = TRUE",
            18,
            "comparisons cannot be chained; found '=' after a comparison (use parentheses)",
        ),
        (
            "a LIKE 'x' = b",
            11,
            "comparisons cannot be chained; found '=' after a comparison (use parentheses)",
        ),
        (
            "a IN ('x') NOT LIKE 'y'",
            11,
            "comparisons cannot be chained; found NOT after a comparison (use parentheses)",
        ),
        (
            "a NOT IS NULL",
            6,
            "expected BETWEEN, LIKE or IN after NOT, found IS",
        ),
        (
            "a AND 1 + 2",
            6,
            "an operand of AND must be a boolean expression, not a number",
        ),
        (
            "(a AND b) OR 'x'",
            13,
            "an operand of OR must be a boolean expression, not a string",
        ),
        (
            "a BETWEEN 1 AND 2 AND 3",
            22,
            "an operand of AND must be a boolean expression, not a number",
        ),
    ];
    for &(text, pos, message) in cases {
        assert_eq!(err(text), (pos, message.to_string()), "{text}");
    }
}

#[test]
fn length_limit() {
    let ok = format!("a = '{}'", "x".repeat(MAX_SELECTOR_LEN - 6));
    assert_eq!(ok.len(), MAX_SELECTOR_LEN);
    assert!(parse(&ok).is_ok());
    let long = format!("a = '{}'", "x".repeat(MAX_SELECTOR_LEN - 5));
    assert_eq!(
        err(&long),
        (
            0,
            format!("selector is longer than {MAX_SELECTOR_LEN} bytes")
        )
    );
}

#[test]
fn nesting_limits() {
    let deep = |n: usize| format!("{}a = 1{}", "(".repeat(n), ")".repeat(n));
    assert!(parse(&deep(MAX_DEPTH - 2)).is_ok());
    let (_, message) = err(&deep(MAX_DEPTH + 1));
    assert!(message.contains("nested more than"), "{message}");
    // Far beyond the limit: an error, not a stack overflow.
    assert!(parse(&deep(30_000)).is_err());
    assert!(parse(&"(".repeat(60_000)).is_err());
    assert!(parse(&format!("{}a", "NOT ".repeat(10_000))).is_err());
    assert!(parse(&format!("{}a > 0", "- ".repeat(20_000))).is_err());
    assert!(parse(&format!("{}a", "NOT ".repeat(MAX_DEPTH - 1))).is_ok());
    // Left-associative chains are limited by the depth of the tree they build.
    assert!(parse(&format!("a{} > 0", " + a".repeat(MAX_DEPTH - 3))).is_ok());
    assert!(parse(&format!("a{} > 0", " + a".repeat(MAX_DEPTH + 5))).is_err());
    // AND/OR chains are flat, so long ones are fine.
    let ors: Vec<String> = (0..3000).map(|i| format!("a = {i}")).collect();
    assert!(parse(&ors.join(" OR ")).is_ok());
    let ands: Vec<String> = (0..3000).map(|i| format!("a <> {i}")).collect();
    assert!(parse(&ands.join(" AND ")).is_ok());
}
