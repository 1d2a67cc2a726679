//! `Message::with_annotations`: the merge a `modified` outcome's message-annotations ask
//! for (part 3 §3.4.5), rewriting only the message-annotations section.

mod common;

use bytes::{Bytes, BytesMut};
use common::arb_fields;
use proptest::prelude::*;
use throng_amqp::codec::{encode, Fields, Symbol, Value};
use throng_amqp::definitions::{Header, Properties};
use throng_amqp::message::{section, Body, Message, MessageBuilder};

fn sym(s: &str) -> Symbol {
    Symbol::new(s)
}

fn annotations(pairs: &[(&str, Value)]) -> Fields {
    pairs.iter().map(|(k, v)| (sym(k), v.clone())).collect()
}

/// header, delivery-annotations, message-annotations (if any), properties,
/// application-properties, a data body and a footer: every section the merge must keep.
fn full_message(ma: Option<&Fields>) -> (Bytes, Range) {
    let mut buf = BytesMut::new();
    Header {
        durable: Some(true),
        priority: Some(7),
        ..Header::default()
    }
    .encode(&mut buf);
    encode::descriptor(&mut buf, section::DELIVERY_ANNOTATIONS);
    encode::fields(&mut buf, &annotations(&[("x-da", Value::Int(1))]));
    let before_ma = buf.len();
    if let Some(ma) = ma {
        encode::descriptor(&mut buf, section::MESSAGE_ANNOTATIONS);
        encode::fields(&mut buf, ma);
    }
    let bare_start = buf.len();
    MessageBuilder::new()
        .properties(Properties {
            message_id: Some(Value::String("id-1".into())),
            to: Some("q".into()),
            ..Properties::default()
        })
        .app_property("k", Value::String("v".into()))
        .data(Bytes::from_static(b"the body"))
        .encode_into(&mut buf);
    let bare_end = buf.len();
    encode::descriptor(&mut buf, section::FOOTER);
    encode::fields(&mut buf, &annotations(&[("x-hash", Value::Uint(42))]));
    (
        buf.freeze(),
        Range {
            before_ma,
            bare_start,
            bare_end,
        },
    )
}

struct Range {
    before_ma: usize,
    bare_start: usize,
    bare_end: usize,
}

#[test]
fn replaces_and_adds_annotations_keeping_every_other_byte() {
    let old = annotations(&[
        ("x-opt-a", Value::Int(1)),
        ("x-opt-b", Value::String("old".into())),
    ]);
    let (bytes, r) = full_message(Some(&old));
    let msg = Message::parse(bytes.clone()).unwrap();
    let extra = annotations(&[
        ("x-opt-b", Value::String("new".into())),
        ("x-opt-c", Value::Bool(true)),
    ]);
    let merged = msg.with_annotations(&extra).unwrap();
    assert_eq!(
        merged.message_annotations().unwrap().unwrap(),
        annotations(&[
            ("x-opt-a", Value::Int(1)),
            ("x-opt-b", Value::String("new".into())),
            ("x-opt-c", Value::Bool(true)),
        ])
    );
    let out = merged.bytes();
    // header and delivery annotations: the same bytes in front
    assert_eq!(&out[..r.before_ma], &bytes[..r.before_ma]);
    // bare message and footer: the same bytes at the end
    let tail = &bytes[r.bare_start..];
    assert_eq!(&out[out.len() - tail.len()..], tail);
    assert_eq!(merged.bare(), bytes.slice(r.bare_start..r.bare_end));
    assert_eq!(merged.header().unwrap(), msg.header().unwrap());
    assert_eq!(merged.properties().unwrap(), msg.properties().unwrap());
    assert_eq!(
        merged.body().unwrap(),
        Body::Data(Bytes::from_static(b"the body"))
    );
    // the original is unchanged
    assert_eq!(msg.message_annotations().unwrap().unwrap(), old);
}

#[test]
fn adds_the_section_where_there_was_none() {
    let (bytes, r) = full_message(None);
    let msg = Message::parse(bytes.clone()).unwrap();
    assert!(!msg.has_message_annotations());
    let extra = annotations(&[("x-opt-reason", Value::String("busy".into()))]);
    let merged = msg.with_annotations(&extra).unwrap();
    assert_eq!(merged.message_annotations().unwrap().unwrap(), extra);
    assert_eq!(&merged.bytes()[..r.before_ma], &bytes[..r.before_ma]);
    assert_eq!(merged.bare(), bytes.slice(r.bare_start..r.bare_end));
}

#[test]
fn a_message_with_only_a_body_gets_annotations_in_front() {
    let bytes = MessageBuilder::new()
        .data(Bytes::from_static(b"b"))
        .encode();
    let msg = Message::parse(bytes.clone()).unwrap();
    let extra = annotations(&[("k", Value::Long(-1))]);
    let merged = msg.with_annotations(&extra).unwrap();
    assert!(!merged.has_header());
    assert_eq!(merged.message_annotations().unwrap().unwrap(), extra);
    assert_eq!(merged.bare(), bytes);
    assert!(merged.message_annotations_len() > 0);
    assert_eq!(msg.message_annotations_len(), 0);
}

#[test]
fn annotations_that_are_not_a_symbol_keyed_map_fail_cleanly() {
    // message annotations keyed by a string: not what the specification allows
    let mut buf = BytesMut::new();
    encode::descriptor(&mut buf, section::MESSAGE_ANNOTATIONS);
    encode::value(
        &mut buf,
        &Value::Map(vec![(Value::String("k".into()), Value::Int(1))]),
    );
    MessageBuilder::new()
        .data(Bytes::from_static(b"b"))
        .encode_into(&mut buf);
    let msg = Message::parse(buf.freeze()).unwrap();
    assert!(msg
        .with_annotations(&annotations(&[("x", Value::Int(2))]))
        .is_err());
}

proptest! {
    #[test]
    fn merging_keeps_the_bare_message(old in proptest::option::of(arb_fields()), extra in arb_fields()) {
        let (bytes, r) = full_message(old.as_ref());
        let msg = Message::parse(bytes.clone()).unwrap();
        let merged = msg.with_annotations(&extra).unwrap();
        prop_assert_eq!(merged.bare(), bytes.slice(r.bare_start..r.bare_end));
        prop_assert_eq!(&merged.bytes()[..r.before_ma], &bytes[..r.before_ma]);
        let got = merged.message_annotations().unwrap().unwrap();
        // every extra annotation has its new value (the last one given for a key)
        for (k, _) in &extra {
            let want = extra.iter().rev().find(|(key, _)| key == k).map(|(_, v)| v);
            prop_assert_eq!(got.iter().find(|(key, _)| key == k).map(|(_, v)| v), want);
        }
        // and the old ones not named are kept
        for (k, v) in old.iter().flatten() {
            if !extra.iter().any(|(key, _)| key == k) {
                prop_assert!(got.iter().any(|(key, val)| key == k && val == v));
            }
        }
    }
}
