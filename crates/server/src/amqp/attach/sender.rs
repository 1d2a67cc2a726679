//! A client sending: to an address (permission checked, created on first use where the
//! tenant allows), through the anonymous relay (each message's `to`), or to `$lwt` (its
//! will). The credit it starts with comes from the address
//! (`Address::attach_producer`).

use super::terminus::has_capability;
use super::Refused;
use crate::amqp::connection::Conn;
use crate::amqp::links::{ProducerLink, ProducerTarget, WILL_ADDRESS};
use crate::amqp::verdict::handle;
use throng_amqp::definitions::{condition, Attach, Target};
use throng_amqp::engine::LinkId;
use throng_core::{AddressKind, Op, Producer, ProducerCredit, Tenant};

impl Conn {
    pub(super) fn attach_sender(
        &mut self,
        link: LinkId,
        attach: &Attach,
        target: Target,
        tenant: &Tenant,
    ) -> Result<(), Refused> {
        if target.dynamic == Some(true) {
            return Err(Refused::with(
                condition::NOT_IMPLEMENTED,
                "dynamic targets are not supported",
            ));
        }
        let ptarget = match target.address.as_deref().filter(|a| !a.is_empty()) {
            None => ProducerTarget::Anonymous,
            Some(WILL_ADDRESS) => ProducerTarget::Will,
            Some(name) => {
                if !self.allowed(Op::Send, name) {
                    return Err(Refused::with(
                        condition::UNAUTHORIZED_ACCESS,
                        format!("no permission to send to `{name}`"),
                    ));
                }
                let kind = if has_capability(&target.capabilities, "topic") {
                    AddressKind::Topic
                } else {
                    AddressKind::Queue
                };
                let address = tenant.resolve(name, kind).ok_or_else(|| {
                    Refused::with(condition::NOT_FOUND, format!("no address `{name}`"))
                })?;
                ProducerTarget::Address(address)
            }
        };
        self.accept_receiving(link, attach)?;
        let credit = match &ptarget {
            ProducerTarget::Address(a) => a.attach_producer(Producer {
                outbox: &self.outbox,
                link: handle(link),
            }),
            _ => ProducerCredit::Window,
        };
        let mut producer = ProducerLink::new(ptarget);
        producer.blocked = credit == ProducerCredit::Wait;
        self.producers.insert(link, producer);
        if credit == ProducerCredit::Window {
            self.top_up(link);
        }
        // FromConsumers: anycast and multicast hand out their consumers' credit
        Ok(())
    }
}
