//! Topic names and topic filters: validation, matching (with the `$` rule) and
//! `$share/GROUP/FILTER` shared subscriptions. Nothing here allocates.

use crate::codec::ReasonCode;

/// Why a topic name or filter is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("empty topic")]
    Empty,
    #[error("topic longer than 65535 bytes")]
    TooLong,
    #[error("U+0000 in topic")]
    Nul,
    #[error("wildcard in a topic name")]
    WildcardInName,
    #[error("'#' not alone as the last level")]
    MisplacedMultiLevel,
    #[error("'+' not alone in its level")]
    MisplacedSingleLevel,
    #[error("invalid shared subscription")]
    InvalidShare,
}

impl TopicError {
    /// The reason code for a bad filter in SUBACK/UNSUBACK (0x8F Topic Filter invalid).
    pub fn filter_reason(self) -> ReasonCode {
        ReasonCode::TopicFilterInvalid
    }

    /// The reason code for a bad topic name in PUBACK/DISCONNECT (0x90 Topic Name invalid).
    pub fn name_reason(self) -> ReasonCode {
        ReasonCode::TopicNameInvalid
    }
}

fn common(s: &str) -> Result<(), TopicError> {
    if s.is_empty() {
        return Err(TopicError::Empty);
    }
    if s.len() > 65_535 {
        return Err(TopicError::TooLong);
    }
    if s.as_bytes().contains(&0) {
        return Err(TopicError::Nul);
    }
    Ok(())
}

/// Checks a topic name (what PUBLISH carries): non-empty, no wildcards, no U+0000.
pub fn validate_name(name: &str) -> Result<(), TopicError> {
    common(name)?;
    if name.contains(['+', '#']) {
        return Err(TopicError::WildcardInName);
    }
    Ok(())
}

/// Checks a topic filter (without a `$share/` prefix): `#` only alone as the last level,
/// `+` only alone in a level.
pub fn validate_filter(filter: &str) -> Result<(), TopicError> {
    common(filter)?;
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return Err(TopicError::MisplacedMultiLevel);
        }
        if level.contains('+') && level != "+" {
            return Err(TopicError::MisplacedSingleLevel);
        }
    }
    Ok(())
}

/// A subscription filter split into its optional share group and the topic filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterSpec<'a> {
    /// `Some(group)` for `$share/group/filter`.
    pub share_group: Option<&'a str>,
    /// The filter messages are matched against.
    pub filter: &'a str,
}

/// Parses and validates a SUBSCRIBE filter, recognising `$share/GROUP/FILTER` (the group
/// is non-empty and holds no `/`, `+` or `#`; the filter is a valid filter).
pub fn parse_filter(s: &str) -> Result<FilterSpec<'_>, TopicError> {
    if let Some(rest) = s.strip_prefix("$share/") {
        let (group, filter) = rest.split_once('/').ok_or(TopicError::InvalidShare)?;
        if group.is_empty() || group.contains(['+', '#']) {
            return Err(TopicError::InvalidShare);
        }
        validate_filter(filter)?;
        return Ok(FilterSpec {
            share_group: Some(group),
            filter,
        });
    }
    if s == "$share" {
        return Err(TopicError::InvalidShare);
    }
    validate_filter(s)?;
    Ok(FilterSpec {
        share_group: None,
        filter: s,
    })
}

/// Whether `filter` (valid, without `$share/`) matches the topic name `topic`. Filters
/// starting with a wildcard do not match topics starting with `$` (`#` does not see
/// `$SYS/...`); `a/#` also matches `a` itself.
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether two valid filters (without `$share/`) can match a common topic name: a server
/// that forbids one filter must refuse every filter that overlaps it (`#` overlaps
/// `secret/#`), or the forbidden messages would arrive through the wider one.
pub fn overlaps(a: &str, b: &str) -> bool {
    let wild = |f: &str| f.starts_with('+') || f.starts_with('#');
    // the `$` rule: a leading wildcard never meets a `$` topic
    if (wild(a) && b.starts_with('$')) || (wild(b) && a.starts_with('$')) {
        return false;
    }
    let mut x = a.split('/');
    let mut y = b.split('/');
    loop {
        match (x.next(), y.next()) {
            (Some("#"), _) | (_, Some("#")) => return true,
            (Some("+"), Some(_)) | (Some(_), Some("+")) => {}
            (Some(p), Some(q)) if p == q => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether a filter contains a wildcard (for servers without wildcard subscriptions).
pub fn has_wildcard(filter: &str) -> bool {
    filter.contains(['+', '#'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_filters() {
        for (a, b) in [
            ("secret/#", "#"),
            ("secret/#", "secret"),
            ("secret/#", "+/x"),
            ("secret/+", "secret/a"),
            ("a/+/c", "a/b/+"),
            ("+", "x"),
            ("$SYS/#", "$SYS/+"),
        ] {
            assert!(overlaps(a, b), "{a} and {b} overlap");
            assert!(overlaps(b, a), "{b} and {a} overlap");
        }
        for (a, b) in [
            ("secret/#", "public/#"),
            ("secret/+", "secret/a/b"),
            ("a/b", "a/c"),
            ("$SYS/#", "#"),
            ("$SYS/x", "+/x"),
            ("a", "a/b"),
        ] {
            assert!(!overlaps(a, b), "{a} and {b} are disjoint");
            assert!(!overlaps(b, a), "{b} and {a} are disjoint");
        }
    }

    #[test]
    fn names() {
        assert!(validate_name("a/b").is_ok());
        assert!(validate_name("/").is_ok());
        assert!(validate_name("$SYS/x").is_ok());
        assert_eq!(validate_name(""), Err(TopicError::Empty));
        assert_eq!(validate_name("a/+"), Err(TopicError::WildcardInName));
        assert_eq!(validate_name("a/#"), Err(TopicError::WildcardInName));
        assert_eq!(validate_name("a\0b"), Err(TopicError::Nul));
        assert_eq!(validate_name(&"x".repeat(65_536)), Err(TopicError::TooLong));
    }

    #[test]
    fn filters() {
        for ok in [
            "#",
            "+",
            "a/#",
            "+/+",
            "/+",
            "a/+/c",
            "sport/tennis/#",
            "+/#",
            "/",
        ] {
            assert!(validate_filter(ok).is_ok(), "{ok}");
        }
        assert_eq!(validate_filter("a#"), Err(TopicError::MisplacedMultiLevel));
        assert_eq!(
            validate_filter("a/#/b"),
            Err(TopicError::MisplacedMultiLevel)
        );
        assert_eq!(
            validate_filter("sport/tennis#"),
            Err(TopicError::MisplacedMultiLevel)
        );
        assert_eq!(validate_filter("a+"), Err(TopicError::MisplacedSingleLevel));
        assert_eq!(
            validate_filter("sport+"),
            Err(TopicError::MisplacedSingleLevel)
        );
        assert_eq!(validate_filter(""), Err(TopicError::Empty));
    }

    #[test]
    fn matching() {
        assert!(matches("sport/#", "sport"));
        assert!(matches("sport/#", "sport/tennis/player1"));
        assert!(matches("sport/tennis/#", "sport/tennis"));
        assert!(matches("sport/+", "sport/"));
        assert!(!matches("sport/+", "sport"));
        assert!(matches("+/+", "/finance"));
        assert!(matches("/+", "/finance"));
        assert!(!matches("+", "/finance"));
        assert!(matches("+", "finance"));
        assert!(matches("#", "a/b/c"));
        assert!(matches("#", "/"));
        assert!(!matches("#", "$SYS/x"));
        assert!(!matches("+/monitor/Clients", "$SYS/monitor/Clients"));
        assert!(matches("$SYS/#", "$SYS/x"));
        assert!(matches("$SYS/monitor/+", "$SYS/monitor/Clients"));
        assert!(matches("a/b", "a/b"));
        assert!(!matches("a/b", "a/b/c"));
        assert!(!matches("a/b/c", "a/b"));
        assert!(!matches("A/b", "a/b"));
        assert!(matches("a/+/c", "a//c"));
        assert!(matches("+/+/+", "a/b/c"));
        assert!(!matches("+/+", "a/b/c"));
    }

    #[test]
    fn shared() {
        let s = parse_filter("$share/g1/sport/#").unwrap();
        assert_eq!(s.share_group, Some("g1"));
        assert_eq!(s.filter, "sport/#");
        assert_eq!(parse_filter("a/+").unwrap().share_group, None);
        assert_eq!(parse_filter("$share/g"), Err(TopicError::InvalidShare));
        assert_eq!(parse_filter("$share//a"), Err(TopicError::InvalidShare));
        assert_eq!(parse_filter("$share/g+/a"), Err(TopicError::InvalidShare));
        assert_eq!(parse_filter("$share/g/"), Err(TopicError::Empty));
        assert_eq!(parse_filter("$share"), Err(TopicError::InvalidShare));
        assert_eq!(
            parse_filter("$share/g/a#"),
            Err(TopicError::MisplacedMultiLevel)
        );
        // "$sharex/..." is an ordinary filter
        assert_eq!(parse_filter("$sharex/a").unwrap().share_group, None);
    }
}
