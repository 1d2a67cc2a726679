//! AMQP local transactions (part 4), as Qpid JMS transacted sessions use them: a
//! coordinator link declares and discharges transactions; a transfer whose state is
//! `transactional-state` is held until commit; a consumer's transactional outcome is
//! applied at commit (and turned into a failed delivery on rollback).

use super::connection::Conn;
use super::links::ProducerTarget;
use std::collections::HashMap;
use throng_amqp::codec::Value;
use throng_amqp::definitions::{condition, DeliveryState, Error, Modified, Rejected};
use throng_amqp::engine::LinkId;
use throng_amqp::message::{Body, Message};
use throng_core::{Address, Outcome};
use tracing::debug;

/// Descriptor codes of part 4.
const DECLARE: u64 = 0x31;
const DISCHARGE: u64 = 0x32;
const DECLARED: u64 = 0x33;
const TRANSACTIONAL_STATE: u64 = 0x34;
/// The error a discharge or transactional transfer gets for an unknown txn-id.
const UNKNOWN_ID: &str = "amqp:transaction:unknown-id";

/// Work held by one transaction.
#[derive(Default)]
pub(super) struct Txn {
    /// Messages to publish at commit.
    sends: Vec<(Address, Message)>,
    /// Consumer outcomes to apply at commit: link, queue token, outcome.
    acks: Vec<(LinkId, u64, DeliveryState)>,
}

/// The connection's open transactions.
#[derive(Default)]
pub(super) struct Transactions {
    open: HashMap<Vec<u8>, Txn>,
    next: u64,
}

/// The txn-id and the inner outcome of a `transactional-state`, if `state` is one.
pub(super) fn transactional(
    state: Option<&DeliveryState>,
) -> Option<(Vec<u8>, Option<DeliveryState>)> {
    let Some(DeliveryState::Other(TRANSACTIONAL_STATE, Value::List(fields))) = state else {
        return None;
    };
    let id = match fields.first() {
        Some(Value::Binary(b)) => b.to_vec(),
        _ => return None,
    };
    let outcome = fields.get(1).and_then(outcome_of);
    Some((id, outcome))
}

/// Decodes an outcome carried as a described value inside a transactional state.
fn outcome_of(v: &Value) -> Option<DeliveryState> {
    let Value::Described(d, body) = v else {
        return None;
    };
    let code = d.as_u64().or_else(|| match d.as_str()? {
        "amqp:accepted:list" => Some(0x24),
        "amqp:rejected:list" => Some(0x25),
        "amqp:released:list" => Some(0x26),
        "amqp:modified:list" => Some(0x27),
        _ => None,
    })?;
    let fields = match body.as_ref() {
        Value::List(f) => f.clone(),
        _ => Vec::new(),
    };
    Some(match code {
        0x24 => DeliveryState::Accepted,
        0x25 => DeliveryState::Rejected(Rejected { error: None }),
        0x26 => DeliveryState::Released,
        0x27 => DeliveryState::Modified(Modified {
            delivery_failed: matches!(fields.first(), Some(Value::Bool(true))).then_some(true),
            undeliverable_here: matches!(fields.get(1), Some(Value::Bool(true))).then_some(true),
            message_annotations: None,
        }),
        _ => return None,
    })
}

fn txn_state(id: &[u8], outcome: DeliveryState) -> DeliveryState {
    let outcome = match outcome {
        DeliveryState::Accepted => Value::Described(
            Box::new(Value::Ulong(0x24)),
            Box::new(Value::List(Vec::new())),
        ),
        _ => Value::Described(
            Box::new(Value::Ulong(0x26)),
            Box::new(Value::List(Vec::new())),
        ),
    };
    DeliveryState::Other(
        TRANSACTIONAL_STATE,
        Value::List(vec![Value::Binary(id.to_vec().into()), outcome]),
    )
}

fn unknown(id: &[u8]) -> DeliveryState {
    DeliveryState::Rejected(Rejected {
        error: Some(Error::new(
            UNKNOWN_ID,
            format!("unknown transaction {id:02x?}"),
        )),
    })
}

impl Conn {
    /// A message on the coordinator link: declare or discharge.
    pub(super) fn on_coordinator_message(&mut self, link: LinkId, delivery_id: u32, msg: Message) {
        let control = match msg.body() {
            Ok(Body::Value(Value::Described(d, body))) => {
                let code = d.as_u64().or_else(|| match d.as_str()? {
                    "amqp:declare:list" => Some(DECLARE),
                    "amqp:discharge:list" => Some(DISCHARGE),
                    _ => None,
                });
                code.map(|c| (c, *body))
            }
            _ => None,
        };
        let state = match control {
            Some((DECLARE, _)) => {
                self.txns.next += 1;
                let id = self.txns.next.to_be_bytes().to_vec();
                self.txns.open.insert(id.clone(), Txn::default());
                debug!(conn = self.id, txn = ?id, "transaction declared");
                DeliveryState::Other(DECLARED, Value::List(vec![Value::Binary(id.into())]))
            }
            Some((DISCHARGE, Value::List(fields))) => {
                let id = match fields.first() {
                    Some(Value::Binary(b)) => b.to_vec(),
                    _ => Vec::new(),
                };
                let fail = matches!(fields.get(1), Some(Value::Bool(true)));
                match self.txns.open.remove(&id) {
                    None => unknown(&id),
                    Some(txn) if fail => {
                        self.rollback(txn);
                        DeliveryState::Accepted
                    }
                    Some(txn) => {
                        self.commit(txn);
                        DeliveryState::Accepted
                    }
                }
            }
            _ => DeliveryState::Rejected(Rejected {
                error: Some(Error::new(
                    condition::DECODE_ERROR,
                    "coordinator expects declare or discharge",
                )),
            }),
        };
        self.engine
            .disposition(link, delivery_id, Some(state), true);
    }

    /// A transactional send: held in its transaction until commit.
    pub(super) fn hold_send(&mut self, id: &[u8], addr: Address, msg: Message) -> DeliveryState {
        match self.txns.open.get_mut(id) {
            Some(txn) => {
                txn.sends.push((addr, msg));
                txn_state(id, DeliveryState::Accepted)
            }
            None => unknown(id),
        }
    }

    /// A consumer's transactional outcome: applied at commit.
    pub(super) fn hold_ack(
        &mut self,
        id: &[u8],
        link: LinkId,
        token: u64,
        outcome: DeliveryState,
    ) -> bool {
        match self.txns.open.get_mut(id) {
            Some(txn) => {
                txn.acks.push((link, token, outcome));
                true
            }
            None => false,
        }
    }

    fn commit(&mut self, txn: Txn) {
        let mut durable = false;
        for (addr, msg) in txn.sends {
            if let Address::Queue(q) = &addr {
                durable |= q.will_persist(&msg);
            }
            self.publish_committed(addr, msg);
        }
        for (link, token, outcome) in txn.acks {
            self.apply_outcome(link, token, outcome);
        }
        // the discharge is answered only once the committed durable messages are on disk
        if durable {
            if let Some(journal) = self.principal.as_ref().and_then(|p| p.tenant.journal()) {
                let _ = tokio::task::block_in_place(|| journal.sync());
            }
        }
    }

    fn rollback(&mut self, txn: Txn) {
        // consumed messages come back as failed deliveries (JMS: redelivered)
        let failed = DeliveryState::Modified(Modified {
            delivery_failed: Some(true),
            ..Modified::default()
        });
        for (link, token, _) in txn.acks {
            self.apply_outcome(link, token, failed.clone());
        }
    }

    /// Publishes a committed message (as a settled send: the discharge is the answer).
    fn publish_committed(&mut self, addr: Address, msg: Message) {
        match addr {
            Address::Queue(q) => {
                q.publish_durably(msg, None);
            }
            Address::Topic(t) => {
                t.publish_durably(msg, None);
            }
            Address::Anycast(a) => {
                let _ = a.publish((&self.outbox, LinkId(u32::MAX)), msg, None);
            }
            Address::Multicast(m) => {
                m.publish((&self.outbox, LinkId(u32::MAX)), msg);
            }
        }
    }

    fn apply_outcome(&mut self, link: LinkId, token: u64, outcome: DeliveryState) {
        if let Some(o) = Outcome::from_state(&outcome) {
            self.settle_token(link, token, o, outcome);
        }
    }
}

/// Whether a producer target is the coordinator.
pub(super) fn is_coordinator(t: &ProducerTarget) -> bool {
    matches!(t, ProducerTarget::Coordinator)
}
