//! `smimekit ca`: a private CA whose certificates openssl, gpgsm and smimekit accept, and its
//! bad input (exit codes 2/3/4/5).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use base64::Engine;

use crate::common::{self, GpgHome, p, show};

const PW: &str = "ca-secret";

fn sk(args: &[&str]) -> Output {
    common::smimekit(args, &[("SMIMEKIT_PASSWORD", PW)])
}

fn sk_ok(args: &[&str]) -> Output {
    let out = sk(args);
    assert!(
        out.status.success(),
        "{}",
        show(&format!("smimekit {}", args.join(" ")), &out)
    );
    out
}

fn sk_json(args: &[&str]) -> serde_json::Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let out = sk_ok(&a);
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

fn sk_fails(args: &[&str], code: i32, needle: &str) {
    let out = sk(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}",
        show(&args.join(" "), &out)
    );
    assert!(
        err.contains(needle),
        "expected {needle:?}: {}",
        show(&args.join(" "), &out)
    );
}

fn openssl(args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl")
}

fn openssl_ok(args: &[&str]) -> Output {
    let out = openssl(args);
    assert!(
        out.status.success(),
        "{}",
        show(&format!("openssl {}", args.join(" ")), &out)
    );
    out
}

/// A validation time a minute from now (certificates are issued from "now").
fn attime() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    (now + 60).to_string()
}

fn init(dir: &Path, key_type: &str) -> serde_json::Value {
    let v = sk_json(&[
        "ca",
        "init",
        "--dir",
        &p(dir),
        "--key-type",
        key_type,
        "--name",
        "Example Org",
        "--crl-url",
        "http://crl.example.org/issuing.crl",
    ]);
    assert!(dir.join("ca.json").is_file());
    v
}

fn issue_p12(
    ca: &Path,
    email: &str,
    key_type: &str,
    out: &Path,
    extra: &[&str],
) -> serde_json::Value {
    let ca_s = p(ca);
    let mut args = vec![
        "ca",
        "issue",
        "--dir",
        &ca_s,
        "--email",
        email,
        "--key-type",
        key_type,
        "--p12",
    ];
    let out_s = p(out);
    args.push(&out_s);
    args.extend_from_slice(extra);
    sk_json(&args)
}

fn verify_smime(ca: &Path, cert: &Path, extra: &[&str]) -> Output {
    let root = p(&ca.join("root.pem"));
    let issuing = p(&ca.join("issuing.pem"));
    let at = attime();
    let cert = p(cert);
    let mut args = vec![
        "verify",
        "-purpose",
        "smimesign",
        "-CAfile",
        &root,
        "-untrusted",
        &issuing,
        "-attime",
        &at,
    ];
    args.extend_from_slice(extra);
    args.push(&cert);
    openssl(&args)
}

/// The DER inside an opaque application/pkcs7-mime message.
fn mime_body_der(mime: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(mime);
    let body = text
        .split_once("\r\n\r\n")
        .or_else(|| text.split_once("\n\n"))
        .expect("MIME body")
        .1;
    let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64")
}

/// Signs with the issued p12 mail from its owner (`from`), then smimekit (against the new
/// root) and gpgsm verify it.
fn sign_and_verify(ca: &Path, p12: &Path, from: &str, work: &Path, gpg: &GpgHome, tag: &str) {
    let msg = work.join(format!("{tag}.eml"));
    std::fs::write(
        &msg,
        format!("From: {from}\r\nTo: b@example.org\r\nSubject: CA test\r\nContent-Type: text/plain\r\n\r\nHello from a CA-issued key.\r\n"),
    )
    .expect("message");
    let signed = work.join(format!("{tag}.signed"));
    sk_ok(&[
        "sign",
        "--opaque",
        "--key",
        &p(p12),
        "--in",
        &p(&msg),
        "--out",
        &p(&signed),
    ]);
    let content = work.join(format!("{tag}.content"));
    sk_ok(&[
        "verify",
        "--trust",
        &p(&ca.join("root.pem")),
        "--in",
        &p(&signed),
        "--out",
        &p(&content),
    ]);
    let p7m = work.join(format!("{tag}.p7m"));
    std::fs::write(
        &p7m,
        mime_body_der(&std::fs::read(&signed).expect("signed")),
    )
    .expect("p7m");
    let out = gpg.gpgsm(
        &[
            "--import",
            &p(&ca.join("root.pem")),
            &p(&ca.join("issuing.pem")),
        ],
        None,
    );
    assert!(out.status.success(), "{}", show("gpgsm --import", &out));
    let theirs = work.join(format!("{tag}.gpgsm"));
    let out = gpg.gpgsm(&["--verify", "--output", &p(&theirs), &p(&p7m)], None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.contains("Good signature"),
        "{tag}: {}",
        show("gpgsm --verify", &out)
    );
}

#[test]
fn ca_rsa_and_ec_issue_users_that_openssl_gpgsm_and_smimekit_accept() {
    let work = tempfile::tempdir().expect("tempdir");
    for ca_type in ["rsa2048", "p256"] {
        let ca = work.path().join(format!("ca-{ca_type}"));
        let v = init(&ca, ca_type);
        assert_eq!(v["root"]["is_ca"], true);
        // The CA certificates themselves.
        openssl_ok(&[
            "verify",
            "-CAfile",
            &p(&ca.join("root.pem")),
            &p(&ca.join("issuing.pem")),
        ]);
        let text = openssl_ok(&[
            "x509",
            "-in",
            &p(&ca.join("issuing.pem")),
            "-noout",
            "-text",
        ]);
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(text.contains("CA:TRUE, pathlen:0"), "{text}");
        let gpg = GpgHome::new(&ca.join("root.pem"));
        for (user_type, ku) in [("rsa2048", "Key Encipherment"), ("p256", "Key Agreement")] {
            let email = format!("User.{user_type}@Example.ORG");
            let p12 = work.path().join(format!("{ca_type}-{user_type}.p12"));
            let r = issue_p12(&ca, &email, user_type, &p12, &[]);
            assert_eq!(r["email"], format!("User.{user_type}@example.org"));
            let cert = PathBuf::from(r["ca_copy"].as_str().expect("ca_copy"));
            let out = verify_smime(&ca, &cert, &[]);
            assert!(
                out.status.success(),
                "{ca_type}/{user_type}: {}",
                show("openssl verify", &out)
            );
            // OpenSSL's smimeencrypt purpose wants keyEncipherment, which only RSA keys carry
            // (EC keys get keyAgreement, as the S/MIME BR require).
            if user_type.starts_with("rsa") {
                let out = verify_smime(&ca, &cert, &["-purpose", "smimeencrypt"]);
                assert!(
                    out.status.success(),
                    "{}",
                    show("openssl verify smimeencrypt", &out)
                );
            }
            let text = openssl_ok(&["x509", "-in", &p(&cert), "-noout", "-text"]);
            let text = String::from_utf8_lossy(&text.stdout);
            for needle in [
                "X509v3 Key Usage: critical",
                "Digital Signature",
                ku,
                "E-mail Protection",
                &format!("email:User.{user_type}@example.org"),
                "X509v3 Subject Key Identifier",
                "X509v3 Authority Key Identifier",
                "URI:http://crl.example.org/issuing.crl",
                "2.23.140.1.5.1.3",
            ] {
                assert!(
                    text.contains(needle),
                    "{ca_type}/{user_type}: {needle} missing:\n{text}"
                );
            }
            // The p12 opens with openssl and with smimekit.
            openssl_ok(&[
                "pkcs12",
                "-in",
                &p(&p12),
                "-passin",
                &format!("pass:{PW}"),
                "-noout",
            ]);
            let keys = sk_json(&["keys", "list", "--store", &p(&p12)]);
            assert_eq!(
                keys[0]["certificate"]["emails"][0],
                format!("User.{user_type}@example.org")
            );
            assert_eq!(keys[0]["chain"].as_array().map(Vec::len), Some(2));
            sign_and_verify(
                &ca,
                &p12,
                &format!("User.{user_type}@example.org"),
                work.path(),
                &gpg,
                &format!("{ca_type}-{user_type}"),
            );
        }
        // A legacy (3DES) p12 for old Windows.
        let legacy = work.path().join(format!("{ca_type}-legacy.p12"));
        issue_p12(
            &ca,
            "old.windows@example.org",
            "rsa2048",
            &legacy,
            &["--legacy-p12"],
        );
        let info = openssl_ok(&[
            "pkcs12",
            "-in",
            &p(&legacy),
            "-passin",
            &format!("pass:{PW}"),
            "-noout",
            "-info",
        ]);
        let info = String::from_utf8_lossy(&info.stderr);
        assert!(info.contains("pbeWithSHA1And3-KeyTripleDES-CBC"), "{info}");
        sk_ok(&["keys", "list", "--store", &p(&legacy)]);
    }
}

fn make_csr(work: &Path, name: &str, email: &str) -> PathBuf {
    let key = work.join(format!("{name}.key"));
    let csr = work.join(format!("{name}.csr"));
    openssl_ok(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &p(&key),
        "-out",
        &p(&csr),
        "-subj",
        &format!("/CN={email}"),
        "-addext",
        &format!("subjectAltName=email:{email}"),
    ]);
    csr
}

#[test]
fn ca_csr_revoke_and_crl() {
    let work = tempfile::tempdir().expect("tempdir");
    let w = work.path();
    let ca = w.join("ca");
    init(&ca, "p384");
    let carol_csr = make_csr(w, "carol", "carol@example.org");
    let dave_csr = make_csr(w, "dave", "dave@example.org");
    let carol = w.join("carol.pem");
    let dave = w.join("dave.pem");
    let r = sk_json(&[
        "ca",
        "issue",
        "--dir",
        &p(&ca),
        "--csr",
        &p(&carol_csr),
        "--out",
        &p(&carol),
    ]);
    assert_eq!(r["email"], "carol@example.org");
    sk_ok(&[
        "ca",
        "issue",
        "--dir",
        &p(&ca),
        "--csr",
        &p(&dave_csr),
        "--out",
        &p(&dave),
        "--days",
        "825",
    ]);
    for c in [&carol, &dave] {
        let out = verify_smime(&ca, c, &[]);
        assert!(out.status.success(), "{}", show("openssl verify", &out));
    }
    let rev = sk_json(&[
        "ca",
        "revoke",
        "--dir",
        &p(&ca),
        "--cert",
        &p(&carol),
        "--reason",
        "key-compromise",
    ]);
    assert_eq!(rev["email"], "carol@example.org");
    // Revoking twice is refused.
    sk_fails(
        &["ca", "revoke", "--dir", &p(&ca), "--cert", &p(&carol)],
        2,
        "already revoked",
    );
    let crl = w.join("issuing.crl");
    let c = sk_json(&["ca", "crl", "--dir", &p(&ca), "--out", &p(&crl)]);
    assert_eq!(c["crl_number"], 1);
    assert_eq!(c["revoked"][0], r["serial"]);
    let out = openssl_ok(&[
        "crl",
        "-in",
        &p(&crl),
        "-CAfile",
        &p(&ca.join("chain.pem")),
        "-noout",
        "-verify",
        "-text",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Key Compromise") && text.contains("X509v3 CRL Number"),
        "{text}"
    );
    // With the CRL, carol's certificate fails and dave's passes.
    let crl_s = p(&crl);
    let out = verify_smime(&ca, &carol, &["-crl_check", "-CRLfile", &crl_s]);
    assert!(
        !out.status.success(),
        "{}",
        show("openssl verify -crl_check (revoked)", &out)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("revoked")
            || String::from_utf8_lossy(&out.stderr).contains("revoked"),
        "{}",
        show("verify", &out)
    );
    let out = verify_smime(&ca, &dave, &["-crl_check", "-CRLfile", &crl_s]);
    assert!(
        out.status.success(),
        "{}",
        show("openssl verify -crl_check (good)", &out)
    );
    // The cRLNumber goes up.
    let c = sk_json(&["ca", "crl", "--dir", &p(&ca), "--out", &p(&crl)]);
    assert_eq!(c["crl_number"], 2);
    // Carol is revoked, so she can have a new certificate without --renew.
    sk_ok(&[
        "ca",
        "issue",
        "--dir",
        &p(&ca),
        "--csr",
        &p(&carol_csr),
        "--out",
        &p(&w.join("carol2.pem")),
    ]);
}

#[test]
fn ca_bad_input() {
    let work = tempfile::tempdir().expect("tempdir");
    let w = work.path();
    let ca = w.join("ca");
    init(&ca, "p256");
    let cas = p(&ca);
    let out = p(&w.join("out.pem"));

    // Malformed CSR: exit 3.
    let junk = w.join("junk.csr");
    std::fs::write(
        &junk,
        b"-----BEGIN CERTIFICATE REQUEST-----\nMIIBAAAA\n-----END CERTIFICATE REQUEST-----\n",
    )
    .expect("junk");
    sk_fails(
        &[
            "ca",
            "issue",
            "--dir",
            &cas,
            "--csr",
            &p(&junk),
            "--out",
            &out,
        ],
        3,
        "malformed",
    );
    std::fs::write(&junk, b"not a request").expect("junk");
    sk_fails(
        &[
            "ca",
            "issue",
            "--dir",
            &cas,
            "--csr",
            &p(&junk),
            "--out",
            &out,
        ],
        3,
        "malformed",
    );

    // A CSR whose signature does not verify: exit 3.
    let csr = make_csr(w, "eve", "eve@example.org");
    let der_csr = w.join("eve.der");
    openssl_ok(&[
        "req",
        "-in",
        &p(&csr),
        "-outform",
        "DER",
        "-out",
        &p(&der_csr),
    ]);
    let mut der = std::fs::read(&der_csr).expect("csr");
    // The ECDSA signature ends the DER: change a byte of its s value.
    let n = der.len();
    der[n - 3] ^= 0x01;
    let bad = w.join("eve-bad.der");
    std::fs::write(&bad, &der).expect("bad csr");
    sk_fails(
        &[
            "ca",
            "issue",
            "--dir",
            &cas,
            "--csr",
            &p(&bad),
            "--out",
            &out,
        ],
        3,
        "signature does not verify",
    );
    assert!(!w.join("out.pem").exists());

    // Wrong CA key password: exit 4.
    let o = common::smimekit(
        &[
            "ca",
            "issue",
            "--dir",
            &cas,
            "--csr",
            &p(&csr),
            "--out",
            &out,
        ],
        &[("SMIMEKIT_PASSWORD", "wrong")],
    );
    assert_eq!(o.status.code(), Some(4), "{}", show("wrong password", &o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("CA key"),
        "{}",
        show("wrong password", &o)
    );

    // No password at all: exit 4 with the way to give one.
    let o = common::smimekit(&["ca", "crl", "--dir", &cas, "--out", &out], &[]);
    assert_eq!(o.status.code(), Some(4), "{}", show("no password", &o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("SMIMEKIT_PASSWORD"),
        "{}",
        show("no password", &o)
    );

    // Missing CA directory: exit 5, naming the fix.
    let missing = p(&w.join("nope"));
    sk_fails(
        &[
            "ca",
            "issue",
            "--dir",
            &missing,
            "--csr",
            &p(&csr),
            "--out",
            &out,
        ],
        5,
        "ca init",
    );
    sk_fails(
        &["ca", "crl", "--dir", &missing, "--out", &out],
        5,
        "not a CA directory",
    );

    // Validity over 825 days: exit 2, nothing issued.
    sk_fails(
        &[
            "ca",
            "issue",
            "--dir",
            &cas,
            "--csr",
            &p(&csr),
            "--out",
            &out,
            "--days",
            "826",
        ],
        2,
        "825",
    );

    // Duplicate issuance refused unless --renew.
    sk_ok(&[
        "ca",
        "issue",
        "--dir",
        &cas,
        "--csr",
        &p(&csr),
        "--out",
        &out,
    ]);
    sk_fails(
        &[
            "ca",
            "issue",
            "--dir",
            &cas,
            "--csr",
            &p(&csr),
            "--out",
            &out,
        ],
        2,
        "already has a valid certificate",
    );
    sk_fails(
        &[
            "ca",
            "issue",
            "--dir",
            &cas,
            "--email",
            "EVE@example.org",
            "--p12",
            &p(&w.join("e.p12")),
        ],
        2,
        "already has a valid certificate",
    );
    let r = sk_json(&[
        "ca",
        "issue",
        "--dir",
        &cas,
        "--csr",
        &p(&csr),
        "--out",
        &out,
        "--renew",
    ]);
    assert_eq!(r["supersedes"].as_array().map(Vec::len), Some(1));

    // CSR address and --email disagree: exit 2.
    sk_fails(
        &[
            "ca",
            "issue",
            "--dir",
            &cas,
            "--csr",
            &p(&csr),
            "--out",
            &out,
            "--email",
            "mallory@example.org",
            "--renew",
        ],
        2,
        "not mallory@example.org",
    );

    // A second init over an existing CA is refused.
    sk_fails(&["ca", "init", "--dir", &cas], 2, "already exists");

    // A concurrent run (lock held) is refused.
    std::fs::write(ca.join("ca.lock"), b"1\n").expect("lock");
    sk_fails(
        &["ca", "crl", "--dir", &cas, "--out", &out],
        5,
        "another smimekit ca command",
    );
    std::fs::remove_file(ca.join("ca.lock")).expect("unlock");

    // CA key missing: exit 4.
    std::fs::remove_file(ca.join("issuing.p12")).expect("remove key");
    sk_fails(
        &["ca", "crl", "--dir", &cas, "--out", &out],
        4,
        "issuing CA key is missing",
    );
}

#[test]
fn ca_serials_are_unique_across_50_issuances() {
    let work = tempfile::tempdir().expect("tempdir");
    let ca = work.path().join("ca");
    init(&ca, "p256");
    let mut serials = std::collections::BTreeSet::new();
    for i in 0..50 {
        let p12 = work.path().join(format!("u{i}.p12"));
        let r = issue_p12(&ca, &format!("user{i}@example.org"), "p256", &p12, &[]);
        let s = r["serial"].as_str().expect("serial").to_string();
        // Positive, at least 64 bits, no leading zero octet.
        assert!(s.len() >= 16 && s.len().is_multiple_of(2), "{s}");
        assert!(u8::from_str_radix(&s[..2], 16).expect("hex") < 0x80, "{s}");
        assert!(serials.insert(s.clone()), "serial {s} reused");
    }
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ca.join("state.json")).expect("state"))
            .expect("json");
    assert_eq!(state["issued"].as_array().map(Vec::len), Some(50));
    // 50 leaves + root + issuing, all distinct.
    assert_eq!(state["serials"].as_array().map(Vec::len), Some(52));
    assert!(!ca.join("ca.lock").exists());
}
