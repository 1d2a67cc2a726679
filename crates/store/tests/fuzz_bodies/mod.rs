//! Bodies of the store's fuzz targets, shared by `fuzz/fuzz_targets` and
//! `tests/fuzz_smoke.rs` (deterministic inputs on every `cargo test`).

use throng_store::WillRecord;

/// Decodes arbitrary bytes as a stored will; whatever decodes must encode back to the
/// same bytes (no information is dropped or invented on the way).
pub fn will_decode(data: &[u8]) {
    if let Ok(w) = WillRecord::decode(data) {
        let again = w.encode().expect("decoded names fit");
        assert_eq!(again, data, "a decoded will re-encodes to its bytes");
    }
}
