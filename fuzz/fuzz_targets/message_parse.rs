//! Parses arbitrary bytes as a message and calls every accessor (header, properties,
//! annotations, application properties, body, with_header).
//!
//! The body lives in `crates/amqp/tests/fuzz_bodies`, which `cargo test -p throng-amqp`
//! also runs over deterministic inputs (`tests/fuzz_smoke.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/amqp/tests/fuzz_bodies/mod.rs"]
mod bodies;

fuzz_target!(|data: &[u8]| {
    bodies::message_parse(data);
});
