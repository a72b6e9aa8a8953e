//! `cargo xtask bench-pki [--quick]` (also callable from `cargo xtask bench` through
//! [`pki_figures`]): `.sst` encode+decode of 10,000 certificates and path building for
//! 10,000 leaves under two intermediates (root → intermediate 1 → intermediate 2 → leaf),
//! all P-256, through `smimekit-service` in-process.
//!
//! The PKI comes from the `openssl` CLI in a tempdir; the 10,000 distinct leaves are copies
//! of one openssl-made template with a new serial each, re-signed with intermediate 2's key
//! through the `PrivateKey` port ([`crate::bench_pki_ops::resign_copies`]).
//! Targets from issue 3: SST encode+decode ≤ 50 ms, chain building ≤ 1 s.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use smimekit_service::{CertDer, KeyRequest, Named, Service};

use crate::bench_pki_ops;

const SST_TARGET_MS: f64 = 50.0;
const CHAIN_TARGET_MS: f64 = 1000.0;

fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    crate::bench::openssl(dir, args).map(drop)
}

/// Issues `name` signed by `issuer` (`None`: self-signed) with a fresh P-256 key.
fn issue(dir: &Path, name: &str, issuer: Option<&str>, ext: &str) -> Result<()> {
    let (key, csr, pem, extfile) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("{name}.ext"),
    );
    std::fs::write(dir.join(&extfile), format!("[x]\n{ext}\n"))?;
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/O=smimekit bench/CN={name}"),
        ],
    )?;
    let mut args = vec![
        "x509",
        "-req",
        "-in",
        &csr,
        "-out",
        &pem,
        "-days",
        "3650",
        "-sha256",
        "-extfile",
        &extfile,
        "-extensions",
        "x",
        "-set_serial",
        "0x7F00000000000001",
    ];
    match issuer {
        Some(i) => {
            let (ca, ca_key) = (format!("{i}.pem"), format!("{i}.key"));
            args.extend(["-CA", &ca, "-CAkey", &ca_key]);
            openssl(dir, &args)
        }
        None => {
            args.extend(["-signkey", &key]);
            openssl(dir, &args)
        }
    }
}

fn load(service: &Service, dir: &Path, name: &str) -> Result<CertDer> {
    let file = dir.join(format!("{name}.pem"));
    let data = std::fs::read(&file)?;
    let mut v = service.certificates(&Named::new(file.display().to_string(), data))?;
    Ok(v.remove(0))
}

/// Both figures as JSON, each with its target and PASS/MISS.
pub fn pki_figures(n: usize) -> Result<Value> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let ca = "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash";
    issue(dir, "root", None, ca)?;
    issue(
        dir,
        "int1",
        Some("root"),
        &format!("{ca}\nauthorityKeyIdentifier=keyid"),
    )?;
    issue(
        dir,
        "int2",
        Some("int1"),
        &format!("{ca}\nauthorityKeyIdentifier=keyid"),
    )?;
    issue(
        dir,
        "leaf",
        Some("int2"),
        "basicConstraints=critical,CA:FALSE\n\
        keyUsage=critical,digitalSignature,keyAgreement\nextendedKeyUsage=emailProtection\n\
        subjectAltName=email:leaf@bench.example\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid",
    )?;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let service = Service::builder().build()?;
    let (root, int1, int2, template) = (
        load(&service, dir, "root")?,
        load(&service, dir, "int1")?,
        load(&service, dir, "int2")?,
        load(&service, dir, "leaf")?,
    );
    let key = rt.block_on(service.open_key(&KeyRequest {
        reference: dir.join("int2.key").display().to_string(),
        certificate: Some(dir.join("int2.pem").display().to_string()),
        ..KeyRequest::default()
    }))?;
    let t = std::time::Instant::now();
    let engine = smimekit_engine_openssl::engine();
    let leaves = rt.block_on(bench_pki_ops::resign_copies(
        engine,
        &template,
        key.as_ref(),
        n,
    ))?;
    let make_ms = t.elapsed().as_secs_f64() * 1e3;

    // SST: the 10,000 distinct leaves.
    let sst = bench_pki_ops::bench_sst(&leaves, n)?;
    let sst_ms = sst.encode_ms + sst.decode_ms;

    // Chains: pool = both intermediates, anchor = root, at now.
    let now = service.now();
    let chain = bench_pki_ops::bench_chain(engine, &leaves, &[int2, int1], &[root], now)?;
    if chain.valid != n {
        bail!(
            "chain bench: only {} of {n} leaves had a valid path",
            chain.valid
        );
    }
    let verdict = |ms: f64, target: f64| if ms <= target { "PASS" } else { "MISS" };
    Ok(json!({
        "sst": {
            "certificates": n,
            "bytes": sst.bytes,
            "encode_ms": sst.encode_ms,
            "decode_ms": sst.decode_ms,
            "encode_decode_ms": sst_ms,
            "load_validated_ms": sst.load_ms,
            "target_ms": SST_TARGET_MS,
            "verdict": verdict(sst_ms, SST_TARGET_MS),
        },
        "chain": {
            "leaves": n,
            "intermediates": 2,
            "key": "P-256",
            "index_ms": chain.index_ms,
            "build_ms": chain.build_ms,
            "threads": chain.threads,
            "single_thread_ms": chain.single_thread_ms,
            "per_leaf_us": chain.per_leaf_us,
            "target_ms": CHAIN_TARGET_MS,
            "verdict": verdict(chain.build_ms, CHAIN_TARGET_MS),
        },
        "leaf_generation_ms": make_ms,
    }))
}

/// `cargo xtask bench-pki [--quick] [--strict]`: prints the figures and writes
/// `<target dir>/bench-pki.json`.
pub fn run(args: &[String]) -> Result<()> {
    let quick = args.iter().any(|a| a == "--quick");
    let strict = args.iter().any(|a| a == "--strict");
    let n = if quick { 1_000 } else { 10_000 };
    let v = pki_figures(n)?;
    println!(
        "sst   encode+decode {n} certificates: {:>8.1} ms (encode {:.1}, decode {:.1}; validated load {:.1})  target ≤ {SST_TARGET_MS} ms  {}",
        v["sst"]["encode_decode_ms"].as_f64().unwrap_or(f64::NAN),
        v["sst"]["encode_ms"].as_f64().unwrap_or(f64::NAN),
        v["sst"]["decode_ms"].as_f64().unwrap_or(f64::NAN),
        v["sst"]["load_validated_ms"].as_f64().unwrap_or(f64::NAN),
        v["sst"]["verdict"].as_str().unwrap_or("?"),
    );
    println!(
        "chain build {n} leaves / 2 intermediates: {:>8.1} ms on {} threads ({:.1} ms on one; {:.1} µs per leaf, index {:.2} ms)  target ≤ {CHAIN_TARGET_MS} ms  {}",
        v["chain"]["build_ms"].as_f64().unwrap_or(f64::NAN),
        v["chain"]["threads"],
        v["chain"]["single_thread_ms"].as_f64().unwrap_or(f64::NAN),
        v["chain"]["per_leaf_us"].as_f64().unwrap_or(f64::NAN),
        v["chain"]["index_ms"].as_f64().unwrap_or(f64::NAN),
        v["chain"]["verdict"].as_str().unwrap_or("?"),
    );
    let dir = tempfile::tempdir()?;
    let d = smimekit_directory_local::bench_publish_lookup(dir.path(), n)?;
    println!(
        "local directory, {n} recipients: publish {:.0}/s (batched), {:.1}/s (one write each on the full file), lookup {:.0}/s, file {:.1} MB",
        d.publish_per_s,
        d.single_publish_per_s,
        d.lookup_per_s,
        d.file_bytes as f64 / 1e6
    );
    let mut v = v;
    v["directory"] = serde_json::to_value(d)?;
    let out = crate::target_dir().join("bench-pki.json");
    std::fs::write(&out, serde_json::to_string_pretty(&v)?)
        .with_context(|| format!("writing {}", out.display()))?;
    println!("figures in {}", out.display());
    let missed = [&v["sst"]["verdict"], &v["chain"]["verdict"]]
        .iter()
        .any(|x| x.as_str() == Some("MISS"));
    if strict && !quick && missed {
        bail!("a PKI bench target was missed");
    }
    Ok(())
}
