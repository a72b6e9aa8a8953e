//! Private-key operations on an OpenSSL key the caller holds, for soft key stores (PKCS#12,
//! PEM): sign a precomputed digest, decrypt an RSA-wrapped content-encryption key, ECDH.
//!
//! These functions neither load nor store keys, and never return key material other than the
//! derived or decrypted secret the operation is for.

use openssl::bn::BigNumContext;
use openssl::ec::{EcKey, EcPoint};
use openssl::pkey::{Id, PKey, PKeyRef, Private};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Padding;
use openssl::sign::RsaPssSaltlen;
use smimekit_core::{EngineError, RsaPadding, Secret, SignatureScheme};

use crate::transport::{derive, set_rsa_padding};
use crate::verify::key_algorithm;
use crate::{decrypt_failed, invalid, md_ref, unsupported};

/// Signs a precomputed `digest` with `pkey`.
///
/// * `RsaPkcs1(d)`: RSASSA-PKCS1-v1_5; OpenSSL builds the DigestInfo for `d`.
/// * `RsaPss(d)`: RSASSA-PSS, MGF1 over `d`, salt as long as the digest.
/// * `Ecdsa(d)` / `Dsa(d)`: the raw digest is signed; the signature is DER.
///
/// The digest length must match `d`; the key type must match the scheme.
pub fn sign_digest_with(
    pkey: &PKeyRef<Private>,
    scheme: SignatureScheme,
    digest: &[u8],
) -> Result<Vec<u8>, EngineError> {
    let d = scheme.digest();
    if digest.len() != d.output_len() {
        return Err(EngineError::Invalid(format!(
            "a {} digest is {} bytes, got {}",
            d.name(),
            d.output_len(),
            digest.len()
        )));
    }
    let id = pkey.id();
    let fits = match scheme {
        SignatureScheme::RsaPkcs1(_) => id == Id::RSA,
        SignatureScheme::RsaPss(_) => id == Id::RSA || id == Id::RSA_PSS,
        SignatureScheme::Ecdsa(_) => id == Id::EC,
        SignatureScheme::Dsa(_) => id == Id::DSA,
        #[allow(unreachable_patterns)] // SignatureScheme is non_exhaustive.
        _ => false,
    };
    if !fits {
        return Err(EngineError::Invalid(format!(
            "a {} key cannot make {} signatures",
            key_algorithm(id),
            scheme.name()
        )));
    }
    let md = md_ref(d)?;
    let mut ctx = PkeyCtx::new(pkey).map_err(unsupported("signing context"))?;
    ctx.sign_init().map_err(unsupported("sign"))?;
    match scheme {
        SignatureScheme::RsaPkcs1(_) => {
            ctx.set_rsa_padding(Padding::PKCS1)
                .map_err(unsupported("PKCS#1 padding"))?;
        }
        SignatureScheme::RsaPss(_) => {
            ctx.set_rsa_padding(Padding::PKCS1_PSS)
                .map_err(unsupported("PSS padding"))?;
        }
        _ => {}
    }
    ctx.set_signature_md(md)
        .map_err(unsupported("signature digest"))?;
    if let SignatureScheme::RsaPss(_) = scheme {
        ctx.set_rsa_mgf1_md(md)
            .map_err(unsupported("PSS MGF1 digest"))?;
        ctx.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH)
            .map_err(unsupported("PSS salt length"))?;
    }
    let mut sig = Vec::new();
    ctx.sign_to_vec(digest, &mut sig).map_err(invalid("sign"))?;
    Ok(sig)
}

/// Decrypts an RSA-encrypted content-encryption key. Any padding failure is
/// [`EngineError::DecryptFailed`].
pub fn rsa_decrypt_with(
    pkey: &PKeyRef<Private>,
    padding: &RsaPadding,
    wrapped: &[u8],
) -> Result<Secret, EngineError> {
    if pkey.id() != Id::RSA {
        return Err(EngineError::Invalid(format!(
            "a {} key cannot decrypt RSA key transport",
            key_algorithm(pkey.id())
        )));
    }
    let mut ctx = PkeyCtx::new(pkey).map_err(unsupported("RSA context"))?;
    ctx.decrypt_init().map_err(unsupported("RSA decrypt"))?;
    set_rsa_padding(&mut ctx, padding)?;
    let mut out = Vec::new();
    ctx.decrypt_to_vec(wrapped, &mut out)
        .map_err(decrypt_failed("RSA decrypt (wrong key or corrupted data)"))?;
    Ok(Secret::new(out))
}

/// ECDH between `pkey` and a peer point (SEC1, normally uncompressed) on the same curve:
/// the shared secret Z.
pub fn ecdh_with(pkey: &PKeyRef<Private>, peer_point: &[u8]) -> Result<Secret, EngineError> {
    if pkey.id() != Id::EC {
        return Err(EngineError::Invalid(format!(
            "a {} key cannot do ECDH",
            key_algorithm(pkey.id())
        )));
    }
    let ours = pkey.ec_key().map_err(invalid("EC key"))?;
    let group = ours.group();
    let mut bn = BigNumContext::new().map_err(unsupported("bignum context"))?;
    // from_bytes rejects points not on the curve.
    let point =
        EcPoint::from_bytes(group, peer_point, &mut bn).map_err(invalid("peer EC point"))?;
    let peer = EcKey::from_public_key(group, &point).map_err(invalid("peer EC key"))?;
    peer.check_key().map_err(invalid("peer EC key"))?;
    let peer = PKey::from_ec_key(peer).map_err(invalid("peer EC key"))?;
    derive(pkey, &peer)
}

#[cfg(test)]
mod tests {
    use openssl::nid::Nid;
    use smimekit_core::{DigestAlg, KeyTransport, SignatureVerifier};

    use super::*;
    use crate::testutil::{dsa_key, ec_key, rsa_key, spki};
    use crate::{OsslKeyTransport, OsslPrimitives, OsslVerifier};
    use smimekit_core::Primitives;

    fn digest(d: DigestAlg, m: &[u8]) -> Vec<u8> {
        OsslPrimitives.digest(d, &[m]).unwrap()
    }

    #[test]
    fn sign_then_verify_every_scheme() {
        let rsa = rsa_key(2048);
        let ec = ec_key(Nid::X9_62_PRIME256V1);
        let dsa = dsa_key();
        let cases = [
            (&rsa, SignatureScheme::RsaPkcs1(DigestAlg::Sha256)),
            (&rsa, SignatureScheme::RsaPkcs1(DigestAlg::Sha1)),
            (&rsa, SignatureScheme::RsaPss(DigestAlg::Sha256)),
            (&rsa, SignatureScheme::RsaPss(DigestAlg::Sha512)),
            (&ec, SignatureScheme::Ecdsa(DigestAlg::Sha256)),
            (&ec, SignatureScheme::Ecdsa(DigestAlg::Sha384)),
            (&dsa, SignatureScheme::Dsa(DigestAlg::Sha256)),
        ];
        for (key, scheme) in cases {
            let sig = sign_digest_with(key, scheme, &digest(scheme.digest(), b"msg")).unwrap();
            assert!(
                OsslVerifier
                    .verify(&spki(key), scheme, b"msg", &sig)
                    .unwrap(),
                "{scheme:?}"
            );
        }
    }

    #[test]
    fn pkcs1_signature_is_deterministic_digestinfo() {
        // PKCS#1 v1.5 is deterministic: a CLI-free cross-check against the one-shot Signer.
        let rsa = rsa_key(2048);
        let ours = sign_digest_with(
            &rsa,
            SignatureScheme::RsaPkcs1(DigestAlg::Sha256),
            &digest(DigestAlg::Sha256, b"x"),
        )
        .unwrap();
        let mut s =
            openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &rsa).unwrap();
        assert_eq!(ours, s.sign_oneshot_to_vec(b"x").unwrap());
    }

    #[test]
    fn sign_rejects_mismatches() {
        let rsa = rsa_key(2048);
        let ec = ec_key(Nid::X9_62_PRIME256V1);
        assert!(matches!(
            sign_digest_with(
                &rsa,
                SignatureScheme::RsaPkcs1(DigestAlg::Sha256),
                &[0u8; 20]
            ),
            Err(EngineError::Invalid(_))
        ));
        assert!(matches!(
            sign_digest_with(
                &ec,
                SignatureScheme::RsaPkcs1(DigestAlg::Sha256),
                &[0u8; 32]
            ),
            Err(EngineError::Invalid(_))
        ));
    }

    #[test]
    fn rsa_v15_and_oaep_round_trip() {
        let rsa = rsa_key(2048);
        let cek = [0x5Au8; 32];
        let paddings = [
            RsaPadding::Pkcs1v15,
            RsaPadding::Oaep {
                hash: DigestAlg::Sha1,
                mgf1: DigestAlg::Sha1,
                label: vec![],
            },
            RsaPadding::Oaep {
                hash: DigestAlg::Sha256,
                mgf1: DigestAlg::Sha256,
                label: b"smimekit label".to_vec(),
            },
            RsaPadding::Oaep {
                hash: DigestAlg::Sha384,
                mgf1: DigestAlg::Sha1,
                label: vec![],
            },
        ];
        for p in &paddings {
            let wrapped = OsslKeyTransport.rsa_encrypt(&spki(&rsa), p, &cek).unwrap();
            assert_eq!(wrapped.len(), 256);
            assert_eq!(
                rsa_decrypt_with(&rsa, p, &wrapped).unwrap().expose(),
                cek,
                "{p:?}"
            );
        }
        // Wrong OAEP label or hash fails to decrypt.
        let wrapped = OsslKeyTransport
            .rsa_encrypt(&spki(&rsa), &paddings[2], &cek)
            .unwrap();
        let other = RsaPadding::Oaep {
            hash: DigestAlg::Sha256,
            mgf1: DigestAlg::Sha256,
            label: b"other".to_vec(),
        };
        assert!(matches!(
            rsa_decrypt_with(&rsa, &other, &wrapped),
            Err(EngineError::DecryptFailed(_))
        ));
        assert!(matches!(
            rsa_decrypt_with(&rsa, &paddings[3], &wrapped),
            Err(EngineError::DecryptFailed(_))
        ));
        // A different key cannot decrypt (OAEP: always an error).
        let other_key = rsa_key(1024);
        assert!(rsa_decrypt_with(&other_key, &paddings[2], &wrapped).is_err());
        // Garbage input never panics.
        assert!(rsa_decrypt_with(&rsa, &paddings[0], &[]).is_err());
        assert!(rsa_decrypt_with(&rsa, &paddings[2], &[1u8; 300]).is_err());
    }

    #[test]
    fn ecdh_both_sides_agree_and_kdf() {
        for (nid, kdf) in [
            (Nid::X9_62_PRIME256V1, DigestAlg::Sha256),
            (Nid::SECP384R1, DigestAlg::Sha384),
        ] {
            let recipient = ec_key(nid);
            let (point, z_sender) = OsslKeyTransport.ecdh_ephemeral(&spki(&recipient)).unwrap();
            assert_eq!(point[0], 0x04, "uncompressed");
            let z_recipient = ecdh_with(&recipient, &point).unwrap();
            assert_eq!(z_sender.expose(), z_recipient.expose());
            let info = b"shared info";
            let a = OsslKeyTransport
                .kdf_x963(kdf, z_sender.expose(), info, 32)
                .unwrap();
            let b = OsslKeyTransport
                .kdf_x963(kdf, z_recipient.expose(), info, 32)
                .unwrap();
            assert_eq!(a.expose(), b.expose());
        }
    }

    #[test]
    fn ecdh_rejects_bad_points() {
        let k = ec_key(Nid::X9_62_PRIME256V1);
        assert!(matches!(ecdh_with(&k, &[]), Err(EngineError::Invalid(_))));
        let mut off_curve = vec![4u8];
        off_curve.extend_from_slice(&[1u8; 64]);
        assert!(matches!(
            ecdh_with(&k, &off_curve),
            Err(EngineError::Invalid(_))
        ));
        // A P-384 point on a P-256 key.
        let (p384, _) = OsslKeyTransport
            .ecdh_ephemeral(&spki(&ec_key(Nid::SECP384R1)))
            .unwrap();
        assert!(ecdh_with(&k, &p384).is_err());
        assert!(ecdh_with(&rsa_key(2048), &p384).is_err());
        assert!(
            OsslKeyTransport
                .ecdh_ephemeral(&spki(&rsa_key(2048)))
                .is_err()
        );
    }
}
