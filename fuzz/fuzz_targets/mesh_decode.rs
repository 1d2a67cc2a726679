//! Decodes arbitrary bytes as a neighbour's mesh routing message; whatever decodes must
//! re-encode to the same message, and a router fed it must not panic.
//!
//! The body lives in `crates/mesh/tests/fuzz_bodies`, which `cargo test -p throng-mesh`
//! also runs over deterministic inputs (`tests/fuzz_smoke.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/mesh/tests/fuzz_bodies/mod.rs"]
mod bodies;

fuzz_target!(|data: &[u8]| {
    bodies::mesh_decode(data);
});
