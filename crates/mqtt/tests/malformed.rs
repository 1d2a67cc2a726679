//! Malformed and hostile input: each case must fail with the right reason code, never
//! panic, and oversize packets must be refused from their header alone.

use bytes::BytesMut;
use throng_mqtt::codec::*;

fn err(bytes: &[u8], v: Version) -> ReasonCode {
    let mut b = BytesMut::from(bytes);
    match Decoder::new(v, MAX_PACKET_SIZE).decode(&mut b) {
        Err(e) => e.reason,
        Ok(p) => panic!("{bytes:02x?} decoded as {p:?}"),
    }
}

use ReasonCode::{MalformedPacket as M, ProtocolError as P};

#[test]
fn truncated_packets_wait_for_more() {
    let full = [
        0x32, 0x09, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x0a, b'h', b'i',
    ];
    for n in 0..full.len() {
        let mut b = BytesMut::from(&full[..n]);
        assert_eq!(
            Decoder::new(Version::V311, 100).decode(&mut b).unwrap(),
            None
        );
        assert_eq!(b.len(), n, "nothing consumed");
    }
}

#[test]
fn contents_shorter_than_the_remaining_length_say() {
    // PUBLISH whose topic length runs past the packet
    assert_eq!(err(&[0x30, 0x03, 0x00, 0x05, b'a'], Version::V311), M);
    // PUBACK with one byte
    assert_eq!(err(&[0x40, 0x01, 0x00], Version::V311), M);
    // CONNECT cut in the middle of its flags
    assert_eq!(
        err(
            &[0x10, 0x06, 0x00, 0x04, b'M', b'Q', b'T', b'T'],
            Version::V311
        ),
        M
    );
}

#[test]
fn remaining_length_over_four_bytes() {
    assert_eq!(err(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01], Version::V5), M);
    assert_eq!(err(&[0xc0, 0x80, 0x00], Version::V5), M, "non-minimal");
}

#[test]
fn invalid_utf8_and_nul() {
    assert_eq!(err(&[0x30, 0x04, 0x00, 0x02, 0xc3, 0x28], Version::V311), M);
    assert_eq!(err(&[0x30, 0x04, 0x00, 0x02, b'a', 0x00], Version::V311), M);
    // surrogate half U+D800 encoded in UTF-8
    assert_eq!(
        err(&[0x30, 0x05, 0x00, 0x03, 0xed, 0xa0, 0x80], Version::V311),
        M
    );
}

#[test]
fn reserved_flag_bits() {
    // PUBREL must have flags 0010, SUBSCRIBE too; PUBACK 0000
    assert_eq!(err(&[0x60, 0x02, 0x00, 0x01], Version::V311), M);
    assert_eq!(err(&[0x41, 0x02, 0x00, 0x01], Version::V311), M);
    assert_eq!(
        err(
            &[0x80, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x00],
            Version::V311
        ),
        M
    );
    assert_eq!(err(&[0xc1, 0x00], Version::V311), M);
    // CONNECT reserved flag
    let mut c = vec![
        0x10, 0x0d, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x03, 0x00, 0x00, 0x00, 0x01, b'c',
    ];
    c[1] = (c.len() - 2) as u8;
    assert_eq!(err(&c, Version::V311), M);
    // CONNACK reserved acknowledge flags
    assert_eq!(err(&[0x20, 0x02, 0x02, 0x00], Version::V311), M);
    // packet type 0, and AUTH in v3
    assert_eq!(err(&[0x00, 0x00], Version::V311), M);
    assert_eq!(err(&[0xf0, 0x00], Version::V311), M);
}

#[test]
fn qos_3() {
    assert_eq!(
        err(&[0x36, 0x05, 0x00, 0x01, b'a', 0x00, 0x01], Version::V311),
        M
    );
    // subscription QoS 3
    assert_eq!(
        err(
            &[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x03],
            Version::V311
        ),
        M
    );
    // will QoS 3
    let c = [
        0x10, 0x0c, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x1c, 0x00, 0x00, 0x00, 0x00,
    ];
    assert_eq!(err(&c, Version::V311), M);
}

#[test]
fn subscription_options_reserved_bits() {
    // v3: only QoS bits allowed
    assert_eq!(
        err(
            &[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x04],
            Version::V311
        ),
        M
    );
    // v5: bits 6-7 reserved; retain handling 3 is a protocol error
    assert_eq!(
        err(
            &[0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'a', 0x40],
            Version::V5
        ),
        M
    );
    assert_eq!(
        err(
            &[0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'a', 0x30],
            Version::V5
        ),
        P
    );
    // no-local on a shared subscription
    let mut b = vec![0x82, 0x00, 0x00, 0x01, 0x00, 0x00, 0x09];
    b.extend_from_slice(b"$share/g/");
    b.push(0x04);
    b[1] = (b.len() - 2) as u8;
    assert_eq!(err(&b, Version::V5), P);
    // SUBSCRIBE / UNSUBSCRIBE without filters
    assert_eq!(err(&[0x82, 0x02, 0x00, 0x01], Version::V311), P);
    assert_eq!(err(&[0xa2, 0x03, 0x00, 0x01, 0x00], Version::V5), P);
}

#[test]
fn property_rules() {
    // session expiry twice in DISCONNECT
    let b = [0xe0, 0x0c, 0x00, 0x0a, 0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2];
    assert_eq!(err(&b, Version::V5), P);
    // topic alias (0x23) in a PUBACK: not allowed there
    assert_eq!(
        err(
            &[0x40, 0x06, 0x00, 0x01, 0x00, 0x03, 0x23, 0x00, 0x01],
            Version::V5
        ),
        M
    );
    // unknown property 0x7f
    assert_eq!(err(&[0xe0, 0x04, 0x00, 0x02, 0x7f, 0x00], Version::V5), M);
    // property length beyond the packet
    assert_eq!(err(&[0xe0, 0x03, 0x00, 0x09, 0x11], Version::V5), M);
    // receive maximum 0, maximum packet size 0 (CONNACK)
    assert_eq!(
        err(
            &[0x20, 0x06, 0x00, 0x00, 0x03, 0x21, 0x00, 0x00],
            Version::V5
        ),
        P
    );
    assert_eq!(
        err(
            &[0x20, 0x08, 0x00, 0x00, 0x05, 0x27, 0, 0, 0, 0],
            Version::V5
        ),
        P
    );
    // payload format indicator 2 in PUBLISH
    assert_eq!(
        err(
            &[0x30, 0x06, 0x00, 0x01, b'a', 0x02, 0x01, 0x02],
            Version::V5
        ),
        P
    );
    // subscription identifier 0
    assert_eq!(
        err(
            &[0x30, 0x06, 0x00, 0x01, b'a', 0x02, 0x0b, 0x00],
            Version::V5
        ),
        P
    );
    // two subscription identifiers are fine in PUBLISH, not in SUBSCRIBE
    let mut d = BytesMut::from(&[0x30, 0x08, 0x00, 0x01, b'a', 0x04, 0x0b, 0x01, 0x0b, 0x02][..]);
    let Some(Packet::Publish(p)) = Decoder::new(Version::V5, 100).decode(&mut d).unwrap() else {
        panic!()
    };
    assert_eq!(p.properties.subscription_identifiers, vec![1, 2]);
    assert_eq!(
        err(
            &[0x82, 0x0b, 0x00, 0x01, 0x04, 0x0b, 0x01, 0x0b, 0x02, 0x00, 0x01, b'a', 0x00],
            Version::V5
        ),
        P
    );
    // user property value invalid UTF-8
    assert_eq!(
        err(
            &[0xe0, 0x09, 0x00, 0x07, 0x26, 0x00, 0x01, b'k', 0x00, 0x01, 0xff],
            Version::V5
        ),
        M
    );
}

#[test]
fn packet_id_zero() {
    assert_eq!(
        err(&[0x32, 0x05, 0x00, 0x01, b'a', 0x00, 0x00], Version::V311),
        P
    );
    assert_eq!(err(&[0x40, 0x02, 0x00, 0x00], Version::V311), P);
    assert_eq!(
        err(
            &[0x82, 0x06, 0x00, 0x00, 0x00, 0x01, b'a', 0x00],
            Version::V311
        ),
        P
    );
}

#[test]
fn zero_length_topic_without_alias() {
    assert_eq!(err(&[0x30, 0x02, 0x00, 0x00], Version::V311), P);
    assert_eq!(err(&[0x30, 0x03, 0x00, 0x00, 0x00], Version::V5), P);
}

#[test]
fn wildcard_in_topic_name() {
    assert_eq!(
        err(&[0x30, 0x03, 0x00, 0x01, b'#'], Version::V311),
        ReasonCode::TopicNameInvalid
    );
    assert_eq!(
        err(&[0x30, 0x05, 0x00, 0x03, b'a', b'/', b'+'], Version::V311),
        ReasonCode::TopicNameInvalid
    );
}

#[test]
fn dup_on_qos0_and_trailing_bytes() {
    assert_eq!(err(&[0x38, 0x03, 0x00, 0x01, b'a'], Version::V311), P);
    assert_eq!(err(&[0xc0, 0x01, 0x00], Version::V311), M);
    assert_eq!(err(&[0x40, 0x03, 0x00, 0x01, 0x00], Version::V311), M);
}

#[test]
fn reason_codes_must_fit_the_packet() {
    // PUBACK with 0x92 (only PUBREL/PUBCOMP use it), DISCONNECT with 0x01, unknown 0x03
    assert_eq!(err(&[0x40, 0x03, 0x00, 0x01, 0x92], Version::V5), M);
    assert_eq!(err(&[0xe0, 0x01, 0x01], Version::V5), M);
    assert_eq!(err(&[0x40, 0x03, 0x00, 0x01, 0x03], Version::V5), M);
    // v3 CONNACK return code 6, v3 SUBACK code 0x03
    assert_eq!(err(&[0x20, 0x02, 0x00, 0x06], Version::V311), M);
    assert_eq!(err(&[0x90, 0x03, 0x00, 0x01, 0x03], Version::V311), M);
    // session present on a refusal
    assert_eq!(err(&[0x20, 0x02, 0x01, 0x05], Version::V311), P);
}

#[test]
fn protocol_names_and_levels() {
    let connect = |name: &[u8], level: u8| {
        let mut b = vec![0x10, 0];
        b.extend_from_slice(&(name.len() as u16).to_be_bytes());
        b.extend_from_slice(name);
        b.extend_from_slice(&[level, 0x02, 0x00, 0x3c, 0x00, 0x01, b'c']);
        if level == 5 {
            b.insert(b.len() - 3, 0x00);
        }
        b[1] = (b.len() - 2) as u8;
        b
    };
    assert_eq!(
        err(&connect(b"MQIsdp", 3), Version::V311),
        ReasonCode::UnsupportedProtocolVersion
    );
    assert_eq!(
        err(&connect(b"MQTT", 6), Version::V311),
        ReasonCode::UnsupportedProtocolVersion
    );
    assert_eq!(err(&connect(b"MQTX", 4), Version::V311), P);
    let mut b = BytesMut::from(&connect(b"MQTT", 5)[..]);
    assert!(Decoder::new(Version::V311, 100)
        .decode(&mut b)
        .unwrap()
        .is_some());
    // password without user name in v3
    let mut c = connect(b"MQTT", 4);
    c[9] = 0x42;
    c.extend_from_slice(&[0x00, 0x00]);
    c[1] = (c.len() - 2) as u8;
    assert_eq!(err(&c, Version::V311), M);
}

#[test]
fn oversize_refused_from_the_header() {
    // a PUBLISH announcing 1 MB against a 1000-byte limit: refused with only 4 bytes in
    let mut b = BytesMut::from(&[0x30, 0x80, 0x80, 0x40][..]);
    let e = Decoder::new(Version::V5, 1000).decode(&mut b).unwrap_err();
    assert_eq!(e.reason, ReasonCode::PacketTooLarge);
    // exactly at the limit is fine: 1 + 2 + 997
    let mut d = Decoder::new(Version::V5, 1000);
    let mut p = BytesMut::new();
    let publish = Publish::new("t", vec![0u8; 997 - 3 - 1]);
    encode(&Packet::Publish(publish), Version::V5, &mut p);
    assert_eq!(p.len(), 1000);
    assert!(d.decode(&mut p).unwrap().is_some());
}

#[test]
fn huge_claimed_lengths_do_not_allocate() {
    // a SUBACK claiming the maximum remaining length: Ok(None) with a bounded reserve
    let mut b = BytesMut::from(&[0x90, 0xff, 0xff, 0xff, 0x7f][..]);
    assert_eq!(
        Decoder::new(Version::V5, MAX_PACKET_SIZE)
            .decode(&mut b)
            .unwrap(),
        None
    );
    assert!(b.capacity() < 1024 * 1024);
}
