//! Codec round trips: every value type, every performative and SASL frame, and messages,
//! encoded and decoded again; plus byte vectors from the specification and other peers.

mod common;

use bytes::{Bytes, BytesMut};
use common::*;
use proptest::collection::vec;
use proptest::prelude::*;
use throng_amqp::codec::{encode, format, Array, Decoder, Symbol, Value};
use throng_amqp::definitions::*;
use throng_amqp::frame::{self, Frame};
use throng_amqp::message::{Body, Message, MessageBuilder};

fn encoded(v: &Value) -> Bytes {
    let mut buf = BytesMut::new();
    encode::value(&mut buf, v);
    buf.freeze()
}

/// Encodes `v`, decodes it back and checks that the whole encoding was consumed, by both
/// `read_value` and `skip_value`. Returns the encoding.
fn roundtrip(v: &Value) -> Bytes {
    let bytes = encoded(v);
    let mut d = Decoder::new(&bytes);
    let back = d
        .read_value()
        .unwrap_or_else(|e| panic!("{v:?} -> {bytes:02x?}: {e}"));
    assert_eq!(&back, v, "encoding {bytes:02x?}");
    assert_eq!(d.remaining(), 0, "read_value left bytes of {bytes:02x?}");
    let mut d = Decoder::new(&bytes);
    d.skip_value().unwrap();
    assert_eq!(d.remaining(), 0, "skip_value left bytes of {bytes:02x?}");
    bytes
}

fn decode(bytes: &[u8]) -> Value {
    let buf = Bytes::copy_from_slice(bytes);
    let mut d = Decoder::new(&buf);
    let v = d
        .read_value()
        .unwrap_or_else(|e| panic!("{bytes:02x?}: {e}"));
    assert_eq!(d.remaining(), 0, "{bytes:02x?} not fully consumed");
    v
}

fn frame_roundtrip_amqp(channel: u16, p: &Performative) {
    let mut buf = BytesMut::new();
    frame::write_performative(&mut buf, channel, p);
    let size = u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize;
    assert_eq!(size, buf.len(), "frame size field");
    let f = frame::decode_frame(&mut buf, 1 << 24)
        .unwrap()
        .expect("a whole frame");
    assert_eq!(
        f,
        Frame::Amqp {
            channel,
            performative: p.clone(),
            payload: Bytes::new()
        }
    );
    assert!(buf.is_empty(), "decode_frame left {} bytes", buf.len());
}

fn frame_roundtrip_sasl(s: &SaslFrame) {
    let mut buf = BytesMut::new();
    frame::write_sasl(&mut buf, s);
    assert_eq!(&buf[4..8], &[2, frame::TYPE_SASL, 0, 0]);
    let f = frame::decode_frame(&mut buf, 1 << 24)
        .unwrap()
        .expect("a whole frame");
    assert_eq!(f, Frame::Sasl(s.clone()));
    assert!(buf.is_empty());
}

// ---- values ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn every_value_roundtrips(v in arb_value()) {
        roundtrip(&v);
    }

    #[test]
    fn every_primitive_roundtrips(v in arb_primitive()) {
        roundtrip(&v);
    }

    #[test]
    fn arrays_of_every_element_type_roundtrip(v in arb_primitive_array(40)) {
        let bytes = roundtrip(&v);
        prop_assert!(matches!(bytes[0], format::ARRAY8 | format::ARRAY32));
    }

    #[test]
    fn described_arrays_roundtrip(v in arb_described_array()) {
        roundtrip(&v);
    }

    #[test]
    fn big_lists_and_maps_use_the_32_bit_forms(
        items in vec(arb_primitive(), 200..400),
        keys in vec(arb_primitive(), 130..200),
    ) {
        let list = Value::List(items);
        let bytes = roundtrip(&list);
        prop_assert_eq!(bytes[0], format::LIST32);
        let map = Value::Map(keys.iter().cloned().zip(keys.iter().cloned()).collect());
        let bytes = roundtrip(&map);
        prop_assert_eq!(bytes[0], format::MAP32);
    }

    #[test]
    fn arrays_of_compounds_roundtrip(
        lists in vec(vec(arb_value(), 0..4), 0..5),
        maps in vec(vec((arb_primitive(), arb_value()), 0..3), 0..5),
        arrays in vec(arb_primitive_array(8), 0..5),
    ) {
        let of = |code, items| Value::Array(Array { element_code: code, descriptor: None, items });
        roundtrip(&of(format::LIST32, lists.into_iter().map(Value::List).collect()));
        roundtrip(&of(format::MAP32, maps.into_iter().map(Value::Map).collect()));
        roundtrip(&of(format::ARRAY32, arrays));
    }

    #[test]
    fn nested_described_values_roundtrip(
        descriptors in vec(arb_descriptor(), 1..8),
        inner in arb_value(),
    ) {
        let v = descriptors
            .into_iter()
            .fold(inner, |v, d| Value::Described(Box::new(d), Box::new(v)));
        roundtrip(&v);
    }

    #[test]
    fn performatives_roundtrip_through_frames(channel in any::<u16>(), p in arb_performative()) {
        frame_roundtrip_amqp(channel, &p);
    }

    #[test]
    fn sasl_frames_roundtrip(s in arb_sasl()) {
        frame_roundtrip_sasl(&s);
    }

    #[test]
    fn transfer_payload_follows_the_performative(
        t in arb_transfer(),
        payload in vec(any::<u8>(), 0..2000),
    ) {
        let mut buf = transfer_frame(7, &t, &payload);
        let f = frame::decode_frame(&mut buf, 1 << 24).unwrap().unwrap();
        prop_assert_eq!(f, Frame::Amqp {
            channel: 7,
            performative: Performative::Transfer(t),
            payload: Bytes::from(payload),
        });
    }

    #[test]
    fn messages_roundtrip(m in arb_message(), new_header in arb_header()) {
        let bytes = m.encode();
        let msg = Message::parse(bytes.clone()).unwrap();
        prop_assert_eq!(msg.bytes(), &bytes);
        prop_assert_eq!(msg.has_header(), m.header.is_some());
        prop_assert_eq!(msg.header().unwrap(), m.header.clone().unwrap_or_default());
        prop_assert_eq!(msg.properties().unwrap(), m.properties.clone());
        prop_assert_eq!(msg.message_annotations().unwrap(), m.message_annotations.clone());
        let app = msg.application_properties().unwrap();
        if m.application_properties.is_empty() {
            prop_assert_eq!(app, None);
        } else {
            prop_assert_eq!(app, Some(m.application_properties.clone()));
        }
        let body = match &m.body {
            None => Body::Empty,
            Some(b) => b.clone(),
        };
        prop_assert_eq!(msg.body().unwrap(), body);

        // the bare message is exactly properties + application-properties + body
        let bare = MessageBuilder { header: None, message_annotations: None, ..m.clone() }.encode();
        prop_assert_eq!(msg.bare(), bare.clone());

        // a new header in front of the rest: same bare bytes, same annotations
        let (h, rest) = msg.with_header(&new_header);
        let mut joined = BytesMut::from(&h[..]);
        joined.extend_from_slice(&rest);
        let again = Message::parse(joined.freeze()).unwrap();
        prop_assert!(again.has_header());
        prop_assert_eq!(again.header().unwrap(), new_header);
        prop_assert_eq!(again.bare(), bare);
        prop_assert_eq!(again.message_annotations().unwrap(), m.message_annotations.clone());
        prop_assert_eq!(again.properties().unwrap(), m.properties);
    }
}

/// One value of every primitive type and every width, with the format code that the
/// smallest encoding must use.
#[test]
fn every_type_uses_its_smallest_encoding() {
    use format::*;
    let long_text = "x".repeat(300);
    let cases: Vec<(Value, u8)> = vec![
        (Value::Null, NULL),
        (Value::Bool(true), TRUE),
        (Value::Bool(false), FALSE),
        (Value::Ubyte(7), UBYTE),
        (Value::Ushort(0xbeef), USHORT),
        (Value::Uint(0), UINT0),
        (Value::Uint(255), SMALLUINT),
        (Value::Uint(256), UINT),
        (Value::Ulong(0), ULONG0),
        (Value::Ulong(1), SMALLULONG),
        (Value::Ulong(u64::MAX), ULONG),
        (Value::Byte(-3), BYTE),
        (Value::Short(-300), SHORT),
        (Value::Int(-128), SMALLINT),
        (Value::Int(127), SMALLINT),
        (Value::Int(128), INT),
        (Value::Int(i32::MIN), INT),
        (Value::Long(-1), SMALLLONG),
        (Value::Long(-129), LONG),
        (Value::Float(1.5), FLOAT),
        (Value::Double(-0.25), DOUBLE),
        (Value::Double(f64::INFINITY), DOUBLE),
        (Value::Decimal32([1, 2, 3, 4]), DECIMAL32),
        (Value::Decimal64([1; 8]), DECIMAL64),
        (Value::Decimal128([2; 16]), DECIMAL128),
        (Value::Char('€'), CHAR),
        (Value::Char('\u{10FFFF}'), CHAR),
        (Value::Timestamp(1_311_704_463_521), TIMESTAMP),
        (Value::Timestamp(-1), TIMESTAMP),
        (Value::Uuid([0xab; 16]), UUID),
        (Value::Binary(Bytes::from_static(b"")), VBIN8),
        (Value::Binary(Bytes::from(vec![1u8; 255])), VBIN8),
        (Value::Binary(Bytes::from(vec![1u8; 256])), VBIN32),
        (Value::String(String::new()), STR8),
        (Value::String("héllo".into()), STR8),
        (Value::String(long_text.clone()), STR32),
        (Value::Symbol(Symbol::new("amqp:accepted:list")), SYM8),
        (Value::Symbol(Symbol::new(long_text.clone())), SYM32),
        (Value::List(vec![]), LIST0),
        (Value::List(vec![Value::Null]), LIST8),
        (Value::List(vec![Value::Null; 256]), LIST32),
        (Value::List(vec![Value::String(long_text.clone())]), LIST32),
        (Value::Map(vec![]), MAP8),
        (Value::Map(vec![(Value::Uint(1), Value::Null)]), MAP8),
        (
            Value::Map(vec![(Value::String(long_text.clone()), Value::Null)]),
            MAP32,
        ),
        (
            Value::Map((0..128).map(|i| (Value::Uint(i), Value::Null)).collect()),
            MAP32,
        ),
        (
            Value::Described(Box::new(Value::Ulong(0x77)), Box::new(Value::Null)),
            DESCRIBED,
        ),
    ];
    for (v, code) in cases {
        let bytes = roundtrip(&v);
        assert_eq!(bytes[0], code, "{v:?} encoded as {bytes:02x?}");
    }
}

#[test]
fn arrays_of_every_kind_roundtrip_with_fixed_width_constructors() {
    use format::*;
    // (element, the constructor an array of it uses): arrays carry one constructor, so
    // the compact forms (smalluint, uint0, true ...) give way to the fixed-width ones
    let kinds: Vec<(Value, u8)> = vec![
        (Value::Null, NULL),
        (Value::Bool(true), BOOLEAN),
        (Value::Ubyte(1), UBYTE),
        (Value::Ushort(2), USHORT),
        (Value::Uint(0), UINT),
        (Value::Ulong(3), ULONG),
        (Value::Byte(-1), BYTE),
        (Value::Short(-2), SHORT),
        (Value::Int(-3), INT),
        (Value::Long(4), LONG),
        (Value::Float(0.5), FLOAT),
        (Value::Double(0.25), DOUBLE),
        (Value::Decimal32([9; 4]), DECIMAL32),
        (Value::Decimal64([9; 8]), DECIMAL64),
        (Value::Decimal128([9; 16]), DECIMAL128),
        (Value::Char('a'), CHAR),
        (Value::Timestamp(5), TIMESTAMP),
        (Value::Uuid([7; 16]), UUID),
        (Value::Binary(Bytes::from_static(b"ab")), VBIN8),
        (Value::String("s".into()), STR8),
        (Value::Symbol(Symbol::new("sym")), SYM8),
        (Value::List(vec![Value::Uint(1)]), LIST32),
        (Value::Map(vec![(Value::Uint(1), Value::Uint(2))]), MAP32),
    ];
    for (item, ctor) in kinds {
        let family = item.family_code();
        let arr = Value::Array(Array {
            element_code: family,
            descriptor: None,
            items: vec![item.clone(); 3],
        });
        let bytes = roundtrip(&arr);
        assert_eq!(bytes[0], ARRAY8);
        assert_eq!(bytes[3], ctor, "array of {item:?}: {bytes:02x?}");
        // the empty array of that type keeps its type
        let empty = Value::Array(Array {
            element_code: family,
            descriptor: None,
            items: vec![],
        });
        roundtrip(&empty);
    }
    // variable-width elements switch to the 32-bit constructor when any element needs it
    let long = Symbol::new("y".repeat(256));
    let syms = Value::Array(Array {
        element_code: SYM8,
        descriptor: None,
        items: vec![Value::Symbol(Symbol::new("short")), Value::Symbol(long)],
    });
    let bytes = roundtrip(&syms);
    assert_eq!(bytes[0], ARRAY32);
    assert_eq!(bytes[9], SYM32);
    // arrays of arrays of different element types
    let nested = Value::Array(Array {
        element_code: ARRAY32,
        descriptor: None,
        items: vec![
            Value::Array(Array {
                element_code: UINT,
                descriptor: None,
                items: vec![Value::Uint(1)],
            }),
            Value::Array(Array {
                element_code: STR8,
                descriptor: None,
                items: vec![Value::String("a".into()), Value::String("b".into())],
            }),
            Value::Array(Array {
                element_code: BOOLEAN,
                descriptor: None,
                items: vec![],
            }),
        ],
    });
    roundtrip(&nested);
    // a described array: one descriptor shared by every element
    let described = Value::Array(Array {
        element_code: DESCRIBED,
        descriptor: Some(Box::new(Value::Symbol(Symbol::new("com.example:point")))),
        items: vec![
            Value::List(vec![Value::Int(1), Value::Int(2)]),
            Value::List(vec![]),
        ],
    });
    let bytes = roundtrip(&described);
    assert_eq!(bytes[3], DESCRIBED);
    let empty_described = Value::Array(Array {
        element_code: DESCRIBED,
        descriptor: Some(Box::new(Value::Ulong(0x1234))),
        items: vec![],
    });
    roundtrip(&empty_described);
}

// ---- byte vectors -------------------------------------------------------------------

#[test]
fn fixed_width_encodings_from_the_spec() {
    assert_eq!(decode(&[0x43]), Value::Uint(0)); // uint0
    assert_eq!(decode(&[0x52, 0x05]), Value::Uint(5)); // smalluint
    assert_eq!(decode(&[0x70, 0x00, 0x00, 0x01, 0x00]), Value::Uint(256));
    assert_eq!(decode(&[0x44]), Value::Ulong(0)); // ulong0
    assert_eq!(decode(&[0x53, 0xff]), Value::Ulong(255)); // smallulong
    assert_eq!(
        decode(&[0x80, 0, 0, 0, 0, 0, 0, 0x01, 0x00]),
        Value::Ulong(256)
    );
    assert_eq!(decode(&[0x54, 0xff]), Value::Int(-1)); // smallint is signed
    assert_eq!(decode(&[0x55, 0x80]), Value::Long(-128)); // smalllong is signed
    assert_eq!(decode(&[0x56, 0x01]), Value::Bool(true)); // boolean with a byte
    assert_eq!(decode(&[0x56, 0x00]), Value::Bool(false));
    assert_eq!(decode(&[0x41]), Value::Bool(true));
    assert_eq!(decode(&[0x42]), Value::Bool(false));
    assert_eq!(decode(&[0x73, 0x00, 0x01, 0xf6, 0x00]), Value::Char('😀'));
    assert_eq!(decode(&[0x72, 0x3f, 0xc0, 0x00, 0x00]), Value::Float(1.5));
    assert_eq!(
        decode(&[0x82, 0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18]),
        Value::Double(std::f64::consts::PI)
    );
    // variable-width 8- and 32-bit forms of the same value decode alike
    assert_eq!(
        decode(&[0xa1, 0x02, b'h', b'i']),
        decode(&[0xb1, 0, 0, 0, 2, b'h', b'i'])
    );
    assert_eq!(
        decode(&[0xa3, 0x01, b's']),
        decode(&[0xb3, 0, 0, 0, 1, b's'])
    );
    assert_eq!(
        decode(&[0xa0, 0x01, 0xff]),
        decode(&[0xb0, 0, 0, 0, 1, 0xff])
    );
    // list0, list8 and list32 forms of lists
    assert_eq!(decode(&[0x45]), Value::List(vec![]));
    assert_eq!(decode(&[0xc0, 0x01, 0x00]), Value::List(vec![]));
    assert_eq!(decode(&[0xd0, 0, 0, 0, 4, 0, 0, 0, 0]), Value::List(vec![]));
    assert_eq!(
        decode(&[0xc0, 0x03, 0x02, 0x43, 0x40]),
        decode(&[0xd0, 0, 0, 0, 6, 0, 0, 0, 2, 0x43, 0x40])
    );
    // map8 and map32
    assert_eq!(
        decode(&[0xc1, 0x04, 0x02, 0xa3, 0x00, 0x41]),
        Value::Map(vec![(Value::Symbol(Symbol::new("")), Value::Bool(true))])
    );
    assert_eq!(
        decode(&[0xd1, 0, 0, 0, 7, 0, 0, 0, 2, 0xa3, 0x00, 0x41]),
        Value::Map(vec![(Value::Symbol(Symbol::new("")), Value::Bool(true))])
    );
    // array8 of smalluint elements: the array keeps the uint family
    assert_eq!(
        decode(&[0xe0, 0x04, 0x02, 0x52, 0x01, 0x02]),
        Value::Array(Array {
            element_code: format::UINT,
            descriptor: None,
            items: vec![Value::Uint(1), Value::Uint(2)]
        })
    );
    // array32 of sym32 elements
    assert_eq!(
        decode(&[0xf0, 0, 0, 0, 0x0e, 0, 0, 0, 2, 0xb3, 0, 0, 0, 1, b'a', 0, 0, 0, 0]),
        Value::Array(Array {
            element_code: format::SYM8,
            descriptor: None,
            items: vec![
                Value::Symbol(Symbol::new("a")),
                Value::Symbol(Symbol::new(""))
            ],
        })
    );
}

#[test]
fn our_encodings_are_byte_exact() {
    let enc = |f: &dyn Fn(&mut BytesMut)| {
        let mut b = BytesMut::new();
        f(&mut b);
        b.to_vec()
    };
    assert_eq!(enc(&|b| encode::uint(b, 0)), [0x43]);
    assert_eq!(enc(&|b| encode::uint(b, 255)), [0x52, 0xff]);
    assert_eq!(enc(&|b| encode::uint(b, 256)), [0x70, 0, 0, 1, 0]);
    assert_eq!(enc(&|b| encode::ulong(b, 0)), [0x44]);
    assert_eq!(enc(&|b| encode::ulong(b, 0x10)), [0x53, 0x10]);
    assert_eq!(enc(&|b| encode::boolean(b, true)), [0x41]);
    assert_eq!(enc(&|b| encode::symbol(b, "ab")), [0xa3, 2, b'a', b'b']);
    assert_eq!(
        enc(&|b| encode::symbols(b, &[Symbol::new("a")])),
        [0xa3, 1, b'a']
    );
    assert_eq!(
        enc(&|b| encode::symbols(b, &[Symbol::new("a"), Symbol::new("bc")])),
        [0xe0, 0x07, 0x02, 0xa3, 0x01, b'a', 0x02, b'b', b'c']
    );
    // accepted: descriptor 0x24 and an empty list
    assert_eq!(
        enc(&|b| DeliveryState::Accepted.write(b)),
        [0x00, 0x53, 0x24, 0x45]
    );
    assert_eq!(
        enc(&|b| DeliveryState::Released.write(b)),
        [0x00, 0x53, 0x26, 0x45]
    );
    // trailing null fields are left out, the list shrinks to list8
    let open = Open {
        container_id: String::new(),
        channel_max: Some(1234),
        ..Open::default()
    };
    let mut frame_bytes = BytesMut::new();
    frame::write_performative(&mut frame_bytes, 0, &Performative::Open(open));
    assert_eq!(
        frame_bytes.to_vec(),
        [
            0x00, 0x00, 0x00, 0x15, 0x02, 0x00, 0x00,
            0x00, // header: 21 bytes, doff 2, AMQP, ch 0
            0x00, 0x53, 0x10, 0xc0, 0x08, 0x04, // @open list8, 3 fields
            0xa1, 0x00, 0x40, 0x40, 0x60, 0x04, 0xd2, // "", null, null, ushort 1234
        ]
    );
    // an empty close is a list0
    let mut close = BytesMut::new();
    frame::write_performative(&mut close, 3, &Performative::Close(Close { error: None }));
    assert_eq!(
        close.to_vec(),
        [0, 0, 0, 12, 2, 0, 0, 3, 0x00, 0x53, 0x18, 0x45]
    );
    let mut empty = BytesMut::new();
    frame::write_empty(&mut empty);
    assert_eq!(
        frame::decode_frame(&mut empty, 512).unwrap(),
        Some(Frame::Empty { channel: 0 })
    );
}

use throng_amqp::codec::FieldValue;

fn decode_one(bytes: &[u8]) -> Frame {
    let mut buf = BytesMut::from(bytes);
    let f = frame::decode_frame(&mut buf, 1 << 20)
        .unwrap()
        .expect("whole frame");
    assert!(buf.is_empty());
    f
}

/// Frames as Qpid Proton writes them (from its pipelining tests): list32 bodies and every
/// field present up to the end.
#[test]
fn proton_encoded_open_and_sasl_init() {
    let open = b"\x00\x00\x00!\x02\x00\x00\x00\x00S\x10\xd0\x00\x00\x00\x11\x00\x00\x00\x0a\xa1\x00@@`\x04\xd2@@@@@@";
    assert_eq!(
        decode_one(open),
        Frame::Amqp {
            channel: 0,
            performative: Performative::Open(Open {
                container_id: String::new(),
                channel_max: Some(1234),
                ..Open::default()
            }),
            payload: Bytes::new(),
        }
    );
    let init = b"\x00\x00\x002\x02\x01\x00\x00\x00SA\xd0\x00\x00\x00\"\x00\x00\x00\x02\xa3\x09ANONYMOUS\xa0\x11anonymous@fuschia";
    assert_eq!(
        decode_one(init),
        Frame::Sasl(SaslFrame::Init(SaslInit {
            mechanism: Symbol::new("ANONYMOUS"),
            initial_response: Some(Bytes::from_static(b"anonymous@fuschia")),
            hostname: None,
        }))
    );
}

/// An open as ActiveMQ Artemis sends it: capabilities as an array8 of sym8, properties
/// as a map8, and a SASL exchange as the Azure Service Bus sends it (array8 of sym32).
#[test]
fn broker_encoded_open_and_sasl_frames() {
    let open = b"\x00\x00\x00\xa8\x02\x00\x00\x00\x00S\x10\xc0\x9b\n\xa1\x03foo@p\x00\x02\x00\x00`\xff\xffp\x00\x00u0@@\xe0M\x04\xa3\x1dsole-connection-for-container\x10DELAYED_DELIVERY\x0bSHARED-SUBS\x0fANONYMOUS-RELAY@\xc13\x04\xa3\x07product\xa1\x17apache-activemq-artemis\xa3\x07version\xa1\x052.6.2";
    let Frame::Amqp {
        performative: Performative::Open(o),
        ..
    } = decode_one(open)
    else {
        panic!("not an open")
    };
    let syms = |v: &[&str]| v.iter().map(|s| Symbol::new(*s)).collect::<Vec<_>>();
    assert_eq!(
        o,
        Open {
            container_id: "foo".into(),
            hostname: None,
            max_frame_size: Some(131072),
            channel_max: Some(65535),
            idle_time_out: Some(30000),
            outgoing_locales: None,
            incoming_locales: None,
            offered_capabilities: Some(syms(&[
                "sole-connection-for-container",
                "DELAYED_DELIVERY",
                "SHARED-SUBS",
                "ANONYMOUS-RELAY"
            ])),
            desired_capabilities: None,
            properties: Some(vec![
                (
                    Symbol::new("product"),
                    Value::String("apache-activemq-artemis".into())
                ),
                (Symbol::new("version"), Value::String("2.6.2".into())),
            ]),
        }
    );
    // and it survives our re-encoding
    frame_roundtrip_amqp(0, &Performative::Open(o));

    let mechs = b"\x00\x00\x00?\x02\x01\x00\x00\x00S@\xc02\x01\xe0/\x04\xb3\x00\x00\x00\x07MSSBCBS\x00\x00\x00\x05PLAIN\x00\x00\x00\tANONYMOUS\x00\x00\x00\x08EXTERNAL";
    assert_eq!(
        decode_one(mechs),
        Frame::Sasl(SaslFrame::Mechanisms(SaslMechanisms {
            sasl_server_mechanisms: syms(&["MSSBCBS", "PLAIN", "ANONYMOUS", "EXTERNAL"]),
        }))
    );
    let outcome = b"\x00\x00\x00\x1a\x02\x01\x00\x00\x00SD\xc0\r\x02P\x00\xa0\x08Welcome!";
    assert_eq!(
        decode_one(outcome),
        Frame::Sasl(SaslFrame::Outcome(SaslOutcome {
            code: 0,
            additional_data: Some(Bytes::from_static(b"Welcome!")),
        }))
    );
}

/// Descriptors may be symbolic (`amqp:open:list`) or numeric in any ulong form.
#[test]
fn symbolic_and_numeric_descriptors_are_equal() {
    let list = [0xc0, 0x05, 0x01, 0xa1, 0x02, b'c', b'1'];
    let frame_with = |descriptor: &[u8]| {
        let mut body = descriptor.to_vec();
        body.extend_from_slice(&list);
        let mut f = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        f.extend_from_slice(&[2, 0, 0, 0]);
        f.extend_from_slice(&body);
        decode_one(&f)
    };
    let small = frame_with(&[0x00, 0x53, 0x10]);
    let mut sym = vec![0x00, 0xa3, 14];
    sym.extend_from_slice(b"amqp:open:list");
    let mut sym32 = vec![0x00, 0xb3, 0, 0, 0, 14];
    sym32.extend_from_slice(b"amqp:open:list");
    assert_eq!(frame_with(&sym), small);
    assert_eq!(frame_with(&sym32), small);
    assert_eq!(frame_with(&[0x00, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x10]), small);
    let Frame::Amqp {
        performative: Performative::Open(o),
        ..
    } = small
    else {
        panic!()
    };
    assert_eq!(o.container_id, "c1");

    // in delivery states and message sections too
    let mut accepted = vec![0x00, 0xa3, 18];
    accepted.extend_from_slice(b"amqp:accepted:list");
    accepted.push(0x45);
    let buf = Bytes::from(accepted);
    let mut d = Decoder::new(&buf);
    assert_eq!(
        DeliveryState::read_opt(&mut d).unwrap(),
        Some(DeliveryState::Accepted)
    );

    let mut msg = vec![0x00, 0xa3, 16];
    msg.extend_from_slice(b"amqp:data:binary");
    msg.extend_from_slice(&[0xa0, 0x02, b'h', b'i']);
    let m = Message::parse(Bytes::from(msg)).unwrap();
    assert_eq!(m.body().unwrap(), Body::Data(Bytes::from_static(b"hi")));

    // unknown symbolic descriptors of performatives are errors, not panics
    let mut bad = vec![0x00, 0xa3, 14];
    bad.extend_from_slice(b"amqp:nope:list");
    bad.extend_from_slice(&list);
    assert!(Performative::decode(&mut Decoder::new(&Bytes::from(bad))).is_err());
}

/// Fields a later version of the spec may add are skipped; absent trailing fields are null.
#[test]
fn composites_tolerate_extra_and_missing_fields() {
    // @close [null, "extra", 1]: the two unknown fields are skipped
    let body = [
        0x00, 0x53, 0x18, 0xc0, 0x0a, 0x03, 0x40, 0xa1, 0x05, b'e', b'x', b't', b'r', b'a', 0x43,
    ];
    let buf = Bytes::copy_from_slice(&body);
    let mut d = Decoder::new(&buf);
    assert_eq!(
        Performative::decode(&mut d).unwrap(),
        Performative::Close(Close { error: None })
    );
    assert_eq!(d.remaining(), 0);
    // @begin with only the mandatory fields
    let body = [
        0x00, 0x53, 0x11, 0xc0, 0x06, 0x04, 0x40, 0x43, 0x52, 0x10, 0x43,
    ];
    let p = Performative::decode(&mut Decoder::new(&Bytes::copy_from_slice(&body))).unwrap();
    assert_eq!(
        p,
        Performative::Begin(Begin {
            next_outgoing_id: 0,
            incoming_window: 16,
            outgoing_window: 0,
            ..Begin::default()
        })
    );
    // a mandatory field left out is an error naming it
    let body = [0x00, 0x53, 0x11, 0xc0, 0x03, 0x02, 0x40, 0x43];
    assert!(matches!(
        Performative::decode(&mut Decoder::new(&Bytes::copy_from_slice(&body))),
        Err(throng_amqp::DecodeError::MissingField("incoming_window"))
    ));
}

/// Every delivery state and terminus shape, deterministically.
#[test]
fn every_delivery_state_and_terminus_roundtrips() {
    let error = Some(Error {
        condition: Symbol::new("amqp:internal-error"),
        description: Some("boom".into()),
        info: Some(vec![(Symbol::new("k"), Value::Uint(1))]),
    });
    let states = vec![
        DeliveryState::Received(Received {
            section_number: 1,
            section_offset: 1 << 40,
        }),
        DeliveryState::Accepted,
        DeliveryState::Rejected(Rejected {
            error: error.clone(),
        }),
        DeliveryState::Rejected(Rejected { error: None }),
        DeliveryState::Released,
        DeliveryState::Modified(Modified {
            delivery_failed: Some(true),
            undeliverable_here: Some(false),
            message_annotations: Some(vec![(Symbol::new("x-opt-a"), Value::Long(-5))]),
        }),
        DeliveryState::Modified(Modified::default()),
        DeliveryState::Other(
            0x33,
            Value::List(vec![Value::Binary(Bytes::from_static(b"txn"))]),
        ),
        DeliveryState::Other(
            0x34,
            Value::List(vec![
                Value::Binary(Bytes::from_static(b"txn")),
                Value::Described(Box::new(Value::Ulong(0x24)), Box::new(Value::List(vec![]))),
            ]),
        ),
    ];
    for (i, state) in states.into_iter().enumerate() {
        let d = Disposition {
            role: Role::Receiver,
            first: i as u32,
            last: Some(i as u32 + 10),
            settled: Some(true),
            state: Some(state.clone()),
            batchable: Some(false),
        };
        frame_roundtrip_amqp(1, &Performative::Disposition(d));
        let t = Transfer {
            handle: 1,
            state: Some(state),
            ..Transfer::default()
        };
        frame_roundtrip_amqp(1, &Performative::Transfer(t));
    }
    let source = Source {
        address: Some("queue".into()),
        durable: Some(2),
        expiry_policy: Some(Symbol::new("never")),
        timeout: Some(0),
        dynamic: Some(false),
        dynamic_node_properties: Some(vec![(Symbol::new("lifetime-policy"), Value::Null)]),
        distribution_mode: Some(Symbol::new("copy")),
        filter: Some(vec![(
            Symbol::new("selector"),
            Value::Described(
                Box::new(Value::Ulong(0x0000_468C_0000_0004)),
                Box::new(Value::String("a = 1".into())),
            ),
        )]),
        default_outcome: Some(DeliveryState::Modified(Modified {
            delivery_failed: Some(true),
            ..Modified::default()
        })),
        outcomes: Some(vec![
            Symbol::new("amqp:accepted:list"),
            Symbol::new("amqp:rejected:list"),
        ]),
        capabilities: Some(vec![Symbol::new("topic")]),
    };
    for target in [
        None,
        Some(TargetTerminus::Target(Target {
            address: Some("t".into()),
            ..Target::default()
        })),
        Some(TargetTerminus::Target(Target::default())),
        Some(TargetTerminus::Coordinator(Coordinator {
            capabilities: Some(vec![Symbol::new("amqp:local-transactions")]),
        })),
        Some(TargetTerminus::Coordinator(Coordinator::default())),
    ] {
        let a = Attach {
            name: "link".into(),
            handle: 3,
            role: Role::Sender,
            source: Some(source.clone()),
            target,
            initial_delivery_count: Some(0),
            ..Attach::default()
        };
        frame_roundtrip_amqp(0, &Performative::Attach(Box::new(a)));
    }
    for p in [
        Performative::Detach(Detach {
            handle: 1,
            closed: Some(true),
            error: error.clone(),
        }),
        Performative::End(End {
            error: error.clone(),
        }),
        Performative::Close(Close { error }),
    ] {
        frame_roundtrip_amqp(0, &p);
    }
}

#[test]
fn header_and_properties_roundtrip_through_messages() {
    let header = Header {
        durable: Some(true),
        priority: Some(9),
        ttl: Some(60_000),
        first_acquirer: Some(false),
        delivery_count: Some(3),
    };
    let props = Properties {
        message_id: Some(Value::Ulong(42)),
        user_id: Some(Bytes::from_static(b"alice")),
        to: Some("orders".into()),
        subject: Some("s".into()),
        reply_to: Some("replies".into()),
        correlation_id: Some(Value::Uuid([1; 16])),
        content_type: Some(Symbol::new("text/plain")),
        content_encoding: Some(Symbol::new("gzip")),
        absolute_expiry_time: Some(throng_amqp::codec::Timestamp(1_700_000_000_000)),
        creation_time: Some(throng_amqp::codec::Timestamp(1_600_000_000_000)),
        group_id: Some("g".into()),
        group_sequence: Some(7),
        reply_to_group_id: Some("rg".into()),
    };
    let m = MessageBuilder::new()
        .header(header.clone())
        .properties(props.clone())
        .app_property("k", Value::Int(-1))
        .data(&b"payload"[..]);
    let msg = Message::parse(m.encode()).unwrap();
    assert_eq!(msg.header().unwrap(), header);
    assert_eq!(msg.properties().unwrap(), Some(props.clone()));
    assert_eq!(msg.to().unwrap().as_deref(), Some("orders"));
    let reply = msg.reply_properties().unwrap();
    assert_eq!(reply.reply_to, props.reply_to);
    assert_eq!(reply.correlation_id, props.correlation_id);
    assert_eq!(reply.content_type, props.content_type);
    // lists that end early (trailing nulls left out) and no properties at all
    for (partial, reply_to) in [
        (
            Properties {
                to: Some("orders".into()),
                ..Properties::default()
            },
            None,
        ),
        (
            Properties {
                reply_to: Some("r".into()),
                ..Properties::default()
            },
            Some("r".to_string()),
        ),
    ] {
        let m = MessageBuilder::new()
            .properties(partial)
            .data(&b"x"[..])
            .encode();
        let r = Message::parse(m).unwrap().reply_properties().unwrap();
        assert_eq!(r.reply_to, reply_to);
        assert_eq!((r.correlation_id, r.content_type), (None, None));
    }
    let none = MessageBuilder::new().data(&b"x"[..]).encode();
    assert_eq!(
        Message::parse(none).unwrap().reply_properties().unwrap(),
        throng_amqp::message::ReplyProperties::default()
    );
    assert_eq!(
        msg.application_properties().unwrap(),
        Some(vec![("k".to_string(), Value::Int(-1))])
    );
    assert_eq!(
        msg.body().unwrap(),
        Body::Data(Bytes::from_static(b"payload"))
    );
    // a message without header gets the defaults, and with_header prepends one
    let bare = MessageBuilder::new().value(Value::Uint(1));
    let msg = Message::parse(bare.encode()).unwrap();
    assert!(!msg.has_header());
    assert_eq!(msg.header().unwrap(), Header::default());
    assert_eq!(msg.bare(), bare.encode());
    let (h, rest) = msg.with_header(&header);
    assert_eq!(rest, bare.encode());
    let mut joined = h.clone();
    joined.extend_from_slice(&rest);
    let again = Message::parse(joined.freeze()).unwrap();
    assert_eq!(again.header().unwrap(), header);
    assert_eq!(again.bare(), bare.encode());
}

/// An empty list counts no nesting level however it is encoded, so a value at the depth
/// limit whose empty lists were list0 inside an array (re-encoded as list32 there) still
/// decodes after re-encoding. Found by the value_decode fuzz target.
#[test]
fn depth_limit_does_not_depend_on_the_encoding_of_empty_lists() {
    let depth = throng_amqp::codec::decode::MAX_DEPTH as usize;
    // depth-1 nested list32s around an array8 holding one list0
    let mut v = vec![0xe0, 0x02, 0x01, 0x45];
    for _ in 0..depth - 1 {
        let mut outer = vec![0xd0];
        outer.extend_from_slice(&((v.len() + 4) as u32).to_be_bytes());
        outer.extend_from_slice(&1u32.to_be_bytes());
        outer.extend_from_slice(&v);
        v = outer;
    }
    let value = decode(&v);
    let again = roundtrip(&value);
    assert_ne!(
        &again[..],
        &v[..],
        "the array element is re-encoded as list32"
    );
    // one level more is too deep in either encoding
    let mut deeper = vec![0xd0];
    deeper.extend_from_slice(&((v.len() + 4) as u32).to_be_bytes());
    deeper.extend_from_slice(&1u32.to_be_bytes());
    deeper.extend_from_slice(&v);
    let buf = Bytes::from(deeper);
    let mut d = Decoder::new(&buf);
    assert_eq!(d.read_value(), Err(throng_amqp::DecodeError::TooDeep));
}

#[test]
fn find_annotations_reads_only_the_named_ones() {
    use throng_amqp::message::{Message, MessageBuilder};
    use throng_amqp::{Symbol, Value};
    let mut b = MessageBuilder::new().data(&b"x"[..]);
    b.message_annotations = Some(vec![
        (Symbol::new("x-opt-a"), Value::Ubyte(1)),
        (Symbol::new("x-opt-b"), Value::String("two".into())),
        (Symbol::new("x-opt-c"), Value::Bool(true)),
    ]);
    let m = Message::parse(b.encode()).expect("parse");
    let [c, missing, a] = m
        .find_annotations(["x-opt-c", "x-opt-z", "x-opt-a"])
        .expect("annotations");
    assert_eq!(c, Some(Value::Bool(true)));
    assert_eq!(missing, None);
    assert_eq!(a, Some(Value::Ubyte(1)));
    // agrees with the full decode
    let all = m.message_annotations().expect("decode").expect("some");
    assert_eq!(all.len(), 3);
    let plain = Message::parse(MessageBuilder::new().data(&b"x"[..]).encode()).expect("parse");
    assert_eq!(plain.find_annotations(["x-opt-a"]).expect("none"), [None]);
}

/// Several `data` sections (a message split by its producer) read as one body, after the
/// properties and application properties and before a footer; `body_bytes` keeps them as
/// encoded.
#[test]
fn data_sections_are_concatenated() {
    let mut buf = BytesMut::from(
        &MessageBuilder::new()
            .properties(Properties {
                to: Some("q".into()),
                ..Properties::default()
            })
            .app_property("k", Value::Int(1))
            .data(&b"hello "[..])
            .encode()[..],
    );
    let body_start = buf.len() - 11; // descriptor 00 53 75, a0 06, "hello "
    encode::descriptor(&mut buf, 0x75);
    encode::binary(&mut buf, b"world");
    let body_end = buf.len();
    encode::descriptor(&mut buf, 0x78); // footer
    encode::value(&mut buf, &Value::Map(vec![]));
    let bytes = buf.freeze();
    let msg = Message::parse(bytes.clone()).unwrap();
    assert_eq!(
        msg.body().unwrap(),
        Body::Data(Bytes::from_static(b"hello world"))
    );
    assert_eq!(msg.body_bytes(), bytes.slice(body_start..body_end));
    assert_eq!(msg.to().unwrap().as_deref(), Some("q"));
}
