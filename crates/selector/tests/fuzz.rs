//! Fuzz-ish robustness: thousands of pseudo-random inputs from a fixed seed must
//! parse or fail cleanly, and whatever parses must evaluate, without panicking.

use throng_selector::{SelValue, Selector, MAX_SELECTOR_LEN};

/// xorshift64: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

fn lookup(name: &str) -> Option<SelValue> {
    match name {
        "a" => Some(SelValue::Long(5)),
        "b" => Some(SelValue::Double(-2.5)),
        "c" => Some(SelValue::String("abc".into())),
        "d" => Some(SelValue::Bool(true)),
        "e" => Some(SelValue::Long(i64::MIN)),
        "f" => Some(SelValue::Double(f64::NAN)),
        "g" => Some(SelValue::Long(0)),
        _ => None,
    }
}

/// Parses `text`; if it parses, evaluates it against a few lookups.
fn exercise(text: &str) -> bool {
    match Selector::parse(text) {
        Ok(selector) => {
            selector.matches_with(&lookup);
            selector.matches_with(&|_| None);
            selector.matches_with(&|_| Some(SelValue::Long(i64::MAX)));
            selector.matches_with(&|_| Some(SelValue::String("%_\\".into())));
            true
        }
        Err(e) => {
            // Errors point inside the text (or just past its end).
            assert!(
                e.position() <= text.chars().count(),
                "{text:?}: position {} out of range",
                e.position()
            );
            assert!(!e.message().is_empty());
            false
        }
    }
}

#[test]
fn random_characters() {
    let alphabet: Vec<char> =
        "abcdefgxyzAND OR NOT LIKE IN IS NULL BETWEEN ESCAPE TRUE FALSE 0123456789.eExXlLfFdD'''\"()(),,=<>+-*/%_\\!#$ \t\näé€😀"
            .chars()
            .collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20_000 {
        let len = rng.below(40);
        let text: String = (0..len)
            .map(|_| alphabet[rng.below(alphabet.len())])
            .collect();
        exercise(&text);
    }
}

#[test]
fn random_token_sequences() {
    let vocabulary = [
        "a",
        "b",
        "c",
        "d",
        "e",
        "f",
        "g",
        "missing",
        "JMSType",
        "JMSPriority",
        "1",
        "0",
        "-1",
        "2.5",
        "1e3",
        ".5",
        "0x1F",
        "017",
        "9223372036854775807",
        "9223372036854775808",
        "'abc'",
        "'a''b'",
        "'%'",
        "'_'",
        "'\\'",
        "''",
        "TRUE",
        "FALSE",
        "NULL",
        "NOT",
        "AND",
        "OR",
        "BETWEEN",
        "LIKE",
        "IN",
        "IS",
        "ESCAPE",
        "=",
        "<>",
        "<",
        "<=",
        ">",
        ">=",
        "+",
        "-",
        "*",
        "/",
        "(",
        ")",
        ",",
        "'x%' ESCAPE 'x'",
    ];
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut parsed = 0;
    for _ in 0..30_000 {
        let len = 1 + rng.below(12);
        let text: Vec<&str> = (0..len).map(|_| rng.pick(&vocabulary)).collect();
        if exercise(&text.join(" ")) {
            parsed += 1;
        }
    }
    // The generator is not so noisy that nothing ever parses.
    assert!(parsed > 100, "only {parsed} parsed");
}

/// Random well-formed selectors from a small grammar: they must all parse.
#[test]
fn random_valid_selectors() {
    fn number(rng: &mut Rng, depth: usize) -> String {
        match if depth > 3 {
            rng.below(3)
        } else {
            rng.below(7)
        } {
            0 => rng.pick(&["a", "b", "e", "f", "g", "missing"]).to_string(),
            1 => rng
                .pick(&[
                    "0",
                    "1",
                    "-7",
                    "2.5",
                    "1e2",
                    "0x10",
                    "010",
                    "9223372036854775807",
                ])
                .to_string(),
            2 => format!("({})", number(rng, depth + 1)),
            3 => format!("-{}", number(rng, depth + 1)),
            _ => {
                let op = rng.pick(&["+", "-", "*", "/"]);
                format!("{} {op} {}", number(rng, depth + 1), number(rng, depth + 1))
            }
        }
    }
    fn condition(rng: &mut Rng, depth: usize) -> String {
        match if depth > 3 {
            rng.below(6)
        } else {
            rng.below(10)
        } {
            0 => {
                let op = rng.pick(&["=", "<>", "<", "<=", ">", ">="]);
                format!("{} {op} {}", number(rng, depth + 1), number(rng, depth + 1))
            }
            1 => format!(
                "{} {}BETWEEN {} AND {}",
                number(rng, depth + 1),
                rng.pick(&["", "NOT "]),
                number(rng, depth + 1),
                number(rng, depth + 1)
            ),
            2 => format!(
                "{} {}LIKE {}",
                rng.pick(&["c", "missing", "JMSType"]),
                rng.pick(&["", "NOT "]),
                rng.pick(&["'a%'", "'%'", "'_b_'", "'a!%' ESCAPE '!'", "''"])
            ),
            3 => format!(
                "{} {}IN ({})",
                rng.pick(&["c", "missing"]),
                rng.pick(&["", "NOT "]),
                rng.pick(&["'abc'", "'x', 'y'", "'', 'abc', 'z'"])
            ),
            4 => format!(
                "{} IS {}NULL",
                rng.pick(&["a", "c", "missing"]),
                rng.pick(&["", "NOT "])
            ),
            5 => rng
                .pick(&["d", "TRUE", "FALSE", "missing", "c = 'abc'"])
                .to_string(),
            6 => format!("NOT {}", condition(rng, depth + 1)),
            7 => format!("({})", condition(rng, depth + 1)),
            8 => format!(
                "{} AND {}",
                condition(rng, depth + 1),
                condition(rng, depth + 1)
            ),
            _ => format!(
                "{} OR {}",
                condition(rng, depth + 1),
                condition(rng, depth + 1)
            ),
        }
    }
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    for _ in 0..5_000 {
        let text = condition(&mut rng, 0);
        let selector = Selector::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        selector.matches_with(&lookup);
        // Negating a selector never makes both match (UNKNOWN matches neither).
        let negated = Selector::parse(&format!("NOT ({text})")).unwrap();
        assert!(
            !(selector.matches_with(&lookup) && negated.matches_with(&lookup)),
            "{text}"
        );
    }
}

#[test]
fn every_prefix_of_valid_selectors() {
    let selectors = [
        "JMSType = 'car' AND color = 'blue' AND weight > 2500",
        "phone LIKE '12%3' ESCAPE '\\' OR phone NOT LIKE 'x_'",
        "age NOT BETWEEN -15.5e1 AND 0x1F * (2 + 3) / 4",
        "Country NOT IN (' UK', 'US', 'it''s') AND x IS NOT NULL",
        "NOT (a = 1 OR b <> 2) AND NOT c >= 3",
    ];
    for selector in selectors {
        let chars: Vec<char> = selector.chars().collect();
        for end in 0..=chars.len() {
            let prefix: String = chars[..end].iter().collect();
            exercise(&prefix);
            let suffix: String = chars[end..].iter().collect();
            exercise(&suffix);
        }
    }
}

#[test]
fn hostile_inputs() {
    let inputs = [
        "(".repeat(100_000),
        "(".repeat(50_000) + &")".repeat(50_000),
        "NOT ".repeat(20_000) + "a",
        "- ".repeat(30_000) + "1 = 1",
        "-".repeat(60_000) + "a = 1",
        format!("a{} = 1", " + a".repeat(15_000)),
        format!("a = 1{}", " OR a = 1".repeat(6_000)),
        format!("a IN ({})", vec!["'x'"; 15_000].join(",")),
        format!("c LIKE '{}'", "%_".repeat(30_000)),
        "'".repeat(MAX_SELECTOR_LEN),
        "a".repeat(MAX_SELECTOR_LEN + 1),
        "9".repeat(10_000),
        format!("a = 1.{}", "0".repeat(10_000)),
        "\u{0}".to_string(),
        "a = '\u{0}'".to_string(),
    ];
    for input in &inputs {
        exercise(input);
    }
}

#[test]
fn hostile_like_patterns_evaluate_quickly() {
    let selector = Selector::parse(&format!("c LIKE '{}b'", "%a".repeat(300))).unwrap();
    let text = "a".repeat(10_000);
    let value = SelValue::String(text);
    assert!(!selector.matches_with(&|_| Some(value.clone())));
}

/// The deepest selectors accepted (and the deepest rejected only by a type check
/// once parsed) parse and evaluate within a small thread stack. The parser does
/// not recurse; evaluation recurses once per tree level, which MAX_DEPTH bounds.
/// (Measured: under 192 KiB unoptimized, under 32 KiB optimized.)
#[test]
fn deepest_selectors_fit_in_a_modest_stack() {
    use throng_selector::MAX_DEPTH;
    let n = MAX_DEPTH - 1;
    let nest = |open: &str, inner: &str| format!("{}{inner}{}", open.repeat(n), ")".repeat(n));
    let inputs = [
        nest("(", "a = 1"),
        nest("a = (", "TRUE"),
        nest("a BETWEEN 0 AND (", "1"),
        nest("x OR y AND (", "z"),
        nest("(NOT ", "d"),
        nest("-(", "a") + " > 0",
        format!("{}d", "NOT ".repeat(n)),
        format!("{}a > 0", "- ".repeat(n - 1)),
        format!("a{} > 0", " + a".repeat(MAX_DEPTH - 3)),
    ];
    let stack = if cfg!(debug_assertions) { 256 } else { 64 } * 1024;
    let handle = std::thread::Builder::new()
        .stack_size(stack)
        .spawn(move || {
            for text in inputs {
                exercise(&text);
            }
        })
        .unwrap();
    handle.join().unwrap();
}
