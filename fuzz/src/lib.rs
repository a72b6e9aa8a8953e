//! What the fuzz targets share: a runtime for the async message API, the soft keys `open`
//! and the EnvelopedData target decrypt with, and the pinned validation time.
//!
//! The targets themselves are in `fuzz_targets/`, one file each; every one of them takes any
//! bytes and must neither panic nor hang, and the round-trip targets also assert that what a
//! writer produced reads back the same. Nothing here is used outside fuzzing.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use smimekit_core::{CryptoEngine, DecryptionKey, Secret};

/// 2026-01-01T00:00:00Z: certificate checks are made at a fixed time, so that a run
/// reproduces whatever day it is replayed.
pub const PINNED_UNIX: i64 = 1_767_225_600;

/// The OpenSSL engine every target uses.
pub fn engine() -> &'static CryptoEngine {
    smimekit_engine_openssl::engine()
}

/// Runs a future to completion on a current-thread runtime made once per thread.
pub fn block_on<F: Future>(f: F) -> F::Output {
    thread_local! {
        static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime");
    }
    RT.with(|rt| rt.block_on(f))
}

/// The workspace root (the fuzz crate's parent).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// The interop corpus: `$SMIMEKIT_CORPUS`, else `../shared/corpus` beside the workspace.
pub fn corpus() -> PathBuf {
    match std::env::var_os("SMIMEKIT_CORPUS") {
        Some(dir) => PathBuf::from(dir),
        None => root().join("../shared/corpus"),
    }
}

/// The soft keys the decrypting targets hold: the project's test PKI (alice RSA-2048, bob EC
/// P-256, carol EC P-384; always there), and when the interop corpus is present the keys
/// most of its encrypted messages are for (NSS's Bob, RSA; Fran's EC key), so that seeds
/// from the corpus get past the key unwrap into content decryption and the inner layers.
pub fn keys() -> &'static [DecryptionKey] {
    static KEYS: OnceLock<Vec<DecryptionKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let pki = root().join("tests/fixtures/pki");
        let corpus = corpus();
        let files: [(PathBuf, &str); 5] = [
            (pki.join("alice.p12"), "test"),
            (pki.join("bob.p12"), "test"),
            (pki.join("carol.p12"), "test"),
            (corpus.join("thunderbird-nss/smime/Bob.p12"), "nss"),
            (
                corpus.join("thunderbird-nss/smime-interop/Fran-ec.p12"),
                "nss",
            ),
        ];
        let mut keys = Vec::new();
        for (path, password) in files {
            if !path.exists() {
                continue;
            }
            let secret = Secret::new(password.as_bytes().to_vec());
            let bundle = smimekit_keystore_file::read_bundle(&path, Some(&secret))
                .unwrap_or_else(|e| panic!("fuzz key {}: {e}", path.display()));
            keys.push(
                bundle
                    .decryption_key(None)
                    .unwrap_or_else(|e| panic!("fuzz key {}: {e}", path.display())),
            );
        }
        keys
    })
}

/// The input as text when it is UTF-8 (text formats: TOML, JSON, CLIXML).
pub fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}
