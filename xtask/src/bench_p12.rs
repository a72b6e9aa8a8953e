//! `cargo xtask bench-p12 [--quick] [--strict]` (also run by `cargo xtask bench`): opening a
//! PKCS#12 file, the release `smimekit` binary against `openssl` on the same file, each a whole
//! process.
//!
//! The file is what `openssl pkcs12 -export` writes by default (OpenSSL 3: PBES2 with
//! AES-256-CBC and PBKDF2-HMAC-SHA256, 2048 iterations, for both bags; a SHA-256 MAC with 2048
//! iterations), for an RSA-2048 key and its self-signed certificate. Two comparisons:
//!
//! * `smimekit keys list --store a.p12` against `openssl pkcs12 -in a.p12 -nodes -passin …`
//!   (target: the ratio of the medians at most 1.1);
//! * `smimekit sign --key a.p12` against `openssl cms -sign -inkey key.pem -signer cert.pem`
//!   with the key in PEM (what the p12 costs on top of signing; no target).
//!
//! Runs are paired (A B A B …, after a warm-up of each) so that load on the machine hits both
//! alike; each run's wall-clock time and CPU time (user + system, from `wait4`) are recorded,
//! and the report gives min / median of each and the ratio of the medians. Figures are
//! written to `<target dir>/bench-p12.json`; `--strict` fails when the target is missed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

/// The target: smimekit's median over openssl's, opening the same p12.
const OPEN_TARGET: f64 = 1.1;
const PASSWORD: &str = "bench-p12-password";

struct Opts {
    pairs: usize,
    warmup: usize,
    strict: bool,
}

fn parse(args: &[String]) -> Result<Opts> {
    let mut opts = Opts {
        pairs: 60,
        warmup: 3,
        strict: false,
    };
    for a in args {
        match a.as_str() {
            "--quick" => {
                opts.pairs = 15;
                opts.warmup = 1;
            }
            "--strict" => opts.strict = true,
            "-h" | "--help" => {
                println!("usage: cargo xtask bench-p12 [--quick] [--strict]");
                std::process::exit(0);
            }
            other => bail!("bench-p12: unknown argument {other:?} (try --quick, --strict)"),
        }
    }
    Ok(opts)
}

/// One finished run: wall clock and the child's own CPU time.
#[derive(Clone, Copy)]
struct Sample {
    wall: Duration,
    cpu: Duration,
}

/// Runs `cmd` to completion (output discarded) and measures it; fails if it fails.
#[allow(unsafe_code)]
fn run_once(cmd: &[String], env: &[(&str, &str)]) -> Result<Sample> {
    let (program, args) = cmd.split_first().context("empty command")?;
    let shown = cmd.join(" ");
    let t0 = Instant::now();
    let child = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {shown}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data; all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own unwaited child; `status` and `usage` are valid and writable.
    // The child is reaped here; dropping `Child` afterwards does not wait, which is allowed.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = t0.elapsed();
    drop(child);
    if rc != pid {
        bail!("wait4 on {shown}: {}", std::io::Error::last_os_error());
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        bail!("{shown} failed (wait status {status})");
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    Ok(Sample {
        wall,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

/// The figures of one A/B comparison.
struct Pair {
    name: &'static str,
    a: Vec<Sample>,
    b: Vec<Sample>,
    a_cmd: String,
    b_cmd: String,
}

impl Pair {
    fn ms(samples: &[Sample], cpu: bool) -> Vec<f64> {
        samples
            .iter()
            .map(|s| if cpu { s.cpu } else { s.wall }.as_secs_f64() * 1e3)
            .collect()
    }

    /// Ratio of the medians, A over B.
    fn ratio(&self, cpu: bool) -> f64 {
        median(Self::ms(&self.a, cpu)) / median(Self::ms(&self.b, cpu))
    }

    /// The median of the pair-by-pair ratios (robust to drift over the run).
    fn paired_ratio(&self, cpu: bool) -> f64 {
        let a = Self::ms(&self.a, cpu);
        let b = Self::ms(&self.b, cpu);
        median(
            a.iter()
                .zip(&b)
                .filter(|(_, b)| **b > 0.0)
                .map(|(a, b)| a / b)
                .collect(),
        )
    }

    fn to_json(&self) -> Value {
        let side = |s: &[Sample], cmd: &str| {
            let wall = Self::ms(s, false);
            let cpu = Self::ms(s, true);
            json!({
                "command": cmd,
                "runs": s.len(),
                "wall_ms": { "min": min(&wall), "median": median(wall.clone()) },
                "cpu_ms": { "min": min(&cpu), "median": median(cpu.clone()) },
            })
        };
        json!({
            "name": self.name,
            "smimekit": side(&self.a, &self.a_cmd),
            "openssl": side(&self.b, &self.b_cmd),
            "ratio_of_medians": { "wall": self.ratio(false), "cpu": self.ratio(true) },
            "median_of_paired_ratios": {
                "wall": self.paired_ratio(false),
                "cpu": self.paired_ratio(true),
            },
        })
    }

    fn print(&self) {
        println!("  {}:", self.name);
        println!("    A = {}", self.a_cmd);
        println!("    B = {}", self.b_cmd);
        println!(
            "    {:<4} {:>12} {:>12} {:>12} {:>12}",
            "", "wall min", "wall median", "cpu min", "cpu median"
        );
        for (label, s) in [("A", &self.a), ("B", &self.b)] {
            let wall = Self::ms(s, false);
            let cpu = Self::ms(s, true);
            println!(
                "    {label:<4} {:>9.2} ms {:>9.2} ms {:>9.2} ms {:>9.2} ms",
                min(&wall),
                median(wall.clone()),
                min(&cpu),
                median(cpu.clone()),
            );
        }
        println!(
            "    A/B  ratio of medians: wall {:.3}x, cpu {:.3}x (median of paired ratios: wall {:.3}x, cpu {:.3}x; {} pairs)",
            self.ratio(false),
            self.ratio(true),
            self.paired_ratio(false),
            self.paired_ratio(true),
            self.a.len(),
        );
    }
}

/// `pairs` runs of each command, alternating, after `warmup` runs of each.
fn race(
    opts: &Opts,
    name: &'static str,
    a: &[String],
    a_env: &[(&str, &str)],
    b: &[String],
) -> Result<Pair> {
    for _ in 0..opts.warmup {
        run_once(a, a_env)?;
        run_once(b, &[])?;
    }
    let (mut sa, mut sb) = (Vec::new(), Vec::new());
    for _ in 0..opts.pairs {
        sa.push(run_once(a, a_env)?);
        sb.push(run_once(b, &[])?);
    }
    Ok(Pair {
        name,
        a: sa,
        b: sb,
        a_cmd: a.join(" "),
        b_cmd: b.join(" "),
    })
}

fn openssl(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("starting openssl {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "openssl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

pub fn run(args: &[String]) -> Result<()> {
    let opts = parse(args)?;
    eprintln!("bench-p12: building the release smimekit binary");
    crate::run(crate::cargo().args(["build", "--release", "--quiet", "-p", "smimekit-cli"]))?;
    let smimekit = crate::target_dir().join("release").join("smimekit");
    if !smimekit.is_file() {
        bail!("{} was not built", smimekit.display());
    }

    let tmp = tempfile::tempdir().context("creating a tempdir")?;
    let dir = tmp.path();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-days",
            "30",
            "-subj",
            "/CN=bench-p12/emailAddress=bench@example.com",
            "-addext",
            "subjectAltName=email:bench@example.com",
        ],
    )?;
    let pass_arg = format!("pass:{PASSWORD}");
    openssl(
        dir,
        &[
            "pkcs12", "-export", "-inkey", "key.pem", "-in", "cert.pem", "-name", "bench", "-out",
            "a.p12", "-passout", &pass_arg,
        ],
    )?;
    // What the defaults produced, for the report.
    let info = openssl(
        dir,
        &[
            "pkcs12", "-info", "-noout", "-in", "a.p12", "-passin", &pass_arg,
        ],
    )?;
    let params: Vec<String> = info
        .lines()
        .filter(|l| l.starts_with("MAC:") || l.contains("Iteration"))
        .map(|l| l.trim().to_string())
        .collect();
    let mut msg = b"From: bench@example.com\r\nTo: bench@example.com\r\nSubject: bench-p12\r\nContent-Type: text/plain\r\n\r\n".to_vec();
    while msg.len() < 4096 {
        msg.extend_from_slice(b"The quick brown fox jumps over the lazy dog.\r\n");
    }
    std::fs::write(dir.join("msg.eml"), &msg)?;

    let path = |n: &str| dir.join(n).display().to_string();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();
    let sk = smimekit.display().to_string();
    let p12 = path("a.p12");
    // The password as a user scripting smimekit gives it; an empty config so that nothing of
    // the machine's own is read.
    let config = path("config.toml");
    std::fs::write(&config, "")?;
    let env = [
        ("SMIMEKIT_PASSWORD", PASSWORD),
        ("SMIMEKIT_CONFIG", config.as_str()),
    ];

    let open_cmd = s(&[&sk, "keys", "list", "--store", &p12]);
    // Check both work before timing them.
    run_once(&open_cmd, &env).context("smimekit keys list on the bench p12")?;

    eprintln!(
        "bench-p12: {} paired runs each (after {} warm-up)",
        opts.pairs, opts.warmup
    );
    let open = race(
        &opts,
        "open a PKCS#12 (keys list vs openssl pkcs12 -nodes)",
        &open_cmd,
        &env,
        &s(&[
            "openssl", "pkcs12", "-in", &p12, "-nodes", "-passin", &pass_arg,
        ]),
    )?;
    let sign = race(
        &opts,
        "sign 4 KiB with the p12 (vs openssl cms -sign with the key in PEM)",
        &s(&[
            &sk,
            "sign",
            "--key",
            &p12,
            "--in",
            &path("msg.eml"),
            "--out",
            "/dev/null",
        ]),
        &env,
        &s(&[
            "openssl",
            "cms",
            "-sign",
            "-md",
            "sha256",
            "-signer",
            &path("cert.pem"),
            "-inkey",
            &path("key.pem"),
            "-in",
            &path("msg.eml"),
            "-out",
            "/dev/null",
        ]),
    )?;

    let ratio = open.ratio(false);
    let pass = ratio <= OPEN_TARGET;
    println!();
    println!("PKCS#12, whole processes, smimekit (A) against openssl (B) on the same file:");
    for p in &params {
        println!("  file: {p}");
    }
    open.print();
    sign.print();
    println!(
        "  target: open ratio of wall medians {ratio:.3}x <= {OPEN_TARGET:.1}x: {}",
        if pass { "PASS" } else { "MISS" }
    );

    let json = json!({
        "file": params,
        "open": open.to_json(),
        "sign": sign.to_json(),
        "target": {
            "name": "smimekit keys list vs openssl pkcs12 -nodes, ratio of wall-clock medians",
            "goal": OPEN_TARGET,
            "measured": ratio,
            "pass": pass,
        },
    });
    let out: PathBuf = crate::target_dir().join("bench-p12.json");
    std::fs::write(&out, serde_json::to_string_pretty(&json)? + "\n")
        .with_context(|| format!("writing {}", out.display()))?;
    println!("  figures written to {}", out.display());
    if opts.strict && !pass {
        bail!("bench-p12: target missed ({ratio:.3}x > {OPEN_TARGET:.1}x)");
    }
    Ok(())
}
