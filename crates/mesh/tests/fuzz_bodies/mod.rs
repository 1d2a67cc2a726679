//! The bodies of the mesh's fuzz targets, shared by `fuzz/fuzz_targets/mesh_decode.rs`
//! and the deterministic smoke run in `tests/fuzz_smoke.rs`.

use std::time::{Duration, Instant};
use throng_mesh::wire::Message;
use throng_mesh::{Config, LinkId, NodeId, Router};

/// Arbitrary bytes as a neighbour's routing message: decoding never panics; what decodes
/// re-encodes to a message that decodes to the same value; and a router fed it on a live
/// link neither panics nor stops answering.
pub fn mesh_decode(data: &[u8]) {
    let Ok(msg) = Message::decode(data) else {
        return;
    };
    let mut out = Vec::new();
    msg.encode(&mut out);
    let again = Message::decode(&out).expect("an encoded message decodes");
    assert_eq!(again, msg, "the re-encoded message differs");

    let t0 = Instant::now();
    let id = NodeId::new("fuzz-node").expect("a valid id");
    let mut router = Router::new(id, 1, Config::default());
    router.link_up(LinkId(1), 1, t0);
    router.receive(LinkId(1), msg, t0);
    router.handle_timeout(t0 + Duration::from_secs(1));
    while router.poll_transmit().is_some() {}
    while router.poll_event().is_some() {}
}
