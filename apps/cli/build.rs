//! Records the git revision the binary is built from as `SMIMEKIT_GIT_REV`, for `--version`.
//!
//! `SMIMEKIT_GIT_REV` in the environment wins (a packager building from a tarball may know it);
//! else `git rev-parse` in this checkout; else "unknown" (a source tarball has no `.git`, and a
//! tarball unpacked inside some other repository must not report that repository's commit).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SMIMEKIT_GIT_REV");
    let given = std::env::var("SMIMEKIT_GIT_REV")
        .ok()
        .filter(|r| !r.trim().is_empty());
    let rev = given
        .or_else(git_revision)
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=SMIMEKIT_GIT_REV={}", rev.trim());
}

/// The checkout's short commit id, with the files to watch for a new commit.
fn git_revision() -> Option<String> {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    // The workspace root is two levels up (apps/cli); only its own repository counts.
    let root = manifest.parent()?.parent()?.canonicalize().ok()?;
    let top = git(&root, &["rev-parse", "--show-toplevel"])?;
    if Path::new(&top).canonicalize().ok()? != root {
        return None;
    }
    let rev = git(&root, &["rev-parse", "--short=12", "HEAD"])?;
    // A new commit moves HEAD or the branch it names (possibly packed).
    let mut watch = vec!["HEAD".to_string(), "packed-refs".to_string()];
    if let Some(branch) = git(&root, &["symbolic-ref", "-q", "HEAD"]) {
        watch.push(branch);
    }
    for name in watch {
        if let Some(path) = git(&root, &["rev-parse", "--git-path", &name]) {
            let path = root.join(path);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    Some(rev)
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}
