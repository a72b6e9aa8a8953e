//! Key generation and PKCS#12 writing, for `smimekit ca`.
//!
//! [`generate`] makes an RSA (2048–4096) or EC (P-256/P-384) key with OpenSSL.
//! The key is a [`PrivateKey`] at once (with an empty certificate until one is issued), so a
//! CA signs its own root, and a user's certificate is issued, through the same port a token key
//! uses. [`NewKey::export_pkcs12`] then writes key + certificate + chain as a PKCS#12:
//!
//! * default: PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) for key and certificates, HMAC-SHA256
//!   MAC — what Windows 10 1709+/Outlook, macOS and OpenSSL 3 import;
//! * `legacy`: pbeWithSHAAnd3-KeyTripleDES-CBC for key and certificates and a SHA-1 MAC, for
//!   Windows 7/8/Server 2012-era importers (and gpgsm 2.2).

use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::stack::Stack;
use openssl::x509::X509;
use smimekit_core::{CertDer, KeySpec, KeyStoreError, NewKey, Secret};

use crate::softkey::SoftKey;

fn failed(id: &str, what: &str, e: impl std::fmt::Display) -> KeyStoreError {
    KeyStoreError::Failed {
        key: id.to_string(),
        detail: format!("{what}: {e}"),
    }
}

/// Generates a key held in memory, as a [`SoftKey`] with an empty certificate until one is
/// issued; `id` names it in errors (e.g. the p12 path it will go to).
pub fn generate(id: &str, spec: KeySpec) -> Result<SoftKey, KeyStoreError> {
    let pkey = match spec {
        KeySpec::Rsa(bits) => {
            if !(2048..=4096).contains(&bits) || bits % 8 != 0 {
                return Err(KeyStoreError::Unsupported {
                    key: id.to_string(),
                    detail: format!("RSA-{bits}: use 2048, 3072 or 4096 bits"),
                });
            }
            Rsa::generate(bits)
                .and_then(PKey::from_rsa)
                .map_err(|e| failed(id, "RSA key generation", e))?
        }
        KeySpec::EcP256 | KeySpec::EcP384 => {
            let nid = if spec == KeySpec::EcP256 {
                Nid::X9_62_PRIME256V1
            } else {
                Nid::SECP384R1
            };
            EcGroup::from_curve_name(nid)
                .and_then(|g| EcKey::generate(&g))
                .and_then(PKey::from_ec_key)
                .map_err(|e| failed(id, "EC key generation", e))?
        }
    };
    Ok(SoftKey::new(
        id.to_string(),
        None,
        pkey,
        CertDer::new(Vec::new()),
        Vec::new(),
    ))
}

/// [`generate`] boxed, for the key-store factory.
pub fn generate_boxed(id: &str, spec: KeySpec) -> Result<Box<dyn NewKey>, KeyStoreError> {
    Ok(Box::new(generate(id, spec)?))
}

impl NewKey for SoftKey {
    fn spki_der(&self) -> Result<Vec<u8>, KeyStoreError> {
        self.pkey()
            .public_key_to_der()
            .map_err(|e| failed(self.id(), "public key encoding", e))
    }

    fn set_certificate(&mut self, cert: CertDer) {
        self.set_certificate_inner(cert);
    }

    fn export_pkcs12(
        &self,
        friendly_name: &str,
        certificate: &CertDer,
        chain: &[CertDer],
        password: &Secret,
        legacy: bool,
    ) -> Result<Vec<u8>, KeyStoreError> {
        let id = self.id();
        let pass =
            std::str::from_utf8(password.expose()).map_err(|_| KeyStoreError::Unsupported {
                key: id.to_string(),
                detail: "PKCS#12 passwords must be UTF-8".into(),
            })?;
        let cert =
            X509::from_der(certificate.as_bytes()).map_err(|e| failed(id, "certificate", e))?;
        let mut ca = Stack::new().map_err(|e| failed(id, "PKCS#12", e))?;
        for c in chain {
            let x = X509::from_der(c.as_bytes()).map_err(|e| failed(id, "chain certificate", e))?;
            ca.push(x).map_err(|e| failed(id, "PKCS#12", e))?;
        }
        let mut b = Pkcs12::builder();
        b.name(friendly_name).pkey(self.pkey()).cert(&cert).ca(ca);
        if legacy {
            b.key_algorithm(Nid::PBE_WITHSHA1AND3_KEY_TRIPLEDES_CBC)
                .cert_algorithm(Nid::PBE_WITHSHA1AND3_KEY_TRIPLEDES_CBC)
                .mac_md(MessageDigest::sha1());
        } else {
            b.key_algorithm(Nid::AES_256_CBC)
                .cert_algorithm(Nid::AES_256_CBC)
                .mac_md(MessageDigest::sha256());
        }
        b.key_iter(if legacy { 2048 } else { 100_000 });
        b.mac_iter(2048);
        let p12 = b
            .build2(pass)
            .map_err(|e| failed(id, "PKCS#12 encoding", e))?;
        p12.to_der().map_err(|e| failed(id, "PKCS#12 encoding", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smimekit_core::{KeyKind, PrivateKey};

    #[tokio::test]
    async fn generate_and_p12_round_trip() {
        let k = generate("t", KeySpec::EcP256).unwrap();
        assert_eq!(k.kind(), KeyKind::Ec { curve: "P-256" });
        assert!(!k.spki_der().unwrap().is_empty());
        assert!(generate("t", KeySpec::Rsa(1024)).is_err());
        // A throwaway self-signed certificate from OpenSSL, just to have one to bundle.
        let mut name = openssl::x509::X509NameBuilder::new().unwrap();
        name.append_entry_by_nid(Nid::COMMONNAME, "t").unwrap();
        let name = name.build();
        let mut b = openssl::x509::X509Builder::new().unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(k.pkey()).unwrap();
        b.set_not_before(&openssl::asn1::Asn1Time::from_unix(0).unwrap())
            .unwrap();
        b.set_not_after(&openssl::asn1::Asn1Time::from_unix(1_000_000).unwrap())
            .unwrap();
        b.sign(k.pkey(), MessageDigest::sha256()).unwrap();
        let cert = CertDer::new(b.build().to_der().unwrap());
        for legacy in [false, true] {
            let der = k
                .export_pkcs12("t", &cert, &[], &Secret::from("pw".to_string()), legacy)
                .unwrap();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("t.p12");
            std::fs::write(&path, der).unwrap();
            let bundle = crate::read_bundle(&path, Some(&Secret::from("pw".to_string()))).unwrap();
            assert_eq!(bundle.keys.len(), 1);
            assert!(crate::read_bundle(&path, Some(&Secret::from("no".to_string()))).is_err());
        }
    }
}
