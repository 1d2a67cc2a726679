//! Packet framing and decoding. `split_packet` finds one complete packet in a read buffer
//! (rejecting oversize packets from their fixed header alone); `decode_packet` turns its
//! bytes into a [`Packet`] whose strings and payload are slices of those bytes.

use super::packet::*;
use super::properties::{Properties, PropertyContext};
use super::reason::{self, ReasonCode};
use super::string::ByteStr;
use super::{varint, DecodeError, QoS, Version, MAX_PACKET_SIZE};
use bytes::{Bytes, BytesMut};

/// A cursor over a packet body. Every read checks the bytes present first; strings and
/// binaries come out as slices of the shared buffer.
pub(crate) struct Reader<'a> {
    buf: &'a Bytes,
    pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a Bytes) -> Self {
        Reader {
            buf,
            pos: 0,
            end: buf.len(),
        }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.end - self.pos
    }

    /// The unread bytes, for a caller that recognises a common shape at a glance.
    pub(crate) fn unread(&self) -> &[u8] {
        &self.buf[self.pos..self.end]
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.end
    }

    fn take(&mut self, n: usize) -> Result<usize, DecodeError> {
        if n > self.remaining() {
            return Err(DecodeError::malformed("packet shorter than its contents"));
        }
        let at = self.pos;
        self.pos += n;
        Ok(at)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        let at = self.take(1)?;
        Ok(self.buf[at])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        let at = self.take(2)?;
        Ok(u16::from_be_bytes([self.buf[at], self.buf[at + 1]]))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        let at = self.take(4)?;
        let b = &self.buf[at..at + 4];
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn varint(&mut self) -> Result<u32, DecodeError> {
        match varint::read(&self.buf[self.pos..self.end])? {
            Some((v, n)) => {
                self.pos += n;
                Ok(v)
            }
            None => Err(DecodeError::malformed("truncated variable byte integer")),
        }
    }

    /// The next `n` bytes as a slice of the buffer.
    pub(crate) fn bytes(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        let at = self.take(n)?;
        Ok(self.buf.slice(at..at + n))
    }

    /// Binary data: a 2-byte length and the bytes.
    pub(crate) fn binary(&mut self) -> Result<Bytes, DecodeError> {
        let n = self.u16()? as usize;
        self.bytes(n)
    }

    /// A UTF-8 string: a 2-byte length and valid UTF-8 without U+0000.
    pub(crate) fn string(&mut self) -> Result<ByteStr, DecodeError> {
        let b = self.binary()?;
        ByteStr::try_from_bytes(b).map_err(|_| DecodeError::malformed("invalid UTF-8 string"))
    }

    /// The rest of the body.
    pub(crate) fn rest(&mut self) -> Bytes {
        let at = self.pos;
        self.pos = self.end;
        self.buf.slice(at..self.end)
    }

    /// A reader over the next `n` bytes (a nested block), advancing past them.
    pub(crate) fn sub(&mut self, n: usize) -> Result<Reader<'a>, DecodeError> {
        let at = self.take(n)?;
        Ok(Reader {
            buf: self.buf,
            pos: at,
            end: at + n,
        })
    }

    fn finish(&self) -> Result<(), DecodeError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::malformed(
                "trailing bytes after packet contents",
            ))
        }
    }
}

/// Splits one complete packet off the front of `buf`: `Ok(None)` while more bytes are
/// needed, else the first byte (type and flags) and the body after the remaining length.
/// A packet larger than `max_packet_size` (whole packet, header included) is refused with
/// 0x95 as soon as its remaining length is known, before its body is buffered.
pub fn split_packet(
    buf: &mut BytesMut,
    max_packet_size: u32,
) -> Result<Option<(u8, Bytes)>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let Some((remaining, n)) = varint::read(&buf[1..])? else {
        return Ok(None);
    };
    let total = 1 + n + remaining as usize;
    if total > max_packet_size.min(MAX_PACKET_SIZE) as usize {
        return Err(DecodeError::new(
            ReasonCode::PacketTooLarge,
            "packet larger than the maximum packet size",
        ));
    }
    if buf.len() < total {
        // Bounded: at most 64 KiB ahead, whatever the peer claims.
        buf.reserve((total - buf.len()).min(64 * 1024));
        return Ok(None);
    }
    let mut frame = buf.split_to(total).freeze();
    let body = frame.split_off(1 + n);
    Ok(Some((first, body)))
}

/// A framer and decoder for one connection's byte stream: the protocol version (set
/// once CONNECT is seen) and the largest packet accepted.
#[derive(Debug, Clone)]
pub struct Decoder {
    /// The layout used for packets other than CONNECT.
    pub version: Version,
    /// Largest whole packet accepted; larger ones fail with 0x95.
    pub max_packet_size: u32,
}

impl Decoder {
    /// A decoder for `version` accepting packets up to `max_packet_size` bytes.
    pub fn new(version: Version, max_packet_size: u32) -> Self {
        Decoder {
            version,
            max_packet_size,
        }
    }

    /// Decodes the next complete packet from `buf`, or `Ok(None)` when more bytes are
    /// needed. A decoded CONNECT switches the decoder to the version it asks for.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Packet>, DecodeError> {
        let Some((first, body)) = split_packet(buf, self.max_packet_size)? else {
            return Ok(None);
        };
        let p = decode_packet(first, body, self.version)?;
        if let Packet::Connect(c) = &p {
            self.version = c.version;
        }
        Ok(Some(p))
    }
}

fn check_flags(first: u8, expected: u8) -> Result<(), DecodeError> {
    if first & 0x0f != expected {
        return Err(DecodeError::malformed("reserved fixed header flags"));
    }
    Ok(())
}

fn packet_id(r: &mut Reader<'_>) -> Result<u16, DecodeError> {
    let id = r.u16()?;
    if id == 0 {
        return Err(DecodeError::protocol("packet identifier 0"));
    }
    Ok(id)
}

fn reason_in(b: u8, allowed: &[ReasonCode]) -> Result<ReasonCode, DecodeError> {
    match ReasonCode::from_u8(b) {
        Some(r) if allowed.contains(&r) => Ok(r),
        _ => Err(DecodeError::malformed(
            "reason code not valid for this packet",
        )),
    }
}

/// Decodes one packet given its first byte and its body (as split by [`split_packet`]).
/// `version` is the connection's protocol version (CONNECT carries its own).
pub fn decode_packet(first: u8, body: Bytes, version: Version) -> Result<Packet, DecodeError> {
    let v5 = version == Version::V5;
    let mut r = Reader::new(&body);
    let ptype = first >> 4;
    let p = match ptype {
        1 => {
            check_flags(first, 0)?;
            Packet::Connect(Box::new(decode_connect(&mut r)?))
        }
        2 => {
            check_flags(first, 0)?;
            let flags = r.u8()?;
            if flags & 0xfe != 0 {
                return Err(DecodeError::malformed("reserved CONNACK flags"));
            }
            let code = r.u8()?;
            let (reason, properties) = if v5 {
                (
                    reason_in(code, reason::CONNACK)?,
                    Properties::decode(&mut r, PropertyContext::ConnAck)?,
                )
            } else {
                let reason = ReasonCode::from_v3_connack(code)
                    .ok_or(DecodeError::malformed("unknown CONNACK return code"))?;
                (reason, Properties::default())
            };
            if flags & 1 == 1 && reason != ReasonCode::Success {
                return Err(DecodeError::protocol("session present on a refusal"));
            }
            Packet::ConnAck(ConnAck {
                session_present: flags & 1 == 1,
                reason,
                properties,
            })
        }
        3 => Packet::Publish(decode_publish(first, &mut r, v5)?),
        4..=7 => {
            check_flags(first, if ptype == 6 { 2 } else { 0 })?;
            let packet_id = packet_id(&mut r)?;
            let mut resp = PubResponse::new(packet_id);
            if v5 && !r.is_empty() {
                let allowed = if ptype <= 5 {
                    reason::PUBACK
                } else {
                    reason::PUBREL
                };
                resp.reason = reason_in(r.u8()?, allowed)?;
                if !r.is_empty() {
                    resp.properties = Properties::decode(&mut r, PropertyContext::PubResponse)?;
                }
            }
            match ptype {
                4 => Packet::PubAck(resp),
                5 => Packet::PubRec(resp),
                6 => Packet::PubRel(resp),
                _ => Packet::PubComp(resp),
            }
        }
        8 => {
            check_flags(first, 2)?;
            let packet_id = packet_id(&mut r)?;
            let properties = if v5 {
                Properties::decode(&mut r, PropertyContext::Subscribe)?
            } else {
                Properties::default()
            };
            let mut filters = Vec::new();
            while !r.is_empty() {
                let filter = r.string()?;
                let o = r.u8()?;
                let reserved = if v5 { 0xc0 } else { 0xfc };
                if o & reserved != 0 {
                    return Err(DecodeError::malformed("reserved subscription option bits"));
                }
                let qos =
                    QoS::from_u8(o & 3).ok_or(DecodeError::malformed("subscription QoS 3"))?;
                let retain_handling = match (o >> 4) & 3 {
                    0 => RetainHandling::OnSubscribe,
                    1 => RetainHandling::OnNewSubscription,
                    2 => RetainHandling::Never,
                    _ => return Err(DecodeError::protocol("retain handling 3")),
                };
                let no_local = o & 0x04 != 0;
                if no_local && filter.starts_with("$share/") {
                    return Err(DecodeError::protocol("no-local on a shared subscription"));
                }
                filters.push((
                    filter,
                    SubscriptionOptions {
                        qos,
                        no_local,
                        retain_as_published: o & 0x08 != 0,
                        retain_handling,
                    },
                ));
            }
            if filters.is_empty() {
                return Err(DecodeError::protocol("SUBSCRIBE without topic filters"));
            }
            Packet::Subscribe(Subscribe {
                packet_id,
                properties,
                filters,
            })
        }
        9 => {
            check_flags(first, 0)?;
            let packet_id = packet_id(&mut r)?;
            let properties = if v5 {
                Properties::decode(&mut r, PropertyContext::SubAck)?
            } else {
                Properties::default()
            };
            let mut reasons = Vec::with_capacity(r.remaining());
            while !r.is_empty() {
                let b = r.u8()?;
                reasons.push(if v5 {
                    reason_in(b, reason::SUBACK)?
                } else {
                    ReasonCode::from_v3_suback(b)
                        .ok_or(DecodeError::malformed("invalid SUBACK return code"))?
                });
            }
            Packet::SubAck(SubAck {
                packet_id,
                properties,
                reasons,
            })
        }
        10 => {
            check_flags(first, 2)?;
            let packet_id = packet_id(&mut r)?;
            let properties = if v5 {
                Properties::decode(&mut r, PropertyContext::Unsubscribe)?
            } else {
                Properties::default()
            };
            let mut filters = Vec::new();
            while !r.is_empty() {
                filters.push(r.string()?);
            }
            if filters.is_empty() {
                return Err(DecodeError::protocol("UNSUBSCRIBE without topic filters"));
            }
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                properties,
                filters,
            })
        }
        11 => {
            check_flags(first, 0)?;
            let packet_id = packet_id(&mut r)?;
            let mut ack = UnsubAck {
                packet_id,
                properties: Properties::default(),
                reasons: Vec::new(),
            };
            if v5 {
                ack.properties = Properties::decode(&mut r, PropertyContext::UnsubAck)?;
                ack.reasons.reserve(r.remaining());
                while !r.is_empty() {
                    ack.reasons.push(reason_in(r.u8()?, reason::UNSUBACK)?);
                }
            }
            Packet::UnsubAck(ack)
        }
        12 => {
            check_flags(first, 0)?;
            Packet::PingReq
        }
        13 => {
            check_flags(first, 0)?;
            Packet::PingResp
        }
        14 => {
            check_flags(first, 0)?;
            let mut d = Disconnect::default();
            if v5 && !r.is_empty() {
                d.reason = reason_in(r.u8()?, reason::DISCONNECT)?;
                if !r.is_empty() {
                    d.properties = Properties::decode(&mut r, PropertyContext::Disconnect)?;
                }
            }
            Packet::Disconnect(d)
        }
        15 if v5 => {
            check_flags(first, 0)?;
            let mut a = Auth {
                reason: ReasonCode::Success,
                properties: Properties::default(),
            };
            if !r.is_empty() {
                a.reason = reason_in(r.u8()?, reason::AUTH)?;
                if !r.is_empty() {
                    a.properties = Properties::decode(&mut r, PropertyContext::Auth)?;
                }
            }
            Packet::Auth(a)
        }
        _ => return Err(DecodeError::malformed("reserved packet type")),
    };
    r.finish()?;
    Ok(p)
}

fn decode_publish(first: u8, r: &mut Reader<'_>, v5: bool) -> Result<Publish, DecodeError> {
    let qos = QoS::from_u8((first >> 1) & 3).ok_or(DecodeError::malformed("PUBLISH with QoS 3"))?;
    let dup = first & 0x08 != 0;
    if dup && qos == QoS::AtMostOnce {
        return Err(DecodeError::protocol("DUP set on a QoS 0 PUBLISH"));
    }
    let topic = r.string()?;
    if topic.contains(['+', '#']) {
        return Err(DecodeError::new(
            ReasonCode::TopicNameInvalid,
            "wildcard in a topic name",
        ));
    }
    let packet_id = if qos == QoS::AtMostOnce {
        0
    } else {
        packet_id(r)?
    };
    let (properties, topic_alias) = if v5 {
        Properties::decode_publish(r)?
    } else {
        (Properties::default(), None)
    };
    if topic.is_empty() && topic_alias.is_none() {
        return Err(DecodeError::protocol(
            "empty topic name without a topic alias",
        ));
    }
    Ok(Publish {
        dup,
        qos,
        retain: first & 1 != 0,
        topic,
        packet_id,
        topic_alias,
        properties,
        payload: r.rest(),
    })
}

fn decode_connect(r: &mut Reader<'_>) -> Result<Connect, DecodeError> {
    let name = r.binary()?;
    let level = r.u8()?;
    let version = match (&name[..], level) {
        (b"MQTT", 4) => Version::V311,
        (b"MQTT", 5) => Version::V5,
        (b"MQTT", _) | (b"MQIsdp", _) => {
            return Err(DecodeError::new(
                ReasonCode::UnsupportedProtocolVersion,
                "unsupported protocol level",
            ))
        }
        _ => return Err(DecodeError::protocol("unknown protocol name")),
    };
    let v5 = version == Version::V5;
    let flags = r.u8()?;
    if flags & 1 != 0 {
        return Err(DecodeError::malformed("reserved CONNECT flag set"));
    }
    let will_flag = flags & 0x04 != 0;
    let will_qos = QoS::from_u8((flags >> 3) & 3).ok_or(DecodeError::malformed("will QoS 3"))?;
    let will_retain = flags & 0x20 != 0;
    if !will_flag && (will_qos != QoS::AtMostOnce || will_retain) {
        return Err(DecodeError::malformed("will QoS or retain without a will"));
    }
    let has_password = flags & 0x40 != 0;
    let has_username = flags & 0x80 != 0;
    if !v5 && has_password && !has_username {
        return Err(DecodeError::malformed("password without a user name"));
    }
    let keep_alive = r.u16()?;
    let properties = if v5 {
        Properties::decode(r, PropertyContext::Connect)?
    } else {
        Properties::default()
    };
    let client_id = r.string()?;
    let will = if will_flag {
        let properties = if v5 {
            Properties::decode(r, PropertyContext::Will)?
        } else {
            Properties::default()
        };
        let topic = r.string()?;
        if topic.is_empty() || topic.contains(['+', '#']) {
            return Err(DecodeError::new(
                ReasonCode::TopicNameInvalid,
                "invalid will topic",
            ));
        }
        let payload = r.binary()?;
        Some(Will {
            topic,
            payload,
            qos: will_qos,
            retain: will_retain,
            properties,
        })
    } else {
        None
    };
    let username = if has_username {
        Some(r.string()?)
    } else {
        None
    };
    let password = if has_password {
        Some(r.binary()?)
    } else {
        None
    };
    Ok(Connect {
        version,
        clean_start: flags & 0x02 != 0,
        keep_alive,
        client_id,
        will,
        username,
        password,
        properties,
    })
}
