//! Framing (part 2 §2.3): protocol headers, the 8-byte frame header, and splitting a byte
//! stream into frames without copying their bodies.

use crate::codec::{DecodeError, Decoder};
use crate::definitions::{Performative, SaslFrame};
use bytes::{BufMut, Bytes, BytesMut};

/// Protocol header announcing the AMQP layer.
pub const AMQP_HEADER: [u8; 8] = *b"AMQP\x00\x01\x00\x00";
/// Protocol header announcing the SASL layer.
pub const SASL_HEADER: [u8; 8] = *b"AMQP\x03\x01\x00\x00";
/// Frame type of AMQP frames.
pub const TYPE_AMQP: u8 = 0x00;
/// Frame type of SASL frames.
pub const TYPE_SASL: u8 = 0x01;
/// The smallest max-frame-size a peer may ask for (part 2 §2.7.1).
pub const MIN_MAX_FRAME_SIZE: u32 = 512;

/// Why a frame could not be read; each maps to a connection error condition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {size} bytes exceeds the negotiated max-frame-size {max}")]
    TooLarge { size: u32, max: u32 },
    #[error("malformed frame header (size {size}, doff {doff})")]
    BadHeader { size: u32, doff: u8 },
    #[error("unknown frame type {0}")]
    UnknownType(u8),
    #[error("undecodable frame body: {0}")]
    Decode(#[from] DecodeError),
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// An empty frame: a heartbeat.
    Empty { channel: u16 },
    /// An AMQP performative and, for transfers, the payload that follows it.
    Amqp {
        channel: u16,
        performative: Performative,
        payload: Bytes,
    },
    /// A SASL frame.
    Sasl(SaslFrame),
}

/// Takes one complete frame off the front of `buf`, or returns `None` until one is there.
/// The frame's size is checked against `max_frame_size` before any of it is kept.
pub fn decode_frame(buf: &mut BytesMut, max_frame_size: u32) -> Result<Option<Frame>, FrameError> {
    if buf.len() < 8 {
        return Ok(None);
    }
    let size = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let doff = buf[4];
    let ftype = buf[5];
    let channel = u16::from_be_bytes([buf[6], buf[7]]);
    if size < 8 || doff < 2 || (doff as u32) * 4 > size {
        return Err(FrameError::BadHeader { size, doff });
    }
    if size > max_frame_size.max(MIN_MAX_FRAME_SIZE) {
        return Err(FrameError::TooLarge {
            size,
            max: max_frame_size,
        });
    }
    if buf.len() < size as usize {
        buf.reserve(size as usize - buf.len());
        return Ok(None);
    }
    let frame = buf.split_to(size as usize).freeze();
    let body = frame.slice(doff as usize * 4..);
    if body.is_empty() {
        return match ftype {
            TYPE_AMQP => Ok(Some(Frame::Empty { channel })),
            TYPE_SASL => Err(FrameError::Decode(DecodeError::Invalid("empty SASL frame"))),
            t => Err(FrameError::UnknownType(t)),
        };
    }
    let mut d = Decoder::new(&body);
    match ftype {
        TYPE_AMQP => {
            let performative = Performative::decode(&mut d)?;
            let payload = d.take_rest();
            if !payload.is_empty() && !matches!(performative, Performative::Transfer(_)) {
                return Err(FrameError::Decode(DecodeError::Invalid(
                    "payload after a non-transfer performative",
                )));
            }
            Ok(Some(Frame::Amqp {
                channel,
                performative,
                payload,
            }))
        }
        TYPE_SASL => {
            let sasl = SaslFrame::decode(&mut d)?;
            if d.remaining() != 0 {
                return Err(FrameError::Decode(DecodeError::Invalid(
                    "trailing bytes after SASL frame",
                )));
            }
            Ok(Some(Frame::Sasl(sasl)))
        }
        t => Err(FrameError::UnknownType(t)),
    }
}

/// Reserves a frame header in `buf`; [`end_frame`] fills in the size. Returns its offset.
pub fn begin_frame(buf: &mut BytesMut, ftype: u8, channel: u16) -> usize {
    let start = buf.len();
    buf.put_u32(0);
    buf.put_u8(2);
    buf.put_u8(ftype);
    buf.put_u16(channel);
    start
}

/// Completes a frame started with [`begin_frame`].
pub fn end_frame(buf: &mut BytesMut, start: usize) {
    let size = (buf.len() - start) as u32;
    buf[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

/// Writes a whole AMQP frame holding one performative (no payload).
pub fn write_performative(buf: &mut BytesMut, channel: u16, p: &Performative) {
    let start = begin_frame(buf, TYPE_AMQP, channel);
    p.encode(buf);
    end_frame(buf, start);
}

/// Writes a whole SASL frame.
pub fn write_sasl(buf: &mut BytesMut, f: &SaslFrame) {
    let start = begin_frame(buf, TYPE_SASL, 0);
    f.encode(buf);
    end_frame(buf, start);
}

/// Writes an empty (heartbeat) frame.
pub fn write_empty(buf: &mut BytesMut) {
    buf.put_slice(&[0, 0, 0, 8, 2, 0, 0, 0]);
}
