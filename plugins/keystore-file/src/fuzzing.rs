//! Entry points for the fuzz targets in `fuzz/` (not an API: hidden from the docs).
//!
//! The key store reads PKCS#12 files by path; fuzzing needs the reader on bytes.

use smimekit_core::{KeyStoreError, Secret};

use crate::Bundle;
use crate::p12::Budget;

/// Iterations of one key derivation the fuzz target allows (the seeds use at most 2,048)…
pub const FUZZ_ITERATIONS: u64 = 4096;
/// …and of all the derivations of one input.
pub const FUZZ_TOTAL_ITERATIONS: u64 = 4 * FUZZ_ITERATIONS;

/// Reads PKCS#12 bytes as [`crate::read_bundle`] reads a file, but with smaller iteration
/// caps ([`FUZZ_ITERATIONS`], [`FUZZ_TOTAL_ITERATIONS`]) than the product's (10^6 and
/// 4·10^6): under the product's caps a mutated iteration count costs up to seconds of key
/// derivation, and a few such inputs in the corpus held the target at under 1,000 executions
/// a second. What a count at the caps costs is the adversarial benchmark's to measure; the
/// refusal is the same code, reached at a lower count.
pub fn read_p12(data: &[u8], password: Option<&Secret>) -> Result<Bundle, KeyStoreError> {
    let budget = Budget::new(FUZZ_ITERATIONS, FUZZ_TOTAL_ITERATIONS);
    crate::p12::read_within("fuzz input", data, password, &budget)
}
