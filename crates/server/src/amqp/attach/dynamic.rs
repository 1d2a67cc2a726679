//! The temporary reply address of a dynamic receiver: created for the attach (named so
//! that no name repeats, also across restarts), and removed again if the attach fails —
//! or, once attached, when its link detaches (`links`).

use super::receiver::Resolved;
use super::Refused;
use crate::amqp::connection::Conn;
use throng_amqp::definitions::{Attach, Source};
use throng_amqp::engine::LinkId;
use throng_core::Tenant;

impl Conn {
    /// Attaches a receiver with a dynamic source: a new anycast address, whose name the
    /// attach answer tells the client.
    pub(super) fn attach_dynamic(
        &mut self,
        link: LinkId,
        attach: &Attach,
        mut source: Source,
        tenant: &Tenant,
        sub_name: &str,
    ) -> Result<(), Refused> {
        let (name, address) = tenant.create_dynamic(self.id);
        source.address = Some(name.clone());
        let resolved = Resolved {
            name: name.clone(),
            address,
            dynamic: true,
        };
        let attached = self.open_consumer(link, attach, source, tenant, resolved, sub_name);
        if attached.is_err() {
            tenant.remove(&name);
        }
        attached
    }
}
