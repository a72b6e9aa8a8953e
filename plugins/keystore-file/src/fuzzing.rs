//! Entry points for the fuzz targets in `fuzz/` (not an API: hidden from the docs).
//!
//! The key store reads PKCS#12 files by path; fuzzing needs the reader on bytes.

use smimekit_core::{KeyStoreError, Secret};

use crate::Bundle;

/// Reads PKCS#12 bytes as [`crate::read_bundle`] reads a file.
pub fn read_p12(data: &[u8], password: Option<&Secret>) -> Result<Bundle, KeyStoreError> {
    crate::p12::read("fuzz input", data, password)
}
