//! Matching a CMS signer or recipient identifier against a certificate.

use smimekit_core::CertDer;
use smimekit_pki::certinfo;

use crate::asn1::{TAG_SEQUENCE, Tlv};

/// Whether `cert` is the one an identifier names: issuerAndSerialNumber (SEQUENCE),
/// `[0]` subjectKeyIdentifier (SignerIdentifier, KeyTransRecipientInfo), or rKeyId
/// `[0] { subjectKeyIdentifier … }` (KeyAgreeRecipientInfo).
pub(crate) fn matches(id: &Tlv<'_>, cert: &CertDer) -> bool {
    match id.tag {
        TAG_SEQUENCE => {
            let mut r = id.children();
            let (Ok(Some(issuer)), Ok(Some(serial))) = (r.next(), r.next()) else {
                return false;
            };
            certinfo::issuer_and_serial(cert)
                .is_ok_and(|(i, s)| i == issuer.raw && s == serial.content)
        }
        0x80 => ski_of(cert).is_some_and(|s| s == id.content),
        0xa0 => id
            .children()
            .next()
            .ok()
            .flatten()
            .is_some_and(|ski| ski_of(cert).is_some_and(|s| s == ski.content)),
        _ => false,
    }
}

fn ski_of(cert: &CertDer) -> Option<Vec<u8>> {
    certinfo::parse(cert).ok()?.subject_key_id
}
