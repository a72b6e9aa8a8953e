//! `cargo xtask`: everything that is not `cargo build`.
//!
//! * `cargo xtask test`: the whole test suite (what CI runs): builds the binaries the
//!   end-to-end tests execute, then runs every test of the workspace.
//! * `cargo xtask demo` (alias `sample`): builds the release binary and runs `smimekit demo`,
//!   the main job end to end with no server (CA, users, directory, .sst, lint, sign,
//!   encrypt, open), and shows that `openssl cms` agrees.
//! * `cargo xtask bench`: speed and memory figures beside `openssl speed` and `openssl cms`.

mod bench;
mod bench_pki;
mod demo;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("demo" | "sample") => demo::run(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        Some("bench-pki") => bench_pki::run(&args[1..]),
        _ => {
            eprintln!("usage: cargo xtask <test|demo|bench>");
            bail!("unknown or missing task")
        }
    }
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Where cargo puts its output (`CARGO_TARGET_DIR`, else `target/`).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root().join(dir),
        None => root().join("target"),
    }
}

/// Runs a command in the workspace root, failing with its name when it fails.
pub fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd
        .current_dir(root())
        .status()
        .with_context(|| format!("starting {shown}"))?;
    if !status.success() {
        bail!("{shown} failed with {status}");
    }
    Ok(())
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Builds every binary (the e2e tests run `smimekit`), then runs all tests with one cargo
/// command line so features unify once.
fn test(extra: &[String]) -> Result<()> {
    run(cargo().args(["build", "--workspace", "--bins"]))?;
    run(cargo().args(["test", "--workspace", "--no-fail-fast"]).args(extra))?;
    Ok(())
}
