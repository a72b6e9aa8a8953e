//! Reading and writing certificate containers: PEM, DER certificate, PKCS#7 certs-only
//! (`.p7b`/`.p7c`, DER or BER) and Microsoft serialized stores (`.sst`).
//!
//! [`load_certificates`] sniffs the format from the bytes (never from the file name):
//!
//! 1. `00 00 00 00 'CERT'` → SST ([`crate::sst`]);
//! 2. a DER/BER SEQUENCE → a certificate if its first child is a SEQUENCE, a PKCS#7
//!    `ContentInfo` if it is an OBJECT IDENTIFIER (BER is normalised with
//!    [`crate::ber::ber_to_der`] first). Trailing NUL/whitespace padding is tolerated;
//! 3. text containing `-----BEGIN ` → PEM: every `CERTIFICATE`, `X509 CERTIFICATE`,
//!    `TRUSTED CERTIFICATE` (the OpenSSL trust auxiliary data is dropped), `PKCS7`,
//!    `PKCS #7 SIGNED DATA` and `CMS` block, in file order. Other blocks (keys, parameters)
//!    and text around blocks are ignored; a PEM file with only such blocks yields no
//!    certificates (an empty `Vec`, not an error). A `CERTIFICATE` block that actually holds
//!    PKCS#7 (a Windows export quirk) is read as PKCS#7.
//!
//! From PKCS#7 only `SignedData.certificates` is taken (any SignedData works, also a signed
//! message); attribute certificates and other choices are skipped, and the signature, if any,
//! is not checked. Certificates are returned byte-for-byte as stored (never re-encoded) and are
//! only checked for their structure down to the subjectPublicKeyInfo (so a CRL or a key is not
//! mistaken for a certificate); [`crate::certinfo::parse`] does the field-level parsing.
//!
//! Writers: [`write_pem`], [`write_p7b`] (DER certs-only SignedData, certificates in the given
//! order rather than DER SET OF order, so the leaf stays first) and [`crate::sst::write_sst`].

use base64::Engine as _;
use smimekit_core::CertDer;

use crate::asn1::{self, Asn1Error, Reader};
use crate::ber;
use crate::certinfo::{require, walk_text};
use crate::error::PkiError;
use crate::sst;

/// DER content octets of id-signedData (1.2.840.113549.1.7.2).
const OID_SIGNED_DATA: &[u8] = const_oid::db::rfc5911::ID_SIGNED_DATA.as_bytes();
/// DER content octets of id-data (1.2.840.113549.1.7.1).
const OID_DATA: &[u8] = const_oid::db::rfc5911::ID_DATA.as_bytes();

/// Loads every certificate from a container in any supported format. `name` (a file name or
/// other label) is used in error messages only.
/// More than [`crate::LIMITS`]`.container_certificates` certificates is an error.
pub fn load_certificates(bytes: &[u8], name: &str) -> Result<Vec<CertDer>, PkiError> {
    let certs = load_any(bytes, name)?;
    crate::LimitExceeded::check(
        "certificates in one file",
        certs.len(),
        crate::LIMITS.container_certificates,
    )
    .map_err(|e| PkiError::container(name, e.to_string()))?;
    Ok(certs)
}

fn load_any(bytes: &[u8], name: &str) -> Result<Vec<CertDer>, PkiError> {
    if bytes.is_empty() {
        return Err(PkiError::container(name, "empty input"));
    }
    if bytes.starts_with(&sst::SST_MAGIC) {
        let certs = sst::read_sst_certificates(bytes).map_err(|error| PkiError::Sst {
            name: name.to_string(),
            error,
        })?;
        for (i, c) in certs.iter().enumerate() {
            check_certificate_shape(c.as_bytes()).map_err(|reason| {
                PkiError::container(name, format!("SST certificate #{}: {reason}", i + 1))
            })?;
        }
        return Ok(certs);
    }
    if bytes[0] == 0x30 {
        return load_der(bytes, name);
    }
    if find(bytes, b"-----BEGIN ").is_some() {
        return load_pem(bytes, name);
    }
    Err(PkiError::container(
        name,
        format!(
            "not a certificate, PKCS#7 or SST container (first byte 0x{:02x})",
            bytes[0]
        ),
    ))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn is_padding(b: &[u8]) -> bool {
    b.iter()
        .all(|c| matches!(c, 0 | b' ' | b'\t' | b'\r' | b'\n'))
}

fn walk_err(name: &str, what: &str, e: Asn1Error) -> PkiError {
    PkiError::container(name, format!("{what}: {}", walk_text(&e)))
}

/// A DER (or BER) blob: a certificate or a PKCS#7 ContentInfo.
fn load_der(bytes: &[u8], name: &str) -> Result<Vec<CertDer>, PkiError> {
    let h = asn1::read_header(bytes, 0)
        .map_err(|_| PkiError::container(name, "truncated DER header"))?;
    match h.end() {
        Some(end) => {
            if end > bytes.len() {
                return Err(PkiError::container(
                    name,
                    format!(
                        "DER element length {} runs past end of file ({} bytes): truncated?",
                        h.len.unwrap_or(0),
                        bytes.len()
                    ),
                ));
            }
            if !is_padding(&bytes[end..]) {
                return Err(PkiError::container(
                    name,
                    format!(
                        "{} unexpected bytes after the DER element",
                        bytes.len() - end
                    ),
                ));
            }
            load_der_element(&bytes[..end], name)
        }
        None => {
            // Indefinite length: only PKCS#7 (BER) can look like this.
            let der = match ber::ber_to_der(bytes) {
                Ok(d) => d,
                Err(ber::BerError::TrailingData { offset, .. }) if is_padding(&bytes[offset..]) => {
                    ber::ber_to_der(&bytes[..offset]).map_err(|error| PkiError::Ber {
                        name: name.to_string(),
                        error,
                    })?
                }
                Err(error) => {
                    return Err(PkiError::Ber {
                        name: name.to_string(),
                        error,
                    });
                }
            };
            pkcs7_certificates(&der, name)
        }
    }
}

/// One complete definite-length element.
fn load_der_element(der: &[u8], name: &str) -> Result<Vec<CertDer>, PkiError> {
    if is_content_info(der) {
        if ber::needs_conversion(der) {
            let converted = ber::ber_to_der(der).map_err(|error| PkiError::Ber {
                name: name.to_string(),
                error,
            })?;
            return pkcs7_certificates(&converted, name);
        }
        return pkcs7_certificates(der, name);
    }
    check_certificate_shape(der).map_err(|reason| {
        PkiError::container(
            name,
            format!("not a certificate or PKCS#7 ContentInfo: {reason}"),
        )
    })?;
    Ok(vec![CertDer::new(der)])
}

/// True if `der` is a SEQUENCE whose first child is an OBJECT IDENTIFIER (ContentInfo).
fn is_content_info(der: &[u8]) -> bool {
    match asn1::read_header(der, 0) {
        Ok(h) => h.tag == 0x30 && der.get(h.content_start) == Some(&0x06),
        Err(_) => false,
    }
}

/// Checks the structure of a Certificate (see [`crate::certinfo`]), as a message.
pub(crate) fn check_certificate_shape(der: &[u8]) -> Result<(), String> {
    crate::certinfo::check_shape(der).map_err(|e| match e {
        PkiError::Certificate(reason) => reason,
        other => other.to_string(),
    })?;
    // Every nested element too: a certificate is DER, which the BER normaliser leaves as it
    // is. One with a broken nested element (an extension's SEQUENCE running past its parent)
    // or a constructed string, taken as it is from a DER file, would make every PKCS#7 written
    // with it unreadable, since PKCS#7 files are normalised (found by the `containers` fuzz
    // target).
    if ber::needs_conversion(der) {
        return Err(match ber::ber_to_der(der) {
            Err(e) => format!("not DER: {e}"),
            Ok(_) => "not DER: an indefinite length or a constructed string".into(),
        });
    }
    Ok(())
}

/// Extracts `SignedData.certificates` from a DER ContentInfo.
fn pkcs7_certificates(der: &[u8], name: &str) -> Result<Vec<CertDer>, PkiError> {
    let ci = asn1::parse_definite(der).map_err(|e| walk_err(name, "PKCS#7 ContentInfo", e))?;
    let mut els = ci.children();
    let oid = require(&mut els, "missing contentType")
        .map_err(|e| walk_err(name, "PKCS#7 ContentInfo", e))?;
    if oid.tag != 0x06 {
        return Err(PkiError::container(
            name,
            "PKCS#7 ContentInfo: contentType is not an OID",
        ));
    }
    if oid.content != OID_SIGNED_DATA {
        return Err(PkiError::container(
            name,
            format!(
                "PKCS#7 content type {} is not signedData (1.2.840.113549.1.7.2)",
                crate::certinfo::oid_to_string(oid.content)
            ),
        ));
    }
    let explicit = require(&mut els, "missing content")
        .map_err(|e| walk_err(name, "PKCS#7 ContentInfo", e))?;
    if explicit.tag != 0xA0 {
        return Err(PkiError::container(
            name,
            "PKCS#7 ContentInfo: content is not [0] EXPLICIT",
        ));
    }
    let sd = asn1::parse_definite(explicit.content)
        .map_err(|e| walk_err(name, "PKCS#7 SignedData", e))?;
    if sd.tag != 0x30 {
        return Err(PkiError::container(
            name,
            "PKCS#7 SignedData is not a SEQUENCE",
        ));
    }
    let mut els = sd.children();
    let sd_err = |e| walk_err(name, "PKCS#7 SignedData", e);
    let version = require(&mut els, "missing version").map_err(sd_err)?;
    let digests = require(&mut els, "missing digestAlgorithms").map_err(sd_err)?;
    let encap = require(&mut els, "missing encapContentInfo").map_err(sd_err)?;
    if version.tag != 0x02 || digests.tag != 0x31 || encap.tag != 0x30 {
        return Err(PkiError::container(
            name,
            "PKCS#7 SignedData: version, digestAlgorithms or encapContentInfo malformed",
        ));
    }
    let Some(set) = els.optional(0xA0).map_err(sd_err)? else {
        return Ok(Vec::new());
    };
    let mut certs = Vec::new();
    let mut items = set.children();
    let mut index = 0usize;
    while let Some(item) = items
        .next()
        .map_err(|e| walk_err(name, "PKCS#7 certificates", e))?
    {
        index += 1;
        // Only the plain `certificate` choice; [0] extendedCertificate, [1]/[2] attribute
        // certificates and [3] other formats are skipped.
        if item.tag != 0x30 {
            continue;
        }
        check_certificate_shape(item.raw).map_err(|reason| {
            PkiError::container(name, format!("PKCS#7 certificate #{index}: {reason}"))
        })?;
        certs.push(CertDer::new(item.raw));
    }
    Ok(certs)
}

const PKCS7_LABELS: &[&str] = &["PKCS7", "PKCS #7 SIGNED DATA", "CMS"];
const CERT_LABELS: &[&str] = &["CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE"];

fn trim_ascii(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if first.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if last.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    s
}

fn pem_label<'a>(line: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    line.strip_prefix(prefix)?.strip_suffix(b"-----")
}

fn load_pem(bytes: &[u8], name: &str) -> Result<Vec<CertDer>, PkiError> {
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    let mut certs = Vec::new();
    // (label, line number of BEGIN, base64 body) of the block being read.
    let mut open: Option<(String, usize, Vec<u8>)> = None;
    let mut saw_block = false;
    for (i, raw_line) in bytes.split(|b| *b == b'\n').enumerate() {
        let line_no = i + 1;
        let line = trim_ascii(raw_line);
        if let Some(label) = pem_label(line, b"-----BEGIN ") {
            if let Some((l, start, _)) = &open {
                return Err(PkiError::container(
                    name,
                    format!("line {line_no}: BEGIN inside the {l} block started at line {start}"),
                ));
            }
            open = Some((
                String::from_utf8_lossy(label).into_owned(),
                line_no,
                Vec::new(),
            ));
            saw_block = true;
            continue;
        }
        if let Some(label) = pem_label(line, b"-----END ") {
            let Some((l, start, body)) = open.take() else {
                return Err(PkiError::container(
                    name,
                    format!("line {line_no}: END without BEGIN"),
                ));
            };
            if label != l.as_bytes() {
                return Err(PkiError::container(
                    name,
                    format!(
                        "line {line_no}: END {} does not match BEGIN {l} at line {start}",
                        String::from_utf8_lossy(label)
                    ),
                ));
            }
            let wanted_cert = CERT_LABELS.contains(&l.as_str());
            let wanted_p7 = PKCS7_LABELS.contains(&l.as_str());
            if !wanted_cert && !wanted_p7 {
                continue;
            }
            let der = engine.decode(&body).map_err(|e| {
                PkiError::container(
                    name,
                    format!("PEM {l} block at line {start}: invalid base64: {e}"),
                )
            })?;
            let block_name = format!("{name} (PEM {l} block at line {start})");
            if der.is_empty() {
                return Err(PkiError::container(&block_name, "empty block"));
            }
            if wanted_p7 || is_content_info(&der) {
                certs.extend(load_der(&der, &block_name)?);
            } else if l == "TRUSTED CERTIFICATE" {
                // DER certificate followed by OpenSSL's X509_CERT_AUX: keep the certificate.
                let first = require(&mut Reader::definite(&der), "missing certificate")
                    .map_err(|e| walk_err(&block_name, "certificate", e))?;
                check_certificate_shape(first.raw)
                    .map_err(|r| PkiError::container(&block_name, r))?;
                certs.push(CertDer::new(first.raw));
            } else {
                check_certificate_shape(&der).map_err(|r| PkiError::container(&block_name, r))?;
                certs.push(CertDer::new(der));
            }
            continue;
        }
        if let Some((_, _, body)) = open.as_mut() {
            // RFC 1421 headers ("Proc-Type: ...") are skipped; they only occur in key blocks.
            if !line.contains(&b':') {
                body.extend(line.iter().filter(|b| !b.is_ascii_whitespace()));
            }
        }
    }
    if let Some((l, start, _)) = open {
        return Err(PkiError::container(
            name,
            format!("PEM {l} block at line {start} has no END line"),
        ));
    }
    if !saw_block {
        return Err(PkiError::container(name, "no complete PEM block found"));
    }
    Ok(certs)
}

/// Encodes certificates as concatenated PEM `CERTIFICATE` blocks (64-column base64, LF).
pub fn write_pem(certs: &[CertDer]) -> String {
    let engine = &base64::engine::general_purpose::STANDARD;
    let mut out = String::new();
    for c in certs {
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        let b64 = engine.encode(c.as_bytes());
        // Base64 output is ASCII, so splitting at any byte index is a char boundary.
        for chunk in b64.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(chunk));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}

/// Encodes certificates as a DER PKCS#7 certs-only SignedData (`.p7b`): version 1, no digest
/// algorithms, encapContentInfo id-data without content, the certificates in the given order,
/// no CRLs, no signers. With no certificates the optional `certificates` field is left out.
pub fn write_p7b(certs: &[CertDer]) -> Vec<u8> {
    let mut sd = Vec::new();
    asn1::push_tlv(&mut sd, 0x02, &[0x01]); // version 1
    asn1::push_tlv(&mut sd, 0x31, &[]); // digestAlgorithms
    let mut encap = Vec::new();
    asn1::push_tlv(&mut encap, 0x06, OID_DATA);
    asn1::push_tlv(&mut sd, 0x30, &encap);
    if !certs.is_empty() {
        let set: Vec<u8> = certs
            .iter()
            .flat_map(|c| c.as_bytes().iter().copied())
            .collect();
        asn1::push_tlv(&mut sd, 0xA0, &set);
    }
    asn1::push_tlv(&mut sd, 0x31, &[]); // signerInfos
    let mut sd_seq = Vec::with_capacity(sd.len() + 8);
    asn1::push_tlv(&mut sd_seq, 0x30, &sd);
    let mut ci = Vec::with_capacity(sd_seq.len() + 24);
    asn1::push_tlv(&mut ci, 0x06, OID_SIGNED_DATA);
    asn1::push_tlv(&mut ci, 0xA0, &sd_seq);
    let mut out = Vec::with_capacity(ci.len() + 8);
    asn1::push_tlv(&mut out, 0x30, &ci);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::testcert::cert;

    fn certs() -> Vec<CertDer> {
        vec![
            CertDer::new(cert(&[0x01], "CA", "Alice", &[])),
            CertDer::new(cert(&[0x02], "CA", "Bob", &[])),
        ]
    }

    fn b64(der: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(der)
    }

    fn err(bytes: &[u8], name: &str) -> String {
        load_certificates(bytes, name).unwrap_err().to_string()
    }

    #[test]
    fn der_certificate_and_padding() {
        let c = certs();
        assert_eq!(
            load_certificates(c[0].as_bytes(), "a.cer").unwrap(),
            vec![c[0].clone()]
        );
        let mut padded = c[0].as_bytes().to_vec();
        padded.extend_from_slice(b"\r\n\0\0");
        assert_eq!(
            load_certificates(&padded, "a.cer").unwrap(),
            vec![c[0].clone()]
        );
        let mut junk = c[0].as_bytes().to_vec();
        junk.push(b'x');
        assert!(err(&junk, "a.cer").starts_with("a.cer: 1 unexpected bytes"));
        let truncated = &c[0].as_bytes()[..20];
        assert!(err(truncated, "a.cer").contains("runs past end of file"));
    }

    #[test]
    fn unknown_formats_name_the_source_and_first_byte() {
        assert_eq!(
            err(b"hello", "alice.p7b"),
            "alice.p7b: not a certificate, PKCS#7 or SST container (first byte 0x68)"
        );
        assert_eq!(err(b"", "x"), "x: empty input");
        // A SEQUENCE that is neither a certificate nor a ContentInfo.
        let e = err(&[0x30, 0x03, 0x02, 0x01, 0x00], "k.der");
        assert!(
            e.starts_with("k.der: not a certificate or PKCS#7 ContentInfo"),
            "{e}"
        );
        // SST errors carry the offset.
        let mut sst_bytes = crate::sst::SST_MAGIC.to_vec();
        sst_bytes.extend_from_slice(&[32, 0, 0, 0, 1, 0, 0, 0, 0x9F, 0x86, 0x01, 0x00]);
        assert_eq!(
            err(&sst_bytes, "u.sst"),
            "u.sst: SST: offset 8: element length 99999 runs past end of file (20 bytes)"
        );
        // A structurally valid store holding something that is not a certificate.
        let junk = crate::sst::write_sst(&[certs()[0].clone(), CertDer::new(vec![0x30, 0x00])]);
        let e = err(&junk, "j.sst");
        assert!(e.starts_with("j.sst: SST certificate #2: "), "{e}");
    }

    #[test]
    fn pkcs7_der_ber_and_non_signed_data() {
        let c = certs();
        let p7 = write_p7b(&c);
        assert_eq!(load_certificates(&p7, "a.p7b").unwrap(), c);
        // Same structure with indefinite lengths everywhere (as Windows writes).
        let mut sd = Vec::new();
        sd.extend_from_slice(&[0x02, 0x01, 0x01, 0x31, 0x00, 0x30, 0x80, 0x06, 0x09]);
        sd.extend_from_slice(OID_DATA);
        sd.extend_from_slice(&[0x00, 0x00, 0xA0, 0x80]);
        for x in &c {
            sd.extend_from_slice(x.as_bytes());
        }
        sd.extend_from_slice(&[0x00, 0x00, 0x31, 0x00]);
        let mut ber_p7 = vec![0x30, 0x80, 0x06, 0x09];
        ber_p7.extend_from_slice(OID_SIGNED_DATA);
        ber_p7.extend_from_slice(&[0xA0, 0x80, 0x30, 0x80]);
        ber_p7.extend_from_slice(&sd);
        ber_p7.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        assert_eq!(load_certificates(&ber_p7, "w.p7b").unwrap(), c);
        let mut padded = ber_p7.clone();
        padded.extend_from_slice(b"\n\0");
        assert_eq!(load_certificates(&padded, "w.p7b").unwrap(), c);
        let e = err(&ber_p7[..ber_p7.len() - 3], "w.p7b");
        assert!(e.starts_with("w.p7b: BER: "), "{e}");
        // envelopedData is refused with its OID named.
        let mut env = vec![0x30, 0x0F, 0x06, 0x09];
        env.extend_from_slice(&[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x03]);
        env.extend_from_slice(&[0xA0, 0x02, 0x30, 0x00]);
        assert_eq!(
            err(&env, "e.p7m"),
            "e.p7m: PKCS#7 content type 1.2.840.113549.1.7.3 is not signedData (1.2.840.113549.1.7.2)"
        );
        // A certificates set with a bogus certificate names its index.
        let mut bogus = c.clone();
        bogus.push(CertDer::new(vec![0x30, 0x00]));
        let e = err(&write_p7b(&bogus), "b.p7b");
        assert!(e.starts_with("b.p7b: PKCS#7 certificate #3: "), "{e}");
    }

    #[test]
    fn pem_variants() {
        let c = certs();
        let p7 = write_p7b(&c);
        let text = format!(
            "Bag Attributes\n    friendlyName: x\n-----BEGIN TRUSTED CERTIFICATE-----\n{}\n-----END TRUSTED CERTIFICATE-----\n\
             -----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\nAAAA\n-----END RSA PRIVATE KEY-----\n\
             -----BEGIN X509 CERTIFICATE-----\n{}\n-----END X509 CERTIFICATE-----\n\
             -----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            // Trusted certificate: DER followed by auxiliary trust data.
            b64(&[c[0].as_bytes(), &[0x30, 0x00]].concat()),
            b64(c[1].as_bytes()),
            // A CERTIFICATE block that really holds PKCS#7.
            b64(&p7),
        );
        let got = load_certificates(text.as_bytes(), "mix.pem").unwrap();
        assert_eq!(
            got,
            vec![c[0].clone(), c[1].clone(), c[0].clone(), c[1].clone()]
        );
        // Only a key: no certificates, not an error.
        let key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(
            load_certificates(key.as_bytes(), "k.pem")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn pem_errors() {
        let e = err(b"-----BEGIN CERTIFICATE-----\nAAAA\n", "a.pem");
        assert_eq!(e, "a.pem: PEM CERTIFICATE block at line 1 has no END line");
        let e = err(
            b"x\n-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
            "a.pem",
        );
        assert!(
            e.starts_with("a.pem: PEM CERTIFICATE block at line 2: invalid base64"),
            "{e}"
        );
        let e = err(
            b"-----BEGIN CERTIFICATE-----\n-----END PKCS7-----\n",
            "a.pem",
        );
        assert!(e.contains("does not match BEGIN CERTIFICATE"), "{e}");
        let e = err(
            b"-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n",
            "a.pem",
        );
        assert!(
            e.starts_with("a.pem (PEM CERTIFICATE block at line 1): "),
            "{e}"
        );
        let e = err(
            b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
            "a.pem",
        );
        assert!(e.ends_with("empty block"), "{e}");
        let e = err(b"text -----BEGIN nothing", "a.pem");
        assert_eq!(e, "a.pem: no complete PEM block found");
    }

    #[test]
    fn writers() {
        let c = certs();
        let pem = write_pem(&c);
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert_eq!(pem.matches("-----END CERTIFICATE-----\n").count(), 2);
        assert_eq!(load_certificates(pem.as_bytes(), "w.pem").unwrap(), c);
        assert_eq!(write_pem(&[]), "");
        // Certs-only SignedData: version 1, empty digest set, id-data without content.
        let p7 = write_p7b(&c);
        assert!(!ber::needs_conversion(&p7));
        let empty = write_p7b(&[]);
        let mut want = vec![0x30, 0x23, 0x06, 0x09];
        want.extend_from_slice(OID_SIGNED_DATA);
        want.extend_from_slice(&[
            0xA0, 0x16, 0x30, 0x14, 0x02, 0x01, 0x01, 0x31, 0x00, 0x30, 0x0B, 0x06, 0x09,
        ]);
        want.extend_from_slice(OID_DATA);
        want.extend_from_slice(&[0x31, 0x00]);
        assert_eq!(empty, want);
    }

    #[test]
    fn hostile_inputs_never_panic() {
        let c = certs();
        let samples = [
            write_p7b(&c),
            write_pem(&c).into_bytes(),
            crate::sst::write_sst(&c),
            c[0].as_bytes().to_vec(),
        ];
        for s in &samples {
            for cut in 0..s.len() {
                let _ = load_certificates(&s[..cut], "t");
            }
            for i in (0..s.len()).step_by(3) {
                for v in [0x00, 0x24, 0x30, 0x80, 0xA0, 0xFF] {
                    let mut m = s.clone();
                    m[i] = v;
                    let _ = load_certificates(&m, "m");
                }
            }
        }
    }
}
