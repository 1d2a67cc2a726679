//! A blocking MQTT client on the project's own engine, for tests against the binary:
//! deliveries are acknowledged only when a test says so, and every wait is bounded.

use super::Node;
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use throng_mqtt::codec::{Connect, Subscribe, SubscriptionOptions, Unsubscribe};
use throng_mqtt::engine::{Config, Connection, Event};
use throng_mqtt::{ByteStr, Properties, Publish, QoS, ReasonCode, Version};

/// The longest any one wait of [`Client`] lasts.
pub const WAIT: Duration = Duration::from_secs(5);

/// One MQTT connection.
pub struct Client {
    sock: TcpStream,
    pub engine: Connection,
    events: VecDeque<Event>,
}

impl Client {
    /// Connects to the node's MQTT listener with `connect`; panics unless accepted.
    pub fn connect(node: &Node, connect: Connect) -> Client {
        Self::connect_to(&node.listeners["mqtt"], connect)
    }

    /// Connects to the MQTT listener at `addr` (HOST:PORT); panics unless accepted.
    pub fn connect_to(addr: &str, connect: Connect) -> Client {
        let sock = TcpStream::connect(addr).expect("connect");
        sock.set_nodelay(true).expect("nodelay");
        let mut c = Client {
            sock,
            engine: Connection::client(Config::client(), connect, Instant::now()),
            events: VecDeque::new(),
        };
        match c.wait_for(|e| matches!(e, Event::ConnAck(_))) {
            Some(Event::ConnAck(a)) => assert_eq!(a.reason, ReasonCode::Success),
            other => panic!("no CONNACK: {other:?}"),
        }
        c
    }

    /// A clean MQTT 5 connection with client id `id`.
    pub fn v5(node: &Node, id: &str) -> Client {
        Self::connect(node, Connect::new(Version::V5, id))
    }

    /// A clean MQTT 3.1.1 connection with client id `id`.
    pub fn v311(node: &Node, id: &str) -> Client {
        Self::connect(node, Connect::new(Version::V311, id))
    }

    /// Writes the engine's output, then reads for at most `wait`, queueing events.
    pub fn pump(&mut self, wait: Duration) {
        let out = self.engine.output().split();
        self.sock.write_all(&out).expect("write");
        let mut buf = [0u8; 65536];
        self.sock
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
            .expect("timeout");
        if let Ok(n) = self.sock.read(&mut buf) {
            if n > 0 {
                self.engine.handle_input(&buf[..n], Instant::now());
            }
        }
        while let Some(e) = self.engine.poll_event() {
            self.events.push_back(e);
        }
    }

    /// The first queued or arriving event `want` matches, within [`WAIT`].
    pub fn wait_for(&mut self, want: impl Fn(&Event) -> bool) -> Option<Event> {
        self.wait_within(WAIT, want)
    }

    /// The first queued or arriving event `want` matches, within `wait`.
    pub fn wait_within(&mut self, wait: Duration, want: impl Fn(&Event) -> bool) -> Option<Event> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(i) = self.events.iter().position(&want) {
                return self.events.remove(i);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            self.pump((deadline - now).min(Duration::from_millis(50)));
        }
    }

    /// Subscribes to `filters` (with subscription identifier `id`) and waits for the
    /// SUBACK.
    pub fn subscribe(&mut self, filters: &[(&str, QoS)], id: Option<u32>) {
        let mut properties = Properties::default();
        if let Some(i) = id {
            properties.subscription_identifiers = vec![i];
        }
        let filters = filters
            .iter()
            .map(|(f, q)| (ByteStr::from(*f), SubscriptionOptions::qos(*q)))
            .collect();
        let pid = self
            .engine
            .subscribe(Subscribe {
                packet_id: 0,
                properties,
                filters,
            })
            .expect("subscribe");
        let ack = self.wait_for(|e| matches!(e, Event::SubAck(s) if s.packet_id == pid));
        assert!(ack.is_some(), "no SUBACK");
    }

    /// Unsubscribes from `filter` and waits for the UNSUBACK.
    pub fn unsubscribe(&mut self, filter: &str) {
        let pid = self
            .engine
            .unsubscribe(Unsubscribe {
                packet_id: 0,
                properties: Properties::default(),
                filters: vec![ByteStr::from(filter)],
            })
            .expect("unsubscribe");
        let ack = self.wait_for(|e| matches!(e, Event::UnsubAck(u) if u.packet_id == pid));
        assert!(ack.is_some(), "no UNSUBACK");
    }

    /// Publishes and, for QoS 1/2, waits for the acknowledgement.
    pub fn publish(&mut self, p: Publish) {
        let qos = p.qos;
        let pid = self.engine.publish(p).expect("publish");
        if qos != QoS::AtMostOnce {
            let ack =
                self.wait_for(|e| matches!(e, Event::Acked { packet_id, .. } if *packet_id == pid));
            assert!(ack.is_some(), "publish not acknowledged");
        } else {
            self.pump(Duration::from_millis(1));
        }
    }

    /// The next delivery, within [`WAIT`].
    pub fn message(&mut self) -> Option<Publish> {
        match self.wait_for(|e| matches!(e, Event::Publish(_))) {
            Some(Event::Publish(p)) => Some(p),
            _ => None,
        }
    }

    /// Every delivery arriving within `wait`.
    pub fn messages_within(&mut self, wait: Duration) -> Vec<Publish> {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            self.pump(Duration::from_millis(20));
        }
        let mut got = Vec::new();
        self.events.retain(|e| match e {
            Event::Publish(p) => {
                got.push(p.clone());
                false
            }
            _ => true,
        });
        got
    }

    /// Acknowledges a QoS 1 delivery.
    pub fn ack(&mut self, p: &Publish) {
        self.engine
            .ack_publish(p.packet_id, ReasonCode::Success)
            .expect("ack");
    }
}

/// A publish of `payload` on `topic` at `qos`.
pub fn publish(topic: &str, payload: &'static [u8], qos: QoS) -> Publish {
    let mut p = Publish::new(ByteStr::from(topic), bytes::Bytes::from_static(payload));
    p.qos = qos;
    p
}
