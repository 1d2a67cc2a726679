//! CRC-32C (Castagnoli), the checksum of every journal and page-file record.
//!
//! CRC-32C rather than the zip CRC-32 because it detects more error patterns in the
//! record sizes we write, CPUs compute it in hardware (SSE 4.2 `crc32`, ARMv8 CRC), and
//! it is what other storage formats (ext4, iSCSI, RocksDB, Kafka) use, so external tools
//! can check our files. The `crc32c` crate picks the hardware instruction at run time
//! and falls back to software; the table-driven software version we had before cost a
//! third of the CPU of durable paged traffic in a profile (docs/BENCHMARKS.md).

/// The reflected Castagnoli polynomial (for the reference implementation in the tests).
#[cfg(test)]
const POLY: u32 = 0x82F6_3B78;

/// An incremental CRC-32C, so a record's checksum can be computed over its pieces
/// (header fields, queue name, message bytes) without first copying them together.
#[derive(Debug, Clone, Copy, Default)]
pub struct Crc32c(u32);

impl Crc32c {
    /// Starts a checksum.
    pub fn new() -> Self {
        Crc32c(0)
    }

    /// Folds `data` in.
    pub fn update(&mut self, data: &[u8]) {
        self.0 = crc32c::crc32c_append(self.0, data);
    }

    /// The checksum of everything folded in so far.
    pub fn finish(&self) -> u32 {
        self.0
    }
}

/// The CRC-32C of `data` in one call.
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook bit-at-a-time definition, to check the fast version against.
    fn crc32c_bitwise(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ POLY
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn known_vectors() {
        // RFC 3720 (iSCSI) appendix B.4.
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62A8_AB43);
        let inc: Vec<u8> = (0u8..32).collect();
        assert_eq!(crc32c(&inc), 0x46DD_794E);
        let dec: Vec<u8> = (0u8..32).rev().collect();
        assert_eq!(crc32c(&dec), 0x113F_DB5C);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn fast_matches_bitwise_and_incremental() {
        let mut x = 0x1234_5678u32;
        let data: Vec<u8> = (0..1000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        for len in 0..80 {
            assert_eq!(
                crc32c(&data[..len]),
                crc32c_bitwise(&data[..len]),
                "len {len}"
            );
        }
        assert_eq!(crc32c(&data), crc32c_bitwise(&data));
        for split in [0, 1, 3, 7, 8, 9, 500, 999, 1000] {
            let mut c = Crc32c::new();
            c.update(&data[..split]);
            c.update(&data[split..]);
            assert_eq!(c.finish(), crc32c(&data), "split {split}");
        }
    }
}
