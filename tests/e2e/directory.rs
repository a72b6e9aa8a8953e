//! The embedded local directory through the CLI: config, publish/lookup/unpublish with merge,
//! replace and prune, the trust chain, `encrypt --to ADDRESS`, and bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{pki, smimekit, smimekit_bin};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A temp folder with a config naming the given local directories (file order = search order).
struct Setup {
    dir: tempfile::TempDir,
    config: String,
}

impl Setup {
    fn new(names: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = String::from("# test config\n");
        for n in names {
            // Relative paths are relative to the config file.
            cfg.push_str(&format!(
                "[directory.{n}]\nkind = \"local\"\npath = \"{n}.json\"\n\n"
            ));
        }
        let config = dir.path().join("config.toml");
        std::fs::write(&config, cfg).unwrap();
        Self {
            config: config.display().to_string(),
            dir,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs smimekit with `--config` after the subcommand's arguments.
    fn run(&self, args: &[&str]) -> Output {
        let mut a: Vec<&str> = args.to_vec();
        a.extend(["--config", &self.config]);
        smimekit(&a, &[])
    }

    fn ok_json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.run(&a);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn thumbprints(v: &serde_json::Value, field: &str) -> Vec<String> {
    v[field]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["sha1_thumbprint"].as_str().unwrap().to_string())
        .collect()
}

fn openssl_sha1(pem: &str) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-in", pem, "-noout", "-fingerprint", "-sha1"])
        .output()
        .unwrap();
    let s = text(&out.stdout);
    s.trim().rsplit('=').next().unwrap().replace(':', "")
}

/// An expired certificate for alice@example.org (2020–2021), made with `openssl ca`.
pub(crate) fn expired_alice(dir: &Path) -> String {
    std::fs::write(
        dir.join("ca.cnf"),
        "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\n\
default_md = sha256\npolicy = p\nunique_subject = no\nx509_extensions = ext\n[p]\ncommonName = supplied\n\
[ext]\nsubjectAltName = email:alice@example.org\nextendedKeyUsage = emailProtection\n\
keyUsage = critical, digitalSignature, keyEncipherment\n",
    )
    .unwrap();
    std::fs::write(dir.join("index.txt"), "").unwrap();
    std::fs::write(dir.join("serial"), "01\n").unwrap();
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            text(&out.stderr)
        );
    };
    run(&[
        "req",
        "-new",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "old.key",
        "-subj",
        "/CN=Alice Old",
        "-out",
        "old.csr",
    ]);
    run(&[
        "ca",
        "-batch",
        "-config",
        "ca.cnf",
        "-selfsign",
        "-keyfile",
        "old.key",
        "-in",
        "old.csr",
        "-startdate",
        "20200101000000Z",
        "-enddate",
        "20210101000000Z",
        "-notext",
        "-out",
        "old.pem",
    ]);
    dir.join("old.pem").display().to_string()
}

#[test]
fn publish_merges_replaces_prunes_and_unpublishes() {
    let s = Setup::new(&["local"]);
    let alice = pki("alice.pem");
    let old = expired_alice(s.dir.path());

    let r = s.ok_json(&["publish", "alice@example.org", "--cert", &alice]);
    assert_eq!(r["directory"], "local");
    assert_eq!(r["kind"], "mailbox");
    assert_eq!(thumbprints(&r, "added"), [openssl_sha1(&alice)]);

    // Lookup: subject, address, validity, SHA-1 as Exchange shows it (= openssl's), SHA-256.
    let l = s.ok_json(&["lookup", "Alice@Example.org"]);
    let c = &l["certificates"][0];
    assert_eq!(c["address"], "alice@example.org");
    assert_eq!(c["sha1_thumbprint"], openssl_sha1(&alice));
    assert!(c["subject"].as_str().unwrap().contains("CN=Alice Example"));
    assert_eq!(c["validity"], "valid");
    assert!(c["not_before"].is_string() && c["not_after"].is_string());
    assert_eq!(c["sha256_fingerprint"].as_str().unwrap().len(), 64);
    assert_eq!(c["usable_for_encryption"], true);

    // Merge: the expired one is added, the valid one kept.
    let r = s.ok_json(&["publish", "alice@example.org", "--cert", &old]);
    assert_eq!(thumbprints(&r, "added"), [openssl_sha1(&old)]);
    assert_eq!(thumbprints(&r, "kept"), [openssl_sha1(&alice)]);
    let l = s.ok_json(&["lookup", "alice@example.org"]);
    assert_eq!(l["certificates"].as_array().unwrap().len(), 2);
    assert_eq!(l["certificates"][1]["validity"], "expired");
    assert_eq!(l["certificates"][1]["usable_for_encryption"], false);

    // Publishing again changes nothing.
    let r = s.ok_json(&["publish", "alice@example.org", "--cert", &alice]);
    assert!(r["added"].as_array().unwrap().is_empty());
    assert_eq!(r["kept"].as_array().unwrap().len(), 2);

    // --prune-expired drops the expired one, keeps the valid one.
    let r = s.ok_json(&[
        "publish",
        "alice@example.org",
        "--cert",
        &alice,
        "--prune-expired",
    ]);
    assert_eq!(thumbprints(&r, "removed"), [openssl_sha1(&old)]);
    assert_eq!(thumbprints(&r, "certificates"), [openssl_sha1(&alice)]);

    // --replace keeps only the new one.
    s.ok_json(&["publish", "alice@example.org", "--cert", &old]);
    let r = s.ok_json(&["publish", "alice@example.org", "--cert", &old, "--replace"]);
    assert_eq!(thumbprints(&r, "certificates"), [openssl_sha1(&old)]);
    assert_eq!(thumbprints(&r, "removed"), [openssl_sha1(&alice)]);

    // Unpublish, then it is gone; unpublishing again is a recipient problem.
    let out = s.run(&["unpublish", "alice@example.org", "--cert", &old]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("1 removed"),
        "{}",
        text(&out.stdout)
    );
    let out = s.run(&["lookup", "alice@example.org"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        text(&out.stderr).contains("alice@example.org"),
        "{}",
        text(&out.stderr)
    );
    let out = s.run(&["unpublish", "alice@example.org", "--cert", &old]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("not published"),
        "{}",
        text(&out.stderr)
    );

    // A contact, and the text form.
    let out = s.run(&[
        "publish",
        "bob@example.org",
        "--cert",
        &pki("bob.pem"),
        "--contact",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let l = s.ok_json(&["lookup", "bob@example.org"]);
    assert_eq!(l["kind"], "contact");
    let out = s.run(&["lookup", "bob@example.org"]);
    let t = text(&out.stdout);
    assert!(
        t.contains(&openssl_sha1(&pki("bob.pem"))) && t.contains("usable"),
        "{t}"
    );
}

#[test]
fn publish_refuses_a_certificate_for_another_address_unless_forced() {
    let s = Setup::new(&["local"]);
    let out = s.run(&["publish", "bob@example.org", "--cert", &pki("alice.pem")]);
    assert_eq!(out.status.code(), Some(4));
    let err = text(&out.stderr);
    assert!(
        err.contains("alice@example.org")
            && err.contains("bob@example.org")
            && err.contains("--force"),
        "{err}"
    );
    assert!(!s.path("local.json").exists(), "nothing written");
    let r = s.ok_json(&[
        "publish",
        "bob@example.org",
        "--cert",
        &pki("alice.pem"),
        "--force",
    ]);
    assert_eq!(r["added"].as_array().unwrap().len(), 1);
    // A file with only CA certificates is no recipient's certificate.
    let out = s.run(&["publish", "bob@example.org", "--cert", &pki("root.pem")]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
}

fn der_of(pem: &str, out: &Path) -> Vec<u8> {
    let o = Command::new("openssl")
        .args(["x509", "-in", pem, "-outform", "DER", "-out"])
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success());
    std::fs::read(out).unwrap()
}

/// A minimal `.sst`: header, one (0x20, 1, len, DER) element per certificate, end marker.
fn write_sst(path: &Path, ders: &[Vec<u8>]) {
    let mut b = vec![0, 0, 0, 0, b'C', b'E', b'R', b'T'];
    for d in ders {
        b.extend(0x20u32.to_le_bytes());
        b.extend(1u32.to_le_bytes());
        b.extend((d.len() as u32).to_le_bytes());
        b.extend(d);
    }
    b.extend([0u8; 12]);
    std::fs::write(path, b).unwrap();
}

#[test]
fn trust_push_from_sst_and_certificates_then_show() {
    let s = Setup::new(&["local"]);
    let root = der_of(&pki("root.pem"), &s.path("root.der"));
    let inter = der_of(&pki("intermediate.pem"), &s.path("inter.der"));
    let sst = s.path("chain.sst");
    write_sst(&sst, &[root, inter]);

    let r = s.ok_json(&["trust", "push", "--sst", sst.to_str().unwrap()]);
    assert_eq!(
        thumbprints(&r, "added"),
        [
            openssl_sha1(&pki("root.pem")),
            openssl_sha1(&pki("intermediate.pem"))
        ]
    );
    let show = s.ok_json(&["trust", "show"]);
    assert_eq!(
        thumbprints(&show, "certificates"),
        thumbprints(&r, "certificates")
    );

    // Pushing certificates replaces the chain: the root is kept, the intermediate removed.
    let r = s.ok_json(&["trust", "push", &pki("root.pem")]);
    assert_eq!(thumbprints(&r, "kept"), [openssl_sha1(&pki("root.pem"))]);
    assert_eq!(
        thumbprints(&r, "removed"),
        [openssl_sha1(&pki("intermediate.pem"))]
    );
    let out = s.run(&["trust", "show"]);
    assert!(out.status.success());
    assert!(
        text(&out.stdout).contains("1 certificate"),
        "{}",
        text(&out.stdout)
    );

    // A leaf is not part of a trust chain.
    let out = s.run(&["trust", "push", &pki("alice.pem")]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    // Neither --sst nor certificates: usage.
    assert_eq!(s.run(&["trust", "push"]).status.code(), Some(2));
}

#[test]
fn encrypt_to_an_address_resolves_through_the_directories_in_order() {
    let s = Setup::new(&["corp", "partners"]);
    let pub_ = |addr: &str, cert: &str, dir: &str| {
        let out = s.run(&["publish", addr, "--cert", &pki(cert), "--directory", dir]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    };
    pub_("alice@example.org", "alice.pem", "corp");
    pub_("bob@example.org", "bob.pem", "partners");
    let l = s.ok_json(&["lookup", "bob@example.org"]);
    assert_eq!(l["directory"], "partners");
    assert_eq!(l["searched"], serde_json::json!(["corp", "partners"]));

    let msg = s.path("msg.txt");
    std::fs::write(
        &msg,
        "Content-Type: text/plain\r\n\r\nfor alice and bob\r\n",
    )
    .unwrap();
    let enc = s.path("enc.eml");
    let out = s.run(&[
        "encrypt",
        "--to",
        "alice@example.org",
        "--to",
        "bob@example.org",
        "--in",
        msg.to_str().unwrap(),
        "--out",
        enc.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for who in ["alice", "bob"] {
        let out = smimekit(
            &[
                "open",
                "--key",
                &pki(&format!("{who}.p12")),
                "--in",
                enc.to_str().unwrap(),
            ],
            &[("SMIMEKIT_PASSWORD", "test")],
        );
        assert!(out.status.success(), "{who}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("for alice and bob"));
    }
    // A file path still works as before.
    let out = s.run(&[
        "encrypt",
        "--to",
        &pki("carol.pem"),
        "--in",
        msg.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // An address nobody published: exit 4 naming it and where we looked.
    let out = s.run(&[
        "encrypt",
        "--to",
        "nobody@example.org",
        "--in",
        msg.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(4));
    let err = text(&out.stderr);
    assert!(
        err.contains("nobody@example.org") && err.contains("corp, partners"),
        "{err}"
    );
}

#[test]
fn encrypt_to_an_address_with_only_an_expired_certificate_says_why() {
    let s = Setup::new(&["local"]);
    let old = expired_alice(s.dir.path());
    s.ok_json(&["publish", "alice@example.org", "--cert", &old]);
    let out = s.run(&[
        "encrypt",
        "--to",
        "alice@example.org",
        "--in",
        &pki("alice.pem"),
    ]);
    assert_eq!(out.status.code(), Some(4));
    let err = text(&out.stderr);
    assert!(
        err.contains("alice@example.org") && err.contains("expired"),
        "{err}"
    );
}

#[test]
fn unknown_directory_and_bad_config_are_usage_errors() {
    let s = Setup::new(&["corp", "partners"]);
    let out = s.run(&["lookup", "alice@example.org", "--directory", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("\"nope\"") && err.contains("corp, partners"),
        "{err}"
    );

    let bad = s.path("bad.toml");
    std::fs::write(
        &bad,
        "[directory.local]\nkind = \"local\"\npath = \"x.json\n",
    )
    .unwrap();
    // --config before the subcommand, too.
    let out = smimekit(
        &["--config", bad.to_str().unwrap(), "lookup", "a@example.org"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("bad.toml") && err.contains("line 3"), "{err}");

    let unknown = s.path("kind.toml");
    std::fs::write(&unknown, "[directory.x]\nkind = \"ldapp\"\n").unwrap();
    let out = smimekit(
        &[
            "lookup",
            "a@example.org",
            "--config",
            unknown.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("ldapp"), "{}", text(&out.stderr));

    let missing = s.path("missing.toml");
    let out = smimekit(
        &[
            "lookup",
            "a@example.org",
            "--config",
            missing.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("missing.toml"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn without_a_config_the_embedded_default_lives_in_xdg_data_home() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path().to_str().unwrap();
    let data = home.path().join("data");
    let env = [
        ("HOME", h),
        ("XDG_CONFIG_HOME", h),
        ("XDG_DATA_HOME", data.to_str().unwrap()),
    ];
    let mut cmd = Command::new(smimekit_bin());
    cmd.args(["publish", "alice@example.org", "--cert", &pki("alice.pem")])
        .env_remove("SMIMEKIT_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The directory lives in the store, in the data folder the JSON file used to live in.
    assert!(data.join("smimekit/smimekit.db").is_file());
    assert!(!data.join("smimekit/directory.json").exists());
}

#[test]
fn a_publish_the_read_back_contradicts_fails_with_exit_4() {
    // Debug builds honour a fault switch that makes the local directory silently lose the
    // value being published (as a directory that drops values would): the CLI's read-back
    // must notice and say what is missing.
    let s = Setup::new(&["local"]);
    let mut a = vec!["publish", "alice@example.org", "--cert"];
    let alice = pki("alice.pem");
    a.push(&alice);
    a.extend(["--config", &s.config]);
    let out = smimekit(&a, &[("SMIMEKIT_LOCAL_DIRECTORY_FAULT", "drop-published")]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("read-back") && err.contains("missing") && err.contains(&openssl_sha1(&alice)),
        "{err}"
    );
}

#[test]
fn a_corrupt_directory_file_is_malformed_input_naming_it() {
    let s = Setup::new(&["local"]);
    std::fs::write(s.path("local.json"), "{ not json").unwrap();
    let out = s.run(&["lookup", "alice@example.org"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("local.json"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn killing_publishers_mid_write_never_corrupts_the_directory() {
    // An older smimekit's directory.json with 4,000 recipients: the first publish imports it
    // (one transaction, then the file is renamed), then publishes. Killed at any moment, the
    // store holds the old directory or the new one, never a part, and the file is whole.
    let certs = [pki("alice.pem")];
    let mut recipients = Vec::new();
    for i in 0..4000 {
        recipients.push(serde_json::json!({
            "address": format!("user{i}@example.org"),
            "kind": "mailbox",
            "certificates": [base64_of(&vec![0x30u8; 1200])],
        }));
    }
    let doc = serde_json::json!({
        "format": "smimekit-local-directory", "version": 1, "recipients": recipients,
    });
    let bytes = serde_json::to_vec(&doc).unwrap();
    for delay_ms in [0u64, 5, 20, 40, 80, 160, 320, 640] {
        let s = Setup::new(&["local"]);
        std::fs::write(s.path("local.json"), &bytes).unwrap();
        let mut child = Command::new(smimekit_bin())
            .args([
                "publish",
                "alice@example.org",
                "--cert",
                &certs[0],
                "--replace",
                "--config",
                &s.config,
            ])
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        // The JSON file is untouched until it is imported, and kept whole after.
        let left = if s.path("local.json").exists() {
            s.path("local.json")
        } else {
            s.path("local.json.imported")
        };
        assert_eq!(
            std::fs::read(&left).unwrap(),
            bytes,
            "after a kill at {delay_ms} ms"
        );
        // The store: everything imported (now, if the killed run had not), and the publish
        // there or not.
        let v = s.ok_json(&["directory", "export"]);
        let n = v["recipients"].as_array().unwrap().len();
        assert!(
            n == 4000 || n == 4001,
            "{n} recipients after a kill at {delay_ms} ms"
        );
        let out = s.run(&["publish", "alice@example.org", "--cert", &certs[0]]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(
            s.ok_json(&["directory", "export"])["recipients"]
                .as_array()
                .unwrap()
                .len(),
            4001
        );
    }
}

fn base64_of(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}
