//! `cargo xtask package-test` (also run by `cargo xtask test`): the Debian package, built from
//! the debug binaries `cargo xtask test` has just built (a release build of three binaries
//! would cost CI minutes the test does not need; `cargo xtask dist` builds those), then:
//!
//! 1. its metadata (dependencies, conffile) and contents (files and modes) from `dpkg-deb`;
//! 2. installed with `dpkg --root` into a throwaway root (maintainer scripts run against that
//!    root: `--force-script-chrootless` sets `DPKG_ROOT`, which the scripts honour), checking
//!    the `smimekit` system user, the installed files and `/etc/smimekit/config.toml` 0640
//!    root:smimekit;
//! 3. the units checked with `systemd-analyze verify` (when installed), the manual pages
//!    rendered with `man` (when installed), `smimekit --version` and `smimekit demo` run from
//!    the installed binary, the installed `smimekit-web` serving `/healthz` on loopback;
//! 4. removed (nothing of the package left but the conffile) and purged (nothing left at all).
//!
//! Every failure names what was expected and what was found; everything happens under a
//! temporary folder, and the host's own dpkg database and users are not touched.

use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

use crate::dist::{self, BINARIES, Compression, Profile, UNITS, output};

pub fn run(args: &[String]) -> Result<()> {
    if !args.is_empty() {
        bail!("usage: cargo xtask package-test");
    }
    let started = std::time::Instant::now();
    let tmp = tempfile::Builder::new()
        .prefix("smimekit-package-test")
        .tempdir()?;
    let deb = dist::build(
        Profile::Dev,
        &tmp.path().join("out"),
        Compression::None,
        true,
    )?;
    let built = started.elapsed();
    check_metadata(&deb)?;
    let root = tmp.path().join("root");
    make_root(&root)?;
    dpkg(&root, &["--install"], &deb)?;
    check_installed(&root)?;
    check_units(&root, tmp.path())?;
    check_man_pages(&root)?;
    run_installed(&root, tmp.path())?;

    // Uninstalled, nothing of the package is left but its configuration; purged, nothing.
    dpkg(&root, &["--remove"], Path::new("smimekit"))?;
    expect_left(&root, "dpkg --remove", &["etc/smimekit/config.toml"])?;
    ensure!(
        !root.join("var/lib/smimekit").exists(),
        "after dpkg --remove: the empty /var/lib/smimekit is still there"
    );
    dpkg(&root, &["--purge"], Path::new("smimekit"))?;
    expect_left(&root, "dpkg --purge", &[])?;
    ensure!(
        !root.join("etc/smimekit").exists(),
        "after dpkg --purge: /etc/smimekit is still there"
    );

    // Again with a store in the state folder, as the services leave it: remove keeps the
    // data with the configuration, purge removes both.
    dpkg(&root, &["--install"], &deb)?;
    std::fs::write(root.join("var/lib/smimekit/smimekit.db"), b"state")?;
    dpkg(&root, &["--remove"], Path::new("smimekit"))?;
    expect_left(
        &root,
        "dpkg --remove (with a store)",
        &["etc/smimekit/config.toml", "var/lib/smimekit/smimekit.db"],
    )?;
    dpkg(&root, &["--purge"], Path::new("smimekit"))?;
    expect_left(&root, "dpkg --purge (with a store)", &[])?;
    ensure!(
        !root.join("var/lib/smimekit").exists() && !root.join("etc/smimekit").exists(),
        "after dpkg --purge: /etc/smimekit or /var/lib/smimekit is still there"
    );
    println!(
        "package-test: ok: {} ({} KiB), built in {:.0} s (cargo build included), checked in {:.0} s",
        deb.file_name().unwrap_or_default().to_string_lossy(),
        std::fs::metadata(&deb)?.len().div_ceil(1024),
        built.as_secs_f64(),
        (started.elapsed() - built).as_secs_f64()
    );
    Ok(())
}

/// The control fields and the listing with modes and owners.
fn check_metadata(deb: &Path) -> Result<()> {
    let field = |name: &str| output(Command::new("dpkg-deb").arg("--field").arg(deb).arg(name));
    ensure!(field("Package")? == "smimekit", "Package is not smimekit");
    let depends = field("Depends")?;
    ensure!(
        depends.contains("libssl3"),
        "Depends lacks libssl3: {depends}"
    );
    ensure!(
        depends.contains("passwd"),
        "Depends lacks passwd (useradd): {depends}"
    );
    let suggests = field("Suggests")?;
    ensure!(
        suggests.contains("slapd"),
        "Suggests lacks slapd: {suggests}"
    );
    ensure!(
        !depends.contains("slapd") && !depends.contains("postgresql"),
        "servers are suggestions, not dependencies: {depends}"
    );
    let conffiles = output(
        Command::new("dpkg-deb")
            .arg("--info")
            .arg(deb)
            .arg("conffiles"),
    )?;
    ensure!(
        conffiles == "/etc/smimekit/config.toml",
        "conffiles: expected /etc/smimekit/config.toml, found {conffiles:?}"
    );
    // "-rwxr-xr-x root/root 123 2026-12-03 10:00 ./usr/bin/smimekit"
    let listing = output(Command::new("dpkg-deb").arg("--contents").arg(deb))?;
    let mut entries = std::collections::BTreeMap::new();
    for line in listing.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if let (Some(mode), Some(owner), Some(path)) = (cols.first(), cols.get(1), cols.last()) {
            entries.insert(path.trim_start_matches("./").to_string(), (*mode, *owner));
        }
    }
    let mut want: Vec<(String, &str)> = Vec::new();
    for b in BINARIES {
        want.push((format!("usr/bin/{b}"), "-rwxr-xr-x"));
        want.push((
            format!("usr/share/bash-completion/completions/{b}"),
            "-rw-r--r--",
        ));
        want.push((
            format!("usr/share/zsh/vendor-completions/_{b}"),
            "-rw-r--r--",
        ));
        want.push((
            format!("usr/share/fish/vendor_completions.d/{b}.fish"),
            "-rw-r--r--",
        ));
    }
    for u in UNITS {
        want.push((format!("lib/systemd/system/{u}"), "-rw-r--r--"));
    }
    for page in [
        "man1/smimekit.1.gz",
        "man1/smimekit-publish.1.gz",
        "man1/smimekit-web.1.gz",
        "man1/smimekit-tui.1.gz",
        "man5/smimekit-config.5.gz",
        "man5/smimekit-deploy.5.gz",
    ] {
        want.push((format!("usr/share/man/{page}"), "-rw-r--r--"));
    }
    want.push((
        "usr/include/smimekit/smimekit_plugin.h".into(),
        "-rw-r--r--",
    ));
    want.push(("usr/share/doc/smimekit/plugin-abi.md".into(), "-rw-r--r--"));
    want.push(("usr/share/doc/smimekit/copyright".into(), "-rw-r--r--"));
    want.push(("etc/smimekit/config.toml".into(), "-rw-r-----"));
    for (path, mode) in &want {
        match entries.get(path) {
            Some((m, owner)) if m == mode && *owner == "root/root" => {}
            Some((m, owner)) => bail!("{path}: expected {mode} root/root, found {m} {owner}"),
            None => bail!("{path} is not in the package"),
        }
    }
    let pages = entries
        .keys()
        .filter(|p| p.starts_with("usr/share/man/man1/") && p.ends_with(".1.gz"))
        .count();
    let generated = crate::man::generated()?.len();
    ensure!(
        pages == generated,
        "{generated} generated manual pages, {pages} in the package"
    );
    Ok(())
}

/// A root dpkg can install into: its database and the files useradd edits.
fn make_root(root: &Path) -> Result<()> {
    for d in [
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/lib/dpkg/triggers",
        "etc",
    ] {
        std::fs::create_dir_all(root.join(d))?;
    }
    for (file, text) in [
        ("var/lib/dpkg/status", ""),
        ("var/lib/dpkg/available", ""),
        ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
        ("etc/group", "root:x:0:\n"),
        ("etc/shadow", "root:*:20000:0:99999:7:::\n"),
        ("etc/gshadow", "root:*::\n"),
    ] {
        std::fs::write(root.join(file), text)?;
    }
    Ok(())
}

/// `dpkg --root ROOT ACTION what`, maintainer scripts run outside a chroot against ROOT.
/// Dependencies are not installed in the throwaway root (the host has them: libssl3 runs the
/// binaries), so they are not enforced there.
fn dpkg(root: &Path, action: &[&str], what: &Path) -> Result<()> {
    let out = Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args([
            "--force-script-chrootless",
            "--force-depends",
            "--force-not-root",
            "--log=/dev/null",
        ])
        .args(action)
        .arg(what)
        .output()
        .context("running dpkg")?;
    if !out.status.success() {
        bail!(
            "dpkg --root {} {action:?} {} failed with {}: {}{}",
            root.display(),
            what.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The user, the group of the configuration and the installed files.
fn check_installed(root: &Path) -> Result<()> {
    let passwd = std::fs::read_to_string(root.join("etc/passwd"))?;
    let user = passwd
        .lines()
        .find(|l| l.starts_with("smimekit:"))
        .with_context(|| format!("postinst made no smimekit user: {passwd}"))?;
    let f: Vec<&str> = user.split(':').collect();
    ensure!(
        f.get(5) == Some(&"/var/lib/smimekit") && f.get(6) == Some(&"/usr/sbin/nologin"),
        "smimekit user: expected home /var/lib/smimekit and shell /usr/sbin/nologin: {user}"
    );
    let uid: u32 = f.get(2).and_then(|u| u.parse().ok()).context("uid")?;
    ensure!(uid < 1000, "smimekit is not a system user (uid {uid})");
    let group = std::fs::read_to_string(root.join("etc/group"))?;
    let gid: u32 = group
        .lines()
        .find_map(|l| l.strip_prefix("smimekit:"))
        .and_then(|rest| rest.split(':').nth(1))
        .and_then(|g| g.parse().ok())
        .with_context(|| format!("postinst made no smimekit group: {group}"))?;
    let config = std::fs::metadata(root.join("etc/smimekit/config.toml"))?;
    ensure!(
        config.mode() & 0o7777 == 0o640 && config.uid() == 0 && config.gid() == gid,
        "/etc/smimekit/config.toml: expected 0640 root:smimekit ({gid}), found {:o} {}:{}",
        config.mode() & 0o7777,
        config.uid(),
        config.gid()
    );
    let state = std::fs::metadata(root.join("var/lib/smimekit"))
        .context("postinst made no /var/lib/smimekit")?;
    ensure!(
        state.is_dir()
            && state.mode() & 0o7777 == 0o750
            && state.uid() == uid
            && state.gid() == gid,
        "/var/lib/smimekit: expected 0750 smimekit:smimekit ({uid}:{gid}), found {:o} {}:{}",
        state.mode() & 0o7777,
        state.uid(),
        state.gid()
    );
    for b in BINARIES {
        let m = std::fs::metadata(root.join("usr/bin").join(b))
            .with_context(|| format!("/usr/bin/{b} is not installed"))?;
        ensure!(
            m.permissions().mode() & 0o777 == 0o755,
            "/usr/bin/{b}: mode {:o}",
            m.mode()
        );
    }
    let web = std::fs::read_to_string(root.join("lib/systemd/system/smimekit-web.service"))?;
    for line in [
        "User=smimekit",
        "StateDirectory=smimekit",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
    ] {
        ensure!(
            web.lines().any(|l| l == line),
            "smimekit-web.service lacks {line}"
        );
    }
    let exec = web
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .context("smimekit-web.service has no ExecStart")?;
    ensure!(
        exec.contains("127.0.0.1:"),
        "smimekit-web listens beyond loopback: {exec}"
    );
    let status = std::fs::read_to_string(root.join("lib/systemd/system/smimekit-status.service"))?;
    ensure!(
        status.contains("status --json") && status.contains("Type=oneshot"),
        "smimekit-status.service does not run smimekit status --json once: {status}"
    );
    let timer = std::fs::read_to_string(root.join("lib/systemd/system/smimekit-status.timer"))?;
    ensure!(
        timer.contains("OnCalendar=daily"),
        "smimekit-status.timer is not daily: {timer}"
    );
    Ok(())
}

/// `systemd-analyze verify` on the installed units, when this machine has it. It runs in a
/// root of its own holding the host's units (ours start after and are wanted by them), ours and
/// the installed binaries (ExecStart must name an executable), so nothing is added to the
/// install root whose leftovers are checked.
fn check_units(root: &Path, tmp: &Path) -> Result<()> {
    let host_units = Path::new("/lib/systemd/system");
    if !dist::have("systemd-analyze") || !host_units.is_dir() {
        println!("package-test: systemd-analyze is not installed; units not verified");
        return Ok(());
    }
    let vroot = tmp.join("verify-root");
    let unit_dir = vroot.join("usr/lib/systemd/system");
    std::fs::create_dir_all(&unit_dir)?;
    std::fs::create_dir_all(vroot.join("usr/bin"))?;
    std::fs::create_dir_all(vroot.join("etc"))?;
    for (rel, path) in dist::files(host_units)? {
        if !rel.contains('/') && std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            std::fs::copy(&path, unit_dir.join(&rel))?;
        }
    }
    let mut units = Vec::new();
    for u in UNITS {
        let to = unit_dir.join(u);
        std::fs::copy(root.join("lib/systemd/system").join(u), &to)?;
        units.push(to);
    }
    for b in BINARIES {
        std::fs::copy(root.join("usr/bin").join(b), vroot.join("usr/bin").join(b))?;
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(format!("--root={}", vroot.display()))
        .args(&units)
        .output()
        .context("running systemd-analyze")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        out.status.success() && text.trim().is_empty(),
        "systemd-analyze verify {UNITS:?}: {}\n{text}",
        out.status
    );
    Ok(())
}

/// Every installed page renders without a warning at 80 columns (when `man` is installed).
fn check_man_pages(root: &Path) -> Result<()> {
    if !dist::have("man") {
        println!("package-test: man is not installed; pages not rendered");
        return Ok(());
    }
    let man_dir = root.join("usr/share/man");
    for name in dist::files(&man_dir)?.into_keys() {
        let page = man_dir.join(&name);
        let out = Command::new("man")
            .args(["--warnings=w", "-l"])
            .arg(&page)
            .env("MANWIDTH", "80")
            .env("MAN_KEEP_STDERR", "1")
            .output()
            .context("running man")?;
        let text = String::from_utf8_lossy(&out.stdout);
        let err = String::from_utf8_lossy(&out.stderr);
        ensure!(
            out.status.success() && text.contains("smimekit") && err.trim().is_empty(),
            "man -l {name}: {}: {err}",
            out.status
        );
    }
    Ok(())
}

/// The installed `smimekit` runs: its version, and the main job end to end.
fn run_installed(root: &Path, tmp: &Path) -> Result<()> {
    let bin = root.join("usr/bin/smimekit");
    let version = output(Command::new(&bin).arg("--version"))?;
    ensure!(
        version.starts_with(&format!("smimekit {}\n", env!("CARGO_PKG_VERSION")))
            && version.contains("OpenSSL"),
        "installed smimekit --version: {version}"
    );
    let home = tmp.join("home");
    let dir = tmp.join("demo");
    std::fs::create_dir_all(&home)?;
    let out = Command::new(&bin)
        .arg("demo")
        .arg("--dir")
        .arg(&dir)
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .env_remove("SMIMEKIT_CONFIG")
        .current_dir(tmp)
        .output()
        .context("running the installed smimekit demo")?;
    ensure!(
        out.status.success(),
        "installed smimekit demo failed with {}: {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serve_installed_web(root, tmp)?;
    for b in ["smimekit-web", "smimekit-tui"] {
        let help = output(Command::new(root.join("usr/bin").join(b)).arg("--help"))?;
        ensure!(help.contains("Usage"), "installed {b} --help: {help}");
    }
    Ok(())
}

fn expect_left(root: &Path, after: &str, expected: &[&str]) -> Result<()> {
    let left = leftovers(root)?;
    let expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
    ensure!(
        left == expected,
        "after {after}: expected only {expected:?} left, found {left:?}"
    );
    Ok(())
}

/// The installed web admin serves on loopback with the packaged configuration (its paths moved
/// into `tmp`): `/healthz` answers 200.
fn serve_installed_web(root: &Path, tmp: &Path) -> Result<()> {
    use std::io::{BufRead, BufReader, Read, Write};
    let state = tmp.join("web-state");
    std::fs::create_dir_all(&state)?;
    let config = std::fs::read_to_string(root.join("etc/smimekit/config.toml"))?
        .replace("/var/lib/smimekit", &state.display().to_string());
    let config_file = tmp.join("web-config.toml");
    std::fs::write(&config_file, config)?;
    let mut child = Command::new(root.join("usr/bin/smimekit-web"))
        .arg("--config")
        .arg(&config_file)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("starting the installed smimekit-web")?;
    let checked = (|| -> Result<()> {
        let stdout = child.stdout.take().context("smimekit-web's stdout")?;
        // "smimekit-web: listening on http://127.0.0.1:PORT", printed once it is bound.
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let addr = line
            .trim()
            .rsplit("http://")
            .next()
            .filter(|a| line.contains("http://") && !a.is_empty())
            .with_context(|| format!("smimekit-web printed no address: {line:?}"))?
            .to_string();
        let mut conn = std::net::TcpStream::connect(&addr)
            .with_context(|| format!("connecting to smimekit-web on {addr}"))?;
        conn.write_all(
            format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )?;
        let mut answer = String::new();
        conn.read_to_string(&mut answer)?;
        ensure!(
            answer.starts_with("HTTP/1.1 200"),
            "installed smimekit-web: GET /healthz answered {answer:?}"
        );
        Ok(())
    })();
    // Our own child, ended by its handle.
    let _ = child.kill();
    let _ = child.wait();
    checked
}

/// Files and links below `root` that are not dpkg's database or the account files the
/// scripts edit (`etc/passwd`, its backups, …): what the package left.
fn leftovers(root: &Path) -> Result<BTreeSet<String>> {
    let keep = |rel: &str| {
        rel.starts_with("var/lib/dpkg/")
            || ["passwd", "group", "shadow", "gshadow", ".pwd.lock"]
                .iter()
                .any(|f| rel == format!("etc/{f}") || rel == format!("etc/{f}-"))
    };
    Ok(dist::files(root)?
        .into_keys()
        .filter(|rel| !keep(rel))
        .collect())
}
