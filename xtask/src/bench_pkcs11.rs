//! `cargo xtask bench-pkcs11 [--quick]` (also run at the end of `cargo xtask bench`): signatures
//! per second with a SoftHSM2 key through smimekit's service (`Service::open_key` then
//! `PrivateKey::sign_digest`, sequential and 4 concurrent callers on one token lane), against
//! `pkcs11-tool --sign` in a loop (one process per signature, as a script would) and against the
//! same key as a PKCS#12 file. RSA-2048 (alice) and P-256 (bob) from the committed test PKI.
//!
//! SoftHSM reads SOFTHSM2_CONF when the module is initialised, so the measuring half runs in a
//! child `xtask` process started with the variable set (nothing sets it in this process).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use smimekit_core::{DigestAlg, SignatureScheme};
use smimekit_service::{KeyRequest, Secret, Service};

const CHILD: &str = "SMIMEKIT_BENCH_PKCS11_CHILD";

fn module() -> Result<String> {
    [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    ]
    .iter()
    .find(|m| Path::new(m).is_file())
    .map(|m| m.to_string())
    .context("SoftHSM2 is not installed (apt-get install softhsm2 opensc)")
}

fn ok(cmd: &mut Command) -> Result<std::process::Output> {
    let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(out)
}

pub fn run(args: &[String]) -> Result<()> {
    if std::env::var_os(CHILD).is_some() {
        return child(args);
    }
    let quick = args.iter().any(|a| a == "--quick");
    let module = module()?;
    let tmp = tempfile::tempdir()?;
    let d = tmp.path();
    std::fs::create_dir(d.join("tokens"))?;
    let conf = d.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            d.join("tokens").display()
        ),
    )?;
    let pki = crate::root().join("tests/fixtures/pki");
    let f = |n: &str| pki.join(n).display().to_string();
    ok(Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", &conf)
        .args([
            "--init-token",
            "--free",
            "--label",
            "bench",
            "--pin",
            "1234",
            "--so-pin",
            "5678",
        ]))?;
    let tool = || {
        let mut c = Command::new("pkcs11-tool");
        c.env("SOFTHSM2_CONF", &conf).args([
            "--module",
            &module,
            "--token-label",
            "bench",
            "--login",
            "--pin",
            "1234",
        ]);
        c
    };
    for (who, id, usage) in [
        ("alice", "01", "--usage-decrypt"),
        ("bob", "02", "--usage-derive"),
    ] {
        let pubder = d.join(format!("{who}.pub.der"));
        let der = d.join(format!("{who}.der"));
        ok(Command::new("openssl")
            .args([
                "pkey",
                "-in",
                &f(&format!("{who}.key")),
                "-pubout",
                "-outform",
                "DER",
                "-out",
            ])
            .arg(&pubder))?;
        ok(Command::new("openssl")
            .args([
                "x509",
                "-in",
                &f(&format!("{who}.pem")),
                "-outform",
                "DER",
                "-out",
            ])
            .arg(&der))?;
        ok(tool().args([
            "--write-object",
            &f(&format!("{who}.key")),
            "--type",
            "privkey",
            "--usage-sign",
            usage,
            "--id",
            id,
            "--label",
            who,
        ]))?;
        ok(tool()
            .arg("--write-object")
            .arg(&pubder)
            .args(["--type", "pubkey", "--id", id, "--label", who]))?;
        ok(tool()
            .arg("--write-object")
            .arg(&der)
            .args(["--type", "cert", "--id", id, "--label", who]))?;
    }

    // pkcs11-tool --sign in a loop: a process, C_Initialize and C_Login per signature.
    let digest_file = d.join("digest");
    std::fs::write(&digest_file, [7u8; 32])?;
    let data_file = d.join("data");
    std::fs::write(&data_file, b"bench")?;
    let tool_n = if quick { 20 } else { 100 };
    let mut tool_rates = serde_json::Map::new();
    for (who, id, mech, input) in [
        ("alice", "01", "SHA256-RSA-PKCS", &data_file),
        ("bob", "02", "ECDSA", &digest_file),
    ] {
        let start = Instant::now();
        for _ in 0..tool_n {
            ok(tool()
                .args(["--sign", "--id", id, "--mechanism", mech, "-i"])
                .arg(input)
                .args(["-o"])
                .arg(d.join("sig")))?;
        }
        tool_rates.insert(
            who.into(),
            json!(f64::from(tool_n) / start.elapsed().as_secs_f64()),
        );
    }

    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe);
    child
        .arg("bench-pkcs11")
        .args(args)
        .env(CHILD, "1")
        .env("SOFTHSM2_CONF", &conf)
        .env("BENCH_P11_MODULE", &module)
        .env("BENCH_P11_PKI", &pki);
    let out = ok(&mut child)?;
    let mut v: Value = serde_json::from_slice(&out.stdout).context("child output")?;
    v["pkcs11_tool_loop_per_s"] = Value::Object(tool_rates);
    for who in ["alice", "bob"] {
        let token = v["token_seq_per_s"][who].as_f64().unwrap_or(f64::NAN);
        let conc = v["token_4_callers_per_s"][who].as_f64().unwrap_or(f64::NAN);
        let file = v["file_seq_per_s"][who].as_f64().unwrap_or(f64::NAN);
        let tool = v["pkcs11_tool_loop_per_s"][who]
            .as_f64()
            .unwrap_or(f64::NAN);
        let kind = if who == "alice" { "RSA-2048" } else { "P-256" };
        println!(
            "pkcs11 {kind:<8} sign: token via service {token:>7.0}/s (4 callers {conc:>7.0}/s) | same key as file {file:>7.0}/s | pkcs11-tool --sign loop {tool:>5.1}/s | token/file {:.2}x, token/pkcs11-tool {:.0}x",
            token / file,
            token / tool
        );
    }
    let out = crate::target_dir().join("bench-pkcs11.json");
    std::fs::create_dir_all(crate::target_dir())?;
    std::fs::write(&out, serde_json::to_string_pretty(&v)? + "\n")?;
    println!("figures written to {}", out.display());
    Ok(())
}

/// The in-process half (SOFTHSM2_CONF set by the parent).
fn child(args: &[String]) -> Result<()> {
    let quick = args.iter().any(|a| a == "--quick");
    let n: u32 = if quick { 300 } else { 2000 };
    let module = std::env::var("BENCH_P11_MODULE")?;
    let pki = std::path::PathBuf::from(std::env::var("BENCH_P11_PKI")?);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let service = Service::builder().build()?;
        let mut seq = serde_json::Map::new();
        let mut conc = serde_json::Map::new();
        let mut file = serde_json::Map::new();
        for (who, scheme) in [
            ("alice", SignatureScheme::RsaPkcs1(DigestAlg::Sha256)),
            ("bob", SignatureScheme::Ecdsa(DigestAlg::Sha256)),
        ] {
            let token_key = service
                .open_key(&KeyRequest {
                    reference: format!("pkcs11:token=bench;object={who}?module-path={module}"),
                    secret: Some(Secret::from("1234")),
                    ..KeyRequest::default()
                })
                .await?;
            let file_key = service
                .open_key(&KeyRequest {
                    reference: pki.join(format!("{who}.p12")).display().to_string(),
                    secret: Some(Secret::from("test")),
                    ..KeyRequest::default()
                })
                .await?;
            let digest = [7u8; 32];
            for (key, map) in [(&token_key, &mut seq), (&file_key, &mut file)] {
                key.sign_digest(scheme, &digest).await?;
                let start = Instant::now();
                for _ in 0..n {
                    key.sign_digest(scheme, &digest).await?;
                }
                map.insert(
                    who.into(),
                    json!(f64::from(n) / start.elapsed().as_secs_f64()),
                );
            }
            let start = Instant::now();
            let mut tasks = Vec::new();
            for _ in 0..4 {
                let key = token_key.clone();
                tasks.push(tokio::spawn(async move {
                    for _ in 0..n / 4 {
                        key.sign_digest(scheme, &digest).await?;
                    }
                    Ok::<_, smimekit_core::KeyStoreError>(())
                }));
            }
            for t in tasks {
                t.await??;
            }
            conc.insert(
                who.into(),
                json!(f64::from(n / 4 * 4) / start.elapsed().as_secs_f64()),
            );
        }
        println!(
            "{}",
            json!({
                "signatures": n,
                "token_seq_per_s": seq,
                "token_4_callers_per_s": conc,
                "file_seq_per_s": file,
            })
        );
        Ok::<_, anyhow::Error>(())
    })
}
