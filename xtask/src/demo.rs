//! `cargo xtask demo` (alias `sample`): the README's first command. Builds the release
//! binary, then runs `smimekit demo`, which does the main job end to end on this machine with
//! no server: a private CA, alice (RSA) and bob (EC), the local directory, the Exchange Online
//! `.sst`, lint, sign, encrypt to bob as the directory resolves him, open as bob, and the
//! `openssl cms` cross-check. Extra arguments go to `smimekit demo` (`--dir D`, `--json`).

use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::cargo;

pub fn run(args: &[String]) -> Result<()> {
    crate::run(cargo().args(["build", "--release", "-p", "smimekit-cli"]))?;
    let bin = crate::target_dir()
        .join("release")
        .join(format!("smimekit{}", std::env::consts::EXE_SUFFIX));
    let status = Command::new(&bin)
        .arg("demo")
        .args(args)
        .status()
        .with_context(|| format!("starting {}", bin.display()))?;
    if !status.success() {
        bail!("smimekit demo failed ({status})");
    }
    Ok(())
}
