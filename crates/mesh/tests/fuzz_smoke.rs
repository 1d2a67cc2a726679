//! Runs the mesh's fuzz target body (`tests/fuzz_bodies`, shared with
//! `fuzz/fuzz_targets/mesh_decode.rs`) over deterministic inputs: valid messages of
//! every kind, each mutated by a fixed-seed generator and cut at every length, and noise.

mod fuzz_bodies;

use throng_mesh::wire::{
    AddressChange, Addresses, Hello, LinkState, Request, Summary, SummaryEntry, Version, Want,
};
use throng_mesh::{AddressKey, Message, NodeId};

fn node(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

fn seeds() -> Vec<Vec<u8>> {
    let v = Version {
        instance: 7,
        seq: 3,
    };
    let key = AddressKey::new("acme", "orders").unwrap();
    let msgs = [
        Message::Hello(Hello {
            from: node("r1"),
            instance: 7,
            seen: Some(node("r2")),
            digest: 0xdead_beef,
        }),
        Message::LinkState(LinkState {
            origin: node("r1"),
            version: v,
            neighbours: vec![(node("r2"), 1), (node("r3"), 10)],
        }),
        Message::Addresses(Addresses {
            origin: node("r1"),
            version: v,
            change: AddressChange::Full(vec![(key.clone(), 250)]),
        }),
        Message::Addresses(Addresses {
            origin: node("r1"),
            version: v,
            change: AddressChange::Delta {
                set: vec![(key.clone(), 5)],
                removed: vec![key],
            },
        }),
        Message::Summary(Summary {
            entries: vec![SummaryEntry {
                origin: node("r3"),
                link_state: Some(v),
                addresses: None,
            }],
        }),
        Message::Request(Request {
            wants: vec![Want {
                origin: node("r3"),
                link_state: true,
                addresses: false,
            }],
        }),
    ];
    msgs.iter()
        .map(|m| {
            let mut out = Vec::new();
            m.encode(&mut out);
            out
        })
        .collect()
}

#[test]
fn valid_damaged_and_cut_messages_never_panic() {
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for seed in seeds() {
        for cut in 0..=seed.len() {
            fuzz_bodies::mesh_decode(&seed[..cut]);
        }
        for _ in 0..2_000 {
            let mut m = seed.clone();
            for _ in 0..=(next() % 4) {
                let i = (next() as usize) % m.len();
                m[i] = next() as u8;
            }
            fuzz_bodies::mesh_decode(&m);
        }
    }
    for len in [0usize, 1, 2, 17, 300] {
        let noise: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        fuzz_bodies::mesh_decode(&noise);
    }
}
