//! `cargo xtask bench-adversarial [--strict] [--keep]` (also the last part of `cargo xtask
//! bench`): hostile inputs of at most 10 MiB, made by a generator, each given to the release
//! `smimekit` binary in a child process. The goal (issue 16, "bounded work for any input"): each
//! is refused or processed in at most 1 s of CPU and 64 MiB of peak resident memory.
//!
//! The inputs: 50,000 SignerInfos beside 20,000 certificates, and the most the limits let
//! through (64 signers, 256 certificates, each signer looked up; 64 signers by key identifier
//! beside 10,000 certificates given with `--cert`); 100,000 recipients, and 10,000 (the
//! limit) for a key with its certificate and for a key alone; 10^6 header lines; 1,000 nested
//! multiparts and 10,000 parts; 2.6 million levels of indefinite-length BER, and 50 levels
//! above 3 million chunks (as deep as the reader allows, as wide as 10 MiB allows); a `.p7b`
//! of 35,000 certificates; PKCS#12 files with 8 million iterations and with 800,000 bags.
//!
//! Each run is measured by a fresh `xtask bench-adversarial --measure` process that spawns it
//! and reads its `rusage` with `wait4` (as `bench`'s memory figure is taken, so this process's
//! own buffers are not counted): CPU time (user + system), wall time, peak RSS, exit code and
//! the first line of standard error. Prints a table and writes
//! `<target dir>/bench-adversarial.json`; `--strict` fails when a goal is missed.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use smimekit_core::CertDer;
use smimekit_pki::asn1;

const MIB: usize = 1024 * 1024;
/// The largest input the goal covers.
const MAX_INPUT: usize = 10 * MIB;
const GOAL_CPU_S: f64 = 1.0;
const GOAL_RSS: u64 = 64 * MIB as u64;

/// One hostile input and the command that reads it.
struct Case {
    name: &'static str,
    what: String,
    input: PathBuf,
    args: Vec<String>,
    env: Vec<(&'static str, &'static str)>,
}

/// What one run cost.
struct Measured {
    exit: i32,
    cpu_s: f64,
    wall_s: f64,
    peak_rss: u64,
    message: String,
}

pub fn run(args: &[String]) -> Result<()> {
    if let Some(("--measure", cmd)) = args.split_first().map(|(a, rest)| (a.as_str(), rest)) {
        return measure_helper(cmd);
    }
    let mut strict = false;
    let mut keep = false;
    for a in args {
        match a.as_str() {
            "--strict" => strict = true,
            "--keep" => keep = true,
            // `cargo xtask bench --quick` passes it on; every case runs once anyway.
            "--quick" => {}
            "-h" | "--help" => {
                println!("usage: cargo xtask bench-adversarial [--strict] [--keep]");
                return Ok(());
            }
            other => bail!("bench-adversarial: unknown argument {other:?} (try --strict, --keep)"),
        }
    }
    crate::run(crate::cargo().args(["build", "--release", "--quiet", "-p", "smimekit-cli"]))?;
    let smimekit = crate::target_dir().join("release").join("smimekit");
    if !smimekit.is_file() {
        bail!("{} was not built", smimekit.display());
    }
    let tmp = tempfile::tempdir().context("creating a tempdir")?;
    let dir = tmp.path();
    eprintln!("bench-adversarial: generating inputs in {}", dir.display());
    let cases = generate(dir)?;

    let mut rows = Vec::new();
    for case in &cases {
        let size = fs::metadata(&case.input)?.len();
        if size as usize > MAX_INPUT {
            bail!(
                "{}: the generator made {size} bytes, over 10 MiB",
                case.name
            );
        }
        let m = measure(&smimekit, case)?;
        let pass = m.cpu_s <= GOAL_CPU_S && m.peak_rss <= GOAL_RSS && m.exit != 101;
        rows.push((case, size, m, pass));
    }

    println!(
        "\n{:<26} {:>9} {:>5} {:>7} {:>7} {:>8}  {:<4}  outcome",
        "hostile input", "bytes", "exit", "cpu s", "wall s", "peak MiB", "goal"
    );
    for (case, size, m, pass) in &rows {
        println!(
            "{:<26} {:>9} {:>5} {:>7.3} {:>7.3} {:>8.1}  {:<4}  {}",
            case.name,
            size,
            m.exit,
            m.cpu_s,
            m.wall_s,
            m.peak_rss as f64 / MIB as f64,
            if *pass { "PASS" } else { "MISS" },
            shorten(&m.message, 90),
        );
    }
    println!(
        "goal: every input of at most 10 MiB refused or processed in <= {GOAL_CPU_S} s CPU and <= {} MiB peak RSS, no panic",
        GOAL_RSS / MIB as u64
    );

    let json_rows: Vec<Value> = rows
        .iter()
        .map(|(case, size, m, pass)| {
            json!({
                "name": case.name,
                "input": case.what,
                "bytes": size,
                "command": case.args,
                "exit_code": m.exit,
                "cpu_s": m.cpu_s,
                "wall_s": m.wall_s,
                "peak_rss_bytes": m.peak_rss,
                "message": m.message,
                "pass": pass,
            })
        })
        .collect();
    let out = crate::target_dir().join("bench-adversarial.json");
    fs::write(
        &out,
        serde_json::to_vec_pretty(&json!({
            "goal": { "max_input_bytes": MAX_INPUT, "cpu_s": GOAL_CPU_S, "peak_rss_bytes": GOAL_RSS },
            "cases": json_rows,
        }))?,
    )
    .with_context(|| format!("writing {}", out.display()))?;
    println!("figures written to {}", out.display());
    if keep {
        println!("inputs kept in {}", tmp.keep().display());
    }
    let missed: Vec<&str> = rows.iter().filter(|r| !r.3).map(|r| r.0.name).collect();
    if strict && !missed.is_empty() {
        bail!("goals missed: {}", missed.join(", "));
    }
    Ok(())
}

fn shorten(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let cut: String = s.chars().take(n).collect();
        format!("{cut}…")
    }
}

// ---------------------------------------------------------------------------------------
// The generator

/// Small key pairs made by `openssl` with no extensions (short certificates fit more of them
/// into 10 MiB): a P-256 signer and an RSA-2048 recipient.
struct Keys {
    ec_cert: CertDer,
    rsa_key: PathBuf,
    rsa_cert: PathBuf,
}

fn make_keys(dir: &Path) -> Result<Keys> {
    fs::write(
        dir.join("min.cnf"),
        "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = x\n",
    )?;
    for (stem, newkey) in [
        (
            "ec",
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"][..],
        ),
        ("rsa", &["-newkey", "rsa:2048"][..]),
    ] {
        let (key, cert) = (format!("{stem}.key"), format!("{stem}.pem"));
        let mut a = vec!["req", "-x509", "-config", "min.cnf"];
        a.extend_from_slice(newkey);
        a.extend_from_slice(&["-nodes", "-keyout", &key, "-out", &cert, "-days", "2"]);
        crate::bench::openssl(dir, &a)?;
    }
    let pem = fs::read(dir.join("ec.pem"))?;
    let ec_cert = smimekit_pki::load_certificates(&pem, "ec.pem")?
        .into_iter()
        .next()
        .context("no certificate in ec.pem")?;
    Ok(Keys {
        ec_cert,
        rsa_key: dir.join("rsa.key"),
        rsa_cert: dir.join("rsa.pem"),
    })
}

/// The DER OBJECT IDENTIFIER of a dotted string (the constants below, all well formed).
fn oid(dotted: &str) -> Vec<u8> {
    let arcs: Vec<u64> = dotted.split('.').filter_map(|a| a.parse().ok()).collect();
    let mut content = Vec::new();
    let mut push = |mut v: u64| {
        let mut bytes = vec![(v & 0x7f) as u8];
        v >>= 7;
        while v > 0 {
            bytes.push(0x80 | (v & 0x7f) as u8);
            v >>= 7;
        }
        bytes.reverse();
        content.extend(bytes);
    };
    push(arcs[0] * 40 + arcs[1]);
    for a in &arcs[2..] {
        push(*a);
    }
    asn1::encode(asn1::TAG_OID, &content)
}

/// A ContentInfo of `content_type` around `inner` (`[0] EXPLICIT`).
fn content_info(content_type: &str, inner: &[u8]) -> Vec<u8> {
    asn1::seq(&[&oid(content_type), &asn1::context_constructed(0, &[inner])])
}

const ID_DATA: &str = "1.2.840.113549.1.7.1";
const ID_SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
const ID_ENVELOPED_DATA: &str = "1.2.840.113549.1.7.3";
const SHA256: &str = "2.16.840.1.101.3.4.2.1";
const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";

/// SignedData with `signers` SignerInfos (all naming `sid`) and `certs` copies of `cert`.
fn signed_data(signers: usize, certs: usize, cert: &[u8], sid: &[u8]) -> Vec<u8> {
    let digest_alg = asn1::seq(&[&oid(SHA256)]);
    let si = asn1::seq(&[
        &asn1::small_int(if sid[0] == 0x80 { 3 } else { 1 }),
        sid,
        &digest_alg,
        &asn1::seq(&[&oid(ECDSA_SHA256)]),
        &asn1::octet_string(&[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01]),
    ]);
    let signer_infos = si.repeat(signers);
    let certificates = cert.repeat(certs);
    let encap = asn1::seq(&[
        &oid(ID_DATA),
        &asn1::context_constructed(0, &[&asn1::octet_string(b"hello\r\n")]),
    ]);
    let sd = asn1::seq(&[
        &asn1::small_int(1),
        &asn1::constructed(asn1::TAG_SET, &[&digest_alg]),
        &encap,
        &asn1::context_constructed(0, &[&certificates]),
        &asn1::constructed(asn1::TAG_SET, &[&signer_infos]),
    ]);
    content_info(ID_SIGNED_DATA, &sd)
}

/// EnvelopedData with `n` key-transport recipients named by key identifiers no key has.
fn enveloped_data(n: usize) -> Vec<u8> {
    let alg = asn1::seq(&[&oid("1.2.840.113549.1.1.1"), &asn1::null()]);
    let mut ris = Vec::with_capacity(n * 64);
    for i in 0..n as u32 {
        let mut ski = [0x5au8; 20];
        ski[..4].copy_from_slice(&i.to_be_bytes());
        ris.extend(asn1::seq(&[
            &asn1::small_int(2),
            &asn1::context_primitive(0, &ski),
            &alg,
            &asn1::octet_string(&[0xa5; 16]),
        ]));
    }
    let eci = asn1::seq(&[
        &oid(ID_DATA),
        &asn1::seq(&[
            &oid("2.16.840.1.101.3.4.1.42"),
            &asn1::octet_string(&[7; 16]),
        ]),
        &asn1::context_primitive(0, &[9; 32]),
    ]);
    let ed = asn1::seq(&[
        &asn1::small_int(2),
        &asn1::constructed(asn1::TAG_SET, &[&ris]),
        &eci,
    ]);
    content_info(ID_ENVELOPED_DATA, &ed)
}

/// `levels` multipart/mixed entities, each the only part of the one above.
fn nested_multiparts(levels: usize) -> Vec<u8> {
    let mut inner = b"Content-Type: text/plain\r\n\r\nhello\r\n".to_vec();
    for i in (0..levels).rev() {
        let head = if i == 0 {
            "From: a@example.org\r\nMIME-Version: 1.0\r\n"
        } else {
            ""
        };
        let mut m =
            format!("{head}Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n")
                .into_bytes();
        m.extend_from_slice(&inner);
        m.extend_from_slice(format!("\r\n--b{i}--\r\n").as_bytes());
        inner = m;
    }
    inner
}

/// A signed ContentInfo whose eContent is an OCTET STRING chunked `depth` levels deep
/// (indefinite lengths), the innermost level holding `chunks` one-byte chunks.
fn wide_deep_ber(depth: usize, chunks: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(chunks * 3 + depth * 4 + 64);
    for _ in 0..depth {
        body.extend_from_slice(&[0x24, 0x80]);
    }
    for _ in 0..chunks {
        body.extend_from_slice(&[0x04, 0x01, b'x']);
    }
    for _ in 0..depth {
        body.extend_from_slice(&[0, 0]);
    }
    // ContentInfo, [0], SignedData, encapContentInfo and [0] in indefinite form around it.
    let mut out = vec![0x30, 0x80];
    out.extend(oid(ID_SIGNED_DATA));
    out.extend_from_slice(&[0xa0, 0x80, 0x30, 0x80]);
    out.extend(asn1::small_int(1));
    out.extend(asn1::constructed(
        asn1::TAG_SET,
        &[&asn1::seq(&[&oid(SHA256)])],
    ));
    out.extend_from_slice(&[0x30, 0x80]);
    out.extend(oid(ID_DATA));
    out.extend_from_slice(&[0xa0, 0x80]);
    out.extend(body);
    out.extend_from_slice(&[0, 0, 0, 0]); // [0], encapContentInfo
    out.extend(asn1::constructed(asn1::TAG_SET, &[])); // no signers
    out.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // SignedData, [0], ContentInfo
    out
}

/// A PKCS#12 without MAC whose one SafeContents holds `n` bags of an unknown type.
fn p12_many_bags(n: usize) -> Vec<u8> {
    let bag = asn1::seq(&[
        &oid("1.2.3.4"),
        &asn1::context_constructed(0, &[&asn1::null()]),
    ]);
    let safe_contents = asn1::seq(&[&bag.repeat(n)]);
    let auth_safe = asn1::seq(&[&content_info(ID_DATA, &asn1::octet_string(&safe_contents))]);
    asn1::seq(&[
        &asn1::small_int(3),
        &content_info(ID_DATA, &asn1::octet_string(&auth_safe)),
    ])
}

/// A PKCS#12 by `openssl pkcs12 -export` with 65,536 iterations (MAC and bags), the counts then
/// raised to 8,388,607 in place (same length, so the structure stays valid).
fn p12_many_iterations(dir: &Path, keys: &Keys) -> Result<Vec<u8>> {
    let (key, cert) = (
        keys.rsa_key.display().to_string(),
        keys.rsa_cert.display().to_string(),
    );
    crate::bench::openssl(
        dir,
        &[
            "pkcs12", "-export", "-inkey", &key, "-in", &cert, "-passout", "pass:pw", "-iter",
            "65536", "-maciter", "-out", "iter.p12",
        ],
    )?;
    let mut der = fs::read(dir.join("iter.p12"))?;
    let (from, to) = (
        [0x02u8, 0x03, 0x01, 0x00, 0x00],
        [0x02u8, 0x03, 0x7f, 0xff, 0xff],
    );
    let mut n = 0;
    for i in 0..=der.len() - from.len() {
        if der[i..i + from.len()] == from {
            der[i..i + from.len()].copy_from_slice(&to);
            n += 1;
        }
    }
    if n == 0 {
        bail!("iter.p12: no iteration count of 65536 found to raise");
    }
    Ok(der)
}

fn generate(dir: &Path) -> Result<Vec<Case>> {
    let keys = make_keys(dir)?;
    let cert = keys.ec_cert.as_bytes();
    let (issuer, serial) = smimekit_pki::certinfo::issuer_and_serial(&keys.ec_cert)?;
    let ias = asn1::seq(&[&issuer, &asn1::encode(asn1::TAG_INTEGER, &serial)]);
    let ski = asn1::context_primitive(0, &[0x11; 20]);
    let s = |p: &Path| p.display().to_string();
    let (rsa_key, rsa_cert) = (s(&keys.rsa_key), s(&keys.rsa_cert));
    let out = s(&dir.join("out"));
    let write = |name: &str, data: &[u8]| -> Result<PathBuf> {
        let p = dir.join(name);
        fs::write(&p, data)?;
        Ok(p)
    };
    let verify = |input: &Path| -> Vec<String> {
        let mut v: Vec<String> = ["verify", "--trust", &s(&dir.join("ec.pem")), "--in"]
            .iter()
            .map(|x| x.to_string())
            .collect();
        v.push(s(input));
        v
    };
    let decrypt = |input: &Path, with_cert: bool| -> Vec<String> {
        let mut v = vec!["decrypt".to_string(), "--key".into(), rsa_key.clone()];
        if with_cert {
            v.extend(["--cert".into(), rsa_cert.clone()]);
        }
        v.extend(["--in".into(), s(input), "--out".into(), out.clone()]);
        v
    };
    let mut cases = Vec::new();

    let f = write(
        "signers-x-certs.p7m",
        &signed_data(50_000, 20_000, cert, &ski),
    )?;
    cases.push(Case {
        name: "50k signers x 20k certs",
        what: "SignedData: 50,000 SignerInfos (key-id form) beside 20,000 certificates".into(),
        args: verify(&f),
        input: f,
        env: vec![],
    });
    let f = write("signers-at-limit.p7m", &signed_data(64, 256, cert, &ias))?;
    cases.push(Case {
        name: "64 signers x 256 certs",
        what: "SignedData at the limits: 64 SignerInfos naming one of 256 certificates".into(),
        args: verify(&f),
        input: f,
        env: vec![],
    });
    // The caller's certificates are indexed too: 64 signers by key identifier (which makes
    // the index read every certificate's extensions) beside a --cert file at its limit.
    let p7b_10k = write(
        "certs-10k.p7b",
        &smimekit_pki::write_p7b(&vec![keys.ec_cert.clone(); 10_000]),
    )?;
    let f = write("signers-ski.p7m", &signed_data(64, 1, cert, &ski))?;
    let mut args = verify(&f);
    args.extend(["--cert".into(), s(&p7b_10k)]);
    cases.push(Case {
        name: "64 signers x 10k --cert",
        what: "64 SignerInfos by key identifier, 10,000 caller certificates (--cert)".into(),
        args,
        input: f,
        env: vec![],
    });
    let f = write("recipients-100k.p7m", &enveloped_data(100_000))?;
    cases.push(Case {
        name: "100k recipients",
        what: "EnvelopedData with 100,000 key-transport recipients".into(),
        args: decrypt(&f, true),
        input: f,
        env: vec![],
    });
    let f = write("recipients-10k.p7m", &enveloped_data(10_000))?;
    cases.push(Case {
        name: "10k recipients, key+cert",
        what: "EnvelopedData with 10,000 recipients (the limit), none for the key's certificate"
            .into(),
        args: decrypt(&f, true),
        input: f.clone(),
        env: vec![],
    });
    cases.push(Case {
        name: "10k recipients, bare key",
        what: "the same, with a key alone (trial decryption)".into(),
        args: decrypt(&f, false),
        input: f,
        env: vec![],
    });
    let mut m = b"X: y\r\n".repeat(1_000_000);
    m.extend_from_slice(b"\r\nbody\r\n");
    let f = write("headers-1m.eml", &m)?;
    cases.push(Case {
        name: "10^6 header lines",
        what: "a message with 1,000,000 header fields".into(),
        args: verify(&f),
        input: f,
        env: vec![],
    });
    let f = write("nested-1000.eml", &nested_multiparts(1000))?;
    let mut open = vec!["open".to_string(), "--in".into(), s(&f)];
    open.extend(["--out".into(), out.clone()]);
    cases.push(Case {
        name: "1,000 nested multiparts",
        what: "multipart/mixed nested 1,000 deep".into(),
        args: open,
        input: f,
        env: vec![],
    });
    let mut m =
        b"From: a@example.org\r\nContent-Type: multipart/mixed; boundary=\"p\"\r\n\r\n".to_vec();
    for _ in 0..10_000 {
        m.extend_from_slice(b"--p\r\nContent-Type: text/plain\r\n\r\nx\r\n");
    }
    m.extend_from_slice(b"--p--\r\n");
    let f = write("parts-10k.eml", &m)?;
    let mut open = vec!["open".to_string(), "--in".into(), s(&f)];
    open.extend(["--out".into(), out.clone()]);
    cases.push(Case {
        name: "10,000 parts",
        what: "multipart/mixed of 10,000 parts (the limit), each parsed for S/MIME".into(),
        args: open,
        input: f,
        env: vec![],
    });
    let f = write("deep-ber.p7m", &[0x30, 0x80].repeat(5 * MIB / 2))?;
    cases.push(Case {
        name: "deep indefinite BER",
        what: "2,621,440 nested indefinite-length SEQUENCEs".into(),
        args: verify(&f),
        input: f,
        env: vec![],
    });
    let f = write("wide-deep-ber.p7m", &wide_deep_ber(50, 3_000_000))?;
    cases.push(Case {
        name: "50-deep BER, 3M chunks",
        what: "eContent chunked 50 levels deep (indefinite), 3,000,000 chunks at the bottom".into(),
        args: verify(&f),
        input: f,
        env: vec![],
    });
    let mut p7b_certs = Vec::new();
    while p7b_certs.len() < 35_000 {
        p7b_certs.push(keys.ec_cert.clone());
    }
    let f = write("certs-35k.p7b", &smimekit_pki::write_p7b(&p7b_certs))?;
    cases.push(Case {
        name: ".p7b of 35k certificates",
        what: "a certs-only PKCS#7 file of 35,000 certificates".into(),
        args: vec!["cert".into(), "show".into(), s(&f)],
        input: f,
        env: vec![],
    });
    let f = write("iterations.p12", &p12_many_iterations(dir, &keys)?)?;
    cases.push(Case {
        name: "PKCS#12, 8M iterations",
        what: "a PKCS#12 whose MAC and bags ask for 8,388,607 iterations".into(),
        args: vec!["keys".into(), "list".into(), "--store".into(), s(&f)],
        input: f,
        env: vec![("SMIMEKIT_PASSWORD", "pw")],
    });
    let f = write("bags.p12", &p12_many_bags(800_000))?;
    cases.push(Case {
        name: "PKCS#12, 800k bags",
        what: "a PKCS#12 with 800,000 bags".into(),
        args: vec!["keys".into(), "list".into(), "--store".into(), s(&f)],
        input: f,
        env: vec![("SMIMEKIT_PASSWORD", "pw")],
    });
    Ok(cases)
}

// ---------------------------------------------------------------------------------------
// Measuring a child process

/// Runs `smimekit` on one case through a fresh helper process (see the module docs).
fn measure(smimekit: &Path, case: &Case) -> Result<Measured> {
    // The running image itself: a concurrent `cargo build` may replace the file meanwhile.
    let proc_exe = Path::new("/proc/self/exe");
    let exe = if proc_exe.exists() {
        proc_exe.to_path_buf()
    } else {
        std::env::current_exe().context("locating the xtask binary")?
    };
    let mut cmd = Command::new(exe);
    cmd.args(["bench-adversarial", "--measure"])
        .arg(smimekit)
        .args(&case.args)
        .env_remove("SMIMEKIT_PASSWORD")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in &case.env {
        cmd.env(k, v);
    }
    let out = cmd.output().context("starting the measuring helper")?;
    if !out.status.success() {
        bail!("{}: the measuring helper failed", case.name);
    }
    let v: Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("{}: helper said {:?}", case.name, out.stdout))?;
    Ok(Measured {
        exit: v["exit"].as_i64().unwrap_or(-1) as i32,
        cpu_s: v["cpu_s"].as_f64().unwrap_or(f64::NAN),
        wall_s: v["wall_s"].as_f64().unwrap_or(f64::NAN),
        peak_rss: v["peak_rss"].as_u64().unwrap_or(0),
        message: v["message"].as_str().unwrap_or_default().to_string(),
    })
}

/// `xtask bench-adversarial --measure PROGRAM ARGS…`: runs the command (standard output
/// dropped), then prints one JSON object: exit code (-signal when killed), CPU and wall
/// seconds, peak RSS in bytes, and standard error's first line.
#[allow(unsafe_code)]
fn measure_helper(cmd: &[String]) -> Result<()> {
    let (program, args) = cmd.split_first().context("--measure needs a command")?;
    let t0 = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {program}"))?;
    let mut err = Vec::new();
    if let Some(mut e) = child.stderr.take() {
        // Read to the end (the child's exit closes it) before reaping, so it never blocks.
        e.read_to_end(&mut err)?;
    }
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
        bail!("wait4 on {program}: {}", std::io::Error::last_os_error());
    }
    let exit = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -libc::WTERMSIG(status)
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let text = String::from_utf8_lossy(&err);
    println!(
        "{}",
        json!({
            "exit": exit,
            "cpu_s": secs(usage.ru_utime) + secs(usage.ru_stime),
            "wall_s": wall.as_secs_f64(),
            // Linux reports ru_maxrss in KiB.
            "peak_rss": usage.ru_maxrss as u64 * 1024,
            "message": text.lines().next().unwrap_or_default(),
        })
    );
    Ok(())
}
