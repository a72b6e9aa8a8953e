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

/// The interop corpus: testkit's one locator (`$SMIMEKIT_CORPUS`, else `../shared/corpus`
/// beside the checkout).
pub fn corpus() -> PathBuf {
    smimekit_testkit::corpus()
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
    // The store and the embedded directory default to $XDG_DATA_HOME: keep the tests' audit
    // and inventory rows out of the real user's data (a test that cares sets its own).
    cmd.args(args)
        .env_remove("SMIMEKIT_PASSWORD")
        .env("XDG_DATA_HOME", test_data_home());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run smimekit")
}

/// One data folder for this test process's `smimekit` runs (under the system's temporary folder).
pub fn test_data_home() -> &'static Path {
    static HOME: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    HOME.get_or_init(|| tempfile::tempdir().expect("temporary data folder"))
        .path()
}

/// A file of the committed test PKI, as a string argument.
pub fn pki(name: &str) -> String {
    fixtures().join("pki").join(name).display().to_string()
}

/// A path as a command-line argument.
pub fn p(path: &Path) -> String {
    path.display().to_string()
}

/// A process's status and output, for assertion messages.
pub fn show(what: &str, out: &Output) -> String {
    format!(
        "{what}: {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a command, feeding `stdin` when given (else /dev/null), and collects its output.
pub fn run(cmd: &mut Command, stdin: Option<&[u8]>) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    if let Some(data) = stdin {
        let mut s = child.stdin.take().expect("stdin");
        s.write_all(data).expect("write stdin");
    }
    child.wait_with_output().expect("wait")
}

/// Runs the system `openssl` and asserts success.
pub fn openssl_ok(args: &[&str]) -> Output {
    let out = run(Command::new("openssl").args(args), None);
    assert!(
        out.status.success(),
        "{}",
        show(&format!("openssl {}", args.join(" ")), &out)
    );
    out
}

/// A throwaway GNUPGHOME for gpgsm: `root` trusted (`relax`), CRL and policy checks off,
/// loopback pinentry allowed. The agent it starts is stopped on drop.
pub struct GpgHome(tempfile::TempDir);

impl GpgHome {
    pub fn new(root: &Path) -> Self {
        // Under /tmp: gpg-agent's socket path must stay short.
        let home = tempfile::Builder::new()
            .prefix("gh")
            .tempdir_in("/tmp")
            .expect("GNUPGHOME");
        let h = home.path();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(h, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        }
        std::fs::write(h.join("gpg-agent.conf"), "allow-loopback-pinentry\n").expect("agent conf");
        std::fs::write(
            h.join("gpgsm.conf"),
            "disable-crl-checks\ndisable-policy-checks\n",
        )
        .expect("gpgsm.conf");
        let fpr = openssl_ok(&["x509", "-in", &p(root), "-noout", "-fingerprint", "-sha1"]);
        let fpr = String::from_utf8_lossy(&fpr.stdout);
        let fpr = fpr
            .trim()
            .split('=')
            .nth(1)
            .expect("fingerprint")
            .to_string();
        std::fs::write(h.join("trustlist.txt"), format!("{fpr} S relax\n")).expect("trustlist");
        GpgHome(home)
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// `gpgsm --batch ARGS`, with `stdin` fed when given.
    pub fn gpgsm(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        run(
            Command::new("gpgsm")
                .env("GNUPGHOME", self.path())
                .arg("--batch")
                .args(args),
            stdin,
        )
    }
}

impl Drop for GpgHome {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .args(["--homedir", &p(self.path()), "--kill", "gpg-agent"])
            .output();
    }
}
