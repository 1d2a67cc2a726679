//! The stored form of a will (the value of the metadata store's `wills` table), read
//! back at start-up from disk, so it is decoded as untrusted input: every length is
//! checked against the bytes present, unknown versions and flags are refused.
//!
//! ```text
//! u8 version = 1 | u8 flags (1 retain, 2 mqtt) | u32 delay seconds (BE)
//! | u16 length | address (UTF-8) | u16 length | MQTT client id (UTF-8, empty for AMQP)
//! | the will's message (AMQP encoding; opaque here), to the end
//! ```

const VERSION: u8 = 1;
const RETAIN: u8 = 1;
const MQTT: u8 = 2;

/// A stored will, borrowing the bytes it was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WillRecord<'a> {
    /// The topic (MQTT) or address (AMQP) it is published to.
    pub address: &'a str,
    /// An MQTT will (topic semantics, delay, cancelled by the session's return).
    pub mqtt: bool,
    /// Also kept as the topic's retained message.
    pub retain: bool,
    /// MQTT 5 will delay, seconds.
    pub delay: u32,
    /// The MQTT client whose session's return cancels a delayed will (empty for AMQP).
    pub client_id: &'a str,
    /// The message, as the server encoded it.
    pub message: &'a [u8],
}

/// Why stored will bytes could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WillRecordError {
    /// Fewer bytes than its lengths say.
    #[error("stored will is truncated")]
    Truncated,
    /// Written by a node of another format version.
    #[error("stored will has version {0}, this node reads version 1")]
    Version(u8),
    /// Flags this node does not know.
    #[error("stored will has unknown flags {0:#04x}")]
    Flags(u8),
    /// An address or client id that is not UTF-8.
    #[error("stored will has a name that is not UTF-8")]
    Utf8,
    /// (Encoding) an address or client id too long for its 16-bit length.
    #[error("stored will has a name longer than 65,535 bytes")]
    TooLong,
}

impl<'a> WillRecord<'a> {
    /// The stored form; names longer than 65,535 bytes cannot be stored.
    pub fn encode(&self) -> Result<Vec<u8>, WillRecordError> {
        let mut out =
            Vec::with_capacity(10 + self.address.len() + self.client_id.len() + self.message.len());
        out.push(VERSION);
        let mut flags = 0;
        if self.retain {
            flags |= RETAIN;
        }
        if self.mqtt {
            flags |= MQTT;
        }
        out.push(flags);
        out.extend_from_slice(&self.delay.to_be_bytes());
        for s in [self.address, self.client_id] {
            let len = u16::try_from(s.len()).map_err(|_| WillRecordError::TooLong)?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        out.extend_from_slice(self.message);
        Ok(out)
    }

    /// Reads the stored form.
    pub fn decode(bytes: &'a [u8]) -> Result<WillRecord<'a>, WillRecordError> {
        let mut r = Reader(bytes);
        let version = r.u8()?;
        if version != VERSION {
            return Err(WillRecordError::Version(version));
        }
        let flags = r.u8()?;
        if flags & !(RETAIN | MQTT) != 0 {
            return Err(WillRecordError::Flags(flags));
        }
        let d = r.take(4)?;
        let delay = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
        let address = r.string()?;
        let client_id = r.string()?;
        Ok(WillRecord {
            address,
            mqtt: flags & MQTT != 0,
            retain: flags & RETAIN != 0,
            delay,
            client_id,
            message: r.0,
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WillRecordError> {
        if self.0.len() < n {
            return Err(WillRecordError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, WillRecordError> {
        Ok(self.take(1)?[0])
    }

    fn string(&mut self) -> Result<&'a str, WillRecordError> {
        let len = self.take(2)?;
        let len = u16::from_be_bytes([len[0], len[1]]) as usize;
        std::str::from_utf8(self.take(len)?).map_err(|_| WillRecordError::Utf8)
    }
}
