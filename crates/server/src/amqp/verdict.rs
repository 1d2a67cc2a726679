//! The AMQP words for the core's answers: a [`Verdict`] becomes a delivery state (with
//! the error condition of a refusal), and a consumer's delivery state becomes a core
//! [`Outcome`]. The only place the AMQP adapter maps them.

use throng_amqp::definitions::{condition, DeliveryState, Error, Modified, Rejected};
use throng_amqp::engine::LinkId;
use throng_core::{ConsumerError, Handle, Outcome, Refusal, Verdict};

/// The core's handle for an AMQP link (the same number).
pub(crate) fn handle(link: LinkId) -> Handle {
    Handle(link.0)
}

/// The AMQP link a core handle names.
pub(crate) fn link(handle: Handle) -> LinkId {
    LinkId(handle.0)
}

/// The error condition a refusal is told with.
pub(crate) fn refusal_condition(r: &Refusal) -> &'static str {
    match r {
        Refusal::Full | Refusal::TooLarge => condition::RESOURCE_LIMIT_EXCEEDED,
        Refusal::NotPermitted => condition::UNAUTHORIZED_ACCESS,
        Refusal::NotFound => condition::NOT_FOUND,
        Refusal::NoAddress => condition::INVALID_FIELD,
        Refusal::StoreFailed => condition::INTERNAL_ERROR,
        Refusal::NoConsumer => condition::NOT_FOUND,
    }
}

/// A `rejected` state with `condition` and `description`.
pub(crate) fn rejected(cond: &str, desc: impl Into<String>) -> DeliveryState {
    DeliveryState::Rejected(Rejected {
        error: Some(Error::new(cond, desc)),
    })
}

/// The delivery state a producer's delivery is settled with.
pub(crate) fn delivery_state(v: Verdict) -> DeliveryState {
    match v {
        Verdict::Accepted => DeliveryState::Accepted,
        Verdict::Released => DeliveryState::Released,
        Verdict::Modified {
            failed,
            undeliverable_here,
            annotations,
        } => DeliveryState::Modified(Modified {
            delivery_failed: failed.then_some(true),
            undeliverable_here: undeliverable_here.then_some(true),
            message_annotations: annotations,
        }),
        Verdict::RejectedByConsumer(e) => DeliveryState::Rejected(Rejected {
            error: e.map(|e| Error {
                condition: throng_amqp::codec::Symbol::new(e.condition),
                description: e.description,
                info: None,
            }),
        }),
        Verdict::Refused(r) => rejected(refusal_condition(&r), r.describe()),
    }
}

/// What a consumer's delivery state means to the core; `None` for non-terminal states.
pub(crate) fn outcome(state: &DeliveryState) -> Option<Outcome> {
    Some(match state {
        DeliveryState::Accepted => Outcome::Accepted,
        DeliveryState::Released => Outcome::Released,
        DeliveryState::Rejected(r) => Outcome::Rejected(r.error.as_ref().map(|e| ConsumerError {
            condition: e.condition.as_str().to_string(),
            description: e.description.clone(),
        })),
        DeliveryState::Modified(m) => Outcome::Modified {
            failed: m.delivery_failed.unwrap_or(false),
            undeliverable_here: m.undeliverable_here.unwrap_or(false),
            annotations: m.message_annotations.clone().filter(|a| !a.is_empty()),
        },
        DeliveryState::Received(_) | DeliveryState::Other(..) => return None,
    })
}
