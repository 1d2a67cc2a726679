//! `ByteStr`: an MQTT UTF-8 string kept as a slice of the received buffer.

use bytes::Bytes;
use std::fmt;
use std::ops::Deref;

/// A UTF-8 string (as MQTT defines it: valid UTF-8, no U+0000) that shares the buffer it
/// was decoded from, so topics and property strings are never copied on the data path.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ByteStr(Bytes);

impl ByteStr {
    /// An empty string.
    pub const fn new() -> Self {
        ByteStr(Bytes::new())
    }

    /// A string from a static literal (no allocation).
    pub const fn from_static(s: &'static str) -> Self {
        ByteStr(Bytes::from_static(s.as_bytes()))
    }

    /// Validates `b` as an MQTT UTF-8 string: valid UTF-8 without U+0000.
    pub fn try_from_bytes(b: Bytes) -> Result<Self, Bytes> {
        match std::str::from_utf8(&b) {
            Ok(s) if !s.as_bytes().contains(&0) => Ok(ByteStr(b)),
            _ => Err(b),
        }
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor checks that the bytes are valid UTF-8 (`try_from_bytes`)
        // or takes them from a `str`, and the bytes are immutable afterwards.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    /// The underlying shared bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// The underlying shared bytes, by value.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

impl Deref for ByteStr {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for ByteStr {
    fn from(s: &str) -> Self {
        ByteStr(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for ByteStr {
    fn from(s: String) -> Self {
        ByteStr(Bytes::from(s))
    }
}

impl PartialEq<str> for ByteStr {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ByteStr {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for ByteStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for ByteStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
