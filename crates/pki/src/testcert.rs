//! Test-only builder for small synthetic certificates (structure only; the signature is junk).

use crate::asn1::push_tlv;

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    push_tlv(&mut v, tag, content);
    v
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// `Name` with a single CN (UTF8String).
pub(crate) fn cn_name(cn: &str) -> Vec<u8> {
    let atv = tlv(
        0x30,
        &cat(&[&tlv(0x06, &[0x55, 0x04, 0x03]), &tlv(0x0C, cn.as_bytes())]),
    );
    tlv(0x30, &tlv(0x31, &atv))
}

/// An Extension with an optional explicit critical flag.
pub(crate) fn ext(oid: &[u8], critical: Option<bool>, value: &[u8]) -> Vec<u8> {
    let crit = match critical {
        Some(c) => tlv(0x01, &[if c { 0xFF } else { 0x00 }]),
        None => Vec::new(),
    };
    tlv(0x30, &cat(&[&tlv(0x06, oid), &crit, &tlv(0x04, value)]))
}

/// A certificate with the given serial content, names, UTCTime validity and extensions.
pub(crate) fn cert(serial: &[u8], issuer: &str, subject: &str, exts: &[Vec<u8>]) -> Vec<u8> {
    let sha256_rsa: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0B];
    let rsa: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];
    let alg = tlv(0x30, &cat(&[&tlv(0x06, sha256_rsa), &[0x05, 0x00]]));
    let validity = tlv(
        0x30,
        &cat(&[&tlv(0x17, b"200101000000Z"), &tlv(0x18, b"99991231235959Z")]),
    );
    let spki = tlv(
        0x30,
        &cat(&[
            &tlv(0x30, &cat(&[&tlv(0x06, rsa), &[0x05, 0x00]])),
            &tlv(0x03, &[0x00, 0x30, 0x00]),
        ]),
    );
    let ext_field = if exts.is_empty() {
        Vec::new()
    } else {
        tlv(0xA3, &tlv(0x30, &exts.concat()))
    };
    let tbs = tlv(
        0x30,
        &cat(&[
            &tlv(0xA0, &tlv(0x02, &[0x02])),
            &tlv(0x02, serial),
            &alg,
            &cn_name(issuer),
            &validity,
            &cn_name(subject),
            &spki,
            &ext_field,
        ]),
    );
    tlv(0x30, &cat(&[&tbs, &alg, &tlv(0x03, &[0x00, 0xAB, 0xCD])]))
}
