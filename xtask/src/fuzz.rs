//! `cargo xtask fuzz`: the coverage-guided fuzz targets of `fuzz/` (libFuzzer).
//!
//! * `cargo xtask fuzz --list`: the targets and what each one exercises;
//! * `cargo xtask fuzz TARGET [--time S] [--runs N] [--sanitizer address]`: builds the
//!   targets, seeds `fuzz/corpus/TARGET` from the interop corpus (`../shared/corpus`) and the
//!   project's test PKI, and fuzzes TARGET for S seconds (default 60), niced, on one core.
//!   The executions are added to `fuzz/STATS.md`; a crash leaves its input in
//!   `fuzz/artifacts/TARGET/` and fails the task;
//! * `cargo xtask fuzz all --time S`: every target in turn;
//! * `cargo xtask fuzz build`: only builds them;
//! * `--no-build` runs the targets as last built (long runs while the tree changes);
//! * `cargo xtask fuzz smoke [--runs N]`: what `cargo xtask test` runs: every target on its
//!   seeds plus N mutations (default 10,000), in a throwaway corpus.
//!
//! The targets are built without cargo-fuzz, with the flags cargo-fuzz passes (coverage
//! counters, comparison tracing, `--cfg fuzzing`, for the host triple only so that build
//! scripts and proc macros are not instrumented), into `fuzz/target`. No nightly toolchain
//! is needed unless a sanitizer is asked for (`-Zsanitizer`, under `RUSTC_BOOTSTRAP=1`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::{cargo, root};

/// The targets, in the order `all` and `smoke` run them, with what each exercises.
pub const TARGETS: &[(&str, &str)] = &[
    (
        "open",
        "`open` end to end: MIME or raw CMS, every layer, soft RSA and EC keys",
    ),
    (
        "cms_signed",
        "SignedData parse and verify (encapsulated or detached content)",
    ),
    (
        "cms_envelope",
        "EnvelopedData / AuthEnvelopedData decryption with soft RSA and EC keys",
    ),
    (
        "mime",
        "MIME parse, parts, transfer decoding, canonicalisation, QP/base64 round trips",
    ),
    (
        "ber",
        "the BER reader and the BER-to-DER normaliser (DER is a fixed point)",
    ),
    (
        "containers",
        "PEM/DER/p7b/.sst certificate containers with write/read round trips",
    ),
    ("certinfo", "certificate facts read from any DER"),
    (
        "csr",
        "PKCS#10 requests, parsed and self-signature verified",
    ),
    (
        "pkcs12",
        "PKCS#12: PFX walk, MACs, encrypted safes, shrouded keys",
    ),
    (
        "ldap_value",
        "LDAP SearchResultEntry BER and userSMIMECertificate values",
    ),
    (
        "exchange_response",
        "Exchange Online answer pages, CLIXML, byte values, error bodies",
    ),
    (
        "plugin_abi_list",
        "the plugin ABI list decoder (decode/encode round trip)",
    ),
    ("config", "the TOML configuration file"),
    (
        "deploy",
        "the deploy file and the CSV and certificate files it names",
    ),
];

/// The host triple the targets are built for (RUSTFLAGS then skip build scripts).
const TRIPLE: &str = "x86_64-unknown-linux-gnu";

/// Seeds larger than this are left out (they slow every mutation down).
const MAX_SEED: u64 = 128 * 1024;

/// Targets whose inputs libFuzzer keeps shorter than the largest seed (`-max_len`; longer
/// corpus files are read truncated). `mime` encodes and decodes its whole input four times
/// under instrumentation (compare tracing on every byte of the quoted-printable and base64
/// loops was most of a profile): at 128 KiB a run managed about 250 executions per second,
/// at 16 KiB a few hundred on a busy machine. Larger MIME input is the adversarial benchmark's and the bad-input
/// suite's (limits on header blocks and part counts).
const MAX_LEN: &[(&str, usize)] = &[("mime", 4 * 1024)];

fn fuzz_dir() -> PathBuf {
    root().join("fuzz")
}

fn usage() -> Result<()> {
    eprintln!(
        "usage: cargo xtask fuzz --list | TARGET [--time S] [--runs N] [--sanitizer address] [--no-build] | all --time S | build | smoke [--runs N]"
    );
    bail!("bad arguments to `cargo xtask fuzz`")
}

pub fn run(args: &[String]) -> Result<()> {
    let Some(first) = args.first() else {
        return usage();
    };
    if first == "--list" {
        for (name, what) in TARGETS {
            println!("{name:<18} {what}");
        }
        return Ok(());
    }
    let mut time = 60u64;
    let mut runs: Option<u64> = None;
    let mut sanitizer: Option<String> = None;
    let mut no_build = false;
    let mut rest = args[1..].iter();
    while let Some(a) = rest.next() {
        let mut value = || {
            rest.next()
                .with_context(|| format!("{a} needs a value"))
                .cloned()
        };
        match a.as_str() {
            "--time" => time = value()?.parse().context("--time takes seconds")?,
            "--runs" => runs = Some(value()?.parse().context("--runs takes a number")?),
            "--sanitizer" => sanitizer = Some(value()?),
            "--no-build" => no_build = true,
            _ => return usage(),
        }
    }
    match first.as_str() {
        "build" => build(sanitizer.as_deref()),
        "smoke" => smoke(runs.unwrap_or(10_000)).map(|_| ()),
        "all" => {
            if !no_build {
                build(sanitizer.as_deref())?;
            }
            // A crash in one target does not stop the others; the task fails at the end.
            let mut failed = Vec::new();
            for (name, _) in TARGETS {
                if let Err(e) = fuzz(name, time, runs, sanitizer.as_deref()) {
                    eprintln!("{e:#}");
                    failed.push(*name);
                }
            }
            if !failed.is_empty() {
                bail!(
                    "fuzz all: {} target(s) failed: {} (inputs in fuzz/artifacts/)",
                    failed.len(),
                    failed.join(", ")
                );
            }
            Ok(())
        }
        name if TARGETS.iter().any(|(n, _)| *n == name) => {
            if !no_build {
                build(sanitizer.as_deref())?;
            }
            fuzz(name, time, runs, sanitizer.as_deref())
        }
        other => bail!(
            "no fuzz target {other:?} (known: {})",
            TARGETS
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Whether this machine can build libFuzzer targets: a C++ compiler for libFuzzer itself and
/// a rustc that runs the coverage pass. `Err` says what is missing.
fn toolchain_ready() -> Result<(), String> {
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    match Command::new(&cxx).arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => return Err(format!("no C++ compiler ({cxx}) to build libFuzzer")),
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let src = dir.path().join("probe.rs");
    std::fs::write(&src, "pub fn f(x: u8) -> bool { x == 7 }\n").map_err(|e| e.to_string())?;
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(&rustc)
        .args([
            "--crate-type",
            "lib",
            "--emit",
            "obj",
            "-Cpasses=sancov-module",
        ])
        .args(["-Cllvm-args=-sanitizer-coverage-level=4", "-o"])
        .arg(dir.path().join("probe.o"))
        .arg(&src)
        .output()
        .map_err(|e| format!("{rustc}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{rustc} cannot run the coverage pass: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// Builds every target, instrumented, into `fuzz/target`.
fn build(sanitizer: Option<&str>) -> Result<()> {
    let mut flags = [
        "-Cpasses=sancov-module",
        "-Cllvm-args=-sanitizer-coverage-level=4",
        "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
        "-Cllvm-args=-sanitizer-coverage-pc-table",
        "-Cllvm-args=-sanitizer-coverage-trace-compares",
        "-Cllvm-args=-sanitizer-coverage-stack-depth",
        "-Cllvm-args=-simplifycfg-branch-fold-threshold=0",
        "--cfg",
        "fuzzing",
    ]
    .join(" ");
    let mut c = niced(cargo());
    if let Some(s) = sanitizer {
        // Sanitizers are unstable: a stable rustc accepts them under RUSTC_BOOTSTRAP.
        flags.push_str(&format!(" -Zsanitizer={s}"));
        c.env("RUSTC_BOOTSTRAP", "1");
    }
    let started = Instant::now();
    let target_dir = fuzz_dir().join(match sanitizer {
        None => "target".to_string(),
        Some(s) => format!("target/{s}"),
    });
    let status = c
        .args([
            "build",
            "--release",
            "--bins",
            "--target",
            TRIPLE,
            "--manifest-path",
        ])
        .arg(fuzz_dir().join("Cargo.toml"))
        .env("RUSTFLAGS", flags)
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(fuzz_dir())
        .status()
        .context("starting cargo build for fuzz/")?;
    if !status.success() {
        bail!("building the fuzz targets failed ({status})");
    }
    eprintln!(
        "fuzz: targets built in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn binary(name: &str, sanitizer: Option<&str>) -> PathBuf {
    let base = match sanitizer {
        None => fuzz_dir().join("target"),
        Some(s) => fuzz_dir().join("target").join(s),
    };
    base.join(TRIPLE).join("release").join(name)
}

/// `nice -n 19 CMD` where `nice` exists (the machine is shared), else CMD. Arguments,
/// environment and folder are carried over; standard streams are set on the result.
fn niced(cmd: Command) -> Command {
    let has_nice = Command::new("nice")
        .arg("true")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_nice {
        return cmd;
    }
    let mut n = Command::new("nice");
    n.args(["-n", "19"])
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => n.env(k, v),
            None => n.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        n.current_dir(dir);
    }
    n
}

/// What one libFuzzer run did.
struct Outcome {
    runs: u64,
    seconds: u64,
    crashed: bool,
    log: PathBuf,
}

/// Runs one target on `corpus` (seeded first) and reads its figures. Its log is
/// `fuzz/logs/NAME.log`, or `NAME.smoke.log` for a smoke run (`smoke`): a smoke run beside a
/// long one (`cargo xtask test` while a campaign runs) must not truncate the long one's log,
/// whose last lines are its figures.
fn run_target(
    name: &str,
    corpus: &Path,
    libfuzzer_args: &[String],
    sanitizer: Option<&str>,
    smoke: bool,
) -> Result<Outcome> {
    let artifacts = fuzz_dir().join("artifacts").join(name);
    std::fs::create_dir_all(&artifacts)?;
    let logs = fuzz_dir().join("logs");
    std::fs::create_dir_all(&logs)?;
    let log = logs.join(if smoke {
        format!("{name}.smoke.log")
    } else {
        format!("{name}.log")
    });
    let log_file =
        std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let mut c = Command::new(binary(name, sanitizer));
    c.arg(corpus)
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .args(["-timeout=20", "-rss_limit_mb=2048", "-print_final_stats=1"])
        .args(
            MAX_LEN
                .iter()
                .filter(|(n, _)| *n == name)
                .map(|(_, len)| format!("-max_len={len}")),
        )
        .args(libfuzzer_args)
        .env("SMIMEKIT_CORPUS", shared_corpus());
    let started = Instant::now();
    let status = niced(c)
        .stdout(Stdio::null())
        .stderr(log_file)
        .status()
        .with_context(|| format!("starting fuzz target {name} (is it built?)"))?;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    // "Done 123456 runs in 60 second(s)"
    let (mut runs, mut seconds) = (0, started.elapsed().as_secs());
    for line in text.lines() {
        // "#4096\tpulse  cov: …": the executions so far (all a crashed run leaves).
        if let Some(n) = line
            .strip_prefix('#')
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
        {
            runs = runs.max(n);
        }
        if let Some(rest) = line.strip_prefix("Done ") {
            let words: Vec<&str> = rest.split_whitespace().collect();
            if let [n, "runs", "in", s, ..] = words.as_slice() {
                runs = n.parse().unwrap_or(0);
                seconds = s.parse().unwrap_or(seconds);
            }
        }
    }
    Ok(Outcome {
        runs,
        seconds,
        crashed: !status.success(),
        log,
    })
}

/// The last lines of a failed run's log, and the inputs it left.
fn crash_report(name: &str, o: &Outcome) -> String {
    let text = std::fs::read_to_string(&o.log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(40)..].join("\n");
    format!(
        "fuzz target {name} failed (log {}):\n{tail}",
        o.log.display()
    )
}

/// One target for `time` seconds (or `runs` executions) on its persistent corpus.
fn fuzz(name: &str, time: u64, runs: Option<u64>, sanitizer: Option<&str>) -> Result<()> {
    let corpus = fuzz_dir().join("corpus").join(name);
    let seeded = seed(name, &corpus)?;
    let mut args = vec![format!("-max_total_time={time}")];
    if let Some(n) = runs {
        args.push(format!("-runs={n}"));
    }
    eprintln!(
        "fuzz: {name} for {time} s ({seeded} seeds added to {})",
        corpus.display()
    );
    let o = run_target(name, &corpus, &args, sanitizer, false)?;
    record(name, &o)?;
    if o.crashed {
        bail!("{}", crash_report(name, &o));
    }
    println!("fuzz {name}: {} executions in {} s", o.runs, o.seconds);
    Ok(())
}

/// Every target on its seeds plus `mutations` more inputs, in a throwaway corpus. Returns
/// the number of targets run; `Ok(0)` with a message when the toolchain cannot build them.
pub fn smoke(mutations: u64) -> Result<usize> {
    if let Err(why) = toolchain_ready() {
        println!("fuzz smoke: SKIPPED, the fuzz toolchain is not usable here: {why}");
        return Ok(0);
    }
    build(None)?;
    let mut failed = Vec::new();
    for (name, _) in TARGETS {
        let dir = tempfile::tempdir()?;
        let seeds = seed(name, dir.path())?;
        let args = [
            format!("-runs={}", seeds as u64 + mutations),
            // A guard, not a figure: the runs above end far sooner.
            "-max_total_time=120".to_string(),
        ];
        let o = run_target(name, dir.path(), &args, None, true)?;
        if o.crashed {
            eprintln!("{}", crash_report(name, &o));
            failed.push(*name);
        } else {
            println!(
                "fuzz smoke {name}: ok, {} seeds, {} executions in {} s",
                seeds, o.runs, o.seconds
            );
        }
    }
    if !failed.is_empty() {
        bail!(
            "fuzz smoke: {} target(s) failed: {} (inputs in fuzz/artifacts/)",
            failed.len(),
            failed.join(", ")
        );
    }
    println!("fuzz smoke: {} passed, 0 failed", TARGETS.len());
    Ok(TARGETS.len())
}

fn shared_corpus() -> PathBuf {
    match std::env::var_os("SMIMEKIT_CORPUS") {
        Some(dir) => PathBuf::from(dir),
        None => root().join("../shared/corpus"),
    }
}

/// Every file under `dir`, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if e.metadata().is_ok_and(|m| m.len() <= MAX_SEED) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn ext(p: &Path) -> String {
    p.extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// The CMS objects of a message file: raw CMS (DER/BER, PEM armour) as it is, and the
/// `application/pkcs7-*` bodies of a MIME message (a multipart/signed's signature part).
fn cms_objects(bytes: &[u8]) -> Vec<Vec<u8>> {
    use smimekit_message::mime;
    let mut out = Vec::new();
    if bytes.first() == Some(&0x30) {
        out.push(bytes.to_vec());
        return out;
    }
    if let Some(der) = pem_body(bytes, &["PKCS7", "CMS", "PKCS #7 SIGNED DATA"]) {
        out.push(der);
        return out;
    }
    let mut stack = vec![bytes.to_vec()];
    while let Some(data) = stack.pop() {
        let Ok(entity) = mime::parse(&data) else {
            continue;
        };
        let ct = entity.content_type();
        if ct.mime_type.contains("pkcs7") {
            if let Ok(body) = entity.decoded_body()
                && body.first() == Some(&0x30)
            {
                out.push(body);
            }
        } else if ct.is_multipart()
            && let Ok(parts) = entity.parts()
        {
            stack.extend(parts.iter().map(|p| p.to_vec()));
        }
    }
    out
}

/// The first PEM block with one of `labels`, decoded.
fn pem_body(bytes: &[u8], labels: &[&str]) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let text = std::str::from_utf8(bytes).ok()?;
    for label in labels {
        let begin = format!("-----BEGIN {label}-----");
        let end = format!("-----END {label}-----");
        if let Some(b) = text.find(&begin) {
            let rest = &text[b + begin.len()..];
            let e = rest.find(&end)?;
            let b64: String = rest[..e].split_whitespace().collect();
            return base64::engine::general_purpose::STANDARD.decode(b64).ok();
        }
    }
    None
}

/// Whether DER/BER bytes contain the encoding of an OID (as a quick content-type test).
fn has_oid(der: &[u8], oid_content: &[u8]) -> bool {
    let mut tlv = vec![0x06, oid_content.len() as u8];
    tlv.extend_from_slice(oid_content);
    der.windows(tlv.len()).take(64).any(|w| w == tlv.as_slice())
}

const OID_ENVELOPED: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03];
const OID_AUTH_ENVELOPED: &[u8] = &[
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x01, 0x17,
];

/// The certificates in the corpus and the test PKI, DER.
fn certificates(corpus: &[PathBuf]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let pki = root().join("tests/fixtures/pki");
    let candidates = corpus
        .iter()
        .filter(|p| {
            matches!(
                ext(p).as_str(),
                "pem" | "cer" | "crt" | "der" | "p7b" | "sst"
            )
        })
        .cloned()
        .chain(files_under(&pki).into_iter().filter(|p| ext(p) == "pem"));
    for p in candidates {
        let Ok(bytes) = std::fs::read(&p) else {
            continue;
        };
        if let Ok(certs) = smimekit_pki::load_certificates(&bytes, &p.display().to_string()) {
            for c in certs {
                let der = c.as_bytes().to_vec();
                if !out.contains(&der) {
                    out.push(der);
                }
            }
        }
    }
    out
}

/// The seeds of one target, by name: files of the interop corpus chosen by kind, and inputs
/// made here from the test PKI (CSRs, LDAP entries, Exchange pages, ABI lists, configs).
fn seeds(name: &str) -> Result<Vec<(String, Vec<u8>)>> {
    let corpus_dir = shared_corpus();
    let corpus = files_under(&corpus_dir);
    let rel = |p: &Path| -> String {
        p.strip_prefix(&corpus_dir)
            .unwrap_or(p)
            .display()
            .to_string()
            .replace(['/', ' '], "_")
    };
    let read = |exts: &[&str]| -> Vec<(String, Vec<u8>)> {
        corpus
            .iter()
            .filter(|p| exts.contains(&ext(p).as_str()))
            .filter_map(|p| Some((rel(p), std::fs::read(p).ok()?)))
            .collect()
    };
    const MESSAGES: &[&str] = &[
        "eml", "bin", "cms", "der", "pkcs7", "mime", "env", "p7m", "p7s", "pem", "txt",
    ];
    let cms = || -> Vec<(String, Vec<u8>)> {
        read(MESSAGES)
            .into_iter()
            .flat_map(|(n, b)| {
                cms_objects(&b)
                    .into_iter()
                    .enumerate()
                    .map(move |(i, der)| (format!("{n}.cms{i}"), der))
            })
            .collect()
    };
    let pki = root().join("tests/fixtures/pki");
    let certs = || certificates(&corpus);
    Ok(match name {
        "open" => read(&["eml", "bin", "cms", "pkcs7", "mime", "env", "p7m", "p7s"]),
        "cms_signed" => cms(),
        "cms_envelope" => cms()
            .into_iter()
            .filter_map(|(n, der)| {
                let mode = if has_oid(&der, OID_AUTH_ENVELOPED) {
                    1
                } else if has_oid(&der, OID_ENVELOPED) {
                    0
                } else {
                    return None;
                };
                let mut seed = vec![mode];
                seed.extend(der);
                Some((n, seed))
            })
            .collect(),
        "mime" => read(&["eml", "mime", "txt", "textplain"]),
        "ber" => {
            let mut s = cms();
            s.extend(read(&["crl", "p12", "pfx", "cer", "crt", "p7b"]));
            s
        }
        "containers" => read(&["pem", "cer", "crt", "der", "p7b", "sst"]),
        "certinfo" => certs()
            .into_iter()
            .enumerate()
            .map(|(i, c)| (format!("cert{i}"), c))
            .collect(),
        "csr" => csr_seeds(&pki)?,
        "pkcs12" => {
            let mut s = read(&["p12", "pfx", "pkcs12"]);
            for f in ["alice.p12", "bob.p12", "carol.p12"] {
                s.push((format!("pki_{f}"), std::fs::read(pki.join(f))?));
            }
            s
        }
        "ldap_value" => {
            let certs = certs();
            let mut s: Vec<(String, Vec<u8>)> = read(&["p7b"]);
            for (i, c) in certs.iter().take(8).enumerate() {
                let p7 = smimekit_pki::write_p7b(&[smimekit_core::CertDer::new(c.clone())]);
                s.push((format!("entry{i}"), ldap_entry(c, &p7)));
                s.push((format!("smime{i}"), p7));
            }
            s
        }
        "exchange_response" => exchange_pages(&certs()),
        "plugin_abi_list" => vec![
            ("empty".into(), Vec::new()),
            (
                "three".into(),
                smimekit_plugin_abi::list::encode([
                    &b"alice@example.org"[..],
                    b"",
                    b"\x30\x03\x02\x01\x00",
                ]),
            ),
        ],
        "config" => toml_blocks(|_| true),
        "deploy" => {
            let csv = b"address,kind,certificate,directories\ncarol@example.org,contact,certs/carol@example.org.pem,corp;exo\n";
            // One deploy file of each shape, whatever the README holds.
            let own = "directories = [\"exo\", \"corp\"]\n\n[trust]\ncertificates = [\"ca/root.pem\", \"ca/issuing.pem\"]\n\n[policy]\nremove_expired = true\nrenew_before_days = 30\nunmanaged = \"keep\"\n\n[[people]]\naddress = \"alice@example.org\"\nkind = \"mailbox\"\ncertificates = [\"certs/alice@example.org.pem\"]\ndirectories = [\"exo\"]\n\n[[people]]\naddress = \"bob@example.org\"\ncertificates = \"certs\"\n\n[[people_from]]\ncsv = \"people.csv\"\n";
            let mut s = Vec::new();
            for (n, text) in [("own".to_string(), own.as_bytes().to_vec())]
                .into_iter()
                .chain(toml_blocks(|b| {
                    b.contains("[[people") || b.contains("[trust]")
                }))
            {
                let mut with_csv = text.clone();
                with_csv.push(0);
                with_csv.extend_from_slice(csv);
                s.push((format!("{n}.csv"), with_csv));
                s.push((n, text));
            }
            s
        }
        other => bail!("no seeds for {other}"),
    })
}

/// Copies the seeds of `name` into `dir` (existing files are kept). Returns how many.
fn seed(name: &str, dir: &Path) -> Result<usize> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let seeds = seeds(name)?;
    let mut names = BTreeMap::new();
    for (n, bytes) in &seeds {
        // Names stay unique when two sources sanitise to the same one.
        let count = names.entry(n.clone()).or_insert(0u32);
        *count += 1;
        let file = if *count == 1 {
            format!("seed-{n}")
        } else {
            format!("seed-{n}.{count}")
        };
        let path = dir.join(file);
        if !path.exists() {
            std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(seeds.len())
}

/// PKCS#10 requests for the test PKI's keys, from `openssl req` (DER and PEM).
fn csr_seeds(pki: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for key in ["alice", "bob", "carol"] {
        for form in ["DER", "PEM"] {
            let o = Command::new("openssl")
                .args(["req", "-new", "-key"])
                .arg(pki.join(format!("{key}.key")))
                .args([
                    "-subj",
                    &format!("/CN={key}/emailAddress={key}@example.org"),
                ])
                .args([
                    "-addext",
                    &format!("subjectAltName=email:{key}@example.org"),
                ])
                .args(["-outform", form])
                .output()
                .context("running openssl req for the CSR seeds")?;
            if !o.status.success() {
                bail!(
                    "openssl req failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
            }
            out.push((format!("{key}.{}", form.to_ascii_lowercase()), o.stdout));
        }
    }
    Ok(out)
}

/// A SearchResultEntry as an OpenLDAP or AD server sends it, holding `cert` and `p7`.
fn ldap_entry(cert: &[u8], p7: &[u8]) -> Vec<u8> {
    use smimekit_pki::asn1::{constructed, octet_string, seq};
    let attr = |name: &str, values: &[&[u8]]| {
        let vals: Vec<Vec<u8>> = values.iter().map(|v| octet_string(v)).collect();
        let refs: Vec<&[u8]> = vals.iter().map(Vec::as_slice).collect();
        seq(&[&octet_string(name.as_bytes()), &constructed(0x31, &refs)])
    };
    let attrs = [
        attr("mail", &[b"alice@example.org"]),
        attr(
            "proxyAddresses",
            &[b"SMTP:alice@example.org", b"smtp:a@example.org"],
        ),
        attr("objectClass", &[b"inetOrgPerson"]),
        attr("userCertificate;binary", &[cert]),
        attr("userSMIMECertificate", &[p7]),
    ];
    let refs: Vec<&[u8]> = attrs.iter().map(Vec::as_slice).collect();
    constructed(
        0x64,
        &[&octet_string(b"cn=alice,dc=example,dc=org"), &seq(&refs)],
    )
}

/// InvokeCommand answer pages in each byte encoding the service uses, one CLIXML item, an
/// error body.
fn exchange_pages(certs: &[Vec<u8>]) -> Vec<(String, Vec<u8>)> {
    use base64::Engine as _;
    let b64 = |c: &[u8]| base64::engine::general_purpose::STANDARD.encode(c);
    let Some(c) = certs.first() else {
        return Vec::new();
    };
    let ints: Vec<String> = c.iter().take(64).map(u8::to_string).collect();
    let plain = serde_json::json!({
        "@odata.context": "https://outlook.office365.com/adminapi/beta/$metadata#Collection",
        "value": [
            {"PrimarySmtpAddress": "alice@example.org", "UserCertificate": [b64(c)]},
            {"ExternalEmailAddress": "SMTP:bob@example.org", "UserCertificate": {"Data": b64(c)}},
            {"PrimarySmtpAddress": "carol@example.org", "UserCertificate": serde_json::Value::Null},
        ],
        "@odata.nextLink": "https://outlook.office365.com/adminapi/beta/t/InvokeCommand?$skiptoken=1"
    });
    let clixml = format!(
        "<Objs Version=\"1.1.0.1\" xmlns=\"http://schemas.microsoft.com/powershell/2004/04\"><Obj RefId=\"0\"><MS><S N=\"PrimarySmtpAddress\">alice@example.org</S><Obj N=\"UserCertificate\" RefId=\"1\"><LST><BA>{}</BA></LST></Obj></MS></Obj></Objs>",
        b64(c)
    );
    let clixml_page = serde_json::json!({"value": [{"_clixml": clixml}]});
    let ints_page = format!(
        "{{\"value\":[{{\"PrimarySmtpAddress\":\"alice@example.org\",\"UserCertificate\":[[{}]]}}]}}",
        ints.join(",")
    );
    let error = serde_json::json!({"error": {"code": "BadRequest", "message": "x", "details": [{"message": "Id|Microsoft.Exchange.Type|text"}]}});
    vec![
        ("plain.json".into(), plain.to_string().into_bytes()),
        ("clixml.json".into(), clixml_page.to_string().into_bytes()),
        ("ints.json".into(), ints_page.into_bytes()),
        ("error.json".into(), error.to_string().into_bytes()),
    ]
}

/// The ```toml blocks of the README and docs/ (the documented configuration and deploy
/// file examples) that `keep` accepts.
fn toml_blocks(keep: impl Fn(&str) -> bool) -> Vec<(String, Vec<u8>)> {
    let mut docs = vec![root().join("README.md")];
    docs.extend(
        files_under(&root().join("docs"))
            .into_iter()
            .filter(|p| ext(p) == "md"),
    );
    let mut out = Vec::new();
    for doc in docs {
        let text = std::fs::read_to_string(&doc).unwrap_or_default();
        let mut block: Option<String> = None;
        for line in text.lines() {
            let t = line.trim_start();
            match &mut block {
                None if t.starts_with("```toml") => block = Some(String::new()),
                Some(b) if t.starts_with("```") => {
                    let stem = doc.file_stem().and_then(|s| s.to_str()).unwrap_or("doc");
                    if keep(b) {
                        out.push((
                            format!("{stem}{}", out.len()),
                            std::mem::take(b).into_bytes(),
                        ));
                    }
                    block = None;
                }
                Some(b) => {
                    b.push_str(t);
                    b.push('\n');
                }
                None => {}
            }
        }
    }
    out
}

/// Adds a run's figures to `fuzz/STATS.md` (executions and seconds per target, summed over
/// runs, and the runs that found a crash).
fn record(name: &str, o: &Outcome) -> Result<()> {
    let path = fuzz_dir().join("STATS.md");
    // Runs of several targets at once (one per core) add their figures one at a time.
    let lock_path = fuzz_dir().join("logs").join("STATS.lock");
    let lock = std::fs::File::create(&lock_path)
        .with_context(|| format!("creating {}", lock_path.display()))?;
    lock.lock()
        .with_context(|| format!("locking {}", lock_path.display()))?;
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let mut rows: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    for line in text.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if let [_, target, execs, secs, crashes, _] = cells.as_slice()
            && let (Ok(e), Ok(s), Ok(c)) = (
                execs.replace(',', "").parse(),
                secs.replace(',', "").parse(),
                crashes.parse(),
            )
        {
            rows.insert(target.to_string(), (e, s, c));
        }
    }
    let row = rows.entry(name.to_string()).or_default();
    row.0 += o.runs;
    row.1 += o.seconds;
    row.2 += u64::from(o.crashed);
    let mut out = String::from(
        "# Fuzzing figures\n\n\
         Executions and seconds per target, summed over every `cargo xtask fuzz TARGET` run\n\
         recorded here (smoke runs are not counted), and the runs that ended in a crash.\n\
         Written by `cargo xtask fuzz`; the issue asks for 10 million executions per target.\n\n\
         | target | executions | seconds | crashing runs |\n\
         | --- | ---: | ---: | ---: |\n",
    );
    for (t, (e, s, c)) in &rows {
        out.push_str(&format!(
            "| {t} | {} | {} | {c} |\n",
            thousands(*e),
            thousands(*s)
        ));
    }
    std::fs::write(&path, out).with_context(|| format!("writing {}", path.display()))
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(12_345_678), "12,345,678");
    }

    #[test]
    fn finds_cms_in_a_signed_multipart() {
        let msg = b"Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: application/pkcs7-signature\r\nContent-Transfer-Encoding: base64\r\n\r\nMAMCAQA=\r\n--b--\r\n";
        assert_eq!(cms_objects(msg), vec![vec![0x30, 0x03, 0x02, 0x01, 0x00]]);
    }
}
