//! Publish + lookup figures for `cargo xtask bench`.

use std::path::Path;
use std::time::Instant;

use smimekit_core::{CertDer, DirectoryError, Mailbox, PublishMode, RecipientKind};

use crate::LocalDirectory;

/// What [`bench_publish_lookup`] measured.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct BenchFigures {
    pub recipients: usize,
    /// Certificates published per second through [`LocalDirectory::publish_batch`] in
    /// batches of [`BATCH`] (one atomic write per batch).
    pub publish_per_s: f64,
    /// Single `publish` calls per second on the full directory (one atomic write each:
    /// what one `smimekit publish` costs).
    pub single_publish_per_s: f64,
    /// Lookups per second through a fresh handle (its first lookup loads the file).
    pub lookup_per_s: f64,
    /// Size of the directory file afterwards.
    pub file_bytes: u64,
}

/// Certificates per write in the batched publish.
pub const BATCH: usize = 1000;

/// A stand-in certificate: 1,200 bytes (a typical RSA-2048 S/MIME certificate) that differ
/// per recipient. The directory stores values; it does not parse them.
fn fake_cert(i: usize, size: usize) -> CertDer {
    let mut v = Vec::with_capacity(size);
    v.extend_from_slice(&[0x30, 0x82, 0x04, 0xac]);
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while v.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(size);
    CertDer::new(v)
}

fn address(i: usize) -> Result<Mailbox, DirectoryError> {
    Mailbox::parse(&format!("user{i}@bench.example"))
        .map_err(|e| DirectoryError::Other(e.to_string()))
}

/// Publishes `n` recipients into a new directory file under `dir` (batched), publishes a few
/// single certificates on top, then looks every recipient up through a fresh handle.
pub fn bench_publish_lookup(dir: &Path, n: usize) -> Result<BenchFigures, DirectoryError> {
    let path = dir.join("bench-directory.json");
    let _ = std::fs::remove_file(&path);
    let d = LocalDirectory::open("bench", &path);
    let mut items = Vec::with_capacity(n);
    for i in 0..n {
        items.push((address(i)?, RecipientKind::Mailbox, fake_cert(i, 1200)));
    }

    let start = Instant::now();
    for chunk in items.chunks(BATCH) {
        d.publish_batch(chunk, PublishMode::Merge)?;
    }
    let publish_s = start.elapsed().as_secs_f64();

    let singles = 20.min(n.max(1));
    let start = Instant::now();
    for i in 0..singles {
        d.publish_now(
            &address(i)?,
            RecipientKind::Mailbox,
            &fake_cert(n + i, 1200),
            PublishMode::Merge,
            &[],
        )?;
    }
    let single_s = start.elapsed().as_secs_f64();

    let fresh = LocalDirectory::open("bench", &path);
    let start = Instant::now();
    let mut found = 0usize;
    for (a, _, _) in &items {
        if fresh.find(a)?.is_some_and(|r| !r.certificates.is_empty()) {
            found += 1;
        }
    }
    let lookup_s = start.elapsed().as_secs_f64();
    if found != n {
        return Err(DirectoryError::ReadBackMismatch {
            address: address(0)?,
            detail: format!("benchmark found {found} of {n} recipients"),
        });
    }
    let file_bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(dir.join("bench-directory.json.lock"));
    let rate = |count: usize, secs: f64| count as f64 / secs.max(1e-9);
    Ok(BenchFigures {
        recipients: n,
        publish_per_s: rate(n, publish_s),
        single_publish_per_s: rate(singles, single_s),
        lookup_per_s: rate(n, lookup_s),
        file_bytes,
    })
}
