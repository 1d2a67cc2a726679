//! The MQTT protocol adapter: MQTT 3.1.1 and 5.0 clients on the same addresses as AMQP
//! clients. One task per connection drives the sans-IO engine of `throng-mqtt`
//! ([`connection`]); sessions and their subscriptions live in [`session`], the sources
//! they receive from (and what a delivery from each carries) in [`source`]; the one
//! translation between MQTT publishes and AMQP messages is in [`bridge`].

mod bridge;
mod connection;
mod session;
mod source;

pub use connection::serve_connection;
pub use session::{Sessions, SESSION_PREFIX, SESSION_TOPIC_PREFIX, SHARED_PREFIX};
