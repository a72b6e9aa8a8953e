//! `cargo xtask bench-plugins [--quick]` (also run at the end of `cargo xtask bench`): what a
//! vendor plugin costs per call. Target from issue 7: the ABI adds < 5 µs per call.
//!
//! Two operations, each three ways:
//! * lookup: the Rust sample's `sample-json` directory called directly as Rust (baseline),
//!   through the C ABI on the caller's thread (the ABI alone: FFI, panic boundary, buffer copy
//!   and free), and through the ABI on the host's lane (what the service pays: a thread-safe
//!   plugin runs on a bounded `spawn_blocking`);
//! * sign: ECDSA P-256 by the built-in file key store (baseline) and by the C sample (OpenSSL
//!   both), through the ABI inline and on the lane (one worker thread: not thread-safe).
//!
//! The lane's cost is a thread handoff each way (the rule that blocking plugin calls never run
//! on the async executor, the same price the PKCS#11 token lanes pay); it is reported apart.
//! Each figure is the best of three rounds.

use std::future::Future;
use std::time::Instant;

use anyhow::{Result, anyhow, bail};
use serde_json::json;
use smimekit_core::{
    DigestAlg, Directory, KeyStore, Mailbox, PrivateKey, PublishMode, RecipientKind,
    SignatureScheme,
};
use smimekit_plugin_host::directory::PluginDirectory;
use smimekit_plugin_host::keystore::PluginKeyStore;
use smimekit_plugin_sdk::DirectoryPlugin;
use smimekit_sample_vendor_rust::JsonDirectory;
use smimekit_service::{KeyRequest, Service};

const TARGET_US: f64 = 5.0;

fn dylib(stem: &str) -> String {
    format!(
        "{}{stem}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// Best of three rounds of `n` sequential calls, in µs per call.
async fn time<F, Fut>(n: usize, mut f: F) -> Result<f64>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        for _ in 0..n {
            f().await?;
        }
        best = best.min(t.elapsed().as_secs_f64() * 1e6 / n as f64);
    }
    Ok(best)
}

pub fn run(args: &[String]) -> Result<()> {
    let quick = args.iter().any(|a| a == "--quick");
    let n = if quick { 1_000 } else { 10_000 };
    let out = crate::samples::build(true)?;
    let pki = crate::root().join("tests/fixtures/pki");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let tmp = tempfile::tempdir()?;
    let config = format!("path = \"{}\"\n", tmp.path().join("d.json").display());
    let cert_pem = std::fs::read(pki.join("bob.pem"))?;
    let cert = smimekit_pki::load_certificates(&cert_pem, "bob.pem")
        .map_err(|e| anyhow!("{e}"))?
        .remove(0);
    let address = Mailbox::parse("bob@example.org").map_err(|e| anyhow!("{e}"))?;
    let rust_lib = out.join(dylib("smimekit_sample_vendor_rust"));
    let c_lib = out.join(dylib("smimekit_vendor_c"));
    let key_path = pki.join("bob.key").display().to_string();
    let cert_path = pki.join("bob.pem").display().to_string();
    let keyref = format!("vendor-c:{key_path}?cert={cert_path}");
    let scheme = SignatureScheme::Ecdsa(DigestAlg::Sha256);
    let digest = [7u8; 32];

    let figures = rt.block_on(async {
        // Lookup.
        let direct = JsonDirectory::open("bench", &config).map_err(|e| anyhow!(e.message))?;
        direct
            .publish(address.as_str(), 1, cert.as_bytes(), 1)
            .map_err(|e| anyhow!(e.message))?;
        let inline =
            PluginDirectory::open(smimekit_plugin_host::load_inline(&rust_lib)?, "b", &config)?;
        let laned = PluginDirectory::open(smimekit_plugin_host::load(&rust_lib)?, "b", &config)?;
        laned
            .publish(&address, RecipientKind::Mailbox, &cert, PublishMode::Merge)
            .await?;
        let a = address.as_str();
        let l_direct = time(n, || async {
            std::hint::black_box(direct.lookup(a).map_err(|e| anyhow!(e.message))?);
            Ok(())
        })
        .await?;
        let l_inline = time(n, || async {
            std::hint::black_box(inline.lookup(&address).await?);
            Ok(())
        })
        .await?;
        let l_lane = time(n, || async {
            std::hint::black_box(laned.lookup(&address).await?);
            Ok(())
        })
        .await?;

        // Sign.
        let service = Service::builder().build()?;
        let builtin = service
            .open_key(&KeyRequest {
                reference: key_path.clone(),
                certificate: Some(cert_path.clone()),
                ..KeyRequest::default()
            })
            .await?;
        let s_inline =
            PluginKeyStore::open(smimekit_plugin_host::load_inline(&c_lib)?, &keyref, None).await?;
        let k_inline = s_inline.open(None).await?;
        let s_lane =
            PluginKeyStore::open(smimekit_plugin_host::load(&c_lib)?, &keyref, None).await?;
        let k_lane = s_lane.open(None).await?;
        let m = n / 5;
        let sign = |k: std::sync::Arc<dyn PrivateKey>| {
            move || {
                let k = k.clone();
                async move {
                    std::hint::black_box(k.sign_digest(scheme, &digest).await?);
                    Ok(())
                }
            }
        };
        let s_builtin = time(m, sign(builtin)).await?;
        let s_inl = time(m, sign(k_inline)).await?;
        let s_ln = time(m, sign(k_lane)).await?;
        anyhow::Ok([l_direct, l_inline, l_lane, s_builtin, s_inl, s_ln])
    })?;
    let [l_direct, l_inline, l_lane, s_builtin, s_inline, s_lane] = figures;
    let abi_lookup = l_inline - l_direct;
    let abi_sign = s_inline - s_builtin;
    let report = json!({
        "calls": n,
        "lookup_us": { "direct": l_direct, "abi_inline": l_inline, "abi_on_lane": l_lane,
                       "abi_added": abi_lookup, "lane_added": l_lane - l_inline },
        "sign_ecdsa_p256_us": { "builtin": s_builtin, "abi_inline": s_inline, "abi_on_lane": s_lane,
                                "abi_added": abi_sign, "lane_added": s_lane - s_inline },
        "target_abi_added_us": TARGET_US,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    println!(
        "plugin ABI adds {abi_lookup:.2} µs per lookup ({l_direct:.2} → {l_inline:.2}) and \
         {abi_sign:.2} µs per sign ({s_builtin:.1} → {s_inline:.1}); target < {TARGET_US} µs. \
         The lane adds {:.1} µs (lookup, spawn_blocking) and {:.1} µs (sign, worker thread).",
        l_lane - l_inline,
        s_lane - s_inline
    );
    if abi_lookup > TARGET_US || abi_sign > TARGET_US {
        bail!("the plugin ABI adds more than {TARGET_US} µs per call");
    }
    Ok(())
}
