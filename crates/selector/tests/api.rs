//! The public API against a plain identifier lookup (`matches_with`).

use throng_selector::{SelValue, Selector, SelectorError};

fn matches(selector: &str, props: &[(&str, SelValue)]) -> bool {
    let lookup = |name: &str| {
        props
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    };
    Selector::parse(selector)
        .unwrap_or_else(|e| panic!("{selector}: {e}"))
        .matches_with(&lookup)
}

#[test]
fn jms_spec_examples() {
    let car = [
        ("JMSType", SelValue::from("car")),
        ("color", SelValue::from("blue")),
        ("weight", SelValue::Long(2501)),
    ];
    let selector = "JMSType = 'car' AND color = 'blue' AND weight > 2500";
    assert!(matches(selector, &car));
    assert!(!matches(selector, &car[..2]));
    assert!(!matches(
        selector,
        &[
            ("JMSType", "car".into()),
            ("color", "blue".into()),
            ("weight", 2500i64.into())
        ]
    ));

    // "phone LIKE '12%3' is true for '123' or '12993' and false for '1234'"
    for (phone, expected) in [("123", true), ("12993", true), ("1234", false)] {
        assert_eq!(
            matches("phone LIKE '12%3'", &[("phone", phone.into())]),
            expected
        );
        assert_eq!(
            matches("phone NOT LIKE '12%3'", &[("phone", phone.into())]),
            !expected
        );
    }
    // "word LIKE 'l_se' is true for 'lose' and false for 'loose'"
    assert!(matches("word LIKE 'l_se'", &[("word", "lose".into())]));
    assert!(!matches("word LIKE 'l_se'", &[("word", "loose".into())]));
    // "underscored LIKE '\_%' ESCAPE '\' is true for '_foo' and false for 'bar'"
    let s = "underscored LIKE '\\_%' ESCAPE '\\'";
    assert!(matches(s, &[("underscored", "_foo".into())]));
    assert!(!matches(s, &[("underscored", "bar".into())]));
    // "age BETWEEN 15 AND 19 is equivalent to age >= 15 AND age <= 19"
    for age in 10..25i64 {
        let props = [("age", SelValue::Long(age))];
        let expected = (15..=19).contains(&age);
        assert_eq!(matches("age BETWEEN 15 AND 19", &props), expected, "{age}");
        assert_eq!(
            matches("age >= 15 AND age <= 19", &props),
            expected,
            "{age}"
        );
        assert_eq!(
            matches("age NOT BETWEEN 15 AND 19", &props),
            !expected,
            "{age}"
        );
        assert_eq!(matches("age < 15 OR age > 19", &props), !expected, "{age}");
    }
    // "Country IN (' UK', 'US', 'France') is true for 'UK' and false for 'Peru'"
    // (sic: the spec's list has ' UK' with a leading space, so 'UK' itself is
    // not in it; 'US' and 'France' are).
    let s = "Country IN (' UK', 'US', 'France')";
    assert!(matches(s, &[("Country", " UK".into())]));
    assert!(matches(s, &[("Country", "France".into())]));
    assert!(!matches(s, &[("Country", "UK".into())]));
    assert!(!matches(s, &[("Country", "Peru".into())]));
    let s = "Country NOT IN (' UK', 'US', 'France')";
    assert!(matches(s, &[("Country", "Peru".into())]));
    assert!(!matches(s, &[("Country", "US".into())]));
    // "If identifier of an IN or NOT IN operation is NULL, the value is unknown."
    assert!(!matches("Country IN ('US')", &[]));
    assert!(!matches("Country NOT IN ('US')", &[]));
    // "prop_name IS NULL", "prop_name IS NOT NULL"
    assert!(matches("prop_name IS NULL", &[]));
    assert!(!matches("prop_name IS NOT NULL", &[]));
    assert!(matches(
        "prop_name IS NOT NULL",
        &[("prop_name", 0i64.into())]
    ));
}

#[test]
fn unknown_never_matches() {
    for selector in [
        "x = 1",
        "x <> 1",
        "NOT (x = 1)",
        "x > 1 OR x <= 1",
        "x + 1 = 2",
        "x LIKE '%'",
        "x NOT LIKE '%'",
        "x BETWEEN 0 AND 1",
        "x NOT BETWEEN 0 AND 1",
        "x",
        "NOT x",
    ] {
        assert!(!matches(selector, &[]), "{selector}");
    }
}

#[test]
fn errors_carry_position_and_message() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "color = 'blue' AND",
            18,
            "expected an expression, found end of selector",
        ),
        ("color == 'blue'", 7, "expected an expression, found '='"),
        ("color = 'blue", 8, "unterminated string literal"),
        (
            "weight > 2500 AND (color = 'red'",
            32,
            "expected ')', found end of selector",
        ),
        (
            "x LIKE 'a' ESCAPE 'ab'",
            18,
            "the ESCAPE string must be exactly one character",
        ),
        (
            "x = NULL",
            4,
            "comparison with NULL is always unknown; use IS NULL or IS NOT NULL",
        ),
        ("größe = 1 AND ? ", 14, "unexpected character '?'"),
    ];
    for &(text, position, message) in cases {
        let e: SelectorError = Selector::parse(text).unwrap_err();
        assert_eq!((e.position(), e.message()), (position, message), "{text}");
        assert_eq!(
            e.to_string(),
            format!("{message} (at column {})", position + 1)
        );
    }
}

#[test]
fn selectors_are_reusable_and_shareable() {
    let selector = std::sync::Arc::new(Selector::parse("n > 10").unwrap());
    let handles: Vec<_> = (0..4i64)
        .map(|t| {
            let selector = selector.clone();
            std::thread::spawn(move || {
                (0..100i64)
                    .filter(|n| selector.matches_with(&|_| Some(SelValue::Long(n + t))))
                    .count()
            })
        })
        .collect();
    let counts: Vec<usize> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(counts, vec![89, 90, 91, 92]);
}
