//! A client receiving: the source resolved (an existing durable subscription by link
//! name, a dynamic address, or an address by name with permission checked), its
//! selector and distribution mode read, the settle mode chosen, and a consumer
//! registered with the address — a queue consumer or browser, a durable, shared or
//! private topic subscription, or a direct consumer.

use super::terminus::{has_capability, is_durable, selector_of, subscription_name};
use super::Refused;
use crate::amqp::connection::Conn;
use crate::amqp::links::{ConsumerLink, ConsumerSource};
use crate::amqp::verdict::handle;
use throng_amqp::codec::Symbol;
use throng_amqp::definitions::{
    condition, Attach, ReceiverSettleMode, Role, SenderSettleMode, Source,
};
use throng_amqp::engine::{LinkId, LinkSpec};
use throng_core::{Address, AddressKind, ConsumerKey, Op, Tenant};
use throng_selector::Selector;
use tracing::debug;

impl Conn {
    pub(super) fn attach_receiver(
        &mut self,
        link: LinkId,
        attach: &Attach,
        tenant: &Tenant,
    ) -> Result<(), Refused> {
        let sub_name = subscription_name(&self.container_id, &attach.name, attach.source.as_ref());
        let source = match attach.source.clone() {
            Some(s) => s,
            // a null source names an existing durable subscription by link name (how JMS
            // clients find a subscription to unsubscribe it)
            None => match tenant.subscription_topic(&sub_name) {
                Some(topic) => Source {
                    address: Some(topic),
                    durable: Some(2),
                    expiry_policy: Some(Symbol::new("never")),
                    ..Source::default()
                },
                None => {
                    return Err(Refused::with(
                        condition::NOT_FOUND,
                        format!("no durable subscription `{sub_name}`"),
                    ))
                }
            },
        };
        if source.dynamic == Some(true) {
            return self.attach_dynamic(link, attach, source, tenant, &sub_name);
        }
        let Some(name) = source.address.clone().filter(|a| !a.is_empty()) else {
            return Err(Refused::with(
                condition::INVALID_FIELD,
                "source address is required",
            ));
        };
        if !self.allowed(Op::Recv, &name) {
            return Err(Refused::with(
                condition::UNAUTHORIZED_ACCESS,
                format!("no permission to receive from `{name}`"),
            ));
        }
        let kind = if has_capability(&source.capabilities, "topic") {
            AddressKind::Topic
        } else {
            AddressKind::Queue
        };
        let address = tenant
            .resolve(&name, kind)
            .ok_or_else(|| Refused::with(condition::NOT_FOUND, format!("no address `{name}`")))?;
        let resolved = Resolved {
            name,
            address,
            dynamic: false,
        };
        self.open_consumer(link, attach, source, tenant, resolved, &sub_name)
    }

    /// Accepts the link on the address its source resolved to and registers its consumer.
    pub(super) fn open_consumer(
        &mut self,
        link: LinkId,
        attach: &Attach,
        source: Source,
        tenant: &Tenant,
        resolved: Resolved,
        sub_name: &str,
    ) -> Result<(), Refused> {
        let Resolved {
            name,
            address,
            dynamic,
        } = resolved;
        let selector =
            selector_of(&source).map_err(|r| Refused::with(condition::INVALID_FIELD, r))?;
        if selector.is_some() && matches!(address, Address::Anycast(_) | Address::Multicast(_)) {
            return Err(Refused::with(
                condition::NOT_IMPLEMENTED,
                format!(
                    "selectors are supported on queues and topics; `{name}` is {}",
                    address.kind().as_str()
                ),
            ));
        }
        let presettled = attach.snd_settle_mode.unwrap_or_default() == SenderSettleMode::Settled;
        // distribution-mode `copy` on a queue: a browser, sent presettled copies
        let browse = matches!(address, Address::Queue(_))
            && source
                .distribution_mode
                .as_ref()
                .is_some_and(|m| m.as_str() == "copy");
        let settle_mode = match address {
            Address::Multicast(_) => SenderSettleMode::Settled,
            _ if browse || presettled => SenderSettleMode::Settled,
            _ => SenderSettleMode::Unsettled,
        };
        let spec = LinkSpec {
            role: Role::Sender,
            source: Some(source.clone()),
            target: attach.target.clone(),
            snd_settle_mode: settle_mode,
            rcv_settle_mode: ReceiverSettleMode::First,
            ..LinkSpec::default()
        };
        self.engine
            .accept_link(link, spec)
            .map_err(|_| Refused::Engine)?;
        let consumer = Consumer {
            link,
            presettled,
            browse,
            selector,
        };
        let (source, key) = self.consume(consumer, address, &source, tenant, sub_name);
        debug!(conn = self.id, address = %name, "consumer attached");
        self.consumers.insert(
            link,
            ConsumerLink::new(source, key, name.to_string(), dynamic),
        );
        Ok(())
    }

    /// Registers the consumer with the address: which kind of consumer follows from the
    /// address type and what the source asks for (browsing, durability, sharing).
    fn consume(
        &self,
        c: Consumer,
        address: Address,
        source: &Source,
        tenant: &Tenant,
        sub_name: &str,
    ) -> (ConsumerSource, ConsumerKey) {
        let (outbox, h) = (self.outbox.clone(), handle(c.link));
        match address {
            Address::Queue(q) if c.browse => {
                let key = q.add_browser(outbox, h, c.selector);
                (ConsumerSource::Queue(q), key)
            }
            Address::Queue(q) => {
                let key = q.add_consumer_selecting(outbox, h, c.presettled, c.selector);
                (ConsumerSource::Queue(q), key)
            }
            Address::Topic(t) if is_durable(source) => {
                let queue = tenant.open_subscription(&t, sub_name);
                let key = queue.add_consumer_selecting(outbox, h, c.presettled, c.selector);
                let name = sub_name.to_string();
                (ConsumerSource::Durable { queue, name }, key)
            }
            Address::Topic(t) if has_capability(&source.capabilities, "shared") => {
                let queue = t.join_shared(sub_name);
                let key = queue.add_consumer_selecting(outbox, h, c.presettled, c.selector);
                let name = sub_name.to_string();
                (
                    ConsumerSource::Shared {
                        topic: t,
                        queue,
                        name,
                    },
                    key,
                )
            }
            Address::Topic(t) => {
                let queue = t.subscribe();
                let key = queue.add_consumer_selecting(outbox, h, c.presettled, c.selector);
                (ConsumerSource::Subscription { topic: t, queue }, key)
            }
            Address::Anycast(a) => {
                let key = a.add_consumer(outbox, h, c.presettled);
                (ConsumerSource::Anycast(a), key)
            }
            Address::Multicast(m) => {
                let key = m.add_consumer(outbox, h);
                (ConsumerSource::Multicast(m), key)
            }
        }
    }
}

/// The address a receiver's source named, and whether it was made for the link.
pub(super) struct Resolved {
    pub(super) name: String,
    pub(super) address: Address,
    pub(super) dynamic: bool,
}

/// What a consumer link asked for, besides its address.
struct Consumer {
    link: LinkId,
    presettled: bool,
    browse: bool,
    selector: Option<Selector>,
}
