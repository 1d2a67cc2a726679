//! Decodes arbitrary bytes as a will stored in the metadata store (read back from disk
//! at start-up); whatever decodes must re-encode to the same bytes.
//!
//! The body lives in `crates/store/tests/fuzz_bodies`, which `cargo test -p throng-store`
//! also runs over deterministic inputs (`tests/fuzz_smoke.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/store/tests/fuzz_bodies/mod.rs"]
mod bodies;

fuzz_target!(|data: &[u8]| {
    bodies::will_decode(data);
});
