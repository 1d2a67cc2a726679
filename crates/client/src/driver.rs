//! The task that owns a client connection's engine and socket.

use crate::{ClientError, ConnectOptions, Delivery, OutcomeCounter};
use bytes::{Buf, Bytes, BytesMut};
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use throng_amqp::definitions::{DeliveryState, Role};
use throng_amqp::engine::{self, ConnectionConfig, Event, IdMap, LinkId, LinkSpec, SessionId};
use throng_amqp::message::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

type Reply<T> = oneshot::Sender<Result<T, ClientError>>;
/// Answer to an attach: the link and the address the peer confirmed.
type AttachReply = Reply<(LinkId, Option<String>)>;

/// Requests from handles to the driver.
pub enum Command {
    Attach {
        spec: LinkSpec,
        window: u32,
        reply: AttachReply,
    },
    AttachReceiver {
        spec: LinkSpec,
        window: u32,
        deliveries: mpsc::UnboundedSender<Result<Delivery, ClientError>>,
        reply: AttachReply,
    },
    Send {
        link: LinkId,
        payload: Bytes,
        settled: bool,
        reply: Option<Reply<DeliveryState>>,
        counter: Option<Arc<OutcomeCounter>>,
    },
    Credit {
        link: LinkId,
        reply: oneshot::Sender<u32>,
    },
    AddCredit {
        link: LinkId,
        credit: u32,
    },
    Drain {
        link: LinkId,
        reply: Reply<()>,
    },
    Settle {
        link: LinkId,
        delivery_id: u32,
        state: DeliveryState,
    },
    Detach {
        link: LinkId,
        closed: bool,
        reply: Reply<()>,
    },
    Close {
        reply: Reply<()>,
    },
}

enum Waiter {
    Reply(Reply<DeliveryState>),
    Counter(Arc<OutcomeCounter>),
}

struct SenderLink {
    queue: VecDeque<(Bytes, bool, Option<Waiter>)>,
    waiters: IdMap<u32, Waiter>,
    next_tag: u64,
}

struct ReceiverLink {
    deliveries: mpsc::UnboundedSender<Result<Delivery, ClientError>>,
    credit: u32,
    drain_reply: Option<Reply<()>>,
}

struct Driver {
    engine: engine::Connection,
    session: Option<SessionId>,
    attaching: IdMap<LinkId, (AttachReply, u32)>,
    senders: IdMap<LinkId, SenderLink>,
    receivers: IdMap<LinkId, ReceiverLink>,
    pending_receivers: IdMap<LinkId, mpsc::UnboundedSender<Result<Delivery, ClientError>>>,
    detaching: IdMap<LinkId, Reply<()>>,
    close_reply: Option<Reply<()>>,
    ready: Option<oneshot::Sender<Result<(), ClientError>>>,
}

pub(crate) async fn run(
    stream: TcpStream,
    opts: ConnectOptions,
    mut cmds: mpsc::UnboundedReceiver<Command>,
    ready: oneshot::Sender<Result<(), ClientError>>,
) {
    let mut cfg = ConnectionConfig::client(opts.container_id.clone());
    cfg.hostname = opts.hostname.clone();
    cfg.sasl_client = opts.sasl.clone();
    cfg.max_frame_size = opts.max_frame_size;
    let mut d = Driver {
        engine: engine::Connection::new(cfg, Instant::now()),
        session: None,
        attaching: IdMap::default(),
        senders: IdMap::default(),
        receivers: IdMap::default(),
        pending_receivers: IdMap::default(),
        detaching: IdMap::default(),
        close_reply: None,
        ready: Some(ready),
    };
    match d.engine.begin_session() {
        Ok(s) => d.session = Some(s),
        Err(_) => return,
    }
    let (mut rd, mut wr) = stream.into_split();
    let mut out = BytesMut::new();
    let mut cmds_open = true;
    loop {
        if d.engine.has_output() {
            let o = d.engine.output();
            if out.is_empty() {
                out = o.split();
            } else {
                out.extend_from_slice(o);
                o.clear();
            }
        }
        if d.engine.is_closed() && out.is_empty() {
            break;
        }
        let deadline = d.engine.poll_timeout();
        let input = d.engine.input_buffer();
        if input.capacity() - input.len() < 1024 {
            // small while quiet; grows by doubling when reads fill it (BytesMut::reserve)
            input.reserve(if input.capacity() >= 16 * 1024 {
                64 * 1024
            } else {
                4 * 1024
            });
        }
        tokio::select! {
            biased;
            r = wr.write(&out), if !out.is_empty() => match r {
                Ok(n) => out.advance(n),
                Err(_) => break,
            },
            r = rd.read_buf(input) => match r {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    d.engine.process_input_at(Instant::now());
                    d.events();
                }
            },
            c = cmds.recv(), if cmds_open => match c {
                None => {
                    cmds_open = false;
                    d.engine.close(None);
                }
                Some(c) => {
                    d.command(c);
                    // take whatever else is queued, to batch it into one write
                    while let Ok(c) = cmds.try_recv() {
                        d.command(c);
                    }
                    d.events();
                }
            },
            _ = async { match deadline { Some(t) => tokio::time::sleep_until(t.into()).await, None => std::future::pending().await } }, if deadline.is_some() => {
                d.engine.handle_timeout(Instant::now());
                d.events();
            }
        }
    }
    d.fail_all();
}

impl Driver {
    fn command(&mut self, c: Command) {
        let Some(session) = self.session else { return };
        match c {
            Command::Attach {
                spec,
                window,
                reply,
            } => match self.engine.attach(session, spec) {
                Ok(link) => {
                    self.attaching.insert(link, (reply, window));
                }
                Err(_) => {
                    let _ = reply.send(Err(ClientError::Closed));
                }
            },
            Command::AttachReceiver {
                spec,
                window,
                deliveries,
                reply,
            } => match self.engine.attach(session, spec) {
                Ok(link) => {
                    self.attaching.insert(link, (reply, window));
                    self.pending_receivers.insert(link, deliveries);
                }
                Err(_) => {
                    let _ = reply.send(Err(ClientError::Closed));
                }
            },
            Command::Send {
                link,
                payload,
                settled,
                reply,
                counter,
            } => {
                let Some(s) = self.senders.get_mut(&link) else {
                    if let Some(r) = reply {
                        let _ = r.send(Err(ClientError::Closed));
                    }
                    return;
                };
                let waiter = reply.map(Waiter::Reply).or(counter.map(Waiter::Counter));
                s.queue.push_back((payload, settled, waiter));
                self.pump(link);
            }
            Command::Credit { link, reply } => {
                let _ = reply.send(self.engine.credit(link));
            }
            Command::AddCredit { link, credit } => {
                if let Some(r) = self.receivers.get_mut(&link) {
                    r.credit = r.credit.saturating_add(credit);
                    let _ = self.engine.flow(link, r.credit, false);
                }
            }
            Command::Drain { link, reply } => {
                if let Some(r) = self.receivers.get_mut(&link) {
                    r.drain_reply = Some(reply);
                    let _ = self.engine.flow(link, r.credit, true);
                } else {
                    let _ = reply.send(Err(ClientError::Closed));
                }
            }
            Command::Settle {
                link,
                delivery_id,
                state,
            } => self
                .engine
                .disposition(link, delivery_id, Some(state), true),
            Command::Detach {
                link,
                closed,
                reply,
            } => {
                if self.engine.detach(link, closed, None).is_ok() {
                    self.detaching.insert(link, reply);
                } else {
                    let _ = reply.send(Err(ClientError::Closed));
                }
            }
            Command::Close { reply } => {
                self.engine.close(None);
                self.close_reply = Some(reply);
            }
        }
    }

    /// Sends queued messages while there is credit.
    fn pump(&mut self, link: LinkId) {
        let Some(s) = self.senders.get_mut(&link) else {
            return;
        };
        while self.engine.credit(link) > 0 {
            let Some((payload, settled, waiter)) = s.queue.pop_front() else {
                break;
            };
            let tag = s.next_tag.to_be_bytes();
            s.next_tag += 1;
            match self.engine.send(link, &tag, &[&payload], settled) {
                Ok(id) => match (settled, waiter) {
                    (true, Some(Waiter::Reply(r))) => {
                        let _ = r.send(Ok(DeliveryState::Accepted));
                    }
                    (true, Some(Waiter::Counter(c))) => {
                        c.accepted.fetch_add(1, Ordering::AcqRel);
                        c.notify.notify_waiters();
                    }
                    (false, Some(w)) => {
                        s.waiters.insert(id, w);
                    }
                    _ => {}
                },
                Err(e) => {
                    if let Some(Waiter::Reply(r)) = waiter {
                        let _ = r.send(Err(ClientError::Io(e.to_string())));
                    }
                }
            }
        }
    }

    fn events(&mut self) {
        while let Some(ev) = self.engine.poll_event() {
            match ev {
                Event::Opened(_) => {
                    if let Some(r) = self.ready.take() {
                        let _ = r.send(Ok(()));
                    }
                }
                Event::Attached { link, attach } => {
                    let Some((reply, window)) = self.attaching.remove(&link) else {
                        continue;
                    };
                    // a null terminus means refusal: the detach that follows carries the error
                    let refused = if attach.role == Role::Sender {
                        attach.source.is_none()
                    } else {
                        attach.target.is_none()
                    };
                    if refused {
                        self.attaching.insert(link, (reply, window));
                        continue;
                    }
                    if attach.role == Role::Sender {
                        // we receive
                        let address = attach.source.as_ref().and_then(|s| s.address.clone());
                        if let Some(tx) = self.pending_receivers.remove(&link) {
                            self.receivers.insert(
                                link,
                                ReceiverLink {
                                    deliveries: tx,
                                    credit: window,
                                    drain_reply: None,
                                },
                            );
                            if window > 0 {
                                let _ = self.engine.flow(link, window, false);
                            }
                        }
                        let _ = reply.send(Ok((link, address)));
                    } else {
                        self.senders.insert(
                            link,
                            SenderLink {
                                queue: VecDeque::new(),
                                waiters: IdMap::default(),
                                next_tag: 0,
                            },
                        );
                        let _ = reply.send(Ok((link, None)));
                    }
                }
                Event::Flow { link, credit, .. } => {
                    if self.senders.contains_key(&link) {
                        if self.engine.drain_requested(link)
                            && self.senders.get(&link).is_some_and(|s| s.queue.is_empty())
                        {
                            let _ = self.engine.drained(link);
                        }
                        self.pump(link);
                    } else if let Some(r) = self.receivers.get_mut(&link) {
                        r.credit = credit;
                        if credit == 0 {
                            if let Some(reply) = r.drain_reply.take() {
                                let _ = reply.send(Ok(()));
                            }
                        }
                    }
                }
                Event::Delivery {
                    link,
                    delivery_id,
                    payload,
                    settled,
                    ..
                } => {
                    if let Some(r) = self.receivers.get_mut(&link) {
                        r.credit = r.credit.saturating_sub(1);
                        match Message::parse(payload) {
                            Ok(message) => {
                                let _ = r.deliveries.send(Ok(Delivery {
                                    delivery_id,
                                    settled,
                                    message,
                                    link,
                                }));
                            }
                            Err(e) => {
                                let _ = r.deliveries.send(Err(ClientError::Io(format!(
                                    "undecodable message: {e}"
                                ))));
                            }
                        }
                    }
                }
                Event::Disposition {
                    link,
                    delivery_id,
                    state,
                    settled,
                } => {
                    if !settled {
                        continue;
                    }
                    if let Some(s) = self.senders.get_mut(&link) {
                        if let Some(w) = s.waiters.remove(&delivery_id) {
                            let state = state.unwrap_or(DeliveryState::Accepted);
                            match w {
                                Waiter::Reply(r) => {
                                    let _ = r.send(Ok(state));
                                }
                                Waiter::Counter(c) => {
                                    if state == DeliveryState::Accepted {
                                        c.accepted.fetch_add(1, Ordering::AcqRel);
                                    } else {
                                        c.other.fetch_add(1, Ordering::AcqRel);
                                    }
                                    c.notify.notify_waiters();
                                }
                            }
                        }
                    }
                }
                Event::Detached { link, error, .. } => {
                    let err = error
                        .map(ClientError::Refused)
                        .unwrap_or(ClientError::Closed);
                    if let Some((reply, _)) = self.attaching.remove(&link) {
                        let _ = reply.send(Err(err.clone()));
                    }
                    self.pending_receivers.remove(&link);
                    if let Some(reply) = self.detaching.remove(&link) {
                        let _ = reply.send(Ok(()));
                    }
                    if let Some(s) = self.senders.remove(&link) {
                        fail_sender(s, &err);
                    }
                    if let Some(r) = self.receivers.remove(&link) {
                        if !matches!(err, ClientError::Closed) {
                            let _ = r.deliveries.send(Err(err));
                        }
                    }
                }
                Event::Closed { error, .. } => {
                    let err = error
                        .map(ClientError::Refused)
                        .unwrap_or(ClientError::Closed);
                    if let Some(r) = self.ready.take() {
                        let _ = r.send(Err(err.clone()));
                    }
                    if let Some(r) = self.close_reply.take() {
                        let _ = r.send(Ok(()));
                    }
                }
                Event::SaslInit { .. }
                | Event::SessionBegun(_)
                | Event::SessionEnded { .. }
                | Event::AttachRequested { .. } => {}
            }
        }
    }

    fn fail_all(&mut self) {
        if let Some(r) = self.ready.take() {
            let _ = r.send(Err(ClientError::Closed));
        }
        for (_, (reply, _)) in self.attaching.drain() {
            let _ = reply.send(Err(ClientError::Closed));
        }
        for (_, s) in self.senders.drain() {
            fail_sender(s, &ClientError::Closed);
        }
        for (_, reply) in self.detaching.drain() {
            let _ = reply.send(Err(ClientError::Closed));
        }
        if let Some(r) = self.close_reply.take() {
            let _ = r.send(Ok(()));
        }
    }
}

fn fail_sender(s: SenderLink, err: &ClientError) {
    for (_, _, w) in s.queue {
        if let Some(Waiter::Reply(r)) = w {
            let _ = r.send(Err(err.clone()));
        }
    }
    for (_, w) in s.waiters {
        if let Waiter::Reply(r) = w {
            let _ = r.send(Err(err.clone()));
        }
    }
}
