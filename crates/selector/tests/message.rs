//! End-to-end: selectors evaluated against encoded AMQP messages.

use throng_amqp::codec::{Symbol, Timestamp, Value};
use throng_amqp::definitions::{Header, Properties};
use throng_amqp::message::{Message, MessageBuilder};
use throng_selector::Selector;

fn message(builder: MessageBuilder) -> Message {
    Message::parse(builder.encode()).expect("valid message")
}

fn matches(selector: &str, msg: &Message) -> bool {
    Selector::parse(selector)
        .unwrap_or_else(|e| panic!("{selector}: {e}"))
        .matches(msg)
}

/// Asserts which of `selectors` match `msg` (`true`) and which do not.
fn check(msg: &Message, cases: &[(&str, bool)]) {
    for &(selector, expected) in cases {
        assert_eq!(matches(selector, msg), expected, "{selector}");
    }
}

fn car() -> Message {
    message(
        MessageBuilder::new()
            .header(Header {
                durable: Some(true),
                priority: Some(7),
                ..Default::default()
            })
            .properties(Properties {
                message_id: Some(Value::String("ID:car-1".into())),
                subject: Some("car".into()),
                creation_time: Some(Timestamp(1_700_000_000_000)),
                ..Default::default()
            })
            .app_property("color", Value::String("blue".into()))
            .app_property("weight", Value::Int(3000))
            .app_property("price", Value::Double(19_999.5))
            .app_property("electric", Value::Bool(true))
            .app_property("phone", Value::String("12993".into()))
            .app_property("age", Value::Ubyte(17))
            .app_property("Country", Value::String("France".into()))
            .data(&b"body"[..]),
    )
}

#[test]
fn jms_spec_examples() {
    let msg = car();
    check(
        &msg,
        &[
            ("JMSType = 'car' AND color = 'blue' AND weight > 2500", true),
            ("JMSType = 'car' AND color = 'red' AND weight > 2500", false),
            (
                "JMSType = 'car' AND color = 'blue' AND weight > 3000",
                false,
            ),
            ("phone LIKE '12%3'", true),
            ("phone NOT LIKE '12%3'", false),
            ("phone LIKE '12_3'", false),
            ("age BETWEEN 15 AND 19", true),
            ("age NOT BETWEEN 15 AND 19", false),
            ("age >= 15 AND age <= 19", true),
            ("Country IN (' UK', 'US', 'France')", true),
            ("Country NOT IN (' UK', 'US', 'France')", false),
            ("Country IN (' UK', 'US')", false),
            ("NOT (Country IN (' UK', 'US'))", true),
        ],
    );
}

#[test]
fn header_fields() {
    let msg = car();
    check(
        &msg,
        &[
            ("JMSDeliveryMode = 'PERSISTENT'", true),
            ("JMSDeliveryMode = 'NON_PERSISTENT'", false),
            ("JMSPriority = 7", true),
            ("JMSPriority > 4", true),
            ("JMSPriority BETWEEN 5 AND 9", true),
            ("JMSMessageID = 'ID:car-1'", true),
            ("JMSMessageID LIKE 'ID:car-%'", true),
            ("JMSTimestamp = 1700000000000", true),
            (
                "JMSTimestamp > 1600000000000 AND JMSTimestamp < 1800000000000",
                true,
            ),
            ("JMSCorrelationID IS NULL", true),
            ("JMSExpiration = 0", true),
            ("JMSRedelivered = FALSE", true),
            ("NOT JMSRedelivered", true),
            ("JMSXDeliveryCount = 1", true),
            ("JMSXGroupID IS NULL", true),
            ("JMSXUserID IS NULL", true),
            // Identifiers are case-sensitive.
            ("jmspriority IS NULL", true),
        ],
    );
}

#[test]
fn header_defaults() {
    // No header, no properties at all.
    let msg = message(MessageBuilder::new().value(Value::String("x".into())));
    check(
        &msg,
        &[
            ("JMSDeliveryMode = 'NON_PERSISTENT'", true),
            ("JMSPriority = 4", true),
            ("JMSMessageID IS NULL", true),
            ("JMSCorrelationID IS NULL", true),
            ("JMSType IS NULL", true),
            ("JMSTimestamp = 0", true),
            ("JMSExpiration = 0", true),
            ("JMSRedelivered", false),
            ("NOT JMSRedelivered", true),
            ("color IS NULL", true),
            ("color = 'blue'", false),
            ("color <> 'blue'", false),
            ("NOT (color = 'blue')", false),
        ],
    );
    // A header that leaves durable and priority out.
    let msg = message(MessageBuilder::new().header(Header::default()));
    check(
        &msg,
        &[
            ("JMSDeliveryMode = 'NON_PERSISTENT'", true),
            ("JMSPriority = 4", true),
        ],
    );
}

#[test]
fn header_variants() {
    let msg = message(MessageBuilder::new().header(Header {
        durable: Some(false),
        priority: Some(200),
        delivery_count: Some(2),
        ..Default::default()
    }));
    check(
        &msg,
        &[
            ("JMSDeliveryMode = 'NON_PERSISTENT'", true),
            ("JMSPriority = 9", true),
            ("JMSRedelivered = TRUE", true),
            ("JMSRedelivered", true),
            ("JMSXDeliveryCount = 3", true),
        ],
    );
    let msg = message(MessageBuilder::new().header(Header {
        priority: Some(0),
        ..Default::default()
    }));
    assert!(matches("JMSPriority = 0", &msg));
}

#[test]
fn message_and_correlation_ids() {
    let with_ids = |message_id: Value, correlation_id: Value| {
        message(MessageBuilder::new().properties(Properties {
            message_id: Some(message_id),
            correlation_id: Some(correlation_id),
            ..Default::default()
        }))
    };
    let msg = with_ids(
        Value::String("plain".into()),
        Value::String("corr-7".into()),
    );
    check(
        &msg,
        &[
            ("JMSMessageID = 'ID:AMQP_NO_PREFIX:plain'", true),
            ("JMSMessageID = 'plain'", false),
            ("JMSCorrelationID = 'corr-7'", true),
        ],
    );
    let msg = with_ids(Value::Ulong(42), Value::Ulong(43));
    check(
        &msg,
        &[
            ("JMSMessageID = 'ID:AMQP_ULONG:42'", true),
            ("JMSCorrelationID = 'ID:AMQP_ULONG:43'", true),
        ],
    );
    let uuid = [
        0xf8, 0x1d, 0x4f, 0xae, 0x7d, 0xec, 0x11, 0xd0, 0xa7, 0x65, 0x00, 0xa0, 0xc9, 0x1e, 0x6b,
        0xf6,
    ];
    let msg = with_ids(Value::Uuid(uuid), Value::Binary(vec![0xca, 0xfe].into()));
    check(
        &msg,
        &[
            (
                "JMSMessageID = 'ID:AMQP_UUID:f81d4fae-7dec-11d0-a765-00a0c91e6bf6'",
                true,
            ),
            ("JMSCorrelationID = 'ID:AMQP_BINARY:CAFE'", true),
        ],
    );
}

#[test]
fn jms_type_prefers_the_annotation() {
    let mut builder = MessageBuilder::new().properties(Properties {
        subject: Some("subject-type".into()),
        ..Default::default()
    });
    builder.message_annotations = Some(vec![(
        Symbol::new("x-opt-jms-type"),
        Value::String("annotated-type".into()),
    )]);
    let msg = message(builder);
    check(
        &msg,
        &[
            ("JMSType = 'annotated-type'", true),
            ("JMSType = 'subject-type'", false),
        ],
    );
    let msg = message(MessageBuilder::new().properties(Properties {
        subject: Some("subject-type".into()),
        ..Default::default()
    }));
    assert!(matches("JMSType = 'subject-type'", &msg));
}

#[test]
fn jmsx_properties() {
    let msg = message(MessageBuilder::new().properties(Properties {
        user_id: Some(b"alice".to_vec().into()),
        group_id: Some("orders".into()),
        group_sequence: Some(12),
        absolute_expiry_time: Some(Timestamp(1_800_000_000_000)),
        ..Default::default()
    }));
    check(
        &msg,
        &[
            ("JMSXUserID = 'alice'", true),
            ("JMSXGroupID = 'orders'", true),
            ("JMSXGroupSeq = 12", true),
            ("JMSExpiration = 1800000000000", true),
        ],
    );
}

#[test]
fn absent_header_fields_fall_back_to_application_properties() {
    let msg = message(
        MessageBuilder::new().app_property("JMSXGroupID", Value::String("from-props".into())),
    );
    assert!(matches("JMSXGroupID = 'from-props'", &msg));
}

#[test]
fn application_property_types() {
    let msg = message(
        MessageBuilder::new()
            .app_property("s", Value::String("text".into()))
            .app_property("sym", Value::Symbol(Symbol::new("symbolic")))
            .app_property("yes", Value::Bool(true))
            .app_property("no", Value::Bool(false))
            .app_property("b", Value::Byte(-8))
            .app_property("sh", Value::Short(-300))
            .app_property("i", Value::Int(100_000))
            .app_property("l", Value::Long(-5_000_000_000))
            .app_property("ub", Value::Ubyte(200))
            .app_property("us", Value::Ushort(60_000))
            .app_property("ui", Value::Uint(4_000_000_000))
            .app_property("ul", Value::Ulong(18_000_000_000))
            .app_property("huge", Value::Ulong(u64::MAX))
            .app_property("f", Value::Float(1.5))
            .app_property("d", Value::Double(2.25))
            .app_property("ts", Value::Timestamp(5))
            .app_property("bin", Value::Binary(vec![1, 2].into()))
            .app_property("nul", Value::Null),
    );
    check(
        &msg,
        &[
            ("s = 'text'", true),
            ("sym = 'symbolic'", true),
            ("yes", true),
            ("yes = TRUE", true),
            ("no", false),
            ("NOT no", true),
            ("b = -8", true),
            ("sh = -300", true),
            ("i = 100000", true),
            ("l = -5000000000", true),
            ("ub = 200", true),
            ("us = 60000", true),
            ("ui = 4000000000", true),
            ("ul = 18000000000", true),
            ("huge > 9223372036854775807", true),
            ("f = 1.5", true),
            ("d = 2.25", true),
            ("f + d = 3.75", true),
            ("i / 1000 + ub = 300", true),
            ("ts IS NULL", true),
            ("bin IS NULL", true),
            ("nul IS NULL", true),
            ("missing IS NULL", true),
            ("s IS NOT NULL AND i IS NOT NULL", true),
            // Unlike types compare false, not an error.
            ("s = 5", false),
            ("i = 'text'", false),
            ("yes = 1", false),
        ],
    );
}

#[test]
fn duplicate_application_property_first_wins() {
    let msg = message(
        MessageBuilder::new()
            .app_property("k", Value::Int(1))
            .app_property("k", Value::Int(2)),
    );
    assert!(matches("k = 1", &msg));
}

#[test]
fn empty_selector_matches_any_message() {
    let msg = car();
    assert!(matches("", &msg));
    assert!(Selector::parse("   ").unwrap().matches(&msg));
}

#[test]
fn a_selector_is_reusable_across_messages() {
    let selector = Selector::parse("weight > 2500 OR color = 'red'").unwrap();
    let heavy = car();
    let red = message(MessageBuilder::new().app_property("color", Value::String("red".into())));
    let light = message(MessageBuilder::new().app_property("weight", Value::Long(10)));
    let empty = message(MessageBuilder::new());
    assert!(selector.matches(&heavy));
    assert!(selector.matches(&red));
    assert!(!selector.matches(&light));
    assert!(!selector.matches(&empty));
}
