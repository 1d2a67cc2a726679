//! The bodies of the MQTT fuzz targets in `fuzz/fuzz_targets/`, shared with
//! `tests/fuzz_smoke.rs` so that every `cargo test` runs them over deterministic
//! pseudo-random inputs. Each takes arbitrary bytes and panics only on a real bug: a panic
//! in the crate, or a broken invariant checked here (re-encoding is stable, the engine's
//! own output is well-formed).
#![allow(dead_code)]

use bytes::BytesMut;
use std::time::{Duration, Instant};
use throng_mqtt::codec::{
    encode, encoded_len, Connect, Decoder, Packet, Properties, Publish, QoS, ReasonCode, Version,
    MAX_PACKET_SIZE,
};
use throng_mqtt::engine::{Config, Connection, Event};

fn version(b: u8) -> Version {
    if b & 1 == 0 {
        Version::V311
    } else {
        Version::V5
    }
}

/// Decoded packets re-encode to something that decodes to the same packet, with the
/// size `encoded_len` predicts.
fn check_reencoding(p: &Packet, v: Version) {
    let mut first = BytesMut::new();
    encode(p, v, &mut first);
    assert_eq!(first.len(), encoded_len(p, v), "encoded_len of {p:?}");
    let mut input = first.clone();
    let again = Decoder::new(v, MAX_PACKET_SIZE)
        .decode(&mut input)
        .unwrap_or_else(|e| panic!("re-encoded {p:?} does not decode: {e}"))
        .unwrap_or_else(|| panic!("re-encoded {p:?} is incomplete"));
    assert!(input.is_empty(), "re-encoded {p:?} not consumed exactly");
    assert_eq!(&again, p, "re-encoding is not stable");
}

/// Splits arbitrary bytes into packets (maximum packet size 512; the first byte picks
/// the version) until more input is needed or decoding fails.
pub fn mqtt_decode(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let mut d = Decoder::new(version(first), 512);
    let mut buf = BytesMut::from(rest);
    for _ in 0..rest.len() + 1 {
        match d.decode(&mut buf) {
            Ok(Some(p)) => {
                let v = match &p {
                    Packet::Connect(c) => c.version,
                    _ => d.version,
                };
                check_reencoding(&p, v);
            }
            Ok(None) | Err(_) => return,
        }
    }
}

/// Everything the engine wrote decodes as packets of its version.
fn check_output(out: &mut BytesMut, d: &mut Decoder) {
    loop {
        match d.decode(out) {
            Ok(Some(_)) => {}
            Ok(None) => return,
            Err(e) => panic!("engine wrote a malformed packet: {e}"),
        }
    }
}

/// Feeds arbitrary bytes to a server `Connection` after a valid CONNECT (the first byte
/// chooses the version, chunking and the receive maximum), answering every event as an
/// accepting application would and publishing now and then; everything the engine writes
/// must be well-formed packets.
pub fn mqtt_engine_server(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let v = version(first);
    let chunk = 1 + (first as usize >> 1) % 17;
    let now = Instant::now();
    let mut cfg = Config::server();
    cfg.receive_maximum = 1 + (first >> 5) as u16;
    cfg.max_packet_size = 2048;
    let mut conn = Connection::server(cfg, now);
    let mut connect = Connect::new(v, "fuzz");
    connect.keep_alive = 5;
    if v == Version::V5 {
        connect.properties.receive_maximum = Some(3);
        connect.properties.topic_alias_maximum = Some(2);
        connect.properties.maximum_packet_size = Some(300);
    }
    let mut wire = BytesMut::new();
    encode(&Packet::Connect(Box::new(connect)), v, &mut wire);
    conn.handle_input(&wire, now);
    let mut seen = Decoder::new(v, MAX_PACKET_SIZE);
    let mut t = now;
    for (i, piece) in std::iter::once(&[][..])
        .chain(rest.chunks(chunk))
        .enumerate()
    {
        t += Duration::from_millis(100);
        conn.handle_input(piece, t);
        while let Some(e) = conn.poll_event() {
            match e {
                Event::Connect(_) => {
                    let _ = conn.accept(i % 2 == 0, Properties::default());
                }
                Event::Publish(p) if p.qos != QoS::AtMostOnce => {
                    let _ = conn.ack_publish(p.packet_id, ReasonCode::Success);
                }
                Event::Subscribe(s) => {
                    let reasons = s
                        .filters
                        .iter()
                        .map(|(_, o)| ReasonCode::granted(o.qos))
                        .collect();
                    let _ = conn.suback(s.packet_id, reasons, Properties::default());
                }
                Event::Unsubscribe(u) => {
                    let reasons = if v == Version::V5 {
                        vec![ReasonCode::Success; u.filters.len()]
                    } else {
                        vec![]
                    };
                    let _ = conn.unsuback(u.packet_id, reasons, Properties::default());
                }
                _ => {}
            }
        }
        if i % 3 == 0 && conn.can_send() {
            let qos = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce][i % 3];
            let _ = conn.publish(Publish::new("out/t", vec![i as u8; i % 50]).with_qos(qos));
        }
        if i % 7 == 6 {
            let state = conn.take_session_state();
            conn.restore_session(state);
        }
        let mut out = conn.output().split();
        check_output(&mut out, &mut seen);
        if conn.is_closed() {
            break;
        }
    }
    conn.handle_timeout(t + Duration::from_secs(10));
    let mut out = conn.output().split();
    check_output(&mut out, &mut seen);
}
