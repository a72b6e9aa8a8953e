//! Helpers shared by the end-to-end tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace root")
        .to_path_buf()
}

/// The interop corpus: `$SMIMEKIT_CORPUS`, else `../shared/corpus` beside the checkout.
pub fn corpus() -> PathBuf {
    std::env::var_os("SMIMEKIT_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("../shared/corpus"))
}

/// The committed test PKI.
pub fn fixtures() -> PathBuf {
    workspace().join("tests/fixtures")
}

/// The `smimekit` binary built for this test run.
pub fn smimekit_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/e2e-HASH -> target/<profile>/smimekit
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join(format!("smimekit{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: build it first (`cargo xtask test` runs `cargo build --bins` before the tests)",
        bin.display()
    );
    bin
}

/// Runs `smimekit` with arguments and extra environment.
pub fn smimekit(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(smimekit_bin());
    cmd.args(args).env_remove("SMIMEKIT_PASSWORD");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run smimekit")
}
