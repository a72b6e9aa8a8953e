//! `cargo xtask bench-exchange [--quick]` (also run at the end of `cargo xtask bench`):
//! 10,000 mailboxes published with the release `smimekit publish --from FILE` against the
//! Exchange Online emulator (tests/exchange-emulator) throttling every 20th request with a
//! 429 + Retry-After. Reports the wall time against the throttle-bound minimum (every 429
//! holds its item back `Retry-After` seconds, and `--parallel` items are in flight; a request
//! waiting out its Retry-After holds no request slot), zero lost updates (every mailbox read
//! back from the emulator holds exactly the certificate), and the peak RSS of the smimekit
//! process.

use std::sync::atomic::Ordering::Relaxed;

use anyhow::{Context, Result, bail};
use serde_json::json;
use smimekit_exchange_emulator::{Emulator, EmulatorConfig};

const THROTTLE_EVERY: u64 = 20;
const RETRY_AFTER: f64 = 0.05;
/// The backend's default request concurrency (exchange-online.md §1.7: ≤ 3).
const CONCURRENCY: usize = 3;
/// Items in flight (`publish --from --parallel`).
const PARALLEL: usize = 8;

pub fn run(args: &[String]) -> Result<()> {
    let quick = args.iter().any(|a| a == "--quick");
    let n: usize = if quick { 1_000 } else { 10_000 };
    let root = crate::root();
    let pki = root.join("tests/fixtures/pki");
    let alice_pem = std::fs::read(pki.join("alice.pem")).context("reading alice.pem")?;
    let alice = smimekit_pki::load_certificates(&alice_pem, "alice.pem")
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .remove(0);

    eprintln!("bench-exchange: building the release smimekit binary");
    crate::run(crate::cargo().args(["build", "--release", "--quiet", "-p", "smimekit-cli"]))?;
    let target_dir = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => std::path::PathBuf::from(d),
        None => root.join("target"),
    };
    let smimekit = target_dir.join("release").join("smimekit");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut cfg = EmulatorConfig::new(
        "contoso.onmicrosoft.com",
        "bench-app",
        alice.as_bytes().to_vec(),
    );
    cfg.mailboxes = (0..n).map(|i| format!("user{i:05}@example.org")).collect();
    cfg.throttle_every = THROTTLE_EVERY;
    cfg.retry_after = RETRY_AFTER.to_string();
    let emu = rt.block_on(Emulator::start(cfg))?;

    let tmp = tempfile::tempdir()?;
    let config = tmp.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[directory.exo]\nkind = \"exchange-online\"\ntenant = \"contoso.onmicrosoft.com\"\nclient_id = \"bench-app\"\n\
             certificate = \"{key}\"\ncertificate_file = \"{crt}\"\nendpoint = \"{u}\"\nauthority = \"{u}\"\nconcurrency = {CONCURRENCY}\n",
            key = pki.join("alice.key").display(),
            crt = pki.join("alice.pem").display(),
            u = emu.base_url
        ),
    )?;
    let csv = tmp.path().join("list.csv");
    let mut text = String::from("address,certificate\n");
    for i in 0..n {
        text.push_str(&format!(
            "user{i:05}@example.org,{}\n",
            pki.join("alice.pem").display()
        ));
    }
    std::fs::write(&csv, text)?;
    let report = tmp.path().join("report.json");
    let args: Vec<String> = [
        "publish",
        "--from",
        &csv.display().to_string(),
        "--directory",
        "exo",
        "--force",
        "--parallel",
        &PARALLEL.to_string(),
        "--report",
        &report.display().to_string(),
        "--config",
        &config.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    eprintln!(
        "bench-exchange: publishing {n} mailboxes (429 every {THROTTLE_EVERY} requests, Retry-After {RETRY_AFTER} s)"
    );
    let (peak, took) = crate::bench::peak_rss(&smimekit, &args)?;
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).context("reading the bulk report")?)?;

    let requests = emu.counters.invoke.load(Relaxed);
    let throttled = emu.counters.throttled.load(Relaxed);
    let mut lost = 0usize;
    for i in 0..n {
        let got = rt.block_on(emu.certificates(&format!("user{i:05}@example.org")));
        if got.as_deref() != Some(&[alice.as_bytes().to_vec()][..]) {
            lost += 1;
        }
    }
    let minimum = throttled as f64 * RETRY_AFTER / PARALLEL as f64;
    let wall = took.as_secs_f64();
    let summary = json!({
        "mailboxes": n,
        "wall_seconds": wall,
        "throttle_bound_minimum_seconds": minimum,
        "wall_over_minimum": if minimum > 0.0 { wall / minimum } else { 0.0 },
        "requests": requests,
        "requests_per_mailbox": requests as f64 / n as f64,
        "throttled_429": throttled,
        "published": r["published"],
        "failed": r["failed"],
        "requeued_items": r["requeued"],
        "lost_updates": lost,
        "smimekit_peak_rss_bytes": peak,
    });
    println!("{}", serde_json::to_string_pretty(&summary)?);
    if lost > 0 || r["failed"].as_u64() != Some(0) {
        bail!(
            "bench-exchange: {lost} lost update(s), {} failed item(s)",
            r["failed"]
        );
    }
    Ok(())
}
