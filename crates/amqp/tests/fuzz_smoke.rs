//! Runs the fuzz target bodies (`tests/fuzz_bodies`, shared with `fuzz/fuzz_targets`) over
//! a few thousand deterministic inputs each: valid encodings mutated by a fixed-seed
//! xorshift generator, plus pure noise, so every `cargo test` exercises the decoders and
//! the engine on hostile input without a fuzzer.

mod fuzz_bodies;

use bytes::{Bytes, BytesMut};
use throng_amqp::codec::{encode, Array, Symbol, Value};
use throng_amqp::definitions::*;
use throng_amqp::frame;
use throng_amqp::message::MessageBuilder;

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

/// Bytes that matter to the codec: format codes, sizes at their limits.
const INTERESTING: [u8; 16] = [
    0x00, 0x40, 0x41, 0x43, 0x45, 0x53, 0x56, 0xa1, 0xb1, 0xc0, 0xd0, 0xe0, 0xf0, 0x7f, 0x80, 0xff,
];

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = v.len();
        match rng.below(7) {
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
            3 if len > 0 => {
                v.remove(rng.below(len));
            }
            4 => v.truncate(rng.below(len + 1)),
            5 if len > 4 => {
                // a 32-bit size or count set to something large
                let i = rng.below(len - 3);
                let big = [0xffff_ffffu32, 0x8000_0000, 0x0001_0000, 0x0000_0100][rng.below(4)];
                v[i..i + 4].copy_from_slice(&big.to_be_bytes());
            }
            6 if len > 1 => {
                // duplicate a slice somewhere else
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

fn value(v: &Value) -> Vec<u8> {
    let mut b = BytesMut::new();
    encode::value(&mut b, v);
    b.to_vec()
}

fn sample_values() -> Vec<Value> {
    let syms = |n: usize| {
        (0..n)
            .map(|i| Value::Symbol(Symbol::new(format!("s{i}"))))
            .collect()
    };
    vec![
        Value::Null,
        Value::Uint(300),
        Value::String("hello".into()),
        Value::List(vec![
            Value::Int(-1),
            Value::Binary(Bytes::from_static(b"\x00\x01")),
            Value::Null,
        ]),
        Value::Map(vec![(
            Value::Symbol(Symbol::new("k")),
            Value::List(vec![Value::Bool(true)]),
        )]),
        Value::Array(Array {
            element_code: 0xa3,
            descriptor: None,
            items: syms(3),
        }),
        Value::Array(Array {
            element_code: 0x00,
            descriptor: Some(Box::new(Value::Ulong(0x77))),
            items: vec![Value::List(vec![Value::Uint(1)]), Value::List(vec![])],
        }),
        Value::Array(Array {
            element_code: 0xf0,
            descriptor: None,
            items: vec![Value::Array(Array {
                element_code: 0x40,
                descriptor: None,
                items: vec![Value::Null; 4],
            })],
        }),
        Value::Described(
            Box::new(Value::Symbol(Symbol::new("x:y"))),
            Box::new(Value::Double(1.5)),
        ),
        Value::List(vec![Value::String("x".repeat(300)); 2]),
        Value::Char('€'),
        Value::Timestamp(12345),
        Value::Uuid([3; 16]),
    ]
}

fn sample_performatives() -> Vec<Performative> {
    let err = Some(Error::new(condition::NOT_FOUND, "nope"));
    vec![
        Performative::Open(Open {
            container_id: "c".into(),
            max_frame_size: Some(512),
            channel_max: Some(3),
            idle_time_out: Some(1000),
            offered_capabilities: Some(vec![Symbol::new("ANONYMOUS-RELAY"), Symbol::new("x")]),
            properties: Some(vec![(Symbol::new("product"), Value::String("p".into()))]),
            ..Open::default()
        }),
        Performative::Begin(Begin {
            next_outgoing_id: 0,
            incoming_window: 5,
            outgoing_window: 5,
            ..Begin::default()
        }),
        Performative::Attach(Box::new(Attach {
            name: "l".into(),
            handle: 0,
            role: Role::Sender,
            source: Some(Source {
                address: Some("a".into()),
                filter: Some(vec![(
                    Symbol::new("f"),
                    Value::Described(Box::new(Value::Ulong(1)), Box::new(Value::Null)),
                )]),
                default_outcome: Some(DeliveryState::Released),
                ..Source::default()
            }),
            target: Some(TargetTerminus::Target(Target {
                address: Some("q".into()),
                ..Target::default()
            })),
            initial_delivery_count: Some(0),
            ..Attach::default()
        })),
        Performative::Attach(Box::new(Attach {
            name: "r".into(),
            handle: 1,
            role: Role::Receiver,
            source: Some(Source {
                address: Some("q".into()),
                ..Source::default()
            }),
            target: Some(TargetTerminus::Coordinator(Coordinator::default())),
            ..Attach::default()
        })),
        Performative::Flow(Flow {
            next_incoming_id: Some(0),
            incoming_window: 10,
            next_outgoing_id: 0,
            outgoing_window: 10,
            handle: Some(1),
            delivery_count: Some(0),
            link_credit: Some(5),
            drain: Some(true),
            echo: Some(true),
            ..Flow::default()
        }),
        Performative::Disposition(Disposition {
            role: Role::Receiver,
            first: 0,
            last: Some(3),
            settled: Some(true),
            state: Some(DeliveryState::Rejected(Rejected { error: err.clone() })),
            batchable: None,
        }),
        Performative::Detach(Detach {
            handle: 0,
            closed: Some(true),
            error: err.clone(),
        }),
        Performative::End(End { error: err.clone() }),
        Performative::Close(Close { error: err }),
    ]
}

fn frames_of(perfs: &[Performative]) -> Vec<u8> {
    let mut b = BytesMut::new();
    for p in perfs {
        frame::write_performative(&mut b, 0, p);
    }
    b.to_vec()
}

fn transfer(handle: u32, id: u32, more: bool, payload: &[u8]) -> Vec<u8> {
    let mut b = BytesMut::new();
    let start = frame::begin_frame(&mut b, frame::TYPE_AMQP, 0);
    Transfer {
        handle,
        delivery_id: Some(id),
        delivery_tag: Some(Bytes::copy_from_slice(&id.to_be_bytes())),
        more: Some(more),
        ..Transfer::default()
    }
    .encode(&mut b);
    b.extend_from_slice(payload);
    frame::end_frame(&mut b, start);
    b.to_vec()
}

fn sample_messages() -> Vec<Vec<u8>> {
    let props = Properties {
        message_id: Some(Value::Ulong(1)),
        to: Some("q".into()),
        ..Properties::default()
    };
    vec![
        MessageBuilder::new().data(&b"hi"[..]).encode().to_vec(),
        MessageBuilder::new()
            .header(Header {
                durable: Some(true),
                ..Header::default()
            })
            .properties(props.clone())
            .app_property("k", Value::Int(1))
            .value(Value::List(vec![Value::Null, Value::Uint(1)]))
            .encode()
            .to_vec(),
        MessageBuilder {
            message_annotations: Some(vec![(Symbol::new("x-opt-a"), Value::Bool(true))]),
            properties: Some(props),
            ..MessageBuilder::default()
        }
        .data(vec![7u8; 300])
        .encode()
        .to_vec(),
        {
            let mut m = MessageBuilder::new().value(Value::Null).encode().to_vec();
            // a footer
            m.extend_from_slice(&[0x00, 0x53, 0x78, 0xc1, 0x01, 0x00]);
            m
        },
    ]
}

fn value_seeds() -> Vec<Vec<u8>> {
    sample_values().iter().map(value).collect()
}

fn frame_seeds() -> Vec<Vec<u8>> {
    let perfs = sample_performatives();
    let mut seeds: Vec<Vec<u8>> = perfs
        .iter()
        .map(|p| frames_of(std::slice::from_ref(p)))
        .collect();
    seeds.push(frames_of(&perfs));
    seeds.push(transfer(0, 7, false, b"payload"));
    let mut sasl = BytesMut::new();
    frame::write_sasl(
        &mut sasl,
        &SaslFrame::Mechanisms(SaslMechanisms {
            sasl_server_mechanisms: vec![Symbol::new("PLAIN"), Symbol::new("ANONYMOUS")],
        }),
    );
    frame::write_sasl(
        &mut sasl,
        &SaslFrame::Outcome(SaslOutcome {
            code: 0,
            additional_data: None,
        }),
    );
    seeds.push(sasl.to_vec());
    seeds.push(vec![0, 0, 0, 8, 2, 0, 0, 0]);
    seeds
}

/// Inputs for the engine_server body: a mode byte, then (unless the mode has the body
/// send them) an open and a begin, then links, flow, transfers, a disposition and the
/// endings.
fn engine_seeds() -> Vec<Vec<u8>> {
    let perfs = sample_performatives();
    let mut session = frames_of(&perfs[2..6]);
    session.extend(transfer(0, 0, true, b"part one "));
    session.extend(transfer(0, 0, false, b"part two"));
    session.extend(transfer(
        0,
        1,
        false,
        &MessageBuilder::new().data(&b"m"[..]).encode(),
    ));
    session.extend(frames_of(&perfs[6..]));
    let mut seeds = Vec::new();
    for mode in [0u8, 1, 2, 3, 7, 0x0b, 0x13, 0xfb] {
        let mut s = vec![mode];
        if mode & 2 == 0 {
            s.extend(frames_of(&perfs[..2]));
        }
        s.extend(&session);
        seeds.push(s);
    }
    seeds
}

#[test]
fn value_decode_target() {
    run(
        "value_decode",
        &value_seeds(),
        10_000,
        fuzz_bodies::value_decode,
        0x1234_5678_9abc_def1,
    );
}

#[test]
fn frame_decode_target() {
    run(
        "frame_decode",
        &frame_seeds(),
        10_000,
        fuzz_bodies::frame_decode,
        0x0bad_cafe_f00d_0001,
    );
}

#[test]
fn message_parse_target() {
    run(
        "message_parse",
        &sample_messages(),
        10_000,
        fuzz_bodies::message_parse,
        0x5eed_0000_0000_0042,
    );
}

#[test]
fn engine_server_target() {
    let seeds = engine_seeds();
    // unmutated, the seeds drive the server through links, transfers and dispositions
    for s in &seeds {
        let out = fuzz_bodies::engine_server(s);
        let mut buf = BytesMut::from(&out[..]);
        let mut kinds = Vec::new();
        while !buf.is_empty() {
            if buf.starts_with(b"AMQP") {
                let _ = buf.split_to(8);
                continue;
            }
            if let Some(frame::Frame::Amqp { performative, .. }) =
                frame::decode_frame(&mut buf, u32::MAX).unwrap()
            {
                kinds.push(std::mem::discriminant(&performative));
            }
        }
        let has = |p: Performative| kinds.contains(&std::mem::discriminant(&p));
        let mode = s[0];
        assert!(has(Performative::Attach(Box::default())), "mode {mode:#x}");
        assert!(
            has(Performative::Transfer(Transfer::default())),
            "mode {mode:#x}"
        );
        if (mode >> 3) & 3 == 0 {
            // fed a byte at a time, each delivery is settled before the peer detaches
            assert!(
                has(Performative::Disposition(Disposition::default())),
                "mode {mode:#x}"
            );
        }
        assert!(has(Performative::Close(Close::default())), "mode {mode:#x}");
    }
    run(
        "engine_server",
        &seeds,
        5_000,
        |d| drop(fuzz_bodies::engine_server(d)),
        0xfeed_beef_0000_0007,
    );
}

/// Writes the seeds above as a starting corpus for cargo-fuzz:
/// `cargo test -p throng-amqp --test fuzz_smoke -- --ignored write_fuzz_corpus`
/// fills `fuzz/corpus/<target>/` (see fuzz/README.md).
#[test]
#[ignore = "writes files; run by hand before fuzzing"]
fn write_fuzz_corpus() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    for (target, seeds) in [
        ("value_decode", value_seeds()),
        ("frame_decode", frame_seeds()),
        ("message_parse", sample_messages()),
        ("engine_server", engine_seeds()),
    ] {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, seed) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:02}")), seed).unwrap();
        }
    }
}
