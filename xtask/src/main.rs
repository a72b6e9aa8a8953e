//! `cargo xtask`: everything that is not `cargo build`.
//!
//! * `cargo xtask test`: the whole test suite (what CI runs): installs the system packages the
//!   tests need when missing, builds the binaries and sample plugins the end-to-end tests
//!   execute, runs every test of the workspace, then the Windows key store under Wine.
//! * `cargo xtask demo` (alias `sample`): builds the release binary and runs `smimekit demo`,
//!   the main job end to end with no server (CA, users, directory, .sst, lint, sign,
//!   encrypt, open), and shows that `openssl cms` agrees.
//! * `cargo xtask bench`: speed and memory figures beside `openssl speed` and `openssl cms`,
//!   then the parts below (each also runs alone):
//!   * `bench-pki`: `.sst` encode+decode, chain building, local-directory publish and lookup;
//!   * `bench-pkcs11`: signs per second with a SoftHSM key vs `pkcs11-tool` and a file key;
//!   * `bench-ldap`: publishing to 10,000 recipients on slapd vs `ldapmodify`, lookups.
//!   * `bench-exchange`: 10,000 mailboxes published to the Exchange Online emulator under throttling.
//!   * `bench-p12`: opening a PKCS#12 (`keys list`, `sign`) against `openssl` on the same file.
//!   * `bench-store`: the local directory on the store (SQLite, PostgreSQL) against the JSON
//!     file it replaced, the inventory's expiring query, 16 concurrent writers.
//!   * `bench-adversarial`: hostile inputs of at most 10 MiB (50,000 signers, 100,000
//!     recipients, 10^6 header lines, deep BER…), each refused or processed within 1 s and 64 MiB.
//!   * `bench-deploy`: plan and apply of 10,000 people across the local directory, the Exchange
//!     emulator (throttling) and slapd: plan against just reading them, with a fresh inventory,
//!     the throttle budget apply uses, nothing lost or twice, peak RSS.
//!   * `bench-tui`: the console with 100,000 people: start to first frame, filter keystroke to
//!     frame (in-process and through tmux), peak RSS.
//!   * `bench-web`: the web admin's people list (JSON and HTML) with 100,000 people, 50
//!     concurrent signed-in clients: p50/p99 latency, requests/s, server peak RSS.
//! * `cargo xtask fuzz`: the coverage-guided fuzz targets of `fuzz/` ([`fuzz`]): `--list`,
//!   `TARGET [--time S]`, `all`, and `smoke` (part of `test`).
//! * `cargo xtask man`: `docs/man/`, the manual pages rendered from the clap definitions
//!   ([`man`]; a test keeps them in step).
//! * `cargo xtask dist [--dev] [--out DIR]`: release binaries and the Debian package
//!   `smimekit_VERSION_ARCH.deb` ([`dist`]); `cargo xtask package-test` builds it from the debug
//!   binaries, installs it into a throwaway root, checks, runs, removes and purges it
//!   ([`package_test`], part of `test`).
//! * `cargo xtask windows-test`: the Windows certificate-store plugin cross-built for
//!   x86_64-pc-windows-gnu and tested under Wine 8 ([`windows_test`]).

mod bench;
mod bench_adversarial;
mod bench_deploy;
mod bench_exchange;
mod bench_ldap;
mod bench_p12;
mod bench_pkcs11;
mod bench_pki;
mod bench_pki_ops;
mod bench_plugins;
mod bench_store;
mod bench_tui;
mod bench_web;
mod demo;
mod dist;
mod fuzz;
mod man;
mod package_test;
mod samples;
mod setup;
mod windows_test;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let task = args.first().map(String::as_str).unwrap_or_default();
    if task.starts_with("bench") {
        // The benchmarks start slapd, PostgreSQL, tmux and the rest as the tests do: on a
        // fresh machine they are installed first.
        setup::ensure_test_packages(&target_dir())?;
    }
    if task.starts_with("bench") && cfg!(debug_assertions) {
        // `cargo xtask` builds xtask without optimizations; in-process figures need the
        // release build of the libraries, so run the task again from a release build.
        eprintln!("{task}: re-running from a release build of xtask");
        return run(cargo()
            .args(["run", "--release", "--quiet", "-p", "xtask", "--"])
            .args(&args));
    }
    match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("demo" | "sample") => demo::run(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        Some("bench-pki") => bench_pki::run(&args[1..]),
        Some("bench-pkcs11") => bench_pkcs11::run(&args[1..]),
        Some("bench-ldap") => bench_ldap::run(&args[1..]),
        Some("bench-exchange") => bench_exchange::run(&args[1..]),
        Some("bench-p12") => bench_p12::run(&args[1..]),
        Some("bench-plugins") => bench_plugins::run(&args[1..]),
        Some("bench-store") => bench_store::run(&args[1..]),
        Some("bench-adversarial") => bench_adversarial::run(&args[1..]),
        Some("bench-deploy") => bench_deploy::run(&args[1..]),
        Some("bench-tui") => bench_tui::run(&args[1..]),
        Some("bench-web") => bench_web::run(&args[1..]),
        Some("build-samples") => samples::run_task(&args[1..]),
        Some("windows-test") => windows_test::run(&args[1..]),
        Some("fuzz") => fuzz::run(&args[1..]),
        Some("man") => man::run(&args[1..]),
        Some("dist") => dist::run(&args[1..]),
        Some("package-test") => package_test::run(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <test|demo|fuzz|bench|bench-pki|bench-pkcs11|bench-ldap|bench-exchange|bench-p12|bench-plugins|bench-store|bench-adversarial|bench-deploy|bench-web|bench-tui|build-samples|windows-test|man|dist|package-test>"
            );
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
    setup::ensure_test_packages(&target_dir())?;
    run(cargo().args(["build", "--workspace", "--bins"]))?;
    // The e2e plugin tests load the sample vendor plugins from <target>/plugins.
    samples::build(false)?;
    let (passed, failed) = cargo_test(extra)?;
    // The Debian package from the debug binaries just built: installed into a throwaway root,
    // run, removed and purged.
    package_test::run(&[])?;
    // Every fuzz target on its seeds and a few thousand mutations (skipped, saying so, only
    // when this machine cannot build libFuzzer targets).
    fuzz::smoke(10_000)?;
    // The Windows key store, cross-built and run under Wine (installs its own packages).
    windows_test::run(&[])?;
    // One plain closing line for whoever reads the end of the log.
    println!("tests: {passed} passed, {failed} failed");
    Ok(())
}

/// `cargo test --workspace`, its output passed through, with the `test result:` lines summed.
fn cargo_test(extra: &[String]) -> Result<(u64, u64)> {
    use std::io::{BufRead, BufReader};
    let mut child = cargo()
        .args(["test", "--workspace", "--no-fail-fast"])
        .args(extra)
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("starting cargo test")?;
    let (mut passed, mut failed) = (0u64, 0u64);
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            let line = line?;
            println!("{line}");
            // "test result: ok. 12 passed; 0 failed; 0 ignored; …"
            if let Some(rest) = line.strip_prefix("test result: ") {
                for part in rest.split(';') {
                    let mut words = part.split_whitespace().rev();
                    let (Some(label), Some(n)) = (words.next(), words.next()) else {
                        continue;
                    };
                    let n: u64 = n.parse().unwrap_or(0);
                    match label {
                        "passed" => passed += n,
                        "failed" => failed += n,
                        _ => {}
                    }
                }
            }
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("cargo test failed ({passed} passed, {failed} failed)");
    }
    Ok((passed, failed))
}
