//! Decrypting with a key whose certificate is not known (a bare key), and the one error every
//! failed decryption gives, whichever recipient or step failed.
//!
//! The engine is OpenSSL's, with randomness from a seeded generator (so that the stand-in
//! key a failed RSA unwrap gets, and the content keys, are the same on every run) and a
//! content decrypter that counts its calls.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use async_trait::async_trait;
use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use smimekit_core::{
    BareKey, CertDer, ContentCipher, ContentCrypter, CryptoEngine, DecryptionKey, EngineError,
    KeyKind, KeyStoreError, Primitives, PrivateKey, RsaPadding, Secret, SignatureScheme,
};
use smimekit_engine_openssl::{OsslCrypter, OsslPrimitives, ecdh_with, rsa_decrypt_with};
use smimekit_message::MessageError;
use smimekit_message::envelope::{self, EncryptOptions};
use smimekit_message::smime::{self, OpenOptions};

const CONTENT: &[u8] = b"Content-Type: text/plain\r\n\r\nfor the recipient only\r\n";

/// Deterministic randomness (SplitMix64), so that every run sees the same keys and IVs.
#[derive(Debug)]
struct Seeded(AtomicU64);

impl Primitives for Seeded {
    fn digest(
        &self,
        alg: smimekit_core::DigestAlg,
        data: &[&[u8]],
    ) -> Result<Vec<u8>, EngineError> {
        OsslPrimitives.digest(alg, data)
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

/// OpenSSL's content decrypter, counting decryptions.
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

/// An engine of its own for one test: seeded randomness and a fresh counter.
fn test_engine(seed: u64) -> (CryptoEngine, &'static Counting) {
    let counting: &'static Counting = Box::leak(Box::default());
    let seeded: &'static Seeded = Box::leak(Box::new(Seeded(AtomicU64::new(seed))));
    let engine = CryptoEngine {
        primitives: seeded,
        crypter: counting,
        ..*smimekit_engine_openssl::engine()
    };
    (engine, counting)
}

fn pki(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/pki")
        .join(name)
}

fn key_file(name: &str) -> PKey<Private> {
    PKey::private_key_from_pem(&std::fs::read(pki(name)).unwrap()).unwrap()
}

fn cert_file(name: &str) -> CertDer {
    let pem = std::fs::read(pki(name)).unwrap();
    CertDer::from(
        openssl::x509::X509::from_pem(&pem)
            .unwrap()
            .to_der()
            .unwrap(),
    )
}

fn rsa_key() -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
}

fn ec_key(nid: Nid) -> PKey<Private> {
    PKey::from_ec_key(EcKey::generate(&EcGroup::from_curve_name(nid).unwrap()).unwrap()).unwrap()
}

fn kind_of(pkey: &PKey<Private>) -> KeyKind {
    match pkey.id() {
        openssl::pkey::Id::RSA => KeyKind::Rsa { bits: pkey.bits() },
        _ => match pkey.ec_key().unwrap().group().curve_name() {
            Some(Nid::X9_62_PRIME256V1) => KeyKind::Ec { curve: "P-256" },
            Some(Nid::SECP384R1) => KeyKind::Ec { curve: "P-384" },
            _ => KeyKind::Other,
        },
    }
}

/// What a test key's RSA decryption gives, to reach each failure step on purpose.
#[derive(Debug, Clone, Copy)]
enum Unwrap {
    /// The real decryption.
    Real,
    /// "Succeeds" with a wrong key of the right size: the content decryption must fail.
    WrongKey,
    /// "Succeeds" with a key of the wrong size.
    WrongSize,
    /// Fails as a token does on a bad block (CKR_ENCRYPTED_DATA_INVALID).
    TokenError,
}

/// A bare key from the engine's soft-key functions, counting its unwraps.
#[derive(Debug)]
struct TestKey {
    pkey: PKey<Private>,
    unwrap: Unwrap,
    calls: AtomicUsize,
}

impl TestKey {
    fn new(pkey: PKey<Private>) -> Arc<Self> {
        Self::with(pkey, Unwrap::Real)
    }

    fn with(pkey: PKey<Private>, unwrap: Unwrap) -> Arc<Self> {
        Arc::new(Self {
            pkey,
            unwrap,
            calls: AtomicUsize::new(0),
        })
    }

    fn rsa_decrypt(&self, padding: &RsaPadding, wrapped: &[u8]) -> Result<Secret, KeyStoreError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        match self.unwrap {
            Unwrap::Real => {
                rsa_decrypt_with(&self.pkey, padding, wrapped).map_err(|e| KeyStoreError::Failed {
                    key: "test".into(),
                    detail: e.to_string(),
                })
            }
            Unwrap::WrongKey => Ok(Secret::new(vec![7u8; 32])),
            Unwrap::WrongSize => Ok(Secret::new(vec![7u8; 5])),
            Unwrap::TokenError => Err(KeyStoreError::Failed {
                key: "pkcs11:token=test".into(),
                detail:
                    "RSA PKCS#1 v1.5 decryption failed on the token (CKR_ENCRYPTED_DATA_INVALID)"
                        .into(),
            }),
        }
    }

    fn ecdh_secret(&self, peer: &[u8]) -> Result<Secret, KeyStoreError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        ecdh_with(&self.pkey, peer).map_err(|e| KeyStoreError::Failed {
            key: "test".into(),
            detail: e.to_string(),
        })
    }
}

#[async_trait]
impl BareKey for TestKey {
    fn id(&self) -> &str {
        "test"
    }

    fn kind(&self) -> KeyKind {
        kind_of(&self.pkey)
    }

    async fn decrypt_key(
        &self,
        padding: &RsaPadding,
        wrapped: &[u8],
    ) -> Result<Secret, KeyStoreError> {
        self.rsa_decrypt(padding, wrapped)
    }

    async fn ecdh(&self, peer_point: &[u8]) -> Result<Secret, KeyStoreError> {
        self.ecdh_secret(peer_point)
    }
}

/// A key that comes with a certificate (which may not be its own).
#[derive(Debug)]
struct Certified {
    key: Arc<TestKey>,
    certificate: CertDer,
}

#[async_trait]
impl PrivateKey for Certified {
    fn certificate(&self) -> &CertDer {
        &self.certificate
    }

    fn chain(&self) -> &[CertDer] {
        &[]
    }

    fn kind(&self) -> KeyKind {
        self.key.kind()
    }

    async fn sign_digest(
        &self,
        _scheme: SignatureScheme,
        _digest: &[u8],
    ) -> Result<Vec<u8>, KeyStoreError> {
        Err(KeyStoreError::Unsupported {
            key: "test".into(),
            detail: "decryption only".into(),
        })
    }

    async fn decrypt_key(
        &self,
        padding: &RsaPadding,
        wrapped: &[u8],
    ) -> Result<Secret, KeyStoreError> {
        self.key.rsa_decrypt(padding, wrapped)
    }

    async fn ecdh(&self, peer_point: &[u8]) -> Result<Secret, KeyStoreError> {
        self.key.ecdh_secret(peer_point)
    }
}

fn bare(key: &Arc<TestKey>) -> DecryptionKey {
    DecryptionKey::Bare(key.clone())
}

fn encrypt(engine: &CryptoEngine, to: &[&str], cipher: ContentCipher, oaep: bool) -> Vec<u8> {
    let certs: Vec<CertDer> = to.iter().map(|c| cert_file(c)).collect();
    envelope::encrypt(engine, &certs, CONTENT, &EncryptOptions { cipher, oaep }).unwrap()
}

async fn open(
    engine: &CryptoEngine,
    der: &[u8],
    keys: &[DecryptionKey],
) -> Result<smime::Opened, MessageError> {
    smime::open(engine, der.to_vec(), keys, &OpenOptions::default()).await
}

/// A self-signed recipient certificate for `pkey` (keyAgreement or keyEncipherment).
fn self_signed(pkey: &PKey<Private>, serial: u32) -> CertDer {
    use openssl::asn1::{Asn1Integer, Asn1Time};
    use openssl::bn::BigNum;
    use openssl::hash::MessageDigest;
    use openssl::x509::{X509Builder, X509NameBuilder};
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "other recipient").unwrap();
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    let serial = Asn1Integer::from_bn(&BigNum::from_u32(serial).unwrap()).unwrap();
    b.set_serial_number(&serial).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(pkey).unwrap();
    b.set_not_before(&Asn1Time::from_unix(1_735_689_600).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(2_366_841_600).unwrap())
        .unwrap();
    b.sign(pkey, MessageDigest::sha256()).unwrap();
    CertDer::from(b.build().to_der().unwrap())
}

#[tokio::test]
async fn bare_keys_open_every_recipient_type() {
    let (engine, _) = test_engine(1);
    let alice = TestKey::new(key_file("alice.key"));
    let bob = TestKey::new(key_file("bob.key"));
    let carol = TestKey::new(key_file("carol.key"));
    let cases = [
        ("alice.pem", &alice, ContentCipher::Aes256Cbc, false),
        ("alice.pem", &alice, ContentCipher::Aes256Cbc, true),
        ("alice.pem", &alice, ContentCipher::Aes128Gcm, false),
        ("bob.pem", &bob, ContentCipher::Aes256Cbc, false),
        ("carol.pem", &carol, ContentCipher::Aes192Cbc, false),
    ];
    for (to, key, cipher, oaep) in cases {
        let der = encrypt(&engine, &[to], cipher, oaep);
        let opened = open(&engine, &der, &[bare(key)])
            .await
            .unwrap_or_else(|e| panic!("{to} {cipher:?} oaep={oaep}: {e}"));
        assert_eq!(opened.content, CONTENT, "{to}");
        let layer = &opened.report.layers[0];
        // Without a certificate, the report names the recipient identifier it opened.
        let recipient = layer.recipient.as_deref().unwrap_or_default();
        assert!(
            recipient.starts_with("serial ") && recipient.contains("Intermediate CA"),
            "{recipient}"
        );
    }
}

#[tokio::test]
async fn the_right_recipient_last_is_found() {
    let (engine, counting) = test_engine(2);
    let other_rsa = self_signed(&rsa_key(), 7);
    let other_ec = self_signed(&ec_key(Nid::X9_62_PRIME256V1), 8);
    let certs = [
        other_rsa,
        other_ec,
        cert_file("carol.pem"),
        cert_file("bob.pem"),
        cert_file("alice.pem"),
    ];
    let der = envelope::encrypt(
        &engine,
        &certs,
        CONTENT,
        &EncryptOptions {
            cipher: ContentCipher::Aes256Cbc,
            oaep: false,
        },
    )
    .unwrap();
    let alice = TestKey::new(key_file("alice.key"));
    let opened = open(&engine, &der, &[bare(&alice)]).await.unwrap();
    assert_eq!(opened.content, CONTENT);
    // Both RSA recipients were unwrapped, and the content decrypted once, with the key that
    // unwrapped.
    assert_eq!(alice.calls.load(Ordering::Relaxed), 2);
    assert_eq!(counting.0.load(Ordering::Relaxed), 1);

    // The P-256 key is tried on the P-256 recipients only (the other one first), never on
    // the P-384 one.
    let (engine, _) = test_engine(3);
    let bob = TestKey::new(key_file("bob.key"));
    let opened = open(&engine, &der, &[bare(&bob)]).await.unwrap();
    assert_eq!(opened.content, CONTENT);
    assert_eq!(bob.calls.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn a_key_with_its_certificate_is_matched_by_name() {
    let (engine, _) = test_engine(4);
    let der = encrypt(
        &engine,
        &["bob.pem", "alice.pem"],
        ContentCipher::Aes256Cbc,
        false,
    );
    let alice = TestKey::new(key_file("alice.key"));
    let key = DecryptionKey::Certified(Arc::new(Certified {
        key: alice.clone(),
        certificate: cert_file("alice.pem"),
    }));
    let opened = open(&engine, &der, &[key]).await.unwrap();
    assert_eq!(opened.content, CONTENT);
    assert_eq!(
        opened.report.layers[0].recipient.as_deref(),
        Some("alice@example.org")
    );
    assert_eq!(alice.calls.load(Ordering::Relaxed), 1);
}

/// Every way of failing ends in the same error, and RSA failures decrypt the content (with a
/// stand-in key) exactly as often as a wrongly unwrapped key does.
#[tokio::test]
async fn every_failure_gives_the_same_error() {
    let mut errors = Vec::new();
    for (seed, cipher) in [
        (10, ContentCipher::Aes256Cbc),
        (11, ContentCipher::Aes256Gcm),
    ] {
        for oaep in [false, true] {
            let (engine, counting) = test_engine(seed);
            let der = encrypt(&engine, &["alice.pem"], cipher, oaep);
            let wrong_key = TestKey::new(rsa_key());
            let attempts = [
                ("wrong RSA key, bare", bare(&wrong_key)),
                (
                    "right name, wrong key",
                    DecryptionKey::Certified(Arc::new(Certified {
                        key: TestKey::new(rsa_key()),
                        certificate: cert_file("alice.pem"),
                    })),
                ),
                (
                    "unwrap gives a wrong key",
                    bare(&TestKey::with(key_file("alice.key"), Unwrap::WrongKey)),
                ),
                (
                    "unwrap gives a key of the wrong size",
                    bare(&TestKey::with(key_file("alice.key"), Unwrap::WrongSize)),
                ),
                (
                    "the token refuses the block",
                    bare(&TestKey::with(key_file("alice.key"), Unwrap::TokenError)),
                ),
                (
                    "an EC key",
                    bare(&TestKey::new(ec_key(Nid::X9_62_PRIME256V1))),
                ),
            ];
            for (what, key) in attempts {
                let before = counting.0.load(Ordering::Relaxed);
                let e = open(&engine, &der, &[key])
                    .await
                    .err()
                    .unwrap_or_else(|| panic!("{what}: opened"));
                let decryptions = counting.0.load(Ordering::Relaxed) - before;
                let rsa = what != "an EC key";
                assert_eq!(
                    decryptions,
                    usize::from(rsa),
                    "{what}, {cipher:?}, oaep={oaep}: content decryptions"
                );
                errors.push((format!("{what}, {cipher:?}, oaep={oaep}"), e.to_string()));
            }
        }
    }
    // Key agreement: a wrong key on the right curve, and a key on another curve.
    let (engine, _) = test_engine(12);
    let der = encrypt(&engine, &["bob.pem"], ContentCipher::Aes256Cbc, false);
    for (what, key) in [
        (
            "wrong P-256 key",
            TestKey::new(ec_key(Nid::X9_62_PRIME256V1)),
        ),
        ("P-384 key", TestKey::new(key_file("carol.key"))),
    ] {
        let e = open(&engine, &der, &[bare(&key)]).await.err().unwrap();
        errors.push((what.to_string(), e.to_string()));
    }

    // One message, the recipients aside (they differ by message).
    let strip = |e: &str| e.split(" (recipients:").next().unwrap().to_string();
    let first = strip(&errors[0].1);
    assert!(first.starts_with("no key for any recipient"), "{first}");
    for (what, e) in &errors {
        assert_eq!(strip(e), first, "{what}");
        assert!(e.ends_with("or the message is damaged"), "{what}: {e}");
    }
}

#[tokio::test]
async fn no_key_is_a_distinct_answer() {
    let (engine, _) = test_engine(13);
    let der = encrypt(&engine, &["alice.pem"], ContentCipher::Aes256Cbc, false);
    assert!(matches!(
        open(&engine, &der, &[]).await,
        Err(MessageError::NeedsKey)
    ));
}
