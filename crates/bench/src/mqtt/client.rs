//! One benchmark MQTT connection: a TCP stream on tokio driven by the sans-IO client
//! engine of `throng-mqtt`.
//!
//! The engine is fed straight from the socket (reads land in its input buffer, so a
//! received payload is a slice of that buffer) and everything it produced since the last
//! write goes out in one `write`. The caller runs the protocol between [`Client::step`]s:
//! it takes the engine's events and adds publishes or acknowledgements.

use bytes::{Buf, Bytes, BytesMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use throng_mqtt::codec::{Connect, Subscribe, SubscriptionOptions};
use throng_mqtt::engine::{Config, Connection, Event};
use throng_mqtt::{ByteStr, Properties, QoS, ReasonCode, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// Free room kept in the input buffer before a read.
const READ_RESERVE: usize = 64 * 1024;

/// Tells every connection of a run to stop waiting: the deadline passed or deliveries
/// stalled.
#[derive(Default)]
pub struct Stop {
    flag: AtomicBool,
    notify: Notify,
}

impl Stop {
    /// Stops every [`Client::step`] waiting now or later.
    pub fn stop(&self) {
        self.flag.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    /// Whether [`Stop::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }
}

/// What ended a [`Client::step`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Bytes were read and processed (or the server closed: see the engine's events).
    Input,
    /// Some output was written.
    Wrote,
    /// The requested wake-up time came.
    Timer,
    /// The run was stopped.
    Stopped,
}

/// An MQTT client connection: socket halves, the engine and the bytes being written.
pub struct Client {
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    /// The protocol state machine; the caller publishes, acknowledges and polls events.
    pub engine: Connection,
    out: BytesMut,
}

impl Client {
    /// Connects to `addr` with a clean session, keep-alive off and, if given, a user name
    /// and password, and waits for a successful CONNACK.
    pub async fn connect(
        addr: &str,
        version: Version,
        client_id: &str,
        credentials: Option<(&str, &str)>,
        persistent: bool,
        timeout: Duration,
    ) -> Result<Client, String> {
        let deadline = Instant::now() + timeout;
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| format!("connect to {addr}: timed out"))?
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (rd, wr) = stream.into_split();
        let mut connect = Connect::new(version, ByteStr::from(client_id));
        connect.keep_alive = 0;
        if persistent {
            connect.clean_start = false;
            if version == Version::V5 {
                connect.properties.session_expiry_interval = Some(300);
            }
        }
        if let Some((user, password)) = credentials {
            connect.username = Some(ByteStr::from(user));
            connect.password = Some(Bytes::copy_from_slice(password.as_bytes()));
        }
        let mut client = Client {
            rd,
            wr,
            engine: Connection::client(Config::client(), connect, Instant::now()),
            out: BytesMut::new(),
        };
        match client.wait_for(deadline, is_connack).await? {
            Event::ConnAck(a) if a.reason == ReasonCode::Success => Ok(client),
            Event::ConnAck(a) => Err(format!("{addr} refused the connection: {:?}", a.reason)),
            other => Err(format!("unexpected event before CONNACK: {other:?}")),
        }
    }

    /// Subscribes to `topic` at `qos` and waits for the SUBACK; a refusal or a lower
    /// granted QoS is an error (the run would not measure what was asked).
    pub async fn subscribe(
        &mut self,
        topic: &str,
        qos: QoS,
        timeout: Duration,
    ) -> Result<(), String> {
        let id = self
            .engine
            .subscribe(Subscribe {
                packet_id: 0,
                properties: Properties::default(),
                filters: vec![(ByteStr::from(topic), SubscriptionOptions::qos(qos))],
            })
            .map_err(|e| format!("subscribe: {e}"))?;
        let deadline = Instant::now() + timeout;
        let ack = self
            .wait_for(
                deadline,
                |e| matches!(e, Event::SubAck(s) if s.packet_id == id),
            )
            .await?;
        let granted = match ack {
            Event::SubAck(s) => s.reasons.first().copied(),
            _ => None,
        };
        match granted {
            Some(r) if !r.is_error() && r.as_u8() >= qos as u8 => Ok(()),
            other => Err(format!(
                "subscription to {topic} at QoS {} refused: {other:?}",
                qos as u8
            )),
        }
    }

    /// Whether output is waiting to be written (in the engine or half written).
    pub fn has_output(&self) -> bool {
        !self.out.is_empty() || self.engine.has_output()
    }

    /// Bytes waiting to be written.
    pub fn pending_output(&self) -> usize {
        self.out.len() + self.engine.output_len()
    }

    /// Writes what the engine produced, then waits for one thing: input (read into the
    /// engine and processed), a write, `wake_at`, or `stop`. Only socket errors are
    /// errors; a closed connection shows as the engine's `Event::Closed`.
    pub async fn step(&mut self, wake_at: Option<Instant>, stop: &Stop) -> Result<Wake, String> {
        self.engine.poll_transmit(&mut self.out);
        let stopped = stop.notify.notified();
        if stop.is_stopped() {
            return Ok(Wake::Stopped);
        }
        let closed = self.engine.is_closed();
        let input = self.engine.input_buffer();
        if input.capacity() - input.len() < READ_RESERVE / 4 {
            input.reserve(READ_RESERVE);
        }
        let out = &self.out;
        let woke = tokio::select! {
            biased;
            r = self.rd.read_buf(input), if !closed => Io::Read(r),
            r = self.wr.write(out), if !out.is_empty() => Io::Wrote(r),
            _ = stopped => Io::Stopped,
            _ = sleep_until(wake_at) => Io::Timer,
        };
        match woke {
            Io::Read(Ok(0)) => {
                self.engine.transport_closed(Instant::now());
                Ok(Wake::Input)
            }
            Io::Read(Ok(_)) => {
                self.engine.process_input(Instant::now());
                Ok(Wake::Input)
            }
            Io::Read(Err(e)) => Err(format!("read: {e}")),
            Io::Wrote(Ok(n)) => {
                self.out.advance(n);
                Ok(Wake::Wrote)
            }
            Io::Wrote(Err(e)) => Err(format!("write: {e}")),
            Io::Stopped => Ok(Wake::Stopped),
            Io::Timer => Ok(Wake::Timer),
        }
    }

    /// Sends DISCONNECT (normal disconnection), writes what is left and closes the
    /// socket, within `timeout`.
    pub async fn disconnect(mut self, timeout: Duration) {
        self.engine
            .disconnect(ReasonCode::Success, Properties::default());
        self.engine.poll_transmit(&mut self.out);
        let close = async {
            self.wr.write_all(&self.out).await?;
            self.wr.shutdown().await
        };
        let _ = tokio::time::timeout(timeout, close).await;
    }

    /// Steps until an event matching `want` arrives; other events are dropped. A closed
    /// connection or the deadline is an error.
    async fn wait_for(
        &mut self,
        deadline: Instant,
        want: impl Fn(&Event) -> bool,
    ) -> Result<Event, String> {
        let never = Stop::default();
        loop {
            while let Some(e) = self.engine.poll_event() {
                if let Event::Closed(c) = &e {
                    return Err(format!("connection closed: {:?} ({})", c.reason, c.detail));
                }
                if want(&e) {
                    return Ok(e);
                }
            }
            if self.step(Some(deadline), &never).await? == Wake::Timer {
                return Err("timed out waiting for the server".to_string());
            }
        }
    }
}

/// The outcome of the one wait in [`Client::step`].
enum Io {
    Read(std::io::Result<usize>),
    Wrote(std::io::Result<usize>),
    Stopped,
    Timer,
}

fn is_connack(e: &Event) -> bool {
    matches!(e, Event::ConnAck(_))
}

/// Sleeps until `at`, or forever when `None`.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
        None => std::future::pending().await,
    }
}
