//! Content encryption: AES-CBC and AES-GCM, plus DES-EDE3-CBC, DES-CBC and RC2-CBC for old mail.
//!
//! CBC modes use PKCS#7 padding; GCM takes any nonce length and a 4..=16-byte tag (16 when
//! encrypting). Each call is one pass over preallocated output with no per-block allocation.
//! Key, IV and tag sizes are checked here before OpenSSL sees them. A padding or tag failure
//! is [`EngineError::DecryptFailed`]; plaintext from a failed GCM decryption is never returned.
//! This module does not choose algorithms or generate keys and IVs.

use openssl::cipher::{Cipher, CipherRef};
use openssl::cipher_ctx::{CipherCtx, CipherCtxRef};
use openssl::error::ErrorStack;
use openssl::nid::Nid;
use smimekit_core::{ContentCipher, ContentCrypter, EngineError};

use crate::{decrypt_failed, ffi, invalid, load_legacy_provider, unsupported};

/// Input is fed to OpenSSL in pieces that fit a C `int`.
const CHUNK: usize = 1 << 30;
/// The GCM tag we produce.
const GCM_TAG_LEN: usize = 16;

/// [`ContentCrypter`] on OpenSSL.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsslCrypter;

/// The OpenSSL cipher for one of ours.
fn select(cipher: ContentCipher) -> Result<&'static CipherRef, EngineError> {
    let legacy = |nid: Nid, name: &str| {
        load_legacy_provider()?;
        Cipher::from_nid(nid)
            .ok_or_else(|| EngineError::Unsupported(format!("{name} not in this OpenSSL")))
    };
    Ok(match cipher {
        ContentCipher::Aes128Cbc => Cipher::aes_128_cbc(),
        ContentCipher::Aes192Cbc => Cipher::aes_192_cbc(),
        ContentCipher::Aes256Cbc => Cipher::aes_256_cbc(),
        ContentCipher::Aes128Gcm => Cipher::aes_128_gcm(),
        ContentCipher::Aes192Gcm => Cipher::aes_192_gcm(),
        ContentCipher::Aes256Gcm => Cipher::aes_256_gcm(),
        ContentCipher::DesEde3Cbc => Cipher::des_ede3_cbc(),
        ContentCipher::DesCbc => legacy(Nid::DES_CBC, "DES-CBC")?,
        ContentCipher::Rc2Cbc(_) => legacy(Nid::RC2_CBC, "RC2-CBC")?,
        #[allow(unreachable_patterns)] // ContentCipher is non_exhaustive.
        other => return Err(EngineError::Unsupported(format!("cipher {other:?}"))),
    })
}

/// Sets up `ctx` for `cipher` with key and IV, checking their sizes first.
fn init(
    ctx: &mut CipherCtxRef,
    encrypt: bool,
    cipher: ContentCipher,
    key: &[u8],
    iv: &[u8],
) -> Result<(), EngineError> {
    let evp = select(cipher)?;
    let name = cipher.name();
    let init_cipher =
        |ctx: &mut CipherCtxRef, c: Option<&CipherRef>, k: Option<&[u8]>, v: Option<&[u8]>| {
            if encrypt {
                ctx.encrypt_init(c, k, v)
            } else {
                ctx.decrypt_init(c, k, v)
            }
        };
    init_cipher(ctx, Some(evp), None, None).map_err(unsupported("cipher init"))?;

    if let ContentCipher::Rc2Cbc(bits) = cipher {
        if !(1..=1024).contains(&bits) {
            return Err(EngineError::Invalid(format!(
                "RC2 effective key bits {bits} out of range"
            )));
        }
        if key.is_empty() || key.len() > 128 {
            return Err(EngineError::Invalid(format!(
                "RC2 key of {} bytes",
                key.len()
            )));
        }
        ctx.set_key_length(key.len())
            .map_err(invalid("RC2 key length"))?;
        ffi::set_rc2_key_bits(ctx, bits).map_err(unsupported("RC2 effective key bits"))?;
    }
    if cipher.is_aead() {
        if iv.is_empty() {
            return Err(EngineError::Invalid("empty GCM nonce".into()));
        }
        if iv.len() != ctx.iv_length() {
            ctx.set_iv_length(iv.len())
                .map_err(invalid("GCM nonce length"))?;
        }
    }
    // These checks also guard the `openssl` crate's own length assertions.
    if key.len() != ctx.key_length() {
        return Err(EngineError::Invalid(format!(
            "{name} needs a {}-byte key, got {}",
            ctx.key_length(),
            key.len()
        )));
    }
    if iv.len() != ctx.iv_length() {
        return Err(EngineError::Invalid(format!(
            "{name} needs a {}-byte IV, got {}",
            ctx.iv_length(),
            iv.len()
        )));
    }
    init_cipher(ctx, None, Some(key), Some(iv)).map_err(invalid("cipher key/IV"))
}

/// Runs all of `input` through `ctx` and finalises, into one preallocated buffer.
fn run(ctx: &mut CipherCtxRef, input: &[u8]) -> Result<Vec<u8>, ErrorStack> {
    let block = ctx.block_size();
    // Room for every update's `len + block` bound and the final block.
    let mut out = vec![0u8; input.len() + 2 * block];
    let mut n = 0;
    for chunk in input.chunks(CHUNK) {
        n += ctx.cipher_update(chunk, Some(&mut out[n..]))?;
    }
    n += ctx.cipher_final(&mut out[n..])?;
    out.truncate(n);
    Ok(out)
}

/// Feeds additional authenticated data.
fn add_aad(ctx: &mut CipherCtxRef, aad: &[u8]) -> Result<(), EngineError> {
    for chunk in aad.chunks(CHUNK) {
        ctx.cipher_update(chunk, None).map_err(invalid("GCM AAD"))?;
    }
    Ok(())
}

impl ContentCrypter for OsslCrypter {
    fn encrypt(
        &self,
        cipher: ContentCipher,
        key: &[u8],
        iv: &[u8],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), EngineError> {
        let mut ctx = CipherCtx::new().map_err(unsupported("cipher context"))?;
        init(&mut ctx, true, cipher, key, iv)?;
        if cipher.is_aead() {
            add_aad(&mut ctx, aad)?;
        }
        let ciphertext = run(&mut ctx, plaintext).map_err(invalid("encrypt"))?;
        let mut tag = Vec::new();
        if cipher.is_aead() {
            tag = vec![0u8; GCM_TAG_LEN];
            ctx.tag(&mut tag).map_err(invalid("GCM tag"))?;
        }
        Ok((ciphertext, tag))
    }

    fn decrypt(
        &self,
        cipher: ContentCipher,
        key: &[u8],
        iv: &[u8],
        aad: &[u8],
        ciphertext: &[u8],
        tag: Option<&[u8]>,
    ) -> Result<Vec<u8>, EngineError> {
        let mut ctx = CipherCtx::new().map_err(unsupported("cipher context"))?;
        init(&mut ctx, false, cipher, key, iv)?;
        if cipher.is_aead() {
            let tag =
                tag.ok_or_else(|| EngineError::Invalid("GCM decryption needs the tag".into()))?;
            if !(4..=16).contains(&tag.len()) {
                return Err(EngineError::Invalid(format!(
                    "GCM tag of {} bytes",
                    tag.len()
                )));
            }
            ctx.set_tag(tag).map_err(invalid("GCM tag"))?;
            add_aad(&mut ctx, aad)?;
            return run(&mut ctx, ciphertext)
                .map_err(|_| EngineError::DecryptFailed("GCM authentication tag mismatch".into()));
        }
        if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(ctx.block_size()) {
            return Err(EngineError::DecryptFailed(format!(
                "{} ciphertext of {} bytes is not whole blocks",
                cipher.name(),
                ciphertext.len()
            )));
        }
        run(&mut ctx, ciphertext).map_err(decrypt_failed("bad padding or wrong key"))
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    const C: OsslCrypter = OsslCrypter;

    #[test]
    fn aes_cbc_round_trip() {
        for (cipher, klen) in [
            (ContentCipher::Aes128Cbc, 16),
            (ContentCipher::Aes192Cbc, 24),
            (ContentCipher::Aes256Cbc, 32),
        ] {
            let key = vec![7u8; klen];
            let iv = [9u8; 16];
            for len in [0usize, 1, 15, 16, 17, 1000] {
                let pt: Vec<u8> = (0..len).map(|i| i as u8).collect();
                let (ct, tag) = C.encrypt(cipher, &key, &iv, b"", &pt).unwrap();
                assert!(tag.is_empty());
                assert_eq!(ct.len(), (len / 16 + 1) * 16);
                assert_eq!(C.decrypt(cipher, &key, &iv, b"", &ct, None).unwrap(), pt);
            }
        }
    }

    #[test]
    fn aes_cbc_known_vector() {
        // NIST SP 800-38A F.2.1 first block, plus the PKCS#7 padding block.
        let key = hex::decode("2b7e151628aed2a6abf7158809cf4f3c").unwrap();
        let iv = hex::decode("000102030405060708090a0b0c0d0e0f").unwrap();
        let pt = hex::decode("6bc1bee22e409f96e93d7e117393172a").unwrap();
        let (ct, _) = C
            .encrypt(ContentCipher::Aes128Cbc, &key, &iv, b"", &pt)
            .unwrap();
        assert_eq!(hex::encode(&ct[..16]), "7649abac8119b246cee98e9b12e9197d");
    }

    #[test]
    fn aes_cbc_failures() {
        let key = [1u8; 32];
        let iv = [2u8; 16];
        let (ct, _) = C
            .encrypt(ContentCipher::Aes256Cbc, &key, &iv, b"", b"secret message")
            .unwrap();
        // Wrong key: padding check fails (with overwhelming probability for this fixed case).
        let r = C.decrypt(ContentCipher::Aes256Cbc, &[3u8; 32], &iv, b"", &ct, None);
        assert!(matches!(r, Err(EngineError::DecryptFailed(_))), "{r:?}");
        let r = C.decrypt(ContentCipher::Aes256Cbc, &key, &iv, b"", &ct[..15], None);
        assert!(matches!(r, Err(EngineError::DecryptFailed(_))));
        let r = C.decrypt(ContentCipher::Aes256Cbc, &key, &iv, b"", &[], None);
        assert!(matches!(r, Err(EngineError::DecryptFailed(_))));
        // Wrong sizes are invalid input, never a panic.
        assert!(matches!(
            C.decrypt(ContentCipher::Aes256Cbc, &key[..16], &iv, b"", &ct, None),
            Err(EngineError::Invalid(_))
        ));
        assert!(matches!(
            C.encrypt(ContentCipher::Aes256Cbc, &key, &iv[..8], b"", b"x"),
            Err(EngineError::Invalid(_))
        ));
        assert!(matches!(
            C.encrypt(ContentCipher::Aes128Cbc, &[], &[], b"", b"x"),
            Err(EngineError::Invalid(_))
        ));
    }

    #[test]
    fn aes_gcm_round_trip_and_tamper() {
        for (cipher, klen) in [
            (ContentCipher::Aes128Gcm, 16),
            (ContentCipher::Aes192Gcm, 24),
            (ContentCipher::Aes256Gcm, 32),
        ] {
            let key = vec![5u8; klen];
            for nonce_len in [12usize, 8, 16] {
                let iv = vec![6u8; nonce_len];
                let (ct, tag) = C
                    .encrypt(cipher, &key, &iv, b"header", b"attack at dawn")
                    .unwrap();
                assert_eq!(tag.len(), 16);
                assert_eq!(ct.len(), 14);
                let pt = C
                    .decrypt(cipher, &key, &iv, b"header", &ct, Some(&tag))
                    .unwrap();
                assert_eq!(pt, b"attack at dawn");
                // Truncated tag (12 bytes) still authenticates.
                let pt = C
                    .decrypt(cipher, &key, &iv, b"header", &ct, Some(&tag[..12]))
                    .unwrap();
                assert_eq!(pt, b"attack at dawn");

                let mut bad_ct = ct.clone();
                bad_ct[0] ^= 1;
                let mut bad_tag = tag.clone();
                bad_tag[15] ^= 1;
                for (c, t, a) in [
                    (&bad_ct, &tag, &b"header"[..]),
                    (&ct, &bad_tag, &b"header"[..]),
                    (&ct, &tag, &b"Header"[..]),
                ] {
                    let r = C.decrypt(cipher, &key, &iv, a, c, Some(t));
                    assert!(matches!(r, Err(EngineError::DecryptFailed(_))), "{r:?}");
                }
                assert!(matches!(
                    C.decrypt(cipher, &key, &iv, b"header", &ct, None),
                    Err(EngineError::Invalid(_))
                ));
            }
            assert!(matches!(
                C.encrypt(cipher, &key, &[], b"", b"x"),
                Err(EngineError::Invalid(_))
            ));
        }
    }

    #[test]
    fn aes_gcm_known_vector() {
        // GCM spec (McGrew & Viega) test case 2: zero key, zero nonce, one zero block.
        let (ct, tag) = C
            .encrypt(
                ContentCipher::Aes128Gcm,
                &[0u8; 16],
                &[0u8; 12],
                b"",
                &[0u8; 16],
            )
            .unwrap();
        assert_eq!(hex::encode(ct), "0388dace60b6a392f328c2b971b2fe78");
        assert_eq!(hex::encode(tag), "ab6e47d42cec13bdf53a67b21257bddf");
    }

    /// Encrypts with the `openssl enc` CLI; `None` when the CLI is missing.
    fn openssl_enc(
        name: &str,
        key: &[u8],
        iv: &[u8],
        pt: &[u8],
        extra: &[&str],
    ) -> Option<Vec<u8>> {
        let dir =
            std::env::temp_dir().join(format!("smimekit-engine-enc-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let input = dir.join("in");
        std::fs::write(&input, pt).unwrap();
        let out = Command::new("openssl")
            .args([
                "enc",
                "-e",
                &format!("-{name}"),
                "-K",
                &hex::encode(key),
                "-iv",
                &hex::encode(iv),
            ])
            .args(["-in"])
            .arg(&input)
            .args(extra)
            .output()
            .ok()?;
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(out.stdout)
    }

    #[test]
    fn legacy_ciphers_match_openssl_cli() {
        let pt = b"The quick brown fox jumps over the lazy dog";
        let iv = [0x11u8; 8];
        let cases: Vec<(ContentCipher, &str, Vec<u8>, Vec<&str>)> = vec![
            (
                ContentCipher::DesEde3Cbc,
                "des-ede3-cbc",
                (1..=24).collect(),
                vec![],
            ),
            (
                ContentCipher::DesCbc,
                "des-cbc",
                (1..=8).collect(),
                vec!["-provider", "legacy", "-provider", "default"],
            ),
            (
                ContentCipher::Rc2Cbc(40),
                "rc2-40-cbc",
                (1..=5).collect(),
                vec!["-provider", "legacy", "-provider", "default"],
            ),
            (
                ContentCipher::Rc2Cbc(64),
                "rc2-64-cbc",
                (1..=8).collect(),
                vec!["-provider", "legacy", "-provider", "default"],
            ),
            (
                ContentCipher::Rc2Cbc(128),
                "rc2-cbc",
                (1..=16).collect(),
                vec!["-provider", "legacy", "-provider", "default"],
            ),
        ];
        for (cipher, name, key, extra) in cases {
            let Some(ct) = openssl_enc(name, &key, &iv, pt, &extra) else {
                eprintln!("openssl CLI not available; skipping {name}");
                return;
            };
            let got = C.decrypt(cipher, &key, &iv, b"", &ct, None).unwrap();
            assert_eq!(got, pt, "{name}");
            let (ours, _) = C.encrypt(cipher, &key, &iv, b"", pt).unwrap();
            assert_eq!(ours, ct, "{name}");
        }
    }

    #[test]
    fn rc2_40_hardcoded_vector() {
        // `openssl enc -rc2-40-cbc -K 0102030405 -iv 1111111111111111 -provider legacy
        //  -provider default` of "hello, rc2".
        let ct = hex::decode(RC2_40_CT).unwrap();
        let pt = C
            .decrypt(
                ContentCipher::Rc2Cbc(40),
                &[1, 2, 3, 4, 5],
                &[0x11; 8],
                b"",
                &ct,
                None,
            )
            .unwrap();
        assert_eq!(pt, b"hello, rc2");
    }
    const RC2_40_CT: &str = "6ca6de74a2162685c95ff46481edc0c2";

    #[test]
    fn rc2_effective_bits_differ_from_key_length() {
        // A 16-byte key with 40 effective bits differs from the same key at 128 bits.
        let key = [0x42u8; 16];
        let iv = [0u8; 8];
        let (a, _) = C
            .encrypt(ContentCipher::Rc2Cbc(40), &key, &iv, b"", b"data")
            .unwrap();
        let (b, _) = C
            .encrypt(ContentCipher::Rc2Cbc(128), &key, &iv, b"", b"data")
            .unwrap();
        assert_ne!(a, b);
        assert_eq!(
            C.decrypt(ContentCipher::Rc2Cbc(40), &key, &iv, b"", &a, None)
                .unwrap(),
            b"data"
        );
        assert!(matches!(
            C.encrypt(ContentCipher::Rc2Cbc(0), &key, &iv, b"", b"x"),
            Err(EngineError::Invalid(_))
        ));
    }

    #[test]
    fn large_aes_cbc_is_fast() {
        let data = vec![0xA5u8; 10 << 20];
        let key = [9u8; 32];
        let iv = [8u8; 16];
        let start = std::time::Instant::now();
        let (ct, _) = C
            .encrypt(ContentCipher::Aes256Cbc, &key, &iv, b"", &data)
            .unwrap();
        let pt = C
            .decrypt(ContentCipher::Aes256Cbc, &key, &iv, b"", &ct, None)
            .unwrap();
        let elapsed = start.elapsed();
        assert_eq!(pt.len(), data.len());
        assert!(pt == data);
        // OpenSSL does this in tens of milliseconds; generous bound for debug builds and CI.
        assert!(elapsed.as_secs() < 5, "{elapsed:?}");
    }
}
