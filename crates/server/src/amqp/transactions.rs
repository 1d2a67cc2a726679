//! AMQP local transactions (part 4), as Qpid JMS transacted sessions use them: a
//! coordinator link declares and discharges transactions; a transfer whose state is
//! `transactional-state` is held in the core's [`Transaction`] until commit; a consumer's
//! transactional outcome is applied at commit (and turned into a failed delivery on
//! rollback). The commit itself is the core's ([`throng_core::Tenant::commit`]): this
//! module only speaks the coordinator's protocol.

use super::connection::Conn;
use super::links::ProducerTarget;
use super::verdict::{handle, rejected};
use std::collections::HashMap;
use throng_amqp::codec::Value;
use throng_amqp::definitions::{condition, DeliveryState, Error, Modified, Rejected};
use throng_amqp::engine::LinkId;
use throng_amqp::message::{Body, Message};
use throng_core::{HeldAck, Later, Transaction, Verdict};
use tracing::debug;

/// Descriptor codes of part 4.
const DECLARE: u64 = 0x31;
const DISCHARGE: u64 = 0x32;
const DECLARED: u64 = 0x33;
const TRANSACTIONAL_STATE: u64 = 0x34;
/// The error a discharge or transactional transfer gets for an unknown txn-id.
const UNKNOWN_ID: &str = "amqp:transaction:unknown-id";
/// The error of a discharge whose transaction could not commit and was rolled back.
const ROLLBACK: &str = "amqp:transaction:rollback";

/// The connection's open transactions.
#[derive(Default)]
pub(super) struct Transactions {
    open: HashMap<Vec<u8>, Transaction>,
    next: u64,
}

impl Transactions {
    /// The open transaction `id`.
    pub(super) fn get_mut(&mut self, id: &[u8]) -> Option<&mut Transaction> {
        self.open.get_mut(id)
    }

    /// Whether transaction `id` is open.
    pub(super) fn holds(&self, id: &[u8]) -> bool {
        self.open.contains_key(id)
    }

    /// Holds a consumer's outcome in open transaction `id` until its commit.
    pub(super) fn hold_ack(&mut self, id: &[u8], ack: HeldAck) {
        if let Some(txn) = self.open.get_mut(id) {
            txn.hold_ack(ack);
        }
    }
}

/// How a discharge is answered once the core has committed (or could not).
pub(super) fn discharge_state(v: Verdict) -> DeliveryState {
    match v {
        Verdict::Accepted => DeliveryState::Accepted,
        Verdict::Refused(r) => rejected(
            ROLLBACK,
            format!("the transaction was rolled back: {}", r.describe()),
        ),
        other => rejected(
            ROLLBACK,
            format!("the transaction was rolled back: {other:?}"),
        ),
    }
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

/// A transactional transfer's state: held in transaction `id` (accepted), or released
/// (a direct address without a consumer: not part of the transaction).
pub(super) fn txn_state(id: &[u8], outcome: Verdict) -> DeliveryState {
    let outcome = match outcome {
        Verdict::Accepted => Value::Described(
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

/// The answer for a transfer or discharge naming a transaction that is not open.
pub(super) fn unknown(id: &[u8]) -> DeliveryState {
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
                self.txns.open.insert(id.clone(), Transaction::new());
                debug!(conn = self.id, txn = ?id, "transaction declared");
                DeliveryState::Other(DECLARED, Value::List(vec![Value::Binary(id.into())]))
            }
            Some((DISCHARGE, Value::List(fields))) => {
                let id = match fields.first() {
                    Some(Value::Binary(b)) => b.to_vec(),
                    _ => Vec::new(),
                };
                let fail = matches!(fields.get(1), Some(Value::Bool(true)));
                match (self.txns.open.remove(&id), &self.principal) {
                    (Some(txn), _) if fail => {
                        txn.roll_back();
                        DeliveryState::Accepted
                    }
                    (Some(txn), Some(p)) => {
                        // answered when the core has committed it: once every durable
                        // message of it is on disk (Command::Verdict on this link)
                        p.tenant.commit(
                            txn,
                            Later::Outbox {
                                outbox: self.outbox.clone(),
                                link: handle(link),
                                delivery: delivery_id,
                            },
                        );
                        return;
                    }
                    _ => unknown(&id),
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
}

/// Whether a producer target is the coordinator.
pub(super) fn is_coordinator(t: &ProducerTarget) -> bool {
    matches!(t, ProducerTarget::Coordinator)
}
