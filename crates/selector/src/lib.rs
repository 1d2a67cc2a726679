//! JMS message selectors, as JMS clients such as Qpid JMS send them in the AMQP
//! source filter `apache.org:selector-filter:string`, evaluated against AMQP
//! messages.
//!
//! ```
//! use throng_selector::{SelValue, Selector};
//!
//! let selector = Selector::parse("color = 'blue' AND weight > 2500").unwrap();
//! let lookup = |name: &str| match name {
//!     "color" => Some(SelValue::from("blue")),
//!     "weight" => Some(SelValue::Long(3000)),
//!     _ => None,
//! };
//! assert!(selector.matches_with(&lookup));
//!
//! let err = Selector::parse("color = 'blue' AND").unwrap_err();
//! assert_eq!(err.to_string(), "expected an expression, found end of selector (at column 19)");
//! ```
//!
//! # Language
//!
//! The selector language of JMS 2.0 §3.8.1: a conditional expression over the
//! message's header fields and properties with the syntax of SQL-92 conditional
//! expressions.
//!
//! * Literals: strings in single quotes (`'it''s'`); exact numbers (`42`, `42L`,
//!   hexadecimal `0x2A` and octal `052`, as ActiveMQ Artemis accepts); approximate
//!   numbers (`1.5`, `.5`, `5.`, `1e3`, `2.5E-3`, with an optional Java `f`/`d`
//!   suffix); `TRUE`, `FALSE` and `NULL`.
//! * Identifiers: Java identifiers (case-sensitive) that are not one of the
//!   reserved words `NULL TRUE FALSE NOT AND OR BETWEEN LIKE IN IS ESCAPE`
//!   (case-insensitive).
//! * Operators, loosest binding first: `OR`; `AND`; `NOT`; comparisons
//!   `= <> < <= > >=`, `[NOT] BETWEEN a AND b`, `[NOT] LIKE 'pattern' [ESCAPE 'c']`,
//!   `[NOT] IN ('a', 'b', ...)` and `IS [NOT] NULL`; `+ -`; `* /`; unary `+ -`.
//!   Parentheses group. Comparisons do not chain.
//! * Type errors that do not depend on the message are parse errors: the selector
//!   and the operands of `AND`/`OR`/`NOT` must be conditions (`x AND 5` is
//!   rejected), arithmetic, ordering and `BETWEEN` operands numbers (`'a' + 1`,
//!   `'a' < 'b'`), `LIKE`/`IN` operands strings; literals of different types
//!   cannot be compared (`1 = 'a'`), nor can the `NULL` literal (`x = NULL`: use
//!   `x IS NULL`). `LIKE` patterns, `ESCAPE` characters (exactly one) and `IN` list
//!   items must be string literals.
//! * An empty (or all-whitespace) selector is no selector: it matches every
//!   message (JMS: "an empty string ... indicates that there is no message
//!   selector").
//!
//! Evaluation uses three-valued logic; see [`Selector::matches_with`] for the
//! rules. A selector matches only when it evaluates to TRUE.
//!
//! # Identifiers on an AMQP message
//!
//! [`Selector::matches`] resolves identifiers against the message's header,
//! properties, message-annotations and application-properties. The JMS header
//! names follow the AMQP JMS Mapping as Qpid JMS implements it, so a selector
//! sees the values a Qpid JMS consumer would read from the message:
//!
//! | Identifier | Value |
//! |---|---|
//! | `JMSDeliveryMode` | `'PERSISTENT'` if the header's `durable` is true, else `'NON_PERSISTENT'` |
//! | `JMSPriority` | header `priority`, default 4; AMQP priorities above 9 read as 9 |
//! | `JMSMessageID` | properties `message-id` as a JMS ID string (below); NULL if absent |
//! | `JMSCorrelationID` | properties `correlation-id` as a JMS ID string (below); NULL if absent |
//! | `JMSTimestamp` | properties `creation-time` in ms since the epoch, 0 if absent |
//! | `JMSExpiration` | properties `absolute-expiry-time` in ms, 0 if absent (a header `ttl` alone does not set it) |
//! | `JMSType` | message-annotation `x-opt-jms-type` if it is a string/symbol, else properties `subject`; NULL if neither |
//! | `JMSRedelivered` | header `delivery-count` > 0 |
//! | `JMSXDeliveryCount` | header `delivery-count` + 1 |
//! | `JMSXGroupID` | properties `group-id` |
//! | `JMSXGroupSeq` | properties `group-sequence` |
//! | `JMSXUserID` | properties `user-id` as UTF-8 text |
//! | anything else | application-properties entry of that name |
//!
//! When a name in the table has no value (e.g. `JMSType` on a message with neither
//! annotation nor subject), the application-properties entry of the same name,
//! if any, is used.
//!
//! JMS ID strings: a string `message-id` starting with `ID:` is used as is (but one
//! starting with `ID:AMQP_ULONG:`, `ID:AMQP_UUID:`, `ID:AMQP_BINARY:`,
//! `ID:AMQP_STRING:` or `ID:AMQP_NO_PREFIX:` is escaped as `ID:AMQP_STRING:<id>`);
//! any other string becomes `ID:AMQP_NO_PREFIX:<id>`. A ulong becomes
//! `ID:AMQP_ULONG:<decimal>`, a uuid `ID:AMQP_UUID:<8-4-4-4-12 lowercase hex>` and
//! a binary `ID:AMQP_BINARY:<uppercase hex>`. A correlation-id converts the same
//! way except that a string without `ID:` passes through unchanged. (These are
//! Qpid JMS's `AmqpMessageIdHelper` rules, which Artemis's AMQP-to-JMS converter
//! shares. Artemis's own filter on a native AMQP message instead compares
//! `"ID:" + id` for JMSMessageID, so `JMSMessageID = 'ID:abc'` matches a
//! message-id of `abc` there but `'ID:AMQP_NO_PREFIX:abc'` here — the value a
//! Qpid JMS consumer actually gets from `getJMSMessageID()`.)
//!
//! Application-property values map to strings (string and symbol), booleans,
//! longs (every signed and unsigned integer width; an unsigned long above
//! `i64::MAX` becomes a double) and doubles (float and double). Any other type
//! (timestamp, uuid, binary, char, decimal, list, map, ...) is NULL, as is a
//! missing property. Artemis-specific names (`AMQPriority`, `AMQDurable`, ...) are
//! not recognised and read as application properties.
//!
//! # Limits
//!
//! Selectors longer than [`MAX_SELECTOR_LEN`] bytes or nested deeper than
//! [`MAX_DEPTH`] are rejected. The parser does not recurse (it keeps explicit
//! operand and operator stacks) and evaluation recurses once per level of the
//! expression tree, so no selector can exhaust the stack: the deepest accepted
//! selectors need well under 256 KiB of stack unoptimized and 32 KiB optimized.
//! Parsing and evaluation never panic.

#![warn(missing_docs)]

mod ast;
mod error;
mod eval;
mod lexer;
mod like;
mod message;
mod parser;

use std::fmt;
use std::str::FromStr;

pub use error::SelectorError;
use throng_amqp::message::Message;

/// The longest selector accepted, in bytes of UTF-8.
pub const MAX_SELECTOR_LEN: usize = 64 * 1024;

/// The deepest nesting accepted: of open parentheses, `NOT`s and signs, and of
/// the expression tree (a chain `a + b + c ...` is a tree as deep as it is long;
/// chains of `AND` or `OR` are flat and not limited).
pub const MAX_DEPTH: usize = 100;

/// A value an identifier can have. NULL (an absent identifier) is `None` from the
/// lookup.
///
/// JMS's integral property types all read as `Long`, and `float` as `Double`.
#[derive(Debug, Clone, PartialEq)]
pub enum SelValue {
    /// A string.
    String(String),
    /// An exact number.
    Long(i64),
    /// An approximate number.
    Double(f64),
    /// A boolean.
    Bool(bool),
}

impl From<&str> for SelValue {
    fn from(s: &str) -> Self {
        SelValue::String(s.to_string())
    }
}

impl From<String> for SelValue {
    fn from(s: String) -> Self {
        SelValue::String(s)
    }
}

impl From<i64> for SelValue {
    fn from(v: i64) -> Self {
        SelValue::Long(v)
    }
}

impl From<f64> for SelValue {
    fn from(v: f64) -> Self {
        SelValue::Double(v)
    }
}

impl From<bool> for SelValue {
    fn from(v: bool) -> Self {
        SelValue::Bool(v)
    }
}

/// A parsed JMS message selector.
#[derive(Debug, Clone)]
pub struct Selector {
    text: String,
    /// `None` for the empty selector, which matches everything.
    expr: Option<ast::Expr>,
}

impl Selector {
    /// Parses a JMS selector; errors carry the position and a message (the server
    /// answers an attach with a bad selector with amqp:invalid-field and this text).
    ///
    /// An empty or all-whitespace selector parses to one that matches every
    /// message ([`Selector::is_empty`]).
    pub fn parse(text: &str) -> Result<Selector, SelectorError> {
        let expr = parser::parse(text)?;
        Ok(Selector {
            text: text.to_string(),
            expr,
        })
    }

    /// Evaluates against a message; a selector is true only if the expression
    /// evaluates to TRUE (UNKNOWN/NULL -> false), per JMS.
    ///
    /// Identifiers resolve as the [crate documentation](crate) describes; the
    /// message's sections are decoded only as far as the selector needs them.
    pub fn matches(&self, msg: &Message) -> bool {
        if self.expr.is_none() {
            return true;
        }
        let fields = message::MessageFields::new(msg);
        self.matches_with(&|name: &str| fields.lookup(name))
    }

    /// Same against any source of identifiers (for tests and for MQTT later).
    ///
    /// `lookup` returns an identifier's value, or `None` for NULL. It may be called
    /// more than once for the same name. The rules:
    ///
    /// * Three-valued logic per JMS 2.0 §3.8.1.2: any comparison, arithmetic,
    ///   BETWEEN, LIKE or IN involving NULL is UNKNOWN (NULL); `FALSE AND x` is
    ///   FALSE and `TRUE OR x` is TRUE even if `x` is UNKNOWN; `NOT UNKNOWN` is
    ///   UNKNOWN; `IS [NOT] NULL` tests for NULL (an UNKNOWN condition is NULL).
    /// * A long meeting a double is promoted to double. Long arithmetic wraps on
    ///   overflow (as Java's does). Division by zero is NULL.
    /// * A comparison of unlike types (e.g. a string with a number) is FALSE, as
    ///   the specification says, for every operator including `<>`; strings and
    ///   booleans are only equal or unequal, so ordering them is FALSE too. `LIKE`
    ///   and `IN` on a non-string are FALSE (so their `NOT` forms are TRUE).
    /// * `x NOT BETWEEN a AND b` is `x < a OR x > b`.
    /// * An identifier used directly as a condition must be a boolean; any other
    ///   value makes the condition UNKNOWN.
    pub fn matches_with(&self, lookup: &dyn Fn(&str) -> Option<SelValue>) -> bool {
        match &self.expr {
            None => true,
            Some(expr) => eval::evaluate(expr, lookup) == eval::Tri::True,
        }
    }

    /// The selector text, exactly as given to [`Selector::parse`].
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether this is the empty selector, which matches every message.
    pub fn is_empty(&self) -> bool {
        self.expr.is_none()
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Selector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Selector::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_is_send_and_sync() {
        fn check<T: Send + Sync + 'static>() {}
        check::<Selector>();
        check::<SelectorError>();
    }

    #[test]
    fn empty_selector_matches_everything() {
        let s = Selector::parse("  ").unwrap();
        assert!(s.is_empty());
        assert!(s.matches_with(&|_| None));
        assert_eq!(s.as_str(), "  ");
    }

    #[test]
    fn display_and_from_str() {
        let s: Selector = "a = 1".parse().unwrap();
        assert_eq!(s.to_string(), "a = 1");
        assert!(!s.is_empty());
        assert!("a =".parse::<Selector>().is_err());
    }

    #[test]
    fn error_display_is_one_based() {
        let e = Selector::parse("a = = 1").unwrap_err();
        assert_eq!(e.position(), 4);
        assert_eq!(e.message(), "expected an expression, found '='");
        assert_eq!(
            e.to_string(),
            "expected an expression, found '=' (at column 5)"
        );
    }
}
