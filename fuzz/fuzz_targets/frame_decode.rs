//! Splits arbitrary bytes into frames (max-frame-size 512) until it needs more input or
//! fails; every decoded frame must re-encode stably.
//!
//! The body lives in `crates/amqp/tests/fuzz_bodies`, which `cargo test -p throng-amqp`
//! also runs over deterministic inputs (`tests/fuzz_smoke.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/amqp/tests/fuzz_bodies/mod.rs"]
mod bodies;

fuzz_target!(|data: &[u8]| {
    bodies::frame_decode(data);
});
