//! Splits arbitrary bytes into MQTT packets (the first byte picks 3.1.1 or 5.0, maximum
//! packet size 512) until more input is needed or decoding fails; every decoded packet
//! must re-encode stably.
//!
//! The body lives in `crates/mqtt/tests/fuzz_bodies`, which `cargo test -p throng-mqtt`
//! also runs over deterministic inputs (`tests/fuzz_smoke.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/mqtt/tests/fuzz_bodies/mod.rs"]
mod bodies;

fuzz_target!(|data: &[u8]| {
    bodies::mqtt_decode(data);
});
