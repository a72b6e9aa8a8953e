//! Signature verification (RSA PKCS#1 v1.5, RSA-PSS, ECDSA, DSA) against a DER
//! SubjectPublicKeyInfo, and facts about a public key.
//!
//! The message is hashed here with the scheme's digest. PSS verification accepts any salt
//! length (OpenSSL's "auto"), with MGF1 over the scheme's digest. A signature that does not
//! match, including one that is not even well-formed, is `Ok(false)`; `Err` is kept for keys
//! that cannot be loaded or do not fit the scheme. No certificate or policy checks happen here.

use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Public};
use openssl::rsa::Padding;
use openssl::sign::{RsaPssSaltlen, Verifier};
use smimekit_core::{EngineError, PublicKeyInfo, SignatureScheme, SignatureVerifier};

use crate::{invalid, message_digest, unsupported};

/// OpenSSL's `RSA_PSS_SALTLEN_AUTO`: when verifying, recover the salt length from the signature.
const RSA_PSS_SALTLEN_AUTO: i32 = -2;

/// [`SignatureVerifier`] on OpenSSL.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsslVerifier;

/// Parses a DER SubjectPublicKeyInfo (including RSASSA-PSS and Ed25519 keys).
pub(crate) fn public_key(spki_der: &[u8]) -> Result<PKey<Public>, EngineError> {
    PKey::public_key_from_der(spki_der).map_err(invalid("public key"))
}

/// [`public_key`] with a one-entry per-thread cache: OpenSSL 3's SPKI decoder takes longer
/// than an ECDSA verification, and path building verifies thousands of leaves against the
/// same issuer key. A parsed `EVP_PKEY` is immutable and reference-counted, so handing out
/// clones is safe.
fn cached_public_key(spki_der: &[u8]) -> Result<PKey<Public>, EngineError> {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(Vec<u8>, PKey<Public>)>> =
            const { std::cell::RefCell::new(None) };
    }
    LAST.with(|cell| {
        let hit = cell.try_borrow().ok().and_then(|last| {
            last.as_ref()
                .filter(|(der, _)| der.as_slice() == spki_der)
                .map(|(_, key)| key.clone())
        });
        if let Some(key) = hit {
            return Ok(key);
        }
        let key = public_key(spki_der)?;
        if let Ok(mut last) = cell.try_borrow_mut() {
            *last = Some((spki_der.to_vec(), key.clone()));
        }
        Ok(key)
    })
}

/// Checks that the key type can produce signatures of `scheme`.
fn check_key_fits(pkey: &PKey<Public>, scheme: SignatureScheme) -> Result<(), EngineError> {
    let id = pkey.id();
    let fits = match scheme {
        SignatureScheme::RsaPkcs1(_) => id == Id::RSA,
        SignatureScheme::RsaPss(_) => id == Id::RSA || id == Id::RSA_PSS,
        SignatureScheme::Ecdsa(_) => id == Id::EC,
        SignatureScheme::Dsa(_) => id == Id::DSA,
        #[allow(unreachable_patterns)] // SignatureScheme is non_exhaustive.
        _ => {
            return Err(EngineError::Unsupported(format!(
                "signature scheme {scheme:?}"
            )));
        }
    };
    if fits {
        Ok(())
    } else {
        Err(EngineError::Invalid(format!(
            "a {} key cannot verify {} signatures",
            key_algorithm(id),
            scheme.name()
        )))
    }
}

impl SignatureVerifier for OsslVerifier {
    fn verify(
        &self,
        spki_der: &[u8],
        scheme: SignatureScheme,
        message: &[u8],
        signature: &[u8],
    ) -> Result<bool, EngineError> {
        let pkey = cached_public_key(spki_der)?;
        check_key_fits(&pkey, scheme)?;
        let md = message_digest(scheme.digest())?;
        let mut verifier = Verifier::new(md, &pkey).map_err(unsupported("verifier"))?;
        match scheme {
            SignatureScheme::RsaPkcs1(_) => {
                verifier
                    .set_rsa_padding(Padding::PKCS1)
                    .map_err(unsupported("PKCS#1 padding"))?;
            }
            SignatureScheme::RsaPss(_) => {
                verifier
                    .set_rsa_padding(Padding::PKCS1_PSS)
                    .map_err(unsupported("PSS padding"))?;
                verifier
                    .set_rsa_mgf1_md(md)
                    .map_err(unsupported("PSS MGF1 digest"))?;
                verifier
                    .set_rsa_pss_saltlen(RsaPssSaltlen::custom(RSA_PSS_SALTLEN_AUTO))
                    .map_err(unsupported("PSS salt length"))?;
            }
            _ => {}
        }
        verifier.update(message).map_err(unsupported("verify"))?;
        // OpenSSL reports a malformed signature (bad DER, wrong length) as an error rather than
        // a mismatch; for the caller both mean "this signature is not valid".
        Ok(verifier.verify(signature).unwrap_or(false))
    }

    fn public_key_info(&self, spki_der: &[u8]) -> Result<PublicKeyInfo, EngineError> {
        let pkey = public_key(spki_der)?;
        let curve = if pkey.id() == Id::EC {
            pkey.ec_key()
                .ok()
                .and_then(|ec| ec.group().curve_name())
                .map(curve_short_name)
        } else {
            None
        };
        Ok(PublicKeyInfo {
            algorithm: key_algorithm(pkey.id()),
            bits: pkey.bits(),
            curve,
        })
    }
}

/// Our lowercase name for an OpenSSL key type.
pub(crate) fn key_algorithm(id: Id) -> String {
    match id {
        Id::RSA => "rsa".into(),
        Id::RSA_PSS => "rsa-pss".into(),
        Id::EC => "ec".into(),
        Id::DSA => "dsa".into(),
        Id::DH => "dh".into(),
        Id::ED25519 => "ed25519".into(),
        Id::ED448 => "ed448".into(),
        Id::X25519 => "x25519".into(),
        Id::X448 => "x448".into(),
        other => Nid::from_raw(other.as_raw())
            .short_name()
            .map(str::to_ascii_lowercase)
            .unwrap_or_else(|_| format!("pkey-{}", other.as_raw())),
    }
}

/// `P-256`, `P-384`, `P-521` for the NIST curves, else OpenSSL's short name.
pub(crate) fn curve_short_name(nid: Nid) -> String {
    match nid {
        Nid::X9_62_PRIME256V1 => "P-256".into(),
        Nid::SECP384R1 => "P-384".into(),
        Nid::SECP521R1 => "P-521".into(),
        Nid::SECP224R1 => "P-224".into(),
        other => other
            .short_name()
            .map(str::to_string)
            .unwrap_or_else(|_| format!("nid-{}", other.as_raw())),
    }
}

#[cfg(test)]
mod tests {
    use openssl::pkey::Private;
    use openssl::sign::Signer;
    use smimekit_core::DigestAlg;

    use super::*;
    use crate::testutil::{dsa_key, ec_key, rsa_key, spki};

    fn sign(
        key: &PKey<Private>,
        scheme: SignatureScheme,
        msg: &[u8],
        salt: Option<i32>,
    ) -> Vec<u8> {
        let md = message_digest(scheme.digest()).unwrap();
        let mut s = Signer::new(md, key).unwrap();
        if let SignatureScheme::RsaPss(_) = scheme {
            s.set_rsa_padding(Padding::PKCS1_PSS).unwrap();
            s.set_rsa_mgf1_md(md).unwrap();
            s.set_rsa_pss_saltlen(RsaPssSaltlen::custom(salt.unwrap_or(-1)))
                .unwrap();
        }
        s.sign_oneshot_to_vec(msg).unwrap()
    }

    #[test]
    fn rsa_pkcs1_all_digests() {
        let key = rsa_key(2048);
        for d in [
            DigestAlg::Md5,
            DigestAlg::Sha1,
            DigestAlg::Sha224,
            DigestAlg::Sha256,
            DigestAlg::Sha384,
            DigestAlg::Sha512,
        ] {
            let scheme = SignatureScheme::RsaPkcs1(d);
            let sig = sign(&key, scheme, b"hello", None);
            assert!(
                OsslVerifier
                    .verify(&spki(&key), scheme, b"hello", &sig)
                    .unwrap(),
                "{d:?}"
            );
            assert!(
                !OsslVerifier
                    .verify(&spki(&key), scheme, b"hellO", &sig)
                    .unwrap()
            );
        }
    }

    #[test]
    fn rsa_pss_any_salt_length() {
        let key = rsa_key(2048);
        let scheme = SignatureScheme::RsaPss(DigestAlg::Sha256);
        for salt in [32, 0, 20, 64] {
            let sig = sign(&key, scheme, b"pss", Some(salt));
            assert!(
                OsslVerifier
                    .verify(&spki(&key), scheme, b"pss", &sig)
                    .unwrap(),
                "salt {salt}"
            );
        }
        let sig = sign(&key, scheme, b"pss", None);
        assert!(
            !OsslVerifier
                .verify(&spki(&key), scheme, b"PSS", &sig)
                .unwrap()
        );
        // A PKCS#1 v1.5 signature is not a PSS signature.
        let v15 = sign(
            &key,
            SignatureScheme::RsaPkcs1(DigestAlg::Sha256),
            b"pss",
            None,
        );
        assert!(
            !OsslVerifier
                .verify(&spki(&key), scheme, b"pss", &v15)
                .unwrap()
        );
    }

    #[test]
    fn ecdsa_and_dsa() {
        for curve in [Nid::X9_62_PRIME256V1, Nid::SECP384R1, Nid::SECP521R1] {
            let key = ec_key(curve);
            let scheme = SignatureScheme::Ecdsa(DigestAlg::Sha256);
            let sig = sign(&key, scheme, b"ec", None);
            assert!(
                OsslVerifier
                    .verify(&spki(&key), scheme, b"ec", &sig)
                    .unwrap()
            );
            assert!(
                !OsslVerifier
                    .verify(&spki(&key), scheme, b"ed", &sig)
                    .unwrap()
            );
            // Garbage signatures are mismatches, not errors.
            assert!(
                !OsslVerifier
                    .verify(&spki(&key), scheme, b"ec", b"\x30\x02garbage")
                    .unwrap()
            );
            assert!(
                !OsslVerifier
                    .verify(&spki(&key), scheme, b"ec", &[])
                    .unwrap()
            );
        }
        let key = dsa_key();
        let scheme = SignatureScheme::Dsa(DigestAlg::Sha256);
        let sig = sign(&key, scheme, b"dsa", None);
        assert!(
            OsslVerifier
                .verify(&spki(&key), scheme, b"dsa", &sig)
                .unwrap()
        );
        assert!(
            !OsslVerifier
                .verify(&spki(&key), scheme, b"dsb", &sig)
                .unwrap()
        );
    }

    #[test]
    fn bad_keys_are_errors() {
        let scheme = SignatureScheme::RsaPkcs1(DigestAlg::Sha256);
        assert!(matches!(
            OsslVerifier.verify(b"\x30\x03junk", scheme, b"m", b"s"),
            Err(EngineError::Invalid(_))
        ));
        let ec = ec_key(Nid::X9_62_PRIME256V1);
        assert!(matches!(
            OsslVerifier.verify(&spki(&ec), scheme, b"m", b"s"),
            Err(EngineError::Invalid(_))
        ));
        assert!(OsslVerifier.public_key_info(&[]).is_err());
    }

    #[test]
    fn rsa_pss_spki_loads() {
        // A key with the id-RSASSA-PSS algorithm identifier.
        let mut ctx = openssl::pkey_ctx::PkeyCtx::new_id(Id::RSA_PSS).unwrap();
        ctx.keygen_init().unwrap();
        ctx.set_rsa_keygen_bits(2048).unwrap();
        let key = ctx.keygen().unwrap();
        let der = spki(&key);
        let info = OsslVerifier.public_key_info(&der).unwrap();
        assert_eq!(info.algorithm, "rsa-pss");
        assert_eq!(info.bits, 2048);
        let scheme = SignatureScheme::RsaPss(DigestAlg::Sha256);
        let sig = sign(&key, scheme, b"m", None);
        assert!(OsslVerifier.verify(&der, scheme, b"m", &sig).unwrap());
    }

    #[test]
    fn key_info() {
        let info = OsslVerifier.public_key_info(&spki(&rsa_key(2048))).unwrap();
        assert_eq!(
            info,
            PublicKeyInfo {
                algorithm: "rsa".into(),
                bits: 2048,
                curve: None
            }
        );
        for (nid, name, bits) in [
            (Nid::X9_62_PRIME256V1, "P-256", 256),
            (Nid::SECP384R1, "P-384", 384),
            (Nid::SECP521R1, "P-521", 521),
            (Nid::SECP256K1, "secp256k1", 256),
        ] {
            let info = OsslVerifier.public_key_info(&spki(&ec_key(nid))).unwrap();
            assert_eq!(info.algorithm, "ec");
            assert_eq!(info.bits, bits);
            assert_eq!(info.curve.as_deref(), Some(name));
        }
        let ed = PKey::generate_ed25519().unwrap();
        assert_eq!(
            OsslVerifier.public_key_info(&spki(&ed)).unwrap().algorithm,
            "ed25519"
        );
        assert_eq!(
            OsslVerifier
                .public_key_info(&spki(&dsa_key()))
                .unwrap()
                .algorithm,
            "dsa"
        );
    }
}
