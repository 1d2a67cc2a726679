//! What a node tells the next one about a message it forwards: the tenant, the address,
//! the node it is going to, and how many hops it has made. It travels as the message's
//! delivery annotations — meant for one hop, so nothing of it reaches a client — as one
//! binary value (`x-opt-throng-route`), which the next node reads as a slice of the frame
//! without decoding or allocating. The bare message is never touched.
//!
//! The binary: version (1), hops, then the destination node, the tenant (a byte of
//! length each) and the address (two bytes of length).

use bytes::{BufMut, BytesMut};
use throng_amqp::codec::encode;
use throng_amqp::message::Message;
use throng_amqp::Value;

/// The delivery annotation the route travels in.
pub const ROUTE_KEY: &str = "x-opt-throng-route";

/// Hops after which a message is given back rather than forwarded: more than any path
/// a converged mesh has, so only a loop while routes change reaches it.
pub const MAX_HOPS: u8 = 32;

const VERSION: u8 = 1;
const SECTION_DELIVERY_ANNOTATIONS: u64 = 0x71;

/// Where a forwarded message is going.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route<'a> {
    pub tenant: &'a str,
    pub address: &'a str,
    /// The node whose consumers take it.
    pub dest: &'a str,
    /// Hops made before this one.
    pub hops: u8,
}

/// Why a forwarded message's route cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("the message carries no route")]
    Missing,
    #[error("the message's route is malformed")]
    Malformed,
}

/// Writes the delivery-annotations section carrying `route` into `out` (cleared first).
/// Fails only for names too long to carry (the mesh's own limits are shorter).
pub fn encode_route(out: &mut BytesMut, route: &Route<'_>) -> Result<(), RouteError> {
    let (dest, tenant, address) = (
        route.dest.as_bytes(),
        route.tenant.as_bytes(),
        route.address.as_bytes(),
    );
    if dest.len() > 255 || tenant.len() > 255 || address.len() > u16::MAX as usize {
        return Err(RouteError::Malformed);
    }
    out.clear();
    encode::descriptor(out, SECTION_DELIVERY_ANNOTATIONS);
    let start = encode::begin_compound(out, 0xd1);
    encode::symbol(out, ROUTE_KEY);
    let len = 2 + 1 + dest.len() + 1 + tenant.len() + 2 + address.len();
    // vbin8 / vbin32 header, then the fields
    if len < 256 {
        out.put_u8(0xa0);
        out.put_u8(len as u8);
    } else {
        out.put_u8(0xb0);
        out.put_u32(len as u32);
    }
    out.put_u8(VERSION);
    out.put_u8(route.hops);
    out.put_u8(dest.len() as u8);
    out.put_slice(dest);
    out.put_u8(tenant.len() as u8);
    out.put_slice(tenant);
    out.put_u16(address.len() as u16);
    out.put_slice(address);
    encode::end_compound(out, start, 2, 0xc1);
    Ok(())
}

/// Reads the route of a forwarded message; `hold` keeps the bytes it borrows from.
pub fn read_route<'a>(
    msg: &Message,
    hold: &'a mut Option<bytes::Bytes>,
) -> Result<Route<'a>, RouteError> {
    let [found] = msg
        .find_delivery_annotations([ROUTE_KEY])
        .map_err(|_| RouteError::Malformed)?;
    match found {
        Some(Value::Binary(b)) => *hold = Some(b),
        Some(_) => return Err(RouteError::Malformed),
        None => return Err(RouteError::Missing),
    }
    let b: &'a [u8] = hold.as_deref().unwrap_or_default();
    parse(b).ok_or(RouteError::Malformed)
}

fn parse(b: &[u8]) -> Option<Route<'_>> {
    let (&version, rest) = b.split_first()?;
    if version != VERSION {
        return None;
    }
    let (&hops, rest) = rest.split_first()?;
    let (dest, rest) = short_str(rest)?;
    let (tenant, rest) = short_str(rest)?;
    let (len, rest) = rest.split_first_chunk::<2>()?;
    let len = u16::from_be_bytes(*len) as usize;
    if rest.len() != len {
        return None;
    }
    let address = std::str::from_utf8(rest).ok()?;
    Some(Route {
        tenant,
        address,
        dest,
        hops,
    })
}

fn short_str(b: &[u8]) -> Option<(&str, &[u8])> {
    let (&len, rest) = b.split_first()?;
    if rest.len() < len as usize {
        return None;
    }
    let (s, rest) = rest.split_at(len as usize);
    Some((std::str::from_utf8(s).ok()?, rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use throng_amqp::definitions::Header;
    use throng_amqp::message::MessageBuilder;

    /// The message as a node forwards it: its own bytes around a fresh route.
    fn forwarded(msg: &Message, route: &Route<'_>) -> Message {
        let mut da = BytesMut::new();
        encode_route(&mut da, route).unwrap();
        let [before, after] = msg.hop_parts();
        let mut all = BytesMut::new();
        all.extend_from_slice(before);
        all.extend_from_slice(&da);
        all.extend_from_slice(after);
        Message::parse(all.freeze()).unwrap()
    }

    #[test]
    fn a_route_survives_the_hop_and_the_bare_message_is_untouched() {
        let original = Message::parse(
            MessageBuilder::new()
                .header(Header {
                    durable: Some(true),
                    ..Header::default()
                })
                .data(Bytes::from_static(b"payload"))
                .encode(),
        )
        .unwrap();
        let long = "a".repeat(300);
        let route = Route {
            tenant: "acme",
            address: &long,
            dest: "r3",
            hops: 1,
        };
        let hop1 = forwarded(&original, &route);
        let mut hold = None;
        assert_eq!(read_route(&hop1, &mut hold).unwrap(), route);
        assert_eq!(hop1.bare(), original.bare());
        assert_eq!(hop1.header().unwrap(), original.header().unwrap());

        // the next hop replaces the route rather than adding one
        let next = Route {
            hops: 2,
            ..route.clone()
        };
        let hop2 = forwarded(&hop1, &next);
        let mut hold = None;
        assert_eq!(read_route(&hop2, &mut hold).unwrap().hops, 2);
        assert_eq!(hop2.len(), hop1.len());

        // a client is sent the message without it
        let [a, b] = hop2.hop_parts();
        assert_eq!([a, b].concat(), original.bytes().to_vec());
    }

    #[test]
    fn a_message_without_header_or_with_annotations_keeps_its_section_order() {
        let mut ann = throng_amqp::codec::Fields::new();
        ann.push((throng_amqp::Symbol::new("x-opt-a"), Value::Uint(1)));
        for original in [
            Message::parse(MessageBuilder::new().data(&b"no header"[..]).encode()).unwrap(),
            Message::parse(MessageBuilder::new().data(&b"annotated"[..]).encode())
                .unwrap()
                .with_annotations(&ann)
                .unwrap(),
        ] {
            let route = Route {
                tenant: "t",
                address: "a",
                dest: "d",
                hops: 0,
            };
            let hop = forwarded(&original, &route);
            assert_eq!(read_route(&hop, &mut None).unwrap(), route);
            assert_eq!(hop.bare(), original.bare());
            assert_eq!(
                hop.message_annotations().unwrap(),
                original.message_annotations().unwrap()
            );
        }
    }

    #[test]
    fn a_damaged_or_missing_route_is_an_error() {
        let plain = Message::parse(MessageBuilder::new().data(&b"x"[..]).encode()).unwrap();
        assert_eq!(
            read_route(&plain, &mut None).unwrap_err(),
            RouteError::Missing
        );
        let good = forwarded(
            &plain,
            &Route {
                tenant: "t",
                address: "a",
                dest: "d",
                hops: 0,
            },
        );
        let bytes = good.bytes().to_vec();
        // every cut of the route binary and every byte changed: never a panic
        for i in 0..bytes.len() {
            for v in [0u8, 0xff, 3] {
                let mut m = bytes.clone();
                m[i] = v;
                if let Ok(msg) = Message::parse(Bytes::from(m)) {
                    let _ = read_route(&msg, &mut None);
                }
            }
        }
        assert!(parse(&[1, 0, 5, b'a']).is_none());
        assert!(parse(&[2, 0, 0, 0, 0, 0]).is_none(), "unknown version");
        assert!(parse(&[1, 0, 0, 0, 0, 1]).is_none(), "address cut short");
    }
}
