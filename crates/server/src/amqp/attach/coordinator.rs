//! The transaction coordinator link: declares and discharges arrive on it
//! (`super::super::transactions`).

use super::Refused;
use crate::amqp::connection::Conn;
use crate::amqp::links::{ProducerLink, ProducerTarget};
use throng_amqp::definitions::Attach;
use throng_amqp::engine::LinkId;

impl Conn {
    pub(super) fn attach_coordinator(
        &mut self,
        link: LinkId,
        attach: &Attach,
    ) -> Result<(), Refused> {
        self.accept_receiving(link, attach)?;
        self.producers
            .insert(link, ProducerLink::new(ProducerTarget::Coordinator));
        self.top_up(link);
        Ok(())
    }
}
