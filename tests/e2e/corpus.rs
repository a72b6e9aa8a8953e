//! The interop corpus (`../shared/corpus/manifest.json`): every case, in process, through the
//! service API. One table-driven test collects every mismatch, prints a pass table per kind
//! and the overall line `corpus: N passed, M failed, K expected-failure`, then asserts.
//!
//! Cases that cannot pass for a good reason are listed in [`EXPECTED_FAILURES`]; the test
//! checks that they still fail, so the table stays true.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use smimekit_service::{
    DecryptionKey, ErrorKind, KeyRequest, Named, OpenRequest, PrivateKey, Secret, Service,
};

use crate::common;

/// Cases that fail for a documented reason (file, reason).
const EXPECTED_FAILURES: &[(&str, &str)] = &[
    (
        "rfc4134/4.4.bin",
        "the SignedData carries CarlDSS's CRL, which revokes Alice (serial 0xC8); smimekit applies \
         message-borne CRLs, `openssl cms -verify` (the manifest's oracle) ignores CRLs",
    ),
    (
        "rfc4134/4.6.bin",
        "DSA parameter inheritance (RFC 3279): OpenSSL 3 cannot decode Diane's parameter-less DSA key",
    ),
    (
        "pyca-vectors/pkits/smime/SignedValidDSAParameterInheritanceTest5.eml",
        "DSA parameter inheritance: OpenSSL 3 cannot decode the parameter-less DSA key (the manifest \
         notes the OpenSSL limitation; its signer/plaintext for this case are also stale)",
    ),
    (
        "go-pkcs7/firefox-addon.p7s.pem",
        "a code-signing chain (intermediate EKU codeSigning only): the S/MIME signing purpose rejects \
         it, as `openssl cms -verify` does without `-purpose any`",
    ),
    (
        "pyca-vectors/pkits/smime/SignedValidPolicyMappingTest1.eml",
        POLICY,
    ),
    (
        "pyca-vectors/pkits/smime/SignedValidPolicyMappingTest11.eml",
        POLICY,
    ),
    (
        "pyca-vectors/pkits/smime/SignedValidPolicyMappingTest12.eml",
        POLICY,
    ),
    (
        "pyca-vectors/pkits/smime/SignedValidPolicyMappingTest13.eml",
        POLICY,
    ),
    (
        "pyca-vectors/pkits/smime/SignedValidPolicyMappingTest14.eml",
        POLICY,
    ),
    (
        "pyca-vectors/pkits/smime/SignedValidPolicyMappingTest3.eml",
        POLICY,
    ),
    (
        "pyca-vectors/pkits/smime/SignedValidPolicyMappingTest5.eml",
        POLICY,
    ),
    (
        "pyca-vectors/pkits/smime/SignedValidPolicyMappingTest6.eml",
        POLICY,
    ),
    (
        "pyca-vectors/pkits/smime/SignedValidPolicyMappingTest9.eml",
        POLICY,
    ),
    (
        "pyca-vectors/pkits/smime/SignedValidRequireExplicitPolicyTest4.eml",
        POLICY,
    ),
    (
        "pyca-vectors/pkits/smime/SignedValidSelfIssuedinhibitAnyPolicyTest7.eml",
        POLICY,
    ),
    (
        "pyca-vectors/pkits/smime/SignedValidSelfIssuedinhibitAnyPolicyTest9.eml",
        POLICY,
    ),
    (
        "pyca-vectors/pkits/smime/SignedValidSelfIssuedinhibitPolicyMappingTest7.eml",
        POLICY,
    ),
    (
        "pyca-vectors/pkits/smime/SignedValidinhibitAnyPolicyTest2.eml",
        POLICY,
    ),
    (
        "pyca-vectors/pkits/smime/SignedValidinhibitPolicyMappingTest2.eml",
        POLICY,
    ),
    (
        "pyca-vectors/pkits/smime/SignedValidinhibitPolicyMappingTest4.eml",
        POLICY,
    ),
    (
        "pyca-vectors/pkits/smime/SignedValidcRLIssuerTest30.eml",
        "the indirect CRL issuer's own certificate (indirectCRL CA4 cRLIssuer) is covered only by the \
         indirect CRL it signs itself; OpenSSL refuses recursive CRL-path validation (check_crl_path), \
         so CRL_CHECK_ALL cannot be met (the manifest notes `openssl` rejects it too)",
    ),
    (
        "rfc4134/7.1.bin",
        "EncryptedData with a published symmetric key (secretkey:…): the service/CLI take no raw secret keys",
    ),
    (
        "rfc4134/7.2.bin",
        "EncryptedData with a published symmetric key (secretkey:…): the service/CLI take no raw secret keys",
    ),
];

/// Cases whose verdict smimekit gives differently from the manifest's on purpose (file,
/// verdict, why).
const VERDICT_CHANGES: &[(&str, Option<bool>, &str)] = &[(
    "rfc4134/6.0.bin",
    None,
    "DigestedData: a matching digest is not a signature (anyone can compute it), so nothing is \
     signed and the verdict is null (issue 16); the manifest says true",
)];

/// For each expected failure, a phrase its actual failure must contain (so it fails for the
/// documented reason, not another).
const EXPECTED_FAILURE_MUST_MENTION: &[(&str, &str)] = &[
    ("rfc4134/4.4.bin", "certificate revoked"),
    ("rfc4134/4.6.bin", "decode error"),
    (
        "pyca-vectors/pkits/smime/SignedValidDSAParameterInheritanceTest5.eml",
        "public key",
    ),
    (
        "go-pkcs7/firefox-addon.p7s.pem",
        "unsuitable certificate purpose",
    ),
    (
        "pyca-vectors/pkits/smime/SignedValidPolicyMappingTest1.eml",
        "no explicit policy",
    ),
    (
        "pyca-vectors/pkits/smime/SignedValidPolicyMappingTest11.eml",
        "no explicit policy",
    ),
    (
        "pyca-vectors/pkits/smime/SignedValidPolicyMappingTest12.eml",
        "no explicit policy",
    ),
    (
        "pyca-vectors/pkits/smime/SignedValidPolicyMappingTest13.eml",
        "no explicit policy",
    ),
    (
        "pyca-vectors/pkits/smime/SignedValidPolicyMappingTest14.eml",
        "no explicit policy",
    ),
    (
        "pyca-vectors/pkits/smime/SignedValidPolicyMappingTest3.eml",
        "no explicit policy",
    ),
    (
        "pyca-vectors/pkits/smime/SignedValidPolicyMappingTest5.eml",
        "no explicit policy",
    ),
    (
        "pyca-vectors/pkits/smime/SignedValidPolicyMappingTest6.eml",
        "no explicit policy",
    ),
    (
        "pyca-vectors/pkits/smime/SignedValidPolicyMappingTest9.eml",
        "no explicit policy",
    ),
    (
        "pyca-vectors/pkits/smime/SignedValidRequireExplicitPolicyTest4.eml",
        "no explicit policy",
    ),
    (
        "pyca-vectors/pkits/smime/SignedValidSelfIssuedinhibitAnyPolicyTest7.eml",
        "no explicit policy",
    ),
    (
        "pyca-vectors/pkits/smime/SignedValidSelfIssuedinhibitAnyPolicyTest9.eml",
        "no explicit policy",
    ),
    (
        "pyca-vectors/pkits/smime/SignedValidSelfIssuedinhibitPolicyMappingTest7.eml",
        "no explicit policy",
    ),
    (
        "pyca-vectors/pkits/smime/SignedValidinhibitAnyPolicyTest2.eml",
        "no explicit policy",
    ),
    (
        "pyca-vectors/pkits/smime/SignedValidinhibitPolicyMappingTest2.eml",
        "no explicit policy",
    ),
    (
        "pyca-vectors/pkits/smime/SignedValidinhibitPolicyMappingTest4.eml",
        "no explicit policy",
    ),
    (
        "pyca-vectors/pkits/smime/SignedValidcRLIssuerTest30.eml",
        "CRL path validation error",
    ),
    ("rfc4134/7.1.bin", "encryptedData"),
    ("rfc4134/7.2.bin", "encryptedData"),
];

/// PKITS policy paths that OpenSSL 3's policy-tree processing rejects (manifest notes: "with
/// -policy_check accepts=False"); policy checking stays on because without it OpenSSL accepts
/// the Invalid policy paths.
const POLICY: &str =
    "OpenSSL 3.0 RFC 5280 policy processing rejects this valid PKITS path (no explicit policy)";

/// Validation time for cases without `verify_at`.
const FIXED_TIME: i64 = 1_700_000_000; // 2023-11-14T22:13:20Z

/// The certificate that goes with a bare private-key file, when the manifest names only the key.
const KEY_CERTS: &[(&str, &str)] = &[
    (
        "rfc4134/BobPrivRSAEncrypt.pri",
        "rfc4134/BobRSASignByCarl.cer",
    ),
    (
        "pyca-vectors/pkcs7/x509-custom-ca-rsa_key.pem",
        "pyca-vectors/pkcs7/x509-custom-ca-rsa_ca.pem",
    ),
    (
        "openssl/cms-data/ee-key.pem",
        "openssl/cms-data/ee-cert.pem",
    ),
];

fn s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    match v.get(key) {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    }
}

fn parse_time(t: &str) -> Result<i64, String> {
    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|e| format!("verify_at {t:?}: {e}"))
}

/// Every CRL in a directory, PEM or DER, as DER.
/// A corpus file's bytes, named by its path, as the service takes them.
fn named(path: &Path) -> Result<Named<Vec<u8>>, String> {
    let data = std::fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    Ok(Named::new(path.display().to_string(), data))
}

fn load_crls(dir: &Path) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    entries.sort();
    for p in entries {
        let bytes = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        out.extend(
            smimekit_service::crls_from_bytes(&bytes)
                .map_err(|e| format!("{}: {e}", p.display()))?,
        );
    }
    Ok(out)
}

async fn open_key(
    service: &Service,
    root: &Path,
    reference: &str,
    password: Option<&str>,
) -> Result<Arc<dyn PrivateKey>, String> {
    let certificate = KEY_CERTS
        .iter()
        .find(|(k, _)| *k == reference)
        .map(|(_, c)| root.join(c).display().to_string());
    service
        .open_key(&KeyRequest {
            reference: root.join(reference).display().to_string(),
            certificate,
            selector: None,
            secret: password.map(Secret::from),
        })
        .await
        .map_err(|e| format!("key {reference}: {e}"))
}

/// The verdict rules a case is opened under.
#[derive(Clone, Copy)]
struct Policy {
    allow_sha1: bool,
    allow_address_mismatch: bool,
}

/// The manifest's oracle is `openssl cms -verify`, which checks neither the sender nor the
/// digest's strength: the manifest test accepts both, and [`corpus_default_verdicts`] checks
/// what smimekit's defaults make of the same cases.
const ORACLE: Policy = Policy {
    allow_sha1: true,
    allow_address_mismatch: true,
};

/// smimekit's defaults.
const DEFAULTS: Policy = Policy {
    allow_sha1: false,
    allow_address_mismatch: false,
};

/// The request that opens a message-like case: its key, anchors, certificates, CRLs and time.
async fn request_for(
    service: &Service,
    root: &Path,
    case: &Value,
    message: Vec<u8>,
    policy: Policy,
) -> Result<OpenRequest, String> {
    let expect = &case["expect"];
    let mut keys = Vec::new();
    if let Some(with) = s(expect, "decrypt_with") {
        if with.starts_with("secretkey:") {
            return Err("KEK (secretkey:) recipients are not supported".into());
        }
        keys.push(
            open_key(service, root, with, s(expect, "password"))
                .await?
                .into(),
        );
    }
    let crls = match s(case, "crls_dir") {
        Some(d) => load_crls(&root.join(d))?,
        None => Vec::new(),
    };
    let at = match s(expect, "verify_at") {
        Some(t) => parse_time(t)?,
        None => FIXED_TIME,
    };
    let detached_content = match s(case, "detached_content") {
        Some(d) => Some(std::fs::read(root.join(d)).map_err(|e| format!("read {d}: {e}"))?),
        None => None,
    };
    let req = OpenRequest {
        keys,
        trust: strings(case, "trust_anchors")
            .iter()
            .map(|p| named(&root.join(p)))
            .collect::<Result<_, _>>()?,
        certs: strings(case, "extra_certs")
            .iter()
            .map(|p| named(&root.join(p)))
            .collect::<Result<_, _>>()?,
        crls,
        at: Some(at),
        message,
        detached_content,
        allow_sha1: policy.allow_sha1,
        allow_address_mismatch: policy.allow_address_mismatch,
    };
    Ok(req)
}

/// Checks one message-like case; Ok when the outcome matches the manifest.
async fn check_message(service: &Service, root: &Path, case: &Value) -> Result<(), String> {
    let file = s(case, "file").unwrap_or_default();
    let kind = s(case, "kind").unwrap_or_default();
    let expect = &case["expect"];
    let message = std::fs::read(root.join(file)).map_err(|e| format!("read: {e}"))?;

    if kind == "encrypted-data" {
        let result = service
            .open(OpenRequest {
                message,
                at: Some(FIXED_TIME),
                ..OpenRequest::default()
            })
            .await;
        return match (result, s(expect, "decrypt_with")) {
            // A key is published but cannot be given: an expected failure.
            (Err(e), Some(with)) => Err(format!("cannot pass {with}: {e}")),
            // No key published: recognising the type is all that can be checked.
            (Err(e), None) if e.to_string().contains("encryptedData") => Ok(()),
            (Err(e), None) => Err(format!(
                "expected an Unsupported encryptedData error, got: {e}"
            )),
            (Ok(_), _) => Err("encryptedData opened without a key".into()),
        };
    }
    let req = request_for(service, root, case, message, ORACLE).await?;
    let layer_undecryptable = case
        .get("layers")
        .and_then(Value::as_array)
        .is_some_and(|ls| {
            ls.iter()
                .any(|l| l.get("decrypt_ok") == Some(&Value::Bool(false)))
        });
    let must_fail = expect.get("decrypt_ok") == Some(&Value::Bool(false))
        || expect.get("parse_ok") == Some(&Value::Bool(false))
        || (layer_undecryptable && expect.get("valid").is_none_or(Value::is_null));
    let result = service.open(req).await;
    if std::env::var("CORPUS_DEBUG").is_ok_and(|d| !d.is_empty() && file.contains(&d)) {
        match &result {
            Ok(o) => println!(
                "DEBUG {file}: {}",
                serde_json::to_string_pretty(&o.report).unwrap_or_default()
            ),
            Err(e) => println!("DEBUG {file}: error {e}"),
        }
    }
    let opened = match result {
        Ok(o) => o,
        // An undecryptable layer must fail at decryption, not earlier.
        Err(e) if layer_undecryptable && !matches!(e.kind, ErrorKind::Key) => {
            return Err(format!("must fail at decryption, failed with: {e}"));
        }
        Err(_) if must_fail => return Ok(()),
        Err(e) => return Err(format!("open failed: {e}")),
    };
    if must_fail {
        return Err("opened, but the manifest says it must fail".into());
    }
    let report = &opened.report;
    let mut problems = Vec::new();
    let want_valid = match VERDICT_CHANGES.iter().find(|(f, _, _)| *f == file) {
        Some((_, v, _)) => *v,
        None => expect.get("valid").and_then(Value::as_bool),
    };
    if report.valid != want_valid {
        let reasons: Vec<String> = report
            .layers
            .iter()
            .filter_map(|l| l.reason.clone())
            .collect();
        problems.push(format!(
            "valid {:?}, expected {want_valid:?} ({})",
            report.valid,
            reasons.join("; ")
        ));
    }
    if let Some(want) = s(expect, "signer") {
        // The PKITS entries name the signer by subject DN even where the certificate carries an
        // rfc822Name: accept the outermost signer's subject DN as well.
        let subject = report
            .layers
            .iter()
            .find(|l| !l.signers.is_empty())
            .and_then(|l| l.signers[0].subject.as_deref());
        let matches = |g: Option<&str>| g.is_some_and(|g| g.eq_ignore_ascii_case(want));
        if !matches(report.signer.as_deref()) && !matches(subject) {
            problems.push(format!("signer {:?}, expected {want:?}", report.signer));
        }
    }
    if let Some(want) = s(expect, "plaintext_sha256")
        && !report.content_sha256.eq_ignore_ascii_case(want)
    {
        problems.push(format!(
            "content sha256 {} differs",
            &report.content_sha256[..12]
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// PKCS#12: list the keys with the password; malformed or MAC-failing files must be refused.
async fn check_p12(service: &Service, root: &Path, case: &Value) -> Result<(), String> {
    let file = s(case, "file").unwrap_or_default();
    let expect = &case["expect"];
    let must_fail = expect.get("parse_ok") == Some(&Value::Bool(false))
        || expect.get("mac_ok") == Some(&Value::Bool(false));
    let listed = service
        .list_keys(&KeyRequest {
            reference: root.join(file).display().to_string(),
            secret: s(expect, "password").map(Secret::from),
            ..KeyRequest::default()
        })
        .await;
    match listed {
        Err(_) if must_fail => Ok(()),
        Err(e) => Err(format!("list_keys failed: {e}")),
        Ok(_) if must_fail => Err("listed, but the manifest says it must be refused".into()),
        Ok(keys) => {
            let want = expect.get("keys").and_then(Value::as_u64).unwrap_or(0) as usize;
            if keys.len() == want {
                Ok(())
            } else {
                Err(format!("{} keys, expected {want}", keys.len()))
            }
        }
    }
}

/// Certificates and SST stores: the number of certificates loaded.
fn check_certs(service: &Service, root: &Path, case: &Value) -> Result<(), String> {
    let file = s(case, "file").unwrap_or_default();
    let expect = &case["expect"];
    let must_fail = expect.get("parse_ok") == Some(&Value::Bool(false));
    let want = expect.get("certs").and_then(Value::as_u64);
    let loaded = named(&root.join(file))
        .and_then(|input| service.certificates(&input).map_err(|e| e.to_string()));
    match loaded {
        Err(_) if must_fail => Ok(()),
        // A file with no certificate (a bare key or DSA parameters) is refused as such.
        Err(e) if want == Some(0) && e.contains("holds no certificate") => Ok(()),
        Err(e) => Err(format!("load failed: {e}")),
        Ok(_) if must_fail => Err("loaded, but the manifest says it must be refused".into()),
        Ok(certs) => match want {
            Some(n) if certs.len() as u64 != n => {
                Err(format!("{} certificates, expected {n}", certs.len()))
            }
            _ => Ok(()),
        },
    }
}

#[derive(Default)]
struct Tally {
    passed: usize,
    failed: usize,
    expected: usize,
}

#[tokio::test]
async fn corpus_manifest() {
    let root = common::corpus();
    let manifest_path = root.join("manifest.json");
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(&manifest_path)
            .unwrap_or_else(|e| panic!("{}: {e}", manifest_path.display())),
    )
    .expect("manifest.json is JSON");
    let cases = manifest["cases"].as_array().expect("manifest has cases");
    let service = Service::builder().build().expect("service");

    let mut groups: BTreeMap<String, Tally> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut seen_expected = Vec::new();
    for case in cases {
        let file = s(case, "file").unwrap_or_default().to_string();
        let kind = s(case, "kind").unwrap_or_default().to_string();
        let outcome = match kind.as_str() {
            "p12" => check_p12(&service, &root, case).await,
            "cert" | "sst" => check_certs(&service, &root, case),
            _ => check_message(&service, &root, case).await,
        };
        let tally = groups.entry(kind.clone()).or_default();
        match (EXPECTED_FAILURES.iter().find(|(f, _)| *f == file), outcome) {
            (Some((_, reason)), Err(got))
                if EXPECTED_FAILURE_MUST_MENTION
                    .iter()
                    .find(|(f, _)| *f == file)
                    .is_none_or(|(_, phrase)| got.contains(phrase)) =>
            {
                tally.expected += 1;
                seen_expected.push(file.clone());
                println!("XFAIL {kind:18} {file}: {reason} [{got}]");
            }
            (Some(_), Err(got)) => {
                tally.failed += 1;
                seen_expected.push(file.clone());
                failures.push(format!(
                    "{kind} {file}: fails, but not for the documented reason: {got}"
                ));
            }
            (Some(_), Ok(())) => {
                tally.failed += 1;
                seen_expected.push(file.clone());
                failures.push(format!(
                    "{kind} {file}: passes now: remove it from EXPECTED_FAILURES"
                ));
            }
            (None, Ok(())) => tally.passed += 1,
            (None, Err(e)) => {
                tally.failed += 1;
                failures.push(format!("{kind} {file}: {e}"));
            }
        }
    }
    for (f, _) in EXPECTED_FAILURES {
        if !seen_expected.iter().any(|s| s == f) {
            failures.push(format!(
                "EXPECTED_FAILURES names {f}, which is not in the manifest"
            ));
        }
    }
    for f in &failures {
        println!("FAIL {f}");
    }
    let mut total = Tally::default();
    for (kind, t) in &groups {
        println!(
            "{kind:18} {:4} passed, {:3} failed, {:3} expected-failure",
            t.passed, t.failed, t.expected
        );
        total.passed += t.passed;
        total.failed += t.failed;
        total.expected += t.expected;
    }
    println!(
        "corpus: {} passed, {} failed, {} expected-failure",
        total.passed, total.failed, total.expected
    );
    assert!(
        failures.is_empty(),
        "{} corpus failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The file a case decrypts with, when it is a key file (not a PKCS#12, not a secret key).
fn key_file_of(case: &Value) -> Option<&str> {
    let with = s(&case["expect"], "decrypt_with")?;
    let p12 = [".p12", ".pfx"].iter().any(|e| with.ends_with(e));
    (!p12 && !with.starts_with("secretkey:")).then_some(with)
}

/// Writes the private key of `path` alone (a PEM file may also hold the certificate) to `dir`.
fn key_only(root: &Path, path: &str, dir: &Path) -> PathBuf {
    let data = std::fs::read(root.join(path)).unwrap();
    let out = dir.join(path.replace('/', "_"));
    let text = String::from_utf8_lossy(&data);
    let kept = match text.find("-----BEGIN") {
        // PEM: the key blocks only.
        Some(_) => {
            let mut kept = String::new();
            let mut inside = false;
            for line in text.lines() {
                if line.starts_with("-----BEGIN") {
                    inside = line.contains("PRIVATE KEY");
                }
                if inside {
                    kept.push_str(line);
                    kept.push('\n');
                }
                if line.starts_with("-----END") {
                    inside = false;
                }
            }
            assert!(!kept.is_empty(), "{path}: no private key block");
            kept.into_bytes()
        }
        None => data,
    };
    std::fs::write(&out, kept).unwrap();
    out
}

/// Every enveloped case that decrypts with a key file opens with that key alone, with no
/// certificate: the key is tried on every recipient of its type (`openssl cms -decrypt
/// -inkey` without `-recip`), and the content is the manifest's; cases that must fail give an
/// error.
#[tokio::test]
async fn corpus_enveloped_with_the_key_alone() {
    let root = common::corpus();
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(root.join("manifest.json")).unwrap()).unwrap();
    let service = Service::builder().build().expect("service");
    let dir = tempfile::tempdir().unwrap();
    let mut checked = Vec::new();
    let mut failures = Vec::new();
    for case in manifest["cases"].as_array().unwrap() {
        let file = s(case, "file").unwrap_or_default();
        let kind = s(case, "kind").unwrap_or_default();
        let Some(with) = key_file_of(case).filter(|_| kind.contains("enveloped")) else {
            continue;
        };
        let key_path = key_only(&root, with, dir.path());
        let key = service
            .open_decryption_key(&KeyRequest {
                reference: key_path.display().to_string(),
                ..KeyRequest::default()
            })
            .await
            .unwrap_or_else(|e| panic!("{file}: key {with}: {e}"));
        assert!(
            matches!(key, DecryptionKey::Bare(_)),
            "{file}: {with} alone must open bare"
        );
        let expect = &case["expect"];
        let must_fail = expect.get("decrypt_ok") == Some(&Value::Bool(false));
        let result = service
            .open(OpenRequest {
                keys: vec![key],
                message: std::fs::read(root.join(file)).unwrap(),
                at: Some(FIXED_TIME),
                ..OpenRequest::default()
            })
            .await;
        let outcome = match (result, must_fail) {
            (Ok(o), false) => match s(expect, "plaintext_sha256") {
                Some(want) if !o.report.content_sha256.eq_ignore_ascii_case(want) => {
                    Err("content differs from the manifest's".to_string())
                }
                _ => Ok(()),
            },
            (Ok(_), true) => Err("opened, but the manifest says it must fail".into()),
            // Refused cleanly (no content, an obsolete type): an error, never content.
            (Err(_), true) => Ok(()),
            (Err(e), _) => Err(format!("{:?}: {e}", e.kind)),
        };
        println!(
            "{} {file} with {with} alone",
            if outcome.is_ok() { "ok  " } else { "FAIL" }
        );
        if let Err(e) = outcome {
            failures.push(format!("{file}: {e}"));
        }
        checked.push(file.to_string());
    }
    // The RFC 4134 and pyca cases the issue names are among them.
    for must in [
        "rfc4134/5.1.bin",
        "rfc4134/5.2.bin",
        "rfc4134/5.3.eml",
        "pyca-vectors/pkcs7/enveloped-rsa-oaep.pem",
        "pyca-vectors/pkcs7/enveloped-triple-des.pem",
        "openssl/cms-data/ciphertext_from_1_1_1.cms",
    ] {
        assert!(checked.iter().any(|c| c == must), "{must} was not checked");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// What smimekit's own rules (issue 16) make of the corpus: every case the manifest calls valid
/// is opened with the defaults. It stays valid, or it turns invalid only for a rule the
/// manifest's oracle (`openssl cms -verify`) does not apply, and the report says which:
/// `weak-algorithm` for a signer whose digest is SHA-1 or MD5, a chain refused as "too weak"
/// (SHA-1 certificate signatures), `address-mismatch` naming the message's sender. Each flip
/// is counted and printed.
#[tokio::test]
async fn corpus_default_verdicts() {
    let root = common::corpus();
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(root.join("manifest.json")).unwrap()).unwrap();
    let service = Service::builder().build().expect("service");
    let mut tally: BTreeMap<&str, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for case in manifest["cases"].as_array().unwrap() {
        let file = s(case, "file").unwrap_or_default();
        if case["expect"].get("valid").and_then(Value::as_bool) != Some(true)
            || EXPECTED_FAILURES.iter().any(|(f, _)| *f == file)
            || VERDICT_CHANGES.iter().any(|(f, _, _)| *f == file)
        {
            continue;
        }
        let message = std::fs::read(root.join(file)).unwrap();
        let req = match request_for(&service, &root, case, message, DEFAULTS).await {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{file}: {e}"));
                continue;
            }
        };
        let report = match service.open(req).await {
            Ok(o) => o.report,
            Err(e) => {
                failures.push(format!("{file}: open failed: {e}"));
                continue;
            }
        };
        if report.valid == Some(true) {
            *tally.entry("still valid").or_default() += 1;
            continue;
        }
        for signer in report.layers.iter().flat_map(|l| &l.signers) {
            let reason = signer.reason.as_deref().unwrap_or_default();
            let status = serde_json::to_value(signer.status).unwrap();
            let why = match status.as_str().unwrap_or_default() {
                "valid" => continue,
                "weak-algorithm"
                    if ["sha1", "md5"].iter().any(|d| {
                        signer.digest.contains(d)
                            || signer.signature_algorithm.to_ascii_lowercase().contains(d)
                    }) =>
                {
                    "weak-algorithm (SHA-1/MD5 signature)"
                }
                "untrusted" if reason.contains("too weak") => {
                    "untrusted (SHA-1 certificate signature in the chain)"
                }
                "address-mismatch"
                    if signer.sender.is_some() && signer.matches_from == Some(false) =>
                {
                    "address-mismatch (From is not the signer's)"
                }
                other => {
                    failures.push(format!("{file}: {other}: {reason}"));
                    continue;
                }
            };
            println!("{why}: {file}: {reason}");
            *tally.entry(why).or_default() += 1;
        }
    }
    for (why, n) in &tally {
        println!("{n:4} {why}");
    }
    assert!(
        tally.get("still valid").copied().unwrap_or(0) > 0,
        "no case stays valid under the defaults"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
