//! The public-key side of recipients: RSA key transport (PKCS#1 v1.5 and OAEP), ephemeral-static
//! ECDH, the ANSI X9.63 KDF and RFC 3394 AES key wrap.
//!
//! Only public keys are used here; the recipient's private-key side is in `private.rs`. The KDF
//! and key wrap return [`Secret`]s. Nothing here picks algorithms or parses CMS structures.

use openssl::bn::BigNumContext;
use openssl::cipher::{Cipher, CipherRef};
use openssl::cipher_ctx::{CipherCtx, CipherCtxFlags};
use openssl::derive::Deriver;
use openssl::ec::{EcKey, PointConversionForm};
use openssl::error::ErrorStack;
use openssl::hash::Hasher;
use openssl::pkey::{Id, PKey, PKeyRef};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Padding;
use smimekit_core::{DigestAlg, EngineError, KeyTransport, RsaPadding, Secret};
use zeroize::Zeroizing;

use crate::verify::public_key;
use crate::{decrypt_failed, invalid, md_ref, message_digest, unsupported};

/// [`KeyTransport`] on OpenSSL.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsslKeyTransport;

/// Sets RSA padding (and OAEP parameters) on an encrypt or decrypt context.
pub(crate) fn set_rsa_padding<T>(
    ctx: &mut PkeyCtx<T>,
    padding: &RsaPadding,
) -> Result<(), EngineError> {
    match padding {
        RsaPadding::Pkcs1v15 => ctx
            .set_rsa_padding(Padding::PKCS1)
            .map_err(unsupported("PKCS#1 padding")),
        RsaPadding::Oaep { hash, mgf1, label } => {
            ctx.set_rsa_padding(Padding::PKCS1_OAEP)
                .map_err(unsupported("OAEP padding"))?;
            ctx.set_rsa_oaep_md(md_ref(*hash)?)
                .map_err(unsupported("OAEP hash"))?;
            ctx.set_rsa_mgf1_md(md_ref(*mgf1)?)
                .map_err(unsupported("MGF1 hash"))?;
            if !label.is_empty() {
                ctx.set_rsa_oaep_label(label)
                    .map_err(unsupported("OAEP label"))?;
            }
            Ok(())
        }
        #[allow(unreachable_patterns)] // RsaPadding is non_exhaustive.
        other => Err(EngineError::Unsupported(format!(
            "RSA padding {}",
            other.name()
        ))),
    }
}

/// The AES key-wrap cipher for a KEK length.
fn wrap_cipher(kek: &[u8]) -> Result<&'static CipherRef, EngineError> {
    Ok(match kek.len() {
        16 => Cipher::aes_128_wrap(),
        24 => Cipher::aes_192_wrap(),
        32 => Cipher::aes_256_wrap(),
        n => {
            return Err(EngineError::Invalid(format!(
                "AES key-wrap KEK of {n} bytes"
            )));
        }
    })
}

/// One pass of AES key wrap or unwrap; the output buffer is zeroized on drop.
fn key_wrap(
    cipher: &CipherRef,
    kek: &[u8],
    input: &[u8],
    wrap: bool,
) -> Result<Zeroizing<Vec<u8>>, ErrorStack> {
    let mut ctx = CipherCtx::new()?;
    ctx.set_flags(CipherCtxFlags::FLAG_WRAP_ALLOW);
    if wrap {
        ctx.encrypt_init(Some(cipher), Some(kek), None)?;
    } else {
        ctx.decrypt_init(Some(cipher), Some(kek), None)?;
    }
    // Wrap adds 8 bytes, unwrap removes 8; leave room for a final call's block as well.
    let mut out = Zeroizing::new(vec![0u8; input.len() + 16]);
    let mut n = ctx.cipher_update(input, Some(&mut out[..]))?;
    n += ctx.cipher_final(&mut out[n..])?;
    out.truncate(n);
    Ok(out)
}

impl KeyTransport for OsslKeyTransport {
    fn rsa_encrypt(
        &self,
        spki_der: &[u8],
        padding: &RsaPadding,
        key: &[u8],
    ) -> Result<Vec<u8>, EngineError> {
        let pkey = public_key(spki_der)?;
        if pkey.id() != Id::RSA {
            return Err(EngineError::Invalid(
                "key transport needs an RSA key".into(),
            ));
        }
        let mut ctx = PkeyCtx::new(&pkey).map_err(unsupported("RSA context"))?;
        ctx.encrypt_init().map_err(unsupported("RSA encrypt"))?;
        set_rsa_padding(&mut ctx, padding)?;
        let mut out = Vec::new();
        ctx.encrypt_to_vec(key, &mut out)
            .map_err(invalid("RSA encrypt (key too long for modulus?)"))?;
        Ok(out)
    }

    fn ecdh_ephemeral(&self, spki_der: &[u8]) -> Result<(Vec<u8>, Secret), EngineError> {
        let peer = public_key(spki_der)?;
        if peer.id() != Id::EC {
            return Err(EngineError::Unsupported(
                "ECDH needs an EC key on a prime curve".into(),
            ));
        }
        let peer_ec = peer.ec_key().map_err(invalid("EC key"))?;
        let group = peer_ec.group();
        let eph = EcKey::generate(group).map_err(unsupported("ephemeral EC key"))?;
        let mut bn = BigNumContext::new().map_err(unsupported("bignum context"))?;
        let point = eph
            .public_key()
            .to_bytes(group, PointConversionForm::UNCOMPRESSED, &mut bn)
            .map_err(unsupported("EC point encoding"))?;
        let eph = PKey::from_ec_key(eph).map_err(unsupported("ephemeral EC key"))?;
        let z = derive(&eph, &peer)?;
        Ok((point, z))
    }

    fn kdf_x963(
        &self,
        digest: DigestAlg,
        z: &[u8],
        shared_info: &[u8],
        len: usize,
    ) -> Result<Secret, EngineError> {
        let md = message_digest(digest)?;
        let hlen = digest.output_len();
        let blocks = len.div_ceil(hlen);
        let Ok(last) = u32::try_from(blocks) else {
            return Err(EngineError::Invalid(format!(
                "X9.63 KDF output of {len} bytes is too long"
            )));
        };
        // Allocated once, so no copy of key material is left behind by a reallocation.
        let mut out = Zeroizing::new(Vec::with_capacity(blocks * hlen));
        for counter in 1..=last {
            let mut h = Hasher::new(md).map_err(unsupported("KDF digest"))?;
            h.update(z).map_err(unsupported("KDF digest"))?;
            h.update(&counter.to_be_bytes())
                .map_err(unsupported("KDF digest"))?;
            h.update(shared_info).map_err(unsupported("KDF digest"))?;
            let mut block = h.finish().map_err(unsupported("KDF digest"))?;
            out.extend_from_slice(&block);
            block.iter_mut().for_each(|b| *b = 0);
        }
        out.truncate(len);
        Ok(Secret::new(std::mem::take(&mut *out)))
    }

    fn aes_wrap(&self, kek: &[u8], key: &[u8]) -> Result<Vec<u8>, EngineError> {
        let cipher = wrap_cipher(kek)?;
        if key.len() < 16 || !key.len().is_multiple_of(8) {
            return Err(EngineError::Invalid(format!(
                "cannot AES-wrap a {}-byte key",
                key.len()
            )));
        }
        key_wrap(cipher, kek, key, true)
            .map(|w| w.to_vec())
            .map_err(invalid("AES key wrap"))
    }

    fn aes_unwrap(&self, kek: &[u8], wrapped: &[u8]) -> Result<Secret, EngineError> {
        let cipher = wrap_cipher(kek)?;
        if wrapped.len() < 24 || !wrapped.len().is_multiple_of(8) {
            return Err(EngineError::Invalid(format!(
                "AES-wrapped key of {} bytes",
                wrapped.len()
            )));
        }
        let mut out = key_wrap(cipher, kek, wrapped, false)
            .map_err(decrypt_failed("AES key unwrap (wrong KEK or tampered)"))?;
        Ok(Secret::new(std::mem::take(&mut *out)))
    }

    fn des3_unwrap(&self, kek: &[u8], wrapped: &[u8]) -> Result<Secret, EngineError> {
        if kek.len() != 24 || wrapped.len() < 16 || !wrapped.len().is_multiple_of(8) {
            return Err(EngineError::Invalid(format!(
                "3DES key unwrap of {} bytes with a {}-byte KEK",
                wrapped.len(),
                kek.len()
            )));
        }
        let cipher = openssl::cipher::Cipher::fetch(None, "DES3-WRAP", None)
            .map_err(unsupported("3DES key wrap"))?;
        let mut out = key_wrap(&cipher, kek, wrapped, false)
            .map_err(decrypt_failed("3DES key unwrap (wrong KEK or tampered)"))?;
        Ok(Secret::new(std::mem::take(&mut *out)))
    }
}

/// ECDH between our key and the peer's public key: the shared secret Z.
pub(crate) fn derive<T, U>(ours: &PKeyRef<T>, peer: &PKeyRef<U>) -> Result<Secret, EngineError>
where
    T: openssl::pkey::HasPrivate,
    U: openssl::pkey::HasPublic,
{
    let mut d = Deriver::new(ours).map_err(unsupported("ECDH"))?;
    d.set_peer(peer).map_err(invalid("ECDH peer key"))?;
    d.derive_to_vec().map(Secret::new).map_err(invalid("ECDH"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: OsslKeyTransport = OsslKeyTransport;

    #[test]
    fn kdf_x963_vectors() {
        // NIST CAVS ANSX9.63 SHA-256, no SharedInfo.
        let z = hex::decode("96c05619d56c328ab95fe84b18264b08725b85e33fd34f08").unwrap();
        let k = T.kdf_x963(DigestAlg::Sha256, &z, b"", 16).unwrap();
        assert_eq!(hex::encode(k.expose()), "443024c3dae66b95e6f5670601558f71");
        // Several blocks with SharedInfo, cross-checked with `openssl kdf ... X963KDF`.
        let k = T
            .kdf_x963(DigestAlg::Sha384, &[1, 2, 3, 4, 5], &[0xa0, 0xa1, 0xa2], 80)
            .unwrap();
        assert_eq!(
            hex::encode(k.expose()),
            "130e4ddecdfd6bff84fe0c9851401202835aebe7f562fc4c3dcf1ee8e50a4dfb\
             5468268249159e3f5b5a06067ee524d2005cf1a858f96d2f5b968bd78ce9396a\
             14bc61a926e64376fe69b94856921000"
        );
        assert!(
            T.kdf_x963(DigestAlg::Sha256, &z, b"", 0)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn aes_wrap_rfc3394_vectors() {
        let kek = hex::decode("000102030405060708090A0B0C0D0E0F").unwrap();
        let key = hex::decode("00112233445566778899AABBCCDDEEFF").unwrap();
        let wrapped = T.aes_wrap(&kek, &key).unwrap();
        assert_eq!(
            hex::encode_upper(&wrapped),
            "1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5"
        );
        assert_eq!(T.aes_unwrap(&kek, &wrapped).unwrap().expose(), key);

        // RFC 3394 4.6: 256-bit key data with a 256-bit KEK.
        let kek = hex::decode("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F")
            .unwrap();
        let key = hex::decode("00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F")
            .unwrap();
        let wrapped = T.aes_wrap(&kek, &key).unwrap();
        assert_eq!(
            hex::encode_upper(&wrapped),
            "28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21"
        );
        assert_eq!(T.aes_unwrap(&kek, &wrapped).unwrap().expose(), key);

        // RFC 3394 4.2: 128-bit key data with a 192-bit KEK.
        let kek = hex::decode("000102030405060708090A0B0C0D0E0F1011121314151617").unwrap();
        let key = hex::decode("00112233445566778899AABBCCDDEEFF").unwrap();
        assert_eq!(
            hex::encode_upper(T.aes_wrap(&kek, &key).unwrap()),
            "96778B25AE6CA435F92B5B97C050AED2468AB8A17AD84E5D"
        );
    }

    #[test]
    fn aes_unwrap_failures() {
        let kek = [7u8; 16];
        let mut wrapped = T.aes_wrap(&kek, &[1u8; 32]).unwrap();
        assert!(matches!(
            T.aes_unwrap(&[8u8; 16], &wrapped),
            Err(EngineError::DecryptFailed(_))
        ));
        wrapped[3] ^= 1;
        assert!(matches!(
            T.aes_unwrap(&kek, &wrapped),
            Err(EngineError::DecryptFailed(_))
        ));
        assert!(matches!(
            T.aes_unwrap(&kek, &wrapped[..20]),
            Err(EngineError::Invalid(_))
        ));
        assert!(matches!(
            T.aes_unwrap(&[0u8; 15], &wrapped),
            Err(EngineError::Invalid(_))
        ));
        assert!(matches!(
            T.aes_wrap(&kek, &[0u8; 12]),
            Err(EngineError::Invalid(_))
        ));
        assert!(matches!(
            T.aes_wrap(&kek, &[]),
            Err(EngineError::Invalid(_))
        ));
    }

    #[test]
    fn rsa_encrypt_rejects_non_rsa_and_oversize() {
        let ec = crate::testutil::ec_key(openssl::nid::Nid::X9_62_PRIME256V1);
        let spki = crate::testutil::spki(&ec);
        assert!(
            T.rsa_encrypt(&spki, &RsaPadding::Pkcs1v15, &[0u8; 16])
                .is_err()
        );
        assert!(
            T.rsa_encrypt(b"junk", &RsaPadding::Pkcs1v15, &[0u8; 16])
                .is_err()
        );
        let rsa = crate::testutil::spki(&crate::testutil::rsa_key(2048));
        assert!(matches!(
            T.rsa_encrypt(&rsa, &RsaPadding::Pkcs1v15, &[0u8; 300]),
            Err(EngineError::Invalid(_))
        ));
    }
}
