//! Records: what the journal stores, and their binary encoding.
//!
//! Every record is framed as `[u32 length][u32 crc32c(body)][body]` and its body is
//! `[u8 type][u16 queue length][queue UTF-8]` followed by the type's fields; every
//! integer is little-endian. The body's length is fully determined by its fields, so a
//! reader can check a frame's length against its contents before trusting it (see
//! [`expected_body_len`]), and the decoder is strict: a body must be exactly as long as
//! its fields say.
//!
//! | type | record          | fields after the queue name           |
//! |------|-----------------|---------------------------------------|
//! | 1    | `Enqueue`       | `[u64 seq][u32 message length][message]` |
//! | 2    | `Ack`           | `[u64 seq]`                           |
//! | 3    | `DeliveryCount` | `[u64 seq][u32 count]`                |
//! | 4    | `DropQueue`     | (none)                                |

use std::io;

use bytes::Bytes;

use crate::crc::Crc32c;

/// Bytes in front of every record body: `[u32 length][u32 crc32c]`.
pub const RECORD_HEADER_LEN: usize = 8;

/// The longest queue name a record can carry (its length is a `u16`).
pub const MAX_QUEUE_NAME_LEN: usize = u16::MAX as usize;

/// The longest record body (its length is a `u32`).
pub const MAX_BODY_LEN: usize = u32::MAX as usize;

const ENQUEUE: u8 = 1;
const ACK: u8 = 2;
const DELIVERY_COUNT: u8 = 3;
const DROP_QUEUE: u8 = 4;

/// `[u8 type][u16 queue length]`.
const PREFIX_LEN: usize = 3;

/// A record as stored. `queue` names a durable queue (tenant/address form chosen by the
/// caller, opaque here).
///
/// The journal is a log of these events rather than of queue snapshots, so a producer's
/// message is durable after one small sequential write; replay folds them back into
/// the live state.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A message stored in a queue: `seq` is the queue's sequence number, `message` the
    /// AMQP bytes exactly as received. Enqueueing a (queue, seq) that is still live is
    /// a duplicate and is ignored (the first is kept); after an ack or a drop the pair
    /// may be used again.
    Enqueue {
        /// The queue the message is in.
        queue: String,
        /// The message's sequence number in its queue.
        seq: u64,
        /// The message as received, never re-encoded.
        message: Bytes,
    },
    /// The message (queue, seq) is settled and gone.
    Ack {
        /// The queue the message was in.
        queue: String,
        /// The settled message's sequence number.
        seq: u64,
    },
    /// The message was redelivered: its delivery count is now `count` (so recovery
    /// restores it).
    DeliveryCount {
        /// The queue the message is in.
        queue: String,
        /// The message's sequence number.
        seq: u64,
        /// The message's delivery count from now on.
        count: u32,
    },
    /// The queue was deleted: forget all its messages.
    DropQueue {
        /// The deleted queue.
        queue: String,
    },
}

impl Record {
    /// The queue the record is about.
    pub fn queue(&self) -> &str {
        match self {
            Record::Enqueue { queue, .. }
            | Record::Ack { queue, .. }
            | Record::DeliveryCount { queue, .. }
            | Record::DropQueue { queue } => queue,
        }
    }

    /// Bytes the record takes in a segment, header included: lets callers (and tests)
    /// account for journal space without encoding.
    pub fn encoded_len(&self) -> usize {
        self.as_ref().encoded_len()
    }

    /// The record framed as it is written to a segment.
    pub fn encode(&self) -> Vec<u8> {
        let r = self.as_ref();
        let mut out = Vec::with_capacity(r.encoded_len());
        r.write_to(r.crc(), &mut out);
        out
    }

    /// A borrowed view, the form encoding and decoding work on.
    pub(crate) fn as_ref(&self) -> RecordRef<'_> {
        match self {
            Record::Enqueue {
                queue,
                seq,
                message,
            } => RecordRef::Enqueue {
                queue,
                seq: *seq,
                message,
            },
            Record::Ack { queue, seq } => RecordRef::Ack { queue, seq: *seq },
            Record::DeliveryCount { queue, seq, count } => RecordRef::DeliveryCount {
                queue,
                seq: *seq,
                count: *count,
            },
            Record::DropQueue { queue } => RecordRef::DropQueue { queue },
        }
    }
}

/// A record borrowed from a caller's [`Record`] (to encode) or from segment bytes (as
/// decoded), so replay looks queues up by `&str` and copies only live messages.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum RecordRef<'a> {
    Enqueue {
        queue: &'a str,
        seq: u64,
        message: &'a [u8],
    },
    Ack {
        queue: &'a str,
        seq: u64,
    },
    DeliveryCount {
        queue: &'a str,
        seq: u64,
        count: u32,
    },
    DropQueue {
        queue: &'a str,
    },
}

/// A record body as four slices (prefix, queue name, fixed fields, message), so the
/// checksum and the copy into the write buffer need no intermediate buffer.
struct Parts<'a> {
    prefix: [u8; PREFIX_LEN],
    queue: &'a [u8],
    fixed: [u8; 12],
    fixed_len: usize,
    message: &'a [u8],
}

impl Parts<'_> {
    fn slices(&self) -> [&[u8]; 4] {
        [
            &self.prefix,
            self.queue,
            &self.fixed[..self.fixed_len],
            self.message,
        ]
    }
}

impl<'a> RecordRef<'a> {
    pub(crate) fn queue(&self) -> &'a str {
        match *self {
            RecordRef::Enqueue { queue, .. }
            | RecordRef::Ack { queue, .. }
            | RecordRef::DeliveryCount { queue, .. }
            | RecordRef::DropQueue { queue } => queue,
        }
    }

    fn parts(&self) -> Parts<'a> {
        let queue = self.queue();
        let qlen = u16::try_from(queue.len()).unwrap_or(u16::MAX).to_le_bytes();
        let mut fixed = [0u8; 12];
        let (ty, fixed_len, message): (u8, usize, &[u8]) = match *self {
            RecordRef::Enqueue { seq, message, .. } => {
                fixed[..8].copy_from_slice(&seq.to_le_bytes());
                let mlen = u32::try_from(message.len()).unwrap_or(u32::MAX);
                fixed[8..12].copy_from_slice(&mlen.to_le_bytes());
                (ENQUEUE, 12, message)
            }
            RecordRef::Ack { seq, .. } => {
                fixed[..8].copy_from_slice(&seq.to_le_bytes());
                (ACK, 8, &[])
            }
            RecordRef::DeliveryCount { seq, count, .. } => {
                fixed[..8].copy_from_slice(&seq.to_le_bytes());
                fixed[8..12].copy_from_slice(&count.to_le_bytes());
                (DELIVERY_COUNT, 12, &[])
            }
            RecordRef::DropQueue { .. } => (DROP_QUEUE, 0, &[]),
        };
        Parts {
            prefix: [ty, qlen[0], qlen[1]],
            queue: queue.as_bytes(),
            fixed,
            fixed_len,
            message,
        }
    }

    /// Length of the body (without the 8-byte frame header).
    pub(crate) fn body_len(&self) -> usize {
        let fixed = match self {
            RecordRef::Enqueue { message, .. } => 12 + message.len(),
            RecordRef::Ack { .. } => 8,
            RecordRef::DeliveryCount { .. } => 12,
            RecordRef::DropQueue { .. } => 0,
        };
        PREFIX_LEN + self.queue().len() + fixed
    }

    pub(crate) fn encoded_len(&self) -> usize {
        RECORD_HEADER_LEN + self.body_len()
    }

    /// Refuses what the format cannot represent, before anything is queued.
    pub(crate) fn validate(&self) -> io::Result<()> {
        if self.queue().len() > MAX_QUEUE_NAME_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "queue name of {} bytes exceeds the journal's limit of {MAX_QUEUE_NAME_LEN}",
                    self.queue().len()
                ),
            ));
        }
        if self.body_len() > MAX_BODY_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "record of {} bytes exceeds the journal's limit of {MAX_BODY_LEN}",
                    self.body_len()
                ),
            ));
        }
        Ok(())
    }

    /// The CRC-32C of the body.
    pub(crate) fn crc(&self) -> u32 {
        let mut c = Crc32c::new();
        for s in self.parts().slices() {
            c.update(s);
        }
        c.finish()
    }

    /// Appends the framed record; `crc` is [`RecordRef::crc`], computed beforehand so
    /// callers can do it outside a lock. Only call after [`RecordRef::validate`].
    pub(crate) fn write_to(&self, crc: u32, out: &mut Vec<u8>) {
        let len = u32::try_from(self.body_len()).unwrap_or(u32::MAX);
        out.reserve(self.encoded_len());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&crc.to_le_bytes());
        for s in self.parts().slices() {
            out.extend_from_slice(s);
        }
    }

    /// Decodes a body whose checksum has been verified. `None` when the body is not a
    /// well-formed record: unknown type, lengths that disagree, a name that is not UTF-8.
    pub(crate) fn decode(body: &'a [u8]) -> Option<RecordRef<'a>> {
        if expected_body_len(body)? != body.len() {
            return None;
        }
        let ty = body[0];
        let qlen = usize::from(u16::from_le_bytes([body[1], body[2]]));
        let queue = std::str::from_utf8(body.get(PREFIX_LEN..PREFIX_LEN + qlen)?).ok()?;
        let rest = &body[PREFIX_LEN + qlen..];
        let seq = || Some(u64::from_le_bytes(rest.get(..8)?.try_into().ok()?));
        let u32_at = |at: usize| Some(u32::from_le_bytes(rest.get(at..at + 4)?.try_into().ok()?));
        Some(match ty {
            ENQUEUE => RecordRef::Enqueue {
                queue,
                seq: seq()?,
                message: rest.get(12..)?,
            },
            ACK => RecordRef::Ack { queue, seq: seq()? },
            DELIVERY_COUNT => RecordRef::DeliveryCount {
                queue,
                seq: seq()?,
                count: u32_at(8)?,
            },
            DROP_QUEUE => RecordRef::DropQueue { queue },
            _ => return None,
        })
    }

    /// An owned copy (the message bytes are copied, so the segment buffer they came
    /// from can be freed).
    #[cfg(test)]
    pub(crate) fn to_record(self) -> Record {
        match self {
            RecordRef::Enqueue {
                queue,
                seq,
                message,
            } => Record::Enqueue {
                queue: queue.to_owned(),
                seq,
                message: Bytes::copy_from_slice(message),
            },
            RecordRef::Ack { queue, seq } => Record::Ack {
                queue: queue.to_owned(),
                seq,
            },
            RecordRef::DeliveryCount { queue, seq, count } => Record::DeliveryCount {
                queue: queue.to_owned(),
                seq,
                count,
            },
            RecordRef::DropQueue { queue } => Record::DropQueue {
                queue: queue.to_owned(),
            },
        }
    }
}

/// The body length implied by the start of a body (type, queue length and, for an
/// enqueue, message length), or `None` if those bytes are not there or the type is
/// unknown. A cheap plausibility test run before any checksum when looking for the
/// next record after a damaged one.
pub(crate) fn expected_body_len(body: &[u8]) -> Option<usize> {
    let ty = *body.first()?;
    let qlen = usize::from(u16::from_le_bytes([*body.get(1)?, *body.get(2)?]));
    let after_queue = PREFIX_LEN + qlen;
    Some(match ty {
        ENQUEUE => {
            let at = after_queue + 8;
            let mlen = u32::from_le_bytes(body.get(at..at + 4)?.try_into().ok()?);
            after_queue + 12 + usize::try_from(mlen).ok()?
        }
        ACK => after_queue + 8,
        DELIVERY_COUNT => after_queue + 12,
        DROP_QUEUE => after_queue,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crc::crc32c;

    fn samples() -> Vec<Record> {
        vec![
            Record::Enqueue {
                queue: "default/orders".into(),
                seq: 42,
                message: Bytes::from_static(b"\x00\x53\x75\xa0\x05hello"),
            },
            Record::Enqueue {
                queue: String::new(),
                seq: u64::MAX,
                message: Bytes::new(),
            },
            Record::Ack {
                queue: "t/q".into(),
                seq: 7,
            },
            Record::DeliveryCount {
                queue: "t/q".into(),
                seq: 7,
                count: 3,
            },
            Record::DropQueue {
                queue: "t/é".into(),
            },
        ]
    }

    #[test]
    fn round_trip() {
        for r in samples() {
            let bytes = r.encode();
            assert_eq!(bytes.len(), r.encoded_len());
            let len = u32::from_le_bytes(bytes[0..4].try_into().unwrap()) as usize;
            let crc = u32::from_le_bytes(bytes[4..8].try_into().unwrap());
            let body = &bytes[RECORD_HEADER_LEN..];
            assert_eq!(len, body.len());
            assert_eq!(crc, crc32c(body));
            assert_eq!(expected_body_len(body), Some(body.len()));
            let back = RecordRef::decode(body).expect("decodes").to_record();
            assert_eq!(back, r);
        }
    }

    #[test]
    fn layout_is_little_endian_and_documented() {
        let r = Record::Ack {
            queue: "ab".into(),
            seq: 0x0102_0304_0506_0708,
        };
        let b = r.encode();
        assert_eq!(&b[0..4], &13u32.to_le_bytes());
        assert_eq!(&b[8..], &[2, 2, 0, b'a', b'b', 8, 7, 6, 5, 4, 3, 2, 1]);
    }

    #[test]
    fn decode_rejects_malformed_bodies() {
        for r in samples() {
            let bytes = r.encode();
            let body = &bytes[RECORD_HEADER_LEN..];
            // Every strict prefix and every one-byte extension is refused.
            for cut in 0..body.len() {
                assert!(RecordRef::decode(&body[..cut]).is_none(), "{r:?} cut {cut}");
            }
            let mut longer = body.to_vec();
            longer.push(0);
            assert!(RecordRef::decode(&longer).is_none());
            // Unknown types.
            for ty in [0u8, 5, 0xff] {
                let mut b = body.to_vec();
                b[0] = ty;
                assert!(RecordRef::decode(&b).is_none());
            }
        }
        // A queue name that is not UTF-8.
        let mut b = Record::DropQueue { queue: "ab".into() }.encode()[RECORD_HEADER_LEN..].to_vec();
        b[3] = 0xff;
        assert!(RecordRef::decode(&b).is_none());
    }

    #[test]
    fn validate_refuses_overlong_queue_names() {
        let r = Record::DropQueue {
            queue: "x".repeat(MAX_QUEUE_NAME_LEN + 1),
        };
        let err = r.as_ref().validate().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let ok = Record::DropQueue {
            queue: "x".repeat(MAX_QUEUE_NAME_LEN),
        };
        ok.as_ref().validate().unwrap();
        assert_eq!(
            RecordRef::decode(&ok.encode()[RECORD_HEADER_LEN..]).map(|r| r.queue().len()),
            Some(MAX_QUEUE_NAME_LEN)
        );
    }
}
