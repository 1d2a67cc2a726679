//! A client's attach, answered: the checks every link shares here, then one handler per
//! kind of link — [`sender`] (a client sending to an address, the anonymous relay or
//! `$lwt`), [`coordinator`] (the transaction coordinator), [`receiver`] (a client
//! receiving from a queue, topic subscription or direct address), [`dynamic`] (the
//! temporary reply address a dynamic receiver gets). [`terminus`] reads what a source
//! or target asks for (capabilities, durability, subscription names, selectors).

mod coordinator;
mod dynamic;
mod receiver;
mod sender;
mod terminus;

use super::connection::Conn;
use throng_amqp::definitions::{
    condition, Attach, Error, ReceiverSettleMode, Role, TargetTerminus,
};
use throng_amqp::engine::{LinkId, LinkSpec};
use throng_core::Op;
use tracing::warn;

/// Why an attach is not accepted.
enum Refused {
    /// Refused with this error condition and description (the client sees both).
    With(&'static str, String),
    /// The engine would not accept the link (the connection is failing): no answer.
    Engine,
}

impl Refused {
    fn with(cond: &'static str, reason: impl Into<String>) -> Self {
        Refused::With(cond, reason.into())
    }
}

impl Conn {
    pub(in crate::amqp) fn on_attach(&mut self, link: LinkId, attach: Attach) {
        let Some(principal) = self.principal.clone() else {
            return self.refuse(link, condition::UNAUTHORIZED_ACCESS, "not authenticated");
        };
        if attach.rcv_settle_mode == Some(ReceiverSettleMode::Second) {
            return self.refuse(
                link,
                condition::NOT_IMPLEMENTED,
                "rcv-settle-mode second is not supported",
            );
        }
        let tenant = principal.tenant.clone();
        let result = match (attach.role, &attach.target) {
            (Role::Sender, Some(TargetTerminus::Coordinator(_))) => {
                self.attach_coordinator(link, &attach)
            }
            (Role::Sender, Some(TargetTerminus::Target(t))) => {
                let target = t.clone();
                self.attach_sender(link, &attach, target, &tenant)
            }
            (Role::Sender, None) => Err(Refused::with(
                condition::INVALID_FIELD,
                "attach without a target",
            )),
            (Role::Receiver, _) => self.attach_receiver(link, &attach, &tenant),
        };
        if let Err(Refused::With(cond, reason)) = result {
            self.refuse(link, cond, reason);
        }
    }

    /// Answers an attach with a refusal: a null terminus, then a detach with the error
    /// (part 2 §2.6.3); logged once.
    fn refuse(&mut self, link: LinkId, cond: &str, reason: impl Into<String>) {
        let reason = reason.into();
        let tenant = self
            .principal
            .as_ref()
            .map_or("-", |p| p.tenant.name())
            .to_string();
        warn!(conn = self.id, peer = %self.peer, tenant = %tenant, "attach refused: {cond}: {reason}");
        let _ = self.engine.refuse_link(link, Error::new(cond, reason));
    }

    /// Accepts a link on which the client sends (to an address, the relay, `$lwt` or
    /// the coordinator): our end receives, settling first, in the sender's settle mode.
    fn accept_receiving(&mut self, link: LinkId, attach: &Attach) -> Result<(), Refused> {
        let spec = LinkSpec {
            role: Role::Receiver,
            source: attach.source.clone(),
            target: attach.target.clone(),
            snd_settle_mode: attach.snd_settle_mode.unwrap_or_default(),
            rcv_settle_mode: ReceiverSettleMode::First,
            ..LinkSpec::default()
        };
        self.engine
            .accept_link(link, spec)
            .map_err(|_| Refused::Engine)
    }

    /// Whether the connection's user may `op` on `address`.
    fn allowed(&self, op: Op, address: &str) -> bool {
        self.principal.as_ref().is_none_or(|p| p.may(op, address))
    }
}
