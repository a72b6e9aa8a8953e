//! PKCS#11 tokens on a real SoftHSM2 (started per test in a temp dir, see `softhsm`): every
//! command with a `pkcs11:` key, provisioning (`token enroll`, `token import`, `ca init
//! --key-store`), and bad input with its exit code. The keys never leave the token: smimekit
//! only ever asks it to sign a digest, decrypt a wrapped key or derive an ECDH secret.

use std::path::Path;
use std::process::Output;

use crate::common::{self, GpgHome, openssl_ok, p, pki, run, show};
use crate::softhsm::{PIN, SoftHsm};

const MSG: &[u8] = b"Content-Type: text/plain\r\n\r\nHello from a token.\r\n";

fn token_with_alice_and_bob() -> SoftHsm {
    let h = SoftHsm::new("test");
    h.import("test", "alice", "01", false, true);
    h.import("test", "bob", "02", true, true);
    h
}

fn write(dir: &Path, name: &str, data: &[u8]) -> String {
    let f = dir.join(name);
    std::fs::write(&f, data).expect("write");
    p(&f)
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn openssl_verify(signed: &str) {
    openssl_ok(&[
        "cms",
        "-verify",
        "-in",
        signed,
        "-CAfile",
        &pki("chain.pem"),
        "-purpose",
        "any",
        "-out",
        "/dev/null",
    ]);
}

#[test]
fn token_keys_sign_and_openssl_verifies() {
    let h = token_with_alice_and_bob();
    let d = h.path();
    let msg = write(d, "msg.eml", MSG);
    for (who, extra) in [
        ("alice", vec![]),
        ("alice", vec!["--pss"]),
        ("alice", vec!["--opaque", "--digest", "sha512"]),
        ("bob", vec![]),
        ("bob", vec!["--opaque", "--digest", "sha384"]),
    ] {
        let out = p(&d.join(format!("signed-{who}-{}.eml", extra.join(""))));
        let uri = h.uri("test", Some(who));
        let mut args = vec!["sign", "--key", &uri, "--in", &msg, "--out", &out];
        args.extend(extra.iter().copied());
        h.smimekit_ok(&args, Some(PIN), &[]);
        openssl_verify(&out);
        // smimekit's own verify agrees.
        h.smimekit_ok(
            &[
                "verify",
                "--trust",
                &pki("root.pem"),
                "--cert",
                &pki("intermediate.pem"),
                "--in",
                &out,
            ],
            None,
            &[],
        );
    }
}

#[test]
fn token_rsa_signature_verified_by_gpgsm() {
    let h = token_with_alice_and_bob();
    let d = h.path();
    let msg = write(d, "msg.eml", MSG);
    let signed = p(&d.join("signed.eml"));
    h.smimekit_ok(
        &[
            "sign",
            "--key",
            &h.uri("test", Some("alice")),
            "--opaque",
            "--in",
            &msg,
            "--out",
            &signed,
        ],
        Some(PIN),
        &[],
    );
    let p7m = p(&d.join("signed.p7m"));
    openssl_ok(&[
        "cms", "-cmsout", "-in", &signed, "-outform", "DER", "-out", &p7m,
    ]);
    let g = GpgHome::new(Path::new(&pki("root.pem")));
    let out = g.gpgsm(
        &["--import", &pki("root.pem"), &pki("intermediate.pem")],
        None,
    );
    assert!(out.status.success(), "{}", show("gpgsm --import", &out));
    let content = p(&d.join("content"));
    let out = g.gpgsm(&["--verify", "--output", &content, &p7m], None);
    assert!(
        out.status.success() && stderr(&out).contains("Good signature"),
        "{}",
        show("gpgsm --verify", &out)
    );
}

#[test]
fn openssl_encrypts_to_token_certificate_and_smimekit_opens() {
    let h = token_with_alice_and_bob();
    let d = h.path();
    let msg = write(d, "msg.eml", MSG);
    let cases: [(&str, &str, &[&str]); 3] = [
        ("alice", "rsa-v15", &[]),
        (
            "alice",
            "rsa-oaep-sha1",
            &["-keyopt", "rsa_padding_mode:oaep"],
        ),
        ("bob", "ecdh", &[]),
    ];
    for (who, what, keyopt) in cases {
        let enc = p(&d.join(format!("{what}.eml")));
        let cert = pki(&format!("{who}.pem"));
        let mut args = vec![
            "cms", "-encrypt", "-aes256", "-in", &msg, "-out", &enc, "-recip", &cert,
        ];
        args.extend_from_slice(keyopt);
        openssl_ok(&args);
        let out_file = p(&d.join(format!("{what}.out")));
        h.smimekit_ok(
            &[
                "open",
                "--key",
                &h.uri("test", Some(who)),
                "--trust",
                &pki("root.pem"),
                "--in",
                &enc,
                "--out",
                &out_file,
            ],
            Some(PIN),
            &[],
        );
        let got = std::fs::read(&out_file).expect("out");
        assert!(
            String::from_utf8_lossy(&got).contains("Hello from a token."),
            "{what}: {}",
            String::from_utf8_lossy(&got)
        );
        // decrypt too.
        h.smimekit_ok(
            &[
                "decrypt",
                "--key",
                &h.uri("test", Some(who)),
                "--in",
                &enc,
                "--out",
                &out_file,
            ],
            Some(PIN),
            &[],
        );
    }
    // SoftHSM does OAEP with SHA-1 only: SHA-256 OAEP is reported as unsupported (exit 4).
    let enc = p(&d.join("oaep256.eml"));
    openssl_ok(&[
        "cms",
        "-encrypt",
        "-aes256",
        "-in",
        &msg,
        "-out",
        &enc,
        "-recip",
        &pki("alice.pem"),
        "-keyopt",
        "rsa_padding_mode:oaep",
        "-keyopt",
        "rsa_oaep_md:sha256",
    ]);
    let out = h.smimekit(
        &[
            "decrypt",
            "--key",
            &h.uri("test", Some("alice")),
            "--in",
            &enc,
        ],
        Some(PIN),
        &[],
    );
    assert_eq!(code(&out), 4, "{}", show("oaep-256", &out));
    assert!(
        stderr(&out).contains("not supported"),
        "{}",
        show("oaep-256", &out)
    );
}

#[test]
fn keys_list_shows_token_keys_with_certificates_and_config_module() {
    let h = token_with_alice_and_bob();
    let out = h.smimekit_ok(
        &["--json", "keys", "list", "--store", &h.uri("test", None)],
        Some(PIN),
        &[],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let keys = v.as_array().expect("array");
    assert_eq!(keys.len(), 2, "{v:#}");
    for k in keys {
        let sel = k["selector"].as_str().expect("selector");
        assert!(sel.starts_with("pkcs11:token=test;serial="), "{sel}");
        assert!(k["certificate"]["subject"].as_str().is_some(), "{k:#}");
        assert!(!sel.contains("pin-value"));
    }
    // The module from [keystore.NAME] when the URI has no module-path.
    let cfg = h.path().join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[keystore.hsm]\nkind = \"pkcs11\"\nmodule = \"{}\"\n",
            h.module
        ),
    )
    .expect("config");
    let out = h.smimekit_ok(
        &[
            "--config",
            &p(&cfg),
            "keys",
            "list",
            "--store",
            "pkcs11:token=test;object=bob",
        ],
        Some(PIN),
        &[],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Bob Example") && !text.contains("Alice"),
        "{text}"
    );
    // The PIN from a pin-source file; the listed selector opens the key again.
    let pin_file = write(h.path(), "pin", b"1234\n");
    let out = h.smimekit_ok(
        &[
            "keys",
            "list",
            "--store",
            &format!(
                "{}&pin-source=file:{pin_file}",
                h.uri("test", Some("alice"))
            ),
        ],
        None,
        &[],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Alice Example"));
}

#[test]
fn ca_with_keys_on_a_token_issues_a_user_certificate() {
    let h = SoftHsm::new("ca");
    let dir = h.path().join("ca");
    let out = h.smimekit_ok(
        &[
            "--json",
            "ca",
            "init",
            "--dir",
            &p(&dir),
            "--name",
            "Token Org",
            "--key-type",
            "p256",
            "--key-store",
            &h.uri("ca", None),
        ],
        Some(PIN),
        &[],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(
        v["issuing_key"]
            .as_str()
            .unwrap_or("")
            .starts_with("pkcs11:"),
        "{v:#}"
    );
    assert!(!dir.join("issuing.p12").exists() && !dir.join("root.p12").exists());
    let ca_json = std::fs::read_to_string(dir.join("ca.json")).expect("ca.json");
    assert!(ca_json.contains("pkcs11:token=ca"), "{ca_json}");
    assert!(
        !ca_json.contains("pin-value") && !ca_json.contains(PIN),
        "{ca_json}"
    );
    // Issue a user certificate (new soft key in a p12) signed by the token's issuing key.
    let p12 = h.path().join("user.p12");
    h.smimekit_ok(
        &[
            "ca",
            "issue",
            "--dir",
            &p(&dir),
            "--email",
            "user@example.org",
            "--p12",
            &p(&p12),
        ],
        Some(PIN),
        &[("SMIMEKIT_P12_PASSWORD", "pw")],
    );
    let leaf = h.path().join("leaf.pem");
    openssl_ok(&[
        "pkcs12",
        "-in",
        &p(&p12),
        "-passin",
        "pass:pw",
        "-nokeys",
        "-clcerts",
        "-out",
        &p(&leaf),
    ]);
    openssl_ok(&[
        "verify",
        "-CAfile",
        &p(&dir.join("root.pem")),
        "-untrusted",
        &p(&dir.join("issuing.pem")),
        "-purpose",
        "smimesign",
        &p(&leaf),
    ]);
    // A CRL signed on the token.
    h.smimekit_ok(
        &[
            "ca",
            "crl",
            "--dir",
            &p(&dir),
            "--out",
            &p(&h.path().join("crl.der")),
        ],
        Some(PIN),
        &[],
    );
}

#[test]
fn enroll_generates_on_token_and_the_ca_certifies() {
    let h = SoftHsm::new("user");
    let ca = h.path().join("ca");
    h.smimekit_ok(
        &["ca", "init", "--dir", &p(&ca), "--name", "Enroll Org"],
        None,
        &[("SMIMEKIT_PASSWORD", "capw")],
    );
    for (email, kt) in [("erin@example.org", "p256"), ("rob@example.org", "rsa2048")] {
        let out = h.smimekit_ok(
            &[
                "--json",
                "token",
                "enroll",
                "--token",
                &h.uri("user", None),
                "--email",
                email,
                "--key-type",
                kt,
                "--ca",
                &p(&ca),
            ],
            Some(PIN),
            &[("SMIMEKIT_PASSWORD", "capw")],
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        let key = v["key"].as_str().expect("key").to_string();
        assert!(
            key.contains(&format!("object={}", email.replace('@', "%40"))),
            "{key}"
        );
        // The certificate is on the token: the key signs with no --cert, openssl verifies.
        let msg = write(h.path(), "m.eml", MSG);
        let signed = p(&h.path().join(format!("{kt}.eml")));
        h.smimekit_ok(
            &["sign", "--key", &key, "--in", &msg, "--out", &signed],
            Some(PIN),
            &[],
        );
        openssl_ok(&[
            "cms",
            "-verify",
            "-in",
            &signed,
            "-CAfile",
            &p(&ca.join("chain.pem")),
            "-purpose",
            "any",
            "-out",
            "/dev/null",
        ]);
    }
    // External CA: the CSR is written, self-signed by the token key.
    let csr = h.path().join("req.pem");
    h.smimekit_ok(
        &[
            "token",
            "enroll",
            "--token",
            &h.uri("user", None),
            "--email",
            "ext@example.org",
            "--csr-out",
            &p(&csr),
        ],
        Some(PIN),
        &[],
    );
    let out = openssl_ok(&["req", "-in", &p(&csr), "-verify", "-noout", "-text"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("ext@example.org"));
    // Neither --ca nor --csr-out: usage (clap).
    let out = h.smimekit(
        &[
            "token",
            "enroll",
            "--token",
            &h.uri("user", None),
            "--email",
            "x@example.org",
        ],
        Some(PIN),
        &[],
    );
    assert_eq!(code(&out), 2, "{}", show("enroll", &out));
}

#[test]
fn import_p12_keeps_ecdh_working() {
    let h = SoftHsm::new("imp");
    for who in ["alice", "bob"] {
        let out = h.smimekit_ok(
            &[
                "token",
                "import",
                &pki(&format!("{who}.p12")),
                "--token",
                &h.uri("imp", None),
                "--label",
                who,
            ],
            Some(PIN),
            &[("SMIMEKIT_P12_PASSWORD", "test")],
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("imported: pkcs11:"));
    }
    let msg = write(h.path(), "msg.eml", MSG);
    for who in ["alice", "bob"] {
        let enc = p(&h.path().join(format!("{who}.enc")));
        openssl_ok(&[
            "cms",
            "-encrypt",
            "-aes256",
            "-in",
            &msg,
            "-out",
            &enc,
            &pki(&format!("{who}.pem")),
        ]);
        let out = h.smimekit_ok(
            &["decrypt", "--key", &h.uri("imp", Some(who)), "--in", &enc],
            Some(PIN),
            &[],
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("Hello from a token."));
        // The chain came along: the key opens with its issuers.
        let signed = p(&h.path().join(format!("{who}.sig")));
        h.smimekit_ok(
            &[
                "sign",
                "--key",
                &h.uri("imp", Some(who)),
                "--in",
                &msg,
                "--out",
                &signed,
            ],
            Some(PIN),
            &[],
        );
        openssl_verify(&signed);
    }
    // The same bundle twice is refused.
    let out = h.smimekit(
        &[
            "token",
            "import",
            &pki("bob.p12"),
            "--token",
            &h.uri("imp", None),
        ],
        Some(PIN),
        &[("SMIMEKIT_P12_PASSWORD", "test")],
    );
    assert_eq!(code(&out), 4, "{}", show("import twice", &out));
}

#[test]
fn bad_token_input_fails_clearly_with_its_exit_code() {
    let h = token_with_alice_and_bob();
    h.import("test", "carol", "03", true, false); // a key without a certificate
    let msg = write(h.path(), "msg.eml", MSG);
    let not_module = write(
        h.path(),
        "not-a-module.so",
        b"this is not a shared object\n",
    );
    let m = h.module.clone();
    let cases: Vec<(&str, String, Option<&str>, i32, &str)> = vec![
        (
            "wrong PIN",
            h.uri("test", Some("alice")),
            Some("0000"),
            4,
            "wrong password or PIN",
        ),
        (
            "no PIN source",
            h.uri("test", Some("alice")),
            None,
            4,
            "not found in --password-file, SMIMEKIT_PIN, SMIMEKIT_PASSWORD",
        ),
        (
            "missing module",
            "pkcs11:token=test?module-path=/nonexistent/p11.so".into(),
            Some(PIN),
            5,
            "/nonexistent/p11.so",
        ),
        (
            "not a PKCS#11 module",
            format!("pkcs11:token=test?module-path={not_module}"),
            Some(PIN),
            5,
            "not a PKCS#11 module",
        ),
        (
            "no module at all",
            "pkcs11:token=test".into(),
            Some(PIN),
            5,
            "no PKCS#11 module",
        ),
        (
            "unknown token",
            format!("pkcs11:token=nope?module-path={m}"),
            Some(PIN),
            4,
            "no token matches",
        ),
        (
            "unknown object",
            h.uri("test", Some("zed")),
            Some(PIN),
            4,
            "no private key matches",
        ),
        (
            "key without certificate",
            h.uri("test", Some("carol")),
            Some(PIN),
            4,
            "has no certificate",
        ),
        (
            "bad URI",
            format!("pkcs11:tokn=test?module-path={m}"),
            Some(PIN),
            3,
            "unknown path attribute",
        ),
        (
            "wrong PIN in the URI",
            format!("{}&pin-value=9999", h.uri("test", Some("alice"))),
            None,
            4,
            "wrong password or PIN",
        ),
    ];
    for (what, uri, pin, want, text) in cases {
        let out = h.smimekit(&["sign", "--key", &uri, "--in", &msg], pin, &[]);
        let err = stderr(&out);
        assert_eq!(code(&out), want, "{what}: {}", show(what, &out));
        assert!(
            err.contains(text),
            "{what}: expected {text:?}: {}",
            show(what, &out)
        );
        assert!(!err.contains("panicked"), "{what}: {err}");
        assert!(
            !err.contains("9999") && !err.contains("0000"),
            "{what}: the PIN is echoed: {err}"
        );
    }
    // Unsupported mechanism: RSA-PSS asked of an EC key is refused before the token is asked.
    let out = h.smimekit(
        &[
            "sign",
            "--key",
            &h.uri("test", Some("bob")),
            "--pss",
            "--in",
            &msg,
        ],
        Some(PIN),
        &[],
    );
    assert_ne!(code(&out), 0, "{}", show("pss on EC", &out));
    // SoftHSM 2.6 never locks a user PIN nor reports CKF_USER_PIN_COUNT_LOW/FINAL_TRY (11 wrong
    // PINs, then the right one, still work): the lock path is covered by the plugin's unit tests.
    for _ in 0..11 {
        let out = h.smimekit(
            &["keys", "list", "--store", &h.uri("test", None)],
            Some("0000"),
            &[],
        );
        assert_eq!(code(&out), 4);
    }
    h.smimekit_ok(
        &["keys", "list", "--store", &h.uri("test", None)],
        Some(PIN),
        &[],
    );
    let _ = run;
    let _ = common::workspace;
}

// ---- the signer's chain ----
//
// A card personalised by another tool holds the user's key and certificate only. `sign` must
// still send the chain (without the root), completed from the token's CA objects, the
// directory's trust chain or `--chain`, so that a recipient who holds only the root verifies.

/// The pinned time, inside the test PKI's validity.
const AT_UNIX: &str = smimekit_testkit::PINNED_UNIX;
const INTERMEDIATE_CN: &str = "smimekit Test Intermediate CA";

/// A token holding only Alice's key and certificate, a config naming an empty local
/// directory in the test's folder (never the machine's), and a message.
struct LeafOnly {
    h: SoftHsm,
    cfg: String,
    msg: String,
}

fn leaf_only_token() -> LeafOnly {
    let h = SoftHsm::new("card");
    h.import("card", "alice", "01", false, true);
    let cfg = write(
        h.path(),
        "config.toml",
        b"[directory.local]\nkind = \"local\"\npath = \"directory.json\"\n",
    );
    let msg = write(h.path(), "msg.eml", MSG);
    LeafOnly { h, cfg, msg }
}

impl LeafOnly {
    /// `sign --json --out NAME` with the token key and `extra`; the JSON and the stderr.
    fn sign(&self, name: &str, extra: &[&str]) -> (String, serde_json::Value, String) {
        let out = p(&self.h.path().join(name));
        let uri = self.h.uri("card", Some("alice"));
        let mut args = vec![
            "--config", &self.cfg, "--json", "sign", "--key", &uri, "--in", &self.msg, "--out",
            &out,
        ];
        args.extend_from_slice(extra);
        let o = self.h.smimekit_ok(&args, Some(PIN), &[]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("sign --json");
        (out, v, stderr(&o))
    }
}

/// `openssl cms -verify -CAfile root.pem` (the root alone, pinned time): the subjects of the
/// certificates the message carries, or openssl's complaint.
fn verify_with_root_only(signed: &str) -> Result<Vec<String>, String> {
    let certs = format!("{signed}.certs.pem");
    let out = run(
        std::process::Command::new("openssl").args([
            "cms",
            "-verify",
            "-in",
            signed,
            "-CAfile",
            &pki("root.pem"),
            "-purpose",
            "any",
            "-attime",
            AT_UNIX,
            "-out",
            "/dev/null",
            "-certsout",
            &certs,
        ]),
        None,
    );
    if !out.status.success() {
        return Err(show("openssl cms -verify -CAfile root.pem", &out));
    }
    let text = openssl_ok(&["storeutl", "-certs", "-noout", "-text", &certs]);
    Ok(String::from_utf8_lossy(&text.stdout)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Subject: "))
        .map(String::from)
        .collect())
}

fn only_leaf_and_intermediate(carried: &[String]) {
    assert_eq!(carried.len(), 2, "{carried:?}");
    assert!(carried[0].contains("Alice Example"), "{carried:?}");
    assert!(carried[1].contains(INTERMEDIATE_CN), "{carried:?}");
}

#[test]
fn leaf_only_token_signs_with_the_chain_from_chain_files() {
    let l = leaf_only_token();
    // The intermediate alone: sent, and openssl verifies with the root alone. The root is
    // never sent, so a chain up to a CA certificate is complete: no warning.
    let (signed, v, err) = l.sign("a.eml", &["--chain", &pki("intermediate.pem")]);
    let carried = verify_with_root_only(&signed).unwrap_or_else(|e| panic!("{e}"));
    only_leaf_and_intermediate(&carried);
    assert_eq!(v["chain"].as_array().map(Vec::len), Some(1), "{v:#}");
    assert!(
        v["chain"][0]
            .as_str()
            .unwrap_or("")
            .contains(INTERMEDIATE_CN),
        "{v:#}"
    );
    assert_eq!(v["chain_complete"], true, "{v:#}");
    assert_eq!(v["missing_issuer"], serde_json::Value::Null, "{v:#}");
    assert!(!err.contains("warning"), "{err}");

    // Intermediate and root (two --chain files; chain.pem is a bundle of both, in a PKCS#7
    // file here): complete, and the root is not sent.
    let p7b = p(&l.h.path().join("chain.p7b"));
    openssl_ok(&[
        "crl2pkcs7",
        "-nocrl",
        "-certfile",
        &pki("chain.pem"),
        "-outform",
        "DER",
        "-out",
        &p7b,
    ]);
    for extra in [
        vec![
            "--chain",
            &pki("intermediate.pem"),
            "--chain",
            &pki("root.pem"),
        ],
        vec!["--chain", &p7b],
    ] {
        let (signed, v, err) = l.sign("b.eml", &extra);
        only_leaf_and_intermediate(
            &verify_with_root_only(&signed).unwrap_or_else(|e| panic!("{e}")),
        );
        assert_eq!(v["chain_complete"], true, "{extra:?}: {v:#}");
        assert_eq!(v["missing_issuer"], serde_json::Value::Null, "{v:#}");
        assert!(!err.contains("warning"), "{extra:?}: {err}");
    }

    // A --chain file that cannot be read fails the command, naming it.
    let uri = l.h.uri("card", Some("alice"));
    let out = l.h.smimekit(
        &[
            "--config",
            &l.cfg,
            "sign",
            "--key",
            &uri,
            "--in",
            &l.msg,
            "--chain",
            "/nonexistent.pem",
        ],
        Some(PIN),
        &[],
    );
    assert_ne!(code(&out), 0, "{}", show("sign --chain missing", &out));
    assert!(
        stderr(&out).contains("/nonexistent.pem"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn leaf_only_token_signs_with_the_chain_from_the_directory() {
    let l = leaf_only_token();
    // What `trust push` stored is where sign finds the intermediate (and the root, left out).
    l.h.smimekit_ok(
        &[
            "--config",
            &l.cfg,
            "trust",
            "push",
            &pki("root.pem"),
            &pki("intermediate.pem"),
        ],
        None,
        &[],
    );
    let (signed, v, err) = l.sign("d.eml", &[]);
    only_leaf_and_intermediate(&verify_with_root_only(&signed).unwrap_or_else(|e| panic!("{e}")));
    assert_eq!(v["chain_complete"], true, "{v:#}");
    assert!(!err.contains("warning"), "{err}");
    // smimekit's own verify, trusting the root alone, agrees.
    l.h.smimekit_ok(
        &[
            "verify",
            "--trust",
            &pki("root.pem"),
            "--at",
            smimekit_testkit::PINNED_AT,
            "--in",
            &signed,
        ],
        None,
        &[],
    );
}

#[test]
fn token_ca_objects_complete_the_chain() {
    let l = leaf_only_token();
    // CA certificates written beside the user's, under their own CKA_IDs (no key).
    l.h.write_certificate("card", &pki("intermediate.pem"), "a1", "Intermediate");
    l.h.write_certificate("card", &pki("root.pem"), "a2", "Root");
    let (signed, v, err) = l.sign("t.eml", &[]);
    only_leaf_and_intermediate(&verify_with_root_only(&signed).unwrap_or_else(|e| panic!("{e}")));
    assert_eq!(v["chain_complete"], true, "{v:#}");
    assert!(!err.contains("warning"), "{err}");
}

#[test]
fn leaf_only_token_without_a_chain_signs_and_warns() {
    let l = leaf_only_token();
    let (signed, v, err) = l.sign("n.eml", &[]);
    // Signed all the same…
    assert!(std::fs::metadata(&signed).is_ok_and(|m| m.len() > 0));
    // …with the gap named on stderr and in the JSON.
    assert_eq!(v["signed"], true, "{v:#}");
    assert_eq!(v["chain_complete"], false, "{v:#}");
    assert_eq!(v["chain"], serde_json::json!([]), "{v:#}");
    assert!(
        v["missing_issuer"]
            .as_str()
            .unwrap_or("")
            .contains(INTERMEDIATE_CN),
        "{v:#}"
    );
    assert!(
        err.contains("warning:") && err.contains(INTERMEDIATE_CN) && err.contains("--chain"),
        "{err}"
    );
    // This is what recipients saw before: openssl cannot find the intermediate.
    let e = verify_with_root_only(&signed).expect_err("verifies without the intermediate");
    assert!(e.contains("unable to get local issuer certificate"), "{e}");
    // Without --json the warning is still there; the message goes to standard output.
    let uri = l.h.uri("card", Some("alice"));
    let out = l.h.smimekit_ok(
        &["--config", &l.cfg, "sign", "--key", &uri, "--in", &l.msg],
        Some(PIN),
        &[],
    );
    assert!(stderr(&out).contains("warning:"), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("multipart/signed"));
}

/// The PIN order (README "Secrets"): the URI's `pin-value`/`pin-source`, then
/// `--password-file`, then `SMIMEKIT_PIN`, then `SMIMEKIT_PASSWORD`. In each case the source
/// under test holds the right PIN and every later one a wrong one, so only that order signs.
#[test]
fn token_pin_comes_from_the_documented_order() {
    let h = token_with_alice_and_bob();
    let d = h.path();
    let msg = write(d, "msg.eml", MSG);
    let right = write(d, "right.pin", format!("{PIN}\n").as_bytes());
    let wrong = write(d, "wrong.pin", b"0000\n");
    let uri = h.uri("test", Some("alice"));
    let all_wrong = [("SMIMEKIT_PIN", "0000"), ("SMIMEKIT_PASSWORD", "0000")];
    // (source under test, KEYREF, --password-file, environment)
    type Case<'a> = (&'a str, String, Option<&'a str>, Vec<(&'a str, &'a str)>);
    let cases: Vec<Case<'_>> = vec![
        (
            "pin-value",
            format!("{uri}&pin-value={PIN}"),
            Some(&wrong),
            all_wrong.to_vec(),
        ),
        (
            "pin-source",
            format!("{uri}&pin-source=file:{right}"),
            Some(&wrong),
            all_wrong.to_vec(),
        ),
        (
            "--password-file",
            uri.clone(),
            Some(&right),
            all_wrong.to_vec(),
        ),
        (
            "SMIMEKIT_PIN",
            uri.clone(),
            None,
            vec![("SMIMEKIT_PIN", PIN), ("SMIMEKIT_PASSWORD", "0000")],
        ),
        (
            "SMIMEKIT_PASSWORD",
            uri.clone(),
            None,
            vec![("SMIMEKIT_PASSWORD", PIN)],
        ),
    ];
    for (what, key, file, env) in cases {
        let signed = p(&d.join(format!("signed-{}.eml", what.trim_start_matches('-'))));
        let mut args = vec!["sign", "--key", &key, "--in", &msg, "--out", &signed];
        if let Some(f) = file {
            args.extend(["--password-file", f]);
        }
        h.smimekit_ok(&args, None, &env);
        openssl_verify(&signed);
    }
}

/// A missing PIN names the token and every source tried, in order; a wrong one says it is
/// wrong and where it came from, never the PIN itself; a pin-source that cannot be read is
/// named. `ca init --key-store` takes the URI's pin-source too (before, only the variables,
/// the file option or a prompt).
#[test]
fn token_pin_errors_name_the_token_and_the_sources() {
    let h = token_with_alice_and_bob();
    let d = h.path();
    let msg = write(d, "msg.eml", MSG);
    let uri = h.uri("test", Some("alice"));
    let sign = |key: &str, env: &[(&str, &str)]| {
        h.smimekit(&["sign", "--key", key, "--in", &msg], None, env)
    };
    let out = sign(&uri, &[]);
    assert_eq!(code(&out), 4, "{}", show("no PIN", &out));
    assert!(
        stderr(&out).contains(&format!(
            "PIN of token \"test\" for {uri}: not found in --password-file, SMIMEKIT_PIN, SMIMEKIT_PASSWORD; no terminal to prompt on"
        )),
        "{}",
        show("no PIN", &out)
    );
    for (what, key, env, from) in [
        (
            "SMIMEKIT_PIN",
            uri.clone(),
            vec![("SMIMEKIT_PIN", "9876")],
            "SMIMEKIT_PIN",
        ),
        (
            "pin-value",
            format!("{uri}&pin-value=9876"),
            vec![],
            "pin-value",
        ),
    ] {
        let out = sign(&key, &env);
        assert_eq!(code(&out), 4, "{}", show(what, &out));
        let e = stderr(&out);
        assert!(
            e.contains("wrong password or PIN for pkcs11:token=test;object=alice")
                && e.contains(&format!("it came from {from}"))
                && !e.contains("9876"),
            "{what}: {e}"
        );
    }
    let gone = p(&d.join("no-such.pin"));
    let out = sign(
        &format!("{uri}&pin-source={gone}"),
        &[("SMIMEKIT_PIN", PIN)],
    );
    assert_eq!(code(&out), 5, "{}", show("pin-source missing", &out));
    assert!(
        stderr(&out).contains(&format!("pin-source {gone}")),
        "{}",
        show("pin-source missing", &out)
    );

    // ca init on a token with the PIN only in the URI's pin-source.
    let ca = SoftHsm::new("ca");
    let pin_file = write(ca.path(), "ca.pin", format!("{PIN}\n").as_bytes());
    let dir = ca.path().join("ca");
    ca.smimekit_ok(
        &[
            "ca",
            "init",
            "--dir",
            &p(&dir),
            "--name",
            "Pin Source Org",
            "--key-store",
            &format!("{}&pin-source={pin_file}", ca.uri("ca", None)),
        ],
        None,
        &[],
    );
    assert!(dir.join("ca.json").exists());
}
