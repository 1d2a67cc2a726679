//! The error a selector that does not parse produces.

/// Why a selector was rejected, and where.
///
/// The `Display` form ("unexpected ')' (at column 7)") is meant for the
/// `description` of the `amqp:invalid-field` error a server answers an attach with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at column {})", .position + 1)]
pub struct SelectorError {
    position: usize,
    message: String,
}

impl SelectorError {
    /// An error at `position` (0-based, in characters) with `message`.
    pub(crate) fn new(position: usize, message: impl Into<String>) -> Self {
        SelectorError {
            position,
            message: message.into(),
        }
    }

    /// Where the problem is: a 0-based offset in characters (not bytes) into the
    /// selector text. The `Display` form shows it 1-based, as a column.
    pub fn position(&self) -> usize {
        self.position
    }

    /// What the problem is, without the position.
    pub fn message(&self) -> &str {
        &self.message
    }
}
