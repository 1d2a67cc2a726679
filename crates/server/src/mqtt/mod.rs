//! The MQTT protocol adapter: MQTT 3.1.1 and 5.0 clients on the same addresses as AMQP
//! clients. One task per connection drives the sans-IO engine of `throng-mqtt`
//! ([`connection`]); sessions and their subscriptions live in [`session`]; the one
//! translation between MQTT publishes and AMQP messages is in [`bridge`].

mod bridge;
mod connection;
mod session;

pub use connection::serve_connection;
pub use session::{Sessions, SESSION_PREFIX, SHARED_PREFIX};
