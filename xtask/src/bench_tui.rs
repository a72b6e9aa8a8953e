//! `cargo xtask bench-tui [--quick]` (also run at the end of `cargo xtask bench`): the console
//! with 100,000 people in the store (10,000 with `--quick`), issue 15's benchmark.
//!
//! The store (SQLite) is filled through the `Store` port's inventory, as lookups and publishes
//! fill it (one certificate per person; ready, expiring and not ready). Two measurements:
//!
//! * Through a real terminal: the release `smimekit-tui` started in a detached tmux session at
//!   80×24 (a private server), the time from starting it to the first full frame (the People
//!   screen with its rows: the pane shows the first ten people by address), and to the whole
//!   list (the pane shows "N people", everyone counted); then, over everyone, filter keystrokes
//!   sent with `send-keys`, each timed until the pane shows the new filter line; and the
//!   process's peak RSS (`VmHWM`). These include tmux's own work (starting its server, a `tmux`
//!   process per key and per poll of `capture-pane`), so they are upper bounds.
//! * In-process (`apps/tui/examples/bench_frames.rs`, release): the console's start through its
//!   own runner (configuration, service, the first people read, then everyone), a frame on an
//!   80×24 `TestBackend` after each result, the first full People frame (checked) and the whole
//!   list; then 200 filter keystrokes over everyone (typing an address prefix, then Backspace,
//!   which rescans everyone), each with its full frame.
//!
//! Goals from issue 15: first frame ≤ 300 ms; keystroke to frame p99 ≤ 16 ms. Prints a table
//! and writes `<target dir>/bench-tui.json`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::bench_web::{peak_rss, seed};

const GOAL_FIRST_MS: f64 = 300.0;
const GOAL_KEY_P99_MS: f64 = 16.0;
const KEYSTROKES: usize = 200;
/// Keystrokes through tmux per start (each one spawns tmux processes: fewer).
const TMUX_KEYSTROKES: usize = 40;
const STARTS: usize = 3;

pub fn run(args: &[String]) -> Result<()> {
    let quick = args.iter().any(|a| a == "--quick");
    let people: usize = if quick { 10_000 } else { 100_000 };
    if Command::new("tmux").arg("-V").output().is_err() {
        bail!("bench-tui needs tmux (cargo xtask setup installs it)");
    }
    eprintln!("bench-tui: building the release smimekit-tui and its frame benchmark");
    crate::run(crate::cargo().args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "smimekit-tui",
        "--bin",
        "smimekit-tui",
        "--example",
        "bench_frames",
    ]))?;
    let release = crate::target_dir().join("release");
    let tui = release.join("smimekit-tui");
    let frames = release.join("examples").join("bench_frames");

    let tmp = tempfile::tempdir()?;
    let db = tmp.path().join("smimekit.db");
    let config = tmp.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\nurl = \"sqlite:{}\"\n[directory.local]\nkind = \"local\"\npath = \"local.json\"\n",
            db.display()
        ),
    )?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let t = Instant::now();
    rt.block_on(seed(&format!("sqlite:{}", db.display()), people))?;
    drop(rt);
    eprintln!(
        "bench-tui: {people} people in the store in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // In-process.
    let out = Command::new(&frames)
        .arg(&config)
        .arg(KEYSTROKES.to_string())
        .output()
        .context("running bench_frames")?;
    if !out.status.success() {
        bail!(
            "bench_frames failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let inproc: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    if inproc["people"].as_u64() != Some(people as u64) {
        bail!(
            "bench_frames read {} people, not {people}",
            inproc["people"]
        );
    }

    // Through tmux.
    let mut firsts = Vec::new();
    let mut wholes = Vec::new();
    let mut keys = Vec::new();
    let mut peak = 0u64;
    for run in 0..STARTS {
        let r = tmux_run(&tui, &config, tmp.path(), people, run)?;
        firsts.push(r.first);
        wholes.push(r.whole);
        keys.extend(r.keys);
        peak = peak.max(r.rss);
    }
    firsts.sort_by(f64::total_cmp);
    wholes.sort_by(f64::total_cmp);
    keys.sort_by(f64::total_cmp);
    let q = |v: &[f64], p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
    let first_med = q(&firsts, 0.5);
    let whole_med = q(&wholes, 0.5);
    let (key_p50, key_p99) = (q(&keys, 0.5), q(&keys, 0.99));
    let f = |k: &str| inproc[k].as_f64().unwrap_or(f64::NAN);

    println!(
        "\n{:<44} {:>10} {:>10} {:>8}",
        "measure", "figure", "goal", ""
    );
    let line = |what: &str, v: f64, goal: f64| {
        println!(
            "{what:<44} {:>10} {:>10} {:>8}",
            format!("{v:.1} ms"),
            format!("≤ {goal:.0} ms"),
            if v <= goal { "met" } else { "missed" }
        );
    };
    line(
        &format!("first frame, tmux (median of {STARTS} starts)"),
        first_med,
        GOAL_FIRST_MS,
    );
    line(
        "first frame, in-process",
        f("first_frame_ms"),
        GOAL_FIRST_MS,
    );
    line(
        &format!("keystroke to frame p99, in-process ({KEYSTROKES})"),
        f("keystroke_p99_ms"),
        GOAL_KEY_P99_MS,
    );
    println!(
        "{:<44} {:>10}",
        "keystroke to frame p50, in-process",
        format!("{:.2} ms", f("keystroke_p50_ms"))
    );
    println!(
        "{:<44} {:>10}",
        format!("keystroke to screen, tmux ({} keys) p50/p99", keys.len()),
        format!("{key_p50:.1}/{key_p99:.1} ms")
    );
    let figure = |what: &str, v: String| println!("{what:<44} {v:>10}");
    figure(
        &format!("whole list on screen, tmux (median of {STARTS})"),
        format!("{whole_med:.1} ms"),
    );
    figure(
        "whole list on screen, in-process",
        format!("{:.1} ms", f("whole_list_ms")),
    );
    figure(
        "in-process: configuration read at",
        format!("{:.1} ms", f("config_ms")),
    );
    figure(
        "in-process: service built at",
        format!("{:.1} ms", f("service_ms")),
    );
    figure(
        &format!(
            "in-process: first {} people read at",
            inproc["first_people"].as_u64().unwrap_or(0)
        ),
        format!("{:.1} ms", f("first_people_ms")),
    );
    println!(
        "{:<44} {:>10}",
        "peak RSS of smimekit-tui",
        format!("{:.1} MiB", peak as f64 / 1_048_576.0)
    );
    let report = json!({
        "people": people,
        "tmux": {
            "first_frame_ms": firsts, "first_frame_median_ms": first_med,
            "whole_list_ms": wholes, "whole_list_median_ms": whole_med,
            "keystrokes": keys.len(), "keystroke_p50_ms": key_p50, "keystroke_p99_ms": key_p99,
            "peak_rss_bytes": peak,
        },
        "in_process": inproc,
        "goals": { "first_frame_ms": GOAL_FIRST_MS, "keystroke_p99_ms": GOAL_KEY_P99_MS },
    });
    let file = crate::target_dir().join("bench-tui.json");
    std::fs::write(&file, serde_json::to_string_pretty(&report)?)?;
    println!("wrote {}", file.display());
    Ok(())
}

/// A tmux server of its own, killed when dropped.
struct Tmux(String);

impl Tmux {
    fn cmd(&self, args: &[&str]) -> Result<std::process::Output> {
        Command::new("tmux")
            .args(["-L", &self.0])
            .args(args)
            .output()
            .context("running tmux")
    }

    fn capture(&self) -> Result<String> {
        Ok(
            String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "b"])?.stdout)
                .into_owned(),
        )
    }

    /// Polls the pane until `ok`; the time it took from `since`.
    fn until(&self, since: Instant, what: &str, ok: impl Fn(&str) -> bool) -> Result<f64> {
        let deadline = since + Duration::from_secs(60);
        loop {
            let s = self.capture()?;
            if ok(&s) {
                return Ok(since.elapsed().as_secs_f64() * 1000.0);
            }
            if Instant::now() > deadline {
                bail!("smimekit-tui did not show {what}; the pane:\n{s}");
            }
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

/// What one start of the console in tmux measured (ms, and bytes).
struct TmuxRun {
    first: f64,
    whole: f64,
    keys: Vec<f64>,
    rss: u64,
}

/// One start of the console in tmux: the first full frame, the whole list, filter keystrokes,
/// the peak RSS.
fn tmux_run(tui: &Path, config: &Path, dir: &Path, people: usize, run: usize) -> Result<TmuxRun> {
    let t = Tmux(format!("bench-tui-{}-{run}", std::process::id()));
    let want = format!(" {people} people");
    // The People screen with rows: the first ten people by address (the seeded addresses
    // sort by number; 80×24 has room for twelve rows).
    let rows = [seeded(0), seeded(9)];
    let start = Instant::now();
    // The binary is the pane's process (no shell), so the pane's pid is its pid.
    let out = Command::new("tmux")
        .args([
            "-L",
            &t.0,
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "b",
        ])
        .args(["-x", "80", "-y", "24", "-c", &dir.display().to_string()])
        .arg(tui)
        .arg("--config")
        .arg(config)
        .output()?;
    if !out.status.success() {
        bail!("tmux: {}", String::from_utf8_lossy(&out.stderr));
    }
    let first = t.until(start, "the first rows", |s| {
        s.contains("1:People") && rows.iter().all(|r| s.contains(r.as_str()))
    })?;
    let whole = t.until(start, &want, |s| s.contains(&want))?;
    t.cmd(&["set-option", "-s", "escape-time", "0"])?;
    let pid: u32 = String::from_utf8_lossy(
        &t.cmd(&["list-panes", "-t", "b", "-F", "#{pane_pid}"])?
            .stdout,
    )
    .trim()
    .parse()
    .context("the pane's pid")?;
    t.cmd(&["send-keys", "-t", "b", "/"])?;
    t.until(Instant::now(), "the filter line", |s| s.contains(" /_ "))?;
    let mut lat = Vec::new();
    let mut filter = String::new();
    let prefix = format!("user0{:04}", run * 1_237 % 10_000);
    for i in 0..TMUX_KEYSTROKES {
        // Type the prefix, then erase it, over and over.
        let pos = i % (2 * prefix.len());
        let t0 = Instant::now();
        if pos < prefix.len() {
            let c = &prefix[pos..pos + 1];
            filter.push_str(c);
            t.cmd(&["send-keys", "-t", "b", "-l", c])?;
        } else {
            filter.pop();
            t.cmd(&["send-keys", "-t", "b", "BSpace"])?;
        }
        let line = format!(" /{filter}_ ");
        lat.push(t.until(t0, &line, |s| s.contains(&line))?);
    }
    let rss = peak_rss(pid)?;
    t.cmd(&["send-keys", "-t", "b", "Escape"])?;
    t.until(Instant::now(), "the cleared filter", |s| s.contains(&want))?;
    t.cmd(&["send-keys", "-t", "b", "q"])?;
    // The session ends with the console.
    let deadline = Instant::now() + Duration::from_secs(30);
    while t.cmd(&["has-session", "-t", "b"])?.status.success() {
        if Instant::now() > deadline {
            bail!("smimekit-tui did not quit on q");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(TmuxRun {
        first,
        whole,
        keys: lat,
        rss,
    })
}

/// The address `seed` gives its `i`th person, as the console's list shows it.
fn seeded(i: usize) -> String {
    format!("user{i:06}@bench.example")
}
