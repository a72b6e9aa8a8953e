//! Certificate facts: the fields smimekit shows, matches and publishes.
//!
//! [`parse`] walks the certificate's DER with a lenient, bounds-checked reader instead of a
//! strict typed decoder, so real-world oddities — negative or over-long serial numbers,
//! TeletexString/BMPString names, UTCTime before 1970, UTCTime without seconds or with an
//! offset, non-ASCII bytes in an rfc822Name, explicitly encoded `critical FALSE` — are read
//! (strings lossily) instead of rejected. Raw encodings are preserved for the things that must
//! match byte-for-byte elsewhere: [`issuer_and_serial`] (CMS IssuerAndSerialNumber) and
//! [`spki_der`].
//!
//! What it deliberately does **not** do: verify signatures, validate chains, check validity
//! against a clock, enforce RFC 5280 profile rules, or interpret extensions beyond those listed
//! on [`CertInfo`]. Names are rendered in RFC 4514 order (most specific RDN first) with
//! OpenSSL-style short names (`CN`, `O`, `emailAddress`, …) and RFC 4514 escaping; attribute
//! types without a short name are shown as dotted OIDs.

use serde::Serialize;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use smimekit_core::CertDer;

use crate::asn1::{self, Asn1Error, Reader, Tlv};
use crate::error::PkiError;

/// KeyUsage bits (RFC 5280 §4.2.1.3); bit 0 is `digitalSignature`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyUsageBits(pub u16);

impl KeyUsageBits {
    pub const DIGITAL_SIGNATURE: u16 = 1 << 0;
    pub const NON_REPUDIATION: u16 = 1 << 1;
    pub const KEY_ENCIPHERMENT: u16 = 1 << 2;
    pub const DATA_ENCIPHERMENT: u16 = 1 << 3;
    pub const KEY_AGREEMENT: u16 = 1 << 4;
    pub const KEY_CERT_SIGN: u16 = 1 << 5;
    pub const CRL_SIGN: u16 = 1 << 6;
    pub const ENCIPHER_ONLY: u16 = 1 << 7;
    pub const DECIPHER_ONLY: u16 = 1 << 8;

    const NAMES: [&'static str; 9] = [
        "digitalSignature",
        "nonRepudiation",
        "keyEncipherment",
        "dataEncipherment",
        "keyAgreement",
        "keyCertSign",
        "cRLSign",
        "encipherOnly",
        "decipherOnly",
    ];

    pub fn contains(self, bit: u16) -> bool {
        self.0 & bit != 0
    }

    /// RFC 5280 names of the bits set, in bit order.
    pub fn names(self) -> Vec<&'static str> {
        Self::NAMES
            .iter()
            .enumerate()
            .filter(|(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, n)| *n)
            .collect()
    }
}

impl Serialize for KeyUsageBits {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.names().serialize(s)
    }
}

/// What smimekit knows about a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CertInfo {
    /// Subject DN, RFC 4514 order, e.g. `CN=Alice,O=Example,C=US`.
    pub subject: String,
    pub issuer: String,
    /// Serial number as uppercase hex of the INTEGER content octets (two's complement, leading
    /// `00` kept) — the form Windows/.NET and Exchange show.
    pub serial_hex: String,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// SAN rfc822Names, then subject emailAddress values; duplicates (ignoring ASCII case)
    /// dropped.
    pub emails: Vec<String>,
    /// SAN rfc822Names alone, as written: the addresses a mail client matches a sender against
    /// (the subject's emailAddress only counts when there are none; see [`mail_addresses`]).
    #[serde(skip)]
    pub san_emails: Vec<String>,
    /// SAN dNSNames.
    pub dns_names: Vec<String>,
    /// SHA-1 of the DER, uppercase hex (Exchange's `Thumbprint`).
    pub sha1_thumbprint: String,
    /// SHA-256 of the DER, lowercase hex.
    pub sha256_fingerprint: String,
    pub subject_key_id: Option<Vec<u8>>,
    pub key_usage: Option<KeyUsageBits>,
    pub key_usage_critical: bool,
    /// Dotted OIDs, in certificate order.
    pub extended_key_usage: Option<Vec<String>>,
    /// basicConstraints cA.
    pub is_ca: bool,
    /// Dotted OID of the subjectPublicKeyInfo algorithm.
    pub public_key_algorithm: String,
    /// Dotted OID of the certificate's signatureAlgorithm.
    pub signature_algorithm: String,
    /// Issuer equals subject (same DER, or same rendered DN).
    pub self_signed: bool,
}

/// The raw pieces of a certificate, borrowed from its DER.
struct RawCert<'a> {
    tbs: Tlv<'a>,
    serial: Tlv<'a>,
    issuer: Tlv<'a>,
    subject: Tlv<'a>,
    not_before: Tlv<'a>,
    not_after: Tlv<'a>,
    spki: Tlv<'a>,
    signature_alg: Tlv<'a>,
    extensions: Option<Tlv<'a>>,
}

/// A structural error of the definite-length walk, as `"<reason> at offset <n>"` (offsets
/// relative to the slice being walked).
pub(crate) fn walk_text(e: &Asn1Error) -> String {
    match e {
        Asn1Error::Truncated { offset } => format!("truncated element header at offset {offset}"),
        Asn1Error::Invalid { offset, detail } => format!("{detail} at offset {offset}"),
        other => other.to_string(),
    }
}

/// The next element, which must exist; `what` is the reason given if it does not.
pub(crate) fn require<'a>(r: &mut Reader<'a>, what: &str) -> Result<Tlv<'a>, Asn1Error> {
    let offset = r.position();
    r.next()?.ok_or_else(|| Asn1Error::Invalid {
        offset,
        detail: what.into(),
    })
}

fn bad(what: &str, e: Asn1Error) -> PkiError {
    PkiError::Certificate(format!("{what}: {}", walk_text(&e)))
}

fn expect_tag(t: Tlv<'_>, tag: u8, what: &str) -> Result<(), PkiError> {
    if t.tag == tag {
        Ok(())
    } else {
        Err(PkiError::Certificate(format!(
            "{what}: expected tag 0x{tag:02x}, found 0x{:02x}",
            t.tag
        )))
    }
}

fn split(der: &[u8]) -> Result<RawCert<'_>, PkiError> {
    let outer = asn1::parse_definite(der).map_err(|e| bad("certificate", e))?;
    expect_tag(outer, 0x30, "certificate")?;
    let mut top = outer.children();
    let tbs = require(&mut top, "missing tbsCertificate").map_err(|e| bad("certificate", e))?;
    expect_tag(tbs, 0x30, "tbsCertificate")?;
    let signature_alg =
        require(&mut top, "missing signatureAlgorithm").map_err(|e| bad("certificate", e))?;
    expect_tag(signature_alg, 0x30, "signatureAlgorithm")?;
    let signature =
        require(&mut top, "missing signatureValue").map_err(|e| bad("certificate", e))?;
    expect_tag(signature, 0x03, "signatureValue")?;
    if !top.is_empty() {
        return Err(PkiError::Certificate(
            "extra data after signatureValue".into(),
        ));
    }

    let mut f = tbs.children();
    let e = |x| bad("tbsCertificate", x);
    f.optional(0xA0).map_err(e)?; // version
    let serial = require(&mut f, "missing serialNumber").map_err(e)?;
    expect_tag(serial, 0x02, "serialNumber")?;
    let sig = require(&mut f, "missing signature").map_err(e)?;
    expect_tag(sig, 0x30, "signature")?;
    let issuer = require(&mut f, "missing issuer").map_err(e)?;
    expect_tag(issuer, 0x30, "issuer")?;
    let validity = require(&mut f, "missing validity").map_err(e)?;
    expect_tag(validity, 0x30, "validity")?;
    let subject = require(&mut f, "missing subject").map_err(e)?;
    expect_tag(subject, 0x30, "subject")?;
    let spki = require(&mut f, "missing subjectPublicKeyInfo").map_err(e)?;
    expect_tag(spki, 0x30, "subjectPublicKeyInfo")?;
    let mut extensions = None;
    while let Some(t) = f.next().map_err(e)? {
        // [1] issuerUniqueID and [2] subjectUniqueID (primitive or, rarely, constructed) are
        // skipped; [3] holds the extensions.
        if t.tag == 0xA3 {
            extensions = Some(t);
        }
    }
    let mut v = validity.children();
    let not_before = require(&mut v, "missing notBefore").map_err(|x| bad("validity", x))?;
    let not_after = require(&mut v, "missing notAfter").map_err(|x| bad("validity", x))?;
    Ok(RawCert {
        tbs,
        serial,
        issuer,
        subject,
        not_before,
        not_after,
        spki,
        signature_alg,
        extensions,
    })
}

/// Checks that `der` has the structure of a Certificate down to the subjectPublicKeyInfo
/// (the cheap test [`crate::container`] applies to everything it returns).
pub(crate) fn check_shape(der: &[u8]) -> Result<(), PkiError> {
    split(der).map(|_| ())
}

/// The issuer Name (complete DER, tag included, exactly as in the certificate) and the serial
/// number INTEGER content octets — the two halves of a CMS `IssuerAndSerialNumber`.
pub fn issuer_and_serial(cert: &CertDer) -> Result<(Vec<u8>, Vec<u8>), PkiError> {
    let raw = split(cert.as_bytes())?;
    Ok((raw.issuer.raw.to_vec(), raw.serial.content.to_vec()))
}

/// The validity period (notBefore, notAfter; Unix seconds) alone: what [`parse`] gives in
/// `not_before`/`not_after`, without formatting names or reading extensions (plan asks it of
/// every wanted certificate).
pub fn validity(cert: &CertDer) -> Result<(i64, i64), PkiError> {
    let raw = split(cert.as_bytes())?;
    let not_before =
        parse_time(raw.not_before).map_err(|r| PkiError::Certificate(format!("notBefore: {r}")))?;
    let not_after =
        parse_time(raw.not_after).map_err(|r| PkiError::Certificate(format!("notAfter: {r}")))?;
    Ok((not_before, not_after))
}

/// The subjectPublicKeyInfo, complete DER exactly as in the certificate.
pub fn spki_der(cert: &CertDer) -> Result<Vec<u8>, PkiError> {
    Ok(split(cert.as_bytes())?.spki.raw.to_vec())
}

/// The TBSCertificate, complete DER exactly as in the certificate (what the signature covers).
pub fn tbs_der(cert: &CertDer) -> Result<Vec<u8>, PkiError> {
    Ok(split(cert.as_bytes())?.tbs.raw.to_vec())
}

/// The address to show or match for a certificate: the first e-mail, else the subject DN.
pub fn primary_address(info: &CertInfo) -> String {
    info.emails
        .first()
        .cloned()
        .unwrap_or_else(|| info.subject.clone())
}

/// The addresses a signer's certificate vouches for, as Thunderbird and Outlook match a
/// message's sender: the subjectAltName rfc822Names, else the subject's emailAddress values.
pub fn mail_addresses(info: &CertInfo) -> &[String] {
    if info.san_emails.is_empty() {
        &info.emails
    } else {
        &info.san_emails
    }
}

/// Parses the facts of a certificate.
/// The SHA-1 thumbprint of a certificate's bytes, uppercase hex (Exchange's `Thumbprint`),
/// without parsing it: what [`CertInfo::sha1_thumbprint`] holds.
pub fn sha1_thumbprint(der: &[u8]) -> String {
    hex::encode_upper(Sha1::digest(der))
}

pub fn parse(cert: &CertDer) -> Result<CertInfo, PkiError> {
    let der = cert.as_bytes();
    let raw = split(der)?;
    let subject = format_name(raw.subject.raw)?;
    let issuer = format_name(raw.issuer.raw)?;
    let not_before =
        parse_time(raw.not_before).map_err(|r| PkiError::Certificate(format!("notBefore: {r}")))?;
    let not_after =
        parse_time(raw.not_after).map_err(|r| PkiError::Certificate(format!("notAfter: {r}")))?;

    let mut spki = raw.spki.children();
    let spki_alg =
        require(&mut spki, "missing algorithm").map_err(|e| bad("subjectPublicKeyInfo", e))?;
    let public_key_algorithm = algorithm_oid(spki_alg, "subjectPublicKeyInfo algorithm")?;
    let signature_algorithm = algorithm_oid(raw.signature_alg, "signatureAlgorithm")?;

    let mut info = CertInfo {
        self_signed: raw.issuer.raw == raw.subject.raw || issuer == subject,
        subject,
        issuer,
        serial_hex: hex::encode_upper(raw.serial.content),
        not_before,
        not_after,
        emails: Vec::new(),
        san_emails: Vec::new(),
        dns_names: Vec::new(),
        sha1_thumbprint: hex::encode_upper(Sha1::digest(der)),
        sha256_fingerprint: hex::encode(Sha256::digest(der)),
        subject_key_id: None,
        key_usage: None,
        key_usage_critical: false,
        extended_key_usage: None,
        is_ca: false,
        public_key_algorithm,
        signature_algorithm,
    };
    if let Some(exts) = raw.extensions {
        read_extensions(exts, &mut info)?;
    }
    for v in name_values(raw.subject.raw, OID_EMAIL_ADDRESS)? {
        info.emails.push(v);
    }
    let mut seen = std::collections::HashSet::new();
    info.emails.retain(|e| seen.insert(e.to_ascii_lowercase()));
    Ok(info)
}

fn algorithm_oid(alg: Tlv<'_>, what: &str) -> Result<String, PkiError> {
    expect_tag(alg, 0x30, what)?;
    let oid = require(&mut alg.children(), "missing algorithm OID").map_err(|e| bad(what, e))?;
    expect_tag(oid, 0x06, what)?;
    Ok(oid_to_string(oid.content))
}

const OID_EMAIL_ADDRESS: &[u8] = const_oid::db::rfc3280::EMAIL_ADDRESS.as_bytes();
const OID_SKI: &[u8] = const_oid::db::rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER.as_bytes();
const OID_KU: &[u8] = const_oid::db::rfc5280::ID_CE_KEY_USAGE.as_bytes();
const OID_SAN: &[u8] = const_oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME.as_bytes();
const OID_BC: &[u8] = const_oid::db::rfc5280::ID_CE_BASIC_CONSTRAINTS.as_bytes();
const OID_EKU: &[u8] = const_oid::db::rfc5280::ID_CE_EXT_KEY_USAGE.as_bytes();

fn read_extensions(exts: Tlv<'_>, info: &mut CertInfo) -> Result<(), PkiError> {
    let e = |x| bad("extensions", x);
    let seq = asn1::parse_definite(exts.content).map_err(e)?;
    expect_tag(seq, 0x30, "extensions")?;
    let mut list = seq.children();
    let mut seen: Vec<&[u8]> = Vec::new();
    while let Some(ext) = list.next().map_err(e)? {
        expect_tag(ext, 0x30, "extension")?;
        let mut f = ext.children();
        let oid = require(&mut f, "missing extnID").map_err(e)?;
        expect_tag(oid, 0x06, "extnID")?;
        let mut next = require(&mut f, "missing extnValue").map_err(e)?;
        let mut critical = false;
        if next.tag == 0x01 {
            // Lenient BOOLEAN: any non-zero octet is TRUE (BER), explicit FALSE accepted.
            critical = next.content.iter().any(|b| *b != 0);
            next = require(&mut f, "missing extnValue").map_err(e)?;
        }
        expect_tag(next, 0x04, "extnValue")?;
        // RFC 5280 forbids duplicates; the first occurrence wins.
        if seen.contains(&oid.content) {
            continue;
        }
        seen.push(oid.content);
        let value = next.content;
        // The extension's name is only formatted for an error.
        let ve = |x| bad(&format!("extension {}", oid_to_string(oid.content)), x);
        match oid.content {
            OID_SKI => {
                let t = asn1::parse_definite(value).map_err(ve)?;
                expect_tag(t, 0x04, "subjectKeyIdentifier")?;
                info.subject_key_id = Some(t.content.to_vec());
            }
            OID_KU => {
                let t = asn1::parse_definite(value).map_err(ve)?;
                expect_tag(t, 0x03, "keyUsage")?;
                info.key_usage = Some(KeyUsageBits(key_usage_bits(t.content)));
                info.key_usage_critical = critical;
            }
            OID_EKU => {
                let t = asn1::parse_definite(value).map_err(ve)?;
                expect_tag(t, 0x30, "extKeyUsage")?;
                let mut oids = Vec::new();
                let mut it = t.children();
                while let Some(o) = it.next().map_err(ve)? {
                    expect_tag(o, 0x06, "extKeyUsage purpose")?;
                    oids.push(oid_to_string(o.content));
                }
                info.extended_key_usage = Some(oids);
            }
            OID_BC => {
                let t = asn1::parse_definite(value).map_err(ve)?;
                expect_tag(t, 0x30, "basicConstraints")?;
                let mut it = t.children();
                if let Some(b) = it.optional(0x01).map_err(ve)? {
                    info.is_ca = b.content.iter().any(|x| *x != 0);
                }
            }
            OID_SAN => {
                let t = asn1::parse_definite(value).map_err(ve)?;
                expect_tag(t, 0x30, "subjectAltName")?;
                let mut it = t.children();
                while let Some(gn) = it.next().map_err(ve)? {
                    match gn.tag {
                        0x81 => {
                            info.emails.push(lossy_ascii(gn.content));
                            info.san_emails.push(lossy_ascii(gn.content));
                        }
                        0x82 => info.dns_names.push(lossy_ascii(gn.content)),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// KeyUsage BIT STRING content → bits with bit 0 = digitalSignature.
fn key_usage_bits(content: &[u8]) -> u16 {
    // content[0] is the unused-bits count; named bits are numbered from the MSB of content[1].
    let mut bits = 0u16;
    for (byte_i, byte) in content.iter().skip(1).take(2).enumerate() {
        for bit in 0..8 {
            if byte & (0x80 >> bit) != 0 {
                bits |= 1 << (byte_i * 8 + bit);
            }
        }
    }
    bits
}

/// IA5 text that might not be: UTF-8 if valid, else each byte as a Latin-1 character.
fn lossy_ascii(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_string(),
        Err(_) => b.iter().map(|c| char::from(*c)).collect(),
    }
}

/// Dotted-decimal form of OID content octets. Malformed encodings are shown as
/// `invalid-oid:<hex>` rather than rejected.
pub fn oid_to_string(content: &[u8]) -> String {
    fn arcs(content: &[u8]) -> Option<Vec<u128>> {
        let mut out = Vec::new();
        let mut v: u128 = 0;
        let mut in_arc = false;
        for b in content {
            if !in_arc && *b == 0x80 {
                return None; // non-minimal arc encoding
            }
            v = v.checked_mul(128)? | u128::from(b & 0x7F);
            in_arc = b & 0x80 != 0;
            if !in_arc {
                out.push(v);
                v = 0;
            }
        }
        if in_arc || out.is_empty() {
            return None;
        }
        Some(out)
    }
    let Some(a) = arcs(content) else {
        return format!("invalid-oid:{}", hex::encode(content));
    };
    let (first, second) = match a[0] {
        x if x < 40 => (0, x),
        x if x < 80 => (1, x - 40),
        x => (2, x - 80),
    };
    let mut s = format!("{first}.{second}");
    for arc in &a[1..] {
        s.push('.');
        s.push_str(&arc.to_string());
    }
    s
}

/// Short names for DN attribute types (OpenSSL's, which the corpus and Windows tools share).
fn attribute_short_name(oid: &[u8]) -> Option<&'static str> {
    // 2.5.4.x
    if let [0x55, 0x04, x] = oid {
        return Some(match x {
            3 => "CN",
            4 => "SN",
            5 => "serialNumber",
            6 => "C",
            7 => "L",
            8 => "ST",
            9 => "STREET",
            10 => "O",
            11 => "OU",
            12 => "title",
            13 => "description",
            15 => "businessCategory",
            17 => "postalCode",
            41 => "name",
            42 => "GN",
            43 => "initials",
            44 => "generationQualifier",
            46 => "dnQualifier",
            65 => "pseudonym",
            97 => "organizationIdentifier",
            _ => return None,
        });
    }
    Some(match oid {
        OID_EMAIL_ADDRESS => "emailAddress",
        // 0.9.2342.19200300.100.1.25 / .1
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xF2, 0x2C, 0x64, 0x01, 0x19] => "DC",
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xF2, 0x2C, 0x64, 0x01, 0x01] => "UID",
        // 1.3.6.1.4.1.311.60.2.1.{1,2,3}: EV jurisdiction attributes
        [
            0x2B,
            0x06,
            0x01,
            0x04,
            0x01,
            0x82,
            0x37,
            0x3C,
            0x02,
            0x01,
            0x01,
        ] => "jurisdictionL",
        [
            0x2B,
            0x06,
            0x01,
            0x04,
            0x01,
            0x82,
            0x37,
            0x3C,
            0x02,
            0x01,
            0x02,
        ] => "jurisdictionST",
        [
            0x2B,
            0x06,
            0x01,
            0x04,
            0x01,
            0x82,
            0x37,
            0x3C,
            0x02,
            0x01,
            0x03,
        ] => "jurisdictionC",
        _ => return None,
    })
}

/// Decodes a directory string value by its tag. `None` for types that are not strings.
fn decode_string(t: Tlv<'_>) -> Option<String> {
    let b = t.content;
    Some(match t.tag {
        // UTF8String
        0x0C => String::from_utf8_lossy(b).into_owned(),
        // PrintableString, IA5String, VisibleString, NumericString, GeneralString,
        // GraphicString: ASCII in practice; be lenient with 8-bit bytes.
        0x13 | 0x16 | 0x1A | 0x12 | 0x1B | 0x19 => lossy_ascii(b),
        // TeletexString (T.61): read as Latin-1 like OpenSSL and most tools do.
        0x14 => b.iter().map(|c| char::from(*c)).collect(),
        // BMPString: UTF-16BE.
        0x1E => {
            let units: Vec<u16> = b
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        // UniversalString: UTF-32BE.
        0x1C => b
            .chunks_exact(4)
            .map(|c| {
                char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                    .unwrap_or(char::REPLACEMENT_CHARACTER)
            })
            .collect(),
        _ => return None,
    })
}

/// RFC 4514 §2.4 escaping of an attribute value.
fn escape_value(v: &str, out: &mut String) {
    let n = v.chars().count();
    for (i, c) in v.chars().enumerate() {
        match c {
            '\\' | '"' | '+' | ',' | ';' | '<' | '>' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i + 1 == n => out.push_str("\\ "),
            '\0' => out.push_str("\\00"),
            c => out.push(c),
        }
    }
}

/// Iterates over the AttributeTypeAndValue pairs of a Name: `(rdn index, type OID, value)`.
fn for_each_atv<'a>(
    name_der: &'a [u8],
    mut f: impl FnMut(usize, &'a [u8], Tlv<'a>),
) -> Result<(), PkiError> {
    let e = |x| bad("name", x);
    let name = asn1::parse_definite(name_der).map_err(e)?;
    expect_tag(name, 0x30, "name")?;
    let mut rdns = name.children();
    let mut index = 0usize;
    while let Some(rdn) = rdns.next().map_err(e)? {
        expect_tag(rdn, 0x31, "relative distinguished name")?;
        let mut atvs = rdn.children();
        while let Some(atv) = atvs.next().map_err(e)? {
            expect_tag(atv, 0x30, "attribute")?;
            let mut p = atv.children();
            let oid = require(&mut p, "missing attribute type").map_err(e)?;
            expect_tag(oid, 0x06, "attribute type")?;
            let value = require(&mut p, "missing attribute value").map_err(e)?;
            f(index, oid.content, value);
        }
        index += 1;
    }
    Ok(())
}

/// String values of every attribute of this type in a Name, in encoded order.
fn name_values(name_der: &[u8], oid: &[u8]) -> Result<Vec<String>, PkiError> {
    let mut out = Vec::new();
    for_each_atv(name_der, |_, t, v| {
        if t == oid {
            out.extend(decode_string(v));
        }
    })?;
    Ok(out)
}

/// Renders a DER Name (complete TLV) as an RFC 4514 string: RDNs most-specific first joined
/// by `,`, multi-valued RDNs joined by `+`, values escaped; non-string values as `#hex`.
pub fn format_name(name_der: &[u8]) -> Result<String, PkiError> {
    let mut rdns: Vec<Vec<String>> = Vec::new();
    for_each_atv(name_der, |index, oid, value| {
        if rdns.len() <= index {
            rdns.resize_with(index + 1, Vec::new);
        }
        let mut s = match attribute_short_name(oid) {
            Some(n) => n.to_string(),
            None => oid_to_string(oid),
        };
        s.push('=');
        match decode_string(value) {
            Some(v) => escape_value(&v, &mut s),
            None => {
                s.push('#');
                s.push_str(&hex::encode(value.raw));
            }
        }
        rdns[index].push(s);
    })?;
    let parts: Vec<String> = rdns
        .into_iter()
        .rev()
        .filter(|r| !r.is_empty())
        .map(|r| r.join("+"))
        .collect();
    Ok(parts.join(","))
}

/// UTCTime / GeneralizedTime → Unix seconds. Accepts missing seconds, fractional seconds and
/// `+hhmm`/`-hhmm` offsets (BER leftovers in old certificates).
fn parse_time(t: Tlv<'_>) -> Result<i64, String> {
    let s = std::str::from_utf8(t.content).map_err(|_| "time is not ASCII".to_string())?;
    let (year, rest) = match t.tag {
        0x17 => {
            let yy = digits(s, 0, 2)?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &s[2..])
        }
        0x18 => (digits(s, 0, 4)?, &s[4..]),
        tag => return Err(format!("unexpected time tag 0x{tag:02x}")),
    };
    let month = digits(rest, 0, 2)?;
    let day = digits(rest, 2, 2)?;
    let hour = digits(rest, 4, 2)?;
    let minute = digits(rest, 6, 2)?;
    let mut tail = &rest[8..];
    let mut second = 0;
    if tail.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        second = digits(tail, 0, 2)?;
        tail = &tail[2..];
    }
    if let Some(frac) = tail.strip_prefix('.').or_else(|| tail.strip_prefix(',')) {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        tail = &frac[n..];
    }
    let offset = match tail {
        "Z" => 0,
        "" if t.tag == 0x18 => 0, // local time; treat as UTC
        _ => {
            let sign = match tail.as_bytes().first() {
                Some(b'+') => -1,
                Some(b'-') => 1,
                _ => return Err(format!("bad time zone in {s:?}")),
            };
            if tail.len() != 5 {
                return Err(format!("bad time zone in {s:?}"));
            }
            sign * (digits(tail, 1, 2)? * 3600 + digits(tail, 3, 2)? * 60)
        }
    };
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(format!("time out of range: {s:?}"));
    }
    let days = days_from_civil(year, month, day);
    Ok(days * 86_400 + hour * 3600 + minute * 60 + second + offset)
}

fn digits(s: &str, at: usize, n: usize) -> Result<i64, String> {
    let part = s
        .get(at..at + n)
        .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| format!("malformed time {s:?}"))?;
    part.parse::<i64>()
        .map_err(|_| format!("malformed time {s:?}"))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn time(tag0: u8, s: &str) -> Result<i64, String> {
        let mut der = Vec::new();
        asn1::push_tlv(&mut der, tag0, s.as_bytes());
        parse_time(asn1::parse_definite(&der).unwrap())
    }

    #[test]
    fn times() {
        assert_eq!(time(0x17, "700101000000Z"), Ok(0));
        assert_eq!(time(0x17, "491231235959Z"), Ok(2_524_607_999));
        assert_eq!(time(0x17, "500101000000Z"), Ok(-631_152_000));
        assert_eq!(time(0x17, "7001010000Z"), Ok(0));
        assert_eq!(time(0x17, "700101010000+0100"), Ok(0));
        assert_eq!(time(0x18, "99991231235959Z"), Ok(253_402_300_799));
        assert_eq!(time(0x18, "20000229120000.123Z"), Ok(951_825_600));
        for bad in [
            "",
            "7001",
            "700101000000",
            "701301000000Z",
            "7001010000+01",
            "70010100000Zx",
        ] {
            assert!(time(0x17, bad).is_err(), "{bad}");
        }
        assert!(time(0x18, "2000").is_err());
        assert!(time(0x18, "20000101000000é").is_err());
    }

    /// The validity alone is what the full parse says, and a broken certificate is an error.
    #[test]
    fn validity_is_the_parse_s() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/pki");
        let mut seen = 0;
        for name in ["alice.pem", "bob.pem", "carol.pem", "chain.pem"] {
            let pem = std::fs::read(dir.join(name)).unwrap();
            for cert in crate::load_certificates(&pem, name).unwrap() {
                let info = parse(&cert).unwrap();
                assert_eq!(
                    validity(&cert).unwrap(),
                    (info.not_before, info.not_after),
                    "{name}"
                );
                seen += 1;
            }
        }
        assert!(seen >= 4);
        assert!(validity(&CertDer::new(vec![0x30, 0x03, 0x02, 0x01, 0x00])).is_err());
    }

    #[test]
    fn oids() {
        assert_eq!(
            oid_to_string(&[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x01]),
            "1.2.840.113549.1.9.1"
        );
        assert_eq!(oid_to_string(&[0x55, 0x04, 0x03]), "2.5.4.3");
        assert_eq!(oid_to_string(&[0x88, 0x37, 0x01]), "2.999.1");
        assert_eq!(oid_to_string(&[]), "invalid-oid:");
        assert_eq!(oid_to_string(&[0x2A, 0x86]), "invalid-oid:2a86");
        assert_eq!(oid_to_string(&[0x80, 0x01]), "invalid-oid:8001");
        assert!(oid_to_string(&[0xFF; 40]).starts_with("invalid-oid:"));
    }

    #[test]
    fn escaping() {
        let mut s = String::new();
        escape_value("#a, b+c;\"<>\\ ", &mut s);
        assert_eq!(s, "\\#a\\, b\\+c\\;\\\"\\<\\>\\\\\\ ");
        let mut s = String::new();
        escape_value(" x#", &mut s);
        assert_eq!(s, "\\ x#");
    }

    #[test]
    fn key_usage_bit_order() {
        // digitalSignature | keyEncipherment: 0b1010_0000, 5 unused bits.
        assert_eq!(
            key_usage_bits(&[0x05, 0xA0]),
            KeyUsageBits::DIGITAL_SIGNATURE | KeyUsageBits::KEY_ENCIPHERMENT
        );
        assert_eq!(
            key_usage_bits(&[0x07, 0x00, 0x80]),
            KeyUsageBits::DECIPHER_ONLY
        );
        assert_eq!(
            KeyUsageBits(0b11).names(),
            vec!["digitalSignature", "nonRepudiation"]
        );
        assert_eq!(key_usage_bits(&[]), 0);
    }

    fn oid_der(oid: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        asn1::push_tlv(&mut v, 0x06, oid);
        v
    }

    fn wrap(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        asn1::push_tlv(&mut v, tag, content);
        v
    }

    #[test]
    fn parses_synthetic_certificate_with_extensions() {
        use crate::testcert::{cert, ext};
        let san = wrap(
            0x30,
            &[
                wrap(0x82, b"mail.example.com"),
                wrap(0x81, b"Alice@Example.com"),
                wrap(0x81, b"alice@example.com"),
                wrap(0x81, b"al\xefce@example.com"),
            ]
            .concat(),
        );
        let eku = wrap(
            0x30,
            &[
                oid_der(&[0x2B, 6, 1, 5, 5, 7, 3, 4]),
                oid_der(&[0x2B, 6, 1, 5, 5, 7, 3, 2]),
            ]
            .concat(),
        );
        let der = cert(
            &[0x80, 0x01],
            "Issuer CA",
            "Alice",
            &[
                ext(OID_KU, Some(true), &wrap(0x03, &[0x05, 0xA0])),
                ext(OID_EKU, Some(false), &eku),
                ext(OID_BC, None, &wrap(0x30, &[0x01, 0x01, 0x00])),
                ext(OID_SKI, None, &wrap(0x04, &[1, 2, 3])),
                ext(OID_SAN, None, &san),
                // A duplicate KU is ignored (first wins).
                ext(OID_KU, None, &wrap(0x03, &[0x07, 0x80])),
                // Unknown extension.
                ext(&[0x2A, 0x03, 0x04], Some(true), &[0xFF]),
            ],
        );
        let info = parse(&CertDer::new(der.clone())).unwrap();
        assert_eq!(info.subject, "CN=Alice");
        assert_eq!(info.issuer, "CN=Issuer CA");
        assert!(!info.self_signed);
        assert_eq!(info.serial_hex, "8001");
        assert_eq!(info.not_before, 1_577_836_800);
        assert_eq!(info.not_after, 253_402_300_799);
        assert_eq!(
            info.emails,
            vec!["Alice@Example.com", "al\u{ef}ce@example.com"]
        );
        assert_eq!(info.dns_names, vec!["mail.example.com"]);
        assert_eq!(
            info.key_usage.unwrap().names(),
            vec!["digitalSignature", "keyEncipherment"]
        );
        assert!(info.key_usage_critical);
        assert_eq!(
            info.extended_key_usage.as_deref(),
            Some(
                &[
                    "1.3.6.1.5.5.7.3.4".to_string(),
                    "1.3.6.1.5.5.7.3.2".to_string()
                ][..]
            )
        );
        assert!(!info.is_ca);
        assert_eq!(info.subject_key_id.as_deref(), Some(&[1u8, 2, 3][..]));
        assert_eq!(info.public_key_algorithm, "1.2.840.113549.1.1.1");
        assert_eq!(info.signature_algorithm, "1.2.840.113549.1.1.11");
        assert_eq!(info.sha256_fingerprint, hex::encode(Sha256::digest(&der)));
        assert_eq!(info.sha1_thumbprint, hex::encode_upper(Sha1::digest(&der)));
        assert_eq!(primary_address(&info), "Alice@Example.com");

        let (issuer, serial) = issuer_and_serial(&CertDer::new(der.clone())).unwrap();
        assert_eq!(issuer, crate::testcert::cn_name("Issuer CA"));
        assert_eq!(serial, vec![0x80, 0x01]);
        let spki = spki_der(&CertDer::new(der.clone())).unwrap();
        assert_eq!(spki[0], 0x30);
        assert!(der.windows(spki.len()).any(|w| w == spki.as_slice()));
        let tbs = tbs_der(&CertDer::new(der.clone())).unwrap();
        assert_eq!(&der[4..4 + tbs.len()], tbs.as_slice());
    }

    #[test]
    fn self_signed_ca_without_extensions_and_json() {
        let der = crate::testcert::cert(&[0x01], "Root", "Root", &[]);
        let info = parse(&CertDer::new(der)).unwrap();
        assert!(info.self_signed);
        assert!(info.key_usage.is_none() && info.extended_key_usage.is_none());
        assert_eq!(primary_address(&info), "CN=Root");
        let ca = crate::testcert::cert(
            &[0x01],
            "Root",
            "Root",
            &[crate::testcert::ext(
                OID_BC,
                Some(true),
                &wrap(0x30, &[0x01, 0x01, 0xFF]),
            )],
        );
        assert!(parse(&CertDer::new(ca)).unwrap().is_ca);
    }

    #[test]
    fn hostile_certificates_error_without_panicking() {
        use crate::testcert::{cert, ext};
        let good = cert(
            &[0x01],
            "I",
            "S",
            &[ext(OID_SAN, None, &wrap(0x30, &wrap(0x81, b"a@b")))],
        );
        assert!(parse(&CertDer::new(good.clone())).is_ok());
        for cut in 0..good.len() {
            assert!(parse(&CertDer::new(good[..cut].to_vec())).is_err());
        }
        for i in 0..good.len() {
            for v in [
                0x00, 0x01, 0x02, 0x03, 0x04, 0x17, 0x30, 0x31, 0x80, 0x81, 0xFF,
            ] {
                let mut m = good.clone();
                m[i] = v;
                let c = CertDer::new(m);
                let _ = parse(&c);
                let _ = issuer_and_serial(&c);
                let _ = spki_der(&c);
            }
        }
        // Malformed known extension values are errors, not panics.
        let bad_ku = cert(&[0x01], "I", "S", &[ext(OID_KU, None, &[0x04, 0x00])]);
        assert!(parse(&CertDer::new(bad_ku)).is_err());
        let bad_time = {
            let mut c = cert(&[0x01], "I", "S", &[]);
            let p = c.windows(2).position(|w| w == b"20").unwrap();
            c[p] = b'x';
            c
        };
        let err = parse(&CertDer::new(bad_time)).unwrap_err().to_string();
        assert!(err.contains("notBefore"), "{err}");
    }

    type Atv<'a> = (&'a [u8], u8, &'a [u8]);

    fn name(rdns: &[&[Atv<'_>]]) -> Vec<u8> {
        let mut seq = Vec::new();
        for rdn in rdns {
            let mut set = Vec::new();
            for (oid, tag, val) in *rdn {
                let mut atv = Vec::new();
                asn1::push_tlv(&mut atv, 0x06, oid);
                asn1::push_tlv(&mut atv, *tag, val);
                asn1::push_tlv(&mut set, 0x30, &atv);
            }
            asn1::push_tlv(&mut seq, 0x31, &set);
        }
        let mut out = Vec::new();
        asn1::push_tlv(&mut out, 0x30, &seq);
        out
    }

    #[test]
    fn names_render_in_rfc4514_order_with_string_types() {
        let cn: &[u8] = &[0x55, 0x04, 0x03];
        let c: &[u8] = &[0x55, 0x04, 0x06];
        let o: &[u8] = &[0x55, 0x04, 0x0A];
        let ou: &[u8] = &[0x55, 0x04, 0x0B];
        let unknown: &[u8] = &[0x2A, 0x03];
        let n = name(&[
            &[(c, 0x13, b"US")],
            &[(o, 0x14, b"Caf\xe9, Inc")],
            &[
                (ou, 0x1E, &[0, b'A', 0, b'+']),
                (cn, 0x0C, "Zoë".as_bytes()),
            ],
            &[(OID_EMAIL_ADDRESS, 0x16, b"a@b.c")],
            &[(unknown, 0x02, &[0x05])],
        ]);
        assert_eq!(
            format_name(&n).unwrap(),
            "1.2.3=#020105,emailAddress=a@b.c,OU=A\\++CN=Zoë,O=Café\\, Inc,C=US"
        );
        assert_eq!(name_values(&n, OID_EMAIL_ADDRESS).unwrap(), vec!["a@b.c"]);
        assert_eq!(format_name(&[0x30, 0x00]).unwrap(), "");
        assert!(format_name(&[0x30, 0x02, 0x30, 0x00]).is_err());
    }
}
