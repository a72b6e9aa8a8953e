//! A SoftHSM2 fixture for the PKCS#11 tests: a private token directory and `softhsm2.conf` in a
//! temp dir per test. The variable SOFTHSM2_CONF is never set in this process (tests run in
//! threads); it is passed to each child (`softhsm2-util`, `pkcs11-tool`, `smimekit`) through
//! `Command::env`, so tests cannot see each other's tokens.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{self, p, pki, show};

/// The SoftHSM2 module (Debian path, then others).
pub fn module() -> String {
    [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/local/lib/softhsm/libsofthsm2.so",
    ]
    .iter()
    .find(|m| Path::new(m).is_file())
    .unwrap_or_else(|| {
        panic!("SoftHSM2 is required (apt-get install softhsm2 opensc; .ci/run installs them)")
    })
    .to_string()
}

pub const PIN: &str = "1234";
pub const SO_PIN: &str = "5678";

pub struct SoftHsm {
    dir: tempfile::TempDir,
    pub conf: PathBuf,
    pub module: String,
}

impl SoftHsm {
    /// A fresh SoftHSM with one token `label` (user PIN [`PIN`]).
    pub fn new(label: &str) -> Self {
        let dir = tempfile::tempdir().expect("softhsm dir");
        std::fs::create_dir(dir.path().join("tokens")).expect("tokens dir");
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                p(&dir.path().join("tokens"))
            ),
        )
        .expect("softhsm2.conf");
        let h = SoftHsm {
            dir,
            conf,
            module: module(),
        };
        h.init_token(label);
        h
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn conf(&self) -> String {
        p(&self.conf)
    }

    /// A command with SOFTHSM2_CONF set for it alone.
    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SOFTHSM2_CONF", &self.conf);
        c
    }

    fn ok(&self, c: &mut Command, what: &str) -> Output {
        let out = common::run(c, None);
        assert!(out.status.success(), "{}", show(what, &out));
        out
    }

    pub fn init_token(&self, label: &str) {
        self.ok(
            self.cmd("softhsm2-util").args([
                "--init-token",
                "--free",
                "--label",
                label,
                "--pin",
                PIN,
                "--so-pin",
                SO_PIN,
            ]),
            "softhsm2-util --init-token",
        );
    }

    fn tool(&self, token: &str, args: &[&str]) -> Output {
        let mut c = self.cmd("pkcs11-tool");
        c.args([
            "--module",
            &self.module,
            "--token-label",
            token,
            "--login",
            "--pin",
            PIN,
        ])
        .args(args);
        self.ok(&mut c, &format!("pkcs11-tool {}", args.join(" ")))
    }

    /// Imports a committed test key the recommended way (components.md §2): private key,
    /// public key and certificate with one CKA_ID; EC keys get CKA_DERIVE. `with_cert: false`
    /// leaves the certificate out.
    pub fn import(&self, token: &str, who: &str, id: &str, ec: bool, with_cert: bool) {
        let pubder = self.path().join(format!("{who}-{id}.pub.der"));
        let certder = self.path().join(format!("{who}-{id}.der"));
        common::openssl_ok(&[
            "pkey",
            "-in",
            &pki(&format!("{who}.key")),
            "-pubout",
            "-outform",
            "DER",
            "-out",
            &p(&pubder),
        ]);
        common::openssl_ok(&[
            "x509",
            "-in",
            &pki(&format!("{who}.pem")),
            "-outform",
            "DER",
            "-out",
            &p(&certder),
        ]);
        let usage = if ec {
            "--usage-derive"
        } else {
            "--usage-decrypt"
        };
        self.tool(
            token,
            &[
                "--write-object",
                &pki(&format!("{who}.key")),
                "--type",
                "privkey",
                "--usage-sign",
                usage,
                "--id",
                id,
                "--label",
                who,
            ],
        );
        let mut pubargs = vec![
            "--write-object",
            pubder.to_str().expect("utf-8 path"),
            "--type",
            "pubkey",
            "--id",
            id,
            "--label",
            who,
        ];
        if ec {
            pubargs.push("--usage-derive");
        }
        self.tool(token, &pubargs);
        if with_cert {
            self.tool(
                token,
                &[
                    "--write-object",
                    certder.to_str().expect("utf-8 path"),
                    "--type",
                    "cert",
                    "--id",
                    id,
                    "--label",
                    who,
                ],
            );
        }
    }

    /// Writes a certificate object (a CA's, say) with its own CKA_ID and label, beside no key.
    pub fn write_certificate(&self, token: &str, pem: &str, id: &str, label: &str) {
        let der = self.path().join(format!("cert-{id}.der"));
        common::openssl_ok(&["x509", "-in", pem, "-outform", "DER", "-out", &p(&der)]);
        self.tool(
            token,
            &[
                "--write-object",
                &p(&der),
                "--type",
                "cert",
                "--id",
                id,
                "--label",
                label,
            ],
        );
    }

    /// `pkcs11:token=T;object=O?module-path=M` (no PIN).
    pub fn uri(&self, token: &str, object: Option<&str>) -> String {
        let obj = object.map(|o| format!(";object={o}")).unwrap_or_default();
        format!("pkcs11:token={token}{obj}?module-path={}", self.module)
    }

    /// Runs smimekit with SOFTHSM2_CONF, SMIMEKIT_PIN (when given) and extra variables.
    pub fn smimekit(&self, args: &[&str], pin: Option<&str>, env: &[(&str, &str)]) -> Output {
        let conf = self.conf();
        let mut all: Vec<(&str, &str)> = vec![("SOFTHSM2_CONF", &conf)];
        if let Some(pin) = pin {
            all.push(("SMIMEKIT_PIN", pin));
        }
        all.extend_from_slice(env);
        let mut cmd = Command::new(common::smimekit_bin());
        cmd.args(args)
            .env_remove("SMIMEKIT_PASSWORD")
            .env_remove("SMIMEKIT_PIN");
        for (k, v) in all {
            cmd.env(k, v);
        }
        common::run(&mut cmd, None)
    }

    pub fn smimekit_ok(&self, args: &[&str], pin: Option<&str>, env: &[(&str, &str)]) -> Output {
        let out = self.smimekit(args, pin, env);
        assert!(
            out.status.success(),
            "{}",
            show(&format!("smimekit {}", args.join(" ")), &out)
        );
        out
    }
}
