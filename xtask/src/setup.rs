//! Installs the system packages the tests need when they are missing (Debian, idempotent).
//!
//! `cargo xtask test` calls this first, so the README's test command works on a fresh machine:
//! openssl and libssl-dev (the engine), gpgsm (interop), SoftHSM2 and OpenSC (PKCS#11),
//! slapd and ldap-utils (LDAP), Samba's AD DC (the active-directory flavour), PostgreSQL (the
//! store's second backend), Chromium and Node with playwright-core (the web admin's browser
//! test; playwright-core goes into `target/web-e2e/`, never into the repository or the product).
//! The Windows/Wine packages are `windows-test`'s own business.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// (what must exist, the Debian package that provides it).
const NEEDS: &[(Probe, &str)] = &[
    (Probe::Command("openssl"), "openssl"),
    (Probe::Command("gpgsm"), "gpgsm"),
    (Probe::Command("gpg-agent"), "gpg-agent"),
    (Probe::Package("libssl-dev"), "libssl-dev"),
    (Probe::Command("pkg-config"), "pkg-config"),
    // The TUI's end-to-end test drives the real binary in a tmux pane.
    (Probe::Command("tmux"), "tmux"),
    (Probe::Command("softhsm2-util"), "softhsm2"),
    (Probe::Command("pkcs11-tool"), "opensc"),
    (Probe::File("/usr/sbin/slapd"), "slapd"),
    (Probe::Command("ldapmodify"), "ldap-utils"),
    // The active-directory flavour's tests provision a Samba AD DC; samba-ad-provision (its
    // provisioning data) is only a Recommends of samba-ad-dc, and recommends are not installed.
    (Probe::File("/usr/sbin/samba"), "samba"),
    (Probe::Package("samba-ad-dc"), "samba-ad-dc"),
    (Probe::Package("samba-ad-provision"), "samba-ad-provision"),
    // The store's tests start throwaway PostgreSQL clusters (initdb + pg_ctl as the postgres
    // user); the package starts no server here.
    (Probe::Package("postgresql"), "postgresql"),
    // The web admin's browser test: headless Chromium driven by playwright-core under Node.
    (Probe::Command("chromium"), "chromium"),
    (Probe::Command("node"), "nodejs"),
    (Probe::Command("npm"), "npm"),
    // The Debian package's test (issue 18): dpkg-shlibdeps finds the binaries' library
    // dependencies, strip takes the debug symbols out, systemd-analyze verifies the units,
    // man renders the pages.
    (Probe::Command("dpkg-shlibdeps"), "dpkg-dev"),
    (Probe::Command("strip"), "binutils"),
    (Probe::Command("systemd-analyze"), "systemd"),
    (Probe::Command("man"), "man-db"),
];

/// The playwright-core the browser test drives Chromium with (one package, no dependencies).
const PLAYWRIGHT_CORE: &str = "playwright-core@1.65.1";

enum Probe {
    Command(&'static str),
    Package(&'static str),
    File(&'static str),
}

impl Probe {
    fn present(&self) -> bool {
        match self {
            Probe::Command(c) => quiet(Command::new("sh").args(["-c", &format!("command -v {c}")])),
            Probe::Package(p) => quiet(Command::new("dpkg").args(["-s", p])),
            Probe::File(f) => Path::new(f).exists(),
        }
    }
}

fn quiet(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Installs whatever is missing (system packages, then playwright-core into
/// `target/web-e2e/`); does nothing (and needs no root) when all is there.
pub fn ensure_test_packages(target: &Path) -> Result<()> {
    ensure_system_packages()?;
    ensure_playwright(target)
}

/// `npm install playwright-core` into `<target>/web-e2e/` unless that version is there.
fn ensure_playwright(target: &Path) -> Result<()> {
    let dir = target.join("web-e2e");
    let installed = dir.join("node_modules/playwright-core/package.json");
    let version = PLAYWRIGHT_CORE.rsplit('@').next().unwrap_or_default();
    if std::fs::read_to_string(&installed)
        .is_ok_and(|t| t.contains(&format!("\"version\": \"{version}\"")))
    {
        return Ok(());
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    eprintln!("test: installing {PLAYWRIGHT_CORE} into {}", dir.display());
    let status = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--prefix"])
        .arg(&dir)
        .arg(PLAYWRIGHT_CORE)
        .status()
        .context("running npm install")?;
    if !status.success() {
        bail!("npm install {PLAYWRIGHT_CORE} failed with {status}");
    }
    Ok(())
}

/// Installs the missing system packages.
fn ensure_system_packages() -> Result<()> {
    let missing: Vec<&str> = NEEDS
        .iter()
        .filter(|(probe, _)| !probe.present())
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("test: installing {}", missing.join(" "));
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    let apt = |args: &[&str]| -> Result<()> {
        let mut cmd = if root {
            Command::new(args[0])
        } else {
            let mut c = Command::new("sudo");
            c.arg(args[0]);
            c
        };
        cmd.args(&args[1..])
            .env("DEBIAN_FRONTEND", "noninteractive");
        let status = cmd
            .status()
            .with_context(|| format!("running {}", args.join(" ")))?;
        if !status.success() {
            bail!("{} failed with {status}", args.join(" "));
        }
        Ok(())
    };
    if missing.contains(&"slapd") {
        // No default database or configuration: the tests start their own slapd on 127.0.0.1.
        let mut child = Command::new(if root {
            "debconf-set-selections"
        } else {
            "sudo"
        })
        .args(if root {
            vec![]
        } else {
            vec!["debconf-set-selections"]
        })
        .stdin(Stdio::piped())
        .spawn()
        .context("running debconf-set-selections")?;
        if let Some(mut stdin) = child.stdin.take() {
            use std::io::Write;
            stdin.write_all(b"slapd slapd/no_configuration boolean true\n")?;
        }
        child.wait()?;
    }
    apt(&["apt-get", "update", "-q"])?;
    let mut install = vec![
        "apt-get",
        "-o",
        "DPkg::Lock::Timeout=900",
        "install",
        "-y",
        "--no-install-recommends",
    ];
    install.extend(&missing);
    apt(&install)?;
    if missing.contains(&"slapd") {
        // Without the image's policy-rc.d the package may start the system slapd: stop it.
        let _ = apt(&["service", "slapd", "stop"]);
    }
    Ok(())
}
