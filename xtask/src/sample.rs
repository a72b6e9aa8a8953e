//! `cargo xtask sample`: the main job on the embedded default, end to end.
//!
//! Signs a message as alice (RSA key in a PKCS#12 file), encrypts it to bob (EC P-256),
//! opens it as bob (decrypt + verify), and checks with `openssl cms` that another
//! implementation reads what smimekit wrote. Uses the committed test PKI in `tests/fixtures`.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{cargo, root};

const MESSAGE: &str = "From: Alice <alice@example.org>\r\n\
To: Bob <bob@example.org>\r\n\
Subject: Quarterly figures\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Bob, the figures are attached in the usual place.\r\n";

/// Validation time: the fixtures are valid from 2025 to 2045; pin it so the run is stable.
const AT: &str = "2026-06-01T00:00:00Z";

pub fn run(_args: &[String]) -> Result<()> {
    crate::run(cargo().args(["build", "--release", "-p", "smimekit-cli"]))?;
    let bin = crate::target_dir().join("release/smimekit");
    let pki = root().join("tests/fixtures/pki");
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    std::fs::write(d.join("message.eml"), MESSAGE)?;
    let smimekit = |args: &[&str]| -> Result<String> {
        let out = Command::new(&bin)
            .args(args)
            .env("SMIMEKIT_PASSWORD", "test")
            .current_dir(d)
            .output()
            .context("running smimekit")?;
        if !out.status.success() {
            bail!(
                "smimekit {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let p = |name: &str| pki.join(name).display().to_string();

    println!("1. sign as alice@example.org (RSA-2048, SHA-256, detached multipart/signed)");
    smimekit(&["sign", "--key", &p("alice.p12"), "--in", "message.eml", "--out", "signed.eml"])?;
    println!("2. encrypt to bob@example.org (EC P-256, ECDH + AES-256-CBC)");
    smimekit(&["encrypt", "--to", &p("bob.pem"), "--in", "signed.eml", "--out", "sealed.eml"])?;
    println!("3. open as bob: decrypt, verify against the root");
    let report = smimekit(&[
        "open", "--key", &p("bob.p12"), "--trust", &p("root.pem"), "--at", AT, "--in", "sealed.eml",
        "--out", "opened.eml", "--json",
    ])?;
    let report: serde_json::Value = serde_json::from_str(&report)?;
    for layer in report["layers"].as_array().into_iter().flatten() {
        println!(
            "   layer {:<16} {:<12} {}",
            layer["type"].as_str().unwrap_or("?"),
            layer["algorithm"].as_str().unwrap_or(""),
            layer["recipient"]
                .as_str()
                .map(|r| format!("for {r}"))
                .or_else(|| layer["signers"][0]["address"].as_str().map(|s| format!("signed by {s}: {}", layer["signers"][0]["status"].as_str().unwrap_or("?"))))
                .unwrap_or_default()
        );
    }
    println!("   valid: {}, signer: {}", report["valid"], report["signer"]);
    if report["valid"] != serde_json::Value::Bool(true) {
        bail!("the signature did not verify");
    }

    println!("4. openssl cms reads what smimekit wrote");
    openssl(d, &["cms", "-decrypt", "-in", "sealed.eml", "-recip", &p("bob.pem"), "-inkey", &p("bob.key"), "-out", "ossl-signed.eml"])?;
    openssl(d, &["cms", "-verify", "-in", "ossl-signed.eml", "-CAfile", &p("root.pem"), "-attime", "1780272000", "-out", "ossl-content.eml"])?;
    let ours = std::fs::read(d.join("opened.eml"))?;
    let theirs = std::fs::read(d.join("ossl-content.eml"))?;
    if ours != theirs {
        bail!("openssl and smimekit disagree on the content");
    }
    println!("   openssl cms -decrypt and -verify: OK, same content ({} bytes)", ours.len());
    println!("\nsample: done (work files in a temporary directory, removed now)");
    Ok(())
}

fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("openssl").args(args).current_dir(dir).output().context("running openssl")?;
    if !out.status.success() {
        bail!("openssl {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}
