//! The transaction coordinator link: declares and discharges arrive on it
//! (`super::super::transactions`).

use super::Refused;
use crate::amqp::connection::Conn;
use crate::amqp::links::{ProducerLink, ProducerTarget};
use throng_amqp::definitions::{Attach, ReceiverSettleMode, Role};
use throng_amqp::engine::{LinkId, LinkSpec};

impl Conn {
    pub(super) fn attach_coordinator(
        &mut self,
        link: LinkId,
        attach: &Attach,
    ) -> Result<(), Refused> {
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
            .map_err(|_| Refused::Engine)?;
        self.producers
            .insert(link, ProducerLink::new(ProducerTarget::Coordinator));
        self.top_up(link);
        Ok(())
    }
}
