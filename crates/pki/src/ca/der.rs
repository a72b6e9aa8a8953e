//! DER pieces shared by the certificate, CRL and CSR code: OIDs, names, times, extensions.

use crate::asn1::{self, TAG_BOOLEAN, TAG_GENERALIZED_TIME, TAG_OID, TAG_UTC_TIME};

pub(crate) const OID_SHA256_RSA: &[u64] = &[1, 2, 840, 113549, 1, 1, 11];
pub(crate) const OID_ECDSA_SHA256: &[u64] = &[1, 2, 840, 10045, 4, 3, 2];
pub(crate) const OID_ECDSA_SHA384: &[u64] = &[1, 2, 840, 10045, 4, 3, 3];
/// rsaEncryption, content octets.
pub(crate) const OID_RSA_ENCRYPTION_DER: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 1, 1, 1];
/// id-ecPublicKey, content octets.
pub(crate) const OID_EC_PUBLIC_KEY_DER: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 2, 1];
/// subjectKeyIdentifier (2.5.29.14), content octets.
pub(crate) const OID_SKI_DER: &[u8] = &[0x55, 0x1d, 0x0e];

pub(crate) const OID_CN: &[u64] = &[2, 5, 4, 3];
pub(crate) const OID_O: &[u64] = &[2, 5, 4, 10];
pub(crate) const OID_C: &[u64] = &[2, 5, 4, 6];
pub(crate) const OID_EMAIL_ADDRESS: &[u64] = &[1, 2, 840, 113549, 1, 9, 1];

pub(crate) const OID_EXT_SKI: &[u64] = &[2, 5, 29, 14];
pub(crate) const OID_EXT_KEY_USAGE: &[u64] = &[2, 5, 29, 15];
pub(crate) const OID_EXT_SAN: &[u64] = &[2, 5, 29, 17];
pub(crate) const OID_EXT_BASIC_CONSTRAINTS: &[u64] = &[2, 5, 29, 19];
pub(crate) const OID_EXT_CRL_NUMBER: &[u64] = &[2, 5, 29, 20];
pub(crate) const OID_EXT_REASON_CODE: &[u64] = &[2, 5, 29, 21];
pub(crate) const OID_EXT_CRL_DP: &[u64] = &[2, 5, 29, 31];
pub(crate) const OID_EXT_POLICIES: &[u64] = &[2, 5, 29, 32];
pub(crate) const OID_EXT_AKI: &[u64] = &[2, 5, 29, 35];
pub(crate) const OID_EXT_EKU: &[u64] = &[2, 5, 29, 37];
pub(crate) const OID_KP_EMAIL_PROTECTION: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 3, 4];
/// CA/B Forum S/MIME BR: mailbox-validated, strict.
pub(crate) const OID_POLICY_MAILBOX_STRICT: &[u64] = &[2, 23, 140, 1, 5, 1, 3];

/// An OBJECT IDENTIFIER element from its arcs (the constants above are all well-formed).
pub(crate) fn oid(arcs: &[u64]) -> Vec<u8> {
    asn1::encode(TAG_OID, &oid_content(arcs))
}

pub(crate) fn oid_content(arcs: &[u64]) -> Vec<u8> {
    let mut out = Vec::new();
    let (first, rest) = match arcs {
        [a, b, rest @ ..] => (a * 40 + b, rest),
        _ => return out,
    };
    for arc in std::iter::once(first).chain(rest.iter().copied()) {
        let mut chunk = vec![(arc & 0x7f) as u8];
        let mut v = arc >> 7;
        while v > 0 {
            chunk.push(0x80 | (v & 0x7f) as u8);
            v >>= 7;
        }
        out.extend(chunk.iter().rev());
    }
    out
}

/// An INTEGER from unsigned big-endian magnitude (a leading zero is added when needed).
pub(crate) fn uint(magnitude: &[u8]) -> Vec<u8> {
    let trimmed: &[u8] = {
        let skip = magnitude.iter().take_while(|b| **b == 0).count();
        &magnitude[skip.min(magnitude.len().saturating_sub(1))..]
    };
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(trimmed);
    asn1::encode(asn1::TAG_INTEGER, &content)
}

/// One X.509 extension.
pub(crate) fn extension(id: &[u64], critical: bool, value: &[u8]) -> Vec<u8> {
    let id = oid(id);
    let value = asn1::octet_string(value);
    if critical {
        asn1::seq(&[&id, &asn1::encode(TAG_BOOLEAN, &[0xff]), &value])
    } else {
        asn1::seq(&[&id, &value])
    }
}

/// A DER named BIT STRING (trailing zero bits dropped) from RFC 5280 bit numbers.
pub(crate) fn named_bits(bits: u16) -> Vec<u8> {
    if bits == 0 {
        return asn1::encode(asn1::TAG_BIT_STRING, &[0]);
    }
    // bits != 0, so the highest set bit number is 15 - leading_zeros.
    let highest = 15 - bits.leading_zeros() as usize;
    let nbytes = highest / 8 + 1;
    let mut bytes = vec![0u8; nbytes];
    for i in 0..=highest {
        if bits & (1 << i) != 0 {
            bytes[i / 8] |= 0x80 >> (i % 8);
        }
    }
    let unused = (7 - highest % 8) as u8;
    let mut content = vec![unused];
    content.extend_from_slice(&bytes);
    asn1::encode(asn1::TAG_BIT_STRING, &content)
}

/// A distinguished name, built attribute by attribute (most general first: C, O, CN).
#[derive(Debug, Clone, Default)]
pub struct Name {
    rdns: Vec<Vec<u8>>,
}

impl Name {
    pub fn new() -> Self {
        Self::default()
    }

    fn push(mut self, id: &[u64], tag: u8, value: &str) -> Self {
        let atv = asn1::seq(&[&oid(id), &asn1::encode(tag, value.as_bytes())]);
        self.rdns.push(asn1::set_of(vec![atv]));
        self
    }

    /// countryName (PrintableString).
    pub fn country(self, c: &str) -> Self {
        self.push(OID_C, 0x13, c)
    }

    /// organizationName (UTF8String).
    pub fn organization(self, o: &str) -> Self {
        self.push(OID_O, 0x0c, o)
    }

    /// commonName (UTF8String).
    pub fn common_name(self, cn: &str) -> Self {
        self.push(OID_CN, 0x0c, cn)
    }

    /// emailAddress (IA5String).
    pub fn email(self, addr: &str) -> Self {
        self.push(OID_EMAIL_ADDRESS, 0x16, addr)
    }

    pub fn to_der(&self) -> Vec<u8> {
        let refs: Vec<&[u8]> = self.rdns.iter().map(Vec::as_slice).collect();
        asn1::seq(&refs)
    }
}

/// (year, month, day) from days since 1970-01-01 (Howard Hinnant's civil_from_days).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// An RFC 5280 Time: UTCTime for 1950..2049, GeneralizedTime otherwise.
pub fn encode_time(unix: i64) -> Vec<u8> {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (secs / 3600, secs % 3600 / 60, secs % 60);
    if (1950..2050).contains(&y) {
        let s = format!("{:02}{m:02}{d:02}{hh:02}{mm:02}{ss:02}Z", y % 100);
        asn1::encode(TAG_UTC_TIME, s.as_bytes())
    } else {
        let s = format!("{y:04}{m:02}{d:02}{hh:02}{mm:02}{ss:02}Z");
        asn1::encode(TAG_GENERALIZED_TIME, s.as_bytes())
    }
}
