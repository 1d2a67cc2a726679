//! The bodies of the fuzz targets in `fuzz/fuzz_targets/`, shared with `tests/fuzz_smoke.rs`
//! so that every `cargo test` runs them over deterministic pseudo-random inputs. Each takes
//! arbitrary bytes and panics only on a real bug: a panic in the crate, or a broken
//! invariant checked here (re-encoding is stable, our own output is well-formed).
#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use std::time::{Duration, Instant};
use throng_amqp::codec::{encode, Decoder, Value};
use throng_amqp::definitions::{
    condition, Begin, DeliveryState, Error, Header, Open, Performative, Role, SaslFrame, SaslInit,
};
use throng_amqp::engine::{Connection, ConnectionConfig, Event, LinkSpec};
use throng_amqp::frame::{self, Frame, AMQP_HEADER, SASL_HEADER};
use throng_amqp::message::Message;
use throng_amqp::Symbol;

/// Bytes appended when re-decoding a re-encoding: a decoder's allowance for zero-width
/// array elements grows with its buffer, and the original buffer may have been longer.
fn padded(b: &[u8], pad: usize) -> Bytes {
    let mut v = Vec::with_capacity(b.len() + pad);
    v.extend_from_slice(b);
    v.resize(b.len() + pad, 0);
    Bytes::from(v)
}

/// Re-encoding a decoded performative is stable: encode(decode(encode(p))) == encode(p).
fn check_performative_reencoding(p: &Performative, original_len: usize) {
    let mut first = BytesMut::new();
    p.encode(&mut first);
    let padded_first = padded(&first, original_len);
    let mut d = Decoder::new(&padded_first);
    let again = Performative::decode(&mut d)
        .unwrap_or_else(|e| panic!("re-encoded {p:?} does not decode: {e}"));
    assert_eq!(
        d.position(),
        first.len(),
        "re-encoded {p:?} not consumed exactly"
    );
    let mut second = BytesMut::new();
    again.encode(&mut second);
    assert_eq!(first, second, "re-encoding of {p:?} is not stable");
}

fn check_sasl_reencoding(s: &SaslFrame) {
    let mut first = BytesMut::new();
    s.encode(&mut first);
    let again = SaslFrame::decode(&mut Decoder::new(&first.clone().freeze()))
        .unwrap_or_else(|e| panic!("re-encoded {s:?} does not decode: {e}"));
    let mut second = BytesMut::new();
    again.encode(&mut second);
    assert_eq!(first, second, "re-encoding of {s:?} is not stable");
}

/// Splits arbitrary bytes into frames with a small max-frame-size until it needs more
/// input or fails; every frame decoded re-encodes stably.
pub fn frame_decode(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    for _ in 0..data.len() + 1 {
        let before = buf.len();
        match frame::decode_frame(&mut buf, 512) {
            Ok(Some(f)) => {
                assert!(buf.len() < before, "a frame was decoded from no bytes");
                match &f {
                    Frame::Amqp { performative, .. } => {
                        check_performative_reencoding(performative, before)
                    }
                    Frame::Sasl(s) => check_sasl_reencoding(s),
                    Frame::Empty { .. } => {}
                }
            }
            Ok(None) => {
                assert_eq!(buf.len(), before, "an incomplete frame consumed input");
                return;
            }
            Err(_) => return,
        }
    }
    panic!("decode_frame made no progress");
}

/// Parses arbitrary bytes as a message and calls every accessor; a replaced header keeps
/// the bare message byte for byte.
pub fn message_parse(data: &[u8]) {
    let bytes = Bytes::copy_from_slice(data);
    let Ok(msg) = Message::parse(bytes.clone()) else {
        return;
    };
    assert_eq!(msg.bytes(), &bytes);
    assert_eq!(msg.len(), data.len());
    let header = msg.header();
    let _ = msg.properties();
    let _ = msg.message_annotations();
    let _ = msg.application_properties();
    let _ = msg.to();
    let _ = msg.body();
    let bare = msg.bare();
    assert!(bare.len() <= data.len());

    let new_header = Header {
        durable: Some(true),
        delivery_count: Some(
            header
                .as_ref()
                .ok()
                .and_then(|h| h.delivery_count)
                .unwrap_or(0)
                + 1,
        ),
        ..header.clone().unwrap_or_default()
    };
    let (h, rest) = msg.with_header(&new_header);
    let mut joined = h;
    joined.extend_from_slice(&rest);
    let again = Message::parse(joined.freeze()).expect("a message with a new header parses");
    assert_eq!(again.header().as_ref(), Ok(&new_header));
    assert_eq!(again.bare(), bare, "with_header changed the bare message");
    assert_eq!(
        again.message_annotations().is_ok(),
        msg.message_annotations().is_ok()
    );
}

/// Decodes and skips one value; whatever decodes re-encodes stably, and skipping a value
/// that decodes ends where decoding did.
pub fn value_decode(data: &[u8]) {
    let bytes = Bytes::copy_from_slice(data);
    let mut d = Decoder::new(&bytes);
    let read = d.read_value();
    let read_end = d.position();
    let mut s = Decoder::new(&bytes);
    let skipped = s.skip_value();
    if let Ok(v) = read {
        assert!(
            skipped.is_ok(),
            "{v:?} decodes but does not skip: {skipped:?}"
        );
        assert_eq!(
            s.position(),
            read_end,
            "skip_value and read_value disagree on {v:?}"
        );
        let mut first = BytesMut::new();
        encode::value(&mut first, &v);
        let padded_first = padded(&first, data.len());
        let mut d = Decoder::new(&padded_first);
        let again: Value = d
            .read_value()
            .unwrap_or_else(|e| panic!("re-encoded {v:?} fails: {e}"));
        assert_eq!(d.position(), first.len());
        let mut second = BytesMut::new();
        encode::value(&mut second, &again);
        assert_eq!(first, second, "re-encoding of {v:?} is not stable");
    }
}

/// A server application that says yes to everything, within bounds.
#[derive(Default)]
struct App {
    links: usize,
    sends: usize,
}

impl App {
    fn serve(&mut self, c: &mut Connection) {
        for _ in 0..10_000 {
            let Some(e) = c.poll_event() else { return };
            match e {
                Event::SaslInit { .. } => c.sasl_outcome(true),
                Event::AttachRequested { link, attach, .. } => {
                    self.links += 1;
                    if self.links > 32 {
                        let _ = c.refuse_link(
                            link,
                            Error::new(condition::RESOURCE_LIMIT_EXCEEDED, "enough"),
                        );
                        continue;
                    }
                    let role = if attach.role == Role::Sender {
                        Role::Receiver
                    } else {
                        Role::Sender
                    };
                    let spec = LinkSpec {
                        role,
                        source: attach.source.clone(),
                        target: attach.target.clone(),
                        ..LinkSpec::default()
                    };
                    if c.accept_link(link, spec).is_ok() && role == Role::Receiver {
                        let _ = c.flow(link, 4, false);
                    }
                }
                Event::Flow { link, credit, .. } if c.link_role(link) == Some(Role::Sender) => {
                    if credit > 0 && self.sends < 64 {
                        self.sends += 1;
                        let tag = (self.sends as u32).to_be_bytes();
                        let body = vec![b'x'; self.sends * 37];
                        let _ = c.send(
                            link,
                            &tag,
                            &[
                                b"\x00\x53\x75\xb0",
                                &(body.len() as u32).to_be_bytes(),
                                &body,
                            ],
                            self.sends & 1 == 0,
                        );
                    }
                    if c.drain_requested(link) {
                        let _ = c.drained(link);
                    }
                }
                Event::Delivery {
                    link,
                    delivery_id,
                    settled,
                    ..
                } => {
                    if !settled {
                        c.disposition(link, delivery_id, Some(DeliveryState::Accepted), true);
                    }
                    let _ = c.flow(link, 4, false);
                }
                _ => {}
            }
        }
    }
}

/// Checks that everything the engine wrote is protocol headers and well-formed frames.
fn check_output(out: &[u8]) {
    let mut buf = BytesMut::from(out);
    while !buf.is_empty() {
        if buf.starts_with(b"AMQP") {
            assert!(buf.len() >= 8, "truncated protocol header in output");
            let _ = buf.split_to(8);
            continue;
        }
        match frame::decode_frame(&mut buf, u32::MAX) {
            Ok(Some(_)) => {}
            other => panic!(
                "the engine wrote a bad frame: {other:?} at {:02x?}",
                &buf[..buf.len().min(64)]
            ),
        }
    }
}

/// Feeds arbitrary bytes to a server connection after valid protocol headers (and, per the
/// first byte, a SASL exchange and an open and begin), answering every event. Returns
/// what the server wrote.
pub fn engine_server(data: &[u8]) -> BytesMut {
    let Some((&mode, data)) = data.split_first() else {
        return BytesMut::new();
    };
    let start = Instant::now();
    let mut cfg = ConnectionConfig::server("fuzz");
    cfg.max_frame_size = 4096;
    cfg.channel_max = 15;
    cfg.session_window = 1 + (mode as u32 >> 5);
    cfg.idle_timeout = Some(Duration::from_secs(30));
    cfg.max_message_size = 1 << 16;
    let mut c = Connection::new(cfg, start);
    let mut prefix = BytesMut::new();
    if mode & 1 == 1 {
        prefix.extend_from_slice(&SASL_HEADER);
        let init = SaslInit {
            mechanism: Symbol::new("ANONYMOUS"),
            initial_response: None,
            hostname: None,
        };
        frame::write_sasl(&mut prefix, &SaslFrame::Init(init));
    }
    prefix.extend_from_slice(&AMQP_HEADER);
    if mode & 2 == 2 {
        let open = Open {
            container_id: "peer".into(),
            max_frame_size: Some(512),
            idle_time_out: Some(1000),
            ..Open::default()
        };
        frame::write_performative(&mut prefix, 0, &Performative::Open(open));
        let begin = Begin {
            next_outgoing_id: 0,
            incoming_window: 2,
            outgoing_window: 100,
            ..Begin::default()
        };
        frame::write_performative(&mut prefix, 0, &Performative::Begin(begin));
    }
    let mut app = App::default();
    let mut out = BytesMut::new();
    c.handle_input(&prefix, start);
    app.serve(&mut c);
    if mode & 4 == 4 {
        let _ = c.begin_session();
    }
    out.extend_from_slice(&c.output().split());
    let chunk = 1 + ((mode >> 3) & 3) as usize * 61;
    for (i, piece) in data.chunks(chunk).enumerate() {
        let now = start + Duration::from_millis(i as u64 * 300);
        c.handle_input(piece, now);
        app.serve(&mut c);
        c.handle_timeout(now);
        app.serve(&mut c);
        out.extend_from_slice(&c.output().split());
    }
    // much later: heartbeats are due and the silent peer times out
    c.handle_timeout(start + Duration::from_secs(3600));
    app.serve(&mut c);
    out.extend_from_slice(&c.output().split());
    // a peer that got as far as its open has been silent for an hour: it is gone
    assert!(
        c.remote_open().is_none() || c.is_closed(),
        "idle timeout did not fire"
    );
    check_output(&out);
    out
}
