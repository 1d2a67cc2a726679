//! Packet encoding straight into the output buffer, and the encoded size (for maximum
//! packet size checks) computed without encoding.

use super::packet::*;
use super::properties::{Properties, TOPIC_ALIAS};
use super::{varint, QoS, ReasonCode, Version};
use bytes::{BufMut, BytesMut};

fn str_len(s: &str) -> usize {
    2 + s.len()
}

fn put_bin(out: &mut BytesMut, b: &[u8]) {
    out.put_u16(b.len() as u16);
    out.put_slice(b);
}

fn props_len(v5: bool, p: &Properties) -> usize {
    if v5 {
        p.encoded_len()
    } else {
        0
    }
}

/// Whether a PUBACK/PUBREC/PUBREL/PUBCOMP, DISCONNECT or AUTH may use its short form.
fn short_response(p: &PubResponse) -> bool {
    p.properties.is_empty()
}

/// The size of the body (after the fixed header) and the first byte.
fn body_len(p: &Packet, version: Version) -> (u8, usize) {
    let v5 = version == Version::V5;
    match p {
        Packet::Connect(c) => {
            let cv5 = c.version == Version::V5;
            let mut n = 6 + 1 + 1 + 2 + props_len(cv5, &c.properties) + str_len(&c.client_id);
            if let Some(w) = &c.will {
                n += props_len(cv5, &w.properties) + str_len(&w.topic) + 2 + w.payload.len();
            }
            if let Some(u) = &c.username {
                n += str_len(u);
            }
            if let Some(pw) = &c.password {
                n += 2 + pw.len();
            }
            (0x10, n)
        }
        Packet::ConnAck(c) => (0x20, 2 + props_len(v5, &c.properties)),
        Packet::Publish(p) => {
            let first = 0x30 | (u8::from(p.dup) << 3) | ((p.qos as u8) << 1) | u8::from(p.retain);
            (first, publish_head_len(p, v5).1 + p.payload.len())
        }
        Packet::PubAck(r) | Packet::PubRec(r) | Packet::PubRel(r) | Packet::PubComp(r) => {
            let first = match p {
                Packet::PubAck(_) => 0x40,
                Packet::PubRec(_) => 0x50,
                Packet::PubRel(_) => 0x62,
                _ => 0x70,
            };
            let n = if !v5 || (r.reason == ReasonCode::Success && short_response(r)) {
                2
            } else if short_response(r) {
                3
            } else {
                3 + r.properties.encoded_len()
            };
            (first, n)
        }
        Packet::Subscribe(s) => {
            let mut n = 2 + props_len(v5, &s.properties);
            for (f, _) in &s.filters {
                n += str_len(f) + 1;
            }
            (0x82, n)
        }
        Packet::SubAck(s) => (0x90, 2 + props_len(v5, &s.properties) + s.reasons.len()),
        Packet::Unsubscribe(u) => {
            let mut n = 2 + props_len(v5, &u.properties);
            for f in &u.filters {
                n += str_len(f);
            }
            (0xa2, n)
        }
        Packet::UnsubAck(u) => {
            let n = if v5 {
                2 + u.properties.encoded_len() + u.reasons.len()
            } else {
                2
            };
            (0xb0, n)
        }
        Packet::PingReq => (0xc0, 0),
        Packet::PingResp => (0xd0, 0),
        Packet::Disconnect(d) => {
            let n = if !v5 || (d.reason == ReasonCode::Success && d.properties.is_empty()) {
                0
            } else if d.properties.is_empty() {
                1
            } else {
                1 + d.properties.encoded_len()
            };
            (0xe0, n)
        }
        Packet::Auth(a) => {
            let n = if a.reason == ReasonCode::Success && a.properties.is_empty() {
                0
            } else {
                1 + a.properties.encoded_len()
            };
            (0xf0, n)
        }
    }
}

/// The size of `p` encoded for `version`, fixed header included: what the peer's maximum
/// packet size is compared with.
pub fn encoded_len(p: &Packet, version: Version) -> usize {
    let (_, n) = body_len(p, version);
    1 + varint::len(n as u32) + n
}

/// Writes everything of a PUBLISH except its payload (fixed header, topic, packet id,
/// properties), for a writer that sends the payload `Bytes` separately (vectored write).
pub fn encode_publish_head(p: &Publish, version: Version, out: &mut BytesMut) {
    let packet = PublishRef(p);
    packet.head(version, out);
}

/// Encodes a PUBLISH (header, then the payload appended) without wrapping it in a
/// [`Packet`].
pub fn encode_publish(p: &Publish, version: Version, out: &mut BytesMut) {
    PublishRef(p).head(version, out);
    out.extend_from_slice(&p.payload);
}

/// The encoded size of a PUBLISH, fixed header included.
pub fn publish_encoded_len(p: &Publish, version: Version) -> usize {
    let n = publish_head_len(p, version == Version::V5).1 + p.payload.len();
    1 + varint::len(n as u32) + n
}

struct PublishRef<'a>(&'a Publish);

impl PublishRef<'_> {
    fn head(&self, version: Version, out: &mut BytesMut) {
        let p = self.0;
        let v5 = version == Version::V5;
        let first = 0x30 | (u8::from(p.dup) << 3) | ((p.qos as u8) << 1) | u8::from(p.retain);
        let (content, head) = publish_head_len(p, v5);
        let id = p.qos != QoS::AtMostOnce;
        let n = head + p.payload.len();
        out.reserve(1 + 4 + head);
        out.put_u8(first);
        varint::write(out, n as u32);
        put_bin(out, p.topic.as_bytes());
        if id {
            out.put_u16(p.packet_id);
        }
        if v5 {
            varint::write(out, content as u32);
            if let Some(a) = p.topic_alias {
                out.put_u8(TOPIC_ALIAS);
                out.put_u16(a);
            }
            p.properties.encode_content(out);
        }
    }
}

/// A PUBLISH's property content size (topic alias included; 0 in v3) and the size of
/// its variable header (topic, packet id, property block): the one place a PUBLISH's
/// size is worked out, for the encoder and for the maximum-packet-size check alike.
fn publish_head_len(p: &Publish, v5: bool) -> (usize, usize) {
    let id = if p.qos == QoS::AtMostOnce { 0 } else { 2 };
    if !v5 {
        return (0, str_len(&p.topic) + id);
    }
    let content = p.topic_alias.map_or(0, |_| 3) + p.properties.content_len();
    (
        content,
        str_len(&p.topic) + id + varint::len(content as u32) + content,
    )
}

/// Encodes `p` for `version` at the end of `out`. A PUBLISH's payload is appended
/// directly after its header. Fields the version lacks (v5 properties and reason codes
/// in v3) are left out; v3 SUBACK codes are mapped (failures become 0x80).
pub fn encode(p: &Packet, version: Version, out: &mut BytesMut) {
    let v5 = version == Version::V5;
    if let Packet::Publish(pb) = p {
        encode_publish(pb, version, out);
        return;
    }
    let (first, n) = body_len(p, version);
    out.reserve(1 + 4 + n);
    out.put_u8(first);
    varint::write(out, n as u32);
    match p {
        Packet::Connect(c) => {
            let cv5 = c.version == Version::V5;
            put_bin(out, b"MQTT");
            out.put_u8(c.version.level());
            let mut flags = u8::from(c.clean_start) << 1;
            if let Some(w) = &c.will {
                flags |= 0x04 | ((w.qos as u8) << 3) | (u8::from(w.retain) << 5);
            }
            if c.password.is_some() {
                flags |= 0x40;
            }
            if c.username.is_some() {
                flags |= 0x80;
            }
            out.put_u8(flags);
            out.put_u16(c.keep_alive);
            if cv5 {
                c.properties.encode(out);
            }
            put_bin(out, c.client_id.as_bytes());
            if let Some(w) = &c.will {
                if cv5 {
                    w.properties.encode(out);
                }
                put_bin(out, w.topic.as_bytes());
                put_bin(out, &w.payload);
            }
            if let Some(u) = &c.username {
                put_bin(out, u.as_bytes());
            }
            if let Some(pw) = &c.password {
                put_bin(out, pw);
            }
        }
        Packet::ConnAck(c) => {
            out.put_u8(u8::from(c.session_present));
            if v5 {
                out.put_u8(c.reason.as_u8());
                c.properties.encode(out);
            } else {
                out.put_u8(c.reason.to_v3_connack());
            }
        }
        Packet::Publish(_) => {}
        Packet::PubAck(r) | Packet::PubRec(r) | Packet::PubRel(r) | Packet::PubComp(r) => {
            out.put_u16(r.packet_id);
            if n > 2 {
                out.put_u8(r.reason.as_u8());
                if n > 3 {
                    r.properties.encode(out);
                }
            }
        }
        Packet::Subscribe(s) => {
            out.put_u16(s.packet_id);
            if v5 {
                s.properties.encode(out);
            }
            for (f, o) in &s.filters {
                put_bin(out, f.as_bytes());
                let mut b = o.qos as u8;
                if v5 {
                    b |= (u8::from(o.no_local) << 2)
                        | (u8::from(o.retain_as_published) << 3)
                        | ((o.retain_handling as u8) << 4);
                }
                out.put_u8(b);
            }
        }
        Packet::SubAck(s) => {
            out.put_u16(s.packet_id);
            if v5 {
                s.properties.encode(out);
                for r in &s.reasons {
                    out.put_u8(r.as_u8());
                }
            } else {
                for r in &s.reasons {
                    out.put_u8(r.to_v3_suback());
                }
            }
        }
        Packet::Unsubscribe(u) => {
            out.put_u16(u.packet_id);
            if v5 {
                u.properties.encode(out);
            }
            for f in &u.filters {
                put_bin(out, f.as_bytes());
            }
        }
        Packet::UnsubAck(u) => {
            out.put_u16(u.packet_id);
            if v5 {
                u.properties.encode(out);
                for r in &u.reasons {
                    out.put_u8(r.as_u8());
                }
            }
        }
        Packet::PingReq | Packet::PingResp => {}
        Packet::Disconnect(d) => {
            if n > 0 {
                out.put_u8(d.reason.as_u8());
                if n > 1 {
                    d.properties.encode(out);
                }
            }
        }
        Packet::Auth(a) => {
            if n > 0 {
                out.put_u8(a.reason.as_u8());
                a.properties.encode(out);
            }
        }
    }
}
