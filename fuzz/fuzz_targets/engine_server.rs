//! Feeds arbitrary bytes to a server `Connection` after valid protocol headers (the first
//! byte chooses SASL, a ready-made open and begin, chunking and the session window), answering
//! every event as an accepting application would; everything the engine writes must be
//! well-formed frames.
//!
//! The body lives in `crates/amqp/tests/fuzz_bodies`, which `cargo test -p throng-amqp`
//! also runs over deterministic inputs (`tests/fuzz_smoke.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/amqp/tests/fuzz_bodies/mod.rs"]
mod bodies;

fuzz_target!(|data: &[u8]| {
    let _ = bodies::engine_server(data);
});
