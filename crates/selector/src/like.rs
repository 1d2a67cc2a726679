//! `LIKE` patterns: `_` matches any one character, `%` any sequence (including
//! none); an optional escape character makes the character after it literal.
//!
//! Matching works on Unicode scalar values, is case-sensitive, and runs in
//! O(pattern × text) time without recursion or backtracking blow-up.

/// One element of a compiled pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Elem {
    Char(char),
    /// `_`.
    One,
    /// `%` (runs of `%` are merged into one).
    Many,
}

/// A compiled `LIKE` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LikePattern {
    elems: Vec<Elem>,
}

impl LikePattern {
    /// Compiles `pattern`; `escape` is the `ESCAPE` character, if any.
    ///
    /// The escape character makes whatever follows it literal (`\%`, `\_`, and
    /// the escape character itself when doubled). An escape character at the very
    /// end of the pattern escapes nothing and is an error.
    pub(crate) fn compile(pattern: &str, escape: Option<char>) -> Result<Self, &'static str> {
        let mut elems = Vec::with_capacity(pattern.len());
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            let elem = if Some(c) == escape {
                match chars.next() {
                    Some(escaped) => Elem::Char(escaped),
                    None => return Err("LIKE pattern ends with its escape character"),
                }
            } else {
                match c {
                    '%' => Elem::Many,
                    '_' => Elem::One,
                    c => Elem::Char(c),
                }
            };
            if elem == Elem::Many && elems.last() == Some(&Elem::Many) {
                continue;
            }
            elems.push(elem);
        }
        Ok(LikePattern { elems })
    }

    /// Whether the whole of `text` matches the pattern.
    pub(crate) fn matches(&self, text: &str) -> bool {
        let pat = &self.elems;
        // Fast path for patterns without `%`: a one-to-one walk.
        if !pat.contains(&Elem::Many) {
            let mut chars = text.chars();
            for &e in pat {
                match (e, chars.next()) {
                    (Elem::One, Some(_)) => {}
                    (Elem::Char(p), Some(c)) if p == c => {}
                    _ => return false,
                }
            }
            return chars.next().is_none();
        }
        let text: Vec<char> = text.chars().collect();
        // Greedy matching that, on a mismatch, retries from the most recent `%`
        // with one more character absorbed by it. Earlier `%`s never need to be
        // revisited, so this is linear in the number of retries.
        let (mut p, mut t) = (0, 0);
        let mut retry: Option<(usize, usize)> = None;
        while t < text.len() {
            match pat.get(p) {
                Some(Elem::One) => {
                    p += 1;
                    t += 1;
                    continue;
                }
                Some(Elem::Char(c)) if *c == text[t] => {
                    p += 1;
                    t += 1;
                    continue;
                }
                Some(Elem::Many) => {
                    retry = Some((p + 1, t));
                    p += 1;
                    continue;
                }
                _ => {}
            }
            match retry {
                Some((after_many, absorbed_to)) => {
                    retry = Some((after_many, absorbed_to + 1));
                    p = after_many;
                    t = absorbed_to + 1;
                }
                None => return false,
            }
        }
        pat[p..].iter().all(|e| *e == Elem::Many)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn like(pattern: &str, escape: Option<char>, text: &str) -> bool {
        LikePattern::compile(pattern, escape).unwrap().matches(text)
    }

    #[test]
    fn spec_examples() {
        // JMS 2.0 §3.8.1.2.
        assert!(like("12%3", None, "123"));
        assert!(like("12%3", None, "12993"));
        assert!(!like("12%3", None, "1234"));
        assert!(like("l_se", None, "lose"));
        assert!(!like("l_se", None, "loose"));
        assert!(like("\\_%", Some('\\'), "_foo"));
        assert!(!like("\\_%", Some('\\'), "bar"));
    }

    #[test]
    fn literals_and_wildcards() {
        let cases: &[(&str, &str, bool)] = &[
            ("", "", true),
            ("", "a", false),
            ("%", "", true),
            ("%", "anything", true),
            ("%%", "", true),
            ("_", "", false),
            ("_", "a", true),
            ("_", "ab", false),
            ("__", "ab", true),
            ("abc", "abc", true),
            ("abc", "abcd", false),
            ("abc", "ab", false),
            ("abc", "ABC", false),
            ("a%", "a", true),
            ("a%", "abc", true),
            ("a%", "ba", false),
            ("%a", "ba", true),
            ("%a", "ab", false),
            ("%a%", "xxaxx", true),
            ("%a%", "xxx", false),
            ("a%b%c", "aXXbYYc", true),
            ("a%b%c", "abc", true),
            ("a%b%c", "acb", false),
            ("a%b%c", "abcbc", true),
            ("a%b%c", "abcb", false),
            ("%ab%ab%", "xabyab", true),
            ("%ab%ab%", "xaby", false),
            ("%aab", "aaab", true),
            ("%_a", "ba", true),
            ("%_a", "a", false),
            ("_%_", "a", false),
            ("_%_", "ab", true),
            ("a_c%", "abcdef", true),
            ("ä_ö", "äxö", true),
            ("_", "ü", true),
            ("%\n%", "a\nb", true),
            ("%.*%", "a.*b", true),
            ("[a]", "[a]", true),
            ("[a]", "a", false),
            ("a+", "aa", false),
        ];
        for &(pattern, text, expected) in cases {
            assert_eq!(
                like(pattern, None, text),
                expected,
                "{text:?} LIKE {pattern:?}"
            );
        }
    }

    #[test]
    fn escapes() {
        let cases: &[(&str, char, &str, bool)] = &[
            ("a\\_%", '\\', "a_b", true),
            ("a\\_%", '\\', "a_", true),
            ("a\\_%", '\\', "ab", false),
            ("a\\_%", '\\', "abc", false),
            ("100\\%", '\\', "100%", true),
            ("100\\%", '\\', "1000", false),
            ("\\\\%", '\\', "\\x", true),
            ("\\\\%", '\\', "x", false),
            ("!%!_!!", '!', "%_!", true),
            ("!%!_!!", '!', "a_!", false),
            // Escaping an ordinary character makes it literal.
            ("\\a", '\\', "a", true),
            // The escape character is not special when it is a wildcard itself...
            ("%%", '%', "%", true),
            ("%%", '%', "x", false),
            ("%_", '%', "_", true),
            ("%_", '%', "a", false),
            // ...and `_` can be the escape character too.
            ("__", '_', "_", true),
            ("__", '_', "a", false),
            // Without ESCAPE, backslash is an ordinary character.
        ];
        for &(pattern, esc, text, expected) in cases {
            assert_eq!(
                like(pattern, Some(esc), text),
                expected,
                "{text:?} LIKE {pattern:?} ESCAPE {esc:?}"
            );
        }
        assert!(like("a\\_", None, "a\\b"));
        assert!(!like("a\\_", None, "a_"));
    }

    #[test]
    fn trailing_escape_is_an_error() {
        assert!(LikePattern::compile("abc\\", Some('\\')).is_err());
        assert!(LikePattern::compile("\\", Some('\\')).is_err());
        assert!(LikePattern::compile("abc\\\\", Some('\\')).is_ok());
    }

    #[test]
    fn pathological_patterns_are_fast() {
        let text = "a".repeat(20_000);
        let pattern = format!("{}b", "%a".repeat(50));
        assert!(!like(&pattern, None, &text));
        let pattern = "%a".repeat(50);
        assert!(like(&pattern, None, &text));
    }

    /// Cross-checks the matcher against a simple recursive definition.
    #[test]
    fn agrees_with_reference_matcher() {
        fn reference(p: &[Elem], t: &[char]) -> bool {
            match p.split_first() {
                None => t.is_empty(),
                Some((Elem::Many, rest)) => (0..=t.len()).any(|i| reference(rest, &t[i..])),
                Some((Elem::One, rest)) => !t.is_empty() && reference(rest, &t[1..]),
                Some((Elem::Char(c), rest)) => t.first() == Some(c) && reference(rest, &t[1..]),
            }
        }
        let alphabet = ['a', 'b', '%', '_'];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..3000 {
            let plen = (next() % 7) as usize;
            let tlen = (next() % 8) as usize;
            let pattern: String = (0..plen).map(|_| alphabet[(next() % 4) as usize]).collect();
            let text: String = (0..tlen).map(|_| alphabet[(next() % 2) as usize]).collect();
            let compiled = LikePattern::compile(&pattern, None).unwrap();
            let chars: Vec<char> = text.chars().collect();
            assert_eq!(
                compiled.matches(&text),
                reference(&compiled.elems, &chars),
                "{text:?} LIKE {pattern:?}"
            );
        }
    }
}
