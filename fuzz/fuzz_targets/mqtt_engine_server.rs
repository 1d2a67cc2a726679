//! Feeds arbitrary bytes to a server-side MQTT `Connection` after a valid CONNECT (the
//! first byte chooses the version, chunking and receive maximum), answering every event as
//! an accepting application would; everything the engine writes must be well-formed.
//!
//! The body lives in `crates/mqtt/tests/fuzz_bodies`, which `cargo test -p throng-mqtt`
//! also runs over deterministic inputs (`tests/fuzz_smoke.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/mqtt/tests/fuzz_bodies/mod.rs"]
mod bodies;

fuzz_target!(|data: &[u8]| {
    bodies::mqtt_engine_server(data);
});
