//! Shared helpers for the integration tests: proptest strategies for every AMQP value,
//! performative and message section, and a frame reader for engine output.
#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::option::of as opt;
use proptest::prelude::*;
use throng_amqp::codec::{format, Array, Fields, Symbol, Timestamp, Value};
use throng_amqp::definitions::*;
use throng_amqp::frame::{self, Frame};
use throng_amqp::message::{Body, MessageBuilder};

// ---- values ---------------------------------------------------------------------------

pub fn arb_symbol() -> impl Strategy<Value = Symbol> {
    prop_oneof![
        8 => "[a-zA-Z0-9:._-]{0,24}",
        1 => "[a-z]{250,300}", // sym32
    ]
    .prop_map(Symbol)
}

pub fn arb_string() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => any::<String>(),
        1 => "[ -~]{250,320}",                                          // str32, ASCII
        1 => vec(any::<char>(), 70..120).prop_map(|c| c.into_iter().collect()), // multi-byte
    ]
}

pub fn arb_binary() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        6 => vec(any::<u8>(), 0..32),
        1 => vec(any::<u8>(), 250..300), // vbin32
    ]
    .prop_map(Bytes::from)
}

fn arb_u32() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0u32), 1u32..256, any::<u32>()] // uint0, smalluint, uint
}

fn arb_u64() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), 1u64..256, any::<u64>()] // ulong0, smallulong, ulong
}

fn arb_i32() -> impl Strategy<Value = i32> {
    prop_oneof![-128i32..128, any::<i32>()] // smallint, int
}

fn arb_i64() -> impl Strategy<Value = i64> {
    prop_oneof![-128i64..128, any::<i64>()] // smalllong, long
}

/// The kinds of primitive value, each with a generator of one value of that kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Null,
    Bool,
    Ubyte,
    Ushort,
    Uint,
    Ulong,
    Byte,
    Short,
    Int,
    Long,
    Float,
    Double,
    Decimal32,
    Decimal64,
    Decimal128,
    Char,
    Timestamp,
    Uuid,
    Binary,
    String,
    Symbol,
}

pub const KINDS: [Kind; 21] = [
    Kind::Null,
    Kind::Bool,
    Kind::Ubyte,
    Kind::Ushort,
    Kind::Uint,
    Kind::Ulong,
    Kind::Byte,
    Kind::Short,
    Kind::Int,
    Kind::Long,
    Kind::Float,
    Kind::Double,
    Kind::Decimal32,
    Kind::Decimal64,
    Kind::Decimal128,
    Kind::Char,
    Kind::Timestamp,
    Kind::Uuid,
    Kind::Binary,
    Kind::String,
    Kind::Symbol,
];

impl Kind {
    /// The array element code of this kind (what a decoded array reports).
    pub fn family(self) -> u8 {
        use format::*;
        match self {
            Kind::Null => NULL,
            Kind::Bool => BOOLEAN,
            Kind::Ubyte => UBYTE,
            Kind::Ushort => USHORT,
            Kind::Uint => UINT,
            Kind::Ulong => ULONG,
            Kind::Byte => BYTE,
            Kind::Short => SHORT,
            Kind::Int => INT,
            Kind::Long => LONG,
            Kind::Float => FLOAT,
            Kind::Double => DOUBLE,
            Kind::Decimal32 => DECIMAL32,
            Kind::Decimal64 => DECIMAL64,
            Kind::Decimal128 => DECIMAL128,
            Kind::Char => CHAR,
            Kind::Timestamp => TIMESTAMP,
            Kind::Uuid => UUID,
            Kind::Binary => VBIN8,
            Kind::String => STR8,
            Kind::Symbol => SYM8,
        }
    }

    pub fn strategy(self) -> BoxedStrategy<Value> {
        match self {
            Kind::Null => Just(Value::Null).boxed(),
            Kind::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
            Kind::Ubyte => any::<u8>().prop_map(Value::Ubyte).boxed(),
            Kind::Ushort => any::<u16>().prop_map(Value::Ushort).boxed(),
            Kind::Uint => arb_u32().prop_map(Value::Uint).boxed(),
            Kind::Ulong => arb_u64().prop_map(Value::Ulong).boxed(),
            Kind::Byte => any::<i8>().prop_map(Value::Byte).boxed(),
            Kind::Short => any::<i16>().prop_map(Value::Short).boxed(),
            Kind::Int => arb_i32().prop_map(Value::Int).boxed(),
            Kind::Long => arb_i64().prop_map(Value::Long).boxed(),
            Kind::Float => any::<f32>()
                .prop_filter("NaN never equals itself", |f| !f.is_nan())
                .prop_map(Value::Float)
                .boxed(),
            Kind::Double => any::<f64>()
                .prop_filter("NaN never equals itself", |f| !f.is_nan())
                .prop_map(Value::Double)
                .boxed(),
            Kind::Decimal32 => any::<[u8; 4]>().prop_map(Value::Decimal32).boxed(),
            Kind::Decimal64 => any::<[u8; 8]>().prop_map(Value::Decimal64).boxed(),
            Kind::Decimal128 => any::<[u8; 16]>().prop_map(Value::Decimal128).boxed(),
            Kind::Char => any::<char>().prop_map(Value::Char).boxed(),
            Kind::Timestamp => any::<i64>().prop_map(Value::Timestamp).boxed(),
            Kind::Uuid => any::<[u8; 16]>().prop_map(Value::Uuid).boxed(),
            Kind::Binary => arb_binary().prop_map(Value::Binary).boxed(),
            Kind::String => arb_string().prop_map(Value::String).boxed(),
            Kind::Symbol => arb_symbol().prop_map(Value::Symbol).boxed(),
        }
    }
}

/// Any primitive (non-compound) value.
pub fn arb_primitive() -> BoxedStrategy<Value> {
    proptest::sample::select(KINDS.to_vec())
        .prop_flat_map(Kind::strategy)
        .boxed()
}

/// Any primitive except null.
pub fn arb_non_null_primitive() -> BoxedStrategy<Value> {
    arb_primitive()
        .prop_filter("not null", |v| *v != Value::Null)
        .boxed()
}

/// A homogeneous array of one primitive kind (possibly empty).
pub fn arb_primitive_array(max: usize) -> BoxedStrategy<Value> {
    proptest::sample::select(KINDS.to_vec())
        .prop_flat_map(move |k| {
            vec(k.strategy(), 0..max).prop_map(move |items| {
                Value::Array(Array {
                    element_code: k.family(),
                    descriptor: None,
                    items,
                })
            })
        })
        .boxed()
}

/// A descriptor as peers use them: a numeric code or a symbol.
pub fn arb_descriptor() -> BoxedStrategy<Value> {
    prop_oneof![
        arb_u64().prop_map(Value::Ulong),
        arb_symbol().prop_map(Value::Symbol)
    ]
    .boxed()
}

/// A described array: a shared descriptor and elements of one primitive kind.
pub fn arb_described_array() -> BoxedStrategy<Value> {
    (arb_descriptor(), proptest::sample::select(KINDS.to_vec()))
        .prop_flat_map(|(d, k)| {
            vec(k.strategy(), 0..6).prop_map(move |items| {
                Value::Array(Array {
                    element_code: format::DESCRIBED,
                    descriptor: Some(Box::new(d.clone())),
                    items,
                })
            })
        })
        .boxed()
}

/// Any value: primitives, lists, maps, arrays of every element type (including arrays of
/// lists, maps and arrays, and described arrays) and described values, nested.
pub fn arb_value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        6 => arb_primitive(),
        1 => arb_primitive_array(6),
        1 => arb_described_array(),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::List),
            vec((inner.clone(), inner.clone()), 0..4).prop_map(Value::Map),
            (arb_descriptor(), inner.clone())
                .prop_map(|(d, v)| Value::Described(Box::new(d), Box::new(v))),
            // arrays of lists, of maps, of arrays (each inner array has its own type)
            vec(vec(inner.clone(), 0..4).prop_map(Value::List), 0..4).prop_map(|items| {
                Value::Array(Array {
                    element_code: format::LIST32,
                    descriptor: None,
                    items,
                })
            }),
            vec(
                vec((inner.clone(), inner.clone()), 0..3).prop_map(Value::Map),
                0..4
            )
            .prop_map(|items| Value::Array(Array {
                element_code: format::MAP32,
                descriptor: None,
                items
            })),
            vec(arb_primitive_array(5), 0..4).prop_map(|items| {
                Value::Array(Array {
                    element_code: format::ARRAY32,
                    descriptor: None,
                    items,
                })
            }),
            // a described array of lists
            (
                arb_descriptor(),
                vec(vec(inner.clone(), 0..3).prop_map(Value::List), 0..3)
            )
                .prop_map(|(d, items)| Value::Array(Array {
                    element_code: format::DESCRIBED,
                    descriptor: Some(Box::new(d)),
                    items,
                })),
        ]
    })
    .boxed()
}

/// Any value that is not null (for fields where null means "absent").
pub fn arb_non_null_value() -> BoxedStrategy<Value> {
    arb_value()
        .prop_filter("not null", |v| *v != Value::Null)
        .boxed()
}

// ---- definitions ----------------------------------------------------------------------

pub fn arb_symbols() -> BoxedStrategy<Vec<Symbol>> {
    vec(arb_symbol(), 0..4).boxed()
}

pub fn arb_fields() -> BoxedStrategy<Fields> {
    vec((arb_symbol(), arb_value()), 0..4).boxed()
}

pub fn arb_role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Sender), Just(Role::Receiver)]
}

pub fn arb_snd_settle_mode() -> impl Strategy<Value = SenderSettleMode> {
    prop_oneof![
        Just(SenderSettleMode::Unsettled),
        Just(SenderSettleMode::Settled),
        Just(SenderSettleMode::Mixed)
    ]
}

pub fn arb_rcv_settle_mode() -> impl Strategy<Value = ReceiverSettleMode> {
    prop_oneof![
        Just(ReceiverSettleMode::First),
        Just(ReceiverSettleMode::Second)
    ]
}

pub fn arb_error() -> BoxedStrategy<Error> {
    (arb_symbol(), opt(arb_string()), opt(arb_fields()))
        .prop_map(|(condition, description, info)| Error {
            condition,
            description,
            info,
        })
        .boxed()
}

pub fn arb_delivery_state() -> BoxedStrategy<DeliveryState> {
    prop_oneof![
        (any::<u32>(), any::<u64>()).prop_map(|(section_number, section_offset)| {
            DeliveryState::Received(Received {
                section_number,
                section_offset,
            })
        }),
        Just(DeliveryState::Accepted),
        opt(arb_error()).prop_map(|error| DeliveryState::Rejected(Rejected { error })),
        Just(DeliveryState::Released),
        (opt(any::<bool>()), opt(any::<bool>()), opt(arb_fields())).prop_map(|(f, u, a)| {
            DeliveryState::Modified(Modified {
                delivery_failed: f,
                undeliverable_here: u,
                message_annotations: a,
            })
        }),
        (prop_oneof![Just(0x33u64), Just(0x34u64)], arb_value())
            .prop_map(|(code, v)| DeliveryState::Other(code, v)),
    ]
    .boxed()
}

pub fn arb_source() -> BoxedStrategy<Source> {
    (
        (
            opt(arb_string()),
            opt(arb_u32()),
            opt(arb_symbol()),
            opt(arb_u32()),
            opt(any::<bool>()),
        ),
        (opt(arb_fields()), opt(arb_symbol()), opt(arb_fields())),
        (
            opt(arb_delivery_state()),
            opt(arb_symbols()),
            opt(arb_symbols()),
        ),
    )
        .prop_map(|((a, d, e, t, dy), (dnp, dm, f), (dout, o, c))| Source {
            address: a,
            durable: d,
            expiry_policy: e,
            timeout: t,
            dynamic: dy,
            dynamic_node_properties: dnp,
            distribution_mode: dm,
            filter: f,
            default_outcome: dout,
            outcomes: o,
            capabilities: c,
        })
        .boxed()
}

pub fn arb_target() -> BoxedStrategy<Target> {
    (
        opt(arb_string()),
        opt(arb_u32()),
        opt(arb_symbol()),
        opt(arb_u32()),
        opt(any::<bool>()),
        opt(arb_fields()),
        opt(arb_symbols()),
    )
        .prop_map(|(a, d, e, t, dy, dnp, c)| Target {
            address: a,
            durable: d,
            expiry_policy: e,
            timeout: t,
            dynamic: dy,
            dynamic_node_properties: dnp,
            capabilities: c,
        })
        .boxed()
}

pub fn arb_target_terminus() -> BoxedStrategy<TargetTerminus> {
    prop_oneof![
        arb_target().prop_map(TargetTerminus::Target),
        opt(arb_symbols())
            .prop_map(|capabilities| TargetTerminus::Coordinator(Coordinator { capabilities })),
    ]
    .boxed()
}

pub fn arb_open() -> BoxedStrategy<Open> {
    (
        (
            arb_string(),
            opt(arb_string()),
            opt(arb_u32()),
            opt(any::<u16>()),
            opt(arb_u32()),
        ),
        (
            opt(arb_symbols()),
            opt(arb_symbols()),
            opt(arb_symbols()),
            opt(arb_symbols()),
        ),
        opt(arb_fields()),
    )
        .prop_map(|((c, h, mf, cm, it), (ol, il, oc, dc), p)| Open {
            container_id: c,
            hostname: h,
            max_frame_size: mf,
            channel_max: cm,
            idle_time_out: it,
            outgoing_locales: ol,
            incoming_locales: il,
            offered_capabilities: oc,
            desired_capabilities: dc,
            properties: p,
        })
        .boxed()
}

pub fn arb_begin() -> BoxedStrategy<Begin> {
    (
        opt(any::<u16>()),
        arb_u32(),
        arb_u32(),
        arb_u32(),
        opt(arb_u32()),
        opt(arb_symbols()),
        opt(arb_symbols()),
        opt(arb_fields()),
    )
        .prop_map(|(rc, no, iw, ow, hm, oc, dc, p)| Begin {
            remote_channel: rc,
            next_outgoing_id: no,
            incoming_window: iw,
            outgoing_window: ow,
            handle_max: hm,
            offered_capabilities: oc,
            desired_capabilities: dc,
            properties: p,
        })
        .boxed()
}

pub fn arb_attach() -> BoxedStrategy<Attach> {
    (
        (
            arb_string(),
            arb_u32(),
            arb_role(),
            opt(arb_snd_settle_mode()),
            opt(arb_rcv_settle_mode()),
        ),
        (
            opt(arb_source()),
            opt(arb_target_terminus()),
            opt(arb_non_null_value()),
        ),
        (opt(any::<bool>()), opt(arb_u32()), opt(arb_u64())),
        (opt(arb_symbols()), opt(arb_symbols()), opt(arb_fields())),
    )
        .prop_map(
            |((n, h, r, ssm, rsm), (s, t, u), (iu, idc, mms), (oc, dc, p))| Attach {
                name: n,
                handle: h,
                role: r,
                snd_settle_mode: ssm,
                rcv_settle_mode: rsm,
                source: s,
                target: t,
                unsettled: u,
                incomplete_unsettled: iu,
                initial_delivery_count: idc,
                max_message_size: mms,
                offered_capabilities: oc,
                desired_capabilities: dc,
                properties: p,
            },
        )
        .boxed()
}

pub fn arb_flow() -> BoxedStrategy<Flow> {
    (
        (
            opt(arb_u32()),
            arb_u32(),
            arb_u32(),
            arb_u32(),
            opt(arb_u32()),
        ),
        (opt(arb_u32()), opt(arb_u32()), opt(arb_u32())),
        (opt(any::<bool>()), opt(any::<bool>()), opt(arb_fields())),
    )
        .prop_map(|((ni, iw, no, ow, h), (dc, lc, av), (dr, ec, p))| Flow {
            next_incoming_id: ni,
            incoming_window: iw,
            next_outgoing_id: no,
            outgoing_window: ow,
            handle: h,
            delivery_count: dc,
            link_credit: lc,
            available: av,
            drain: dr,
            echo: ec,
            properties: p,
        })
        .boxed()
}

pub fn arb_transfer() -> BoxedStrategy<Transfer> {
    (
        (arb_u32(), opt(arb_u32()), opt(arb_binary()), opt(arb_u32())),
        (
            opt(any::<bool>()),
            opt(any::<bool>()),
            opt(arb_rcv_settle_mode()),
        ),
        (
            opt(arb_delivery_state()),
            opt(any::<bool>()),
            opt(any::<bool>()),
            opt(any::<bool>()),
        ),
    )
        .prop_map(
            |((h, id, tag, mf), (s, m, rsm), (st, re, ab, ba))| Transfer {
                handle: h,
                delivery_id: id,
                delivery_tag: tag,
                message_format: mf,
                settled: s,
                more: m,
                rcv_settle_mode: rsm,
                state: st,
                resume: re,
                aborted: ab,
                batchable: ba,
            },
        )
        .boxed()
}

pub fn arb_disposition() -> BoxedStrategy<Disposition> {
    (
        arb_role(),
        arb_u32(),
        opt(arb_u32()),
        opt(any::<bool>()),
        opt(arb_delivery_state()),
        opt(any::<bool>()),
    )
        .prop_map(
            |(role, first, last, settled, state, batchable)| Disposition {
                role,
                first,
                last,
                settled,
                state,
                batchable,
            },
        )
        .boxed()
}

pub fn arb_performative() -> BoxedStrategy<Performative> {
    prop_oneof![
        arb_open().prop_map(Performative::Open),
        arb_begin().prop_map(Performative::Begin),
        arb_attach().prop_map(|a| Performative::Attach(Box::new(a))),
        arb_flow().prop_map(Performative::Flow),
        arb_transfer().prop_map(Performative::Transfer),
        arb_disposition().prop_map(Performative::Disposition),
        (arb_u32(), opt(any::<bool>()), opt(arb_error())).prop_map(|(handle, closed, error)| {
            Performative::Detach(Detach {
                handle,
                closed,
                error,
            })
        }),
        opt(arb_error()).prop_map(|error| Performative::End(End { error })),
        opt(arb_error()).prop_map(|error| Performative::Close(Close { error })),
    ]
    .boxed()
}

pub fn arb_sasl() -> BoxedStrategy<SaslFrame> {
    prop_oneof![
        arb_symbols().prop_map(|m| SaslFrame::Mechanisms(SaslMechanisms {
            sasl_server_mechanisms: m
        })),
        (arb_symbol(), opt(arb_binary()), opt(arb_string())).prop_map(|(m, r, h)| {
            SaslFrame::Init(SaslInit {
                mechanism: m,
                initial_response: r,
                hostname: h,
            })
        }),
        arb_binary().prop_map(|c| SaslFrame::Challenge(SaslChallenge { challenge: c })),
        arb_binary().prop_map(|r| SaslFrame::Response(SaslResponse { response: r })),
        (any::<u8>(), opt(arb_binary())).prop_map(|(code, additional_data)| {
            SaslFrame::Outcome(SaslOutcome {
                code,
                additional_data,
            })
        }),
    ]
    .boxed()
}

// ---- messages -------------------------------------------------------------------------

pub fn arb_header() -> BoxedStrategy<Header> {
    (
        opt(any::<bool>()),
        opt(any::<u8>()),
        opt(arb_u32()),
        opt(any::<bool>()),
        opt(arb_u32()),
    )
        .prop_map(
            |(durable, priority, ttl, first_acquirer, delivery_count)| Header {
                durable,
                priority,
                ttl,
                first_acquirer,
                delivery_count,
            },
        )
        .boxed()
}

pub fn arb_properties() -> BoxedStrategy<Properties> {
    (
        (
            opt(arb_non_null_primitive()),
            opt(arb_binary()),
            opt(arb_string()),
            opt(arb_string()),
        ),
        (
            opt(arb_string()),
            opt(arb_non_null_primitive()),
            opt(arb_symbol()),
            opt(arb_symbol()),
        ),
        (
            opt(any::<i64>()),
            opt(any::<i64>()),
            opt(arb_string()),
            opt(arb_u32()),
            opt(arb_string()),
        ),
    )
        .prop_map(
            |((mid, uid, to, subj), (rt, cid, ct, ce), (aet, ctime, gid, gs, rtg))| Properties {
                message_id: mid,
                user_id: uid,
                to,
                subject: subj,
                reply_to: rt,
                correlation_id: cid,
                content_type: ct,
                content_encoding: ce,
                absolute_expiry_time: aet.map(Timestamp),
                creation_time: ctime.map(Timestamp),
                group_id: gid,
                group_sequence: gs,
                reply_to_group_id: rtg,
            },
        )
        .boxed()
}

pub fn arb_body() -> BoxedStrategy<Option<Body>> {
    prop_oneof![
        Just(None),
        Just(Some(Body::Empty)),
        arb_binary().prop_map(|b| Some(Body::Data(b))),
        arb_value().prop_map(|v| Some(Body::Value(v))),
        vec(arb_value(), 1..4).prop_map(|s| Some(Body::Sequence(s))),
    ]
    .boxed()
}

pub fn arb_message() -> BoxedStrategy<MessageBuilder> {
    (
        opt(arb_header()),
        opt(arb_fields()),
        opt(arb_properties()),
        vec((arb_string(), arb_value()), 0..4),
        arb_body(),
    )
        .prop_map(
            |(header, message_annotations, properties, application_properties, body)| {
                MessageBuilder {
                    header,
                    message_annotations,
                    properties,
                    application_properties,
                    body,
                }
            },
        )
        .boxed()
}

// ---- frames ---------------------------------------------------------------------------

/// Splits an engine's output into its protocol headers and frames.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // a test helper, built a handful of times
pub enum Unit {
    Header([u8; 8]),
    Frame(Frame),
    /// A frame that did not decode (reading stops there).
    Broken(String),
}

/// Reads the headers and frames in `bytes` (which must hold only complete units).
pub fn read_units(bytes: &[u8]) -> Vec<Unit> {
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while !buf.is_empty() {
        if buf.starts_with(b"AMQP") {
            let h = buf.split_to(8);
            out.push(Unit::Header(h[..].try_into().unwrap()));
            continue;
        }
        match frame::decode_frame(&mut buf, u32::MAX) {
            Ok(Some(f)) => out.push(Unit::Frame(f)),
            Ok(None) => panic!("incomplete frame in output: {} bytes left", buf.len()),
            Err(e) => {
                out.push(Unit::Broken(e.to_string()));
                break;
            }
        }
    }
    out
}

/// The frames (not headers) in `bytes`.
pub fn read_frames(bytes: &[u8]) -> Vec<Frame> {
    read_units(bytes)
        .into_iter()
        .filter_map(|u| match u {
            Unit::Frame(f) => Some(f),
            Unit::Header(_) => None,
            Unit::Broken(e) => panic!("undecodable frame in output: {e}"),
        })
        .collect()
}

/// The sizes of the frames in `bytes` (headers skipped).
pub fn frame_sizes(bytes: &[u8]) -> Vec<usize> {
    let mut sizes = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"AMQP") {
            i += 8;
            continue;
        }
        let size = u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap()) as usize;
        sizes.push(size);
        i += size;
    }
    sizes
}

/// The performatives among `frames`.
pub fn performatives(frames: &[Frame]) -> Vec<Performative> {
    frames
        .iter()
        .filter_map(|f| match f {
            Frame::Amqp { performative, .. } => Some(performative.clone()),
            _ => None,
        })
        .collect()
}

/// An encoded performative frame, as a peer would send it.
pub fn perf_frame(channel: u16, p: &Performative) -> BytesMut {
    let mut b = BytesMut::new();
    frame::write_performative(&mut b, channel, p);
    b
}

/// An encoded transfer frame with a payload.
pub fn transfer_frame(channel: u16, t: &Transfer, payload: &[u8]) -> BytesMut {
    let mut b = BytesMut::new();
    let start = frame::begin_frame(&mut b, frame::TYPE_AMQP, channel);
    t.encode(&mut b);
    b.extend_from_slice(payload);
    frame::end_frame(&mut b, start);
    b
}
