//! MQTT ⇄ AMQP translation, done once at the edge (docs/ARCHITECTURE.md, "Bridging MQTT and AMQP").
//!
//! | MQTT                     | AMQP                                               |
//! |--------------------------|----------------------------------------------------|
//! | topic                    | address (and properties `to`)                      |
//! | payload                  | one `data` section                                 |
//! | QoS > 0                  | header `durable = true`; QoS in `x-opt-mqtt-qos`   |
//! | retain                   | message annotation `x-opt-retain-message = true`   |
//! | payload format indicator | annotation `x-opt-mqtt-payload-format` (ubyte)     |
//! | user properties          | application-properties (string values); if a key   |
//! |                          | repeats, also every pair in order in the           |
//! |                          | annotation `x-opt-mqtt-user-properties`            |
//! | response topic           | `reply-to`                                         |
//! | correlation data         | `correlation-id` (binary)                          |
//! | content type             | `content-type`                                     |
//! | message expiry interval  | header `ttl` (seconds ↔ milliseconds)              |
//!
//! Inbound, the AMQP message is built once and then stored and forwarded as those bytes.
//! Outbound, the payload is the `data` section as a slice of the stored bytes (no copy);
//! an AMQP string or binary `amqp-value` body becomes its bytes; any other body is sent
//! as its AMQP encoding.

use bytes::{Bytes, BytesMut};
use throng_amqp::codec::{encode, format};
use throng_amqp::definitions::Header;
use throng_amqp::message::{section, Body, Message};
use throng_amqp::Value;
use throng_mqtt::{ByteStr, Properties, Publish, QoS};

/// Annotation carrying the MQTT QoS a message was published with.
pub const QOS_ANNOTATION: &str = "x-opt-mqtt-qos";
/// Annotation marking a retained message.
pub const RETAIN_ANNOTATION: &str = "x-opt-retain-message";
/// Annotation naming the MQTT client that published a message (for no-local).
pub const CLIENT_ANNOTATION: &str = "x-opt-mqtt-client";
/// Annotation carrying an MQTT 5 payload format indicator (0 bytes, 1 UTF-8), forwarded
/// unaltered to MQTT 5 subscribers (MQTT-3.3.2-4).
pub const PAYLOAD_FORMAT_ANNOTATION: &str = "x-opt-mqtt-payload-format";
/// Annotation carrying every MQTT 5 user property in order, as a list of strings
/// `[k1, v1, k2, v2, …]`, when a key repeats: application-properties is a map, where only
/// the first value of a key fits (MQTT-3.3.2-18 wants every pair forwarded in order).
pub const USER_PROPERTIES_ANNOTATION: &str = "x-opt-mqtt-user-properties";

/// The AMQP message for an MQTT publish (or will) on `topic` by client `client`.
///
/// Encoded straight into one buffer of the right size: the header and properties through
/// their definitions, the annotations and application properties by hand (no
/// intermediate maps, symbols or strings: this runs for every publish). The test below
/// checks the bytes against `MessageBuilder`'s.
pub fn to_amqp(
    topic: &str,
    qos: QoS,
    retain: bool,
    props: &Properties,
    payload: Bytes,
    client: &str,
) -> Bytes {
    let repeats = repeated_keys(props);
    let mut buf = BytesMut::with_capacity(amqp_capacity(topic, client, props, payload.len()));
    Header {
        durable: Some(qos != QoS::AtMostOnce),
        ttl: props
            .message_expiry_interval
            .map(|s| s.saturating_mul(1000)),
        ..Header::default()
    }
    .encode(&mut buf);
    encode::descriptor(&mut buf, section::MESSAGE_ANNOTATIONS);
    let start = encode::begin_compound(&mut buf, format::MAP32);
    encode::symbol(&mut buf, QOS_ANNOTATION);
    encode::ubyte(&mut buf, qos as u8);
    encode::symbol(&mut buf, CLIENT_ANNOTATION);
    encode::string(&mut buf, client);
    let mut count = 4;
    if retain {
        encode::symbol(&mut buf, RETAIN_ANNOTATION);
        encode::boolean(&mut buf, true);
        count += 2;
    }
    if let Some(f) = props.payload_format_indicator {
        encode::symbol(&mut buf, PAYLOAD_FORMAT_ANNOTATION);
        encode::ubyte(&mut buf, f);
        count += 2;
    }
    if repeats {
        encode::symbol(&mut buf, USER_PROPERTIES_ANNOTATION);
        let list = encode::begin_compound(&mut buf, format::LIST32);
        for (k, v) in &props.user_properties {
            encode::string(&mut buf, k.as_str());
            encode::string(&mut buf, v.as_str());
        }
        let n = props.user_properties.len() * 2;
        encode::end_compound(&mut buf, list, n, format::LIST8);
        count += 2;
    }
    encode::end_compound(&mut buf, start, count, format::MAP8);
    // properties: message-id, user-id, to, subject, reply-to, correlation-id,
    // content-type; trailing nulls left out
    encode::descriptor(&mut buf, section::PROPERTIES);
    let start = encode::begin_compound(&mut buf, format::LIST32);
    encode::null(&mut buf);
    encode::null(&mut buf);
    encode::string(&mut buf, topic);
    let (reply_to, correlation, content_type) = (
        props.response_topic.as_ref(),
        props.correlation_data.as_ref(),
        props.content_type.as_ref(),
    );
    let count = if content_type.is_some() {
        7
    } else if correlation.is_some() {
        6
    } else if reply_to.is_some() {
        5
    } else {
        3
    };
    if count > 3 {
        encode::null(&mut buf);
        match reply_to {
            Some(r) => encode::string(&mut buf, r.as_str()),
            None => encode::null(&mut buf),
        }
    }
    if count > 5 {
        match correlation {
            Some(c) => encode::binary(&mut buf, c),
            None => encode::null(&mut buf),
        }
    }
    if let Some(c) = content_type {
        encode::symbol(&mut buf, c.as_str());
    }
    encode::end_compound(&mut buf, start, count, format::LIST8);
    if !props.user_properties.is_empty() {
        encode::descriptor(&mut buf, section::APPLICATION_PROPERTIES);
        let start = encode::begin_compound(&mut buf, format::MAP32);
        let mut count = 0;
        for (i, (k, v)) in props.user_properties.iter().enumerate() {
            // AMQP application-properties is a map: the first of repeated keys stands
            // there (all pairs are in the annotation)
            if repeats && props.user_properties[..i].iter().any(|(x, _)| x == k) {
                continue;
            }
            encode::string(&mut buf, k.as_str());
            encode::string(&mut buf, v.as_str());
            count += 2;
        }
        encode::end_compound(&mut buf, start, count, format::MAP8);
    }
    encode::descriptor(&mut buf, section::DATA);
    encode::binary(&mut buf, &payload);
    buf.freeze()
}

/// Whether a user property key repeats (a handful of pairs: quadratic is cheapest).
fn repeated_keys(props: &Properties) -> bool {
    let pairs = &props.user_properties;
    (1..pairs.len()).any(|i| pairs[..i].iter().any(|(k, _)| *k == pairs[i].0))
}

/// An upper bound of the size of [`to_amqp`]'s encoding: sections, descriptors and
/// annotation names take less than 160 bytes; the rest is topic, client id, MQTT
/// properties (their AMQP forms are no longer) and payload — and the user properties
/// once more (each string at most 5 bytes longer) when they go in the annotation too.
fn amqp_capacity(topic: &str, client: &str, props: &Properties, payload: usize) -> usize {
    let again = if repeated_keys(props) {
        props
            .user_properties
            .iter()
            .map(|(k, v)| k.len() + v.len() + 10)
            .sum::<usize>()
            + 9
    } else {
        0
    };
    160 + topic.len() + client.len() + props.encoded_len() + again + payload
}

/// The client id of the MQTT client that published `msg`, if one did: for no-local
/// subscriptions, the only ones that need it.
pub fn publisher(msg: &Message) -> Option<String> {
    match msg.find_annotations([CLIENT_ANNOTATION]) {
        Ok([Some(Value::String(s))]) => Some(s),
        _ => None,
    }
}

/// The MQTT publish for a stored message delivered on `topic`, at most at `max_qos`.
/// Its retain flag is the message's own (set when an MQTT client published it retained);
/// the caller clears it unless the subscription asked for retain-as-published.
pub fn to_mqtt(msg: &Message, topic: &ByteStr, max_qos: QoS, v5: bool) -> Publish {
    let header = msg.header().unwrap_or_default();
    let mut msg_qos = qos_of_header(&header);
    let mut retained = false;
    let (mut format, mut pairs) = (None, None);
    if msg.has_message_annotations() {
        // one pass, allocating nothing unless a user property key repeats
        if let Ok([qos, retain, f, user]) = msg.find_annotations([
            QOS_ANNOTATION,
            RETAIN_ANNOTATION,
            PAYLOAD_FORMAT_ANNOTATION,
            USER_PROPERTIES_ANNOTATION,
        ]) {
            if let Some(q) = qos.and_then(annotated_qos) {
                msg_qos = q;
            }
            retained = matches!(retain, Some(Value::Bool(true)));
            format = f
                .and_then(|v| v.as_u64())
                .and_then(|f| u8::try_from(f).ok());
            pairs = user;
        }
    }
    let payload = match msg.body() {
        Ok(Body::Data(b)) => b,
        Ok(Body::Value(Value::String(s))) => Bytes::from(s),
        Ok(Body::Value(Value::Binary(b))) => b,
        Ok(Body::Empty) => Bytes::new(),
        _ => msg.body_bytes(),
    };
    let mut publish = Publish::new(topic.clone(), payload);
    publish.qos = msg_qos.min(max_qos);
    publish.retain = retained;
    if v5 {
        let p = &mut publish.properties;
        if let Some(f) = format {
            p.payload_format_indicator = Some(f);
        }
        if let Some(ttl) = header.ttl {
            p.message_expiry_interval = Some(ttl.div_ceil(1000));
        }
        // only what is present is written: a write allocates the MQTT property set
        if let Ok(props) = msg.reply_properties() {
            if let Some(c) = props.content_type {
                p.content_type = Some(ByteStr::from(c.0));
            }
            if let Some(r) = props.reply_to {
                p.response_topic = Some(ByteStr::from(r));
            }
            if let Some(c) = props.correlation_id {
                p.correlation_data = Some(match c {
                    Value::Binary(b) => b,
                    Value::String(s) => Bytes::from(s),
                    Value::Uuid(u) => Bytes::copy_from_slice(&u),
                    other => Bytes::from(format!("{other:?}")),
                });
            }
        }
        if let Some(all) = pairs.and_then(user_property_pairs) {
            p.user_properties = all;
        } else if let Ok(Some(app)) = msg.application_properties() {
            for (k, v) in app {
                let v = match v {
                    Value::String(s) => s,
                    Value::Symbol(s) => s.0,
                    Value::Bool(b) => b.to_string(),
                    other => match other.as_i64() {
                        Some(n) => n.to_string(),
                        None => format!("{other:?}"),
                    },
                };
                p.user_properties.push((ByteStr::from(k), ByteStr::from(v)));
            }
        }
    }
    publish
}

/// The QoS a message is published with to a subscriber that allows any: the publisher's
/// (the QoS annotation of a message from MQTT), else 1 for a durable message and 0 for
/// any other. [`to_mqtt`] reads it in its one pass over the annotations; this is for a
/// caller that needs only the QoS.
pub fn qos_of(msg: &Message) -> QoS {
    let header_qos = qos_of_header(&msg.header().unwrap_or_default());
    if !msg.has_message_annotations() {
        return header_qos;
    }
    match msg.find_annotations([QOS_ANNOTATION]) {
        Ok([Some(v)]) => annotated_qos(v).unwrap_or(header_qos),
        _ => header_qos,
    }
}

fn qos_of_header(header: &Header) -> QoS {
    if header.durable == Some(true) {
        QoS::AtLeastOnce
    } else {
        QoS::AtMostOnce
    }
}

fn annotated_qos(v: Value) -> Option<QoS> {
    v.as_u64()
        .and_then(|q| u8::try_from(q).ok())
        .and_then(QoS::from_u8)
}

/// The user properties of a [`USER_PROPERTIES_ANNOTATION`]: an even list of strings
/// (anything else, which no MQTT publisher made, is ignored).
fn user_property_pairs(v: Value) -> Option<Vec<(ByteStr, ByteStr)>> {
    let Value::List(items) = v else {
        return None;
    };
    let mut pairs = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let Some(k) = it.next() {
        let (Value::String(k), Some(Value::String(v))) = (k, it.next()) else {
            return None;
        };
        pairs.push((ByteStr::from(k), ByteStr::from(v)));
    }
    Some(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use throng_amqp::definitions::Properties as AmqpProperties;
    use throng_amqp::message::MessageBuilder;
    use throng_amqp::Symbol;
    use throng_mqtt::PropertySet;

    #[test]
    fn mqtt_properties_survive_the_round_trip_through_amqp() {
        let props = Properties::from(PropertySet {
            content_type: Some("application/json".into()),
            response_topic: Some("replies/1".into()),
            correlation_data: Some(Bytes::from_static(b"\x00\x01corr")),
            message_expiry_interval: Some(30),
            payload_format_indicator: Some(1),
            user_properties: vec![
                ("k".into(), "v".into()),
                ("j".into(), "1".into()),
                ("k".into(), "dup".into()),
            ],
            ..PropertySet::default()
        });
        let bytes = to_amqp(
            "a/b",
            QoS::AtLeastOnce,
            true,
            &props,
            Bytes::from_static(b"hello"),
            "dev-1",
        );
        let msg = Message::parse(bytes).expect("parse");
        // what an AMQP consumer sees
        assert_eq!(msg.header().expect("header").durable, Some(true));
        assert_eq!(msg.header().expect("header").ttl, Some(30_000));
        let p = msg.properties().expect("props").expect("some");
        assert_eq!(p.to.as_deref(), Some("a/b"));
        assert_eq!(p.reply_to.as_deref(), Some("replies/1"));
        assert_eq!(
            p.content_type.as_ref().map(|c| c.as_str()),
            Some("application/json")
        );
        assert_eq!(
            msg.application_properties().expect("app").expect("some"),
            vec![
                ("k".to_string(), Value::String("v".into())),
                ("j".to_string(), Value::String("1".into()))
            ],
            "a repeated key's first value"
        );
        // and back to MQTT
        let pb = to_mqtt(&msg, &ByteStr::from("a/b"), QoS::ExactlyOnce, true);
        assert_eq!(publisher(&msg).as_deref(), Some("dev-1"));
        assert_eq!(
            pb.qos,
            QoS::AtLeastOnce,
            "the published QoS, not the subscription's"
        );
        assert!(pb.retain);
        assert_eq!(pb.payload.as_ref(), b"hello");
        assert_eq!(
            pb.properties.content_type.as_deref(),
            Some("application/json")
        );
        assert_eq!(pb.properties.response_topic.as_deref(), Some("replies/1"));
        assert_eq!(
            pb.properties.correlation_data.as_deref(),
            Some(&b"\x00\x01corr"[..])
        );
        assert_eq!(pb.properties.message_expiry_interval, Some(30));
        assert_eq!(pb.properties.payload_format_indicator, Some(1));
        assert_eq!(
            pb.properties.user_properties, props.user_properties,
            "every pair, in order (MQTT-3.3.2-18)"
        );
        // a QoS 0 subscription downgrades
        let pb = to_mqtt(&msg, &ByteStr::from("a/b"), QoS::AtMostOnce, false);
        assert_eq!(pb.qos, QoS::AtMostOnce);
        assert!(pb.properties.is_empty(), "no v5 properties for v3");
    }

    #[test]
    fn the_amqp_encoding_fits_its_first_allocation() {
        let props = Properties::from(PropertySet {
            content_type: Some("application/json".into()),
            response_topic: Some("replies/1".into()),
            correlation_data: Some(Bytes::from_static(b"corr")),
            message_expiry_interval: Some(30),
            payload_format_indicator: Some(0),
            // every key twice: the pairs go in the annotation too
            user_properties: (0..40)
                .map(|i| (format!("k{}", i % 20).as_str().into(), "v".into()))
                .collect(),
            ..PropertySet::default()
        });
        for (props, payload) in [(Properties::default(), 0), (props, 1000)] {
            let (topic, client) = ("sensors/a/b/temperature", "device-0001");
            let bytes = to_amqp(
                topic,
                QoS::ExactlyOnce,
                true,
                &props,
                Bytes::from(vec![b'x'; payload]),
                client,
            );
            assert!(bytes.len() <= amqp_capacity(topic, client, &props, payload));
        }
    }

    /// What `to_amqp` encodes by hand, built with the general-purpose builder.
    fn built(
        topic: &str,
        qos: QoS,
        retain: bool,
        props: &Properties,
        payload: &[u8],
        client: &str,
    ) -> Bytes {
        let mut b = MessageBuilder::new().header(Header {
            durable: Some(qos != QoS::AtMostOnce),
            ttl: props.message_expiry_interval.map(|s| s * 1000),
            ..Header::default()
        });
        let mut annotations = vec![
            (Symbol::new(QOS_ANNOTATION), Value::Ubyte(qos as u8)),
            (Symbol::new(CLIENT_ANNOTATION), Value::String(client.into())),
        ];
        if retain {
            annotations.push((Symbol::new(RETAIN_ANNOTATION), Value::Bool(true)));
        }
        if let Some(f) = props.payload_format_indicator {
            annotations.push((Symbol::new(PAYLOAD_FORMAT_ANNOTATION), Value::Ubyte(f)));
        }
        let user = &props.user_properties;
        if (1..user.len()).any(|i| user[..i].iter().any(|(k, _)| *k == user[i].0)) {
            let all = user
                .iter()
                .flat_map(|(k, v)| [k, v])
                .map(|s| Value::String(s.to_string()))
                .collect();
            annotations.push((Symbol::new(USER_PROPERTIES_ANNOTATION), Value::List(all)));
        }
        b.message_annotations = Some(annotations);
        b = b.properties(AmqpProperties {
            to: Some(topic.into()),
            reply_to: props.response_topic.as_ref().map(|t| t.to_string()),
            correlation_id: props.correlation_data.clone().map(Value::Binary),
            content_type: props.content_type.as_ref().map(|c| Symbol::new(c.as_str())),
            ..AmqpProperties::default()
        });
        for (k, v) in &props.user_properties {
            if !b
                .application_properties
                .iter()
                .any(|(x, _)| x == k.as_str())
            {
                b = b.app_property(k.as_str(), Value::String(v.to_string()));
            }
        }
        b.data(Bytes::copy_from_slice(payload)).encode()
    }

    #[test]
    fn the_hand_encoding_is_the_builders() {
        let long = "x".repeat(300);
        let cases = [
            Properties::default(),
            Properties::from(PropertySet {
                content_type: Some("text/plain".into()),
                response_topic: Some("r/1".into()),
                correlation_data: Some(Bytes::from_static(b"c")),
                message_expiry_interval: Some(5),
                payload_format_indicator: Some(1),
                user_properties: vec![
                    ("a".into(), "1".into()),
                    ("b".into(), long.as_str().into()),
                    ("a".into(), "dup".into()),
                ],
                ..PropertySet::default()
            }),
            Properties::from(PropertySet {
                response_topic: Some("r/1".into()),
                ..PropertySet::default()
            }),
            Properties::from(PropertySet {
                correlation_data: Some(Bytes::from_static(b"c")),
                ..PropertySet::default()
            }),
            Properties::from(PropertySet {
                content_type: Some("text/plain".into()),
                ..PropertySet::default()
            }),
        ];
        for props in &cases {
            for (qos, retain) in [
                (QoS::AtMostOnce, false),
                (QoS::AtLeastOnce, true),
                (QoS::ExactlyOnce, false),
            ] {
                for payload in [&b""[..], b"hello", long.as_bytes()] {
                    let client = if retain { long.as_str() } else { "c1" };
                    assert_eq!(
                        to_amqp(
                            "t/a",
                            qos,
                            retain,
                            props,
                            Bytes::copy_from_slice(payload),
                            client
                        ),
                        built("t/a", qos, retain, props, payload, client),
                        "qos {qos:?} retain {retain} payload {} props {props:?}",
                        payload.len()
                    );
                }
            }
        }
    }

    #[test]
    fn an_amqp_string_body_becomes_the_payload() {
        let bytes = MessageBuilder::new()
            .value(Value::String("text".into()))
            .encode();
        let msg = Message::parse(bytes).expect("parse");
        let pb = to_mqtt(&msg, &ByteStr::from("t"), QoS::AtLeastOnce, true);
        assert_eq!(pb.payload.as_ref(), b"text");
        assert_eq!(pb.qos, QoS::AtMostOnce, "not durable: QoS 0");
    }

    #[test]
    fn qos_of_is_the_qos_to_mqtt_gives() {
        let mut cases = Vec::new();
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            // from MQTT: the QoS annotation (header durable for 1 and 2)
            let bytes = to_amqp("t", qos, false, &Properties::default(), Bytes::new(), "c");
            cases.push((Message::parse(bytes).expect("parse"), qos));
        }
        for (durable, qos) in [(true, QoS::AtLeastOnce), (false, QoS::AtMostOnce)] {
            // from AMQP: the header alone
            let mut b = MessageBuilder::new().data(Bytes::from_static(b"x"));
            if durable {
                b = b.header(Header {
                    durable: Some(true),
                    ..Header::default()
                });
            }
            cases.push((Message::parse(b.encode()).expect("parse"), qos));
        }
        for (msg, want) in cases {
            assert_eq!(qos_of(&msg), want);
            let pb = to_mqtt(&msg, &ByteStr::from("t"), QoS::ExactlyOnce, true);
            assert_eq!(pb.qos, want);
        }
    }
}
