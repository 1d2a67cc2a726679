//! Engine pair tests with a virtual clock: negotiation of frame size and channels,
//! heartbeats and idle timeouts, drain and echo, settlement modes and coalesced
//! dispositions, aborted transfers, detach/end/close with errors, session windows,
//! refused links and transfers beyond credit.

mod common;

use bytes::Bytes;
use common::*;
use std::time::{Duration, Instant};
use throng_amqp::definitions::*;
use throng_amqp::engine::{
    Connection, ConnectionConfig, EngineError, Event, LinkId, LinkSpec, SaslClient, SessionId,
};
use throng_amqp::frame::{Frame, AMQP_HEADER};

/// A client and a server engine back to back, with time under the test's control.
struct Pair {
    client: Connection,
    server: Connection,
    now: Instant,
    client_events: Vec<Event>,
    server_events: Vec<Event>,
    /// Every byte each side wrote, for counting frames.
    c2s: Vec<u8>,
    s2c: Vec<u8>,
    /// Whether the server accepts every attach with mirrored termini.
    auto_accept: bool,
}

impl Pair {
    fn new(client_cfg: ConnectionConfig, server_cfg: ConnectionConfig) -> Self {
        let now = Instant::now();
        Pair {
            client: Connection::new(client_cfg, now),
            server: Connection::new(server_cfg, now),
            now,
            client_events: vec![],
            server_events: vec![],
            c2s: vec![],
            s2c: vec![],
            auto_accept: true,
        }
    }

    fn default() -> Self {
        Self::new(
            ConnectionConfig::client("client"),
            ConnectionConfig::server("server"),
        )
    }

    /// Moves bytes both ways at the current time until both engines are quiet.
    fn pump(&mut self) {
        for _ in 0..1000 {
            let c2s = self.client.output().split();
            let s2c = self.server.output().split();
            if c2s.is_empty() && s2c.is_empty() {
                return;
            }
            self.c2s.extend_from_slice(&c2s);
            self.s2c.extend_from_slice(&s2c);
            self.server.handle_input(&c2s, self.now);
            self.client.handle_input(&s2c, self.now);
            while let Some(e) = self.server.poll_event() {
                match &e {
                    Event::SaslInit { .. } => self.server.sasl_outcome(true),
                    Event::AttachRequested { link, attach, .. } if self.auto_accept => {
                        let role = match attach.role {
                            Role::Sender => Role::Receiver,
                            Role::Receiver => Role::Sender,
                        };
                        let spec = LinkSpec {
                            role,
                            source: attach.source.clone(),
                            target: attach.target.clone(),
                            ..LinkSpec::default()
                        };
                        self.server.accept_link(*link, spec).unwrap();
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

    /// The server's end of the most recently requested link.
    fn server_link(&self) -> LinkId {
        self.server_events
            .iter()
            .rev()
            .find_map(|e| match e {
                Event::AttachRequested { link, .. } => Some(*link),
                _ => None,
            })
            .expect("an attach reached the server")
    }

    /// A client sender link to `addr`, attached, with the server's end.
    fn sender(&mut self, session: SessionId, addr: &str) -> (LinkId, LinkId) {
        let link = self.client.attach(session, sender_spec(addr)).unwrap();
        self.pump();
        assert!(self.client.is_attached(link));
        (link, self.server_link())
    }

    fn server_deliveries(&self) -> Vec<(u32, Bytes, bool)> {
        self.server_events
            .iter()
            .filter_map(|e| match e {
                Event::Delivery {
                    delivery_id,
                    payload,
                    settled,
                    ..
                } => Some((*delivery_id, payload.clone(), *settled)),
                _ => None,
            })
            .collect()
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

fn receiver_spec(addr: &str) -> LinkSpec {
    LinkSpec {
        name: format!("receiver-{addr}"),
        role: Role::Receiver,
        source: Some(Source {
            address: Some(addr.into()),
            ..Source::default()
        }),
        target: Some(TargetTerminus::Target(Target::default())),
        ..LinkSpec::default()
    }
}

fn transfer_frame_sizes(bytes: &[u8]) -> Vec<usize> {
    let sizes = frame_sizes(bytes);
    let frames = read_frames(bytes);
    sizes
        .into_iter()
        .zip(frames)
        .filter(|(_, f)| {
            matches!(
                f,
                Frame::Amqp {
                    performative: Performative::Transfer(_),
                    ..
                }
            )
        })
        .map(|(s, _)| s)
        .collect()
}

// ---- negotiation ------------------------------------------------------------------------

#[test]
fn max_frame_size_is_negotiated_each_way() {
    let mut ccfg = ConnectionConfig::client("c");
    ccfg.max_frame_size = 512;
    let mut scfg = ConnectionConfig::server("s");
    scfg.max_frame_size = 1024;
    let mut p = Pair::new(ccfg, scfg);
    let session = p.client.begin_session().unwrap();
    let (out_link, server_in) = p.sender(session, "in");
    let in_link = p.client.attach(session, receiver_spec("out")).unwrap();
    p.pump();
    let server_out = p.server_link();
    let open_of = |events: &[Event]| {
        events
            .iter()
            .find_map(|e| {
                if let Event::Opened(o) = e {
                    Some(o.clone())
                } else {
                    None
                }
            })
            .unwrap()
    };
    assert_eq!(open_of(&p.client_events).max_frame_size, Some(1024));
    assert_eq!(open_of(&p.server_events).max_frame_size, Some(512));

    let big: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
    p.server.flow(server_in, 1, false).unwrap();
    p.client.flow(in_link, 1, false).unwrap();
    p.pump();
    p.c2s.clear();
    p.s2c.clear();
    p.client.send(out_link, b"c", &[&big], false).unwrap();
    p.server
        .send(server_out, b"s", &[&big[..100], &big[100..]], false)
        .unwrap();
    p.pump();

    // the client writes frames up to the server's 1024, the server up to the client's 512
    let c2s = transfer_frame_sizes(&p.c2s);
    assert!(c2s.iter().all(|&s| s <= 1024), "{c2s:?}");
    assert!(
        c2s.iter().any(|&s| s > 512),
        "the client did not use the server's limit: {c2s:?}"
    );
    assert_eq!(c2s.len(), 5);
    let s2c = transfer_frame_sizes(&p.s2c);
    assert!(s2c.iter().all(|&s| s <= 512), "{s2c:?}");
    assert!(s2c.len() >= 10, "{s2c:?}");

    assert_eq!(p.server_deliveries()[0].1, &big[..]);
    let got = p.client_events.iter().find_map(|e| match e {
        Event::Delivery { link, payload, .. } if *link == in_link => Some(payload.clone()),
        _ => None,
    });
    assert_eq!(got.unwrap(), &big[..]);
}

#[test]
fn a_peer_below_the_minimum_max_frame_size_is_refused() {
    let mut s = Connection::new(ConnectionConfig::server("s"), Instant::now());
    s.handle_input(&AMQP_HEADER, Instant::now());
    let open = Open {
        container_id: "c".into(),
        max_frame_size: Some(511),
        ..Open::default()
    };
    s.handle_input(&perf_frame(0, &Performative::Open(open)), Instant::now());
    let frames = read_frames(&s.output().split());
    let Some(Performative::Close(Close { error: Some(e) })) = performatives(&frames).pop() else {
        panic!("no close")
    };
    assert_eq!(e.condition.as_str(), condition::INVALID_FIELD);
    assert!(s.is_closed());
}

#[test]
fn channel_max_is_negotiated() {
    let mut scfg = ConnectionConfig::server("s");
    scfg.channel_max = 1;
    let mut p = Pair::new(ConnectionConfig::client("c"), scfg);
    p.pump();
    let open = p.client.remote_open().unwrap();
    assert_eq!(open.channel_max, Some(1));
    // channels 0 and 1 are the server's limit
    let a = p.client.begin_session().unwrap();
    let b = p.client.begin_session().unwrap();
    assert_eq!(p.client.begin_session(), Err(EngineError::NoChannel));
    p.pump();
    let begun = |events: &[Event]| {
        events
            .iter()
            .filter(|e| matches!(e, Event::SessionBegun(_)))
            .count()
    };
    assert_eq!(begun(&p.server_events), 2);
    assert_eq!(begun(&p.client_events), 2);
    // ending one frees its channel
    p.client.end_session(a, None);
    p.pump();
    assert!(p.client_events.contains(&Event::SessionEnded {
        session: a,
        error: None
    }));
    let c = p.client.begin_session().unwrap();
    assert_eq!(c, a);
    assert_ne!(c, b);
    p.pump();
    assert_eq!(begun(&p.server_events), 3);
    // and the client's own limit holds for sessions the server begins
    let mut ccfg = ConnectionConfig::client("c");
    ccfg.channel_max = 0;
    let mut p = Pair::new(ccfg, ConnectionConfig::server("s"));
    p.pump();
    assert!(p.server.begin_session().is_ok());
    assert_eq!(p.server.begin_session(), Err(EngineError::NoChannel));
    p.pump();
    assert!(!p.client.is_closed());
}

// ---- heartbeats and idle timeouts ------------------------------------------------------------

#[test]
fn heartbeats_keep_a_connection_with_an_idle_timeout_alive() {
    let mut scfg = ConnectionConfig::server("s");
    scfg.idle_timeout = Some(Duration::from_secs(2));
    let mut p = Pair::new(ConnectionConfig::client("c"), scfg);
    p.pump();
    // half the 2 s threshold is announced (part 2 §2.4.5)
    assert_eq!(p.client.remote_open().unwrap().idle_time_out, Some(1000));
    let start = p.now;
    let mut beats = vec![start];
    p.c2s.clear();
    while p.now < start + Duration::from_secs(30) {
        // the client wakes when it asks to; the server checks its deadline then too
        let wake = p
            .client
            .poll_timeout()
            .expect("the client must plan a heartbeat");
        assert!(
            wake <= *beats.last().unwrap() + Duration::from_millis(500),
            "heartbeat planned too late"
        );
        p.now = wake;
        p.client.handle_timeout(p.now);
        let out = p.client.output().split();
        assert_eq!(read_frames(&out), vec![Frame::Empty { channel: 0 }]);
        beats.push(p.now);
        p.server.handle_input(&out, p.now);
        p.server.handle_timeout(p.now);
        assert!(!p.server.is_closed());
        assert!(
            !p.server.has_output(),
            "the server needs no heartbeats from itself"
        );
    }
    for w in beats.windows(2) {
        assert!(
            w[1] - w[0] <= Duration::from_secs(1),
            "gap of {:?}",
            w[1] - w[0]
        );
        assert!(w[1] > w[0]);
    }
    assert!(beats.len() >= 30);
    // other traffic postpones the next heartbeat: the client answers the server's begin
    let before = p.client.poll_timeout().unwrap();
    p.now += Duration::from_millis(300);
    p.server.begin_session().unwrap();
    p.pump();
    assert!(p
        .client_events
        .iter()
        .any(|e| matches!(e, Event::SessionBegun(_))));
    assert_eq!(
        p.client.poll_timeout().unwrap(),
        p.now + Duration::from_millis(500)
    );
    assert!(p.client.poll_timeout().unwrap() > before);
    // waking early sends nothing
    p.client.handle_timeout(p.now + Duration::from_millis(10));
    assert!(!p.client.has_output());
}

#[test]
fn a_silent_peer_is_closed_after_the_idle_timeout() {
    let mut scfg = ConnectionConfig::server("s");
    scfg.idle_timeout = Some(Duration::from_secs(2));
    let mut p = Pair::new(ConnectionConfig::client("c"), scfg);
    p.pump();
    let last = p.now;
    assert_eq!(p.server.poll_timeout(), Some(last + Duration::from_secs(2)));
    p.server.handle_timeout(last + Duration::from_millis(1999));
    assert!(!p.server.is_closed());
    assert!(!p.server.has_output());
    p.now = last + Duration::from_secs(2);
    p.server.handle_timeout(p.now);
    assert!(p.server.is_closed());
    let out = p.server.output().split();
    let Some(Performative::Close(Close { error: Some(e) })) =
        performatives(&read_frames(&out)).pop()
    else {
        panic!("no close written")
    };
    assert_eq!(e.condition.as_str(), condition::RESOURCE_LIMIT_EXCEEDED);
    let closed = std::iter::from_fn(|| p.server.poll_event()).last();
    assert!(
        matches!(closed, Some(Event::Closed { error: Some(ref e), by_peer: false })
        if e.condition.as_str() == condition::RESOURCE_LIMIT_EXCEEDED)
    );
    // the client learns why
    p.client.handle_input(&out, p.now);
    let events: Vec<Event> = std::iter::from_fn(|| p.client.poll_event()).collect();
    assert!(events.iter().any(
        |e| matches!(e, Event::Closed { error: Some(e), by_peer: true }
        if e.condition.as_str() == condition::RESOURCE_LIMIT_EXCEEDED)
    ));
    assert!(p.client.is_closed());
}

// ---- credit: drain and echo ---------------------------------------------------------------------

#[test]
fn drain_uses_up_the_credit_and_the_receiver_sees_zero() {
    let mut p = Pair::default();
    let session = p.client.begin_session().unwrap();
    let (link, server_link) = p.sender(session, "q");
    p.server.flow(server_link, 10, true).unwrap();
    p.pump();
    let flow = p.client_events.iter().rev().find_map(|e| match e {
        Event::Flow {
            link: l,
            credit,
            drain,
            ..
        } if *l == link => Some((*credit, *drain)),
        _ => None,
    });
    assert_eq!(flow, Some((10, true)));
    assert!(p.client.drain_requested(link));
    for i in 0..3u8 {
        p.client.send(link, &[i], &[b"m"], true).unwrap();
    }
    p.client.set_available(link, 0);
    p.client.drained(link).unwrap();
    assert_eq!(p.client.credit(link), 0);
    assert_eq!(
        p.client.send(link, b"x", &[b"late"], true),
        Err(EngineError::NoCredit)
    );
    p.server_events.clear();
    p.pump();
    assert_eq!(p.server_deliveries().len(), 3);
    let last_flow = p.server_events.iter().rev().find_map(|e| match e {
        Event::Flow {
            link,
            credit,
            drain,
            ..
        } if *link == server_link => Some((*credit, *drain)),
        _ => None,
    });
    assert_eq!(last_flow, Some((0, true)), "{:?}", p.server_events);
    // new credit without drain works as before
    p.server.flow(server_link, 2, false).unwrap();
    p.pump();
    assert_eq!(p.client.credit(link), 2);
    assert!(!p.client.drain_requested(link));
}

/// A server with one attached receiving link (the peer is a raw script).
fn raw_server_with_link(cfg: ConnectionConfig) -> (Connection, LinkId) {
    let now = Instant::now();
    let mut s = Connection::new(cfg, now);
    s.handle_input(&AMQP_HEADER, now);
    let open = Open {
        container_id: "raw".into(),
        ..Open::default()
    };
    s.handle_input(&perf_frame(0, &Performative::Open(open)), now);
    let begin = Begin {
        next_outgoing_id: 0,
        incoming_window: 1000,
        outgoing_window: 1000,
        ..Begin::default()
    };
    s.handle_input(&perf_frame(0, &Performative::Begin(begin)), now);
    let attach = Attach {
        name: "raw-sender".into(),
        handle: 0,
        role: Role::Sender,
        initial_delivery_count: Some(0),
        target: Some(TargetTerminus::Target(Target::default())),
        ..Attach::default()
    };
    s.handle_input(&perf_frame(0, &Performative::Attach(Box::new(attach))), now);
    let link = std::iter::from_fn(|| s.poll_event())
        .find_map(|e| {
            if let Event::AttachRequested { link, .. } = e {
                Some(link)
            } else {
                None
            }
        })
        .unwrap();
    s.accept_link(
        link,
        LinkSpec {
            role: Role::Receiver,
            ..LinkSpec::default()
        },
    )
    .unwrap();
    let _ = s.output().split();
    (s, link)
}

fn raw_flow(handle: Option<u32>, echo: bool) -> Performative {
    Performative::Flow(Flow {
        next_incoming_id: Some(0),
        incoming_window: 1000,
        next_outgoing_id: 0,
        outgoing_window: 1000,
        handle,
        delivery_count: handle.map(|_| 0),
        link_credit: handle.map(|_| 0),
        echo: Some(echo),
        ..Flow::default()
    })
}

#[test]
fn echo_is_answered_with_our_flow_state() {
    let (mut s, link) = raw_server_with_link(ConnectionConfig::server("s"));
    s.flow(link, 5, false).unwrap();
    let _ = s.output().split();
    // a link flow asking for echo
    s.handle_input(&perf_frame(0, &raw_flow(Some(0), true)), Instant::now());
    let flows: Vec<Flow> = performatives(&read_frames(&s.output().split()))
        .into_iter()
        .filter_map(|p| {
            if let Performative::Flow(f) = p {
                Some(f)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(flows.len(), 1, "{flows:?}");
    assert_eq!(flows[0].handle, Some(0));
    assert_eq!(flows[0].link_credit, Some(5));
    assert_eq!(flows[0].delivery_count, Some(0));
    assert_eq!(flows[0].echo, None, "an echo must not ask for another");
    // without echo, nothing is written
    s.handle_input(&perf_frame(0, &raw_flow(Some(0), false)), Instant::now());
    assert!(!s.has_output());
    // a session flow asking for echo gets the session state
    s.handle_input(&perf_frame(0, &raw_flow(None, true)), Instant::now());
    let flows: Vec<Flow> = performatives(&read_frames(&s.output().split()))
        .into_iter()
        .filter_map(|p| {
            if let Performative::Flow(f) = p {
                Some(f)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(flows.len(), 1);
    assert_eq!(flows[0].handle, None);
    assert_eq!(flows[0].next_incoming_id, Some(0));
    assert!(flows[0].incoming_window > 0);
}

// ---- settlement -----------------------------------------------------------------------------------

#[test]
fn settled_mode_deliveries_arrive_settled() {
    let mut p = Pair::default();
    let session = p.client.begin_session().unwrap();
    let spec = LinkSpec {
        snd_settle_mode: SenderSettleMode::Settled,
        ..sender_spec("q")
    };
    let link = p.client.attach(session, spec).unwrap();
    p.pump();
    let (server_link, mode) = p
        .server_events
        .iter()
        .find_map(|e| match e {
            Event::AttachRequested { link, attach, .. } => Some((*link, attach.snd_settle_mode)),
            _ => None,
        })
        .unwrap();
    assert_eq!(mode, Some(SenderSettleMode::Settled));
    p.server.flow(server_link, 5, false).unwrap();
    p.pump();
    for i in 0..5u8 {
        p.client
            .send(link, &[i], &[b"fire and forget"], true)
            .unwrap();
    }
    p.pump();
    let deliveries = p.server_deliveries();
    assert_eq!(deliveries.len(), 5);
    assert!(deliveries.iter().all(|(_, _, settled)| *settled));
    assert_eq!(p.client.unsettled_sent(link), 0);
    // a settled delivery needs no disposition: the server writes none for it
    p.s2c.clear();
    for (id, _, _) in &deliveries {
        p.server
            .disposition(server_link, *id, Some(DeliveryState::Accepted), true);
    }
    p.pump();
    assert!(p.s2c.is_empty());
    // the transfer frames themselves carried settled=true
    let settled_flags: Vec<Option<bool>> = performatives(&read_frames(&p.c2s))
        .into_iter()
        .filter_map(|p| {
            if let Performative::Transfer(t) = p {
                Some(t.settled)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(settled_flags, vec![Some(true); 5]);
}

#[test]
fn dispositions_over_ranges_are_coalesced() {
    let mut p = Pair::default();
    let session = p.client.begin_session().unwrap();
    let (link, server_link) = p.sender(session, "q");
    p.server.flow(server_link, 100, false).unwrap();
    p.pump();
    let mut sent = Vec::new();
    for i in 0..100u32 {
        sent.push(
            p.client
                .send(link, &i.to_be_bytes(), &[b"payload"], false)
                .unwrap(),
        );
    }
    p.pump();
    let deliveries = p.server_deliveries();
    assert_eq!(deliveries.len(), 100);
    assert_eq!(p.client.unsettled_sent(link), 100);
    p.s2c.clear();
    for (id, _, settled) in &deliveries {
        assert!(!settled);
        p.server
            .disposition(server_link, *id, Some(DeliveryState::Accepted), true);
    }
    p.pump();
    // one frame settles the hundred
    let dispositions: Vec<Disposition> = performatives(&read_frames(&p.s2c))
        .into_iter()
        .filter_map(|p| {
            if let Performative::Disposition(d) = p {
                Some(d)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(dispositions.len(), 1, "{dispositions:?}");
    assert_eq!(
        (dispositions[0].first, dispositions[0].last),
        (sent[0], Some(sent[99]))
    );
    assert!(
        p.s2c.len() < 64,
        "{} bytes for 100 settlements",
        p.s2c.len()
    );
    let seen: Vec<u32> = p
        .client_events
        .iter()
        .filter_map(|e| match e {
            Event::Disposition {
                link: l,
                delivery_id,
                state: Some(DeliveryState::Accepted),
                settled: true,
            } if *l == link => Some(*delivery_id),
            _ => None,
        })
        .collect();
    assert_eq!(seen, sent);
    assert_eq!(p.client.unsettled_sent(link), 0);

    // a different outcome in the middle splits the range in three
    p.server.flow(server_link, 10, false).unwrap();
    p.pump();
    let ids: Vec<u32> = (0..10u8)
        .map(|i| p.client.send(link, &[i], &[b"x"], false).unwrap())
        .collect();
    p.server_events.clear();
    p.pump();
    let server_ids: Vec<u32> = p.server_deliveries().iter().map(|d| d.0).collect();
    p.s2c.clear();
    for (i, id) in server_ids.iter().enumerate() {
        let state = if i == 4 {
            DeliveryState::Rejected(Rejected { error: None })
        } else {
            DeliveryState::Accepted
        };
        p.server.disposition(server_link, *id, Some(state), true);
    }
    p.pump();
    let ranges: Vec<(u32, Option<u32>)> = performatives(&read_frames(&p.s2c))
        .into_iter()
        .filter_map(|p| {
            if let Performative::Disposition(d) = p {
                Some((d.first, d.last))
            } else {
                None
            }
        })
        .collect();
    assert_eq!(
        ranges,
        vec![
            (ids[0], Some(ids[3])),
            (ids[4], None),
            (ids[5], Some(ids[9]))
        ]
    );
    let rejected = p.client_events.iter().filter(|e| {
        matches!(
            e,
            Event::Disposition {
                state: Some(DeliveryState::Rejected(_)),
                ..
            }
        )
    });
    assert_eq!(rejected.count(), 1);
}

#[test]
fn an_unsettled_outcome_is_settled_by_the_sender() {
    let mut p = Pair::default();
    let session = p.client.begin_session().unwrap();
    let (link, server_link) = p.sender(session, "q");
    p.server.flow(server_link, 1, false).unwrap();
    p.pump();
    let id = p.client.send(link, b"t", &[b"m"], false).unwrap();
    p.pump();
    let (sid, _, _) = p.server_deliveries()[0].clone();
    // the receiver states an outcome without settling (rcv-settle-mode first)
    p.server
        .disposition(server_link, sid, Some(DeliveryState::Accepted), false);
    p.pump();
    assert!(p.client_events.contains(&Event::Disposition {
        link,
        delivery_id: id,
        state: Some(DeliveryState::Accepted),
        settled: true,
    }));
    assert!(p.server_events.iter().any(|e| matches!(e,
        Event::Disposition { delivery_id, settled: true, .. } if *delivery_id == sid)));
}

// ---- transfers -------------------------------------------------------------------------------------

fn raw_transfer(id: Option<u32>, more: bool, aborted: bool) -> Transfer {
    Transfer {
        handle: 0,
        delivery_id: id,
        delivery_tag: id.map(|i| Bytes::from(i.to_be_bytes().to_vec())),
        more: Some(more),
        aborted: Some(aborted),
        settled: Some(true),
        ..Transfer::default()
    }
}

#[test]
fn aborted_transfers_are_discarded() {
    let (mut s, link) = raw_server_with_link(ConnectionConfig::server("s"));
    s.flow(link, 10, false).unwrap();
    let now = Instant::now();
    // a multi-frame delivery aborted on its second frame
    s.handle_input(
        &transfer_frame(0, &raw_transfer(Some(0), true, false), b"abc"),
        now,
    );
    s.handle_input(
        &transfer_frame(0, &raw_transfer(None, false, true), b""),
        now,
    );
    // a single frame that is aborted at once
    s.handle_input(
        &transfer_frame(0, &raw_transfer(Some(1), false, true), b"zzz"),
        now,
    );
    // then a whole delivery: it must not carry the aborted bytes
    s.handle_input(
        &transfer_frame(0, &raw_transfer(Some(2), true, false), b"hel"),
        now,
    );
    s.handle_input(
        &transfer_frame(0, &raw_transfer(None, false, false), b"lo"),
        now,
    );
    let deliveries: Vec<(u32, Bytes)> = std::iter::from_fn(|| s.poll_event())
        .filter_map(|e| match e {
            Event::Delivery {
                delivery_id,
                payload,
                ..
            } => Some((delivery_id, payload)),
            _ => None,
        })
        .collect();
    assert_eq!(deliveries, vec![(2, Bytes::from_static(b"hello"))]);
    assert!(!s.is_closed());
    assert!(s.is_attached(link));
}

#[test]
fn a_transfer_beyond_credit_detaches_the_link() {
    let mut p = Pair::default();
    let session = p.client.begin_session().unwrap();
    let (link, server_link) = p.sender(session, "q");
    assert_eq!(p.client.credit(link), 0);
    assert_eq!(
        p.client.send(link, b"t", &[b"m"], false),
        Err(EngineError::NoCredit)
    );
    // a misbehaving sender transfers anyway (the client engine would not, so inject it)
    let t = Transfer {
        handle: 0,
        delivery_id: Some(0),
        delivery_tag: Some(Bytes::from_static(b"t")),
        ..Transfer::default()
    };
    p.server.handle_input(&transfer_frame(0, &t, b"m"), p.now);
    assert!(p.server_deliveries().is_empty());
    p.pump();
    let detach = performatives(&read_frames(&p.s2c))
        .into_iter()
        .find_map(|p| match p {
            Performative::Detach(d) => Some(d),
            _ => None,
        });
    let detach = detach.expect("the server detached");
    assert_eq!(detach.closed, Some(true));
    assert_eq!(
        detach.error.unwrap().condition.as_str(),
        condition::TRANSFER_LIMIT_EXCEEDED
    );
    assert!(p.client_events.iter().any(|e| matches!(e,
        Event::Detached { link: l, closed: true, error: Some(err) }
            if *l == link && err.condition.as_str() == condition::TRANSFER_LIMIT_EXCEEDED)));
    assert!(p.server_events.iter().any(|e| matches!(e,
        Event::Detached { link, .. } if *link == server_link)));
    assert!(!p.client.is_attached(link));
    assert!(!p.client.is_closed() && !p.server.is_closed());
}

#[test]
fn a_lenient_receiver_takes_a_transfer_beyond_credit() {
    // clients run lenient: RabbitMQ 3.10 overshoots the credit it was given
    let mut cfg = ConnectionConfig::server("s");
    cfg.strict_credit = false;
    let (mut s, link) = raw_server_with_link(cfg);
    let t = Transfer {
        handle: 0,
        delivery_id: Some(0),
        delivery_tag: Some(Bytes::from_static(b"t")),
        settled: Some(true),
        ..Transfer::default()
    };
    s.handle_input(&transfer_frame(0, &t, b"over"), Instant::now());
    let got = std::iter::from_fn(|| s.poll_event()).find_map(|e| match e {
        Event::Delivery {
            link: l, payload, ..
        } if l == link => Some(payload),
        _ => None,
    });
    assert_eq!(got.as_deref(), Some(&b"over"[..]));
    assert!(s.is_attached(link), "a lenient receiver keeps the link");
}

#[test]
fn session_window_is_replenished() {
    for window in [1u32, 2, 3, 4, 7] {
        let mut scfg = ConnectionConfig::server("s");
        scfg.session_window = window;
        let mut p = Pair::new(ConnectionConfig::client("c"), scfg);
        let session = p.client.begin_session().unwrap();
        let (link, server_link) = p.sender(session, "q");
        p.server.flow(server_link, 50, false).unwrap();
        p.pump();
        for i in 0..50u32 {
            p.client
                .send(link, &i.to_be_bytes(), &[&i.to_be_bytes()], true)
                .unwrap();
        }
        p.pump();
        let payloads: Vec<Bytes> = p.server_deliveries().into_iter().map(|d| d.1).collect();
        let expected: Vec<Bytes> = (0..50u32)
            .map(|i| Bytes::from(i.to_be_bytes().to_vec()))
            .collect();
        assert_eq!(payloads, expected, "window {window}");
        assert!(!p.server.is_closed(), "window {window}");
        assert!(
            !p.server_events
                .iter()
                .any(|e| matches!(e, Event::SessionEnded { .. })),
            "window {window}: {:?}",
            p.server_events
        );
    }
}

#[test]
fn multi_frame_messages_count_against_the_session_window() {
    let mut scfg = ConnectionConfig::server("s");
    scfg.session_window = 3;
    scfg.max_frame_size = 512;
    let mut p = Pair::new(ConnectionConfig::client("c"), scfg);
    let session = p.client.begin_session().unwrap();
    let (link, server_link) = p.sender(session, "q");
    p.server.flow(server_link, 5, false).unwrap();
    p.pump();
    let big = vec![0xabu8; 4000]; // about 9 frames each
    for i in 0..5u8 {
        p.client.send(link, &[i], &[&big], false).unwrap();
    }
    p.pump();
    let got = p.server_deliveries();
    assert_eq!(got.len(), 5);
    assert!(got.iter().all(|d| d.1 == big));
}

// ---- endings with errors -------------------------------------------------------------------------

#[test]
fn detach_with_error_reaches_the_peer() {
    let mut p = Pair::default();
    let session = p.client.begin_session().unwrap();
    let (link, server_link) = p.sender(session, "q");
    let error = Error::new(condition::DETACH_FORCED, "operator says so");
    p.server
        .detach(server_link, true, Some(error.clone()))
        .unwrap();
    p.pump();
    assert!(p.client_events.contains(&Event::Detached {
        link,
        closed: true,
        error: Some(error)
    }));
    // the server sees the client's answer, without an error
    assert!(p.server_events.contains(&Event::Detached {
        link: server_link,
        closed: true,
        error: None
    }));
    assert!(!p.client.is_attached(link));
    // and the other way round, detach without closing
    let (link, server_link) = p.sender(session, "r");
    let error = Error::new(condition::INTERNAL_ERROR, "client trouble");
    p.client.detach(link, false, Some(error.clone())).unwrap();
    p.pump();
    assert!(p.server_events.contains(&Event::Detached {
        link: server_link,
        closed: false,
        error: Some(error)
    }));
    assert!(p.client_events.contains(&Event::Detached {
        link,
        closed: false,
        error: None
    }));
}

#[test]
fn end_with_error_reaches_the_peer_and_takes_the_links() {
    let mut p = Pair::default();
    let session = p.client.begin_session().unwrap();
    let (link, server_link) = p.sender(session, "q");
    p.pump();
    let server_session = p
        .server_events
        .iter()
        .find_map(|e| {
            if let Event::SessionBegun(s) = e {
                Some(*s)
            } else {
                None
            }
        })
        .unwrap();
    let error = Error::new(condition::RESOURCE_LIMIT_EXCEEDED, "too many links");
    p.client.end_session(session, Some(error.clone()));
    p.pump();
    assert!(p.server_events.contains(&Event::SessionEnded {
        session: server_session,
        error: Some(error)
    }));
    assert!(p.server_events.contains(&Event::Detached {
        link: server_link,
        closed: false,
        error: None
    }));
    assert!(p.client_events.contains(&Event::SessionEnded {
        session,
        error: None
    }));
    assert!(p.client_events.contains(&Event::Detached {
        link,
        closed: false,
        error: None
    }));
    assert!(!p.client.is_closed());
    // the connection goes on: a new session works
    let s2 = p.client.begin_session().unwrap();
    let (l2, _) = p.sender(s2, "again");
    assert!(p.client.is_attached(l2));
}

#[test]
fn close_with_error_reaches_the_peer() {
    let mut p = Pair::default();
    let session = p.client.begin_session().unwrap();
    let (link, server_link) = p.sender(session, "q");
    let error = Error::new(condition::CONNECTION_FORCED, "shutting down");
    p.server.close(Some(error.clone()));
    p.pump();
    assert!(p.client_events.contains(&Event::Closed {
        error: Some(error),
        by_peer: true
    }));
    assert!(p.client_events.contains(&Event::Detached {
        link,
        closed: false,
        error: None
    }));
    assert!(p.server_events.contains(&Event::Closed {
        error: None,
        by_peer: true
    }));
    assert!(p.server_events.contains(&Event::Detached {
        link: server_link,
        closed: false,
        error: None
    }));
    assert!(p.client.is_closed() && p.server.is_closed());
    assert_eq!(p.client.begin_session(), Err(EngineError::Closed));
}

// ---- refusing links -------------------------------------------------------------------------------

#[test]
fn refused_link_gets_a_null_terminus_then_a_detach_with_the_error() {
    let mut p = Pair::default();
    p.auto_accept = false;
    let session = p.client.begin_session().unwrap();
    let link = p.client.attach(session, sender_spec("nowhere")).unwrap();
    p.pump();
    let server_link = p.server_link();
    p.s2c.clear();
    let error = Error::new(condition::NOT_FOUND, "no address 'nowhere'");
    p.server.refuse_link(server_link, error.clone()).unwrap();
    p.pump();
    let perfs = performatives(&read_frames(&p.s2c));
    assert_eq!(perfs.len(), 2, "{perfs:?}");
    let Performative::Attach(a) = &perfs[0] else {
        panic!("{perfs:?}")
    };
    assert_eq!(a.role, Role::Receiver);
    assert_eq!(
        a.target, None,
        "a refusing receiver answers with a null target"
    );
    let Performative::Detach(d) = &perfs[1] else {
        panic!("{perfs:?}")
    };
    assert_eq!(d.closed, Some(true));
    assert_eq!(d.error.as_ref(), Some(&error));
    // the client sees the attach answered with no target, then the detach with the error
    let attached = p.client_events.iter().position(|e| {
        matches!(e,
        Event::Attached { link: l, attach } if *l == link && attach.target.is_none())
    });
    let detached = p.client_events.iter().position(|e| {
        *e == Event::Detached {
            link,
            closed: true,
            error: Some(error.clone()),
        }
    });
    assert!(attached.unwrap() < detached.unwrap());
    assert!(!p.client.is_attached(link));
    // refusing twice, or an unknown link, is a usage error
    assert_eq!(
        p.server
            .refuse_link(server_link, Error::new(condition::NOT_FOUND, "x")),
        Err(EngineError::UnknownLink)
    );
    // a link with the same name may be attached again afterwards
    p.auto_accept = true;
    let again = p.client.attach(session, sender_spec("nowhere")).unwrap();
    p.pump();
    assert!(p.client.is_attached(again));
}

#[test]
fn sasl_plain_and_anonymous_and_skipping_sasl_all_open() {
    for sasl in [
        SaslClient::Anonymous,
        SaslClient::Plain {
            username: "u".into(),
            password: "p".into(),
        },
        SaslClient::None,
    ] {
        let mut cfg = ConnectionConfig::client("c");
        cfg.sasl_client = sasl.clone();
        let mut p = Pair::new(cfg, ConnectionConfig::server("s"));
        p.pump();
        assert!(
            p.client_events
                .iter()
                .any(|e| matches!(e, Event::Opened(_))),
            "{sasl:?}"
        );
        assert!(
            p.server_events
                .iter()
                .any(|e| matches!(e, Event::Opened(_))),
            "{sasl:?}"
        );
        assert_eq!(p.server.authenticated(), sasl != SaslClient::None);
    }
}
