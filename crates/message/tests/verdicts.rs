//! What "valid" means (issue 16, section 1), in process: nothing unsigned is valid, the sender
//! is part of the verdict, weak digests are invalid unless accepted, weak keys are flagged,
//! every certificate a signer identifier names is tried, AuthEnvelopedData takes only an AEAD
//! cipher with a sound tag, and encryption refuses small RSA keys.
//!
//! The PKI is made here with OpenSSL (a root and leaves with the S/MIME profile), valid from
//! 2025 to 2045, and every verification runs at testkit's pinned time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use async_trait::async_trait;
use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509, X509Builder, X509NameBuilder};
use smimekit_core::{
    CertDer, ContentCipher, CryptoEngine, DigestAlg, KeyKind, KeyStoreError, PrivateKey,
    RsaPadding, Secret, SignatureScheme,
};
use smimekit_engine_openssl::sign_digest_with;
use smimekit_message::MessageError;
use smimekit_message::asn1;
use smimekit_message::envelope::{self, EncryptOptions};
use smimekit_message::oids;
use smimekit_message::report::{LayerKind, SignerStatus};
use smimekit_message::signed::{self, SignOptions, VerifyContext, VerifyPolicy};
use smimekit_message::smime::{self, OpenOptions, Opened};
use smimekit_testkit::PINNED_NOW;

const FROM_2025: i64 = 1_735_689_600;
const TO_2045: i64 = 2_366_841_600;

fn engine() -> &'static CryptoEngine {
    smimekit_engine_openssl::engine()
}

fn name(cn: &str) -> openssl::x509::X509Name {
    let mut n = X509NameBuilder::new().unwrap();
    n.append_entry_by_text("CN", cn).unwrap();
    n.build()
}

struct Ca {
    key: PKey<Private>,
    cert: X509,
}

impl Ca {
    fn new() -> Self {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        b.set_serial_number(&Asn1Integer::from_bn(&BigNum::from_u32(1).unwrap()).unwrap())
            .unwrap();
        b.set_subject_name(&name("Verdict Test Root")).unwrap();
        b.set_issuer_name(&name("Verdict Test Root")).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::from_unix(FROM_2025).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::from_unix(TO_2045).unwrap())
            .unwrap();
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
        b.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()
                .unwrap(),
        )
        .unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        Self {
            key,
            cert: b.build(),
        }
    }

    fn root(&self) -> CertDer {
        CertDer::from(self.cert.to_der().unwrap())
    }

    /// A mail certificate for `key` naming `emails` (none: no SAN), with this serial.
    fn issue(&self, key: &PKey<Private>, emails: &[&str], serial: u32) -> CertDer {
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        b.set_serial_number(&Asn1Integer::from_bn(&BigNum::from_u32(serial).unwrap()).unwrap())
            .unwrap();
        b.set_subject_name(&name("Verdict Test User")).unwrap();
        b.set_issuer_name(self.cert.subject_name()).unwrap();
        b.set_pubkey(key).unwrap();
        b.set_not_before(&Asn1Time::from_unix(FROM_2025).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::from_unix(TO_2045).unwrap())
            .unwrap();
        b.append_extension(
            KeyUsage::new()
                .critical()
                .digital_signature()
                .key_encipherment()
                .build()
                .unwrap(),
        )
        .unwrap();
        b.append_extension(ExtendedKeyUsage::new().email_protection().build().unwrap())
            .unwrap();
        if !emails.is_empty() {
            let mut san = SubjectAlternativeName::new();
            for e in emails {
                san.email(e);
            }
            let ext = san
                .build(&b.x509v3_context(Some(&self.cert), None))
                .unwrap();
            b.append_extension(ext).unwrap();
        }
        b.sign(&self.key, MessageDigest::sha256()).unwrap();
        CertDer::from(b.build().to_der().unwrap())
    }
}

fn rsa(bits: u32) -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(bits).unwrap()).unwrap()
}

/// A soft signing key with the certificate it claims (which may not be its own).
#[derive(Debug)]
struct Signer {
    key: PKey<Private>,
    certificate: CertDer,
}

#[async_trait]
impl PrivateKey for Signer {
    fn certificate(&self) -> &CertDer {
        &self.certificate
    }

    fn chain(&self) -> &[CertDer] {
        &[]
    }

    fn kind(&self) -> KeyKind {
        KeyKind::Rsa {
            bits: self.key.bits(),
        }
    }

    async fn sign_digest(
        &self,
        scheme: SignatureScheme,
        digest: &[u8],
    ) -> Result<Vec<u8>, KeyStoreError> {
        sign_digest_with(&self.key, scheme, digest).map_err(|e| KeyStoreError::Failed {
            key: "test".into(),
            detail: e.to_string(),
        })
    }

    async fn decrypt_key(
        &self,
        _padding: &RsaPadding,
        _wrapped: &[u8],
    ) -> Result<Secret, KeyStoreError> {
        Err(KeyStoreError::Unsupported {
            key: "test".into(),
            detail: "signing only".into(),
        })
    }

    async fn ecdh(&self, _peer: &[u8]) -> Result<Secret, KeyStoreError> {
        Err(KeyStoreError::Unsupported {
            key: "test".into(),
            detail: "signing only".into(),
        })
    }
}

fn sign_opts(digest: DigestAlg) -> SignOptions {
    SignOptions {
        digest,
        pss: false,
        detached: true,
        signing_time: PINNED_NOW,
        chain: Vec::new(),
    }
}

async fn sign_mail(signer: &Signer, headers: &str, digest: DigestAlg) -> Vec<u8> {
    let msg = format!("{headers}Subject: test\r\nContent-Type: text/plain\r\n\r\nhello\r\n");
    smime::sign_message(engine(), signer, msg.as_bytes(), &sign_opts(digest))
        .await
        .unwrap()
}

async fn open_with(msg: Vec<u8>, ca: &Ca, policy: VerifyPolicy, extra: Vec<CertDer>) -> Opened {
    let opts = OpenOptions {
        verify: VerifyContext {
            anchors: vec![ca.root()],
            extra_certs: extra,
            at: PINNED_NOW,
            policy,
            ..VerifyContext::default()
        },
        ..OpenOptions::default()
    };
    smime::open(engine(), msg, &[], &opts).await.unwrap()
}

fn status(o: &Opened) -> SignerStatus {
    o.report.layers[0].signers[0].status
}

#[tokio::test]
async fn the_sender_is_part_of_the_verdict() {
    let ca = Ca::new();
    let key = rsa(2048);
    let alice = Signer {
        certificate: ca.issue(&key, &["Alice@Example.org"], 10),
        key,
    };
    let strict = VerifyPolicy::default();
    let open = |headers: &'static str, policy| {
        let ca = &ca;
        let alice = &alice;
        async move {
            open_with(
                sign_mail(alice, headers, DigestAlg::Sha256).await,
                ca,
                policy,
                vec![],
            )
            .await
        }
    };

    // Her own address, in any case, with a display name: valid.
    let o = open("From: Alice <alice@example.ORG>\r\n", strict).await;
    assert_eq!(o.report.valid, Some(true), "{:?}", o.report);
    assert_eq!(o.report.layers[0].signers[0].matches_from, Some(true));

    // Someone else's address: address-mismatch, with both addresses.
    let o = open("From: The CEO <ceo@example.org>\r\n", strict).await;
    assert_eq!(o.report.valid, Some(false));
    let s = &o.report.layers[0].signers[0];
    assert_eq!(s.status, SignerStatus::AddressMismatch);
    assert_eq!(s.matches_from, Some(false));
    assert_eq!(s.sender.as_deref(), Some("ceo@example.org"));
    assert_eq!(s.address.as_deref(), Some("Alice@Example.org"));
    let reason = s.reason.as_deref().unwrap();
    assert!(
        reason.contains("ceo@example.org") && reason.contains("Alice@Example.org"),
        "{reason}"
    );
    let json = serde_json::to_value(&o.report).unwrap();
    assert_eq!(
        json["layers"][0]["signers"][0]["status"],
        "address-mismatch"
    );

    // Accepted when asked, and still said.
    let allow = VerifyPolicy {
        allow_address_mismatch: true,
        ..VerifyPolicy::default()
    };
    let o = open("From: ceo@example.org\r\n", allow).await;
    assert_eq!(o.report.valid, Some(true));
    let s = &o.report.layers[0].signers[0];
    assert_eq!(s.matches_from, Some(false));
    assert!(
        s.warnings.iter().any(|w| w.contains("ceo@example.org")),
        "{s:?}"
    );

    // A Sender: that is not hers, several From addresses, several From fields, an unparsable
    // From: never match.
    for headers in [
        "From: alice@example.org\r\nSender: assistant@example.org\r\n",
        "From: alice@example.org, ceo@example.org\r\n",
        "From: alice@example.org\r\nFrom: alice@example.org\r\n",
        "From: Alice\r\n",
        "From: staff: alice@example.org;\r\n",
    ] {
        let o = open(headers, strict).await;
        assert_eq!(status(&o), SignerStatus::AddressMismatch, "{headers:?}");
        assert_eq!(o.report.valid, Some(false), "{headers:?}");
    }

    // The subject's emailAddress counts only when there is no rfc822Name: a certificate without
    // any address never matches.
    let key = rsa(2048);
    let nobody = Signer {
        certificate: ca.issue(&key, &[], 11),
        key,
    };
    let o = open_with(
        sign_mail(&nobody, "From: alice@example.org\r\n", DigestAlg::Sha256).await,
        &ca,
        strict,
        vec![],
    )
    .await;
    assert_eq!(status(&o), SignerStatus::AddressMismatch);
}

#[tokio::test]
async fn sha1_and_md5_are_invalid_and_small_keys_flagged() {
    let ca = Ca::new();
    let key = rsa(2048);
    let alice = Signer {
        certificate: ca.issue(&key, &["alice@example.org"], 20),
        key,
    };
    let from = "From: alice@example.org\r\n";
    let strict = VerifyPolicy::default();
    let sha1 = VerifyPolicy {
        allow_sha1: true,
        ..VerifyPolicy::default()
    };

    let msg = sign_mail(&alice, from, DigestAlg::Sha1).await;
    let o = open_with(msg.clone(), &ca, strict, vec![]).await;
    assert_eq!(o.report.valid, Some(false));
    let s = &o.report.layers[0].signers[0];
    assert_eq!(s.status, SignerStatus::WeakAlgorithm);
    assert!(
        s.signature_ok && s.chain_ok,
        "the signature itself is good: {s:?}"
    );
    assert!(s.reason.as_deref().unwrap().contains("SHA-1"));
    let o = open_with(msg, &ca, sha1, vec![]).await;
    assert_eq!(o.report.valid, Some(true));
    assert!(
        o.report.layers[0].signers[0]
            .warnings
            .iter()
            .any(|w| w.contains("SHA-1")),
        "{:?}",
        o.report
    );

    // MD5 stays invalid even for old mail.
    let msg = sign_mail(&alice, from, DigestAlg::Md5).await;
    let o = open_with(msg, &ca, sha1, vec![]).await;
    assert_eq!(status(&o), SignerStatus::WeakAlgorithm);
    assert!(
        o.report.layers[0].signers[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("MD5")
    );

    // SHA-256 is valid.
    let o = open_with(
        sign_mail(&alice, from, DigestAlg::Sha256).await,
        &ca,
        strict,
        vec![],
    )
    .await;
    assert_eq!(o.report.valid, Some(true));
    assert!(o.report.layers[0].signers[0].warnings.is_empty());

    // RSA-1024: flagged in the report, not invalid (the chain's security level 1 allows it).
    let key = rsa(1024);
    let small = Signer {
        certificate: ca.issue(&key, &["alice@example.org"], 21),
        key,
    };
    let o = open_with(
        sign_mail(&small, from, DigestAlg::Sha256).await,
        &ca,
        strict,
        vec![],
    )
    .await;
    assert_eq!(o.report.valid, Some(true), "{:?}", o.report);
    let w = &o.report.layers[0].signers[0].warnings;
    assert!(w.iter().any(|w| w.contains("1024 bits")), "{w:?}");
}

#[tokio::test]
async fn every_certificate_matching_the_signer_is_tried() {
    let ca = Ca::new();
    let key = rsa(2048);
    let real = ca.issue(&key, &["alice@example.org"], 30);
    // A decoy with the same issuer and serial but another key, carried in the message.
    let decoy = ca.issue(&rsa(2048), &["alice@example.org"], 30);
    let signer = Signer {
        certificate: decoy.clone(),
        key,
    };
    let msg = sign_mail(&signer, "From: alice@example.org\r\n", DigestAlg::Sha256).await;
    // Only the decoy: the signature does not verify.
    let o = open_with(msg.clone(), &ca, VerifyPolicy::default(), vec![]).await;
    assert_eq!(status(&o), SignerStatus::BadSignature);
    // The real certificate given beside it (--cert) is tried too, and verifies.
    let o = open_with(msg, &ca, VerifyPolicy::default(), vec![real]).await;
    assert_eq!(o.report.valid, Some(true), "{:?}", o.report);
}

/// A ContentInfo of `oid` around `inner`.
fn content_info(oid: &const_oid::ObjectIdentifier, inner: &[u8]) -> Vec<u8> {
    asn1::seq(&[&oids::encode(oid), &asn1::context_constructed(0, &[inner])])
}

#[tokio::test]
async fn nothing_unsigned_is_valid() {
    let content = b"Content-Type: text/plain\r\n\r\nhello\r\n";
    let open = |der: Vec<u8>| async move {
        smime::open(engine(), der, &[], &OpenOptions::default()).await
    };

    // id-data.
    let data = content_info(&oids::ID_DATA, &asn1::octet_string(content));
    let o = open(data).await.unwrap();
    assert_eq!(o.report.valid, None);
    assert_eq!(o.content, content);

    // DigestedData with a matching digest: null; with a wrong one: false.
    let digested = |digest: &[u8]| {
        let dd = asn1::seq(&[
            &asn1::small_int(0),
            &asn1::seq(&[&oids::encode(&oids::SHA256)]),
            &asn1::seq(&[
                &oids::encode(&oids::ID_DATA),
                &asn1::context_constructed(0, &[&asn1::octet_string(content)]),
            ]),
            &asn1::octet_string(digest),
        ]);
        content_info(&oids::ID_DIGESTED_DATA, &dd)
    };
    let good = engine()
        .primitives
        .digest(DigestAlg::Sha256, &[content])
        .unwrap();
    let o = open(digested(&good)).await.unwrap();
    assert_eq!(o.report.layers[0].kind, LayerKind::Digested);
    assert_eq!(o.report.valid, None);
    let o = open(digested(&[0u8; 32])).await.unwrap();
    assert_eq!(o.report.valid, Some(false));

    // An empty SignedData, with content and without (certificates only).
    for econtent in [true, false] {
        let mut encap = vec![oids::encode(&oids::ID_DATA)];
        if econtent {
            encap.push(asn1::context_constructed(
                0,
                &[&asn1::octet_string(content)],
            ));
        }
        let encap_refs: Vec<&[u8]> = encap.iter().map(Vec::as_slice).collect();
        let sd = asn1::seq(&[
            &asn1::small_int(1),
            &asn1::constructed(asn1::TAG_SET, &[]),
            &asn1::seq(&encap_refs),
            &asn1::constructed(asn1::TAG_SET, &[]),
        ]);
        let o = open(content_info(&oids::ID_SIGNED_DATA, &sd))
            .await
            .unwrap();
        assert_eq!(o.report.valid, None, "econtent {econtent}");
        assert!(o.report.layers[0].signers.is_empty());
    }

    // Plain MIME: no layer, nothing signed.
    let o = open(b"From: alice@example.org\r\nSubject: hi\r\n\r\nplain\r\n".to_vec())
        .await
        .unwrap();
    assert!(o.report.layers.is_empty());
    assert_eq!(o.report.valid, None);
}

#[test]
fn encryption_refuses_small_rsa_keys() {
    let ca = Ca::new();
    let small = ca.issue(&rsa(1024), &["bob@example.org"], 40);
    let opts = EncryptOptions {
        cipher: ContentCipher::Aes256Cbc,
        oaep: false,
    };
    let e = envelope::encrypt(engine(), &[small], b"x", &opts).unwrap_err();
    assert!(
        matches!(&e, MessageError::BadRecipient { detail, .. } if detail.contains("1024 bits")),
        "{e}"
    );
    let ok = ca.issue(&rsa(2048), &["bob@example.org"], 41);
    envelope::encrypt(engine(), &[ok], b"x", &opts).unwrap();
}

/// Re-encodes an AuthEnvelopedData made by `envelope::encrypt`, changing its parts.
fn rebuild_auth(der: &[u8], alg: Option<Vec<u8>>, tag: Option<Vec<u8>>) -> Vec<u8> {
    let ci = asn1::parse_single(der).unwrap();
    let mut r = ci.children();
    let oid = r.read("oid").unwrap();
    let explicit = r.read("content").unwrap();
    let aed = explicit.children().read("aed").unwrap();
    let mut parts: Vec<Vec<u8>> = Vec::new();
    let mut ar = aed.children();
    while let Some(t) = ar.next().unwrap() {
        parts.push(t.raw.to_vec());
    }
    // version, recipientInfos, authEncryptedContentInfo, mac
    if let Some(alg) = alg {
        let eci = asn1::parse_single(&parts[2]).unwrap();
        let mut er = eci.children();
        let ct = er.read("ct").unwrap().raw.to_vec();
        er.read("alg").unwrap();
        let enc = er.read("enc").unwrap().raw.to_vec();
        parts[2] = asn1::seq(&[&ct, &alg, &enc]);
    }
    if let Some(tag) = tag {
        parts[3] = asn1::octet_string(&tag);
    }
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    asn1::seq(&[oid.raw, &asn1::context_constructed(0, &[&asn1::seq(&refs)])])
}

#[derive(Debug)]
struct Recipient(PKey<Private>, CertDer);

#[async_trait]
impl PrivateKey for Recipient {
    fn certificate(&self) -> &CertDer {
        &self.1
    }
    fn chain(&self) -> &[CertDer] {
        &[]
    }
    fn kind(&self) -> KeyKind {
        KeyKind::Rsa { bits: 2048 }
    }
    async fn sign_digest(&self, _: SignatureScheme, _: &[u8]) -> Result<Vec<u8>, KeyStoreError> {
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
        smimekit_engine_openssl::rsa_decrypt_with(&self.0, padding, wrapped).map_err(|e| {
            KeyStoreError::Failed {
                key: "test".into(),
                detail: e.to_string(),
            }
        })
    }
    async fn ecdh(&self, _: &[u8]) -> Result<Secret, KeyStoreError> {
        Err(KeyStoreError::Unsupported {
            key: "test".into(),
            detail: "RSA".into(),
        })
    }
}

#[tokio::test]
async fn auth_enveloped_data_needs_an_aead_cipher_and_a_sound_tag() {
    let ca = Ca::new();
    let key = rsa(2048);
    let cert = ca.issue(&key, &["bob@example.org"], 50);
    let keys = vec![smimekit_core::DecryptionKey::from(
        Arc::new(Recipient(key, cert.clone())) as Arc<dyn PrivateKey>,
    )];
    let content = b"secret";
    let der = envelope::encrypt(
        engine(),
        &[cert],
        content,
        &EncryptOptions {
            cipher: ContentCipher::Aes256Gcm,
            oaep: false,
        },
    )
    .unwrap();
    let open = |der: Vec<u8>| {
        let keys = keys.clone();
        async move { smime::open(engine(), der, &keys, &OpenOptions::default()).await }
    };
    let o = open(der.clone()).await.unwrap();
    assert_eq!(o.content, content);

    // The parameters' nonce, with an ICV length.
    let gcm = |icv: Option<u32>, nonce: &[u8]| {
        let mut p = vec![asn1::octet_string(nonce)];
        if let Some(i) = icv {
            p.push(asn1::small_int(i));
        }
        let refs: Vec<&[u8]> = p.iter().map(Vec::as_slice).collect();
        asn1::seq(&[&oids::encode(&oids::AES256_GCM), &asn1::seq(&refs)])
    };
    let (nonce, tag) = {
        let ci = asn1::parse_single(&der).unwrap();
        let mut r = ci.children();
        r.read("oid").unwrap();
        let aed = r.read("c").unwrap().children().read("aed").unwrap();
        let mut ar = aed.children();
        ar.read("v").unwrap();
        ar.read("ri").unwrap();
        let eci = ar.read("eci").unwrap();
        let mut er = eci.children();
        er.read("ct").unwrap();
        let alg = er.read("alg").unwrap();
        let mut alr = alg.children();
        alr.read("oid").unwrap();
        let params = alr.read("params").unwrap();
        let nonce = params
            .children()
            .read("nonce")
            .unwrap()
            .octets()
            .unwrap()
            .into_owned();
        let tag = ar.read("mac").unwrap().octets().unwrap().into_owned();
        (nonce, tag)
    };
    assert_eq!(tag.len(), 16);

    // A truncated tag (8 bytes, with parameters saying 8): refused before any decryption.
    let short = rebuild_auth(&der, Some(gcm(Some(8), &nonce)), Some(tag[..8].to_vec()));
    let e = open(short).await.unwrap_err();
    assert!(e.to_string().contains("ICV length 8"), "{e}");
    // A tag whose length differs from the parameters' (12 by default).
    let e = open(rebuild_auth(&der, Some(gcm(None, &nonce)), None))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("parameters say 12"), "{e}");
    // A tampered tag of the right length: no plaintext, the one decryption error.
    let mut bad = tag.clone();
    bad[0] ^= 1;
    let e = open(rebuild_auth(&der, None, Some(bad))).await.unwrap_err();
    assert!(matches!(e, MessageError::NoRecipientKey { .. }), "{e}");
    // A CBC cipher inside AuthEnvelopedData: not authenticated, refused.
    let cbc = asn1::seq(&[
        &oids::encode(&oids::AES256_CBC),
        &asn1::octet_string(&[0u8; 16]),
    ]);
    let e = open(rebuild_auth(&der, Some(cbc), None)).await.unwrap_err();
    assert!(e.to_string().contains("does not authenticate"), "{e}");
}

/// The verify context's sender comes from the outermost MIME header; a raw signature has no
/// sender to compare, so only the certificate decides.
#[tokio::test]
async fn a_raw_signature_has_no_sender_to_compare() {
    let ca = Ca::new();
    let key = rsa(2048);
    let alice = Signer {
        certificate: ca.issue(&key, &["alice@example.org"], 60),
        key,
    };
    let der = signed::sign(
        engine(),
        &alice,
        b"content",
        &SignOptions {
            detached: false,
            ..sign_opts(DigestAlg::Sha256)
        },
    )
    .await
    .unwrap();
    let o = open_with(der, &ca, VerifyPolicy::default(), vec![]).await;
    assert_eq!(o.report.valid, Some(true));
    assert_eq!(o.report.layers[0].signers[0].matches_from, None);
}
