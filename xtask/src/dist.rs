//! `cargo xtask dist [--dev] [--no-build] [--out DIR]`: release binaries (or the debug ones, or
//! those already built) and the Debian package `smimekit_VERSION_ARCH.deb`;
//! `cargo xtask package-test`: that package built from the debug binaries, installed into a
//! throwaway root, checked, run, removed and purged (part of `cargo xtask test`).
//!
//! The package is staged as a tree under `<target>/dist/` and built with Debian's own
//! `dpkg-deb --build` (no extra cargo tool to install in CI): the three binaries (stripped),
//! the manual pages and completions from [`crate::man`], the plugin C header and
//! `docs/plugin-abi.md` for vendors, `/etc/smimekit/config.toml` (a conffile), the systemd
//! units of `packaging/systemd/` and the maintainer scripts of `packaging/debian/`. The shared
//! library dependencies come from `dpkg-shlibdeps` when it is installed (else they are
//! declared: libc6, libssl3). `dist` runs lintian when it is installed and prints its tags.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// The binaries the package installs in /usr/bin.
pub const BINARIES: &[&str] = &["smimekit", "smimekit-web", "smimekit-tui"];

/// The systemd units, from `packaging/systemd/`.
pub const UNITS: &[&str] = &[
    "smimekit-web.service",
    "smimekit-status.service",
    "smimekit-status.timer",
];

/// Where units go (Debian 12 still ships its own in /lib; /usr/lib is merged with it).
const UNIT_DIR: &str = "lib/systemd/system";

/// Packages that extend what smimekit reaches; none is needed to run it.
const SUGGESTS: &str = "slapd, ldap-utils, softhsm2, opensc, postgresql, gpgsm";

/// Which cargo profile the binaries come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// `cargo xtask dist`: optimised.
    Release,
    /// The test: the binaries `cargo xtask test` has built already (a release build of
    /// three binaries costs CI minutes the test does not need).
    Dev,
}

impl Profile {
    fn dir(self) -> &'static str {
        match self {
            Profile::Release => "release",
            Profile::Dev => "debug",
        }
    }
}

/// `cargo xtask dist [--dev] [--out DIR]`.
pub fn run(args: &[String]) -> Result<()> {
    let mut profile = Profile::Release;
    let mut build_first = true;
    let mut out = crate::target_dir().join("dist");
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--dev" => profile = Profile::Dev,
            "--no-build" => build_first = false,
            "--out" => {
                out = PathBuf::from(it.next().context("--out needs a folder")?);
            }
            other => bail!(
                "dist: unknown argument {other:?} (usage: cargo xtask dist [--dev] [--no-build] [--out DIR])"
            ),
        }
    }
    let deb = build(profile, &out, Compression::Xz, build_first)?;
    let size = std::fs::metadata(&deb)?.len();
    println!("dist: {} ({} KiB)", deb.display(), size.div_ceil(1024));
    if have("lintian") {
        // Lintian's verdict is printed, not enforced: a tag added by a newer lintian should
        // not break a release build; the README lists the tags we know of.
        let out = Command::new("lintian")
            .arg("--display-info")
            .arg(&deb)
            .output()
            .context("running lintian")?;
        let text = String::from_utf8_lossy(&out.stdout);
        if text.trim().is_empty() {
            println!("dist: lintian: no tags");
        } else {
            println!("dist: lintian:\n{text}");
        }
    } else {
        println!("dist: lintian is not installed (apt-get install lintian); not run");
    }
    Ok(())
}

/// How `dpkg-deb` compresses the data.
#[derive(Debug, Clone, Copy)]
pub enum Compression {
    Xz,
    /// For the test: the package is unpacked at once, compressing it would only cost time.
    None,
}

/// Builds the binaries of `profile`, stages the package tree and builds the `.deb` into `out`.
/// `build_first: false` packages the binaries already in the target folder.
pub fn build(
    profile: Profile,
    out: &Path,
    compression: Compression,
    build_first: bool,
) -> Result<PathBuf> {
    if build_first {
        let mut cargo = crate::cargo();
        cargo.args(["build", "--quiet"]);
        match profile {
            Profile::Release => {
                cargo.arg("--release");
                for p in ["smimekit-cli", "smimekit-web", "smimekit-tui"] {
                    cargo.args(["-p", p]);
                }
            }
            // What `cargo xtask test` builds, with the same features unified: nothing to do
            // there, where a build of three packages alone could pick other features and
            // rebuild their dependencies.
            Profile::Dev => {
                cargo.arg("--workspace");
            }
        }
        crate::run(cargo.arg("--bins"))?;
    }

    let version = env!("CARGO_PKG_VERSION");
    let arch = output(Command::new("dpkg").arg("--print-architecture"))?;
    let name = format!("smimekit_{version}_{arch}");
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let stage = out.join(&name);
    if stage.exists() {
        std::fs::remove_dir_all(&stage).with_context(|| format!("removing {}", stage.display()))?;
    }
    stage_tree(profile, &stage)?;
    write_control(&stage, version, &arch)?;

    let deb = out.join(format!("{name}.deb"));
    let mut cmd = Command::new("dpkg-deb");
    cmd.args(["--root-owner-group", "--build"]);
    match compression {
        Compression::Xz => cmd.args(["-Zxz", "-z6"]),
        Compression::None => cmd.arg("-Znone"),
    };
    let status = cmd
        .arg(&stage)
        .arg(&deb)
        .stdout(Stdio::null())
        .status()
        .context("running dpkg-deb (apt-get install dpkg)")?;
    if !status.success() {
        bail!("dpkg-deb --build {} failed with {status}", stage.display());
    }
    Ok(deb)
}

/// Writes every file of the package below `stage` with its mode.
fn stage_tree(profile: Profile, stage: &Path) -> Result<()> {
    let root = crate::root();
    let bin_dir = crate::target_dir().join(profile.dir());
    for bin in BINARIES {
        let to = stage.join("usr/bin").join(bin);
        copy(&bin_dir.join(bin), &to, 0o755)?;
        // Debug symbols stay out of the package (lintian: unstripped-binary-or-object).
        let status = Command::new("strip")
            .args([
                "--strip-unneeded",
                "--remove-section=.comment",
                "--remove-section=.note",
            ])
            .arg(&to)
            .status()
            .context("running strip (apt-get install binutils)")?;
        if !status.success() {
            bail!("strip {} failed with {status}", to.display());
        }
    }
    for (name, roff) in crate::man::all_pages()? {
        let section = name.rsplit('.').next().unwrap_or("1");
        let to = stage.join(format!("usr/share/man/man{section}/{name}.gz"));
        write(&to, &gzip(&roff)?, 0o644)?;
    }
    for (path, script) in crate::man::completions() {
        write(&stage.join(path), &script, 0o644)?;
    }
    copy(
        &root.join("crates/plugin-abi/include/smimekit_plugin.h"),
        &stage.join("usr/include/smimekit/smimekit_plugin.h"),
        0o644,
    )?;
    let doc = stage.join("usr/share/doc/smimekit");
    copy(
        &root.join("docs/plugin-abi.md"),
        &doc.join("plugin-abi.md"),
        0o644,
    )?;
    copy(
        &root.join("packaging/debian/copyright"),
        &doc.join("copyright"),
        0o644,
    )?;
    write(
        &doc.join("changelog.gz"),
        &gzip(changelog().as_bytes())?,
        0o644,
    )?;
    copy(
        &root.join("packaging/config.toml"),
        &stage.join("etc/smimekit/config.toml"),
        0o640,
    )?;
    for unit in UNITS {
        copy(
            &root.join("packaging/systemd").join(unit),
            &stage.join(UNIT_DIR).join(unit),
            0o644,
        )?;
    }
    let debian = stage.join("DEBIAN");
    for script in ["postinst", "prerm", "postrm"] {
        copy(
            &root.join("packaging/debian").join(script),
            &debian.join(script),
            0o755,
        )?;
    }
    write(
        &debian.join("conffiles"),
        b"/etc/smimekit/config.toml\n",
        0o644,
    )?;
    // The configuration is 0640 in the package already (the mode, with no moment of
    // being world-readable on install or upgrade); postinst gives it the smimekit group.
    write(
        &stage.join("usr/share/lintian/overrides/smimekit"),
        b"smimekit: non-standard-file-perm 0640 != 0644 [etc/smimekit/config.toml]\n",
        0o644,
    )?;
    // Folders 0755 whatever the umask (lintian: non-standard-dir-perm).
    set_dir_modes(stage)?;
    Ok(())
}

/// A changelog for a native package, as Debian's format has it.
fn changelog() -> String {
    let version = env!("CARGO_PKG_VERSION");
    format!(
        "smimekit ({version}) unstable; urgency=medium\n\n  * Release {version}: see README.md.\n\n -- smimekit maintainers <smimekit@example.org>  Thu, 03 Dec 2026 00:00:00 +0000\n"
    )
}

/// DEBIAN/control and DEBIAN/md5sums.
fn write_control(stage: &Path, version: &str, arch: &str) -> Result<()> {
    let depends = shlib_depends(stage)?;
    let installed_kib = tree_size(stage, &stage.join("DEBIAN"))?.div_ceil(1024);
    let control = format!(
        "Package: smimekit\n\
Version: {version}\n\
Architecture: {arch}\n\
Maintainer: smimekit maintainers <smimekit@example.org>\n\
Installed-Size: {installed_kib}\n\
Depends: {depends}, passwd\n\
Suggests: {SUGGESTS}\n\
Section: mail\n\
Priority: optional\n\
Description: S/MIME for an organisation: mail, keys, certificates, directories\n \
smimekit signs, verifies, encrypts, decrypts and opens S/MIME mail with keys\n \
from files, PKCS#11 tokens and system stores; runs a private CA; writes the\n \
trust chain as the .sst Exchange Online takes; lints certificates for Outlook\n \
and OWA; publishes certificates to the local directory, LDAP, Active Directory\n \
and Exchange Online, and keeps them as a deploy file says (plan, apply,\n \
status).\n \
.\n \
This package installs the smimekit command, the smimekit-web admin (a systemd\n \
service on loopback), the smimekit-tui console, a daily status timer, manual\n \
pages, shell completions and the C header for vendor plugins.\n"
    );
    write(&stage.join("DEBIAN/control"), control.as_bytes(), 0o644)?;
    let mut sums = String::new();
    for (rel, path) in files(stage)? {
        if rel.starts_with("DEBIAN/") || rel.starts_with("etc/") {
            continue;
        }
        let out = output(Command::new("md5sum").arg(&path))?;
        let hash = out.split_whitespace().next().unwrap_or_default();
        sums.push_str(&format!("{hash}  {rel}\n"));
    }
    write(&stage.join("DEBIAN/md5sums"), sums.as_bytes(), 0o644)
}

/// The binaries' shared-library dependencies: dpkg-shlibdeps's answer, else the two we know.
fn shlib_depends(stage: &Path) -> Result<String> {
    const DECLARED: &str = "libc6, libssl3";
    if !have("dpkg-shlibdeps") {
        return Ok(DECLARED.to_string());
    }
    // dpkg-shlibdeps insists on running beside a debian/control.
    let dir = tempfile::tempdir()?;
    std::fs::create_dir(dir.path().join("debian"))?;
    std::fs::write(
        dir.path().join("debian/control"),
        "Source: smimekit\n\nPackage: smimekit\nArchitecture: any\n",
    )?;
    let mut cmd = Command::new("dpkg-shlibdeps");
    cmd.arg("-O").current_dir(dir.path());
    for bin in BINARIES {
        cmd.arg(format!("-e{}", stage.join("usr/bin").join(bin).display()));
    }
    let out = cmd.output().context("running dpkg-shlibdeps")?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.lines().find_map(|l| l.strip_prefix("shlibs:Depends=")) {
        Some(deps) if out.status.success() && deps.contains("libssl3") => Ok(deps.to_string()),
        _ => {
            eprintln!(
                "dist: dpkg-shlibdeps gave no answer ({}); declaring {DECLARED}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            Ok(DECLARED.to_string())
        }
    }
}

/// Every regular file below `dir`: path relative to it (with `/`) → path.
pub fn files(dir: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let path = entry?.path();
            let meta = std::fs::symlink_metadata(&path)?;
            if meta.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir)?.to_string_lossy().into_owned();
                out.insert(rel, path);
            }
        }
    }
    Ok(out)
}

fn tree_size(dir: &Path, skip: &Path) -> Result<u64> {
    let mut total = 0;
    for path in files(dir)?.values() {
        if !path.starts_with(skip) {
            total += std::fs::metadata(path)?.len();
        }
    }
    Ok(total)
}

fn set_dir_modes(dir: &Path) -> Result<()> {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if std::fs::symlink_metadata(&path)?.is_dir() {
            set_dir_modes(&path)?;
        }
    }
    Ok(())
}

fn copy(from: &Path, to: &Path, mode: u32) -> Result<()> {
    let bytes = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    write(to, &bytes, mode)
}

fn write(to: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(to, bytes).with_context(|| format!("writing {}", to.display()))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", to.display()))
}

/// `gzip -9n`: no name or time stamp inside, so the same page gives the same bytes.
fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write;
    let mut child = Command::new("gzip")
        .args(["-9n", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("running gzip")?;
    let mut stdin = child.stdin.take().context("gzip's stdin")?;
    let input = data.to_vec();
    // Written from a thread: gzip's output fills its pipe before it has read everything.
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output()?;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("gzip writer panicked"))??;
    if !out.status.success() {
        bail!("gzip failed with {}", out.status);
    }
    Ok(out.stdout)
}

pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A command's standard output, trimmed; its failure names it.
pub fn output(cmd: &mut Command) -> Result<String> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().with_context(|| format!("starting {shown}"))?;
    if !out.status.success() {
        bail!(
            "{shown} failed with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}
