//! Local-directory figures for `cargo xtask bench-store`: the store-backed directory against
//! the JSON file it replaced, at the same size, in the same run.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use smimekit_core::store::{AuditEntry, DirectoryData, ImportMode, LazyStore, Store, StoreError};
use smimekit_core::{
    CertDer, Directory, DirectoryError, Mailbox, PublishMode, Recipient, RecipientKind,
};

use crate::LocalDirectory;
use crate::json_baseline::JsonFile;

/// The JSON file directory (before the store), measured by [`bench_publish_lookup`].
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct BenchFigures {
    pub recipients: usize,
    /// Certificates published per second in batches of [`BATCH`] (one file write per batch).
    pub publish_per_s: f64,
    /// Single publishes per second on the full directory: one whole-file rewrite each.
    pub single_publish_per_s: f64,
    /// Lookups per second from the cached copy (one `stat` each).
    pub lookup_per_s: f64,
    /// Size of the file.
    pub file_bytes: u64,
}

/// The store-backed directory, measured by [`bench_store`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoreBenchFigures {
    pub store: String,
    pub recipients: usize,
    /// Seconds to import all recipients (one transaction).
    pub import_s: f64,
    /// Single publishes per second, each a publish transaction, the read-back of the
    /// recipient and an audit row.
    pub single_publish_per_s: f64,
    pub single_publishes: usize,
    /// Lookups per second through the `Directory` port.
    pub lookup_per_s: f64,
    /// The same two rates per CPU-second of the process (what a busy machine does not skew;
    /// for PostgreSQL the server's work is not counted, so use the wall-clock rates there).
    pub cpu_single_publish_per_s: f64,
    pub cpu_lookup_per_s: f64,
}

/// Certificates per write in the batched publish of the JSON baseline.
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

fn recipients(n: usize) -> Result<Vec<Recipient>, DirectoryError> {
    (0..n)
        .map(|i| {
            Ok(Recipient {
                address: address(i)?,
                kind: RecipientKind::Mailbox,
                certificates: vec![fake_cert(i, 1200)],
            })
        })
        .collect()
}

fn rate(count: usize, secs: f64) -> f64 {
    count as f64 / secs.max(1e-9)
}

/// The JSON baseline: `n` recipients published in batches into a new file under `dir`, a
/// few single publishes on the full file, then every recipient looked up.
pub fn bench_publish_lookup(dir: &Path, n: usize) -> Result<BenchFigures, DirectoryError> {
    let path = dir.join("bench-directory.json");
    let _ = std::fs::remove_file(&path);
    let file = JsonFile { path: path.clone() };
    let all = recipients(n)?;

    let start = Instant::now();
    for chunk in all.chunks(BATCH) {
        file.write(|d| d.recipients.extend(chunk.iter().cloned()))?;
    }
    let publish_s = start.elapsed().as_secs_f64();

    let singles = 20.min(n.max(1));
    let start = Instant::now();
    for i in 0..singles {
        let key = address(i)?.key();
        let back = file.write(|d| {
            if let Some(r) = d.recipients.iter_mut().find(|r| r.address.key() == key) {
                r.certificates.push(fake_cert(n + i, 1200));
            }
        })?;
        // The old read-back: the recipient in what was read from disk.
        let _ = back.recipients.iter().find(|r| r.address.key() == key);
    }
    let single_s = start.elapsed().as_secs_f64();

    let index = file.index()?;
    let start = Instant::now();
    let mut found = 0usize;
    for r in &all {
        // The old handle checked the file's identity before each cached read.
        let _ = std::fs::metadata(&path);
        if index
            .get(&r.address.key())
            .is_some_and(|r| !r.certificates.is_empty())
        {
            found += 1;
        }
    }
    let lookup_s = start.elapsed().as_secs_f64();
    if found != n {
        return Err(DirectoryError::Other(format!(
            "JSON benchmark found {found} of {n} recipients"
        )));
    }
    let file_bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(dir.join("bench-directory.json.lock"));
    Ok(BenchFigures {
        recipients: n,
        publish_per_s: rate(n, publish_s),
        single_publish_per_s: rate(singles, single_s),
        lookup_per_s: rate(n, lookup_s),
        file_bytes,
    })
}

/// The store-backed directory (directory `bench` in `store`, which should be empty): `n`
/// recipients imported, `singles` single publishes each with its read-back and an audit
/// row, then every recipient looked up through the port.
/// `cpu` reads the process's CPU time (the caller has the clock: this crate does no FFI).
pub async fn bench_store(
    store: Arc<dyn Store>,
    n: usize,
    singles: usize,
    cpu: fn() -> std::time::Duration,
) -> Result<StoreBenchFigures, DirectoryError> {
    let st = |e: StoreError| crate::store_err(e);
    let data = DirectoryData {
        recipients: recipients(n)?,
        trust_chain: Vec::new(),
    };
    let start = Instant::now();
    store
        .import_directory("bench", &data, ImportMode::Replace, None)
        .await
        .map_err(st)?;
    let import_s = start.elapsed().as_secs_f64();

    let lazy = Arc::new(LazyStore::ready(store.clone()));
    // No JSON file to import: a path that does not exist.
    let dir = LocalDirectory::open("bench", "/nonexistent/bench-directory.json", lazy);
    let (start, cpu_start) = (Instant::now(), cpu());
    for i in 0..singles {
        let who = address(i % n.max(1))?;
        let cert = fake_cert(n + i, 1200);
        let before = dir.lookup(&who).await?;
        dir.publish(&who, RecipientKind::Mailbox, &cert, PublishMode::Merge)
            .await?;
        let back = dir.recipient(&who).await?.map(|r| r.certificates);
        if !back.as_ref().is_some_and(|b| b.contains(&cert)) {
            return Err(DirectoryError::ReadBackMismatch {
                address: who,
                detail: "benchmark publish not read back".into(),
            });
        }
        store
            .audit_append(&AuditEntry {
                time: i as i64,
                actor: "bench".into(),
                frontend: "bench".into(),
                operation: "publish".into(),
                directory: "bench".into(),
                address: who.to_string(),
                // Stand-in thumbprints: one per certificate before and after.
                before: (0..before.len()).map(|k| format!("{k:040x}")).collect(),
                after: (0..back.map_or(0, |b| b.len()))
                    .map(|k| format!("{k:040x}"))
                    .collect(),
                result: "ok".into(),
            })
            .await
            .map_err(st)?;
    }
    let single_s = start.elapsed().as_secs_f64();
    let single_cpu_s = (cpu() - cpu_start).as_secs_f64();

    let (start, cpu_start) = (Instant::now(), cpu());
    let mut found = 0usize;
    for r in &data.recipients {
        if !dir.lookup(&r.address).await?.is_empty() {
            found += 1;
        }
    }
    let lookup_s = start.elapsed().as_secs_f64();
    let lookup_cpu_s = (cpu() - cpu_start).as_secs_f64();
    if found != n {
        return Err(DirectoryError::Other(format!(
            "store benchmark found {found} of {n} recipients"
        )));
    }
    Ok(StoreBenchFigures {
        store: store.describe(),
        recipients: n,
        import_s,
        single_publish_per_s: rate(singles, single_s),
        single_publishes: singles,
        lookup_per_s: rate(n, lookup_s),
        cpu_single_publish_per_s: rate(singles, single_cpu_s),
        cpu_lookup_per_s: rate(n, lookup_cpu_s),
    })
}
