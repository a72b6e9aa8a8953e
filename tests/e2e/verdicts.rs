//! What "valid" means, through the CLI (issue 16, sections 1 and 2): nothing unsigned is valid
//! (`verify` exits 1 "not signed", `open --json` says `valid: null`), the sender is part of the
//! verdict (`address-mismatch`, `--allow-address-mismatch`), SHA-1 and MD5 signatures are
//! invalid (`--allow-sha1` for SHA-1), `encrypt --to ADDRESS` only to a certificate naming the
//! address and chaining to the trust chain (`--force`), an LDAP address several entries answer
//! to is an error naming them, and every decryption failure after the recipient is chosen gives
//! one message and one exit code.
//!
//! The PKI is the committed test PKI (valid 2025 to 2045); verification runs at testkit's
//! pinned time.

use std::path::Path;
use std::process::Output;

use smimekit_testkit::PINNED_AT;

use crate::common::{openssl_ok, p, pki, show, smimekit};

const PW: (&str, &str) = ("SMIMEKIT_PASSWORD", "test");

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", show("json", out)))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn verify(file: &Path, extra: &[&str]) -> Output {
    let f = p(file);
    let root = pki("root.pem");
    let mut args = vec!["verify", "--in", &f, "--trust", &root, "--at", PINNED_AT];
    args.extend_from_slice(extra);
    smimekit(&args, &[])
}

fn open_json(file: &Path, extra: &[&str]) -> Output {
    let f = p(file);
    let root = pki("root.pem");
    let mut args = vec![
        "open", "--in", &f, "--trust", &root, "--at", PINNED_AT, "--json",
    ];
    args.extend_from_slice(extra);
    smimekit(&args, &[PW])
}

fn write(dir: &Path, name: &str, data: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    path
}

/// `smimekit sign` with alice's key (her certificate names alice@example.org).
fn sign_as_alice(dir: &Path, name: &str, message: &str) -> std::path::PathBuf {
    let input = write(dir, &format!("{name}.in.eml"), message.as_bytes());
    let out_path = dir.join(format!("{name}.eml"));
    let out = smimekit(
        &[
            "sign",
            "--key",
            &pki("alice.p12"),
            "--in",
            &p(&input),
            "--out",
            &p(&out_path),
        ],
        &[PW],
    );
    assert!(out.status.success(), "{}", show("sign", &out));
    out_path
}

#[test]
fn nothing_unsigned_is_valid() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let content = write(
        w,
        "content.txt",
        b"Content-Type: text/plain\r\n\r\nhello\r\n",
    );
    let digested = w.join("digested.der");
    openssl_ok(&[
        "cms",
        "-digest_create",
        "-in",
        &p(&content),
        "-outform",
        "DER",
        "-out",
        &p(&digested),
    ]);
    let data = w.join("data.der");
    openssl_ok(&[
        "cms",
        "-data_create",
        "-in",
        &p(&content),
        "-outform",
        "DER",
        "-out",
        &p(&data),
    ]);
    let certs_only = w.join("certs-only.der");
    openssl_ok(&[
        "crl2pkcs7",
        "-nocrl",
        "-certfile",
        &pki("alice.pem"),
        "-outform",
        "DER",
        "-out",
        &p(&certs_only),
    ]);
    let plain = write(
        w,
        "plain.eml",
        b"From: alice@example.org\r\nSubject: hi\r\n\r\nnot signed\r\n",
    );
    for file in [&digested, &data, &certs_only, &plain] {
        let out = verify(file, &[]);
        assert_eq!(out.status.code(), Some(1), "{}", show("verify", &out));
        assert!(stderr(&out).contains("not signed"), "{}", stderr(&out));
        let out = open_json(file, &[]);
        assert_eq!(out.status.code(), Some(0), "{}", show("open", &out));
        assert_eq!(json(&out)["valid"], serde_json::Value::Null, "{}", p(file));
    }
    // The digested content is what open writes.
    let out_file = w.join("out.txt");
    let out = smimekit(
        &["open", "--in", &p(&digested), "--out", &p(&out_file)],
        &[],
    );
    assert!(out.status.success(), "{}", show("open", &out));
    assert_eq!(
        std::fs::read(&out_file).unwrap(),
        std::fs::read(&content).unwrap()
    );
}

#[test]
fn the_sender_must_be_the_signer() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let body = "Subject: test\r\nContent-Type: text/plain\r\n\r\nPlease wire the money.\r\n";

    let own = sign_as_alice(
        w,
        "own",
        &format!("From: Alice <alice@example.org>\r\n{body}"),
    );
    let out = verify(&own, &["--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", show("verify", &out));
    assert_eq!(json(&out)["valid"], true);

    let forged = sign_as_alice(
        w,
        "ceo",
        &format!("From: The CEO <ceo@example.org>\r\n{body}"),
    );
    let out = verify(&forged, &["--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", show("verify", &out));
    let r = json(&out);
    assert_eq!(r["valid"], false);
    let signer = &r["layers"][0]["signers"][0];
    assert_eq!(signer["status"], "address-mismatch");
    assert_eq!(signer["sender"], "ceo@example.org");
    assert_eq!(signer["address"], "alice@example.org");
    assert_eq!(signer["matches_from"], false);
    // Without --json, the reason names both addresses.
    let out = verify(&forged, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("address-mismatch")
            && err.contains("ceo@example.org")
            && err.contains("alice@example.org"),
        "{err}"
    );
    // Accepted when asked, and still said.
    let out = verify(&forged, &["--json", "--allow-address-mismatch"]);
    assert_eq!(out.status.code(), Some(0), "{}", show("verify", &out));
    let r = json(&out);
    assert_eq!(r["valid"], true);
    assert!(
        r["layers"][0]["signers"][0]["warnings"][0]
            .as_str()
            .unwrap()
            .contains("ceo@example.org"),
        "{r}"
    );
    // open gives the same verdict.
    let out = open_json(&forged, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        json(&out)["layers"][0]["signers"][0]["status"],
        "address-mismatch"
    );

    // Two From addresses, a Sender who is not the signer: never a match.
    for (name, headers) in [
        ("two", "From: alice@example.org, ceo@example.org\r\n"),
        (
            "sender",
            "From: alice@example.org\r\nSender: assistant@example.org\r\n",
        ),
    ] {
        let m = sign_as_alice(w, name, &format!("{headers}{body}"));
        let out = verify(&m, &["--json"]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{name}: {}",
            show("verify", &out)
        );
        assert_eq!(
            json(&out)["layers"][0]["signers"][0]["status"],
            "address-mismatch",
            "{name}"
        );
    }
}

/// `verify` vouches for the content: it writes it (to --out or standard output) only when the
/// verdict is valid; an invalid or unsigned message writes nothing, an existing --out file
/// stays as it was. `open` gives the content with whatever verdict.
#[test]
fn verify_writes_the_content_only_when_it_is_valid() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let body = "Subject: test\r\nContent-Type: text/plain\r\n\r\nPlease wire the money.\r\n";
    let own = sign_as_alice(
        w,
        "own",
        &format!("From: Alice <alice@example.org>\r\n{body}"),
    );
    let forged = sign_as_alice(
        w,
        "ceo",
        &format!("From: The CEO <ceo@example.org>\r\n{body}"),
    );
    let plain = write(
        w,
        "plain.eml",
        format!("From: Alice <alice@example.org>\r\n{body}").as_bytes(),
    );
    let has_body = |data: &[u8]| {
        data.windows(b"wire the money".len())
            .any(|x| x == b"wire the money")
    };

    let out_file = w.join("own.out");
    let out = verify(&own, &["--out", &p(&out_file)]);
    assert_eq!(out.status.code(), Some(0), "{}", show("verify", &out));
    assert!(has_body(&std::fs::read(&out_file).unwrap()));
    let out = verify(&own, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show("verify", &out));
    assert!(has_body(&out.stdout), "{}", show("verify", &out));

    for (file, why) in [(&forged, "content not written"), (&plain, "not signed")] {
        let out_file = w.join("invalid.out");
        let out = verify(file, &["--out", &p(&out_file)]);
        assert_eq!(out.status.code(), Some(1), "{}", show("verify", &out));
        assert!(stderr(&out).contains(why), "{}", stderr(&out));
        assert!(
            !out_file.exists(),
            "{} written for {}",
            p(&out_file),
            p(file)
        );
        // Nor on standard output, nor over an existing file.
        let out = verify(file, &[]);
        assert_eq!(out.status.code(), Some(1));
        assert!(out.stdout.is_empty(), "{}", show("verify", &out));
        std::fs::write(&out_file, b"before").unwrap();
        let out = verify(file, &["--out", &p(&out_file), "--json"]);
        assert_eq!(out.status.code(), Some(1));
        assert_ne!(json(&out)["valid"], true);
        assert_eq!(std::fs::read(&out_file).unwrap(), b"before");
        std::fs::remove_file(&out_file).unwrap();
    }

    // open was asked to open: the content comes with its verdict.
    let out_file = w.join("opened.out");
    let out = smimekit(&["open", "--in", &p(&forged), "--out", &p(&out_file)], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show("open", &out));
    assert!(has_body(&std::fs::read(&out_file).unwrap()));
}

#[test]
fn sha1_and_md5_signatures_are_invalid() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let msg = write(
        w,
        "msg.eml",
        b"Content-Type: text/plain\r\n\r\nold mail\r\n",
    );
    let sign = |md: &str| {
        let out = w.join(format!("{md}.eml"));
        openssl_ok(&[
            "cms",
            "-sign",
            "-md",
            md,
            "-signer",
            &pki("alice.pem"),
            "-inkey",
            &pki("alice.key"),
            "-certfile",
            &pki("intermediate.pem"),
            "-in",
            &p(&msg),
            "-out",
            &p(&out),
        ]);
        out
    };
    let sha1 = sign("sha1");
    let out = verify(&sha1, &["--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", show("verify", &out));
    let r = json(&out);
    let signer = &r["layers"][0]["signers"][0];
    assert_eq!(signer["status"], "weak-algorithm", "{r}");
    assert_eq!(signer["signature_ok"], true);
    assert!(signer["reason"].as_str().unwrap().contains("SHA-1"));
    let out = verify(&sha1, &["--json", "--allow-sha1"]);
    assert_eq!(out.status.code(), Some(0), "{}", show("verify", &out));
    let r = json(&out);
    assert!(
        r["layers"][0]["signers"][0]["warnings"][0]
            .as_str()
            .unwrap()
            .contains("SHA-1"),
        "{r}"
    );

    let md5 = sign("md5");
    let out = verify(&md5, &["--json", "--allow-sha1"]);
    assert_eq!(out.status.code(), Some(1), "{}", show("verify", &out));
    let r = json(&out);
    assert_eq!(r["layers"][0]["signers"][0]["status"], "weak-algorithm");
    assert!(
        r["layers"][0]["signers"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("MD5")
    );

    let sha256 = sign("sha256");
    let out = verify(&sha256, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show("verify", &out));
}

/// A config with one local directory in `dir`.
fn local_config(dir: &Path) -> String {
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        "[directory.corp]\nkind = \"local\"\npath = \"corp.json\"\n",
    )
    .unwrap();
    p(&config)
}

#[test]
fn encrypt_to_an_address_needs_its_certificate_and_the_trust_chain() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let config = local_config(w);
    let run = |args: &[&str]| {
        let mut a = args.to_vec();
        a.extend(["--config", &config]);
        smimekit(&a, &[])
    };
    let msg = write(w, "msg.eml", b"Subject: hi\r\n\r\nsecret\r\n");
    let enc = p(&w.join("enc.eml"));
    let encrypt = |to: &str, force: bool| {
        let mut a = vec![
            "encrypt",
            "--to",
            to,
            "--in",
            msg.to_str().unwrap(),
            "--out",
            &enc,
        ];
        if force {
            a.push("--force");
        }
        run(&a)
    };

    // A certificate planted under someone else's address (publish --force lets an admin do it).
    let out = run(&[
        "publish",
        "ceo@example.org",
        "--cert",
        &pki("alice.pem"),
        "--force",
    ]);
    assert!(out.status.success(), "{}", show("publish", &out));
    let out = encrypt("ceo@example.org", false);
    assert_eq!(out.status.code(), Some(4), "{}", show("encrypt", &out));
    let err = stderr(&out);
    assert!(
        err.contains("alice@example.org") && err.contains("not ceo@example.org"),
        "{err}"
    );
    let out = encrypt("ceo@example.org", true);
    assert!(out.status.success(), "{}", show("encrypt --force", &out));

    // Bob's own certificate, with no trust chain configured: taken.
    let out = run(&["publish", "bob@example.org", "--cert", &pki("bob.pem")]);
    assert!(out.status.success(), "{}", show("publish", &out));
    assert!(encrypt("bob@example.org", false).status.success());

    // A trust chain bob's certificate does not chain to (another organisation's CA, made by
    // smimekit's own CA): refused with the reason, unless forced.
    let other = w.join("other-ca");
    let out = smimekit(
        &[
            "ca",
            "init",
            "--dir",
            &p(&other),
            "--key-type",
            "p256",
            "--name",
            "Other",
        ],
        &[PW],
    );
    assert!(out.status.success(), "{}", show("ca init", &out));
    let other_root = other.join("root.pem");
    let out = run(&["trust", "push", &p(&other_root)]);
    assert!(out.status.success(), "{}", show("trust push", &out));
    let out = encrypt("bob@example.org", false);
    assert_eq!(out.status.code(), Some(4), "{}", show("encrypt", &out));
    assert!(
        stderr(&out).contains("does not chain to the trust chain"),
        "{}",
        stderr(&out)
    );
    assert!(encrypt("bob@example.org", true).status.success());

    // The organisation's own chain: taken.
    let out = run(&["trust", "push", &pki("root.pem"), &pki("intermediate.pem")]);
    assert!(out.status.success(), "{}", show("trust push", &out));
    let out = encrypt("bob@example.org", false);
    assert!(out.status.success(), "{}", show("encrypt", &out));
}

#[test]
fn an_ldap_address_answered_by_several_entries_is_an_error() {
    use crate::ldap::slapd::{ADMIN, BASE, Options, Slapd};
    let seed = format!(
        "dn: CN=Bob,cn=Users,{BASE}\nobjectClass: user\ncn: Bob\nsn: Example\nmail: bob@example.org\n\n\
         dn: CN=Impostor,cn=Users,{BASE}\nobjectClass: user\ncn: Impostor\nsn: Example\nmail: bob@example.org\n\n"
    );
    let s = Slapd::start(&Options {
        ad_schema: true,
        seed,
        ..Options::default()
    });
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[directory.corp]\nkind = \"ldap\"\nurl = \"{}\"\nbase_dn = \"{BASE}\"\nbind_dn = \"{ADMIN}\"\n\
             password_file = \"{}\"\nflavor = \"active-directory\"\ncertificate_attribute = \"userCertificate;binary\"\n\
             allow_cleartext_bind = true\n",
            s.url(),
            s.password_file().display()
        ),
    )
    .unwrap();
    let msg = work.path().join("msg.eml");
    std::fs::write(&msg, "Subject: hi\r\n\r\nsecret\r\n").unwrap();
    let config = p(&config);
    for args in [
        vec!["lookup", "bob@example.org"],
        vec![
            "encrypt",
            "--to",
            "bob@example.org",
            "--in",
            msg.to_str().unwrap(),
        ],
    ] {
        let mut a = args.clone();
        a.extend(["--config", &config]);
        let out = smimekit(&a, &[]);
        assert_eq!(out.status.code(), Some(4), "{}", show(args[0], &out));
        let err = stderr(&out).to_ascii_lowercase();
        assert!(
            err.contains("2 entries answer to bob@example.org")
                && err.contains("cn=bob,cn=users")
                && err.contains("cn=impostor,cn=users"),
            "{err}"
        );
    }
}

/// Finds `needle` in `hay` (the first occurrence).
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Every failure after the recipient is chosen gives one message and one exit code: a wrong
/// RSA key, a damaged RSA-wrapped key (PKCS#1 v1.5 padding), a damaged last block (CBC
/// padding), an EC key, for `decrypt` and `open` alike.
#[test]
fn decryption_failures_are_one_answer() {
    use base64::Engine as _;
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let msg = write(w, "msg.eml", b"Subject: hi\r\n\r\nfor alice only\r\n");
    // Raw DER, so that the damage lands where it is meant to. AES-GCM where a key is wrong
    // (a stand-in key can never pass its tag; CBC would, about once in 256 runs, "decrypt"
    // to garbage), AES-CBC where the padding is damaged.
    let encrypt = |cipher: &str, name: &str| -> Vec<u8> {
        let mime_out = w.join(format!("{name}.eml"));
        let out = smimekit(
            &[
                "encrypt",
                "--to",
                &pki("alice.pem"),
                "--cipher",
                cipher,
                "--in",
                &p(&msg),
                "--out",
                &p(&mime_out),
            ],
            &[],
        );
        assert!(out.status.success(), "{}", show("encrypt", &out));
        let mime = std::fs::read_to_string(&mime_out).unwrap();
        let b64: String = mime
            .split("\r\n\r\n")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .collect();
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap()
    };
    let gcm = encrypt("aes-256-gcm", "gcm");
    let cbc = encrypt("aes-256-cbc", "cbc");
    let enc = write(w, "enc.der", &gcm);

    // Alice's RSA-2048 encryptedKey: OCTET STRING of 256 bytes.
    let key_at = find(&gcm, &[0x04, 0x82, 0x01, 0x00]).expect("the wrapped key") + 4;
    let mut bad_key = gcm.clone();
    bad_key[key_at + 100] ^= 0x5a;
    let bad_key = write(w, "bad-key.der", &bad_key);
    // The content is last: flipping the last byte of the next-to-last block flips the padding
    // length byte, which can then never be valid.
    let mut bad_block = cbc.clone();
    let at = bad_block.len() - 17;
    bad_block[at] ^= 0x01;
    let bad_block = write(w, "bad-block.der", &bad_block);

    let other_rsa = w.join("other.key");
    openssl_ok(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        &p(&other_rsa),
    ]);
    let alice = pki("alice.p12");
    let cases: Vec<(&str, &Path, String)> = vec![
        ("wrong RSA key", &enc, p(&other_rsa)),
        ("damaged wrapped key", &bad_key, alice.clone()),
        ("damaged last block", &bad_block, alice.clone()),
        ("an EC key", &enc, pki("bob.key")),
    ];
    let mut answers = Vec::new();
    for (what, file, key) in &cases {
        for cmd in ["decrypt", "open"] {
            let out = smimekit(
                &[
                    cmd,
                    "--key",
                    key,
                    "--in",
                    &p(file),
                    "--out",
                    &p(&w.join("out")),
                ],
                &[PW],
            );
            // Nothing is written.
            assert!(!w.join("out").exists(), "{what} {cmd}: wrote output");
            answers.push((format!("{what} ({cmd})"), out.status.code(), stderr(&out)));
        }
    }
    // The right key opens the undamaged message.
    let out = smimekit(&["decrypt", "--key", &alice, "--in", &p(&enc)], &[PW]);
    assert!(out.status.success(), "{}", show("decrypt", &out));

    let (first_what, first_code, first_err) = &answers[0];
    assert_eq!(*first_code, Some(4), "{first_what}: {first_err}");
    assert!(
        first_err.contains("no key for any recipient")
            && first_err.contains("or the message is damaged"),
        "{first_err}"
    );
    for (what, code, err) in &answers {
        assert_eq!(code, first_code, "{what}: {err}");
        assert_eq!(err, first_err, "{what} differs from {first_what}");
    }
}

/// RFC 4134's SHA-1 signatures by a DSA key (4.1) and an RSA-1024 key (4.2) under SHA-1-signed
/// CA certificates: untrusted by default (the chain's security level); with --allow-sha1
/// valid, and the report flags the key and the accepted SHA-1.
#[test]
fn weak_keys_are_flagged() {
    let corpus = crate::common::corpus().join("rfc4134");
    let c = |f: &str| p(&corpus.join(f));
    for (file, flag) in [("4.1.bin", "DSA"), ("4.2.bin", "1024 bits")] {
        let run = |extra: &[&str]| {
            let (input, rsa, dss) = (c(file), c("CarlRSASelf.cer"), c("CarlDSSSelf.cer"));
            let mut args = vec![
                "verify",
                "--in",
                &input,
                "--trust",
                &rsa,
                "--trust",
                &dss,
                "--at",
                "2025-01-01T00:00:00Z",
                "--json",
            ];
            args.extend_from_slice(extra);
            smimekit(&args, &[])
        };
        let out = run(&[]);
        assert_eq!(out.status.code(), Some(1), "{}", show(file, &out));
        // Their CA certificates are SHA-1-signed too: the chain fails first, at security level 1.
        let r = json(&out);
        let signer = &r["layers"][0]["signers"][0];
        assert_eq!(signer["status"], "untrusted", "{r}");
        assert!(
            signer["reason"].as_str().unwrap().contains("too weak"),
            "{r}"
        );
        let out = run(&["--allow-sha1"]);
        assert_eq!(out.status.code(), Some(0), "{}", show(file, &out));
        let r = json(&out);
        let warnings = r["layers"][0]["signers"][0]["warnings"].to_string();
        assert!(
            warnings.contains(flag) && warnings.contains("SHA-1"),
            "{file}: {warnings}"
        );
    }
}
