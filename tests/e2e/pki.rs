//! Chains, stores and lint through the CLI: `.sst` round trips against the corpus store,
//! `sst create|list|extract`, malformed stores, `chain build` success and each failure kind,
//! and `lint` table-driven over good and bad certificates made with the `openssl` CLI.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::common::{self, pki};

const AT: &str = smimekit_testkit::PINNED_AT;

fn run(args: &[&str]) -> Output {
    let out = common::smimekit(args, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked"),
        "smimekit {args:?} panicked: {stderr}"
    );
    out
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

fn ok_json(args: &[&str]) -> Value {
    let o = run(args);
    assert_eq!(
        code(&o),
        0,
        "smimekit {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    json(&o)
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

// ---- stores ----

#[test]
fn corpus_sst_lists_434_certificates_in_order() {
    let sst = common::corpus().join("windows-sst/roots.sst");
    let tsv = std::fs::read_to_string(common::corpus().join("windows-sst/roots.sst.certs.tsv"))
        .expect("corpus tsv");
    let want: Vec<Vec<&str>> = tsv
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split('\t').collect())
        .collect();
    assert_eq!(want.len(), 434);
    let listing = ok_json(&["sst", "list", &s(&sst), "--json"]);
    assert_eq!(listing["format"], "sst");
    assert_eq!(listing["count"], 434);
    let certs = listing["certificates"].as_array().expect("array");
    assert_eq!(certs.len(), 434);
    for (got, want) in certs.iter().zip(&want) {
        assert_eq!(got["sha256_fingerprint"], want[0], "{got}");
        assert!(
            got["not_after"].as_str().unwrap_or("").starts_with(want[1]),
            "{got}"
        );
        let mut ids: Vec<u64> = got["properties"]
            .as_array()
            .expect("properties")
            .iter()
            .map(|p| p["id"].as_u64().expect("id"))
            .collect();
        ids.sort_unstable();
        let ids: Vec<String> = ids.iter().map(u64::to_string).collect();
        assert_eq!(ids.join(","), want[3], "{got}");
        assert_ne!(got["sha1_property_matches"], false, "{got}");
    }
}

#[test]
fn corpus_sst_extract_then_create_round_trips() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sst = common::corpus().join("windows-sst/roots.sst");
    let out_dir = dir.path().join("certs");
    let written = ok_json(&["sst", "extract", &s(&sst), &s(&out_dir), "--json"]);
    let written = written.as_array().expect("array");
    assert_eq!(written.len(), 434);
    // Files are named by thumbprint and hold DER.
    let first = &written[0];
    let p = PathBuf::from(first["path"].as_str().expect("path"));
    assert_eq!(
        p.file_name().and_then(|n| n.to_str()),
        Some(format!("{}.cer", first["sha1_thumbprint"].as_str().expect("sha1")).as_str())
    );
    assert_eq!(std::fs::read(&p).expect("der")[0], 0x30);

    // Rebuild in file order from the extracted files.
    let files: Vec<String> = written
        .iter()
        .map(|w| w["path"].as_str().expect("path").to_string())
        .collect();
    let new = dir.path().join("new.sst");
    let mut args = vec!["sst".to_string(), "create".into(), "--out".into(), s(&new)];
    args.extend(files);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = run(&args);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));

    let before = ok_json(&["sst", "list", &s(&sst), "--json"]);
    let after = ok_json(&["sst", "list", &s(&new), "--json"]);
    let sha = |v: &Value| -> Vec<String> {
        v["certificates"]
            .as_array()
            .expect("array")
            .iter()
            .map(|c| c["sha256_fingerprint"].as_str().expect("sha").to_string())
            .collect()
    };
    assert_eq!(sha(&before), sha(&after));
    // Written as Windows does: the SHA-1 hash property, and it matches.
    for c in after["certificates"].as_array().expect("array") {
        assert_eq!(c["properties"][0]["name"], "SHA1_HASH");
        assert_eq!(c["properties"][0]["value"], c["sha1_thumbprint"]);
        assert_eq!(c["sha1_property_matches"], true);
    }
    // Straight from store to store, and to .p7b.
    let copy = dir.path().join("copy.sst");
    ok_json(&["sst", "create", "--out", &s(&copy), &s(&sst), "--json"]);
    assert_eq!(
        sha(&ok_json(&["sst", "list", &s(&copy), "--json"])),
        sha(&before)
    );
    let p7b = dir.path().join("roots.p7b");
    let l = ok_json(&["sst", "create", "--out", &s(&p7b), &s(&sst), "--json"]);
    assert_eq!(l["format"], "p7b");
    assert_eq!(sha(&l), sha(&before));
}

#[test]
fn sst_create_from_fixtures_then_list_and_openssl_reads_p7b() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("org.sst");
    let l = ok_json(&[
        "sst",
        "create",
        "--out",
        &s(&out),
        &pki("root.pem"),
        &pki("intermediate.pem"),
        &pki("chain.pem"),
        "--json",
    ]);
    // chain.pem repeats both CAs: duplicates are written once; a single certificate is fine too.
    assert_eq!(l["count"], 2);
    let l = ok_json(&["sst", "list", &s(&out), "--json"]);
    let subject = |i: usize| {
        l["certificates"][i]["subject"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    assert!(subject(0).contains("CN=smimekit Test Root CA"), "{l}");
    assert!(
        subject(1).contains("CN=smimekit Test Intermediate CA"),
        "{l}"
    );
    let bytes = std::fs::read(&out).expect("sst");
    assert_eq!(&bytes[..8], b"\0\0\0\0CERT");
    assert_eq!(&bytes[bytes.len() - 12..], &[0u8; 12]);

    let one = dir.path().join("one.sst");
    assert_eq!(
        ok_json(&[
            "sst",
            "create",
            "--out",
            &s(&one),
            &pki("alice.pem"),
            "--json"
        ])["count"],
        1
    );

    let p7b = dir.path().join("org.p7b");
    ok_json(&[
        "sst",
        "create",
        "--out",
        &s(&p7b),
        &pki("chain.pem"),
        "--json",
    ]);
    let o = Command::new("openssl")
        .args([
            "pkcs7",
            "-inform",
            "DER",
            "-print_certs",
            "-noout",
            "-in",
            &s(&p7b),
        ])
        .output()
        .expect("openssl");
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("smimekit Test Root CA"));

    // Text listing names the thumbprints.
    let o = run(&["sst", "list", &s(&out)]);
    assert_eq!(code(&o), 0);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("2 certificate(s) (sst)") && text.contains("sha1:"),
        "{text}"
    );
}

#[test]
fn malformed_stores_exit_3_with_offset_and_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.sst");
    ok_json(&[
        "sst",
        "create",
        "--out",
        &s(&good),
        &pki("chain.pem"),
        "--json",
    ]);
    let bytes = std::fs::read(&good).expect("sst");
    let write = |name: &str, data: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, data).expect("write");
        s(&p)
    };
    let mut bad_magic = bytes.clone();
    bad_magic[4..8].copy_from_slice(b"CERX");
    let mut junk_cert = bytes.clone();
    junk_cert[8 + 32 + 12] = 0x31; // first certificate's outer tag
    let cases: Vec<(&str, String, &[&str])> = vec![
        (
            "truncated",
            write("t.sst", &bytes[..bytes.len() - 400]),
            &["offset ", "runs past end of file"],
        ),
        (
            "truncated header",
            write("h.sst", &bytes[..14]),
            &["offset 8", "truncated element header"],
        ),
        (
            "bad magic",
            write("m.sst", &bad_magic),
            &["offset 0", "not a serialized certificate store"],
        ),
        (
            "bad certificate",
            write("c.sst", &junk_cert),
            &["SST certificate #1"],
        ),
        (
            "bad p7b",
            write("x.p7b", &[0x30, 0x80, 0x06, 0x09, 0x2A]),
            &["x.p7b"],
        ),
    ];
    for (what, file, needles) in cases {
        for args in [
            vec!["sst", "list", file.as_str()],
            vec![
                "sst",
                "extract",
                file.as_str(),
                dir.path().to_str().unwrap_or("."),
            ],
        ] {
            let o = run(&args);
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(code(&o), 3, "{what}: {err}");
            for n in needles {
                assert!(err.contains(n), "{what}: {n:?} not in {err}");
            }
        }
    }
    // Creating from a malformed store fails the same way; lint and chain too.
    let t = dir.path().join("t.sst");
    let o = run(&[
        "sst",
        "create",
        "--out",
        &s(&dir.path().join("o.sst")),
        &s(&t),
    ]);
    assert_eq!(code(&o), 3);
    let o = run(&["lint", &pki("alice.pem"), "--chain", &s(&t)]);
    assert_eq!(code(&o), 3);
    let o = run(&["chain", "build", &pki("alice.pem"), "--pool", &s(&t)]);
    assert_eq!(code(&o), 3);
}

// ---- a throw-away PKI made with the openssl CLI ----

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn p(&self, name: &str) -> String {
        s(&self.dir.path().join(name))
    }

    fn openssl(&self, args: &[&str]) {
        let o = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("run openssl");
        assert!(
            o.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    fn key(&self, name: &str, ec: bool) {
        if ec {
            self.openssl(&[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                &format!("{name}.key"),
            ]);
        } else {
            self.openssl(&[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                &format!("{name}.key"),
            ]);
        }
    }

    /// Issues `name` (key `name.key`, new unless it exists) signed by `issuer` (None = self)
    /// with the given extension lines.
    fn issue(
        &self,
        name: &str,
        issuer: Option<&str>,
        ec: bool,
        ext: &str,
        extra: &[&str],
    ) -> String {
        if !self.dir.path().join(format!("{name}.key")).exists() {
            self.key(name, ec);
        }
        let extfile = format!("{name}.ext");
        std::fs::write(self.dir.path().join(&extfile), format!("[x]\n{ext}\n")).expect("ext");
        let csr = format!("{name}.csr");
        self.openssl(&[
            "req",
            "-new",
            "-key",
            &format!("{name}.key"),
            "-subj",
            &format!("/CN={name}/O=lint test"),
            "-out",
            &csr,
        ]);
        let out = format!("{name}.pem");
        let mut args: Vec<String> = vec![
            "x509".into(),
            "-req".into(),
            "-in".into(),
            csr,
            "-out".into(),
            out.clone(),
            "-extfile".into(),
            extfile,
            "-extensions".into(),
            "x".into(),
            "-set_serial".into(),
            format!(
                "0x{:x}",
                name.len() * 7919 + name.bytes().map(usize::from).sum::<usize>()
            ),
        ];
        match issuer {
            Some(i) => args.extend([
                "-CA".into(),
                format!("{i}.pem"),
                "-CAkey".into(),
                format!("{i}.key"),
            ]),
            None => args.extend(["-key".into(), format!("{name}.key")]),
        }
        if !extra.contains(&"-days") {
            args.extend(["-days".into(), "700".into()]);
        }
        args.extend(extra.iter().map(|x| x.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.openssl(&refs);
        self.p(&out)
    }

    fn new() -> Self {
        let p = Pki {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        let ku = "keyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash";
        p.issue(
            "root",
            None,
            false,
            &format!("basicConstraints=critical,CA:TRUE\n{ku}"),
            &[],
        );
        p.issue(
            "int",
            Some("root"),
            false,
            &format!(
                "basicConstraints=critical,CA:TRUE,pathlen:0\n{ku}\nauthorityKeyIdentifier=keyid"
            ),
            &[],
        );
        p
    }
}

const LEAF_RSA: &str = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=emailProtection\nsubjectAltName=email:user@example.org";

/// Five minutes from now: every certificate made by the test (notBefore = when issued) is
/// valid by then, and none of them expires.
fn shortly() -> String {
    (time::OffsetDateTime::now_utc() + time::Duration::minutes(5))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("time")
}

fn chain_kinds(v: &Value) -> Vec<String> {
    v["paths"][0]["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| p["kind"].as_str().expect("kind").to_string())
        .collect()
}

#[test]
fn chain_build_success_and_each_failure_kind() {
    // The committed PKI: valid, then each missing piece.
    let chain = |extra: &[&str]| {
        let mut args = vec!["chain", "build", "--json"];
        args.extend_from_slice(extra);
        let o = run(&args);
        (code(&o), json(&o))
    };
    let alice = pki("alice.pem");
    let (c, v) = chain(&[
        &alice,
        "--pool",
        &pki("intermediate.pem"),
        "--trust",
        &pki("root.pem"),
        "--at",
        AT,
    ]);
    assert_eq!(c, 0, "{v}");
    assert_eq!(v["valid"], true);
    assert_eq!(
        v["paths"][0]["certificates"].as_array().map(Vec::len),
        Some(3)
    );
    let (c, v) = chain(&[&alice, "--trust", &pki("root.pem"), "--at", AT]);
    assert_eq!(
        (c, chain_kinds(&v)),
        (1, vec!["unknown-issuer".to_string()])
    );
    let (c, v) = chain(&[&alice, "--pool", &pki("chain.pem"), "--at", AT]);
    assert_eq!(
        (c, chain_kinds(&v)),
        (1, vec!["untrusted-root".to_string()])
    );
    let (c, v) = chain(&[
        &alice,
        "--pool",
        &pki("intermediate.pem"),
        "--trust",
        &pki("root.pem"),
        "--at",
        "2046-01-01T00:00:00Z",
    ]);
    assert_eq!(c, 1);
    assert_eq!(chain_kinds(&v), vec!["expired", "expired", "expired"]);
    let (c, v) = chain(&[
        &alice,
        "--pool",
        &pki("intermediate.pem"),
        "--trust",
        &pki("root.pem"),
        "--at",
        "2024-01-01T00:00:00Z",
    ]);
    assert_eq!((c, chain_kinds(&v)[0].as_str()), (1, "not-yet-valid"));

    // A tampered signature.
    let p = Pki::new();
    let der = {
        let o = Command::new("openssl")
            .args(["x509", "-in", &pki("alice.pem"), "-outform", "DER"])
            .output()
            .expect("openssl");
        let mut d = o.stdout;
        let n = d.len();
        d[n - 5] ^= 0x55;
        d
    };
    let forged = p.p("forged.der");
    std::fs::write(&forged, der).expect("write");
    let (c, v) = chain(&[
        &forged,
        "--pool",
        &pki("intermediate.pem"),
        "--trust",
        &pki("root.pem"),
        "--at",
        AT,
    ]);
    assert_eq!((c, chain_kinds(&v)), (1, vec!["bad-signature".to_string()]));

    // Not a CA + no keyCertSign: a certificate issued by a user certificate.
    let user = p.issue("user", Some("int"), false, LEAF_RSA, &[]);
    let sub = p.issue("sub", Some("user"), false, LEAF_RSA, &[]);
    let now = shortly();
    let (c, v) = chain(&[
        &sub,
        "--pool",
        &user,
        &p.p("int.pem"),
        "--trust",
        &p.p("root.pem"),
        "--at",
        &now,
    ]);
    assert_eq!(c, 1);
    // int's pathLen 0 counts the (bogus) intermediate too.
    assert_eq!(
        chain_kinds(&v),
        vec!["not-a-ca", "missing-key-cert-sign", "path-len-exceeded"]
    );
    assert_eq!(v["paths"][0]["problems"][0]["cert"], 1);

    // pathLen 0 on int, with a sub-CA below it.
    let ca = "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign";
    let subca = p.issue("subca", Some("int"), false, ca, &[]);
    let leaf = p.issue("leaf", Some("subca"), false, LEAF_RSA, &[]);
    let (c, v) = chain(&[
        &leaf,
        "--pool",
        &subca,
        &p.p("int.pem"),
        "--trust",
        &p.p("root.pem"),
        "--at",
        &now,
    ]);
    assert_eq!(
        (c, chain_kinds(&v)),
        (1, vec!["path-len-exceeded".to_string()])
    );
    // Valid with the real PKI and text output.
    let o = run(&[
        "chain",
        "build",
        &user,
        "--pool",
        &p.p("int.pem"),
        "--trust",
        &p.p("root.pem"),
    ]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stdout));
    assert!(String::from_utf8_lossy(&o.stdout).contains("valid path"));
    // Bad --at is a usage error.
    assert_eq!(
        code(&run(&["chain", "build", &user, "--at", "yesterday"])),
        2
    );
}

// ---- lint ----

#[test]
fn lint_table_over_good_and_bad_certificates() {
    let p = Pki::new();
    let now = shortly();
    let ec_ok = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyAgreement\nextendedKeyUsage=emailProtection\nsubjectAltName=email:ec@example.org";
    let ec_bad = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=emailProtection\nsubjectAltName=email:ec@example.org";
    let no_eku = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nsubjectAltName=email:user@example.org";
    let tls = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:mail.example.org";
    let store = p.p("store.sst");
    ok_json(&[
        "sst",
        "create",
        "--out",
        &store,
        &p.p("root.pem"),
        &p.p("int.pem"),
        "--json",
    ]);

    struct Case {
        name: &'static str,
        cert: String,
        args: Vec<String>,
        want: Vec<&'static str>,
        exit: i32,
    }
    let c = |name, cert: String, args: &[&str], want: Vec<&'static str>, exit| Case {
        name,
        cert,
        args: args.iter().map(|s| s.to_string()).collect(),
        want,
        exit,
    };
    let cases = vec![
        c(
            "good rsa",
            p.issue("good", Some("int"), false, LEAF_RSA, &[]),
            &["--address", "User@Example.org"],
            vec![],
            0,
        ),
        c(
            "good ec",
            p.issue("ecgood", Some("int"), true, ec_ok, &[]),
            &[],
            vec![],
            0,
        ),
        c(
            "expired",
            p.issue("old", Some("int"), false, LEAF_RSA, &[]),
            &["--at", "2040-01-01T00:00:00Z"],
            vec!["validity-expired", "chain-invalid"],
            1,
        ),
        c(
            "expiring",
            p.issue("soon", Some("int"), false, LEAF_RSA, &["-days", "10"]),
            &[],
            vec!["validity-expiring-soon"],
            0,
        ),
        c(
            "sha1",
            p.issue("sha1", Some("int"), false, LEAF_RSA, &["-sha1"]),
            &[],
            vec!["sig-sha1"],
            0,
        ),
        c(
            "sha1 thunderbird",
            p.p("sha1.pem"),
            &["--profile", "thunderbird"],
            vec!["sig-sha1"],
            1,
        ),
        c(
            "missing eku",
            p.issue("noeku", Some("int"), false, no_eku, &[]),
            &[],
            vec!["eku-missing"],
            0,
        ),
        c(
            "tls cert",
            p.issue("tls", Some("int"), false, tls, &[]),
            &[],
            vec!["eku-no-email-protection", "san-email-missing"],
            1,
        ),
        c(
            "wrong ku for ec",
            p.issue("ecbad", Some("int"), true, ec_bad, &[]),
            &[],
            vec!["ku-ec-no-key-agreement", "ku-ec-key-encipherment"],
            1,
        ),
        c(
            "san mismatch",
            p.p("good.pem"),
            &["--address", "other@example.org"],
            vec!["san-address-mismatch"],
            1,
        ),
        c(
            "ca as leaf",
            p.p("int.pem"),
            &[],
            vec![
                "eku-missing",
                "ku-no-digital-signature",
                "ku-rsa-no-key-encipherment",
                "san-email-missing",
                "bc-leaf-is-ca",
            ],
            1,
        ),
        c(
            "not in store",
            pki("alice.pem"),
            &["--at", AT],
            vec!["validity-too-long", "chain-incomplete"],
            1,
        ),
    ];
    for case in cases {
        let mut args = vec![
            "lint".to_string(),
            case.cert.clone(),
            "--chain".into(),
            store.clone(),
            "--json".into(),
        ];
        if !case.args.iter().any(|a| a == "--at") {
            args.extend(["--at".into(), now.clone()]);
        }
        args.extend(case.args.clone());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = run(&refs);
        let v = json(&o);
        let got: Vec<&str> = v["certificates"][0]["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .map(|f| f["rule"].as_str().expect("rule"))
            .collect();
        assert_eq!(got, case.want, "{}: {v}", case.name);
        assert_eq!(code(&o), case.exit, "{}: {v}", case.name);
        for f in v["certificates"][0]["findings"]
            .as_array()
            .expect("findings")
        {
            assert!(!f["explanation"].as_str().unwrap_or("").is_empty());
            assert!(!f["fix"].as_str().unwrap_or("").is_empty());
        }
    }

    // Several certificates: the older one for the same address is superseded; text output.
    let newer = p.issue("good2", Some("int"), false, LEAF_RSA, &["-days", "800"]);
    let o = run(&["lint", &p.p("good.pem"), &newer, "--chain", &store]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("[cert-superseded]"), "{text}");
    assert!(text.contains("fix:"), "{text}");
    // The committed fixtures are clean under the OWA profile against their own chain.
    let fx = tempfile::tempdir().expect("tempdir");
    let fx_store = s(&fx.path().join("org.sst"));
    ok_json(&[
        "sst",
        "create",
        "--out",
        &fx_store,
        &pki("chain.pem"),
        "--json",
    ]);
    let v = ok_json(&[
        "lint",
        &pki("alice.pem"),
        &pki("bob.pem"),
        &pki("carol.pem"),
        "--chain",
        &fx_store,
        "--profile",
        "owa",
        "--at",
        AT,
        "--json",
    ]);
    assert_eq!(v["errors"], 0, "{v}");
}

#[test]
fn docs_lint_md_names_every_rule() {
    let doc =
        std::fs::read_to_string(common::workspace().join("docs/lint.md")).expect("docs/lint.md");
    for r in smimekit_service::RULES {
        assert!(
            doc.contains(&format!("`{}`", r.id)),
            "docs/lint.md lacks {}",
            r.id
        );
    }
}
