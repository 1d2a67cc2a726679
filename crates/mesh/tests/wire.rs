//! The routing messages' encoding: every kind round-trips, and hostile bytes (every
//! truncation, every single-byte corruption, absurd counts) get an error, never a panic
//! or an allocation beyond the input's size.

use throng_mesh::wire::{
    AddressChange, Addresses, Hello, LinkState, Request, Summary, SummaryEntry, Version, Want,
};
use throng_mesh::{AddressKey, DecodeError, Message, NodeId};

fn samples() -> Vec<Message> {
    let a = NodeId::new("router-a").unwrap();
    let b = NodeId::new("b.2_x").unwrap();
    let k = AddressKey::new("acme", "orders/eu").unwrap();
    let v = Version {
        instance: 1_765_000_000_000,
        seq: 300,
    };
    vec![
        Message::Hello(Hello {
            from: a.clone(),
            instance: 7,
            seen: Some(b.clone()),
            digest: u64::MAX,
        }),
        Message::Hello(Hello {
            from: a.clone(),
            instance: 0,
            seen: None,
            digest: 0,
        }),
        Message::LinkState(LinkState {
            origin: a.clone(),
            version: v,
            neighbours: vec![(b.clone(), 1), (a.clone(), u32::MAX)],
        }),
        Message::Addresses(Addresses {
            origin: b.clone(),
            version: v,
            change: AddressChange::Full(vec![(k.clone(), 5)]),
        }),
        Message::Addresses(Addresses {
            origin: b.clone(),
            version: v,
            change: AddressChange::Delta {
                set: vec![(k.clone(), 0)],
                removed: vec![k.clone()],
            },
        }),
        Message::Summary(Summary {
            entries: vec![
                SummaryEntry {
                    origin: a.clone(),
                    link_state: Some(v),
                    addresses: None,
                },
                SummaryEntry {
                    origin: b.clone(),
                    link_state: None,
                    addresses: Some(v),
                },
            ],
        }),
        Message::Request(Request {
            wants: vec![Want {
                origin: a,
                link_state: true,
                addresses: false,
            }],
        }),
    ]
}

#[test]
fn every_kind_round_trips() {
    for m in samples() {
        let mut buf = Vec::new();
        m.encode(&mut buf);
        assert_eq!(Message::decode(&buf), Ok(m));
    }
}

#[test]
fn truncated_and_corrupted_bytes_are_refused_without_panic() {
    for m in samples() {
        let mut buf = Vec::new();
        m.encode(&mut buf);
        for cut in 0..buf.len() {
            assert!(Message::decode(&buf[..cut]).is_err(), "{m:?} cut at {cut}");
        }
        for i in 0..buf.len() {
            for x in [0x00u8, 0x7f, 0x80, 0xff] {
                let mut bad = buf.clone();
                bad[i] = x;
                let _ = Message::decode(&bad);
            }
        }
        let mut long = buf.clone();
        long.push(0);
        assert_eq!(Message::decode(&long), Err(DecodeError::Trailing));
    }
}

#[test]
fn a_count_larger_than_the_input_is_refused_before_allocating() {
    // link-state of "a", version (1,1), then a neighbour count of 2^62
    let mut buf = vec![1, 2, 1, b'a', 1, 1];
    buf.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40]);
    assert_eq!(Message::decode(&buf), Err(DecodeError::Truncated));
    assert_eq!(Message::decode(&[2, 1]), Err(DecodeError::Version(2)));
    assert_eq!(Message::decode(&[1, 99]), Err(DecodeError::Kind(99)));
}

#[test]
fn bad_names_are_refused() {
    // a hello from "a b" (space is not allowed in a node id)
    let mut buf = vec![1, 1, 3, b'a', b' ', b'b', 0, 0];
    buf.extend_from_slice(&[0; 8]);
    assert_eq!(Message::decode(&buf), Err(DecodeError::Name));
}
