//! Runs the store's fuzz target bodies (`tests/fuzz_bodies`, shared with
//! `fuzz/fuzz_targets`) over deterministic inputs: a valid stored will mutated by a
//! fixed-seed generator, every prefix of it, and noise.

mod fuzz_bodies;

use throng_store::{WillRecord, WillRecordError};

fn seed() -> Vec<u8> {
    WillRecord {
        address: "status/dev-1",
        mqtt: true,
        retain: true,
        delay: 30,
        client_id: "dev-1",
        message: b"\x00\x53\x75\xa0\x07offline",
    }
    .encode()
    .unwrap()
}

#[test]
fn stored_wills_round_trip_and_damage_is_an_error() {
    let bytes = seed();
    let w = WillRecord::decode(&bytes).unwrap();
    assert_eq!(
        (w.address, w.client_id, w.delay),
        ("status/dev-1", "dev-1", 30)
    );
    assert!(w.mqtt && w.retain);
    assert_eq!(w.message, b"\x00\x53\x75\xa0\x07offline");
    let header = bytes.len() - w.message.len();
    for cut in 0..header {
        assert!(
            WillRecord::decode(&bytes[..cut]).is_err(),
            "prefix of {cut} bytes"
        );
    }
    let mut v = bytes.clone();
    v[0] = 2;
    assert_eq!(WillRecord::decode(&v), Err(WillRecordError::Version(2)));
    let mut v = bytes.clone();
    v[1] = 0x83;
    assert_eq!(WillRecord::decode(&v), Err(WillRecordError::Flags(0x83)));
    let mut v = bytes.clone();
    v[8] = 0xff; // inside the address
    assert_eq!(WillRecord::decode(&v), Err(WillRecordError::Utf8));
    let long = "a".repeat(70_000);
    let too_long = WillRecord {
        address: &long,
        ..WillRecord::decode(&bytes).unwrap()
    };
    assert_eq!(too_long.encode(), Err(WillRecordError::TooLong));
}

#[test]
fn will_decode_survives_mutations_and_noise() {
    let seed = seed();
    // a 64-bit linear congruential generator (Knuth's MMIX constants), top bits
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        state >> 33
    };
    for _ in 0..5_000 {
        let mut v = seed.clone();
        for _ in 0..1 + next() % 4 {
            let i = (next() as usize) % v.len().max(1);
            match next() % 3 {
                0 if !v.is_empty() => v[i] ^= 1 << (next() % 8),
                1 => v.truncate(i),
                _ => v.insert(i.min(v.len()), next() as u8),
            }
        }
        fuzz_bodies::will_decode(&v);
    }
    for n in 0..2_000 {
        let noise: Vec<u8> = (0..n % 64).map(|_| next() as u8).collect();
        fuzz_bodies::will_decode(&noise);
    }
}
