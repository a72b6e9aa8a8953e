//! Every PKCS#12 case of the interop corpus (`shared/corpus/manifest.json`, kind `p12`).
//!
//! Cases this crate cannot support are listed in [`EXPECTED_FAILURES`]; the test checks that
//! they still fail, so the table stays true. Nothing is skipped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use openssl::nid::Nid;
use openssl::x509::X509;
use serde_json::Value;
use smimekit_core::{KeyStoreError, Secret};
use smimekit_keystore_file::{Bundle, read_bundle};

/// Files (relative to the corpus) that must fail here, and why.
const EXPECTED_FAILURES: &[(&str, &str)] = &[];

fn corpus_dir() -> PathBuf {
    smimekit_testkit::corpus()
}

/// E-mail addresses of a certificate: rfc822Name SANs and subject emailAddress.
fn emails(der: &[u8]) -> BTreeSet<String> {
    let cert = X509::from_der(der).expect("certificate");
    let mut out = BTreeSet::new();
    for gn in cert.subject_alt_names().into_iter().flatten() {
        if let Some(e) = gn.email() {
            out.insert(e.to_ascii_lowercase());
        }
    }
    for entry in cert.subject_name().entries_by_nid(Nid::PKCS9_EMAILADDRESS) {
        out.insert(String::from_utf8_lossy(entry.data().as_slice()).to_ascii_lowercase());
    }
    out
}

fn check(bundle: &Bundle, expect: &Value) -> Result<(), String> {
    let want_certs = expect["certs"].as_u64().unwrap_or(0) as usize;
    let want_keys = expect["keys"].as_u64().unwrap_or(0) as usize;
    if bundle.certificates.len() != want_certs {
        return Err(format!(
            "{} certs, expected {want_certs}",
            bundle.certificates.len()
        ));
    }
    if bundle.keys.len() != want_keys {
        return Err(format!("{} keys, expected {want_keys}", bundle.keys.len()));
    }
    if let Some(list) = expect["leaf_emails"].as_array() {
        let want: BTreeSet<String> = list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_ascii_lowercase)
            .collect();
        let leaf = bundle
            .keys
            .iter()
            .find_map(|k| k.certificate.clone())
            .ok_or("no key with a certificate")?;
        let got = emails(leaf.as_bytes());
        if got != want {
            return Err(format!("leaf e-mails {got:?}, expected {want:?}"));
        }
    }
    if let Some(list) = expect["friendly_names"].as_array() {
        let want: BTreeSet<&str> = list.iter().filter_map(Value::as_str).collect();
        let names = bundle.friendly_names();
        let got: BTreeSet<&str> = names.iter().map(String::as_str).collect();
        if got != want {
            return Err(format!("friendly names {got:?}, expected {want:?}"));
        }
    }
    Ok(())
}

#[test]
fn corpus_p12_cases() {
    let dir = corpus_dir();
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).expect("manifest"))
            .expect("manifest JSON");
    let cases: Vec<&Value> = manifest["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .filter(|c| c["kind"] == "p12")
        .collect();
    assert!(
        cases.len() >= 60,
        "only {} p12 cases in the manifest",
        cases.len()
    );

    let mut problems = Vec::new();
    let mut passed = 0;
    let mut rejected = 0;
    let mut expected_failures = 0;
    for case in &cases {
        let file = case["file"].as_str().expect("file");
        let expect = &case["expect"];
        let password = expect["password"]
            .as_str()
            .filter(|p| !p.is_empty())
            .map(Secret::from);
        let must_reject = expect["parse_ok"] == false || expect["mac_ok"] == false;
        let result = read_bundle(&dir.join(file), password.as_ref());

        if let Some((_, reason)) = EXPECTED_FAILURES.iter().find(|(f, _)| *f == file) {
            match &result {
                Err(e) => {
                    println!("EXPECTED FAILURE {file}: {e} ({reason})");
                    expected_failures += 1;
                }
                Ok(_) => problems.push(format!(
                    "{file}: listed in EXPECTED_FAILURES ({reason}) but now opens: update the table"
                )),
            }
            continue;
        }
        match (must_reject, result) {
            (true, Err(e)) => {
                let ok_kind = if expect["parse_ok"] == false {
                    matches!(e, KeyStoreError::Malformed { .. })
                } else {
                    matches!(
                        e,
                        KeyStoreError::BadSecret { .. } | KeyStoreError::Malformed { .. }
                    )
                };
                if ok_kind {
                    println!("rejected {file}: {e}");
                    rejected += 1;
                } else {
                    problems.push(format!("{file}: rejected, but with the wrong error: {e:?}"));
                }
            }
            (true, Ok(b)) => problems.push(format!("{file}: must be rejected, opened: {b:?}")),
            (false, Err(e)) => problems.push(format!("{file}: {e}")),
            (false, Ok(b)) => match check(&b, expect) {
                Ok(()) => {
                    // A password-protected file must not open without its password (files
                    // without a MAC have nothing to check a password against).
                    if password.is_some() && !expect["mac"].is_null() {
                        match read_bundle(&dir.join(file), None) {
                            Err(KeyStoreError::Locked { .. }) => {}
                            other => problems.push(format!(
                                "{file}: without password expected Locked, got {other:?}"
                            )),
                        }
                        match read_bundle(&dir.join(file), Some(&Secret::from("not-it"))) {
                            Err(KeyStoreError::BadSecret { .. }) => {}
                            other => problems.push(format!(
                                "{file}: wrong password expected BadSecret, got {other:?}"
                            )),
                        }
                    }
                    println!(
                        "ok {file}: {} key(s), {} cert(s)",
                        b.keys.len(),
                        b.certificates.len()
                    );
                    passed += 1;
                }
                Err(why) => problems.push(format!("{file}: {why}")),
            },
        }
    }
    println!(
        "{} p12 cases: {passed} passed, {rejected} correctly rejected, {expected_failures} expected failures",
        cases.len()
    );
    for (file, _) in EXPECTED_FAILURES {
        if !cases.iter().any(|c| c["file"] == *file) {
            problems.push(format!(
                "{file}: in EXPECTED_FAILURES but not in the manifest"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}
