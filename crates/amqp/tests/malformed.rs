//! Robustness: truncated, oversized, deeply nested and invalid input is refused with an
//! error, quickly and without large allocations, by the codec, the framer, the message
//! view and the connection engine. Nothing here may panic.

mod common;

use bytes::{Bytes, BytesMut};
use common::*;
use proptest::prelude::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};
use throng_amqp::codec::{encode, DecodeError, Decoder, Value};
use throng_amqp::definitions::*;
use throng_amqp::engine::{Connection, ConnectionConfig, Event};
use throng_amqp::frame::{self, Frame, FrameError, AMQP_HEADER, SASL_HEADER};
use throng_amqp::message::Message;

// ---- allocation accounting ------------------------------------------------------------

/// Wraps the system allocator to record, per thread, the largest single allocation and
/// the bytes allocated in all, so tests can show that hostile sizes allocate nothing big.
struct Counting;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    static TOTAL: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
    let _ = TOTAL.try_with(|t| t.set(t.get().saturating_add(size)));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f`, returning its result, the largest allocation, the bytes allocated and the time.
fn measured<T>(f: impl FnOnce() -> T) -> (T, usize, usize, Duration) {
    LARGEST.with(|l| l.set(0));
    TOTAL.with(|t| t.set(0));
    let start = Instant::now();
    let r = f();
    let took = start.elapsed();
    (r, LARGEST.with(Cell::get), TOTAL.with(Cell::get), took)
}

fn read(bytes: &[u8]) -> Result<Value, DecodeError> {
    Decoder::new(&Bytes::copy_from_slice(bytes)).read_value()
}

fn skip(bytes: &[u8]) -> Result<(), DecodeError> {
    Decoder::new(&Bytes::copy_from_slice(bytes)).skip_value()
}

fn encoded(v: &Value) -> Vec<u8> {
    let mut b = BytesMut::new();
    encode::value(&mut b, v);
    b.to_vec()
}

// ---- truncation -----------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Every strict prefix of a value's encoding is an error for both readers.
    #[test]
    fn truncated_values_are_errors(v in arb_value()) {
        let bytes = encoded(&v);
        for n in 0..bytes.len() {
            prop_assert!(read(&bytes[..n]).is_err(), "prefix {} of {:02x?} decoded", n, bytes);
            prop_assert!(skip(&bytes[..n]).is_err(), "prefix {} of {:02x?} skipped", n, bytes);
        }
    }

    /// Every strict prefix of a performative is an error, and so is a frame whose size
    /// says the body ends there; a frame not yet complete is waited for.
    #[test]
    fn truncated_performatives_are_errors(p in arb_performative()) {
        let mut body = BytesMut::new();
        p.encode(&mut body);
        for n in 0..body.len() {
            let r = Performative::decode(&mut Decoder::new(&Bytes::copy_from_slice(&body[..n])));
            prop_assert!(r.is_err(), "prefix {} decoded as {:?}", n, r);
        }
        for n in 1..body.len() {
            let mut f = BytesMut::new();
            f.extend_from_slice(&((8 + n) as u32).to_be_bytes());
            f.extend_from_slice(&[2, 0, 0, 0]);
            f.extend_from_slice(&body[..n]);
            let r = frame::decode_frame(&mut f, u32::MAX);
            prop_assert!(matches!(r, Err(FrameError::Decode(_))), "{:?}", r);
        }
        let mut whole = perf_frame(0, &p);
        for n in 0..whole.len() {
            let mut part = BytesMut::from(&whole[..n]);
            prop_assert_eq!(frame::decode_frame(&mut part, u32::MAX), Ok(None));
            prop_assert_eq!(part.len(), n, "an incomplete frame must be left in the buffer");
        }
        prop_assert!(frame::decode_frame(&mut whole, u32::MAX).unwrap().is_some());
    }

    #[test]
    fn truncated_sasl_frames_are_errors(s in arb_sasl()) {
        let mut body = BytesMut::new();
        s.encode(&mut body);
        for n in 0..body.len() {
            let mut f = BytesMut::new();
            f.extend_from_slice(&((8 + n) as u32).to_be_bytes());
            f.extend_from_slice(&[2, frame::TYPE_SASL, 0, 0]);
            f.extend_from_slice(&body[..n]);
            prop_assert!(frame::decode_frame(&mut f, u32::MAX).is_err());
        }
    }

    /// A message cut short parses only when the cut falls between sections, and no
    /// accessor panics either way.
    #[test]
    fn truncated_messages_fail_between_sections_only(m in arb_message()) {
        let bytes = m.encode();
        let mut boundaries = vec![0usize];
        let mut d = Decoder::new(&bytes);
        while d.remaining() > 0 {
            d.skip_value().unwrap();
            boundaries.push(d.position());
        }
        for n in 0..bytes.len() {
            let r = Message::parse(bytes.slice(..n));
            prop_assert_eq!(r.is_ok(), boundaries.contains(&n), "prefix {}", n);
            if let Ok(msg) = r {
                let _ = (msg.header(), msg.properties(), msg.message_annotations());
                let _ = (msg.application_properties(), msg.body(), msg.bare());
            }
        }
    }
}

// ---- hostile sizes ----------------------------------------------------------------------

/// Sizes and counts far beyond the bytes present are refused at once, allocating nothing
/// in proportion to what they claim.
#[test]
fn huge_declared_sizes_fail_fast_without_allocating() {
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "list32 count 0xFFFFFFFF",
            vec![0xd0, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff],
        ),
        (
            "list32 size 0xFFFFFFFF",
            vec![0xd0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x40],
        ),
        (
            "map32 count 0xFFFFFFFE",
            vec![0xd1, 0, 0, 0, 6, 0xff, 0xff, 0xff, 0xfe, 0x40, 0x40],
        ),
        (
            "map32 size 4 GB",
            vec![0xd1, 0xff, 0xff, 0xff, 0xf0, 0, 0, 0, 2, 0x40, 0x40],
        ),
        (
            "array32 of 4 billion nulls",
            vec![0xf0, 0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0x40],
        ),
        (
            "array32 of 4 billion trues",
            vec![0xf0, 0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0x41],
        ),
        (
            "array32 of 4 billion list0",
            vec![0xf0, 0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0x45],
        ),
        (
            "array32 of 4 billion uint0",
            vec![0xf0, 0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0x43],
        ),
        (
            "array32 of 4 billion ulongs",
            vec![0xf0, 0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0x80],
        ),
        (
            "array32 size 4 GB",
            vec![0xf0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0x40],
        ),
        (
            "str32 of 4 GB",
            vec![0xb1, 0xff, 0xff, 0xff, 0xff, b'a', b'b'],
        ),
        ("sym32 of 4 GB", vec![0xb3, 0xff, 0xff, 0xff, 0xff, b'a']),
        ("vbin32 of 4 GB", vec![0xb0, 0xff, 0xff, 0xff, 0xff, 0]),
        ("str8 past the end", vec![0xa1, 0xff, b'a']),
        ("described array constructor past its size", {
            let mut v = vec![0xe0, 0x02, 0x00, 0x00, 0xa1, 0x05];
            v.extend_from_slice(b"hello");
            v.push(0x40);
            v
        }),
        (
            "array32 with no room for its constructor",
            vec![0xf0, 0, 0, 0, 4, 0, 0, 0, 0, 0x40],
        ),
    ];
    // a list holding an array that claims billions of elements, and an array of arrays
    // each claiming billions of nulls
    cases.push((
        "list of a huge array",
        vec![
            0xc0, 0x0c, 0x01, 0xf0, 0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0x40,
        ],
    ));
    let big = 5_000usize;
    let mut bomb = vec![0xf0];
    bomb.extend_from_slice(&((5 + big * 9) as u32).to_be_bytes());
    bomb.extend_from_slice(&(big as u32).to_be_bytes());
    bomb.push(0xf0);
    for _ in 0..big {
        bomb.extend_from_slice(&[0, 0, 0, 5, 0, 0, 0x10, 0, 0x40]); // 4096 nulls each
    }
    cases.push(("array of arrays of 4096 nulls each", bomb));

    for (name, bytes) in &cases {
        let (r, largest, total, took) = measured(|| read(bytes));
        assert!(r.is_err(), "{name}: decoded as {r:?}");
        assert!(took < Duration::from_millis(500), "{name}: took {took:?}");
        // memory in proportion to the bytes present (a decoded value takes 40 bytes),
        // never to the sizes claimed
        let bound = bytes.len() * std::mem::size_of::<Value>() + 4096;
        assert!(
            largest <= bound,
            "{name}: allocated {largest} bytes at once"
        );
        assert!(
            total <= 2 * bound + 65536,
            "{name}: allocated {total} bytes in all"
        );
        // skipping trusts counts (the lazy view never materialises the elements) but
        // never a size beyond the bytes present
        let (r, largest, _, took) = measured(|| skip(bytes));
        if name.contains("GB") || name.contains("0xFFFFFFFF") && name.contains("size") {
            assert!(r.is_err(), "{name}: skipped as {r:?}");
        }
        assert!(
            took < Duration::from_millis(100),
            "{name}: skip took {took:?}"
        );
        assert!(
            largest <= bytes.len() + 4096,
            "{name}: skip allocated {largest}"
        );
    }
}

/// Legitimate zero-width arrays (a few nulls or trues) still decode.
#[test]
fn small_zero_width_arrays_still_decode() {
    let v = read(&[0xe0, 0x02, 0x0a, 0x40]).unwrap();
    let Value::Array(a) = v else { panic!() };
    assert_eq!(a.items, vec![Value::Null; 10]);
    let v = read(&[0xe0, 0x02, 0x03, 0x41]).unwrap();
    let Value::Array(a) = v else { panic!() };
    assert_eq!(a.items, vec![Value::Bool(true); 3]);
    // the most an array8 can claim fits the slack every decoder has
    let v = read(&[0xe0, 0x02, 0xff, 0x43]).unwrap();
    let Value::Array(a) = v else { panic!() };
    assert_eq!(a.items, vec![Value::Uint(0); 255]);
    // but the budget is shared by the whole buffer: many such arrays are refused
    let mut many = vec![0xd0];
    many.extend_from_slice(&(4u32 + 4 * 100).to_be_bytes());
    many.extend_from_slice(&100u32.to_be_bytes());
    for _ in 0..100 {
        many.extend_from_slice(&[0xe0, 0x02, 0xff, 0x40]);
    }
    assert!(matches!(read(&many), Err(DecodeError::Invalid(_))));
}

/// The same hostile sizes inside a frame and a message.
#[test]
fn huge_sizes_inside_frames_and_messages() {
    // @open ["c", null, null, null, null, null, null, null, null, <map32 claiming 2^32-2 items>]
    let mut body = vec![0x00, 0x53, 0x10, 0xc0, 0x14, 0x0a, 0xa1, 0x01, b'c'];
    body.extend_from_slice(&[0x40; 8]);
    body.extend_from_slice(&[0xd1, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xfe]);
    let mut f = ((8 + body.len()) as u32).to_be_bytes().to_vec();
    f.extend_from_slice(&[2, 0, 0, 0]);
    f.extend_from_slice(&body);
    let (r, largest, _, took) =
        measured(|| frame::decode_frame(&mut BytesMut::from(&f[..]), 1 << 20));
    assert!(matches!(r, Err(FrameError::Decode(_))), "{r:?}");
    assert!(largest < 4096 && took < Duration::from_millis(100));

    // an amqp-value section holding an array of 4 billion nulls
    let msg = [
        0x00, 0x53, 0x77, 0xf0, 0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0x40,
    ];
    let m = Message::parse(Bytes::copy_from_slice(&msg)).unwrap();
    let (r, largest, _, _) = measured(|| m.body());
    assert!(r.is_err() && largest < 4096);
    // a data section claiming 4 GB
    let msg = [0x00, 0x53, 0x75, 0xb0, 0xff, 0xff, 0xff, 0xff, 1, 2, 3];
    assert!(Message::parse(Bytes::copy_from_slice(&msg)).is_err());
}

// ---- nesting depth ----------------------------------------------------------------------

fn nested_lists(depth: usize) -> Vec<u8> {
    let mut v = vec![0x45]; // list0 at the bottom
    for _ in 0..depth {
        let mut outer = vec![0xd0];
        outer.extend_from_slice(&((v.len() + 4) as u32).to_be_bytes());
        outer.extend_from_slice(&1u32.to_be_bytes());
        outer.extend_from_slice(&v);
        v = outer;
    }
    v
}

fn nested_arrays(depth: usize) -> Vec<u8> {
    // array32 of one array32 of ... of one uint
    let mut elem = vec![0, 0, 0, 6, 0, 0, 0, 1, 0x52, 7]; // array body: one smalluint
    for _ in 0..depth {
        let mut outer = Vec::new();
        outer.extend_from_slice(&((elem.len() + 5) as u32).to_be_bytes());
        outer.extend_from_slice(&1u32.to_be_bytes());
        outer.push(0xf0);
        outer.extend_from_slice(&elem);
        elem = outer;
    }
    let mut v = vec![0xf0];
    v.extend_from_slice(&elem);
    v
}

fn nested_maps(depth: usize) -> Vec<u8> {
    let mut v = vec![0x40];
    for _ in 0..depth {
        let mut outer = vec![0xd1];
        outer.extend_from_slice(&((v.len() + 5) as u32).to_be_bytes());
        outer.extend_from_slice(&2u32.to_be_bytes());
        outer.push(0x40); // key null
        outer.extend_from_slice(&v);
        v = outer;
    }
    v
}

#[test]
fn nesting_depth_bombs_are_too_deep() {
    let described_chain = {
        let mut v = vec![0x00; 100_000];
        v.push(0x40);
        v
    };
    for (name, bytes) in [
        ("lists", nested_lists(10_000)),
        ("arrays", nested_arrays(1_000)),
        ("maps", nested_maps(10_000)),
        ("described", described_chain.clone()),
    ] {
        let (r, _, _, took) = measured(|| read(&bytes));
        assert_eq!(r, Err(DecodeError::TooDeep), "{name}");
        assert!(took < Duration::from_millis(500), "{name}: {took:?}");
    }
    assert_eq!(skip(&described_chain), Err(DecodeError::TooDeep));
    // moderate nesting is fine
    assert!(read(&nested_lists(40)).is_ok());
    assert!(read(&nested_arrays(40)).is_ok());
    assert!(read(&nested_maps(40)).is_ok());
    // and through a message body and an attach's unsettled map
    let mut msg = vec![0x00, 0x53, 0x77];
    msg.extend_from_slice(&nested_lists(1000));
    let m = Message::parse(Bytes::from(msg)).unwrap();
    assert_eq!(m.body(), Err(DecodeError::TooDeep));
    let attach = Attach {
        name: "l".into(),
        ..Attach::default()
    };
    let mut body = BytesMut::new();
    attach.encode(&mut body);
    // replace the list0 of a minimal attach by one with a deep `unsettled` field
    let mut deep = vec![0x00, 0x53, 0x12, 0xd0];
    let mut fields = vec![0xa1, 0x01, b'l', 0x43, 0x42, 0x40, 0x40, 0x40, 0x40];
    fields.extend_from_slice(&nested_maps(200));
    deep.extend_from_slice(&((fields.len() + 4) as u32).to_be_bytes());
    deep.extend_from_slice(&8u32.to_be_bytes());
    deep.extend_from_slice(&fields);
    let mut f = ((8 + deep.len()) as u32).to_be_bytes().to_vec();
    f.extend_from_slice(&[2, 0, 0, 0]);
    f.extend_from_slice(&deep);
    assert_eq!(
        frame::decode_frame(&mut BytesMut::from(&f[..]), 1 << 20),
        Err(FrameError::Decode(DecodeError::TooDeep))
    );
}

// ---- invalid content ----------------------------------------------------------------------

#[test]
fn invalid_utf8_chars_and_booleans_are_errors() {
    assert_eq!(
        read(&[0xa1, 0x02, 0xff, 0xfe]),
        Err(DecodeError::InvalidUtf8)
    );
    assert_eq!(
        read(&[0xb1, 0, 0, 0, 2, 0xc3, 0x28]),
        Err(DecodeError::InvalidUtf8)
    );
    assert_eq!(read(&[0xa3, 0x01, 0x80]), Err(DecodeError::InvalidUtf8));
    // a lone surrogate encoded as UTF-8
    assert_eq!(
        read(&[0xa1, 0x03, 0xed, 0xa0, 0x80]),
        Err(DecodeError::InvalidUtf8)
    );
    assert_eq!(
        read(&[0x73, 0x00, 0x00, 0xd8, 0x00]),
        Err(DecodeError::InvalidChar(0xd800))
    );
    assert_eq!(
        read(&[0x73, 0x00, 0x11, 0x00, 0x00]),
        Err(DecodeError::InvalidChar(0x110000))
    );
    assert_eq!(
        read(&[0x73, 0xff, 0xff, 0xff, 0xff]),
        Err(DecodeError::InvalidChar(0xffff_ffff))
    );
    assert!(matches!(read(&[0x56, 0x02]), Err(DecodeError::Invalid(_))));
    assert!(matches!(read(&[0x56, 0xff]), Err(DecodeError::Invalid(_))));
    // the same inside an array and inside performative fields
    assert!(matches!(
        read(&[0xe0, 0x03, 0x01, 0x56, 0x07]),
        Err(DecodeError::Invalid(_))
    ));
    assert_eq!(
        read(&[0xe0, 0x04, 0x01, 0xa1, 0x01, 0xff]),
        Err(DecodeError::InvalidUtf8)
    );
    // @open [<container-id "\xff">]
    let open = [0x00, 0x53, 0x10, 0xc0, 0x04, 0x01, 0xa1, 0x01, 0xff];
    assert_eq!(
        Performative::decode(&mut Decoder::new(&Bytes::copy_from_slice(&open))),
        Err(DecodeError::InvalidUtf8)
    );
    // @detach [0, <closed: boolean byte 2>]
    let detach = [0x00, 0x53, 0x16, 0xc0, 0x04, 0x02, 0x43, 0x56, 0x02];
    assert!(Performative::decode(&mut Decoder::new(&Bytes::copy_from_slice(&detach))).is_err());
    // reserved format codes
    for code in [0x01u8, 0x3f, 0x57, 0x90, 0xa2, 0xff] {
        assert_eq!(
            read(&[code, 0, 0, 0, 0]),
            Err(DecodeError::InvalidCode(code))
        );
        assert_eq!(
            skip(&[code, 0, 0, 0, 0]),
            Err(DecodeError::InvalidCode(code))
        );
    }
}

/// Compound sizes that disagree with their contents are refused.
#[test]
fn inconsistent_compound_sizes_are_errors() {
    for bytes in [
        &[0xc0, 0x00][..],                              // size below the count byte
        &[0xd0, 0, 0, 0, 3, 0, 0, 0],                   // size below the count
        &[0xc0, 0x03, 0x01, 0x43, 0x43],                // one element, two bytes of room
        &[0xc0, 0x02, 0x02, 0x43],                      // two elements, one byte of room
        &[0xc1, 0x02, 0x01, 0x43],                      // a map with an odd count
        &[0xc0, 0x02, 0x01, 0xa1, 0x05, 1, 2, 3, 4, 5], // an element overrunning the list
        &[0xe0, 0x03, 0x02, 0x50, 0x01],                // an array one element short
        &[0xe0, 0x04, 0x01, 0x50, 0x01, 0x02],          // an array with a stray byte
    ] {
        assert!(
            read(bytes).is_err(),
            "{bytes:02x?} decoded as {:?}",
            read(bytes)
        );
    }
}

// ---- framing ------------------------------------------------------------------------------

#[test]
fn oversized_frames_are_refused_before_their_body_arrives() {
    let header = |size: u32, doff: u8, ty: u8| {
        let mut b = BytesMut::new();
        b.extend_from_slice(&size.to_be_bytes());
        b.extend_from_slice(&[doff, ty, 0, 0]);
        b
    };
    // only the 8 header bytes are there: the size alone is enough to refuse
    let (r, largest, _, _) =
        measured(|| frame::decode_frame(&mut header(0xffff_ffff, 2, 0), 65536));
    assert_eq!(
        r,
        Err(FrameError::TooLarge {
            size: 0xffff_ffff,
            max: 65536
        })
    );
    assert!(
        largest < 1024,
        "allocated {largest} bytes for a refused frame"
    );
    assert!(matches!(
        frame::decode_frame(&mut header(65537, 2, 0), 65536),
        Err(FrameError::TooLarge { .. })
    ));
    assert!(matches!(
        frame::decode_frame(&mut header(513, 2, 0), 512),
        Err(FrameError::TooLarge { .. })
    ));
    // exactly the maximum is waited for
    assert_eq!(
        frame::decode_frame(&mut header(65536, 2, 0), 65536),
        Ok(None)
    );
    // malformed headers
    for (size, doff) in [(0, 2), (7, 2), (8, 0), (8, 1), (8, 3), (16, 5)] {
        assert!(
            matches!(
                frame::decode_frame(&mut header(size, doff, 0), 65536),
                Err(FrameError::BadHeader { .. })
            ),
            "size {size} doff {doff}"
        );
    }
    // an unknown frame type, with and without a body
    let mut f = header(8, 2, 7);
    assert_eq!(
        frame::decode_frame(&mut f, 512),
        Err(FrameError::UnknownType(7))
    );
    let mut f = header(12, 2, 7);
    f.extend_from_slice(&[0x00, 0x53, 0x18, 0x45]);
    assert_eq!(
        frame::decode_frame(&mut f, 512),
        Err(FrameError::UnknownType(7))
    );
    // an extended header (doff 3) is skipped
    let mut f = header(16, 3, 0);
    f.extend_from_slice(&[9, 9, 9, 9, 0x00, 0x53, 0x18, 0x45]);
    assert!(matches!(
        frame::decode_frame(&mut f, 512),
        Ok(Some(Frame::Amqp {
            performative: Performative::Close(_),
            ..
        }))
    ));
    // bytes after a non-transfer performative, and after a SASL frame
    let mut f = header(14, 2, 0);
    f.extend_from_slice(&[0x00, 0x53, 0x18, 0x45, 1, 2]);
    assert!(matches!(
        frame::decode_frame(&mut f, 512),
        Err(FrameError::Decode(_))
    ));
    let mut f = header(16, 2, 1);
    f.extend_from_slice(&[0x00, 0x53, 0x42, 0xc0, 0x03, 0x01, 0xa0, 0x00]);
    f.truncate(16);
    let mut g = f.clone();
    g[3] = 17;
    g.extend_from_slice(&[0x40]);
    assert!(frame::decode_frame(&mut f, 512).unwrap().is_some());
    assert!(matches!(
        frame::decode_frame(&mut g, 512),
        Err(FrameError::Decode(_))
    ));
    // an empty SASL frame
    assert!(frame::decode_frame(&mut header(8, 2, 1), 512).is_err());
}

// ---- the engine ---------------------------------------------------------------------------

fn t0() -> Instant {
    Instant::now()
}

/// A server that has answered a client's AMQP header and open (no SASL).
fn open_server(now: Instant) -> Connection {
    let mut cfg = ConnectionConfig::server("server");
    cfg.max_frame_size = 4096;
    cfg.channel_max = 7;
    let mut s = Connection::new(cfg, now);
    s.handle_input(&AMQP_HEADER, now);
    let open = Open {
        container_id: "client".into(),
        ..Open::default()
    };
    s.handle_input(&perf_frame(0, &Performative::Open(open)), now);
    let out = s.output().split();
    let units = read_units(&out);
    assert_eq!(units[0], Unit::Header(AMQP_HEADER));
    assert!(matches!(
        units[1],
        Unit::Frame(Frame::Amqp {
            performative: Performative::Open(_),
            ..
        })
    ));
    assert!(matches!(s.poll_event(), Some(Event::Opened(_))));
    assert_eq!(s.poll_event(), None);
    s
}

/// Feeds `bytes` and checks the server closed with `condition`: a close frame carrying it
/// is written, and Event::Closed reports it.
fn assert_closes_with(s: &mut Connection, bytes: &[u8], condition: &str) {
    s.handle_input(bytes, t0());
    let out = s.output().split();
    let closes: Vec<_> = performatives(&read_frames(&out))
        .into_iter()
        .filter_map(|p| {
            if let Performative::Close(c) = p {
                Some(c)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(
        closes.len(),
        1,
        "expected one close frame, wrote {out:02x?}"
    );
    let err = closes[0].error.as_ref().expect("close carries an error");
    assert_eq!(err.condition.as_str(), condition, "{err:?}");
    let events: Vec<Event> = std::iter::from_fn(|| s.poll_event()).collect();
    let closed = events.iter().find_map(|e| match e {
        Event::Closed { error, by_peer } => Some((error.clone(), *by_peer)),
        _ => None,
    });
    let (error, by_peer) = closed.unwrap_or_else(|| panic!("no Closed event in {events:?}"));
    assert!(!by_peer);
    assert_eq!(error.unwrap().condition.as_str(), condition);
    assert!(s.is_closed());
    // nothing more is read or written
    s.handle_input(
        &perf_frame(0, &Performative::Close(Close { error: None })),
        t0(),
    );
    assert!(!s.has_output());
    assert_eq!(s.poll_event(), None);
}

#[test]
fn undecodable_frame_closes_with_decode_error() {
    // a well-framed body that is not a performative
    let mut s = open_server(t0());
    assert_closes_with(
        &mut s,
        &[0, 0, 0, 12, 2, 0, 0, 0, 0x00, 0x53, 0x99, 0x45],
        condition::DECODE_ERROR,
    );
    // a begin whose list is cut short inside its frame
    let mut s = open_server(t0());
    assert_closes_with(
        &mut s,
        &[0, 0, 0, 14, 2, 0, 0, 0, 0x00, 0x53, 0x11, 0xc0, 0x05, 0x04],
        condition::DECODE_ERROR,
    );
    // a begin with a mandatory field missing
    let mut s = open_server(t0());
    assert_closes_with(
        &mut s,
        &[0, 0, 0, 12, 2, 0, 0, 0, 0x00, 0x53, 0x11, 0x45],
        condition::DECODE_ERROR,
    );
    // invalid UTF-8 in an attach name
    let mut s = open_server(t0());
    let begin = Begin {
        next_outgoing_id: 0,
        incoming_window: 10,
        outgoing_window: 10,
        ..Begin::default()
    };
    s.handle_input(&perf_frame(0, &Performative::Begin(begin)), t0());
    let _ = s.output().split();
    let body = [
        0x00, 0x53, 0x12, 0xc0, 0x06, 0x03, 0xa1, 0x01, 0xff, 0x43, 0x42,
    ];
    let mut f = ((8 + body.len()) as u32).to_be_bytes().to_vec();
    f.extend_from_slice(&[2, 0, 0, 0]);
    f.extend_from_slice(&body);
    assert_closes_with(&mut s, &f, condition::DECODE_ERROR);
}

#[test]
fn bad_frames_close_with_framing_error() {
    // a frame header with doff 1
    let mut s = open_server(t0());
    assert_closes_with(&mut s, &[0, 0, 0, 8, 1, 0, 0, 0], condition::FRAMING_ERROR);
    // a size below the header
    let mut s = open_server(t0());
    assert_closes_with(&mut s, &[0, 0, 0, 4, 2, 0, 0, 0], condition::FRAMING_ERROR);
    // larger than our max-frame-size (4096), refused on its header alone
    let mut s = open_server(t0());
    assert_closes_with(
        &mut s,
        &[0, 0, 0x10, 0x01, 2, 0, 0, 0],
        condition::FRAMING_ERROR,
    );
    // an unknown frame type
    let mut s = open_server(t0());
    assert_closes_with(
        &mut s,
        &[0, 0, 0, 12, 2, 9, 0, 0, 0x00, 0x53, 0x18, 0x45],
        condition::FRAMING_ERROR,
    );
    // a SASL frame once the AMQP layer is up
    let mut s = open_server(t0());
    let mut f = BytesMut::new();
    frame::write_sasl(
        &mut f,
        &SaslFrame::Outcome(SaslOutcome {
            code: 0,
            additional_data: None,
        }),
    );
    assert_closes_with(&mut s, &f, condition::FRAMING_ERROR);
    // a begin on a channel above our channel-max (7)
    let mut s = open_server(t0());
    let begin = Begin {
        next_outgoing_id: 0,
        incoming_window: 10,
        outgoing_window: 10,
        ..Begin::default()
    };
    assert_closes_with(
        &mut s,
        &perf_frame(8, &Performative::Begin(begin)),
        condition::FRAMING_ERROR,
    );
}

#[test]
fn a_failed_connection_reports_its_links_and_sessions_gone() {
    let mut s = open_server(t0());
    let begin = Begin {
        next_outgoing_id: 0,
        incoming_window: 10,
        outgoing_window: 10,
        ..Begin::default()
    };
    s.handle_input(&perf_frame(0, &Performative::Begin(begin)), t0());
    let attach = Attach {
        name: "l".into(),
        handle: 0,
        role: Role::Sender,
        ..Attach::default()
    };
    s.handle_input(
        &perf_frame(0, &Performative::Attach(Box::new(attach))),
        t0(),
    );
    let events: Vec<Event> = std::iter::from_fn(|| s.poll_event()).collect();
    let link = events
        .iter()
        .find_map(|e| {
            if let Event::AttachRequested { link, .. } = e {
                Some(*link)
            } else {
                None
            }
        })
        .unwrap();
    let _ = s.output().split();
    s.handle_input(&[0, 0, 0, 8, 0, 0, 0, 0], t0()); // doff 0
    let events: Vec<Event> = std::iter::from_fn(|| s.poll_event()).collect();
    assert!(
        events.contains(&Event::Detached {
            link,
            closed: false,
            error: None
        }),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::SessionEnded { .. })),
        "{events:?}"
    );
    assert!(matches!(
        events.last(),
        Some(Event::Closed { by_peer: false, .. })
    ));
}

/// A simple xorshift generator: deterministic garbage without extra dependencies.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn garbage_after_the_header_closes_the_connection() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..2000 {
        let mut s = open_server(t0());
        let len = (xorshift(&mut seed) % 64) as usize + 8;
        let mut garbage: Vec<u8> = (0..len).map(|_| xorshift(&mut seed) as u8).collect();
        if round % 2 == 0 {
            // a plausible frame size so the body gets decoded
            garbage[..4].copy_from_slice(&(len as u32).to_be_bytes());
            garbage[4] = 2;
            garbage[5] = (round % 4 / 2) as u8;
        }
        s.handle_input(&garbage, t0());
        if !s.is_closed() {
            // waiting for the rest of a frame: the rest is garbage too, up to the max size
            let pad: Vec<u8> = (0..4096).map(|_| xorshift(&mut seed) as u8).collect();
            s.handle_input(&pad, t0());
        }
        assert!(
            s.is_closed(),
            "round {round}: still open after {garbage:02x?}"
        );
        let frames = read_frames(&s.output().split());
        let Some(Performative::Close(Close { error: Some(e) })) = performatives(&frames).pop()
        else {
            panic!("round {round}: no close with an error for {garbage:02x?}");
        };
        assert!(
            [condition::DECODE_ERROR, condition::FRAMING_ERROR].contains(&e.condition.as_str()),
            "round {round}: {e:?}"
        );
    }
}

#[test]
fn garbage_instead_of_a_header_or_during_sasl_ends_the_connection() {
    // not a protocol header at all: we answer with ours and stop
    let mut s = Connection::new(ConnectionConfig::server("s"), t0());
    s.handle_input(b"GET / HTTP/1.1\r\n\r\n", t0());
    assert_eq!(&s.output().split()[..], &SASL_HEADER);
    assert!(s.is_closed());
    assert!(matches!(
        s.poll_event(),
        Some(Event::Closed {
            error: Some(_),
            by_peer: false
        })
    ));
    // garbage where sasl-init should be: no AMQP close can be sent before open
    let mut s = Connection::new(ConnectionConfig::server("s"), t0());
    s.handle_input(&SASL_HEADER, t0());
    let _ = s.output().split();
    s.handle_input(&[0, 0, 0, 12, 2, 1, 0, 0, 0x00, 0x53, 0x99, 0x45], t0());
    assert!(s.is_closed());
    assert!(matches!(
        s.poll_event(),
        Some(Event::Closed {
            error: Some(_),
            by_peer: false
        })
    ));
    // an AMQP frame during SASL
    let mut s = Connection::new(ConnectionConfig::server("s"), t0());
    s.handle_input(&SASL_HEADER, t0());
    s.handle_input(
        &perf_frame(0, &Performative::Close(Close { error: None })),
        t0(),
    );
    assert!(s.is_closed());
    // frames before open
    let mut s = Connection::new(ConnectionConfig::server("s"), t0());
    s.handle_input(&AMQP_HEADER, t0());
    let _ = s.output().split();
    let begin = Begin {
        next_outgoing_id: 0,
        incoming_window: 1,
        outgoing_window: 1,
        ..Begin::default()
    };
    assert_closes_with(
        &mut s,
        &perf_frame(0, &Performative::Begin(begin)),
        condition::ILLEGAL_STATE,
    );
}
