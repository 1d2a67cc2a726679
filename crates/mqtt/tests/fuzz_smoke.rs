//! Runs the fuzz target bodies (`tests/fuzz_bodies`, shared with `fuzz/fuzz_targets`) over
//! a few thousand deterministic inputs each: valid encodings mutated by a fixed-seed
//! xorshift generator, plus pure noise, so every `cargo test` exercises the decoder and
//! the engine on hostile input without a fuzzer.

mod fuzz_bodies;

use bytes::{Bytes, BytesMut};
use throng_mqtt::codec::*;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes that matter to the codec: packet types, varint continuation, property ids.
const INTERESTING: [u8; 16] = [
    0x00, 0x01, 0x02, 0x0b, 0x23, 0x26, 0x30, 0x32, 0x34, 0x62, 0x7f, 0x80, 0x82, 0xe0, 0xf0, 0xff,
];

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = v.len();
        match rng.below(6) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                v[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 => {
                let i = rng.below(len + 1);
                v.insert(i, rng.next() as u8);
            }
            3 if len > 1 => {
                v.remove(1 + rng.below(len - 1));
            }
            4 => v.truncate(rng.below(len + 1)),
            5 if len > 1 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(16)).min(len);
                let chunk = v[a..b].to_vec();
                let at = rng.below(len + 1);
                v.splice(at..at, chunk);
            }
            _ => {}
        }
    }
    v
}

fn run(name: &str, seeds: &[Vec<u8>], cases: usize, body: fn(&[u8]), seed: u64) {
    let mut rng = Rng(seed);
    for s in seeds {
        body(s);
    }
    for i in 0..cases {
        let input = if i % 8 == 7 {
            (0..rng.below(64)).map(|_| rng.next() as u8).collect()
        } else {
            let s = &seeds[rng.below(seeds.len())];
            mutate(&mut rng, s)
        };
        let outcome = std::panic::catch_unwind(|| body(&input));
        if outcome.is_err() {
            panic!("{name}: case {i} failed on input {input:02x?}");
        }
    }
}

fn sample_packets(v: Version) -> Vec<Packet> {
    let s = ByteStr::from;
    let props = Properties::from(PropertySet {
        content_type: Some(s("text/plain")),
        user_properties: vec![(s("k"), s("v"))],
        message_expiry_interval: Some(30),
        correlation_data: Some(Bytes::from_static(b"\x01\x02")),
        ..PropertySet::default()
    });
    let mut connect = Connect::new(v, "client");
    connect.will = Some(Will {
        topic: s("will/t"),
        payload: Bytes::from_static(b"bye"),
        qos: QoS::AtLeastOnce,
        retain: true,
        properties: Properties::default(),
    });
    connect.username = Some(s("u"));
    connect.password = Some(Bytes::from_static(b"p"));
    vec![
        Packet::Connect(Box::new(connect)),
        Packet::ConnAck(ConnAck {
            session_present: true,
            reason: ReasonCode::Success,
            properties: Properties::default(),
        }),
        Packet::Publish(Publish {
            packet_id: 5,
            properties: props.clone(),
            ..Publish::new("a/b", Bytes::from_static(b"payload")).with_qos(QoS::ExactlyOnce)
        }),
        Packet::Publish(Publish::new("x", Bytes::from_static(b"q0"))),
        Packet::PubAck(PubResponse::new(5)),
        Packet::PubRec(PubResponse::new(6)),
        Packet::PubRel(PubResponse::new(6)),
        Packet::PubComp(PubResponse::new(6)),
        Packet::Subscribe(Subscribe {
            packet_id: 2,
            properties: Properties::default(),
            filters: vec![
                (s("a/#"), SubscriptionOptions::qos(QoS::AtLeastOnce)),
                (s("+/x"), SubscriptionOptions::default()),
            ],
        }),
        Packet::SubAck(SubAck {
            packet_id: 2,
            properties: Properties::default(),
            reasons: vec![ReasonCode::GrantedQoS1],
        }),
        Packet::Unsubscribe(Unsubscribe {
            packet_id: 3,
            properties: Properties::default(),
            filters: vec![s("a/#")],
        }),
        Packet::PingReq,
        Packet::Disconnect(Disconnect {
            reason: ReasonCode::Success,
            properties: Properties::default(),
        }),
    ]
}

fn seeds_for(prefix_bit: u8, sequence: bool) -> Vec<Vec<u8>> {
    let v = if prefix_bit & 1 == 0 {
        Version::V311
    } else {
        Version::V5
    };
    let packets = sample_packets(v);
    let mut seeds = vec![];
    for p in &packets {
        if sequence && matches!(p, Packet::Connect(_)) {
            continue;
        }
        let mut b = BytesMut::new();
        b.extend_from_slice(&[prefix_bit]);
        encode(p, v, &mut b);
        seeds.push(b.to_vec());
    }
    // everything at once
    let mut all = BytesMut::new();
    all.extend_from_slice(&[prefix_bit]);
    for p in &packets {
        if sequence && matches!(p, Packet::Connect(_)) {
            continue;
        }
        encode(p, v, &mut all);
    }
    seeds.push(all.to_vec());
    seeds
}

#[test]
fn mqtt_decode_smoke() {
    let mut seeds = seeds_for(0, false);
    seeds.extend(seeds_for(1, false));
    run(
        "mqtt_decode",
        &seeds,
        6000,
        fuzz_bodies::mqtt_decode,
        0x9e37_79b9_7f4a_7c15,
    );
}

#[test]
fn mqtt_engine_server_smoke() {
    let mut seeds = vec![];
    for prefix in [0x00u8, 0x01, 0x21, 0x40, 0xe3] {
        seeds.extend(seeds_for(prefix, true));
    }
    run(
        "mqtt_engine_server",
        &seeds,
        4000,
        fuzz_bodies::mqtt_engine_server,
        0x2545_f491_4f6c_dd1d,
    );
}
