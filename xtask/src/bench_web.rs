//! `cargo xtask bench-web [--quick]` (also run at the end of `cargo xtask bench`): the web
//! admin's people list with 100,000 people in the store (10,000 with `--quick`), under 50
//! concurrent signed-in clients, issue 14's benchmark.
//!
//! The store (SQLite) is filled through the `Store` port's inventory (what lookups, publishes
//! and directory audits record: one certificate per person, a mix of ready, expiring and not
//! ready), one user is added with the release `smimekit-web user add`, and the release
//! `smimekit-web serve` is started on a free loopback port. The load generator runs here, in
//! the same run: 50 clients, each signed in with a session of its own (`POST /api/v1/login`),
//! each sending its requests one after the other, all at once. Two rounds: the JSON API
//! (`GET /api/v1/people?page=K`, with a search every 4th request) and the HTML people page
//! (`GET /people?page=K`, the same mix). Per round: p50 and p99 latency, requests per second;
//! and the server's peak RSS (`VmHWM`) at the end. Prints a table and writes
//! `<target dir>/bench-web.json`. Goal from issue 14: p99 ≤ 50 ms on this 2-core machine.
//!
//! With 50 clients in a closed loop, the mean latency is 50 / (requests per second) (Little's
//! law): the goal asks for well over 1,000 requests/s from two cores that also run the load
//! generator. So that a missed goal says where the time went, each round also reports the CPU
//! time per request of the server and of the load generator (`/proc/PID/stat`), and what the
//! rest of the machine took meanwhile (`/proc/stat`: other processes, such as builds).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;
use smimekit_core::store::{CertFacts, LazyStore, Sighting};
use smimekit_core::{Mailbox, RecipientKind};

const CLIENTS: usize = 50;
const GOAL_P99_MS: f64 = 50.0;
const DAY: i64 = 86_400;

/// The server, killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn run(args: &[String]) -> Result<()> {
    let quick = args.iter().any(|a| a == "--quick");
    let people: usize = if quick { 10_000 } else { 100_000 };
    // Enough requests per client that p99 is not the slowest handful.
    let per_client: usize = if quick { 20 } else { 40 };
    eprintln!("bench-web: building the release smimekit-web binary");
    crate::run(crate::cargo().args(["build", "--release", "--quiet", "-p", "smimekit-web"]))?;
    let web = crate::target_dir().join("release").join("smimekit-web");
    let tmp = tempfile::tempdir()?;
    let config = tmp.path().join("config.toml");
    std::fs::write(
        &config,
        "[store]\nurl = \"sqlite:smimekit.db\"\n[directory.local]\nkind = \"local\"\npath = \"local.json\"\n[web]\nsign_in_per_minute = 1000\n",
    )?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let t = Instant::now();
    let url = format!("sqlite:{}", tmp.path().join("smimekit.db").display());
    rt.block_on(seed(&url, people))?;
    eprintln!(
        "bench-web: {people} people in the store in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let pw = tmp.path().join("pw");
    std::fs::write(&pw, "bench-web password\n")?;
    let cfg = config.display().to_string();
    crate::run(Command::new(&web).args([
        "--config",
        &cfg,
        "user",
        "add",
        "bench",
        "--role",
        "viewer",
        "--password-file",
        &pw.display().to_string(),
    ]))?;
    let mut child = Command::new(&web)
        .args(["--config", &cfg, "serve", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting smimekit-web serve")?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("server stdout")?).read_line(&mut line)?;
    let server = Server(child);
    let base = line
        .trim()
        .strip_prefix("smimekit-web: listening on ")
        .with_context(|| format!("smimekit-web did not say where it listens: {line:?}"))?
        .to_string();
    let pid = server.0.id();

    let rounds = rt.block_on(async {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(CLIENTS)
            .build()?;
        let mut cookies = Vec::new();
        for _ in 0..CLIENTS {
            let res = http
                .post(format!("{base}/api/v1/login"))
                .json(&json!({ "name": "bench", "password": "bench-web password" }))
                .send()
                .await?;
            if !res.status().is_success() {
                bail!("sign-in: {}", res.status());
            }
            let c = res
                .headers()
                .get("set-cookie")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .context("no session cookie")?
                .to_string();
            cookies.push(c);
        }
        let mut rounds = Vec::new();
        for (name, path) in [("JSON", "/api/v1/people"), ("HTML", "/people")] {
            // Warm-up: one request per client.
            load(&http, &base, path, &cookies, 1, people).await?;
            let before = CpuSample::take(pid)?;
            let (lat, wall) = load(&http, &base, path, &cookies, per_client, people).await?;
            let cpu = CpuSample::take(pid)?.since(&before);
            rounds.push((name, path, lat, wall, cpu));
        }
        anyhow::Ok(rounds)
    })?;
    let peak = peak_rss(pid)?;
    drop(server);

    println!(
        "\n{:<6} {:<18} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "page", "route", "requests", "p50 ms", "p99 ms", "req/s", "goal"
    );
    let mut out = Vec::new();
    let mut cpu_lines = Vec::new();
    for (name, path, mut lat, wall, cpu) in rounds {
        lat.sort_by(f64::total_cmp);
        let q = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize];
        let (p50, p99) = (q(0.50), q(0.99));
        let rps = lat.len() as f64 / wall.as_secs_f64();
        let pass = p99 <= GOAL_P99_MS;
        println!(
            "{name:<6} {path:<18} {:>9} {p50:>9.1} {p99:>9.1} {rps:>9.0} {:>7}",
            lat.len(),
            if pass { "met" } else { "missed" }
        );
        let n = lat.len() as f64;
        let wall_cpu_s = wall.as_secs_f64() * cpu.cores as f64;
        let others = (cpu.machine_busy_s - cpu.server_s - cpu.client_s).max(0.0);
        cpu_lines.push(format!(
            "{name:<6} CPU per request: server {:.2} ms, load generator {:.2} ms; over the round's {:.1} s of {} cores: server {:.0}%, load generator {:.0}%, other processes {:.0}%, idle {:.0}%",
            cpu.server_s * 1000.0 / n,
            cpu.client_s * 1000.0 / n,
            wall.as_secs_f64(),
            cpu.cores,
            100.0 * cpu.server_s / wall_cpu_s,
            100.0 * cpu.client_s / wall_cpu_s,
            100.0 * others / wall_cpu_s,
            100.0 * (wall_cpu_s - cpu.machine_busy_s).max(0.0) / wall_cpu_s,
        ));
        out.push(json!({
            "page": name, "route": path, "requests": lat.len(), "p50_ms": p50, "p99_ms": p99,
            "requests_per_s": rps, "goal_p99_ms": GOAL_P99_MS, "goal_met": pass,
            "wall_s": wall.as_secs_f64(),
            "server_cpu_ms_per_request": cpu.server_s * 1000.0 / n,
            "load_generator_cpu_ms_per_request": cpu.client_s * 1000.0 / n,
            "other_processes_cpu_s": others,
            "machine_busy_cpu_s": cpu.machine_busy_s,
            "cores": cpu.cores,
        }));
    }
    for l in &cpu_lines {
        println!("{l}");
    }
    println!(
        "server peak RSS: {:.1} MiB ({people} people, {CLIENTS} signed-in clients)",
        peak as f64 / 1048576.0
    );
    let report = json!({
        "people": people, "clients": CLIENTS, "requests_per_client": per_client,
        "server_peak_rss_bytes": peak, "rounds": out,
    });
    let file = crate::target_dir().join("bench-web.json");
    std::fs::write(&file, serde_json::to_string_pretty(&report)?)?;
    println!("wrote {}", file.display());
    Ok(())
}

/// `people` people, one certificate each, in batches through the inventory: 10% expired (not
/// ready), 10% expiring within 30 days, the rest ready (also bench-tui's store).
pub(crate) async fn seed(url: &str, people: usize) -> Result<()> {
    smimekit_store_sql::link();
    let store = LazyStore::new(url.to_string())
        .get()
        .await
        .map_err(|e| anyhow::anyhow!("store {url}: {e}"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let mut start = 0;
    while start < people {
        let end = (start + 2_000).min(people);
        let rows: Vec<(Mailbox, Vec<CertFacts>)> = (start..end)
            .map(|i| {
                // 10% expired (not ready), 10% expiring within 30 days, the rest ready.
                let not_after = match i % 10 {
                    0 => now - 10 * DAY,
                    1 => now + 10 * DAY,
                    _ => now + 365 * DAY,
                };
                let mailbox = Mailbox::parse(&format!("user{i:06}@bench.example"))
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                let facts = CertFacts {
                    sha1: format!("{:040X}", i),
                    sha256: format!("{:064x}", i),
                    subject: format!("CN=User {i}"),
                    issuer: "CN=Bench CA".into(),
                    serial: format!("{i:x}"),
                    not_before: now - 400 * DAY,
                    not_after,
                    key_type: "p256".into(),
                    source_attribute: None,
                };
                anyhow::Ok((mailbox, vec![facts]))
            })
            .collect::<Result<_>>()?;
        let sightings: Vec<Sighting<'_>> = rows
            .iter()
            .map(|(m, f)| Sighting {
                directory: "local",
                address: m,
                kind: Some(RecipientKind::Mailbox),
                certificates: f,
                time: now,
                published: false,
                complete: true,
            })
            .collect();
        store
            .inventory_record(&sightings)
            .await
            .map_err(|e| anyhow::anyhow!("inventory: {e}"))?;
        start = end;
    }
    Ok(())
}

/// Every client sends `n` requests one after the other, all clients at once; the latencies in
/// ms and the wall time.
async fn load(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    cookies: &[String],
    n: usize,
    people: usize,
) -> Result<(Vec<f64>, Duration)> {
    let pages = people / 50;
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (c, cookie) in cookies.iter().enumerate() {
        let (http, cookie) = (http.clone(), Arc::new(cookie.clone()));
        let base = base.to_string();
        let path = path.to_string();
        tasks.spawn(async move {
            let mut lat = Vec::with_capacity(n);
            for r in 0..n {
                let k = (c * 7919 + r * 104_729) % pages.max(1);
                let q = if r % 4 == 3 {
                    format!("{path}?query=user{:04}&page=0", k % 10_000)
                } else {
                    format!("{path}?page={k}")
                };
                let t = Instant::now();
                let res = http
                    .get(format!("{base}{q}"))
                    .header("cookie", cookie.as_str())
                    .send()
                    .await?;
                let status = res.status();
                let body = res.bytes().await?;
                if !status.is_success() || body.is_empty() {
                    bail!("GET {q}: {status}");
                }
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            anyhow::Ok(lat)
        });
    }
    let mut all = Vec::new();
    while let Some(r) = tasks.join_next().await {
        all.extend(r??);
    }
    Ok((all, start.elapsed()))
}

/// CPU seconds used so far: by the server, by this process (the load generator), and by the
/// whole machine (busy, all cores), with the number of cores.
struct CpuSample {
    server_s: f64,
    client_s: f64,
    machine_busy_s: f64,
    cores: usize,
}

impl CpuSample {
    fn take(server: u32) -> Result<CpuSample> {
        let (machine_busy_s, cores) = machine_busy()?;
        Ok(CpuSample {
            server_s: process_cpu(&server.to_string())?,
            client_s: process_cpu("self")?,
            machine_busy_s,
            cores,
        })
    }

    fn since(&self, before: &CpuSample) -> CpuSample {
        CpuSample {
            server_s: self.server_s - before.server_s,
            client_s: self.client_s - before.client_s,
            machine_busy_s: self.machine_busy_s - before.machine_busy_s,
            cores: self.cores,
        }
    }
}

/// Clock ticks per second of `/proc`'s counters (`USER_HZ`, 100 on Linux).
const USER_HZ: f64 = 100.0;

/// A process's user + system CPU time, all threads, in seconds (`/proc/PID/stat`).
fn process_cpu(pid: &str) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let rest = stat.rsplit_once(')').context("/proc/PID/stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let ticks = |i: usize| -> Result<f64> {
        Ok(f.get(i).context("/proc/PID/stat fields")?.parse::<f64>()?)
    };
    Ok((ticks(11)? + ticks(12)?) / USER_HZ)
}

/// Busy CPU seconds of the whole machine (all but idle and iowait) and its cores (`/proc/stat`).
fn machine_busy() -> Result<(f64, usize)> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let cpu = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .context("/proc/stat")?;
    let v: Vec<f64> = cpu
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let busy: f64 =
        v.iter().take(8).sum::<f64>() - v.get(3).unwrap_or(&0.0) - v.get(4).unwrap_or(&0.0);
    let cores = stat
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count();
    Ok((busy / USER_HZ, cores.max(1)))
}

/// The peak resident set of a process (`VmHWM`), in bytes (also bench-tui's).
pub(crate) fn peak_rss(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM")?;
    Ok(kib * 1024)
}
