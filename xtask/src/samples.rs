//! `cargo xtask build-samples`: the sample vendor plugins, into `<target>/plugins/`.
//!
//! * `plugins/sample-vendor-rust` (cdylib, cargo) → `libsmimekit_sample_vendor_rust.so`;
//! * `plugins/sample-vendor-c` (plain C, the system `cc` against libcrypto) →
//!   `libsmimekit_vendor_c.so`;
//! * `plugins/template-c` (the C template a vendor starts from, the system `cc`, no
//!   dependencies) → `libsmimekit_template_c.so`.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};

use crate::{cargo, root, run, target_dir};

/// The folder the samples are written to.
pub fn out_dir() -> PathBuf {
    target_dir().join("plugins")
}

fn dylib(stem: &str) -> String {
    format!(
        "{}{stem}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// Builds the samples and the C template (debug profile for the Rust one, `release` with `--release`).
pub fn run_task(args: &[String]) -> Result<()> {
    let release = args.iter().any(|a| a == "--release");
    let out = build(release)?;
    println!("samples in {}", out.display());
    Ok(())
}

pub fn build(release: bool) -> Result<PathBuf> {
    let out = out_dir();
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let mut c = cargo();
    c.args(["build", "-p", "smimekit-sample-vendor-rust"]);
    if release {
        c.arg("--release");
    }
    run(&mut c)?;
    let profile = if release { "release" } else { "debug" };
    let rust = dylib("smimekit_sample_vendor_rust");
    std::fs::copy(target_dir().join(profile).join(&rust), out.join(&rust))
        .with_context(|| format!("copying {rust}"))?;
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    run(Command::new(&cc)
        .args(["-O2", "-Wall", "-shared", "-fPIC", "-I"])
        .arg(root().join("crates/plugin-abi/include"))
        .arg(root().join("plugins/sample-vendor-c/vendor_c.c"))
        .arg("-o")
        .arg(out.join(dylib("smimekit_vendor_c")))
        .arg("-lcrypto"))?;
    run(Command::new(&cc)
        .args(["-O2", "-Wall", "-shared", "-fPIC", "-I"])
        .arg(root().join("crates/plugin-abi/include"))
        .arg(root().join("plugins/template-c/template_c.c"))
        .arg("-o")
        .arg(out.join(dylib("smimekit_template_c"))))?;
    Ok(out)
}
