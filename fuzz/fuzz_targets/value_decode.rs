//! Decodes and skips one value (`Decoder::read_value`, `skip_value`); whatever decodes
//! must skip to the same place and re-encode stably.
//!
//! The body lives in `crates/amqp/tests/fuzz_bodies`, which `cargo test -p throng-amqp`
//! also runs over deterministic inputs (`tests/fuzz_smoke.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/amqp/tests/fuzz_bodies/mod.rs"]
mod bodies;

fuzz_target!(|data: &[u8]| {
    bodies::value_decode(data);
});
