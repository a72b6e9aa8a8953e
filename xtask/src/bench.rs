//! `cargo xtask bench [--quick] [--strict]`: speed and memory figures beside `openssl speed`
//! and `openssl cms`, taken in the same run.
//!
//! 1. A throw-away PKI (root CA, RSA-2048 and P-256 S/MIME certificates) in a tempdir.
//! 2. `openssl speed -mr` for RSA-2048, ECDSA P-256, AES-256-CBC and SHA-256.
//! 3. In-process, through `smimekit-service`: sign, verify, encrypt, decrypt and open of a
//!    4 KiB and a 10 MiB message with each key (median of several timed runs).
//! 4. Process against process: N sequential runs of the release `smimekit` binary and of
//!    `openssl cms` on the same 4 KiB message with the same key.
//! 5. Peak RSS (`wait4` rusage) of `smimekit open` on the 10 MiB signed+encrypted message.
//!
//! Prints a table with the targets (PASS/MISS) and writes every figure to
//! `<target dir>/bench.json`. Rates of the in-process runs are per CPU-second of the process,
//! as `openssl speed` counts them, so builds running beside the bench skew both alike; the
//! wall-clock rates are in the JSON too. `--quick` is a smoke run with short timings;
//! `--strict` fails when a target is missed; `--keep` keeps the tempdir (keys, messages) for
//! profiling.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use smimekit_service::{
    ContentCipher, DecryptRequest, DigestAlg, EncryptRequest, EncryptTo, KeyRequest, Named,
    OpenRequest, PrivateKey, Service, SignRequest,
};

const SMALL: usize = 4 * 1024;
const LARGE: usize = 10 * 1024 * 1024;
const MB: f64 = 1e6;

/// Targets from the issue.
const SIGN_VS_OPENSSL: f64 = 0.85;
const OPEN_VS_AES_SHA: f64 = 0.8;
const PEAK_RSS_FACTOR: f64 = 4.0;
const CLI_VS_CMS: f64 = 1.5;

#[derive(Debug, Clone)]
struct Opts {
    quick: bool,
    strict: bool,
    /// Keep the tempdir (keys, messages) for profiling.
    keep: bool,
    /// Timed runs per figure (the median is reported).
    runs: usize,
    /// Each run lasts at least this long…
    min_time: Duration,
    /// …and at least this many iterations.
    min_iters: usize,
    /// Sequential process runs per tool in the CLI comparison.
    cms_runs: usize,
    speed_seconds: u32,
}

impl Opts {
    fn parse(args: &[String]) -> Result<Self> {
        let mut quick = false;
        let mut strict = false;
        let mut keep = false;
        for a in args {
            match a.as_str() {
                "--quick" => quick = true,
                "--strict" => strict = true,
                "--keep" => keep = true,
                "-h" | "--help" => {
                    println!("usage: cargo xtask bench [--quick] [--strict] [--keep]");
                    std::process::exit(0);
                }
                other => bail!("bench: unknown argument {other:?} (try --quick, --strict, --keep)"),
            }
        }
        Ok(if quick {
            Opts {
                quick,
                strict,
                keep,
                runs: 3,
                min_time: Duration::from_millis(150),
                min_iters: 1,
                cms_runs: 10,
                speed_seconds: 1,
            }
        } else {
            Opts {
                quick,
                strict,
                keep,
                runs: 5,
                min_time: Duration::from_millis(1000),
                min_iters: 3,
                cms_runs: 50,
                speed_seconds: 2,
            }
        })
    }
}

pub fn run(args: &[String]) -> Result<()> {
    if let Some(("--rss-of", cmd)) = args.split_first().map(|(a, rest)| (a.as_str(), rest)) {
        return rss_helper(cmd);
    }
    let opts = Opts::parse(args)?;
    let target_dir = target_dir();
    eprintln!("bench: building the release smimekit binary");
    crate::run(crate::cargo().args(["build", "--release", "--quiet", "-p", "smimekit-cli"]))?;
    let smimekit = target_dir.join("release").join("smimekit");
    if !smimekit.is_file() {
        bail!("{} was not built", smimekit.display());
    }

    let tmp = tempfile::tempdir().context("creating a tempdir")?;
    let dir = tmp.path().to_path_buf();
    let dir = dir.as_path();
    eprintln!("bench: generating the test PKI in {}", dir.display());
    let pki = make_pki(dir)?;
    let small = make_message(SMALL);
    let large = make_message(LARGE);
    fs::write(dir.join("small.eml"), &small)?;
    fs::write(dir.join("large.eml"), &large)?;

    eprintln!("bench: openssl speed ({} s per figure)", opts.speed_seconds);
    let speed = openssl_speed(opts.speed_seconds)?;

    let service = Service::builder().build().context("building the service")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a tokio runtime")?;

    let mut rows: Vec<Row> = Vec::new();
    let mut large_open_file = None;
    for key in &pki.keys {
        let private = rt
            .block_on(service.open_key(&KeyRequest {
                reference: key.key.display().to_string(),
                certificate: Some(key.cert.display().to_string()),
                ..KeyRequest::default()
            }))
            .with_context(|| format!("opening the {} key", key.name))?;
        for (size, msg) in [(SMALL, &small), (LARGE, &large)] {
            eprintln!("bench: in-process {} {}", key.name, size_name(size));
            let (r, signed_enc) = bench_service(&opts, &rt, &service, &pki, key, &private, msg)?;
            if size == LARGE && key.name == "RSA-2048" {
                let path = dir.join("large-signed-encrypted.eml");
                fs::write(&path, &signed_enc)?;
                large_open_file = Some(path);
            }
            rows.extend(r.into_iter().map(|(op, m)| Row {
                key: key.name,
                size,
                op,
                m,
            }));
        }
    }

    eprintln!(
        "bench: smimekit against openssl cms, {} runs each",
        opts.cms_runs
    );
    let cli = bench_cli(&opts, &smimekit, &pki, dir)?;

    eprintln!("bench: peak memory of smimekit open (10 MiB)");
    let large_file = large_open_file.context("no 10 MiB signed+encrypted message")?;
    let memory = bench_memory(&smimekit, &pki, &large_file)?;

    let targets = targets(&rows, &speed, &cli, &memory);
    print_report(&opts, &rows, &speed, &cli, &memory, &targets);

    let json = json!({
        "quick": opts.quick,
        "openssl_version": openssl_version(),
        "rates": "service rates per CPU-second (cpu_*), wall-clock rates beside them; MB = 10^6 bytes of the plaintext message",
        "openssl_speed": speed.to_json(),
        "service": rows.iter().map(Row::to_json).collect::<Vec<_>>(),
        "cli_vs_openssl_cms": cli.iter().map(CliRow::to_json).collect::<Vec<_>>(),
        "memory": memory.to_json(),
        "targets": targets.iter().map(Target::to_json).collect::<Vec<_>>(),
    });
    fs::create_dir_all(&target_dir)?;
    let out = target_dir.join("bench.json");
    fs::write(&out, serde_json::to_string_pretty(&json)? + "\n")
        .with_context(|| format!("writing {}", out.display()))?;
    println!("\nfigures written to {}", out.display());

    if opts.keep {
        println!("keys and messages kept in {}", tmp.keep().display());
    }

    println!("\ncertificate stores, chains and the local directory:");
    let pki_args: Vec<String> = if opts.quick {
        vec!["--quick".into()]
    } else {
        Vec::new()
    };
    crate::bench_pki::run(&pki_args)?;

    println!(
        "\nThe store (local directory, inventory, concurrent writers; SQLite and PostgreSQL):"
    );
    crate::bench_store::run(&pki_args)?;

    println!("\nLDAP directory (slapd vs ldapmodify):");
    crate::bench_ldap::run(&pki_args)?;

    println!("\nPlugin ABI overhead per call (vs the same operation built in):");
    crate::bench_plugins::run(&pki_args)?;

    println!("\nExchange Online (emulator, 429 every 20 requests):");
    crate::bench_exchange::run(&pki_args)?;

    println!("\nPKCS#11 token (SoftHSM2) vs pkcs11-tool and the same key as a file:");
    crate::bench_pkcs11::run(&pki_args)?;

    crate::bench_p12::run(&pki_args)?;

    println!("\nHostile input (each at most 10 MiB; refused or processed within 1 s and 64 MiB):");
    crate::bench_adversarial::run(&pki_args)?;

    println!("\nPlan and apply (local directory + Exchange emulator + slapd, one deploy file):");
    crate::bench_deploy::run(&pki_args)?;

    println!("\nConsole (smimekit-tui, 100,000 people: first frame, filter keystrokes, RSS):");
    crate::bench_tui::run(&pki_args)?;

    println!("\nWeb admin (people list, 100,000 people, 50 signed-in clients):");
    crate::bench_web::run(&pki_args)?;

    let missed: Vec<&str> = targets
        .iter()
        .filter(|t| !t.pass)
        .map(|t| t.name.as_str())
        .collect();
    if opts.strict && !missed.is_empty() {
        bail!("targets missed: {}", missed.join("; "));
    }
    Ok(())
}

/// `$CARGO_TARGET_DIR`, else `<root>/target`.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                crate::root().join(d)
            }
        }
        None => crate::root().join("target"),
    }
}

fn size_name(size: usize) -> &'static str {
    match size {
        SMALL => "4 KiB",
        LARGE => "10 MiB",
        _ => "?",
    }
}

// ---------------------------------------------------------------------------------------
// Test PKI and messages

struct KeyFiles {
    name: &'static str,
    key: PathBuf,
    cert: PathBuf,
}

struct Pki {
    ca: PathBuf,
    keys: Vec<KeyFiles>,
}

/// Runs `openssl` with `args` in `dir`, returning its standard output.
pub(crate) fn openssl(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .context("running openssl (is it installed?)")?;
    if !out.status.success() {
        bail!(
            "openssl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn make_pki(dir: &Path) -> Result<Pki> {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "3650",
            "-subj",
            "/CN=smimekit bench root CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-addext",
            "subjectKeyIdentifier=hash",
        ],
    )?;
    let mut keys = Vec::new();
    for (name, stem, newkey, usage) in [
        (
            "RSA-2048",
            "rsa",
            &["-newkey", "rsa:2048"][..],
            "digitalSignature,nonRepudiation,keyEncipherment",
        ),
        (
            "P-256",
            "p256",
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"][..],
            "digitalSignature,nonRepudiation,keyAgreement",
        ),
    ] {
        let email = format!("{stem}@bench.example");
        let (key, csr, cert, ext) = (
            format!("{stem}.key"),
            format!("{stem}.csr"),
            format!("{stem}.pem"),
            format!("{stem}.ext"),
        );
        fs::write(
            dir.join(&ext),
            format!(
                "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,{usage}\n\
                 extendedKeyUsage=emailProtection\nsubjectAltName=email:{email}\n\
                 subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
            ),
        )?;
        let subj = format!("/CN=Bench {name}/emailAddress={email}");
        let mut args = vec!["req"];
        args.extend_from_slice(newkey);
        args.extend_from_slice(&["-nodes", "-keyout", &key, "-out", &csr, "-subj", &subj]);
        openssl(dir, &args)?;
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "365",
                "-sha256",
                "-extfile",
                &ext,
                "-out",
                &cert,
            ],
        )?;
        keys.push(KeyFiles {
            name,
            key: dir.join(key),
            cert: dir.join(cert),
        });
    }
    Ok(Pki {
        ca: dir.join("ca.pem"),
        keys,
    })
}

/// An RFC 5322 text message of exactly `size` bytes: headers, then 7-bit CRLF lines of
/// 76 characters, so no transfer encoding is needed to sign it.
fn make_message(size: usize) -> Vec<u8> {
    let mut m = b"From: RSA Bench <rsa@bench.example>\r\n\
To: P-256 Bench <p256@bench.example>\r\n\
Subject: smimekit bench\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=us-ascii\r\n\
Content-Transfer-Encoding: 7bit\r\n\r\n"
        .to_vec();
    let alphabet = b"abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,;:!?";
    let mut i = 0usize;
    while m.len() < size {
        let left = size - m.len();
        if left <= 2 {
            m.extend_from_slice(&b"\r\n"[..left]);
            break;
        }
        let line = (left - 2).min(76);
        for _ in 0..line {
            m.push(alphabet[i % alphabet.len()]);
            i = i.wrapping_mul(31).wrapping_add(7) % 7919;
        }
        m.extend_from_slice(b"\r\n");
    }
    m.truncate(size);
    m
}

// ---------------------------------------------------------------------------------------
// openssl speed

#[derive(Debug, Default)]
struct Speed {
    rsa2048_sign: f64,
    rsa2048_verify: f64,
    p256_sign: f64,
    p256_verify: f64,
    /// Bytes per second, 16384-byte blocks.
    aes256cbc: f64,
    sha256: f64,
}

impl Speed {
    /// 1 / (1/aes + 1/sha): what decrypt-then-hash of each byte can reach.
    fn combined(&self) -> f64 {
        1.0 / (1.0 / self.aes256cbc + 1.0 / self.sha256)
    }

    fn to_json(&self) -> Value {
        json!({
            "rsa2048_sign_per_s": self.rsa2048_sign,
            "rsa2048_verify_per_s": self.rsa2048_verify,
            "ecdsap256_sign_per_s": self.p256_sign,
            "ecdsap256_verify_per_s": self.p256_verify,
            "aes_256_cbc_bytes_per_s_16k": self.aes256cbc,
            "sha256_bytes_per_s_16k": self.sha256,
            "aes_plus_sha256_combined_bytes_per_s": self.combined(),
        })
    }
}

fn openssl_speed(seconds: u32) -> Result<Speed> {
    let secs = seconds.to_string();
    let speed = |extra: &[&str]| -> Result<String> {
        let mut args = vec!["speed", "-seconds", &secs, "-mr"];
        args.extend_from_slice(extra);
        openssl(Path::new("."), &args)
    };
    let mut s = Speed::default();
    // +F2:<index>:<bits>:<sign/s>:<verify/s>
    let rsa = speed(&["rsa2048"])?;
    let f = mr_fields(&rsa, "+F2:").context("openssl speed rsa2048: no +F2 line")?;
    (s.rsa2048_sign, s.rsa2048_verify) = (num(&f, 3)?, num(&f, 4)?);
    // +F4:<index>:<bits>:<sign/s>:<verify/s>
    let ec = speed(&["ecdsap256"])?;
    let f = mr_fields(&ec, "+F4:").context("openssl speed ecdsap256: no +F4 line")?;
    (s.p256_sign, s.p256_verify) = (num(&f, 3)?, num(&f, 4)?);
    s.aes256cbc = block_rate(&speed(&["-evp", "aes-256-cbc"])?, 16384).context("aes-256-cbc")?;
    s.sha256 = block_rate(&speed(&["-evp", "sha256"])?, 16384).context("sha256")?;
    Ok(s)
}

/// The `:`-separated fields of the first line starting with `prefix`.
fn mr_fields(out: &str, prefix: &str) -> Option<Vec<String>> {
    out.lines()
        .find(|l| l.starts_with(prefix))
        .map(|l| l.split(':').map(str::to_string).collect())
}

fn num(fields: &[String], i: usize) -> Result<f64> {
    fields
        .get(i)
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("field {i} of {:?}", fields.join(":")))
}

/// `+H:16:64:…:16384` names the block sizes; `+F:<n>:<alg>:<bytes/s>…` holds the rates in
/// the same order.
fn block_rate(out: &str, block: u64) -> Result<f64> {
    let h = mr_fields(out, "+H:").context("no +H line")?;
    let col = h[1..]
        .iter()
        .position(|b| b.trim().parse::<u64>().ok() == Some(block))
        .with_context(|| format!("no {block}-byte column in {:?}", h.join(":")))?;
    let f = mr_fields(out, "+F:").context("no +F line")?;
    num(&f, 3 + col)
}

fn openssl_version() -> String {
    openssl(Path::new("."), &["version"])
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// In-process figures

#[derive(Debug, Clone, Copy)]
struct Measure {
    /// Median operations per CPU-second of this process.
    cpu_ops: f64,
    /// Median operations per wall-clock second.
    wall_ops: f64,
    iterations: usize,
}

struct Row {
    key: &'static str,
    size: usize,
    op: &'static str,
    m: Measure,
}

impl Row {
    fn mb_s(&self) -> f64 {
        self.m.cpu_ops * self.size as f64 / MB
    }

    fn to_json(&self) -> Value {
        json!({
            "key": self.key,
            "size_bytes": self.size,
            "op": self.op,
            "cpu_ops_per_s": self.m.cpu_ops,
            "cpu_mb_per_s": self.mb_s(),
            "wall_ops_per_s": self.m.wall_ops,
            "wall_mb_per_s": self.m.wall_ops * self.size as f64 / MB,
            "iterations": self.m.iterations,
        })
    }
}

/// CPU time of this whole process (the bench runs on one thread).
#[allow(unsafe_code)]
pub(crate) fn cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Times `op` (which gets its input from `prepare`, outside the timed part): `runs` runs of
/// at least `min_time` and `min_iters` iterations each, after one warm-up call.
fn measure<I>(
    opts: &Opts,
    mut prepare: impl FnMut() -> I,
    mut op: impl FnMut(I) -> Result<()>,
) -> Result<Measure> {
    op(prepare())?;
    let (mut cpu_rates, mut wall_rates, mut total) = (Vec::new(), Vec::new(), 0);
    for _ in 0..opts.runs {
        let (mut n, mut cpu, mut wall) = (0usize, Duration::ZERO, Duration::ZERO);
        while n < opts.min_iters || wall < opts.min_time {
            let input = prepare();
            let (c0, w0) = (cpu_time(), Instant::now());
            op(input)?;
            wall += w0.elapsed();
            cpu += cpu_time().saturating_sub(c0);
            n += 1;
        }
        cpu_rates.push(n as f64 / cpu.as_secs_f64().max(1e-9));
        wall_rates.push(n as f64 / wall.as_secs_f64().max(1e-9));
        total += n;
    }
    Ok(Measure {
        cpu_ops: median(cpu_rates),
        wall_ops: median(wall_rates),
        iterations: total,
    })
}

/// One operation's figures: `sign`, `verify`, `encrypt`, `decrypt` or `open`.
type OpMeasure = (&'static str, Measure);

/// Sign, verify, encrypt, decrypt and open of `msg` with one key. Returns the figures and the
/// signed-then-encrypted message.
fn bench_service(
    opts: &Opts,
    rt: &tokio::runtime::Runtime,
    service: &Service,
    pki: &Pki,
    key: &KeyFiles,
    private: &Arc<dyn PrivateKey>,
    msg: &[u8],
) -> Result<(Vec<OpMeasure>, Vec<u8>)> {
    // The service takes data, not paths: the files are read once, outside the timings.
    let read = |p: &std::path::Path| -> Result<Named<Vec<u8>>> {
        let data = std::fs::read(p).with_context(|| p.display().to_string())?;
        Ok(Named::new(p.display().to_string(), data))
    };
    let (ca, cert) = (read(&pki.ca)?, read(&key.cert)?);
    let sign_req = |message: Vec<u8>| SignRequest {
        key: private.clone(),
        digest: DigestAlg::Sha256,
        pss: false,
        opaque: false,
        message,
        // The root completes the chain (and is left out), as `sign --chain` would.
        chain: vec![ca.clone()],
    };
    let encrypt_req = |message: Vec<u8>| EncryptRequest {
        to: vec![EncryptTo::Certificates(cert.clone())],
        cipher: ContentCipher::Aes256Cbc,
        oaep: false,
        message,
        force: false,
    };
    let open_req = |message: Vec<u8>| OpenRequest {
        keys: vec![private.clone().into()],
        trust: vec![ca.clone()],
        message,
        // Every bench key signs the same message, From: the RSA key's address.
        allow_address_mismatch: true,
        ..OpenRequest::default()
    };

    // The inputs, and a check that they open as they should.
    let signed = rt.block_on(service.sign(sign_req(msg.to_vec())))?.message;
    let encrypted = rt.block_on(service.encrypt(encrypt_req(msg.to_vec())))?;
    let signed_enc = rt.block_on(service.encrypt(encrypt_req(signed.clone())))?;
    let verified = rt.block_on(service.open(open_req(signed.clone())))?;
    if verified.report.valid != Some(true) {
        bail!(
            "{}: the signed message does not verify: {:?}",
            key.name,
            verified.report
        );
    }
    let opened = rt.block_on(service.open(open_req(signed_enc.clone())))?;
    if opened.report.valid != Some(true) || opened.report.layers.len() != 2 {
        bail!(
            "{}: the signed+encrypted message does not open: {:?}",
            key.name,
            opened.report
        );
    }

    let mut out = Vec::new();
    out.push((
        "sign",
        measure(
            opts,
            || msg.to_vec(),
            |m| {
                rt.block_on(service.sign(sign_req(m)))?;
                Ok(())
            },
        )?,
    ));
    out.push((
        "verify",
        measure(
            opts,
            || signed.clone(),
            |m| {
                let r = rt.block_on(service.open(open_req(m)))?;
                anyhow::ensure!(r.report.valid == Some(true), "verify failed");
                Ok(())
            },
        )?,
    ));
    out.push((
        "encrypt",
        measure(
            opts,
            || msg.to_vec(),
            |m| {
                rt.block_on(service.encrypt(encrypt_req(m)))?;
                Ok(())
            },
        )?,
    ));
    out.push((
        "decrypt",
        measure(
            opts,
            || encrypted.clone(),
            |m| {
                rt.block_on(service.decrypt(DecryptRequest {
                    keys: vec![private.clone().into()],
                    message: m,
                }))?;
                Ok(())
            },
        )?,
    ));
    out.push((
        "open",
        measure(
            opts,
            || signed_enc.clone(),
            |m| {
                let r = rt.block_on(service.open(open_req(m)))?;
                anyhow::ensure!(r.report.valid == Some(true), "open failed");
                Ok(())
            },
        )?,
    ));
    Ok((out, signed_enc))
}

// ---------------------------------------------------------------------------------------
// Process against process

struct CliRow {
    op: &'static str,
    key: &'static str,
    smimekit_per_s: f64,
    openssl_per_s: f64,
}

impl CliRow {
    fn ratio(&self) -> f64 {
        self.smimekit_per_s / self.openssl_per_s
    }

    fn to_json(&self) -> Value {
        json!({
            "op": self.op,
            "key": self.key,
            "smimekit_msgs_per_s": self.smimekit_per_s,
            "openssl_cms_msgs_per_s": self.openssl_per_s,
            "ratio": self.ratio(),
        })
    }
}

fn command(program: &Path, args: &[&Path]) -> Command {
    let mut c = Command::new(program);
    c.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// Runs a command once, failing with its standard error.
fn run_once(mut cmd: Command) -> Result<Duration> {
    let shown = format!("{cmd:?}");
    let t0 = Instant::now();
    let out = cmd.output().with_context(|| format!("starting {shown}"))?;
    let took = t0.elapsed();
    if !out.status.success() {
        bail!(
            "{shown} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(took)
}

/// `n` sequential runs of each command, interleaved so load on the machine hits both alike.
/// Returns messages per second for each.
fn race(n: usize, a: &dyn Fn() -> Command, b: &dyn Fn() -> Command) -> Result<(f64, f64)> {
    run_once(a())?;
    run_once(b())?;
    let (mut ta, mut tb) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..n {
        ta += run_once(a())?;
        tb += run_once(b())?;
    }
    Ok((n as f64 / ta.as_secs_f64(), n as f64 / tb.as_secs_f64()))
}

fn bench_cli(opts: &Opts, smimekit: &Path, pki: &Pki, dir: &Path) -> Result<Vec<CliRow>> {
    let ossl = Path::new("openssl");
    let msg = dir.join("small.eml");
    let p = |s: &str| PathBuf::from(s);
    let mut rows = Vec::new();
    for key in &pki.keys {
        let (k, c, ca) = (&key.key, &key.cert, &pki.ca);
        let stem = key.name.to_lowercase();
        let signed = dir.join(format!("small-{stem}.signed.eml"));
        let enc = dir.join(format!("small-{stem}.enc.eml"));
        let null = p("/dev/null");
        // Inputs made by smimekit, read by both.
        run_once(command(
            smimekit,
            &[
                &p("sign"),
                &p("--key"),
                k,
                &p("--cert"),
                c,
                &p("--in"),
                &msg,
                &p("--out"),
                &signed,
            ],
        ))?;
        run_once(command(
            smimekit,
            &[
                &p("encrypt"),
                &p("--to"),
                c,
                &p("--in"),
                &msg,
                &p("--out"),
                &enc,
            ],
        ))?;

        let (a, b) = race(
            opts.cms_runs,
            &|| {
                command(
                    smimekit,
                    &[
                        &p("sign"),
                        &p("--key"),
                        k,
                        &p("--cert"),
                        c,
                        &p("--in"),
                        &msg,
                        &p("--out"),
                        &null,
                    ],
                )
            },
            &|| {
                command(
                    ossl,
                    &[
                        &p("cms"),
                        &p("-sign"),
                        &p("-md"),
                        &p("sha256"),
                        &p("-signer"),
                        c,
                        &p("-inkey"),
                        k,
                        &p("-in"),
                        &msg,
                        &p("-out"),
                        &null,
                    ],
                )
            },
        )?;
        rows.push(CliRow {
            op: "sign",
            key: key.name,
            smimekit_per_s: a,
            openssl_per_s: b,
        });

        let (a, b) = race(
            opts.cms_runs,
            &|| {
                command(
                    smimekit,
                    &[
                        &p("verify"),
                        &p("--trust"),
                        ca,
                        &p("--in"),
                        &signed,
                        &p("--out"),
                        &null,
                    ],
                )
            },
            &|| {
                command(
                    ossl,
                    &[
                        &p("cms"),
                        &p("-verify"),
                        &p("-CAfile"),
                        ca,
                        &p("-purpose"),
                        &p("smimesign"),
                        &p("-in"),
                        &signed,
                        &p("-out"),
                        &null,
                    ],
                )
            },
        )?;
        rows.push(CliRow {
            op: "verify",
            key: key.name,
            smimekit_per_s: a,
            openssl_per_s: b,
        });

        let (a, b) = race(
            opts.cms_runs,
            &|| {
                command(
                    smimekit,
                    &[
                        &p("encrypt"),
                        &p("--to"),
                        c,
                        &p("--in"),
                        &msg,
                        &p("--out"),
                        &null,
                    ],
                )
            },
            &|| {
                command(
                    ossl,
                    &[
                        &p("cms"),
                        &p("-encrypt"),
                        &p("-aes-256-cbc"),
                        &p("-in"),
                        &msg,
                        &p("-out"),
                        &null,
                        c,
                    ],
                )
            },
        )?;
        rows.push(CliRow {
            op: "encrypt",
            key: key.name,
            smimekit_per_s: a,
            openssl_per_s: b,
        });

        let (a, b) = race(
            opts.cms_runs,
            &|| {
                command(
                    smimekit,
                    &[
                        &p("decrypt"),
                        &p("--key"),
                        k,
                        &p("--cert"),
                        c,
                        &p("--in"),
                        &enc,
                        &p("--out"),
                        &null,
                    ],
                )
            },
            &|| {
                command(
                    ossl,
                    &[
                        &p("cms"),
                        &p("-decrypt"),
                        &p("-recip"),
                        c,
                        &p("-inkey"),
                        k,
                        &p("-in"),
                        &enc,
                        &p("-out"),
                        &null,
                    ],
                )
            },
        )?;
        rows.push(CliRow {
            op: "decrypt",
            key: key.name,
            smimekit_per_s: a,
            openssl_per_s: b,
        });
    }
    Ok(rows)
}

// ---------------------------------------------------------------------------------------
// Peak memory

struct Memory {
    input_bytes: u64,
    message_bytes: u64,
    smimekit_peak: u64,
    smimekit_secs: f64,
    openssl_decrypt_peak: Option<u64>,
}

impl Memory {
    fn to_json(&self) -> Value {
        json!({
            "input_file_bytes": self.input_bytes,
            "plaintext_bytes": self.message_bytes,
            "smimekit_open_peak_rss_bytes": self.smimekit_peak,
            "smimekit_open_wall_s": self.smimekit_secs,
            "peak_over_input": self.smimekit_peak as f64 / self.input_bytes as f64,
            "openssl_cms_decrypt_peak_rss_bytes": self.openssl_decrypt_peak,
        })
    }
}

/// Runs `program args…` to completion and returns its peak resident set (bytes) and wall
/// time.
///
/// The peak comes from `wait4`, but not taken here: Linux folds the parent's high-water mark
/// into `ru_maxrss` when a child spawned with vfork (as std does) calls exec, and this
/// process holds the 10 MiB messages. A fresh, small `xtask bench --rss-of` process spawns the
/// command instead and prints the figure.
pub(crate) fn peak_rss(program: &Path, args: &[String]) -> Result<(u64, Duration)> {
    let exe = std::env::current_exe().context("locating the xtask binary")?;
    let t0 = Instant::now();
    let out = Command::new(exe)
        .args(["bench", "--rss-of"])
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("starting the rss helper")?;
    let took = t0.elapsed();
    if !out.status.success() {
        bail!("{} {} failed", program.display(), args.join(" "));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let peak = text
        .trim()
        .parse()
        .with_context(|| format!("rss helper said {text:?}"))?;
    Ok((peak, took))
}

/// `xtask bench --rss-of PROGRAM ARGS…`: runs the command with no input or output (its report
/// on standard error dropped too) and prints
/// its `ru_maxrss` in bytes.
#[allow(unsafe_code)]
fn rss_helper(cmd: &[String]) -> Result<()> {
    let (program, args) = cmd.split_first().context("--rss-of needs a command")?;
    let shown = cmd.join(" ");
    let child = Command::new(program)
        .args(args)
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
    drop(child);
    if rc != pid {
        bail!("wait4 on {shown}: {}", std::io::Error::last_os_error());
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        bail!("{shown} failed (wait status {status})");
    }
    // Linux reports ru_maxrss in KiB.
    println!("{}", usage.ru_maxrss as u64 * 1024);
    Ok(())
}

fn bench_memory(smimekit: &Path, pki: &Pki, file: &Path) -> Result<Memory> {
    let rsa = pki
        .keys
        .iter()
        .find(|k| k.name == "RSA-2048")
        .context("no RSA key")?;
    let s = |p: &Path| p.display().to_string();
    let (key, cert, ca, input) = (s(&rsa.key), s(&rsa.cert), s(&pki.ca), s(file));
    let args = |a: &[&str]| a.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let (smimekit_peak, took) = peak_rss(
        smimekit,
        &args(&[
            "open",
            "--key",
            &key,
            "--key-cert",
            &cert,
            "--trust",
            &ca,
            "--in",
            &input,
            "--out",
            "/dev/null",
        ]),
    )?;
    let openssl_decrypt_peak = peak_rss(
        Path::new("openssl"),
        &args(&[
            "cms",
            "-decrypt",
            "-recip",
            &cert,
            "-inkey",
            &key,
            "-in",
            &input,
            "-out",
            "/dev/null",
        ]),
    )
    .ok()
    .map(|(p, _)| p);
    Ok(Memory {
        input_bytes: fs::metadata(file)?.len(),
        message_bytes: LARGE as u64,
        smimekit_peak,
        smimekit_secs: took.as_secs_f64(),
        openssl_decrypt_peak,
    })
}

// ---------------------------------------------------------------------------------------
// Targets and the report

struct Target {
    name: String,
    measured: String,
    reference: String,
    ratio: f64,
    goal: String,
    pass: bool,
}

impl Target {
    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "measured": self.measured,
            "reference": self.reference,
            "ratio": self.ratio,
            "goal": self.goal,
            "pass": self.pass,
        })
    }
}

fn find<'a>(rows: &'a [Row], key: &str, size: usize, op: &str) -> Option<&'a Row> {
    rows.iter()
        .find(|r| r.key == key && r.size == size && r.op == op)
}

fn targets(rows: &[Row], speed: &Speed, cli: &[CliRow], mem: &Memory) -> Vec<Target> {
    let mut t = Vec::new();
    if let Some(r) = find(rows, "RSA-2048", SMALL, "sign") {
        let ratio = r.m.cpu_ops / speed.rsa2048_sign;
        t.push(Target {
            name: "4 KiB sign RSA-2048 vs openssl speed rsa2048 sign".into(),
            measured: format!("{:.0}/s", r.m.cpu_ops),
            reference: format!("{:.0}/s", speed.rsa2048_sign),
            ratio,
            goal: format!(">= {SIGN_VS_OPENSSL:.2}x"),
            pass: ratio >= SIGN_VS_OPENSSL,
        });
    }
    for key in ["RSA-2048", "P-256"] {
        if let Some(r) = find(rows, key, LARGE, "open") {
            let ratio = r.mb_s() * MB / speed.combined();
            t.push(Target {
                name: format!("10 MiB open (decrypt+verify) {key} vs AES-256-CBC+SHA-256"),
                measured: format!("{:.0} MB/s", r.mb_s()),
                reference: format!("{:.0} MB/s", speed.combined() / MB),
                ratio,
                goal: format!(">= {OPEN_VS_AES_SHA:.2}x"),
                pass: ratio >= OPEN_VS_AES_SHA,
            });
        }
    }
    let ratio = mem.smimekit_peak as f64 / mem.input_bytes as f64;
    t.push(Target {
        name: "10 MiB open peak RSS (smimekit open) vs input file".into(),
        measured: format!("{:.1} MiB", mem.smimekit_peak as f64 / 1048576.0),
        reference: format!("{:.1} MiB", mem.input_bytes as f64 / 1048576.0),
        ratio,
        goal: format!("<= {PEAK_RSS_FACTOR:.1}x"),
        pass: ratio <= PEAK_RSS_FACTOR,
    });
    for r in cli {
        t.push(Target {
            name: format!("smimekit {} {} vs openssl cms (msgs/s, 4 KiB)", r.op, r.key),
            measured: format!("{:.1}/s", r.smimekit_per_s),
            reference: format!("{:.1}/s", r.openssl_per_s),
            ratio: r.ratio(),
            goal: format!(">= {CLI_VS_CMS:.1}x"),
            pass: r.ratio() >= CLI_VS_CMS,
        });
    }
    t
}

fn print_report(
    opts: &Opts,
    rows: &[Row],
    speed: &Speed,
    cli: &[CliRow],
    mem: &Memory,
    targets: &[Target],
) {
    println!();
    println!(
        "smimekit bench{} ({})",
        if opts.quick { " --quick" } else { "" },
        openssl_version()
    );
    println!();
    println!(
        "openssl speed -seconds {} -mr (per CPU-second):",
        opts.speed_seconds
    );
    println!(
        "  RSA-2048      {:>10.0} sign/s {:>10.0} verify/s",
        speed.rsa2048_sign, speed.rsa2048_verify
    );
    println!(
        "  ECDSA P-256   {:>10.0} sign/s {:>10.0} verify/s",
        speed.p256_sign, speed.p256_verify
    );
    println!(
        "  AES-256-CBC   {:>10.0} MB/s   (16384-byte blocks)",
        speed.aes256cbc / MB
    );
    println!(
        "  SHA-256       {:>10.0} MB/s   (16384-byte blocks)",
        speed.sha256 / MB
    );
    println!(
        "  AES+SHA-256   {:>10.0} MB/s   combined, 1/(1/aes + 1/sha)",
        speed.combined() / MB
    );
    println!();
    println!(
        "in-process, smimekit-service (median of {} runs; per CPU-second; MB = 10^6 bytes of plaintext):",
        opts.runs
    );
    println!(
        "  {:<9} {:<8} {:>12} {:>10} {:>12} {:>10}",
        "key", "op", "4 KiB op/s", "MB/s", "10 MiB op/s", "MB/s"
    );
    let mut keys: Vec<&str> = rows.iter().map(|r| r.key).collect();
    keys.dedup();
    for key in keys {
        for op in ["sign", "verify", "encrypt", "decrypt", "open"] {
            let cell = |size| match find(rows, key, size, op) {
                Some(r) => format!("{:>12.1} {:>10.1}", r.m.cpu_ops, r.mb_s()),
                None => format!("{:>12} {:>10}", "-", "-"),
            };
            println!("  {key:<9} {op:<8} {} {}", cell(SMALL), cell(LARGE));
        }
    }
    let busy = rows
        .iter()
        .map(|r| r.m.cpu_ops / r.m.wall_ops)
        .fold(0.0f64, f64::max);
    if busy > 1.25 {
        println!(
            "  note: wall-clock rates were up to {busy:.1}x lower than CPU rates (a busy machine); see bench.json"
        );
    }
    println!();
    println!(
        "process per message, 4 KiB, {} sequential runs each (wall clock):",
        opts.cms_runs
    );
    println!(
        "  {:<9} {:<8} {:>14} {:>14} {:>7}",
        "key", "op", "smimekit msg/s", "openssl cms", "ratio"
    );
    for r in cli {
        println!(
            "  {:<9} {:<8} {:>14.1} {:>14.1} {:>6.2}x",
            r.key,
            r.op,
            r.smimekit_per_s,
            r.openssl_per_s,
            r.ratio()
        );
    }
    println!();
    println!("peak memory, smimekit open of the 10 MiB signed+encrypted message:");
    println!(
        "  input file {:.1} MiB (plaintext {:.1} MiB), peak RSS {:.1} MiB = {:.2}x the input, {:.2} s",
        mem.input_bytes as f64 / 1048576.0,
        mem.message_bytes as f64 / 1048576.0,
        mem.smimekit_peak as f64 / 1048576.0,
        mem.smimekit_peak as f64 / mem.input_bytes as f64,
        mem.smimekit_secs,
    );
    if let Some(p) = mem.openssl_decrypt_peak {
        println!(
            "  (openssl cms -decrypt of the same file: peak RSS {:.1} MiB)",
            p as f64 / 1048576.0
        );
    }
    println!();
    println!("targets:");
    println!(
        "  {:<62} {:>12} {:>12} {:>7} {:>8}  result",
        "", "measured", "reference", "ratio", "goal"
    );
    for t in targets {
        println!(
            "  {:<62} {:>12} {:>12} {:>6.2}x {:>8}  {}",
            t.name,
            t.measured,
            t.reference,
            t.ratio,
            t.goal,
            if t.pass { "PASS" } else { "MISS" }
        );
    }
}
