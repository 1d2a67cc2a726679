//! The variable byte integer (remaining length, property lengths, subscription
//! identifiers): 7 bits per byte, at most 4 bytes, minimal encoding only.

use super::DecodeError;
use bytes::BufMut;

/// The largest value a variable byte integer can hold.
pub const MAX: u32 = 268_435_455;

/// Decodes a variable byte integer from the start of `buf`: `Ok(None)` when `buf` ends
/// before the integer does, else the value and the bytes it used. More than 4 bytes, or a
/// non-minimal encoding, is a malformed packet.
pub fn read(buf: &[u8]) -> Result<Option<(u32, usize)>, DecodeError> {
    let mut value = 0u32;
    for i in 0..4 {
        let Some(&b) = buf.get(i) else {
            return Ok(None);
        };
        value |= ((b & 0x7f) as u32) << (7 * i);
        if b & 0x80 == 0 {
            if b == 0 && i > 0 {
                return Err(DecodeError::malformed(
                    "variable byte integer not minimally encoded",
                ));
            }
            return Ok(Some((value, i + 1)));
        }
    }
    Err(DecodeError::malformed(
        "variable byte integer longer than 4 bytes",
    ))
}

/// How many bytes `v` takes encoded.
pub fn len(v: u32) -> usize {
    match v {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Writes `v` (values above [`MAX`] are clamped; callers never produce them).
pub fn write(out: &mut impl BufMut, v: u32) {
    let mut v = v.min(MAX);
    loop {
        let mut b = (v & 0x7f) as u8;
        v >>= 7;
        if v > 0 {
            b |= 0x80;
        }
        out.put_u8(b);
        if v == 0 {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_round_trip() {
        for v in [0, 1, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, MAX] {
            let mut b = Vec::new();
            write(&mut b, v);
            assert_eq!(b.len(), len(v));
            assert_eq!(read(&b).unwrap(), Some((v, b.len())));
        }
    }

    #[test]
    fn spec_examples() {
        assert_eq!(read(&[0x00]).unwrap(), Some((0, 1)));
        assert_eq!(read(&[0x7f]).unwrap(), Some((127, 1)));
        assert_eq!(read(&[0x80, 0x01]).unwrap(), Some((128, 2)));
        assert_eq!(read(&[0xff, 0xff, 0xff, 0x7f]).unwrap(), Some((MAX, 4)));
    }

    #[test]
    fn rejects_five_bytes_and_non_minimal() {
        assert!(read(&[0xff, 0xff, 0xff, 0xff, 0x01]).is_err());
        assert!(read(&[0x80, 0x00]).is_err());
        assert_eq!(read(&[0x80, 0x80]).unwrap(), None);
    }
}
