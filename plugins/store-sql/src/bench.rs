//! Store figures for `cargo xtask bench-store`: the inventory's "expiring within 30 days"
//! query over many certificates, and concurrent writers on one recipient (no lost update).
//! Backend-neutral: the caller opens the store (SQLite file, PostgreSQL cluster).

use std::sync::Arc;
use std::time::Instant;

use smimekit_core::store::{CertFacts, InventoryQuery, Publish, Sighting, Store, StoreError};
use smimekit_core::{CertDer, Mailbox, PublishMode, RecipientKind};

/// What [`bench_inventory`] measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InventoryFigures {
    pub certificates: usize,
    /// Seconds to record them (in batches of 1,000 per transaction).
    pub record_s: f64,
    /// The query "expiring within 30 days" (all directories), median of the runs, ms.
    pub expiring_30d_ms: f64,
    /// The same for one directory of the four.
    pub expiring_30d_one_directory_ms: f64,
    /// Rows the query returned (all directories).
    pub expiring_rows: usize,
}

/// What [`bench_writers`] measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WriterFigures {
    pub writers: usize,
    pub publishes: usize,
    pub publishes_per_s: f64,
    /// Certificates the shared recipient holds afterwards (must equal `publishes`).
    pub held_afterwards: usize,
}

fn address(s: &str) -> Result<Mailbox, StoreError> {
    Mailbox::parse(s).map_err(|e| StoreError::Invalid(e.to_string()))
}

fn hex_of(i: u64, salt: u64) -> String {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt;
    let mut out = String::with_capacity(64);
    while out.len() < 64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push_str(&format!("{x:016x}"));
    }
    out.truncate(64);
    out
}

/// Records `n` certificates (four directories, validity ends spread over three years from
/// `now`), then times the expiring query `runs` times.
pub async fn bench_inventory(
    store: &dyn Store,
    n: usize,
    now: i64,
    runs: usize,
) -> Result<InventoryFigures, StoreError> {
    const DIRS: [&str; 4] = ["local", "corp-ldap", "exo", "partners"];
    const DAY: i64 = 86_400;
    let span = 3 * 365 * DAY;
    let start = Instant::now();
    let mut i = 0usize;
    while i < n {
        let end = (i + 1000).min(n);
        let mut owned = Vec::with_capacity(end - i);
        for j in i..end {
            let facts = CertFacts {
                sha1: hex_of(j as u64, 1)[..40].to_string(),
                sha256: hex_of(j as u64, 2),
                subject: format!("CN=User {j},O=Bench"),
                issuer: "CN=Bench Issuing CA,O=Bench".into(),
                serial: format!("{j:x}"),
                not_before: now - 365 * DAY,
                // A spread that puts about 1/36 of them in the next 30 days.
                not_after: now - DAY + (j as i64).wrapping_mul(7919) % span,
                key_type: "rsa2048".into(),
                source_attribute: None,
            };
            owned.push((
                DIRS[j % DIRS.len()],
                address(&format!("user{j}@bench.example"))?,
                facts,
            ));
        }
        let sightings: Vec<Sighting<'_>> = owned
            .iter()
            .map(|(d, a, f)| Sighting {
                directory: d,
                address: a,
                kind: Some(RecipientKind::Mailbox),
                certificates: std::slice::from_ref(f),
                time: now,
                published: false,
                complete: false,
            })
            .collect();
        store.inventory_record(&sightings).await?;
        i = end;
    }
    let record_s = start.elapsed().as_secs_f64();

    let time_query = async |directory: Option<&str>| -> Result<(f64, usize), StoreError> {
        let q = InventoryQuery {
            directory: directory.map(String::from),
            not_after_from: Some(now),
            not_after_until: Some(now + 30 * DAY),
            include_gone: false,
        };
        let mut times = Vec::with_capacity(runs.max(1));
        let mut rows = 0;
        for _ in 0..runs.max(1) {
            let t = Instant::now();
            rows = store.inventory(&q).await?.len();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        Ok((times[times.len() / 2], rows))
    };
    let (all_ms, rows) = time_query(None).await?;
    let (one_ms, _) = time_query(Some("corp-ldap")).await?;
    Ok(InventoryFigures {
        certificates: n,
        record_s,
        expiring_30d_ms: all_ms,
        expiring_30d_one_directory_ms: one_ms,
        expiring_rows: rows,
    })
}

/// `writers` tasks each publish `per_writer` distinct certificates (Merge) to one shared
/// recipient of directory `directory`, all at once. Nothing may be lost.
pub async fn bench_writers(
    store: Arc<dyn Store>,
    directory: &str,
    writers: usize,
    per_writer: usize,
) -> Result<WriterFigures, StoreError> {
    let shared = address("shared@bench.example")?;
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(writers);
    for w in 0..writers {
        let (store, shared, directory) = (store.clone(), shared.clone(), directory.to_string());
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                let cert = CertDer::new(format!("0\u{1}bench {w} {i}").into_bytes());
                store
                    .publish(
                        &directory,
                        &Publish {
                            address: &shared,
                            kind: RecipientKind::Mailbox,
                            certificate: &cert,
                            mode: PublishMode::Merge,
                            remove: &[],
                        },
                    )
                    .await?;
            }
            Ok::<_, StoreError>(())
        }));
    }
    for t in tasks {
        t.await
            .map_err(|e| StoreError::Unavailable(format!("writer task: {e}")))??;
    }
    let secs = start.elapsed().as_secs_f64();
    let held = store
        .recipient(directory, &shared)
        .await?
        .map_or(0, |r| r.certificates.len());
    Ok(WriterFigures {
        writers,
        publishes: writers * per_writer,
        publishes_per_s: (writers * per_writer) as f64 / secs.max(1e-9),
        held_afterwards: held,
    })
}
