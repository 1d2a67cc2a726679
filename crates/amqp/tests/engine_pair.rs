//! Engine pair tests: a client and a server engine wired back to back in memory.

use bytes::Bytes;
use std::time::Instant;
use throng_amqp::definitions::{DeliveryState, Role, Source, Target, TargetTerminus};
use throng_amqp::engine::{Connection, ConnectionConfig, Event, LinkSpec, SaslClient};

struct Pair {
    client: Connection,
    server: Connection,
    client_events: Vec<Event>,
    server_events: Vec<Event>,
}

impl Pair {
    fn new(client_cfg: ConnectionConfig) -> Self {
        let now = Instant::now();
        Pair {
            client: Connection::new(client_cfg, now),
            server: Connection::new(ConnectionConfig::server("server"), now),
            client_events: vec![],
            server_events: vec![],
        }
    }

    /// Moves bytes both ways until both engines are quiet; the server accepts SASL and
    /// every attach with mirrored termini.
    fn pump(&mut self) {
        for _ in 0..100 {
            let c2s = self.client.output().split();
            let s2c = self.server.output().split();
            if c2s.is_empty() && s2c.is_empty() {
                return;
            }
            let now = Instant::now();
            self.server.handle_input(&c2s, now);
            self.client.handle_input(&s2c, now);
            while let Some(e) = self.server.poll_event() {
                match &e {
                    Event::SaslInit { .. } => self.server.sasl_outcome(true),
                    Event::AttachRequested { link, attach, .. } => {
                        let role = if attach.role == Role::Sender {
                            Role::Receiver
                        } else {
                            Role::Sender
                        };
                        self.server
                            .accept_link(
                                *link,
                                LinkSpec {
                                    role,
                                    source: attach.source.clone(),
                                    target: attach.target.clone(),
                                    ..LinkSpec::default()
                                },
                            )
                            .unwrap();
                    }
                    _ => {}
                }
                self.server_events.push(e);
            }
            while let Some(e) = self.client.poll_event() {
                self.client_events.push(e);
            }
        }
        panic!("engines did not go quiet");
    }
}

fn sender_spec(addr: &str) -> LinkSpec {
    LinkSpec {
        name: format!("sender-{addr}"),
        role: Role::Sender,
        source: Some(Source::default()),
        target: Some(TargetTerminus::Target(Target {
            address: Some(addr.into()),
            ..Target::default()
        })),
        ..LinkSpec::default()
    }
}

#[test]
fn open_begin_attach_transfer_settle() {
    let mut p = Pair::new(ConnectionConfig::client("c1"));
    let session = p.client.begin_session().unwrap();
    let link = p.client.attach(session, sender_spec("q")).unwrap();
    p.pump();
    assert!(p
        .client_events
        .iter()
        .any(|e| matches!(e, Event::Opened(_))));
    assert!(p
        .client_events
        .iter()
        .any(|e| matches!(e, Event::Attached { .. })));
    let server_link = p
        .server_events
        .iter()
        .find_map(|e| {
            if let Event::AttachRequested { link, .. } = e {
                Some(*link)
            } else {
                None
            }
        })
        .unwrap();
    assert_eq!(p.client.credit(link), 0);
    p.server.flow(server_link, 10, false).unwrap();
    p.pump();
    assert_eq!(p.client.credit(link), 10);
    let id = p.client.send(link, b"t1", &[b"hello"], false).unwrap();
    p.pump();
    let (sid, payload) = p
        .server_events
        .iter()
        .find_map(|e| match e {
            Event::Delivery {
                delivery_id,
                payload,
                ..
            } => Some((*delivery_id, payload.clone())),
            _ => None,
        })
        .unwrap();
    assert_eq!(payload, Bytes::from_static(b"hello"));
    p.server
        .disposition(server_link, sid, Some(DeliveryState::Accepted), true);
    p.pump();
    assert!(p.client_events.iter().any(|e| matches!(e,
        Event::Disposition { delivery_id, state: Some(DeliveryState::Accepted), settled: true, .. } if *delivery_id == id)));
}

#[test]
fn multi_frame_transfer_reassembles() {
    let mut cfg = ConnectionConfig::client("c2");
    cfg.max_frame_size = 512;
    let mut p = Pair::new(cfg);
    p.server = Connection::new(
        {
            let mut s = ConnectionConfig::server("s");
            s.max_frame_size = 512;
            s
        },
        Instant::now(),
    );
    let session = p.client.begin_session().unwrap();
    let link = p.client.attach(session, sender_spec("q")).unwrap();
    p.pump();
    let server_link = p
        .server_events
        .iter()
        .find_map(|e| {
            if let Event::AttachRequested { link, .. } = e {
                Some(*link)
            } else {
                None
            }
        })
        .unwrap();
    p.server.flow(server_link, 1, false).unwrap();
    p.pump();
    let big: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
    p.client
        .send(link, b"big", &[&big[..3000], &big[3000..]], true)
        .unwrap();
    p.pump();
    let payload = p
        .server_events
        .iter()
        .find_map(|e| {
            if let Event::Delivery { payload, .. } = e {
                Some(payload.clone())
            } else {
                None
            }
        })
        .unwrap();
    assert_eq!(&payload[..], &big[..]);
}

#[test]
fn sasl_plain_credentials_reach_the_server() {
    let mut cfg = ConnectionConfig::client("c3");
    cfg.sasl_client = SaslClient::Plain {
        username: "alice".into(),
        password: "secret".into(),
    };
    let mut p = Pair::new(cfg);
    p.pump();
    let init = p.server_events.iter().find_map(|e| match e {
        Event::SaslInit {
            mechanism,
            initial_response,
            ..
        } => Some((mechanism.clone(), initial_response.clone())),
        _ => None,
    });
    let (mech, resp) = init.unwrap();
    assert_eq!(mech.as_str(), "PLAIN");
    assert_eq!(&resp.unwrap()[..], b"\0alice\0secret");
    assert!(p
        .client_events
        .iter()
        .any(|e| matches!(e, Event::Opened(_))));
}
