//! Malformed, hostile and wrong input through the CLI binary, table-driven.
//!
//! Every case asserts the documented exit code (1 signature invalid/untrusted, 2 usage,
//! 3 malformed input, 4 key/password/recipient, 5 other I/O), that standard error names the
//! cause or the file, that nothing panicked, and that nothing was written (each command that
//! writes gets an `--out`, absent afterwards). Hostile inputs beyond each limit on input
//! (README "Limits on input") are among them.

use std::path::{Path, PathBuf};

use base64::Engine;
use smimekit_pki::asn1;

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
    hostile_setup(&w, &opaque, &signed, boundary);
    w
}

/// The DER OBJECT IDENTIFIER of a dotted string.
fn oid(dotted: &str) -> Vec<u8> {
    let arcs: Vec<u64> = dotted.split('.').map(|a| a.parse().expect("arc")).collect();
    let mut content = Vec::new();
    let mut push = |mut v: u64| {
        let mut bytes = vec![(v & 0x7f) as u8];
        v >>= 7;
        while v > 0 {
            bytes.push(0x80 | (v & 0x7f) as u8);
            v >>= 7;
        }
        bytes.reverse();
        content.extend(bytes);
    };
    push(arcs[0] * 40 + arcs[1]);
    for a in &arcs[2..] {
        push(*a);
    }
    asn1::encode(asn1::TAG_OID, &content)
}

fn content_info(content_type: &str, inner: &[u8]) -> Vec<u8> {
    asn1::seq(&[&oid(content_type), &asn1::context_constructed(0, &[inner])])
}

const ID_DATA: &str = "1.2.840.113549.1.7.1";
const ID_SIGNED_DATA: &str = "1.2.840.113549.1.7.2";

/// A SignedData over "hello" with `signers` copies of a SignerInfo, `certs` copies of `cert`
/// and `crls` empty CRL SEQUENCEs (`usize::MAX`: instead, an element SignedData does not have).
fn signed_data(signers: usize, certs: usize, crls: usize, cert: &[u8]) -> Vec<u8> {
    let digest_alg = asn1::seq(&[&oid("2.16.840.1.101.3.4.2.1")]);
    let si = asn1::seq(&[
        &asn1::small_int(3),
        &asn1::context_primitive(0, &[0x11; 20]),
        &digest_alg,
        &asn1::seq(&[&oid("1.2.840.10045.4.3.2")]),
        &asn1::octet_string(&[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01]),
    ]);
    let encap = asn1::seq(&[
        &oid(ID_DATA),
        &asn1::context_constructed(0, &[&asn1::octet_string(b"hello\r\n")]),
    ]);
    let mut parts: Vec<Vec<u8>> = vec![
        asn1::small_int(1),
        asn1::constructed(asn1::TAG_SET, &[&digest_alg]),
        encap,
    ];
    if certs > 0 {
        parts.push(asn1::context_constructed(0, &[&cert.repeat(certs)]));
    }
    if crls == usize::MAX {
        parts.push(asn1::context_primitive(2, b"x"));
    } else if crls > 0 {
        parts.push(asn1::context_constructed(
            1,
            &[&asn1::seq(&[]).repeat(crls)],
        ));
    }
    parts.push(asn1::constructed(asn1::TAG_SET, &[&si.repeat(signers)]));
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    content_info(ID_SIGNED_DATA, &asn1::seq(&refs))
}

/// EnvelopedData with `n` key-transport recipients named by key identifiers no key has.
fn enveloped_data(n: usize) -> Vec<u8> {
    let alg = asn1::seq(&[&oid("1.2.840.113549.1.1.1"), &asn1::null()]);
    let mut ris = Vec::new();
    for i in 0..n as u32 {
        let mut ski = [0x5au8; 20];
        ski[..4].copy_from_slice(&i.to_be_bytes());
        ris.extend(asn1::seq(&[
            &asn1::small_int(2),
            &asn1::context_primitive(0, &ski),
            &alg,
            &asn1::octet_string(&[0xa5; 256]),
        ]));
    }
    let eci = asn1::seq(&[
        &oid(ID_DATA),
        &asn1::seq(&[
            &oid("2.16.840.1.101.3.4.1.42"),
            &asn1::octet_string(&[7; 16]),
        ]),
        &asn1::context_primitive(0, &[9; 32]),
    ]);
    let ed = asn1::seq(&[
        &asn1::small_int(2),
        &asn1::constructed(asn1::TAG_SET, &[&ris]),
        &eci,
    ]);
    content_info("1.2.840.113549.1.7.3", &ed)
}

/// Hostile inputs beyond the limits on input (README "Limits on input") and more damaged
/// structures.
fn hostile_setup(w: &Work, opaque: &[u8], signed: &[u8], boundary: &str) {
    let limits = smimekit_pki::LIMITS;
    let cert = der_of(&pki("alice.pem"));
    // 1,001 header fields.
    let mut m = Vec::new();
    for i in 0..=limits.mime_header_fields {
        m.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    m.extend_from_slice(b"\r\nbody\r\n");
    w.write("many-headers.eml", &m);
    // One header field folded over 64 KiB.
    let mut m = b"Subject: a\r\n".to_vec();
    for _ in 0..1100 {
        m.extend_from_slice(&[b' '; 1]);
        m.extend(std::iter::repeat_n(b'f', 70));
        m.extend_from_slice(b"\r\n");
    }
    m.extend_from_slice(b"Content-Type: text/plain\r\n\r\nbody\r\n");
    w.write("folded-header.eml", &m);
    // A multipart of 10,001 parts around the signed message.
    let mut m = b"From: alice@example.org\r\nContent-Type: multipart/mixed; boundary=\"p\"\r\n\r\n"
        .to_vec();
    for _ in 0..=limits.mime_parts {
        m.extend_from_slice(b"--p\r\n\r\nx\r\n");
    }
    m.extend_from_slice(b"--p--\r\n");
    w.write("many-parts.eml", &m);
    // SignedData over the limits: SignerInfos, certificates, CRLs.
    w.write(
        "many-signers.p7m",
        &signed_data(limits.signer_infos + 1, 1, 0, &cert),
    );
    w.write(
        "many-certs.p7m",
        &signed_data(1, limits.certificates + 1, 0, &cert),
    );
    w.write("many-crls.p7m", &signed_data(1, 1, limits.crls + 1, &cert));
    // EnvelopedData over the recipient limit, and 65 recipients for a key alone.
    w.write(
        "many-recipients.p7m",
        &enveloped_data(limits.recipient_infos + 1),
    );
    w.write(
        "trial-recipients.p7m",
        &enveloped_data(limits.trial_decryptions + 1),
    );
    // BER nested deeper than the reader allows.
    w.write("deep-ber.p7m", &[0x30, 0x80].repeat(200));
    // A certs-only .p7b of 10,001 certificates.
    let many: Vec<smimekit_core::CertDer> = (0..=limits.container_certificates)
        .map(|_| smimekit_core::CertDer::new(cert.clone()))
        .collect();
    w.write("many-certs.p7b", &smimekit_pki::write_p7b(&many));
    // A certificate cut short, and a PEM certificate whose base64 is damaged.
    w.write("cut-cert.der", &cert[..cert.len() / 2]);
    let pem = std::fs::read_to_string(pki("alice.pem")).expect("alice.pem");
    w.write("bad-pem.pem", pem.replacen("MII", "M!I", 1).as_bytes());
    // The opaque message as raw DER, cut in half; and a SignedData with an unknown element.
    let (_, der) = split_body(opaque);
    w.write("cut-raw.p7m", &der[..der.len() / 2]);
    // An element SignedData does not have ([2] before the SignerInfos).
    let sd = signed_data(1, 1, usize::MAX, &cert);
    w.write("unknown-element.p7m", &sd);
    // A CMS type smimekit does not read (compressedData) and a detached signature alone.
    w.write(
        "compressed.p7m",
        &content_info(
            "1.2.840.113549.1.9.16.1.9",
            &asn1::seq(&[&asn1::small_int(0)]),
        ),
    );
    // A multipart/signed with its signature part missing.
    let text = String::from_utf8_lossy(signed).into_owned();
    let second = text
        .match_indices(&format!("--{boundary}"))
        .nth(1)
        .map(|(i, _)| i)
        .expect("second delimiter");
    w.write(
        "one-part.eml",
        format!("{}--{boundary}--\r\n", &text[..second]).as_bytes(),
    );
    // The signature part holding enveloped data instead.
    let sealed = w.read("sealed.eml");
    let (_, sealed_der) = split_body(&sealed);
    let (_, sig_der) = split_body(
        &signed[signed
            .windows(9)
            .position(|w| w == b"smime.p7s")
            .expect("p7s part")..signed.len() - boundary.len() - 8],
    );
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    w.write(
        "sig-not-signed.eml",
        text.replacen(&wrap64(&b64(&sig_der)), &wrap64(&b64(&sealed_der)), 1)
            .as_bytes(),
    );
    // smime.p7m in a transfer encoding smimekit does not decode.
    w.write(
        "uuencoded.eml",
        String::from_utf8_lossy(opaque)
            .replacen(
                "Content-Transfer-Encoding: base64",
                "Content-Transfer-Encoding: x-uuencode",
                1,
            )
            .as_bytes(),
    );
    // A PEM-armoured CMS whose base64 is damaged.
    w.write(
        "bad-pem.p7m",
        format!(
            "-----BEGIN PKCS7-----\n{}!!\n-----END PKCS7-----\n",
            b64(&der)
        )
        .as_bytes(),
    );
    // PKCS#12 files: 8,388,607 iterations (patched in place), and 300 bags.
    let dir = w.dir.path();
    let out = std::process::Command::new("openssl")
        .args([
            "pkcs12",
            "-export",
            "-inkey",
            &pki("alice.key"),
            "-in",
            &pki("alice.pem"),
        ])
        .args([
            "-passout",
            "pass:test",
            "-iter",
            "65536",
            "-maciter",
            "-out",
        ])
        .arg(dir.join("iter.p12"))
        .output()
        .expect("openssl pkcs12");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut p12 = w.read("iter.p12");
    let (from, to) = (
        [0x02u8, 0x03, 0x01, 0x00, 0x00],
        [0x02u8, 0x03, 0x7f, 0xff, 0xff],
    );
    for i in 0..=p12.len() - from.len() {
        if p12[i..i + from.len()] == from {
            p12[i..i + from.len()].copy_from_slice(&to);
        }
    }
    w.write("iterations.p12", &p12);
    let bag = asn1::seq(&[
        &oid("1.2.3.4"),
        &asn1::context_constructed(0, &[&asn1::null()]),
    ]);
    let safe = asn1::seq(&[&bag.repeat(limits.pkcs12_bags + 44)]);
    let auth_safe = asn1::seq(&[&content_info(ID_DATA, &asn1::octet_string(&safe))]);
    w.write(
        "many-bags.p12",
        &asn1::seq(&[
            &asn1::small_int(3),
            &content_info(ID_DATA, &asn1::octet_string(&auth_safe)),
        ]),
    );
}

/// Base64 in the 64-column lines `sign` writes (CRLF).
fn wrap64(b64: &str) -> String {
    b64.as_bytes()
        .chunks(64)
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// The DER of the first certificate of a PEM file.
fn der_of(pem_path: &str) -> Vec<u8> {
    let pem = std::fs::read(pem_path).expect("pem");
    smimekit_pki::load_certificates(&pem, pem_path).expect("certificate")[0]
        .as_bytes()
        .to_vec()
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
        v("plain message is not signed", &msg, 1, &["not signed"]),
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
        // --- limits on input (README "Limits on input") and damaged structures: 3
        v(
            "1,001 header fields",
            &p("many-headers.eml"),
            3,
            &[
                "too many header fields in one MIME entity",
                "more than 1000",
            ],
        ),
        v(
            "header field folded over 64 KiB",
            &p("folded-header.eml"),
            3,
            &["header too long", "header field"],
        ),
        v(
            "multipart of 10,001 parts",
            &p("many-parts.eml"),
            3,
            &["more than 10000 parts"],
        ),
        v(
            "65 SignerInfos",
            &p("many-signers.p7m"),
            3,
            &["too many SignerInfos in one SignedData", "more than 64"],
        ),
        v(
            "257 certificates in a SignedData",
            &p("many-certs.p7m"),
            3,
            &["too many certificates in one SignedData", "more than 256"],
        ),
        v(
            "65 CRLs in a SignedData",
            &p("many-crls.p7m"),
            3,
            &["too many CRLs in one SignedData", "more than 64"],
        ),
        case(
            "10,001 recipients",
            &[
                "decrypt",
                "--key",
                &alice_p12,
                "--in",
                &p("many-recipients.p7m"),
            ],
            3,
            &["too many RecipientInfos", "more than 10000"],
        ),
        case(
            "a key alone on 65 recipients",
            &[
                "decrypt",
                "--key",
                &pki("alice.key"),
                "--in",
                &p("trial-recipients.p7m"),
            ],
            3,
            &[
                "too many recipients to try a key without a certificate on",
                "more than 64",
            ],
        ),
        case(
            "key and certificate on 65 recipients none names",
            &[
                "decrypt",
                "--key",
                &alice_p12,
                "--in",
                &p("trial-recipients.p7m"),
            ],
            4,
            &["no key for any recipient"],
        ),
        v(
            "BER nested 200 deep",
            &p("deep-ber.p7m"),
            3,
            &["nesting deeper than 64"],
        ),
        case(
            "a .p7b of 10,001 certificates",
            &["cert", "show", &p("many-certs.p7b")],
            3,
            &[&p("many-certs.p7b"), "too many certificates in one file"],
        ),
        case(
            "--trust with 10,001 certificates",
            &[
                "verify",
                "--trust",
                &p("many-certs.p7b"),
                "--in",
                &p("signed.eml"),
            ],
            3,
            &[&p("many-certs.p7b"), "too many certificates in one file"],
        ),
        case(
            "PKCS#12 asking 8,388,607 iterations",
            &["keys", "list", "--store", &p("iterations.p12")],
            3,
            &[
                &p("iterations.p12"),
                "8388607 iterations",
                "more than the 1000000",
            ],
        ),
        case(
            "sign with that PKCS#12",
            &["sign", "--key", &p("iterations.p12"), "--in", &msg],
            3,
            &[&p("iterations.p12"), "8388607 iterations"],
        ),
        case(
            "PKCS#12 of 300 bags",
            &["keys", "list", "--store", &p("many-bags.p12")],
            3,
            &[&p("many-bags.p12"), "more than 256"],
        ),
        case(
            "cert show on a certificate cut short",
            &["cert", "show", &p("cut-cert.der")],
            3,
            &[&p("cut-cert.der")],
        ),
        case(
            "cert show on damaged PEM",
            &["cert", "show", &p("bad-pem.pem")],
            3,
            &[&p("bad-pem.pem")],
        ),
        case(
            "cert show on an empty file",
            &["cert", "show", &p("empty.eml")],
            3,
            &[&p("empty.eml"), "empty"],
        ),
        case(
            "encrypt to an empty certificate file",
            &["encrypt", "--to", &p("empty.eml"), "--in", &msg],
            3,
            &[&p("empty.eml"), "empty"],
        ),
        case(
            "--cert junk when verifying",
            &["verify", "--cert", &p("junk.bin"), "--in", &p("signed.eml")],
            3,
            &[&p("junk.bin")],
        ),
        case(
            "keys list on junk",
            &["keys", "list", "--store", &p("junk.bin")],
            3,
            &[&p("junk.bin")],
        ),
        v("raw CMS cut in half", &p("cut-raw.p7m"), 3, &["malformed"]),
        v(
            "unknown element in SignedData",
            &p("unknown-element.p7m"),
            3,
            &["unexpected element with tag 0x82 in SignedData"],
        ),
        v(
            "compressedData",
            &p("compressed.p7m"),
            3,
            &["unsupported", "CMS content type"],
        ),
        v(
            "multipart/signed without its signature part",
            &p("one-part.eml"),
            3,
            &["needs two parts"],
        ),
        v(
            "signature part holding enveloped data",
            &p("sig-not-signed.eml"),
            3,
            &["not signedData"],
        ),
        v(
            "smime.p7m in x-uuencode",
            &p("uuencoded.eml"),
            3,
            &["x-uuencode"],
        ),
        v(
            "PEM CMS with damaged base64",
            &p("bad-pem.p7m"),
            3,
            &["malformed"],
        ),
        v(
            "detached signature without its content",
            &p("detached.p7s"),
            3,
            &["detached signature without its content"],
        ),
    ]
}

#[test]
fn bad_input_table() {
    let w = setup();
    let cases = cases(&w);
    assert!(cases.len() >= 60, "{} cases", cases.len());
    let outputs = w.dir.path().join("outputs");
    std::fs::create_dir(&outputs).expect("mkdir outputs");
    let mut failures = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let mut args: Vec<&str> = c.args.iter().map(String::as_str).collect();
        // Nothing is written on a failure: every command that writes a file gets an --out,
        // which must not exist afterwards. That includes a verdict (exit 1): `verify` hands
        // out the content only when the message is validly signed.
        let out_path = outputs.join(format!("{i:02}.out")).display().to_string();
        let writes = matches!(
            args.first().copied(),
            Some("sign" | "encrypt" | "verify" | "decrypt" | "open")
        ) && !args.contains(&"--out");
        if writes {
            args.extend(["--out", &out_path]);
        }
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
        if writes && Path::new(&out_path).exists() {
            problems.push(format!("wrote {out_path}"));
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
    // Nor anything beside: the failed runs left no file (temporary or final) anywhere.
    let left: Vec<_> = std::fs::read_dir(&outputs)
        .expect("outputs")
        .chain(std::fs::read_dir(w.dir.path().join("a-dir")).expect("a-dir"))
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(left.is_empty(), "files written by failed runs: {left:?}");
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
