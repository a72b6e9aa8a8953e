//! Matching a CMS signer or recipient identifier against certificates through an index
//! ([`CertIndex`]); `matches`, one certificate at a time, is the reference its tests compare with.

use std::cell::OnceCell;
use std::collections::HashMap;

use smimekit_core::CertDer;
use smimekit_pki::certinfo;

use crate::asn1::{TAG_SEQUENCE, Tlv};

/// Whether `cert` is the one an identifier names: issuerAndSerialNumber (SEQUENCE),
/// `[0]` subjectKeyIdentifier (SignerIdentifier, KeyTransRecipientInfo), or rKeyId
/// `[0] { subjectKeyIdentifier … }` (KeyAgreeRecipientInfo). The reference semantics of
/// [`CertIndex`], kept for its tests.
#[cfg(test)]
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

/// Certificates indexed by issuer and serial number and, built on first need, by subject key
/// identifier, so that finding a signer's certificates costs a lookup, not a walk over every
/// certificate (signers × certificates). The index holds positions in the slice it was built
/// from; lookups take that slice again and give the same answers as `matches`.
#[derive(Debug, Default)]
pub(crate) struct CertIndex {
    by_issuer_serial: HashMap<(Vec<u8>, Vec<u8>), Vec<usize>>,
    by_ski: OnceCell<HashMap<Vec<u8>, Vec<usize>>>,
}

impl CertIndex {
    pub(crate) fn new(certs: &[&CertDer]) -> Self {
        let mut by_issuer_serial: HashMap<_, Vec<usize>> = HashMap::new();
        for (i, c) in certs.iter().enumerate() {
            // An unreadable certificate matches no identifier, as in `matches`.
            if let Ok(key) = certinfo::issuer_and_serial(c) {
                by_issuer_serial.entry(key).or_default().push(i);
            }
        }
        Self {
            by_issuer_serial,
            by_ski: OnceCell::new(),
        }
    }

    /// Every certificate of `certs` (the slice the index was built from) that `id` names, in
    /// order (issuerAndSerialNumber, `[0]` subjectKeyIdentifier, or rKeyId `[0] { ski }`).
    pub(crate) fn all<'c>(&self, id: &Tlv<'_>, certs: &[&'c CertDer]) -> Vec<&'c CertDer> {
        let hits = match id.tag {
            TAG_SEQUENCE => {
                let mut r = id.children();
                let (Ok(Some(issuer)), Ok(Some(serial))) = (r.next(), r.next()) else {
                    return Vec::new();
                };
                self.by_issuer_serial
                    .get(&(issuer.raw.to_vec(), serial.content.to_vec()))
            }
            0x80 => self.ski(certs).get(id.content),
            0xa0 => match id.children().next() {
                Ok(Some(ski)) => self.ski(certs).get(ski.content),
                _ => None,
            },
            _ => None,
        };
        hits.map(|v| v.iter().filter_map(|&i| certs.get(i).copied()).collect())
            .unwrap_or_default()
    }

    fn ski(&self, certs: &[&CertDer]) -> &HashMap<Vec<u8>, Vec<usize>> {
        self.by_ski.get_or_init(|| {
            let mut m: HashMap<_, Vec<usize>> = HashMap::new();
            for (i, c) in certs.iter().enumerate() {
                if let Some(ski) = ski_of(c) {
                    m.entry(ski).or_default().push(i);
                }
            }
            m
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asn1;

    fn cert(name: &str) -> CertDer {
        let path = fixture(name);
        let pem = std::fs::read(&path).expect("fixture certificate");
        smimekit_pki::load_certificates(&pem, name)
            .expect("certificate")
            .remove(0)
    }

    /// The PKI fixtures of the e2e tests (alice, bob, carol and their CA).
    fn fixture(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/pki")
            .join(name)
    }

    /// The index answers as `matches` does, for both identifier forms and a stranger.
    #[test]
    fn index_agrees_with_matches() {
        let certs: Vec<CertDer> = ["alice.pem", "bob.pem", "carol.pem", "root.pem"]
            .iter()
            .map(|n| cert(n))
            .collect();
        let refs: Vec<&CertDer> = certs.iter().collect();
        let index = CertIndex::new(&refs);
        for c in &certs {
            let (issuer, serial) = certinfo::issuer_and_serial(c).unwrap();
            let ias = asn1::seq(&[&issuer, &asn1::encode(asn1::TAG_INTEGER, &serial)]);
            let mut ids = vec![ias];
            if let Some(ski) = ski_of(c) {
                ids.push(asn1::context_primitive(0, &ski));
                ids.push(asn1::context_constructed(0, &[&asn1::octet_string(&ski)]));
            }
            for id in &ids {
                let t = asn1::parse_single(id).unwrap();
                let want: Vec<&CertDer> = certs.iter().filter(|x| matches(&t, x)).collect();
                assert_eq!(index.all(&t, &refs), want);
                assert!(want.contains(&c));
            }
        }
        let stranger = asn1::context_primitive(0, b"no such key id");
        assert!(
            index
                .all(&asn1::parse_single(&stranger).unwrap(), &refs)
                .is_empty()
        );
    }
}
