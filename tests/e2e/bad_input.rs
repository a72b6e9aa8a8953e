//! Malformed, hostile and wrong input through the CLI binary, table-driven.
//!
//! Every case asserts the documented exit code (1 signature invalid/untrusted, 2 usage,
//! 3 malformed input, 4 key/password/recipient, 5 other I/O), that standard error names the
//! cause or the file, and that nothing panicked.

use std::path::{Path, PathBuf};

use base64::Engine;

use crate::common;

const AT: &str = smimekit_testkit::PINNED_AT;

fn pki(name: &str) -> String {
    common::fixtures()
        .join("pki")
        .join(name)
        .display()
        .to_string()
}

const MESSAGE: &[u8] = b"From: Alice <alice@example.org>\r\n\
To: Bob <bob@example.org>\r\n\
Subject: Bad input\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Hello Bob, these are the quarterly figures.\r\n";

/// Work files made once for the table: real messages and damaged copies of them.
struct Work {
    dir: tempfile::TempDir,
}

impl Work {
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.path().join(name)).expect("read work file")
    }
    fn write(&self, name: &str, data: &[u8]) -> String {
        std::fs::write(self.dir.path().join(name), data).expect("write work file");
        self.path(name)
    }
    fn sk_ok(&self, args: &[&str]) {
        let out = common::smimekit(args, &[("SMIMEKIT_PASSWORD", "test")]);
        assert!(
            out.status.success(),
            "setup: smimekit {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn split_body(mime: &[u8]) -> (&[u8], Vec<u8>) {
    let at = mime
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end")
        + 4;
    let b64: Vec<u8> = mime[at..]
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64 body");
    (&mime[..at], der)
}

fn join_body(head: &[u8], der: &[u8]) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = head.to_vec();
    for line in b64.as_bytes().chunks(64) {
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn replace_once(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = hay
        .windows(from.len())
        .position(|w| w == from)
        .expect("pattern present");
    [&hay[..at], to, &hay[at + from.len()..]].concat()
}

/// Deterministic junk (xorshift), so a failure reproduces.
fn junk(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn setup() -> Work {
    let w = Work {
        dir: tempfile::tempdir().expect("tempdir"),
    };
    let msg = w.write("message.eml", MESSAGE);
    w.sk_ok(&[
        "sign",
        "--key",
        &pki("alice.p12"),
        "--in",
        &msg,
        "--out",
        &w.path("signed.eml"),
    ]);
    w.sk_ok(&[
        "sign",
        "--key",
        &pki("alice.p12"),
        "--opaque",
        "--in",
        &msg,
        "--out",
        &w.path("opaque.eml"),
    ]);
    w.sk_ok(&[
        "encrypt",
        "--to",
        &pki("alice.pem"),
        "--in",
        &msg,
        "--out",
        &w.path("sealed.eml"),
    ]);

    // Truncated MIME: the multipart/signed cut inside its first part.
    let signed = w.read("signed.eml");
    let cut = signed
        .windows(9)
        .position(|w| w == b"quarterly")
        .expect("body");
    w.write("truncated.eml", &signed[..cut]);
    // Truncated CMS: the opaque message cut in the middle of its base64 body.
    let opaque = w.read("opaque.eml");
    w.write("truncated-cms.eml", &opaque[..opaque.len() / 2]);
    // No boundary parameter.
    let text = String::from_utf8_lossy(&signed).into_owned();
    let start = text.find("boundary=\"").expect("boundary") + "boundary=\"".len();
    let boundary = &text[start..start + text[start..].find('"').expect("quote")];
    w.write(
        "no-boundary.eml",
        text.replacen(&format!("boundary=\"{boundary}\""), "x-note=1", 1)
            .as_bytes(),
    );
    // The boundary is declared but no delimiter line uses it.
    w.write(
        "boundary-missing.eml",
        text.replace(&format!("--{boundary}"), "--something-else")
            .as_bytes(),
    );
    // Bad base64 in smime.p7m.
    let (head, der) = split_body(&opaque);
    let mut bad = head.to_vec();
    bad.extend_from_slice(b"MIIB!!!!not*base64@@@@\r\n");
    bad.extend_from_slice(&join_body(b"", &der)[24..]);
    w.write("bad-base64.eml", &bad);
    // The detached signature alone (raw DER), for --content.
    let sig_at = signed
        .windows(9)
        .position(|w| w == b"smime.p7s")
        .expect("p7s part");
    let (_, p7s) = split_body(&signed[sig_at..signed.len() - boundary.len() - 8]);
    w.write("detached.p7s", &p7s);
    // Tampered content: one byte of the signed body flipped.
    w.write(
        "tampered-content.eml",
        &replace_once(&signed, b"quarterly", b"quarterlY"),
    );
    // Tampered signature: a byte of the signature value (the last element of SignerInfo).
    let mut der_sig = der.clone();
    let n = der_sig.len();
    der_sig[n - 8] ^= 0x01;
    w.write("tampered-signature.eml", &join_body(head, &der_sig));
    // Unknown content-encryption algorithm: aes-256-cbc (2.16.840.1.101.3.4.1.42) patched to .127.
    let sealed = w.read("sealed.eml");
    let (shead, sder) = split_body(&sealed);
    let aes256 = [
        0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a,
    ];
    let mut patched = replace_once(&sder, &aes256, &aes256);
    let at = patched
        .windows(aes256.len())
        .position(|w| w == aes256)
        .expect("aes oid");
    patched[at + aes256.len() - 1] = 0x7f;
    w.write("unknown-cipher.eml", &join_body(shead, &patched));
    // Huge header: one 2 MiB header line.
    let mut huge = b"Subject: ".to_vec();
    huge.extend(std::iter::repeat_n(b'A', 2 * 1024 * 1024));
    huge.extend_from_slice(b"\r\nContent-Type: text/plain\r\n\r\nbody\r\n");
    w.write("huge-header.eml", &huge);
    w.write("empty.eml", b"");
    w.write("junk.bin", &junk(8192));
    // DER that is not CMS: a certificate.
    let pem = std::fs::read_to_string(pki("alice.pem")).expect("alice.pem");
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let cert_der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("cert");
    w.write("cert.der", &cert_der);
    // A truncated PKCS#12.
    let p12 = std::fs::read(pki("alice.p12")).expect("alice.p12");
    w.write("truncated.p12", &p12[..p12.len() / 3]);
    // A wrong password in a password file.
    w.write("wrong-password.txt", b"not-the-password\n");
    // A regular file to put an output path under.
    w.write("a-file", b"x");
    std::fs::create_dir(w.dir.path().join("a-dir")).expect("mkdir");
    // Depth bomb: 17 layers of opaque signing (the limit is 16).
    let mut prev = msg.clone();
    for i in 1..=17 {
        let next = w.path(&format!("layer-{i}.eml"));
        w.sk_ok(&[
            "sign",
            "--key",
            &pki("bob.p12"),
            "--opaque",
            "--in",
            &prev,
            "--out",
            &next,
        ]);
        prev = next;
    }
    w
}

struct Case {
    name: &'static str,
    args: Vec<String>,
    env: Vec<(&'static str, &'static str)>,
    code: i32,
    /// Every one of these must appear in standard error.
    stderr: Vec<String>,
}

fn case(name: &'static str, args: &[&str], code: i32, stderr: &[&str]) -> Case {
    Case {
        name,
        args: args.iter().map(|s| s.to_string()).collect(),
        env: vec![("SMIMEKIT_PASSWORD", "test")],
        code,
        stderr: stderr.iter().map(|s| s.to_string()).collect(),
    }
}

impl Case {
    fn env(mut self, env: &[(&'static str, &'static str)]) -> Self {
        self.env = env.to_vec();
        self
    }
}

fn cases(w: &Work) -> Vec<Case> {
    let p = |n: &str| w.path(n);
    let (root, alice_p12, alice_pem, carol_p12) = (
        pki("root.pem"),
        pki("alice.p12"),
        pki("alice.pem"),
        pki("carol.p12"),
    );
    let verify = |input: &str| -> Vec<String> {
        ["verify", "--trust", &root, "--at", AT, "--in", input]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let v = |name: &'static str, input: &str, code: i32, stderr: &[&str]| -> Case {
        let args = verify(input);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        case(name, &args, code, stderr)
    };
    let missing = p("does-not-exist.eml");
    let msg = p("message.eml");
    vec![
        // --- malformed MIME and CMS: 3
        v(
            "truncated MIME",
            &p("truncated.eml"),
            3,
            &["malformed", "multipart"],
        ),
        v(
            "truncated CMS body",
            &p("truncated-cms.eml"),
            3,
            &["malformed"],
        ),
        v(
            "multipart without boundary",
            &p("no-boundary.eml"),
            3,
            &["boundary"],
        ),
        v(
            "boundary never used",
            &p("boundary-missing.eml"),
            3,
            &["boundary", "not found"],
        ),
        v(
            "bad base64 in smime.p7m",
            &p("bad-base64.eml"),
            3,
            &["base64"],
        ),
        v("empty file", &p("empty.eml"), 3, &["empty"]),
        v(
            "huge header (2 MiB line)",
            &p("huge-header.eml"),
            3,
            &["header too long"],
        ),
        v("random binary junk", &p("junk.bin"), 3, &["malformed"]),
        v("DER that is not CMS", &p("cert.der"), 3, &["malformed"]),
        v(
            "plain message is not S/MIME",
            &msg,
            3,
            &["not an S/MIME message"],
        ),
        v(
            "17 nested layers",
            &p("layer-17.eml"),
            3,
            &["nesting deeper than 16"],
        ),
        case(
            "unknown content-encryption OID",
            &[
                "decrypt",
                "--key",
                &alice_p12,
                "--in",
                &p("unknown-cipher.eml"),
            ],
            3,
            &["unsupported", "2.16.840.1.101.3.4.1.127"],
        ),
        case(
            "encrypt to a non-certificate file",
            &["encrypt", "--to", &msg, "--in", &msg],
            3,
            &[&msg, "not a certificate"],
        ),
        case(
            "cert show on garbage",
            &["cert", "show", &p("junk.bin")],
            3,
            &[&p("junk.bin"), "not a certificate"],
        ),
        case(
            "truncated p12",
            &["sign", "--key", &p("truncated.p12"), "--in", &msg],
            3,
            &[&p("truncated.p12"), "truncated"],
        ),
        case(
            "decrypt a message that is only signed",
            &["decrypt", "--key", &alice_p12, "--in", &p("opaque.eml")],
            3,
            &["not encrypted"],
        ),
        // --- signatures: 1
        v(
            "tampered content",
            &p("tampered-content.eml"),
            1,
            &["bad-signature", "digest"],
        ),
        v(
            "tampered signature",
            &p("tampered-signature.eml"),
            1,
            &["bad-signature", "does not verify"],
        ),
        case(
            "untrusted signer (no --trust)",
            &["verify", "--at", AT, "--in", &p("signed.eml")],
            1,
            &["untrusted", "no trust anchors"],
        ),
        case(
            "expired signer (--at 2099)",
            &[
                "verify",
                "--trust",
                &root,
                "--at",
                "2099-06-01T00:00:00Z",
                "--in",
                &p("signed.eml"),
            ],
            1,
            &["untrusted", "expired"],
        ),
        case(
            "not yet valid signer (--at 2020)",
            &[
                "verify",
                "--trust",
                &root,
                "--at",
                "2020-01-01T00:00:00Z",
                "--in",
                &p("signed.eml"),
            ],
            1,
            &["untrusted", "not yet valid"],
        ),
        case(
            "detached signature, other content",
            &[
                "verify",
                "--trust",
                &root,
                "--at",
                AT,
                "--in",
                &p("detached.p7s"),
                "--content",
                &msg,
            ],
            1,
            &["digest"],
        ),
        // --- keys, passwords, recipients: 4
        case(
            "wrong p12 password",
            &["sign", "--key", &alice_p12, "--in", &msg],
            4,
            &["wrong password", &alice_p12],
        )
        .env(&[("SMIMEKIT_PASSWORD", "wrong")]),
        case(
            "missing password, non-interactive",
            &["sign", "--key", &alice_p12, "--in", &msg],
            4,
            &[
                "not found in --password-file, SMIMEKIT_PASSWORD",
                "alice.p12",
            ],
        )
        .env(&[]),
        case(
            "wrong password file",
            &[
                "decrypt",
                "--key",
                &alice_p12,
                "--password-file",
                &p("wrong-password.txt"),
                "--in",
                &p("sealed.eml"),
            ],
            4,
            &["wrong password"],
        )
        .env(&[]),
        case(
            "keys list, wrong password",
            &["keys", "list", "--store", &alice_p12],
            4,
            &["wrong password"],
        )
        .env(&[("SMIMEKIT_PASSWORD", "nope")]),
        case(
            "encrypt to a CA certificate",
            &["encrypt", "--to", &root, "--in", &msg],
            4,
            &["Root CA", "is a CA certificate"],
        ),
        case(
            "wrong recipient key (carol for alice)",
            &["decrypt", "--key", &carol_p12, "--in", &p("sealed.eml")],
            4,
            &["no key for any recipient"],
        ),
        case(
            "open with the wrong key",
            &[
                "open",
                "--key",
                &carol_p12,
                "--trust",
                &root,
                "--at",
                AT,
                "--in",
                &p("sealed.eml"),
            ],
            4,
            &["no key for any recipient"],
        ),
        // --- usage: 2
        case(
            "bad --at",
            &[
                "verify",
                "--trust",
                &root,
                "--at",
                "yesterday",
                "--in",
                &p("signed.eml"),
            ],
            2,
            &["--at yesterday", "RFC 3339"],
        ),
        case(
            "--pss with an EC key",
            &["sign", "--key", &pki("bob.p12"), "--pss", "--in", &msg],
            2,
            &["--pss", "RSA-PSS needs an RSA key"],
        ),
        case(
            "bad --digest",
            &["sign", "--key", &alice_p12, "--digest", "md5", "--in", &msg],
            2,
            &["--digest md5"],
        ),
        case(
            "bad --cipher (clap)",
            &[
                "encrypt",
                "--cipher",
                "des-ede3-cbc",
                "--to",
                &alice_pem,
                "--in",
                &msg,
            ],
            2,
            &["invalid value 'des-ede3-cbc'", "--cipher"],
        ),
        case(
            "encrypt without --to (clap)",
            &["encrypt", "--in", &msg],
            2,
            &["--to"],
        ),
        case(
            "unknown subcommand (clap)",
            &["frobnicate"],
            2,
            &["frobnicate"],
        ),
        case(
            "cert export without a format",
            &["cert", "export", &alice_pem],
            2,
            &["--der or --pem"],
        ),
        // --- I/O: 5
        case(
            "missing input file",
            &["verify", "--in", &missing],
            5,
            &[&missing],
        ),
        case(
            "cert show on a missing file",
            &["cert", "show", &missing],
            5,
            &[&missing],
        ),
        case(
            "keys list on a missing file",
            &["keys", "list", "--store", &p("nope.p12")],
            5,
            &[&p("nope.p12")],
        ),
        case(
            "encrypt to a missing certificate",
            &["encrypt", "--to", &missing, "--in", &msg],
            5,
            &[&missing],
        ),
        case(
            "missing password file",
            &[
                "sign",
                "--key",
                &alice_p12,
                "--password-file",
                &missing,
                "--in",
                &msg,
            ],
            5,
            &[&missing],
        )
        .env(&[]),
        // Tests may run as root, where permission bits do not stop writes: an output path under a
        // regular file and an output path that is a directory are unwritable for anyone.
        case(
            "output under a regular file",
            &[
                "sign",
                "--key",
                &alice_p12,
                "--in",
                &msg,
                "--out",
                &p("a-file/out.eml"),
            ],
            5,
            &[&p("a-file/out.eml")],
        ),
        case(
            "output is a directory",
            &[
                "sign",
                "--key",
                &alice_p12,
                "--in",
                &msg,
                "--out",
                &p("a-dir"),
            ],
            5,
            &[&p("a-dir")],
        ),
    ]
}

#[test]
fn bad_input_table() {
    let w = setup();
    let cases = cases(&w);
    assert!(cases.len() >= 25);
    let mut failures = Vec::new();
    for c in &cases {
        let args: Vec<&str> = c.args.iter().map(String::as_str).collect();
        let out = common::smimekit(&args, &c.env);
        let err = String::from_utf8_lossy(&out.stderr);
        let mut problems = Vec::new();
        if out.status.code() != Some(c.code) {
            problems.push(format!("exit {:?}, want {}", out.status.code(), c.code));
        }
        for s in &c.stderr {
            if !err.contains(s.as_str()) {
                problems.push(format!("stderr lacks {s:?}"));
            }
        }
        if err.contains("panicked") {
            problems.push("panicked".into());
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {}\n  args: {}\n  stderr: {}",
                c.name,
                problems.join("; "),
                args.join(" "),
                err.trim()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// With --json, a failure is also a JSON object on standard output carrying the exit code.
#[test]
fn json_errors_are_json() {
    let w = setup_min();
    let out = common::smimekit(&["--json", "verify", "--in", &w.1], &[]);
    assert_eq!(out.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON error object");
    assert_eq!(v["exit_code"], 3);
    assert!(
        v["error"].as_str().unwrap_or_default().contains("empty"),
        "{v}"
    );
}

fn setup_min() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let p: PathBuf = dir.path().join("empty.eml");
    std::fs::write(&p, b"").expect("write");
    let s = Path::new(&p).display().to_string();
    (dir, s)
}
