//! Round trips of every packet in both versions (proptest), and decoding of hand-written
//! byte vectors following the spec's examples.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use throng_mqtt::codec::*;

fn s(x: &str) -> ByteStr {
    ByteStr::from(x)
}

fn roundtrip(p: &Packet, v: Version) {
    let mut buf = BytesMut::new();
    encode(p, v, &mut buf);
    assert_eq!(buf.len(), encoded_len(p, v), "encoded_len of {p:?}");
    let mut d = Decoder::new(v, MAX_PACKET_SIZE);
    let mut input = buf.clone();
    let back = d
        .decode(&mut input)
        .unwrap_or_else(|e| panic!("{p:?} does not decode: {e} ({buf:02x?})"))
        .expect("complete packet");
    assert!(input.is_empty());
    assert_eq!(&back, p);
    // byte-at-a-time framing gives the same packet
    let mut partial = BytesMut::new();
    let mut got = None;
    for b in buf.iter() {
        assert!(got.is_none());
        partial.extend_from_slice(&[*b]);
        got = d.decode(&mut partial).unwrap();
    }
    assert_eq!(got.as_ref(), Some(p));
}

fn opt<T: std::fmt::Debug + Clone>(
    s: impl Strategy<Value = T>,
) -> impl Strategy<Value = Option<T>> {
    prop::option::of(s)
}

fn arb_str() -> impl Strategy<Value = ByteStr> {
    "[a-zA-Z0-9 é€/]{0,12}".prop_map(ByteStr::from)
}

fn arb_topic() -> impl Strategy<Value = ByteStr> {
    "[a-z$]{1,4}(/[a-z0-9]{0,4}){0,3}".prop_map(ByteStr::from)
}

fn arb_bytes() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..24).prop_map(Bytes::from)
}

fn arb_qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

/// Any combination of properties; `restrict` keeps those a packet allows.
fn arb_props() -> impl Strategy<Value = Properties> {
    let a = (
        opt(0u8..=1),
        opt(any::<u32>()),
        opt(arb_str()),
        opt(arb_topic()),
        opt(arb_bytes()),
        prop::collection::vec(1u32..=268_435_455, 0..3),
        opt(any::<u32>()),
        opt(arb_str()),
        opt(any::<u16>()),
    );
    let b = (
        opt(arb_str()),
        opt(arb_bytes()),
        opt(any::<bool>()),
        opt(any::<u32>()),
        opt(any::<bool>()),
        opt(arb_str()),
        opt(arb_str()),
        opt(arb_str()),
        opt(1u16..),
    );
    let c = (
        opt(any::<u16>()),
        opt(prop_oneof![Just(QoS::AtMostOnce), Just(QoS::AtLeastOnce)]),
        opt(any::<bool>()),
        prop::collection::vec((arb_str(), arb_str()), 0..3),
        opt(1u32..),
        opt(any::<bool>()),
        opt(any::<bool>()),
        opt(any::<bool>()),
    );
    (a, b, c).prop_map(|(a, b, c)| {
        Properties::from(PropertySet {
            payload_format_indicator: a.0,
            message_expiry_interval: a.1,
            content_type: a.2,
            response_topic: a.3,
            correlation_data: a.4,
            subscription_identifiers: a.5,
            session_expiry_interval: a.6,
            assigned_client_identifier: a.7,
            server_keep_alive: a.8,
            authentication_method: b.0,
            authentication_data: b.1,
            request_problem_information: b.2,
            will_delay_interval: b.3,
            request_response_information: b.4,
            response_information: b.5,
            server_reference: b.6,
            reason_string: b.7,
            receive_maximum: b.8,
            topic_alias_maximum: c.0,
            maximum_qos: c.1,
            retain_available: c.2,
            user_properties: c.3,
            maximum_packet_size: c.4,
            wildcard_subscription_available: c.5,
            subscription_identifier_available: c.6,
            shared_subscription_available: c.7,
        })
    })
}

/// Keeps the properties `ctx` allows.
fn restrict(p: Properties, ctx: PropertyContext) -> Properties {
    use PropertyContext::*;
    let p = p.into_set();
    let mut r = Properties::from(PropertySet {
        user_properties: p.user_properties.clone(),
        ..PropertySet::default()
    });
    match ctx {
        Connect => {
            r.session_expiry_interval = p.session_expiry_interval;
            r.authentication_method = p.authentication_method;
            r.authentication_data = p.authentication_data;
            r.request_problem_information = p.request_problem_information;
            r.request_response_information = p.request_response_information;
            r.receive_maximum = p.receive_maximum;
            r.topic_alias_maximum = p.topic_alias_maximum;
            r.maximum_packet_size = p.maximum_packet_size;
        }
        Will | Publish => {
            r.payload_format_indicator = p.payload_format_indicator;
            r.message_expiry_interval = p.message_expiry_interval;
            r.content_type = p.content_type;
            r.response_topic = p.response_topic;
            r.correlation_data = p.correlation_data;
            if ctx == Will {
                r.will_delay_interval = p.will_delay_interval;
            } else {
                r.subscription_identifiers = p.subscription_identifiers;
            }
        }
        ConnAck => {
            r.session_expiry_interval = p.session_expiry_interval;
            r.assigned_client_identifier = p.assigned_client_identifier;
            r.server_keep_alive = p.server_keep_alive;
            r.authentication_method = p.authentication_method;
            r.authentication_data = p.authentication_data;
            r.response_information = p.response_information;
            r.server_reference = p.server_reference;
            r.reason_string = p.reason_string;
            r.receive_maximum = p.receive_maximum;
            r.topic_alias_maximum = p.topic_alias_maximum;
            r.maximum_qos = p.maximum_qos;
            r.retain_available = p.retain_available;
            r.maximum_packet_size = p.maximum_packet_size;
            r.wildcard_subscription_available = p.wildcard_subscription_available;
            r.subscription_identifier_available = p.subscription_identifier_available;
            r.shared_subscription_available = p.shared_subscription_available;
        }
        PubResponse | SubAck | UnsubAck => r.reason_string = p.reason_string,
        Subscribe => {
            r.subscription_identifiers = p.subscription_identifiers.into_iter().take(1).collect()
        }
        Unsubscribe => {}
        Disconnect => {
            r.session_expiry_interval = p.session_expiry_interval;
            r.server_reference = p.server_reference;
            r.reason_string = p.reason_string;
        }
        Auth => {
            r.authentication_method = p.authentication_method;
            r.authentication_data = p.authentication_data;
            r.reason_string = p.reason_string;
        }
    }
    r
}

fn props(v: Version, ctx: PropertyContext) -> BoxedStrategy<Properties> {
    match v {
        Version::V311 => Just(Properties::default()).boxed(),
        Version::V5 => arb_props().prop_map(move |p| restrict(p, ctx)).boxed(),
    }
}

fn pick(codes: &'static [u8]) -> impl Strategy<Value = ReasonCode> {
    prop::sample::select(codes).prop_map(|c| ReasonCode::from_u8(c).unwrap())
}

fn arb_packet(v: Version) -> BoxedStrategy<Packet> {
    let v5 = v == Version::V5;
    let will = (
        arb_topic(),
        arb_bytes(),
        arb_qos(),
        any::<bool>(),
        props(v, PropertyContext::Will),
    )
        .prop_map(|(topic, payload, qos, retain, properties)| Will {
            topic,
            payload,
            qos,
            retain,
            properties,
        });
    let connect = (
        any::<bool>(),
        any::<u16>(),
        arb_str(),
        opt(will),
        opt(arb_str()),
        opt(arb_bytes()),
        props(v, PropertyContext::Connect),
    )
        .prop_map(
            move |(clean_start, keep_alive, client_id, will, username, password, properties)| {
                // v3: a password needs a user name
                let password = if v5 || username.is_some() {
                    password
                } else {
                    None
                };
                Packet::Connect(Box::new(Connect {
                    version: v,
                    clean_start,
                    keep_alive,
                    client_id,
                    will,
                    username,
                    password,
                    properties,
                }))
            },
        );
    let connack_codes: &'static [u8] = if v5 {
        &[
            0x00, 0x80, 0x81, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8c, 0x95, 0x9c, 0x9f,
        ]
    } else {
        &[0x00, 0x84, 0x85, 0x86, 0x87, 0x88]
    };
    let connack = (
        any::<bool>(),
        pick(connack_codes),
        props(v, PropertyContext::ConnAck),
    )
        .prop_map(|(sp, reason, properties)| {
            Packet::ConnAck(ConnAck {
                session_present: sp && reason == ReasonCode::Success,
                reason,
                properties,
            })
        });
    let publish = (
        any::<bool>(),
        arb_qos(),
        any::<bool>(),
        arb_topic(),
        1u16..,
        (props(v, PropertyContext::Publish), opt(1u16..)),
        arb_bytes(),
    )
        .prop_map(
            move |(dup, qos, retain, topic, id, (properties, alias), payload)| {
                Packet::Publish(Publish {
                    dup: dup && qos != QoS::AtMostOnce,
                    qos,
                    retain,
                    topic,
                    packet_id: if qos == QoS::AtMostOnce { 0 } else { id },
                    // a v3 PUBLISH has no property block to carry an alias in
                    topic_alias: alias.filter(|_| v5),
                    properties,
                    payload,
                })
            },
        );
    let ack_codes: &'static [u8] = if v5 {
        &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99]
    } else {
        &[0]
    };
    let rel_codes: &'static [u8] = if v5 { &[0x00, 0x92] } else { &[0] };
    let resp = |codes: &'static [u8]| {
        (1u16.., pick(codes), props(v, PropertyContext::PubResponse)).prop_map(
            |(packet_id, reason, properties)| PubResponse {
                packet_id,
                reason,
                properties,
            },
        )
    };
    let responses = prop_oneof![
        resp(ack_codes).prop_map(Packet::PubAck),
        resp(ack_codes).prop_map(Packet::PubRec),
        resp(rel_codes).prop_map(Packet::PubRel),
        resp(rel_codes).prop_map(Packet::PubComp),
    ];
    let opts =
        (arb_qos(), any::<bool>(), any::<bool>(), 0u8..3).prop_map(move |(qos, nl, rap, rh)| {
            if v5 {
                SubscriptionOptions {
                    qos,
                    no_local: nl,
                    retain_as_published: rap,
                    retain_handling: [
                        RetainHandling::OnSubscribe,
                        RetainHandling::OnNewSubscription,
                        RetainHandling::Never,
                    ][rh as usize],
                }
            } else {
                SubscriptionOptions::qos(qos)
            }
        });
    let subscribe = (
        1u16..,
        props(v, PropertyContext::Subscribe),
        prop::collection::vec((arb_topic(), opts), 1..4),
    )
        .prop_map(|(packet_id, properties, filters)| {
            Packet::Subscribe(Subscribe {
                packet_id,
                properties,
                filters,
            })
        });
    let suback_codes: &'static [u8] = if v5 {
        &[
            0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8f, 0x91, 0x97, 0x9e, 0xa1, 0xa2,
        ]
    } else {
        &[0x00, 0x01, 0x02, 0x80]
    };
    let suback = (
        1u16..,
        props(v, PropertyContext::SubAck),
        prop::collection::vec(pick(suback_codes), 0..4),
    )
        .prop_map(|(packet_id, properties, reasons)| {
            Packet::SubAck(SubAck {
                packet_id,
                properties,
                reasons,
            })
        });
    let unsubscribe = (
        1u16..,
        props(v, PropertyContext::Unsubscribe),
        prop::collection::vec(arb_topic(), 1..4),
    )
        .prop_map(|(packet_id, properties, filters)| {
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                properties,
                filters,
            })
        });
    let unsub_codes: &'static [u8] = &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8f, 0x91];
    let unsuback = (
        1u16..,
        props(v, PropertyContext::UnsubAck),
        prop::collection::vec(pick(unsub_codes), 0..4),
    )
        .prop_map(move |(packet_id, properties, reasons)| {
            Packet::UnsubAck(UnsubAck {
                packet_id,
                properties,
                reasons: if v5 { reasons } else { vec![] },
            })
        });
    let disc_codes: &'static [u8] = if v5 {
        &[0x00, 0x04, 0x80, 0x81, 0x8d, 0x8e, 0x93, 0x94, 0x95, 0xa2]
    } else {
        &[0]
    };
    let disconnect = (pick(disc_codes), props(v, PropertyContext::Disconnect))
        .prop_map(|(reason, properties)| Packet::Disconnect(Disconnect { reason, properties }));
    let common = prop_oneof![
        connect,
        connack,
        publish,
        responses,
        subscribe,
        suback,
        unsubscribe,
        unsuback,
        Just(Packet::PingReq),
        Just(Packet::PingResp),
        disconnect,
    ];
    if v5 {
        let auth = (pick(&[0x00, 0x18, 0x19]), props(v, PropertyContext::Auth))
            .prop_map(|(reason, properties)| Packet::Auth(Auth { reason, properties }));
        prop_oneof![10 => common, 1 => auth].boxed()
    } else {
        common.boxed()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn every_v5_packet_round_trips(p in arb_packet(Version::V5)) {
        roundtrip(&p, Version::V5);
    }

    #[test]
    fn every_v3_packet_round_trips(p in arb_packet(Version::V311)) {
        roundtrip(&p, Version::V311);
    }
}

#[test]
fn publish_payload_is_a_slice_of_the_input() {
    let mut buf = BytesMut::new();
    let p = Publish::new("a/b", Bytes::from_static(b"hello world")).with_qos(QoS::AtLeastOnce);
    let p = Publish { packet_id: 7, ..p };
    encode(&Packet::Publish(p), Version::V5, &mut buf);
    let frozen_start = buf.as_ptr() as usize;
    let total = buf.len();
    let Packet::Publish(back) = Decoder::new(Version::V5, 1000)
        .decode(&mut buf)
        .unwrap()
        .unwrap()
    else {
        panic!()
    };
    let payload_at = back.payload.as_ptr() as usize;
    let topic_at = back.topic.as_bytes().as_ptr() as usize;
    assert!(payload_at >= frozen_start && payload_at < frozen_start + total);
    assert!(topic_at >= frozen_start && topic_at < frozen_start + total);
    assert_eq!(&back.payload[..], b"hello world");
    assert_eq!(back.topic.as_str(), "a/b");
}

#[test]
fn publish_head_plus_payload_equals_full_encoding() {
    let p = Publish {
        packet_id: 3,
        ..Publish::new("t", Bytes::from(vec![7u8; 300])).with_qos(QoS::ExactlyOnce)
    };
    let mut full = BytesMut::new();
    encode_publish(&p, Version::V5, &mut full);
    let mut head = BytesMut::new();
    encode_publish_head(&p, Version::V5, &mut head);
    head.extend_from_slice(&p.payload);
    assert_eq!(full, head);
    assert_eq!(full.len(), publish_encoded_len(&p, Version::V5));
}

fn decode_one(bytes: &[u8], v: Version) -> Result<Packet, DecodeError> {
    let mut b = BytesMut::from(bytes);
    let p = Decoder::new(v, MAX_PACKET_SIZE)
        .decode(&mut b)?
        .expect("complete");
    assert!(b.is_empty());
    Ok(p)
}

#[test]
fn spec_v311_connect_example() {
    // CONNECT, "MQTT" level 4, clean session + will (QoS 1, retain) + user + password,
    // keep alive 10.
    let bytes = [
        0x10, 0x1f, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0xee, 0x00, 0x0a, 0x00, 0x03, b'c',
        b'i', b'd', 0x00, 0x01, b'w', 0x00, 0x02, b'b', b'y', 0x00, 0x01, b'u', 0x00, 0x02, b'p',
        b'w', 0x00, 0x00,
    ];
    // remaining length: 33 - 2
    let mut bytes = bytes.to_vec();
    bytes.truncate(bytes.len() - 2);
    bytes[1] = (bytes.len() - 2) as u8;
    let Packet::Connect(c) = decode_one(&bytes, Version::V311).unwrap() else {
        panic!()
    };
    assert_eq!(c.version, Version::V311);
    assert!(c.clean_start);
    assert_eq!(c.keep_alive, 10);
    assert_eq!(c.client_id, "cid");
    let w = c.will.as_ref().unwrap();
    assert_eq!(
        (w.topic.as_str(), &w.payload[..], w.qos, w.retain),
        ("w", &b"by"[..], QoS::AtLeastOnce, true)
    );
    assert_eq!(c.username.as_deref(), Some("u"));
    assert_eq!(c.password.as_deref(), Some(&b"pw"[..]));
}

#[test]
fn spec_v5_connect_example() {
    // The spec's variable header example (3.1.2.11): "MQTT", level 5, flags 0xce (user,
    // password, will QoS 1, clean start), keep alive 10, properties: session expiry 10.
    let mut body = vec![0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0xce, 0x00, 0x0a];
    body.extend_from_slice(&[0x05, 0x11, 0x00, 0x00, 0x00, 0x0a]);
    body.extend_from_slice(&[0x00, 0x01, b'c']); // client id
    body.extend_from_slice(&[0x00]); // will properties: none
    body.extend_from_slice(&[0x00, 0x01, b't', 0x00, 0x00]); // will topic, empty payload
    body.extend_from_slice(&[0x00, 0x01, b'u', 0x00, 0x01, b'p']);
    let mut bytes = vec![0x10, body.len() as u8];
    bytes.extend_from_slice(&body);
    let Packet::Connect(c) = decode_one(&bytes, Version::V311).unwrap() else {
        panic!()
    };
    assert_eq!(c.version, Version::V5);
    assert_eq!(c.properties.session_expiry_interval, Some(10));
    assert_eq!(c.will.as_ref().unwrap().qos, QoS::AtLeastOnce);
}

#[test]
fn spec_publish_examples() {
    // v3.1.1 PUBLISH QoS 1, topic "a/b", id 10, payload "hi"
    let p = decode_one(
        &[
            0x32, 0x09, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x0a, b'h', b'i',
        ],
        Version::V311,
    )
    .unwrap();
    let Packet::Publish(p) = p else { panic!() };
    assert_eq!(
        (p.topic.as_str(), p.packet_id, p.qos, &p.payload[..]),
        ("a/b", 10, QoS::AtLeastOnce, &b"hi"[..])
    );
    // v5 PUBLISH QoS 0 with topic alias 1, empty topic, two user properties in order
    let bytes = [
        0x30, 0x15, 0x00, 0x00, 0x11, 0x23, 0x00, 0x01, 0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'1',
        0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'2', b'x',
    ];
    let Packet::Publish(p) = decode_one(&bytes, Version::V5).unwrap() else {
        panic!()
    };
    assert_eq!(p.topic_alias, Some(1));
    // a property block holding only the alias: no properties
    let bytes = [0x30, 0x07, 0x00, 0x00, 0x03, 0x23, 0x00, 0x02, b'x'];
    let Packet::Publish(only) = decode_one(&bytes, Version::V5).unwrap() else {
        panic!()
    };
    assert_eq!(
        (only.topic_alias, only.properties.is_empty()),
        (Some(2), true)
    );
    assert_eq!(&only.payload[..], b"x");
    assert_eq!(
        p.properties.user_properties,
        vec![(s("k"), s("1")), (s("k"), s("2"))]
    );
    assert_eq!(&p.payload[..], b"x");
}

#[test]
fn short_forms_of_v5_acks() {
    // PUBACK with remaining length 2: success, no properties
    let Packet::PubAck(r) = decode_one(&[0x40, 0x02, 0x00, 0x01], Version::V5).unwrap() else {
        panic!()
    };
    assert_eq!((r.packet_id, r.reason), (1, ReasonCode::Success));
    // PUBACK with a reason only
    let Packet::PubAck(r) = decode_one(&[0x40, 0x03, 0x00, 0x01, 0x10], Version::V5).unwrap()
    else {
        panic!()
    };
    assert_eq!(r.reason, ReasonCode::NoMatchingSubscribers);
    // DISCONNECT with remaining length 0 / 1
    assert_eq!(
        decode_one(&[0xe0, 0x00], Version::V5).unwrap(),
        Packet::Disconnect(Disconnect::default())
    );
    let Packet::Disconnect(d) = decode_one(&[0xe0, 0x01, 0x04], Version::V5).unwrap() else {
        panic!()
    };
    assert_eq!(d.reason, ReasonCode::DisconnectWithWillMessage);
    // AUTH with remaining length 0
    let Packet::Auth(a) = decode_one(&[0xf0, 0x00], Version::V5).unwrap() else {
        panic!()
    };
    assert_eq!(a.reason, ReasonCode::Success);
    // encoder uses the short forms
    let mut b = BytesMut::new();
    encode(&Packet::PubAck(PubResponse::new(9)), Version::V5, &mut b);
    assert_eq!(&b[..], &[0x40, 0x02, 0x00, 0x09]);
}

#[test]
fn v3_connack_and_suback_codes() {
    let Packet::ConnAck(c) = decode_one(&[0x20, 0x02, 0x00, 0x05], Version::V311).unwrap() else {
        panic!()
    };
    assert_eq!(c.reason, ReasonCode::NotAuthorized);
    let mut b = BytesMut::new();
    let suback = SubAck {
        packet_id: 1,
        properties: Properties::default(),
        reasons: vec![
            ReasonCode::GrantedQoS1,
            ReasonCode::NotAuthorized,
            ReasonCode::TopicFilterInvalid,
        ],
    };
    encode(&Packet::SubAck(suback), Version::V311, &mut b);
    assert_eq!(&b[..], &[0x90, 0x05, 0x00, 0x01, 0x01, 0x80, 0x80]);
    let mut b = BytesMut::new();
    let refusal = ConnAck {
        session_present: false,
        reason: ReasonCode::BadUserNameOrPassword,
        properties: Properties::default(),
    };
    encode(&Packet::ConnAck(refusal), Version::V311, &mut b);
    assert_eq!(&b[..], &[0x20, 0x02, 0x00, 0x04]);
}

#[test]
fn dropping_diagnostics_shrinks_a_packet() {
    let mut p = Packet::PubAck(PubResponse {
        packet_id: 1,
        reason: ReasonCode::NotAuthorized,
        properties: Properties::from(PropertySet {
            reason_string: Some(s("you may not publish here")),
            user_properties: vec![(s("a"), s("b"))],
            ..PropertySet::default()
        }),
    });
    let before = encoded_len(&p, Version::V5);
    p.properties_mut().unwrap().strip_diagnostics();
    let after = encoded_len(&p, Version::V5);
    assert_eq!(after, 5);
    assert!(before > after);
}
