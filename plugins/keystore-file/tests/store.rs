//! The key store through its ports: locking, PEM/DER key files, and key operations checked
//! against OpenSSL.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, BigNumContext};
use openssl::derive::Deriver;
use openssl::ec::{EcGroup, EcKey, PointConversionForm};
use openssl::hash::{MessageDigest, hash};
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::{Padding, Rsa};
use openssl::sign::Verifier;
use openssl::symm::Cipher;
use openssl::x509::{X509, X509NameBuilder};
use smimekit_core::plugin::{KeyStoreParams, key_stores};
use smimekit_core::{
    DecryptionKey, DigestAlg, KeyKind, KeyStore, KeyStoreError, Protection, RsaPadding, Secret,
    SignatureScheme,
};
use smimekit_keystore_file::{FileKeyStore, read_bundle};

fn corpus(file: &str) -> String {
    smimekit_testkit::corpus()
        .join(file)
        .to_string_lossy()
        .into_owned()
}

fn open(reference: &str, certificate: Option<&str>) -> Result<Box<dyn KeyStore>, KeyStoreError> {
    FileKeyStore::open(&KeyStoreParams {
        reference,
        certificate,
    })
}

fn self_signed(pkey: &PKey<Private>, cn: &str) -> X509 {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&BigNum::from_u32(7).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(pkey).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    b.sign(pkey, MessageDigest::sha256()).unwrap();
    b.build()
}

fn write(dir: &Path, name: &str, data: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p.to_string_lossy().into_owned()
}

fn rsa_key() -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
}

#[test]
fn registered_with_inventory() {
    let f = key_stores()
        .find(|f| f.id == "file")
        .expect("file key store registered");
    assert!((f.accepts)("me.p12"));
    assert!(!(f.accepts)("pkcs11:token=x"));
}

#[tokio::test]
async fn p12_locked_until_unlocked_and_wrong_password_is_bad_secret() {
    let path = corpus("thunderbird-nss/smime/Alice.p12");
    let store = open(&path, None).unwrap();
    assert!(matches!(
        store.protection().await,
        Protection::Locked { .. }
    ));
    assert!(matches!(
        store.list().await,
        Err(KeyStoreError::Locked { .. })
    ));
    assert!(matches!(
        store.open(None).await,
        Err(KeyStoreError::Locked { .. })
    ));

    match store.unlock(Secret::from("wrong")).await {
        Err(KeyStoreError::BadSecret {
            key,
            tries_left: None,
        }) => assert_eq!(key, path),
        other => panic!("expected BadSecret, got {other:?}"),
    }
    assert!(matches!(
        store.protection().await,
        Protection::Locked { .. }
    ));

    store.unlock(Secret::from("nss")).await.unwrap();
    assert_eq!(store.protection().await, Protection::Unlocked);
    let keys = store.list().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].selector, "#0");
    assert_eq!(keys[0].label.as_deref(), Some("Alice"));
    assert_eq!(keys[0].kind, KeyKind::Rsa { bits: 2048 });
    assert_eq!(keys[0].chain.len(), 1);
    let key = store.open(None).await.unwrap();
    assert_eq!(key.certificate(), keys[0].certificate.as_ref().unwrap());
    assert!(store.open(Some("Alice")).await.is_ok());
    assert!(store.open(Some("#0")).await.is_ok());
    assert!(matches!(
        store.open(Some("#1")).await,
        Err(KeyStoreError::NotFound { .. })
    ));
}

#[tokio::test]
async fn p12_without_password_opens_at_once() {
    let store = open(&corpus("pyca-vectors/pkcs12/no-password.p12"), None).unwrap();
    assert_eq!(store.protection().await, Protection::Unlocked);
    assert_eq!(store.list().await.unwrap().len(), 1);
    let store = open(&corpus("pyca-vectors/pkcs12/name-all-no-pwd.p12"), None).unwrap();
    assert_eq!(
        store.list().await.unwrap()[0].kind,
        KeyKind::Ec { curve: "P-256" }
    );
}

#[tokio::test]
async fn pem_armoured_p12_and_ec_p384() {
    let store = open(&corpus("protected-headers-lamps/bob.p12"), None).unwrap();
    store.unlock(Secret::from("bob")).await.unwrap();
    assert_eq!(store.list().await.unwrap().len(), 1);
    let store = open(&corpus("thunderbird-nss/smime/Alice-ec.p12"), None).unwrap();
    store.unlock(Secret::from("nss")).await.unwrap();
    assert_eq!(
        store.open(None).await.unwrap().kind(),
        KeyKind::Ec { curve: "P-384" }
    );
}

#[tokio::test]
async fn several_keys_get_selectors() {
    let store = open(&corpus("simple-java-mail/smime_keystore.pkcs12"), None).unwrap();
    store.unlock(Secret::from("letmein")).await.unwrap();
    let keys = store.list().await.unwrap();
    assert_eq!(
        keys.iter().map(|k| k.selector.as_str()).collect::<Vec<_>>(),
        ["#0", "#1"]
    );
    let mut labels: Vec<_> = keys.iter().filter_map(|k| k.label.clone()).collect();
    labels.sort();
    assert_eq!(
        labels,
        ["smime_test_user_alias_dsa", "smime_test_user_alias_rsa"]
    );
    let rsa = store.open(Some("smime_test_user_alias_rsa")).await.unwrap();
    assert!(matches!(rsa.kind(), KeyKind::Rsa { .. }));
}

#[test]
fn cert_only_p12_has_certificates_and_no_keys() {
    let b = read_bundle(
        Path::new(&corpus("openssl/pkcs12-data/v3-certs-TDES.p12")),
        Some(&Secret::from("v3-certs")),
    )
    .unwrap();
    assert!(b.keys.is_empty());
    assert_eq!(b.certificates.len(), 2);
    assert!(matches!(b.key(None), Err(KeyStoreError::NotFound { .. })));
}

#[test]
fn missing_file_is_io_error_naming_the_path() {
    match open("/nonexistent/dir/me.p12", None) {
        Err(KeyStoreError::Io { key, detail }) => {
            assert_eq!(key, "/nonexistent/dir/me.p12");
            assert!(detail.contains("/nonexistent/dir/me.p12"), "{detail}");
            assert!(detail.contains("No such file"), "{detail}");
        }
        other => panic!("expected Io, got {other:?}"),
    }
}

#[test]
fn garbage_is_malformed() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "junk.p12", b"\x30\x03\x02\x01\x03");
    assert!(matches!(
        open(&p, None),
        Err(KeyStoreError::Malformed { .. })
    ));
    let p = write(dir.path(), "junk.bin", b"hello");
    assert!(matches!(
        open(&p, None),
        Err(KeyStoreError::Malformed { .. })
    ));
}

#[tokio::test]
async fn pem_key_with_separate_cert_signs_verifiably() {
    let dir = tempfile::tempdir().unwrap();
    let pkey = rsa_key();
    let cert = self_signed(&pkey, "pem rsa");
    let key_path = write(
        dir.path(),
        "key.pem",
        &pkey.rsa().unwrap().private_key_to_pem().unwrap(),
    );
    let cert_path = write(dir.path(), "cert.pem", &cert.to_pem().unwrap());

    // Without a certificate the key cannot sign (`open`), but it opens bare to decrypt.
    let bare = open(&key_path, None).unwrap();
    match bare.open(None).await {
        Err(e) => assert!(e.to_string().contains("needs a certificate"), "{e}"),
        Ok(k) => panic!("opened to sign without a certificate: {k:?}"),
    }
    let plain = b"0123456789abcdef0123456789abcdef";
    let rsa = pkey.rsa().unwrap();
    let mut wrapped = vec![0u8; rsa.size() as usize];
    let n = rsa
        .public_encrypt(plain, &mut wrapped, Padding::PKCS1)
        .unwrap();
    wrapped.truncate(n);
    match bare.open_for_decryption(None).await.unwrap() {
        DecryptionKey::Bare(k) => {
            assert_eq!(k.kind(), KeyKind::Rsa { bits: 2048 });
            let cek = k
                .decrypt_key(&RsaPadding::Pkcs1v15, &wrapped)
                .await
                .unwrap();
            assert_eq!(cek.expose(), plain);
        }
        other => panic!("not bare: {other:?}"),
    }
    assert!(matches!(
        bare.open_for_decryption(Some("#0")).await,
        Ok(DecryptionKey::Bare(_))
    ));
    assert!(matches!(
        bare.open_for_decryption(Some("#1")).await,
        Err(KeyStoreError::NotFound { .. })
    ));
    let listed = bare.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].certificate.is_none());

    let store = open(&key_path, Some(&cert_path)).unwrap();
    assert_eq!(store.protection().await, Protection::Unlocked);
    assert!(matches!(
        store.open_for_decryption(None).await,
        Ok(DecryptionKey::Certified(_))
    ));
    let key = store.open(None).await.unwrap();
    assert_eq!(key.kind(), KeyKind::Rsa { bits: 2048 });
    assert_eq!(
        key.certificate().as_bytes(),
        cert.to_der().unwrap().as_slice()
    );

    let message = b"S/MIME signed attributes";
    let digest = hash(MessageDigest::sha256(), message).unwrap();
    for scheme in [
        SignatureScheme::RsaPkcs1(DigestAlg::Sha256),
        SignatureScheme::RsaPss(DigestAlg::Sha256),
    ] {
        let sig = key.sign_digest(scheme, &digest).await.unwrap();
        let public = cert.public_key().unwrap();
        let mut v = Verifier::new(MessageDigest::sha256(), &public).unwrap();
        if matches!(scheme, SignatureScheme::RsaPss(_)) {
            v.set_rsa_padding(Padding::PKCS1_PSS).unwrap();
            v.set_rsa_mgf1_md(MessageDigest::sha256()).unwrap();
            v.set_rsa_pss_saltlen(openssl::sign::RsaPssSaltlen::DIGEST_LENGTH)
                .unwrap();
        }
        v.update(message).unwrap();
        assert!(
            v.verify(&sig).unwrap(),
            "{scheme:?} signature does not verify"
        );
    }

    // Key transport: what the public key encrypts, the store's key decrypts.
    let cek = [0x42u8; 32];
    let rsa_pub = cert.public_key().unwrap().rsa().unwrap();
    let mut wrapped = vec![0u8; rsa_pub.size() as usize];
    let n = rsa_pub
        .public_encrypt(&cek, &mut wrapped, Padding::PKCS1)
        .unwrap();
    let got = key
        .decrypt_key(&RsaPadding::Pkcs1v15, &wrapped[..n])
        .await
        .unwrap();
    assert_eq!(got.expose(), cek);
    assert!(
        key.decrypt_key(&RsaPadding::Pkcs1v15, &wrapped[..n - 1])
            .await
            .is_err()
    );

    // A certificate for another key is refused.
    let other = self_signed(&rsa_key(), "other");
    let other_path = write(dir.path(), "other.pem", &other.to_pem().unwrap());
    assert!(matches!(
        open(&key_path, Some(&other_path)),
        Err(KeyStoreError::Malformed { .. })
    ));
}

#[tokio::test]
async fn combined_pem_and_der_files() {
    let dir = tempfile::tempdir().unwrap();
    let pkey = rsa_key();
    let cert = self_signed(&pkey, "combined");
    let mut both = pkey.private_key_to_pem_pkcs8().unwrap();
    both.extend_from_slice(&cert.to_pem().unwrap());
    let p = write(dir.path(), "both.pem", &both);
    let store = open(&p, None).unwrap();
    assert_eq!(store.list().await.unwrap().len(), 1);
    let b = read_bundle(Path::new(&p), None).unwrap();
    assert_eq!(b.certificates.len(), 1);

    let key_der = write(dir.path(), "key.der", &pkey.private_key_to_der().unwrap());
    let cert_der = write(dir.path(), "cert.der", &cert.to_der().unwrap());
    let store = open(&key_der, Some(&cert_der)).unwrap();
    assert!(store.open(None).await.is_ok());
}

#[tokio::test]
async fn encrypted_pem_key_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let pkey = rsa_key();
    let cert = self_signed(&pkey, "encrypted");
    let pem = pkey
        .private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), b"sesame")
        .unwrap();
    let key_path = write(dir.path(), "enc.pem", &pem);
    let cert_path = write(dir.path(), "cert.pem", &cert.to_pem().unwrap());
    let store = open(&key_path, Some(&cert_path)).unwrap();
    assert!(matches!(
        store.protection().await,
        Protection::Locked { .. }
    ));
    assert!(matches!(
        store.open(None).await,
        Err(KeyStoreError::Locked { .. })
    ));
    assert!(matches!(
        store.unlock(Secret::from("wrong")).await,
        Err(KeyStoreError::BadSecret { .. })
    ));
    store.unlock(Secret::from("sesame")).await.unwrap();
    assert!(store.open(None).await.is_ok());

    // Legacy "Proc-Type: 4,ENCRYPTED" RSA PEM.
    let legacy = pkey
        .rsa()
        .unwrap()
        .private_key_to_pem_passphrase(Cipher::aes_128_cbc(), b"sesame")
        .unwrap();
    let legacy_path = write(dir.path(), "legacy.pem", &legacy);
    let store = open(&legacy_path, Some(&cert_path)).unwrap();
    assert!(matches!(
        store.protection().await,
        Protection::Locked { .. }
    ));
    assert!(matches!(
        store.unlock(Secret::from("nope")).await,
        Err(KeyStoreError::BadSecret { .. })
    ));
    store.unlock(Secret::from("sesame")).await.unwrap();
}

#[tokio::test]
async fn ec_key_agrees_with_peer() {
    let dir = tempfile::tempdir().unwrap();
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let ours = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    let cert = self_signed(&ours, "ec");
    let key_path = write(
        dir.path(),
        "ec.pem",
        &ours.ec_key().unwrap().private_key_to_pem().unwrap(),
    );
    let cert_path = write(dir.path(), "ec-cert.pem", &cert.to_pem().unwrap());
    let store = open(&key_path, Some(&cert_path)).unwrap();
    let key = store.open(None).await.unwrap();
    assert_eq!(key.kind(), KeyKind::Ec { curve: "P-256" });

    let peer_ec = EcKey::generate(&group).unwrap();
    let mut ctx = BigNumContext::new().unwrap();
    let peer_point = peer_ec
        .public_key()
        .to_bytes(&group, PointConversionForm::UNCOMPRESSED, &mut ctx)
        .unwrap();
    let peer = PKey::from_ec_key(peer_ec).unwrap();
    let z = key.ecdh(&peer_point).await.unwrap();

    let our_public = cert.public_key().unwrap();
    let mut d = Deriver::new(&peer).unwrap();
    d.set_peer(&our_public).unwrap();
    assert_eq!(z.expose(), d.derive_to_vec().unwrap().as_slice());

    // ECDSA signatures verify too.
    let digest = hash(MessageDigest::sha256(), b"ec message").unwrap();
    let sig = key
        .sign_digest(SignatureScheme::Ecdsa(DigestAlg::Sha256), &digest)
        .await
        .unwrap();
    let mut v = Verifier::new(MessageDigest::sha256(), &our_public).unwrap();
    v.update(b"ec message").unwrap();
    assert!(v.verify(&sig).unwrap());

    // An RSA operation on an EC key is refused with the key named.
    match key.decrypt_key(&RsaPadding::Pkcs1v15, &[0u8; 32]).await {
        Err(e) => assert!(e.to_string().contains("ec.pem#0"), "{e}"),
        Ok(_) => panic!("EC key decrypted RSA"),
    }
}

#[tokio::test]
async fn debug_does_not_leak_key_material() {
    let dir = tempfile::tempdir().unwrap();
    let pkey = rsa_key();
    let cert = self_signed(&pkey, "debug");
    let rsa = pkey.rsa().unwrap();
    let pem = rsa.private_key_to_pem().unwrap();
    let key_path = write(dir.path(), "k.pem", &pem);
    let cert_path = write(dir.path(), "c.pem", &cert.to_pem().unwrap());
    let store = open(&key_path, Some(&cert_path)).unwrap();
    let key = store.open(None).await.unwrap();
    let list = store.list().await.unwrap();
    let bundle = read_bundle(Path::new(&key_path), None);
    let shown = format!("{store:?} {key:?} {list:?} {bundle:?} {key:#?}");

    let d_hex = rsa.d().to_hex_str().unwrap().to_string();
    let d_dec = rsa.d().to_dec_str().unwrap().to_string();
    let p_hex = rsa.p().unwrap().to_hex_str().unwrap().to_string();
    assert!(!shown.contains(&d_hex[..16]), "{shown}");
    assert!(!shown.contains(&d_dec[..16]), "{shown}");
    assert!(
        !shown.to_ascii_uppercase().contains(&p_hex[..16]),
        "{shown}"
    );
    let body: String = String::from_utf8(pem)
        .unwrap()
        .lines()
        .nth(3)
        .unwrap()
        .to_string();
    assert!(!shown.contains(&body), "{shown}");
    assert!(shown.contains("SoftKey"), "{shown}");
}
