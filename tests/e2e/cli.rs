//! The CLI contract beyond mail: keys, certificates, plugins, completions.

use crate::common::{pki, smimekit};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn keys_list_shows_the_key_and_its_certificate() {
    let out = smimekit(
        &["keys", "list", "--store", &pki("alice.p12"), "--json"],
        &[("SMIMEKIT_PASSWORD", "test")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keys: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let key = &keys[0];
    assert_eq!(key["kind"]["type"], "rsa");
    assert_eq!(key["kind"]["bits"], 2048);
    assert_eq!(key["certificate"]["emails"][0], "alice@example.org");
    assert_eq!(
        key["chain"].as_array().map(Vec::len),
        Some(2),
        "intermediate and root"
    );
}

#[test]
fn keys_list_reads_the_password_file_and_never_argv() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "test\n").unwrap();
    let out = smimekit(
        &[
            "keys",
            "list",
            "--store",
            &pki("bob.p12"),
            "--password-file",
            pw.to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout(&out).contains("bob@example.org"));
    // No password at all, no terminal: exit 4 naming the file and the ways to give one.
    let out = smimekit(&["keys", "list", "--store", &pki("bob.p12")], &[]);
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bob.p12") && err.contains("SMIMEKIT_PASSWORD"),
        "{err}"
    );
}

#[test]
fn cert_export_der_is_byte_identical_to_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("alice.der");
    let out = smimekit(
        &[
            "cert",
            "export",
            &pki("alice.p12"),
            "--der",
            "--out",
            ours.to_str().unwrap(),
        ],
        &[("SMIMEKIT_PASSWORD", "test")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs = std::process::Command::new("openssl")
        .args(["x509", "-in", &pki("alice.pem"), "-outform", "DER"])
        .output()
        .unwrap();
    assert!(theirs.status.success());
    assert_eq!(std::fs::read(&ours).unwrap(), theirs.stdout);
}

#[test]
fn cert_export_pem_chain_holds_leaf_then_issuers() {
    let out = smimekit(
        &["cert", "export", &pki("alice.p12"), "--pem", "--chain"],
        &[("SMIMEKIT_PASSWORD", "test")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pem = stdout(&out);
    assert_eq!(
        pem.matches("-----BEGIN CERTIFICATE-----").count(),
        3,
        "{pem}"
    );
    // DER holds one certificate only: asking for a DER chain is a usage error.
    let out = smimekit(
        &["cert", "export", &pki("alice.p12"), "--der", "--chain"],
        &[("SMIMEKIT_PASSWORD", "test")],
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn cert_show_lists_every_certificate_with_thumbprints() {
    let out = smimekit(&["cert", "show", &pki("chain.pem"), "--json"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let certs: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let certs = certs.as_array().unwrap();
    assert_eq!(certs.len(), 2);
    for c in certs {
        assert_eq!(c["sha1_thumbprint"].as_str().map(str::len), Some(40));
        assert_eq!(c["sha256_fingerprint"].as_str().map(str::len), Some(64));
        assert_eq!(c["is_ca"], true);
    }
}

#[test]
fn plugins_are_listed_by_port() {
    let out = smimekit(&["plugins", "--json"], &[]);
    assert!(out.status.success());
    let plugins: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let pairs: Vec<(String, String)> = plugins
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["port"].as_str().unwrap().into(),
                p["id"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        pairs.contains(&("crypto-engine".into(), "openssl".into())),
        "{pairs:?}"
    );
    assert!(
        pairs.contains(&("key-store".into(), "file".into())),
        "{pairs:?}"
    );
}

#[test]
fn completions_are_generated() {
    for shell in ["bash", "zsh", "fish"] {
        let out = smimekit(&["completions", shell], &[]);
        assert!(out.status.success(), "{shell}");
        assert!(stdout(&out).contains("smimekit"), "{shell}");
    }
}
