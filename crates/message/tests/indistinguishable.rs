//! Decryption failures after the recipient is chosen cannot be told apart (issue 16, section 2):
//! an RSA PKCS#1 v1.5 block whose padding is wrong, one that holds a content key of the wrong
//! size, one that holds a wrong key of the right size, and a right key over content whose CBC
//! padding is damaged give the same error, do the same work (one RSA decryption, one content
//! decryption: implicit rejection, RFC 3218 §2.3) and take the same time.
//!
//! Time is compared robustly, not against a wall-clock threshold: the four cases are measured
//! interleaved, round after round (the fastest of three runs each), so that a busy machine
//! slows them alike; then for every
//! pair, the median of the per-round log ratios must stay within their spread (interquartile
//! range), or within 10% when the machine is quiet enough for the spread to be smaller. A positive control shows the comparison has power: a failure that skips the work
//! (a key with no recipient of its type) is found distinguishable by the same rule.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use async_trait::async_trait;
use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Padding;
use smimekit_core::{
    BareKey, CertDer, ContentCipher, ContentCrypter, CryptoEngine, DecryptionKey, EngineError,
    KeyKind, KeyStoreError, PrivateKey, RsaPadding, Secret, SignatureScheme,
};
use smimekit_engine_openssl::{OsslCrypter, ecdh_with, rsa_decrypt_with};
use smimekit_message::envelope::{self, EncryptOptions};
use smimekit_message::smime::{self, OpenOptions};

fn pki(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/pki")
        .join(name)
}

fn alice_key() -> PKey<Private> {
    PKey::private_key_from_pem(&std::fs::read(pki("alice.key")).unwrap()).unwrap()
}

fn alice_cert() -> CertDer {
    let pem = std::fs::read(pki("alice.pem")).unwrap();
    CertDer::from(
        openssl::x509::X509::from_pem(&pem)
            .unwrap()
            .to_der()
            .unwrap(),
    )
}

/// Deterministic randomness (SplitMix64): the content key, the IV and the stand-in keys of
/// failed unwraps are the same on every run, so that the one answer checked first does not
/// depend on the 1 in 256 chance of a random key "decrypting" CBC content to valid padding.
#[derive(Debug)]
struct Seeded(std::sync::atomic::AtomicU64);

impl smimekit_core::Primitives for Seeded {
    fn digest(
        &self,
        alg: smimekit_core::DigestAlg,
        data: &[&[u8]],
    ) -> Result<Vec<u8>, EngineError> {
        smimekit_engine_openssl::OsslPrimitives.digest(alg, data)
    }

    fn fill_random(&self, buf: &mut [u8]) -> Result<(), EngineError> {
        for b in buf {
            let mut z = self.0.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            *b = (z ^ (z >> 31)) as u8;
        }
        Ok(())
    }
}

/// OpenSSL's content decrypter, counting its calls.
#[derive(Debug, Default)]
struct Counting(AtomicUsize);

impl ContentCrypter for Counting {
    fn encrypt(
        &self,
        cipher: ContentCipher,
        key: &[u8],
        iv: &[u8],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), EngineError> {
        OsslCrypter.encrypt(cipher, key, iv, aad, plaintext)
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
        self.0.fetch_add(1, Ordering::Relaxed);
        OsslCrypter.decrypt(cipher, key, iv, aad, ciphertext, tag)
    }
}

/// Alice's soft key with her certificate, counting its RSA decryptions.
#[derive(Debug)]
struct Alice {
    key: PKey<Private>,
    cert: CertDer,
    unwraps: AtomicUsize,
}

#[async_trait]
impl PrivateKey for Alice {
    fn certificate(&self) -> &CertDer {
        &self.cert
    }

    fn chain(&self) -> &[CertDer] {
        &[]
    }

    fn kind(&self) -> KeyKind {
        KeyKind::Rsa { bits: 2048 }
    }

    async fn sign_digest(&self, _: SignatureScheme, _: &[u8]) -> Result<Vec<u8>, KeyStoreError> {
        Err(KeyStoreError::Unsupported {
            key: "alice".into(),
            detail: "decryption only".into(),
        })
    }

    async fn decrypt_key(
        &self,
        padding: &RsaPadding,
        wrapped: &[u8],
    ) -> Result<Secret, KeyStoreError> {
        self.unwraps.fetch_add(1, Ordering::Relaxed);
        rsa_decrypt_with(&self.key, padding, wrapped).map_err(|e| KeyStoreError::Failed {
            key: "alice".into(),
            detail: e.to_string(),
        })
    }

    async fn ecdh(&self, _: &[u8]) -> Result<Secret, KeyStoreError> {
        Err(KeyStoreError::Unsupported {
            key: "alice".into(),
            detail: "RSA".into(),
        })
    }
}

/// A bare EC key: no recipient of an RSA-only message is of its type.
#[derive(Debug)]
struct EcBare(PKey<Private>);

#[async_trait]
impl BareKey for EcBare {
    fn id(&self) -> &str {
        "ec"
    }

    fn kind(&self) -> KeyKind {
        KeyKind::Ec { curve: "P-256" }
    }

    async fn decrypt_key(&self, _: &RsaPadding, _: &[u8]) -> Result<Secret, KeyStoreError> {
        Err(KeyStoreError::Unsupported {
            key: "ec".into(),
            detail: "EC".into(),
        })
    }

    async fn ecdh(&self, peer: &[u8]) -> Result<Secret, KeyStoreError> {
        ecdh_with(&self.0, peer).map_err(|e| KeyStoreError::Failed {
            key: "ec".into(),
            detail: e.to_string(),
        })
    }
}

/// Replaces the 256-byte encryptedKey of `der` (one RSA-2048 recipient) with `block`.
fn with_wrapped_key(der: &[u8], block: &[u8]) -> Vec<u8> {
    let at = der
        .windows(4)
        .position(|w| w == [0x04, 0x82, 0x01, 0x00])
        .expect("the encryptedKey")
        + 4;
    let mut out = der.to_vec();
    out[at..at + 256].copy_from_slice(block);
    out
}

/// RSA encryption of `data` to Alice with `padding` (raw blocks for `Padding::NONE`).
fn rsa_to_alice(data: &[u8], padding: Padding) -> Vec<u8> {
    let rsa = alice_key().rsa().unwrap();
    let mut out = vec![0u8; 256];
    let n = rsa.public_encrypt(data, &mut out, padding).unwrap();
    out.truncate(n);
    out
}

fn quantile(sorted: &[f64], f: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * f).round() as usize]
}

/// How two interleaved timing samples compare: the median and interquartile range of the
/// per-round log ratio. Pairing by round cancels what a busy machine does to both at once.
fn log_ratios(a: &[f64], b: &[f64]) -> (f64, f64) {
    let mut r: Vec<f64> = a.iter().zip(b).map(|(x, y)| (x / y).ln()).collect();
    r.sort_by(|x, y| x.total_cmp(y));
    (quantile(&r, 0.5), quantile(&r, 0.75) - quantile(&r, 0.25))
}

/// Whether two samples are indistinguishable: the median log ratio is within its own spread,
/// or within 10% when the machine is quiet enough for the spread to be smaller.
fn indistinguishable(a: &[f64], b: &[f64]) -> bool {
    let (median, iqr) = log_ratios(a, b);
    median.abs() <= iqr.max(1.10f64.ln())
}

#[tokio::test]
async fn failures_after_the_recipient_is_chosen_cannot_be_told_apart() {
    let counting: &'static Counting = Box::leak(Box::default());
    let seeded: &'static Seeded = Box::leak(Box::new(Seeded(1.into())));
    let engine: CryptoEngine = CryptoEngine {
        primitives: seeded,
        crypter: counting,
        ..*smimekit_engine_openssl::engine()
    };
    // 4 MiB of content, so that skipping its decryption would show.
    let content: Vec<u8> = (0..4 << 20).map(|i| (i % 251) as u8).collect();
    let der = envelope::encrypt(
        &engine,
        &[alice_cert()],
        &content,
        &EncryptOptions {
            cipher: ContentCipher::Aes256Cbc,
            oaep: false,
        },
    )
    .unwrap();

    // A block whose PKCS#1 v1.5 padding is wrong (type 1, not 2).
    let mut raw = vec![0x55u8; 256];
    raw[0] = 0;
    raw[1] = 1;
    let bad_padding = with_wrapped_key(&der, &rsa_to_alice(&raw, Padding::NONE));
    // Well padded, but a 5-byte content key.
    let short_key = with_wrapped_key(&der, &rsa_to_alice(&[7u8; 5], Padding::PKCS1));
    // Well padded, a 32-byte key that is not the content's.
    let wrong_key = with_wrapped_key(&der, &rsa_to_alice(&[9u8; 32], Padding::PKCS1));
    // The right key; the last byte of the next-to-last block flipped, so the padding length
    // byte is wrong.
    let mut bad_cbc = der.clone();
    let at = bad_cbc.len() - 17;
    bad_cbc[at] ^= 1;

    let alice = Arc::new(Alice {
        key: alice_key(),
        cert: alice_cert(),
        unwraps: AtomicUsize::new(0),
    });
    let alice_keys = vec![DecryptionKey::from(alice.clone() as Arc<dyn PrivateKey>)];
    let ec = PKey::from_ec_key(
        EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap(),
    )
    .unwrap();
    let ec_keys = vec![DecryptionKey::Bare(Arc::new(EcBare(ec)))];

    let cases: Vec<(&str, &Vec<u8>, &Vec<DecryptionKey>)> = vec![
        ("bad v1.5 padding", &bad_padding, &alice_keys),
        ("content key of the wrong size", &short_key, &alice_keys),
        ("wrong content key", &wrong_key, &alice_keys),
        ("bad CBC padding", &bad_cbc, &alice_keys),
    ];
    // The positive control: no attempt at all, so no work.
    let control = ("no recipient for the key", &bad_padding, &ec_keys);

    // Same answer, same work.
    let mut first_error = None;
    for (what, msg, keys) in cases.iter().chain([&control]) {
        let (unwraps, decryptions) = (
            alice.unwraps.load(Ordering::Relaxed),
            counting.0.load(Ordering::Relaxed),
        );
        let e = smime::open(&engine, (*msg).clone(), keys, &OpenOptions::default())
            .await
            .err()
            .unwrap_or_else(|| panic!("{what}: opened"))
            .to_string();
        let first = first_error.get_or_insert_with(|| e.clone());
        assert_eq!(&e, first, "{what}");
        if *what != control.0 {
            assert_eq!(alice.unwraps.load(Ordering::Relaxed) - unwraps, 1, "{what}");
            assert_eq!(
                counting.0.load(Ordering::Relaxed) - decryptions,
                1,
                "{what}: content decryptions"
            );
        }
    }
    assert!(first_error.unwrap().contains("no key for any recipient"));

    // Same time: interleaved rounds, the order rotating so that no case is always first.
    const ROUNDS: usize = 31;
    let all: Vec<_> = cases.iter().chain([&control]).collect();
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(ROUNDS); all.len()];
    for round in 0..ROUNDS {
        for k in 0..all.len() {
            let i = (round + k) % all.len();
            let (_, msg, keys) = all[i];
            // The fastest of three runs: a run the scheduler interrupted says nothing.
            let mut fastest = f64::INFINITY;
            for _ in 0..3 {
                let msg = (*msg).clone();
                let start = Instant::now();
                // The outcome was checked above; here (where stand-in keys keep changing) a
                // rare CBC "success" with garbage takes the same time.
                let _ = smime::open(&engine, msg, keys, &OpenOptions::default()).await;
                fastest = fastest.min(start.elapsed().as_secs_f64());
            }
            samples[i].push(fastest);
        }
    }
    for (i, (what, _, _)) in all.iter().enumerate() {
        let mut sorted = samples[i].clone();
        sorted.sort_by(|x, y| x.total_cmp(y));
        let (ratio, spread) = log_ratios(&samples[i], &samples[0]);
        println!(
            "{what:32} median {:8.3} ms; vs the first: ratio {:.3} (log IQR {:.3})",
            quantile(&sorted, 0.5) * 1e3,
            ratio.exp(),
            spread
        );
    }
    let n = cases.len();
    for i in 0..n {
        for j in i + 1..n {
            assert!(
                indistinguishable(&samples[i], &samples[j]),
                "{} and {} can be told apart by their time: median log ratio and IQR {:?}",
                all[i].0,
                all[j].0,
                log_ratios(&samples[i], &samples[j])
            );
        }
    }
    // The rule has power: skipping the RSA and content work is found.
    assert!(
        !indistinguishable(&samples[0], &samples[n]),
        "the control ({}) should be distinguishable: median log ratio and IQR {:?}",
        control.0,
        log_ratios(&samples[0], &samples[n])
    );
}
