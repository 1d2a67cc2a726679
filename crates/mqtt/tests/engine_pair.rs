//! Engine pair tests: a client engine and a server engine wired back to back in memory.

use bytes::Bytes;
use std::time::{Duration, Instant};
use throng_mqtt::codec::*;
use throng_mqtt::engine::*;

struct Pair {
    client: Connection,
    server: Connection,
    ce: Vec<Event>,
    se: Vec<Event>,
    now: Instant,
}

impl Pair {
    fn new(connect: Connect, client_cfg: Config, server_cfg: Config) -> Self {
        let now = Instant::now();
        Pair {
            client: Connection::client(client_cfg, connect, now),
            server: Connection::server(server_cfg, now),
            ce: vec![],
            se: vec![],
            now,
        }
    }

    /// Connects and lets the server accept with `props`.
    fn connected(version: Version, props: Properties) -> Self {
        Self::connected_with(
            Connect::new(version, "c1"),
            Config::client(),
            Config::server(),
            props,
        )
    }

    fn connected_with(connect: Connect, cc: Config, sc: Config, props: Properties) -> Self {
        let mut p = Pair::new(connect, cc, sc);
        p.pump();
        assert!(matches!(p.se.remove(0), Event::Connect(_)));
        p.server.accept(false, props).unwrap();
        p.pump();
        assert!(matches!(
            p.ce.remove(0),
            Event::ConnAck(ConnAck {
                reason: ReasonCode::Success,
                ..
            })
        ));
        assert!(p.client.is_connected() && p.server.is_connected());
        p
    }

    /// Moves bytes both ways until both are quiet, collecting events.
    fn pump(&mut self) {
        for _ in 0..100 {
            let c2s = self.client.output().split();
            let s2c = self.server.output().split();
            if c2s.is_empty() && s2c.is_empty() {
                break;
            }
            self.server.handle_input(&c2s, self.now);
            self.client.handle_input(&s2c, self.now);
            while let Some(e) = self.server.poll_event() {
                self.se.push(e);
            }
            while let Some(e) = self.client.poll_event() {
                self.ce.push(e);
            }
        }
    }

    fn server_publishes(&mut self) -> Vec<Publish> {
        take_publishes(&mut self.se)
    }

    fn client_publishes(&mut self) -> Vec<Publish> {
        take_publishes(&mut self.ce)
    }
}

fn take_publishes(events: &mut Vec<Event>) -> Vec<Publish> {
    let mut out = vec![];
    events.retain(|e| match e {
        Event::Publish(p) => {
            out.push(p.clone());
            false
        }
        _ => true,
    });
    out
}

fn acked(events: &[Event]) -> Vec<(u16, QoS, ReasonCode)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Acked {
                packet_id,
                qos,
                reason,
            } => Some((*packet_id, *qos, *reason)),
            _ => None,
        })
        .collect()
}

fn msg(topic: &str, payload: &'static [u8], qos: QoS) -> Publish {
    Publish::new(topic, Bytes::from_static(payload)).with_qos(qos)
}

fn closed(events: &[Event]) -> Option<&Closed> {
    events.iter().find_map(|e| match e {
        Event::Closed(c) => Some(c),
        _ => None,
    })
}

#[test]
fn connect_v3_and_v5() {
    for v in [Version::V311, Version::V5] {
        let mut connect = Connect::new(v, "dev-1");
        connect.keep_alive = 30;
        connect.username = Some("u".into());
        let mut p = Pair::new(connect, Config::client(), Config::server());
        p.pump();
        let Event::Connect(c) = p.se.remove(0) else {
            panic!()
        };
        assert_eq!(
            (c.version, c.client_id.as_str(), c.keep_alive),
            (v, "dev-1", 30)
        );
        assert_eq!(p.server.version(), v);
        let props = Properties::from(PropertySet {
            assigned_client_identifier: Some("x".into()),
            ..PropertySet::default()
        });
        p.server.accept(true, props).unwrap();
        p.pump();
        let Event::ConnAck(a) = p.ce.remove(0) else {
            panic!()
        };
        assert!(a.session_present);
        if v == Version::V5 {
            assert_eq!(
                a.properties.assigned_client_identifier.as_deref(),
                Some("x")
            );
            assert_eq!(a.properties.receive_maximum, Some(100), "config filled in");
        } else {
            assert!(a.properties.is_empty());
        }
        assert_eq!(p.client.keep_alive(), Duration::from_secs(30));
    }
}

#[test]
fn refuse_v3_and_v5() {
    for v in [Version::V311, Version::V5] {
        let mut p = Pair::new(Connect::new(v, "c"), Config::client(), Config::server());
        p.pump();
        p.server
            .refuse(ReasonCode::BadUserNameOrPassword, Properties::default())
            .unwrap();
        p.pump();
        let Event::ConnAck(a) = &p.ce[0] else {
            panic!()
        };
        assert_eq!(a.reason, ReasonCode::BadUserNameOrPassword);
        assert!(p.client.is_closed() && p.server.is_closed());
        assert!(!closed(&p.se).unwrap().publish_will);
    }
}

#[test]
fn unsupported_protocol_level_gets_connack_1() {
    let now = Instant::now();
    let mut s = Connection::server(Config::server(), now);
    let bytes = [
        0x10, 0x0e, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03, 0x02, 0x00, 0x3c, 0x00,
        0x00,
    ];
    s.handle_input(&bytes, now);
    assert_eq!(&s.output()[..], &[0x20, 0x02, 0x00, 0x01]);
    assert!(s.is_closed());
}

#[test]
fn first_packet_must_be_connect_and_second_connect_is_an_error() {
    let now = Instant::now();
    let mut s = Connection::server(Config::server(), now);
    s.handle_input(&[0xc0, 0x00], now);
    assert!(s.is_closed());
    assert!(s.output().is_empty());
    let mut p = Pair::connected(Version::V5, Properties::default());
    let mut buf = bytes::BytesMut::new();
    encode(
        &Packet::Connect(Box::new(Connect::new(Version::V5, "again"))),
        Version::V5,
        &mut buf,
    );
    p.server.handle_input(&buf, p.now);
    assert!(p.server.is_closed());
    // v5: DISCONNECT 0x82 goes out first
    assert_eq!(disconnect_reason(&p.server.output()[..]) as u8, 0x82);
    assert_eq!(
        closed(&take_events(&mut p.server)).unwrap().reason,
        ReasonCode::ProtocolError
    );
}

/// The reason code of the one v5 DISCONNECT in `out`, checking it carries a reason string
/// (the engine's explanation of why it closes).
fn disconnect_reason(out: &[u8]) -> ReasonCode {
    let mut buf = bytes::BytesMut::from(out);
    let mut d = Decoder::new(Version::V5, 1 << 20);
    let Ok(Some(Packet::Disconnect(disc))) = d.decode(&mut buf) else {
        panic!("not one DISCONNECT: {out:02x?}");
    };
    assert!(buf.is_empty(), "more than one packet: {out:02x?}");
    assert!(
        disc.properties
            .reason_string
            .as_ref()
            .is_some_and(|r| !r.is_empty()),
        "a reason string says why"
    );
    disc.reason
}

fn take_events(c: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

#[test]
fn qos0_1_2_client_to_server() {
    for v in [Version::V311, Version::V5] {
        let mut p = Pair::connected(v, Properties::default());
        p.client
            .publish(msg("a/0", b"zero", QoS::AtMostOnce))
            .unwrap();
        let id1 = p
            .client
            .publish(msg("a/1", b"one", QoS::AtLeastOnce))
            .unwrap();
        let id2 = p
            .client
            .publish(msg("a/2", b"two", QoS::ExactlyOnce))
            .unwrap();
        assert_ne!(id1, id2);
        p.pump();
        let got = p.server_publishes();
        assert_eq!(got.len(), 3);
        assert_eq!(&got[2].payload[..], b"two");
        assert_eq!(p.client.inflight_len(), 2);
        assert!(
            acked(&p.ce).is_empty(),
            "nothing settles before the app acks"
        );
        // the app acks after "fsync", in reverse order
        p.server.ack_publish(id2, ReasonCode::Success).unwrap();
        p.server.ack_publish(id1, ReasonCode::Success).unwrap();
        p.pump();
        // QoS 2 takes one more round trip (PUBREL/PUBCOMP), so QoS 1 settles first
        assert_eq!(
            acked(&p.ce),
            vec![
                (id1, QoS::AtLeastOnce, ReasonCode::Success),
                (id2, QoS::ExactlyOnce, ReasonCode::Success)
            ]
        );
        assert_eq!(p.client.inflight_len(), 0);
        assert_eq!(p.server.inbound_unacked(), 0);
        assert_eq!(
            p.server.ack_publish(id1, ReasonCode::Success),
            Err(EngineError::UnknownPacketId(id1))
        );
    }
}

#[test]
fn qos0_1_2_server_to_client() {
    for v in [Version::V311, Version::V5] {
        let mut p = Pair::connected(v, Properties::default());
        let mut ids = vec![];
        for q in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            ids.push(p.server.publish(msg("d/x", b"m", q)).unwrap());
        }
        p.pump();
        let got = p.client_publishes();
        assert_eq!(
            got.iter().map(|m| m.qos).collect::<Vec<_>>(),
            [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
        );
        for m in &got[1..] {
            p.client
                .ack_publish(m.packet_id, ReasonCode::Success)
                .unwrap();
        }
        p.pump();
        assert_eq!(acked(&p.se).len(), 2);
        assert_eq!(p.server.inflight_len(), 0);
    }
}

#[test]
fn qos2_duplicate_is_not_emitted_twice() {
    let mut p = Pair::connected(Version::V5, Properties::default());
    let m = Publish {
        packet_id: 42,
        ..msg("t", b"once", QoS::ExactlyOnce)
    };
    let mut wire = bytes::BytesMut::new();
    encode(&Packet::Publish(m.clone()), Version::V5, &mut wire);
    let dup = Publish { dup: true, ..m };
    let mut dup_wire = bytes::BytesMut::new();
    encode(&Packet::Publish(dup), Version::V5, &mut dup_wire);
    // raw injection, as a client resending would
    p.server.handle_input(&wire, p.now);
    p.server.handle_input(&dup_wire, p.now);
    assert_eq!(
        take_publishes(&mut take_events(&mut p.server)).len(),
        1,
        "dup while the app holds it"
    );
    p.server.ack_publish(42, ReasonCode::Success).unwrap();
    assert_eq!(&p.server.output().split()[..], &[0x50, 0x02, 0x00, 42]);
    p.server.handle_input(&dup_wire, p.now);
    assert!(
        take_publishes(&mut take_events(&mut p.server)).is_empty(),
        "dup after PUBREC"
    );
    assert_eq!(
        &p.server.output().split()[..],
        &[0x50, 0x02, 0x00, 42],
        "PUBREC again"
    );
    p.server.handle_input(&[0x62, 0x02, 0x00, 42], p.now);
    assert_eq!(&p.server.output().split()[..], &[0x70, 0x02, 0x00, 42]);
    // after PUBCOMP the id is free: a new message with it is delivered
    p.server.handle_input(&wire, p.now);
    assert_eq!(take_publishes(&mut take_events(&mut p.server)).len(), 1);
}

#[test]
fn receive_maximum_respected_outbound() {
    let props = Properties::from(PropertySet {
        receive_maximum: Some(2),
        ..PropertySet::default()
    });
    let mut p = Pair::connected(Version::V5, props);
    assert_eq!(p.client.send_credit(), 2);
    p.client.publish(msg("a", b"1", QoS::AtLeastOnce)).unwrap();
    p.client.publish(msg("a", b"2", QoS::ExactlyOnce)).unwrap();
    assert!(!p.client.can_send());
    assert_eq!(
        p.client.publish(msg("a", b"3", QoS::AtLeastOnce)),
        Err(EngineError::NoCredit)
    );
    // QoS 0 is not limited
    p.client.publish(msg("a", b"0", QoS::AtMostOnce)).unwrap();
    p.pump();
    let got = p.server_publishes();
    assert_eq!(got.len(), 3);
    p.server
        .ack_publish(got[0].packet_id, ReasonCode::Success)
        .unwrap();
    p.pump();
    assert!(p.client.can_send());
    assert_eq!(p.client.send_credit(), 1);
}

#[test]
fn receive_maximum_exceeded_inbound_disconnects_0x93() {
    let props = Properties::from(PropertySet {
        receive_maximum: Some(1),
        ..PropertySet::default()
    });
    let mut p = Pair::connected(Version::V5, props);
    // a misbehaving client: raw PUBLISHes with ids 1 and 2 and no ack in between
    for id in [1u8, 2] {
        p.server
            .handle_input(&[0x32, 0x06, 0x00, 0x01, b'a', 0x00, id, 0x00], p.now);
    }
    assert!(p.server.is_closed());
    assert_eq!(disconnect_reason(&p.server.output()[..]) as u8, 0x93);
    let ev = take_events(&mut p.server);
    let c = closed(&ev).unwrap();
    assert_eq!(c.reason, ReasonCode::ReceiveMaximumExceeded);
    assert!(c.publish_will);
}

#[test]
fn keep_alive_timeout_server_side() {
    for v in [Version::V311, Version::V5] {
        let mut connect = Connect::new(v, "k");
        connect.keep_alive = 10;
        let mut p = Pair::connected_with(
            connect,
            Config::client(),
            Config::server(),
            Properties::default(),
        );
        let deadline = p.server.poll_timeout().unwrap();
        assert_eq!(deadline, p.now + Duration::from_secs(15));
        p.server.handle_timeout(p.now + Duration::from_secs(14));
        assert!(!p.server.is_closed());
        p.server.handle_timeout(p.now + Duration::from_secs(15));
        assert!(p.server.is_closed());
        let out = p.server.output().split();
        if v == Version::V5 {
            assert_eq!(disconnect_reason(&out[..]) as u8, 0x8d);
        } else {
            assert!(out.is_empty(), "no DISCONNECT in v3");
        }
        let ev = take_events(&mut p.server);
        let c = closed(&ev).unwrap();
        assert_eq!(c.reason, ReasonCode::KeepAliveTimeout);
        assert!(c.publish_will);
    }
}

#[test]
fn client_pings_and_gives_up_without_pingresp() {
    let mut connect = Connect::new(Version::V311, "k");
    connect.keep_alive = 10;
    let mut p = Pair::connected_with(
        connect,
        Config::client(),
        Config::server(),
        Properties::default(),
    );
    let t = p.client.poll_timeout().unwrap();
    assert_eq!(t, p.now + Duration::from_secs(10));
    p.client.handle_timeout(t);
    assert_eq!(&p.client.output()[..], &[0xc0, 0x00]);
    // answered: the server's PINGRESP clears it
    p.now = t;
    p.pump();
    assert!(!p.client.is_closed());
    let t2 = p.client.poll_timeout().unwrap();
    p.client.handle_timeout(t2);
    assert_eq!(&p.client.output().split()[..], &[0xc0, 0x00]);
    // not answered this time
    p.client.handle_timeout(t2 + Duration::from_secs(10));
    assert!(p.client.is_closed());
}

#[test]
fn server_keep_alive_overrides() {
    let mut connect = Connect::new(Version::V5, "k");
    connect.keep_alive = 1000;
    let props = Properties::from(PropertySet {
        server_keep_alive: Some(20),
        ..PropertySet::default()
    });
    let p = Pair::connected_with(connect, Config::client(), Config::server(), props);
    assert_eq!(p.client.keep_alive(), Duration::from_secs(20));
    assert_eq!(p.server.keep_alive(), Duration::from_secs(20));
}

#[test]
fn topic_alias_both_ways() {
    let props = Properties::from(PropertySet {
        topic_alias_maximum: Some(4),
        ..PropertySet::default()
    });
    let mut p = Pair::connected(Version::V5, props);
    for _ in 0..3 {
        p.client
            .publish(msg("long/topic/name", b"x", QoS::AtMostOnce))
            .unwrap();
    }
    let wire = p.client.output().clone();
    // the topic is sent once
    assert_eq!(
        wire.windows(15).filter(|w| w == b"long/topic/name").count(),
        1
    );
    p.pump();
    let got = p.server_publishes();
    assert_eq!(got.len(), 3);
    for m in got {
        assert_eq!(m.topic, "long/topic/name");
        assert_eq!(m.topic_alias, None);
    }
}

#[test]
fn invalid_topic_alias_is_0x94_and_unknown_alias_0x82() {
    let props = Properties::from(PropertySet {
        topic_alias_maximum: Some(2),
        ..PropertySet::default()
    });
    let mut p = Pair::connected(Version::V5, props.clone());
    // alias 3 > maximum 2
    p.server.handle_input(
        &[0x30, 0x07, 0x00, 0x01, b'a', 0x03, 0x23, 0x00, 0x03],
        p.now,
    );
    assert_eq!(disconnect_reason(&p.server.output()[..]) as u8, 0x94);
    let mut p = Pair::connected(Version::V5, props);
    // empty topic with an alias never set
    p.server
        .handle_input(&[0x30, 0x06, 0x00, 0x00, 0x03, 0x23, 0x00, 0x01], p.now);
    assert_eq!(disconnect_reason(&p.server.output()[..]) as u8, 0x82);
}

#[test]
fn session_export_import_redelivers_with_dup() {
    let mut p = Pair::connected(Version::V5, Properties::default());
    let a = p
        .server
        .publish(msg("s/1", b"first", QoS::AtLeastOnce))
        .unwrap();
    let b = p
        .server
        .publish(msg("s/2", b"second", QoS::ExactlyOnce))
        .unwrap();
    let c = p
        .server
        .publish(msg("s/3", b"third", QoS::ExactlyOnce))
        .unwrap();
    p.pump();
    let got = p.client_publishes();
    assert_eq!(got.len(), 3);
    // the client acks only the third (PUBREC → PUBREL sent by the server, then cut)
    p.client.ack_publish(c, ReasonCode::Success).unwrap();
    let rec = p.client.output().split();
    p.server.handle_input(&rec, p.now);
    let pubrel = p.server.output().split();
    assert_eq!(&pubrel[..], &[0x62, 0x02, (c >> 8) as u8, c as u8]);
    // the connection drops; the server keeps the session
    p.server.transport_closed(p.now);
    let state = p.server.take_session_state();
    assert_eq!(
        state
            .outbound
            .iter()
            .map(|m| m.packet_id)
            .collect::<Vec<_>>(),
        vec![a, b, c],
        "oldest first"
    );
    assert_eq!(state.outbound[2].state, OutboundState::AwaitingComp);
    // the client reconnects; the new server connection gets the session
    let mut connect = Connect::new(Version::V5, "c1");
    connect.clean_start = false;
    let client_state = p.client.take_session_state();
    let mut q = Pair::new(connect, Config::client(), Config::server());
    q.client.restore_session(client_state);
    q.pump();
    q.se.clear();
    q.server.restore_session(state);
    q.server.accept(true, Properties::default()).unwrap();
    q.pump();
    let again = q.client_publishes();
    // a and b were never acknowledged by the client application on the old connection,
    // so they are delivered again, with DUP
    assert_eq!(
        again
            .iter()
            .map(|m| (m.packet_id, m.dup))
            .collect::<Vec<_>>(),
        vec![(a, true), (b, true)]
    );
    assert_eq!(&again[0].payload[..], b"first");
    // c completed through PUBREL → PUBCOMP without a redelivery
    assert_eq!(
        acked(&q.se),
        vec![(c, QoS::ExactlyOnce, ReasonCode::Success)]
    );
    q.client.ack_publish(a, ReasonCode::Success).unwrap();
    q.client.ack_publish(b, ReasonCode::Success).unwrap();
    q.pump();
    assert_eq!(acked(&q.se).len(), 3);
    assert_eq!(q.server.inflight_len(), 0);
}

#[test]
fn restored_session_respects_receive_maximum() {
    let mut p = Pair::connected(Version::V5, Properties::default());
    for payload in [b"0", b"1", b"2", b"3", b"4"] {
        p.server
            .publish(msg("r", payload, QoS::AtLeastOnce))
            .unwrap();
    }
    p.server.output().clear();
    let state = p.server.take_session_state();
    let mut connect = Connect::new(Version::V5, "c1");
    connect.clean_start = false;
    connect.properties.receive_maximum = Some(2);
    let mut q = Pair::new(connect, Config::client(), Config::server());
    q.pump();
    q.server.restore_session(state);
    q.server.accept(true, Properties::default()).unwrap();
    q.pump();
    let first = q.client_publishes();
    assert_eq!(first.len(), 2);
    for m in &first {
        q.client
            .ack_publish(m.packet_id, ReasonCode::Success)
            .unwrap();
    }
    q.pump();
    let next = q.client_publishes();
    assert_eq!(next.len(), 2);
    assert_eq!(&next[0].payload[..], b"2", "in order");
}

#[test]
fn oversize_packets_refused_both_ways() {
    // the client announces 100 bytes; the server may not send more
    let mut connect = Connect::new(Version::V5, "small");
    connect.properties.maximum_packet_size = Some(100);
    let mut p = Pair::connected_with(
        connect,
        Config::client(),
        Config::server(),
        Properties::default(),
    );
    let big = Publish::new("t", vec![0u8; 200]).with_qos(QoS::AtLeastOnce);
    assert!(matches!(
        p.server.publish(big),
        Err(EngineError::PacketTooLarge { max: 100, .. })
    ));
    assert_eq!(p.server.inflight_len(), 0);
    assert!(p.server.output().is_empty());
    // the server accepts at most 1 KiB: a larger PUBLISH closes with 0x95
    let mut sc = Config::server();
    sc.max_packet_size = 1024;
    let mut p = Pair::connected_with(
        Connect::new(Version::V5, "c"),
        Config::client(),
        sc,
        Properties::default(),
    );
    assert!(matches!(
        p.client.publish(Publish::new("t", vec![0u8; 2000])),
        Err(EngineError::PacketTooLarge { max: 1024, .. })
    ));
    // a client ignoring the limit
    let mut wire = bytes::BytesMut::new();
    encode(
        &Packet::Publish(Publish::new("t", vec![0u8; 2000])),
        Version::V5,
        &mut wire,
    );
    p.server.handle_input(&wire[..10], p.now);
    assert!(p.server.is_closed());
    assert_eq!(disconnect_reason(&p.server.output()[..]) as u8, 0x95);
}

#[test]
fn subscribe_and_unsubscribe() {
    for v in [Version::V311, Version::V5] {
        let mut p = Pair::connected(v, Properties::default());
        let sub = Subscribe {
            packet_id: 0,
            properties: Properties::default(),
            filters: vec![
                ("a/#".into(), SubscriptionOptions::qos(QoS::ExactlyOnce)),
                ("b/+".into(), SubscriptionOptions::qos(QoS::AtLeastOnce)),
            ],
        };
        let id = p.client.subscribe(sub).unwrap();
        p.pump();
        let Event::Subscribe(s) = p.se.remove(0) else {
            panic!()
        };
        assert_eq!(s.packet_id, id);
        assert_eq!(s.filters[0].0, "a/#");
        p.server
            .suback(
                id,
                vec![ReasonCode::GrantedQoS1, ReasonCode::NotAuthorized],
                Properties::default(),
            )
            .unwrap();
        p.pump();
        let Event::SubAck(a) = p.ce.remove(0) else {
            panic!()
        };
        let expect_fail = if v == Version::V5 {
            ReasonCode::NotAuthorized
        } else {
            ReasonCode::UnspecifiedError
        };
        assert_eq!(a.reasons, vec![ReasonCode::GrantedQoS1, expect_fail]);
        let uid = p
            .client
            .unsubscribe(Unsubscribe {
                packet_id: 0,
                properties: Properties::default(),
                filters: vec!["a/#".into()],
            })
            .unwrap();
        p.pump();
        assert!(matches!(p.se.remove(0), Event::Unsubscribe(_)));
        p.server
            .unsuback(
                uid,
                if v == Version::V5 {
                    vec![ReasonCode::Success]
                } else {
                    vec![]
                },
                Properties::default(),
            )
            .unwrap();
        p.pump();
        let Event::UnsubAck(u) = p.ce.remove(0) else {
            panic!()
        };
        assert_eq!(u.packet_id, uid);
    }
}

#[test]
fn disconnect_and_will() {
    // v5 clean DISCONNECT: no will; 0x04: will
    for (reason, will) in [
        (ReasonCode::Success, false),
        (ReasonCode::DisconnectWithWillMessage, true),
    ] {
        let mut p = Pair::connected(Version::V5, Properties::default());
        p.client.disconnect(reason, Properties::default());
        p.pump();
        let c = closed(&p.se).unwrap();
        assert_eq!(
            (c.reason, c.initiator, c.publish_will),
            (reason, Initiator::Peer, will)
        );
    }
    // v3 DISCONNECT: no will; lost transport: will
    let mut p = Pair::connected(Version::V311, Properties::default());
    p.client
        .disconnect(ReasonCode::Success, Properties::default());
    p.pump();
    assert!(!closed(&p.se).unwrap().publish_will);
    let mut p = Pair::connected(Version::V311, Properties::default());
    p.server.transport_closed(p.now);
    assert!(closed(&take_events(&mut p.server)).unwrap().publish_will);
    // server-initiated v5 disconnect (takeover) reaches the client
    let mut p = Pair::connected(Version::V5, Properties::default());
    p.server
        .disconnect(ReasonCode::SessionTakenOver, Properties::default());
    p.pump();
    assert_eq!(closed(&p.ce).unwrap().reason, ReasonCode::SessionTakenOver);
}

#[test]
fn pipelined_packets_wait_for_accept_and_auth_surfaces() {
    let mut connect = Connect::new(Version::V5, "c");
    connect.properties.authentication_method = Some("SCRAM".into());
    let now = Instant::now();
    let mut s = Connection::server(Config::server(), now);
    let mut buf = bytes::BytesMut::new();
    encode(&Packet::Connect(Box::new(connect)), Version::V5, &mut buf);
    encode(
        &Packet::Auth(Auth {
            reason: ReasonCode::ContinueAuthentication,
            properties: Properties::default(),
        }),
        Version::V5,
        &mut buf,
    );
    encode(
        &Packet::Publish(Publish::new("early", "x")),
        Version::V5,
        &mut buf,
    );
    s.handle_input(&buf, now);
    let ev = take_events(&mut s);
    assert!(matches!(ev[0], Event::Connect(_)));
    assert!(matches!(ev[1], Event::Auth(_)));
    assert_eq!(ev.len(), 2, "the PUBLISH waits for accept");
    s.accept(false, Properties::default()).unwrap();
    let ev = take_events(&mut s);
    assert!(matches!(&ev[0], Event::Publish(p) if p.topic == "early"));
}

#[test]
fn malformed_after_connack_sends_disconnect_0x81_in_v5_only() {
    for v in [Version::V311, Version::V5] {
        let mut p = Pair::connected(v, Properties::default());
        p.server
            .handle_input(&[0x36, 0x03, 0x00, 0x01, b'a'], p.now); // QoS 3
        assert!(p.server.is_closed());
        let out = p.server.output().split();
        if v == Version::V5 {
            assert_eq!(disconnect_reason(&out[..]) as u8, 0x81);
        } else {
            assert!(out.is_empty());
        }
        assert_eq!(
            closed(&take_events(&mut p.server)).unwrap().reason,
            ReasonCode::MalformedPacket
        );
    }
}

/// A refusal's reason string reaches the client in its PUBACK, unless the client asked
/// for no problem information (then only CONNACK and DISCONNECT may carry one).
#[test]
fn puback_reason_string_follows_request_problem_information() {
    for asked in [None, Some(false)] {
        let mut connect = Connect::new(Version::V5, "c1");
        connect.properties.request_problem_information = asked;
        let mut p = Pair::connected_with(
            connect,
            Config::client(),
            Config::server(),
            Properties::default(),
        );
        let id = p.client.publish(msg("a", b"x", QoS::AtLeastOnce)).unwrap();
        p.pump();
        assert_eq!(p.server_publishes().len(), 1);
        let mut why = Properties::default();
        why.reason_string = Some("no send permission for the topic".into());
        p.server
            .ack_publish_with(id, ReasonCode::NotAuthorized, why)
            .unwrap();
        let mut out = p.server.output().split();
        let mut d = Decoder::new(Version::V5, 1 << 20);
        let Ok(Some(Packet::PubAck(ack))) = d.decode(&mut out) else {
            panic!("not a PUBACK: {out:02x?}");
        };
        assert_eq!(ack.reason, ReasonCode::NotAuthorized);
        assert_eq!(
            ack.properties.reason_string.as_deref(),
            asked
                .is_none()
                .then_some("no send permission for the topic"),
            "request problem information {asked:?}"
        );
    }
}

/// 3.1.1 has no negative PUBACK: refusing a message closes the connection instead of
/// acknowledging it (the client then sends it again); v5 sends the reason.
#[test]
fn a_refused_publish_closes_a_v3_connection_and_is_never_acknowledged() {
    for v in [Version::V311, Version::V5] {
        let mut p = Pair::connected(v, Properties::default());
        let id = p.client.publish(msg("a", b"x", QoS::AtLeastOnce)).unwrap();
        p.pump();
        assert_eq!(p.server_publishes().len(), 1);
        p.server.ack_publish(id, ReasonCode::QuotaExceeded).unwrap();
        let out = p.server.output().split();
        if v == Version::V5 {
            let mut d = Decoder::new(v, 1 << 20);
            let Ok(Some(Packet::PubAck(ack))) = d.decode(&mut out.clone()) else {
                panic!("not a PUBACK: {out:02x?}");
            };
            assert_eq!(ack.reason, ReasonCode::QuotaExceeded);
            assert!(!p.server.is_closed());
        } else {
            assert!(out.is_empty(), "nothing sent: {out:02x?}");
            assert!(p.server.is_closed());
            let mut events = vec![];
            while let Some(e) = p.server.poll_event() {
                events.push(e);
            }
            let c = closed(&events).expect("closed");
            assert_eq!(c.reason, ReasonCode::QuotaExceeded);
            assert!(c.publish_will, "not a clean end: the will is due");
        }
    }
}
