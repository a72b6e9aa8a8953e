//! Unit tests with a pinned clock, a fake key and fake primitives: they check the encoding
//! (with `x509-cert` as the oracle); real signatures are checked end to end with OpenSSL.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU8, Ordering};

use ::der::{Decode, Encode};
use async_trait::async_trait;
use sha2::Digest;
use smimekit_core::{
    CertDer, DigestAlg, EngineError, KeyKind, KeyStoreError, Primitives, PrivateKey, PublicKeyInfo,
    RsaPadding, Secret, SignatureScheme, SignatureVerifier,
};

use super::der::{OID_EMAIL_ADDRESS, oid};
use super::*;
use crate::asn1;
use crate::certinfo;

/// 2026-01-01T00:00:00Z.
const NOW: i64 = 1_767_225_600;
const DAY: i64 = 86_400;

#[derive(Debug)]
struct FakePrimitives(AtomicU8);

impl Primitives for FakePrimitives {
    fn digest(&self, alg: DigestAlg, data: &[&[u8]]) -> Result<Vec<u8>, EngineError> {
        assert_eq!(alg, DigestAlg::Sha256);
        let mut h = sha2::Sha256::new();
        for d in data {
            h.update(d);
        }
        Ok(h.finalize().to_vec())
    }
    fn fill_random(&self, buf: &mut [u8]) -> Result<(), EngineError> {
        for b in buf.iter_mut() {
            *b = self.0.fetch_add(37, Ordering::Relaxed);
        }
        Ok(())
    }
}

#[derive(Debug)]
struct FakeKey(CertDer);

#[async_trait]
impl PrivateKey for FakeKey {
    fn certificate(&self) -> &CertDer {
        &self.0
    }
    fn chain(&self) -> &[CertDer] {
        &[]
    }
    fn kind(&self) -> KeyKind {
        KeyKind::Ec { curve: "P-256" }
    }
    async fn sign_digest(&self, _: SignatureScheme, d: &[u8]) -> Result<Vec<u8>, KeyStoreError> {
        Ok([b"sig:".as_slice(), d].concat())
    }
    async fn decrypt_key(&self, _: &RsaPadding, _: &[u8]) -> Result<Secret, KeyStoreError> {
        unreachable!()
    }
    async fn ecdh(&self, _: &[u8]) -> Result<Secret, KeyStoreError> {
        unreachable!()
    }
}

/// A P-256 SPKI with a made-up point (the encoder never looks at it).
fn ec_spki(fill: u8) -> Vec<u8> {
    let alg = asn1::seq(&[
        &oid(&[1, 2, 840, 10045, 2, 1]),
        &oid(&[1, 2, 840, 10045, 3, 1, 7]),
    ]);
    let mut point = vec![4u8];
    point.extend([fill; 64]);
    asn1::seq(&[&alg, &asn1::bit_string(&point)])
}

fn rsa_spki() -> Vec<u8> {
    let alg = asn1::seq(&[&oid(&[1, 2, 840, 113549, 1, 1, 1]), &asn1::null()]);
    let key = asn1::seq(&[&super::der::uint(&[0xc5; 256]), &asn1::small_int(65537)]);
    asn1::seq(&[&alg, &asn1::bit_string(&key)])
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    // The fake key never awaits anything, so one poll completes it.
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("fake future pending"),
    }
}

fn leaf_req<'a>(
    serial: &'a [u8],
    alg: &'a [u8],
    issuer: &'a [u8],
    subject: &'a [u8],
    spki: &'a [u8],
    days: i64,
) -> TbsRequest<'a> {
    TbsRequest {
        serial,
        signature_algorithm: alg,
        issuer,
        subject,
        spki,
        issuer_key_id: &[7; 20],
        not_before: NOW,
        not_after: NOW + days * DAY,
        profile: CaProfile::Leaf {
            email: "Alice@Example.ORG".into(),
            crl_url: Some("http://crl.example.org/issuing.crl".into()),
        },
    }
}

#[test]
fn leaf_profile_is_mailbox_validated_strict() {
    let prim = FakePrimitives(AtomicU8::new(0));
    let serial = random_serial(&prim).unwrap();
    assert_eq!(serial.len(), 16);
    assert!(serial[0] & 0x80 == 0 && serial[0] != 0);
    let (scheme, alg) = signature_algorithm(KeyKind::Ec { curve: "P-256" }).unwrap();
    let issuer = Name::new()
        .organization("Example Org")
        .common_name("Issuing")
        .to_der();
    let subject = Name::new().common_name("Alice@Example.ORG").to_der();
    for (spki, rsa) in [(ec_spki(1), false), (rsa_spki(), true)] {
        let tbs = build_tbs(&leaf_req(&serial, &alg, &issuer, &subject, &spki, 365)).unwrap();
        let key = FakeKey(CertDer::new(Vec::new()));
        let cert = block_on(sign_tbs(&tbs, scheme, &alg, &key, &prim)).unwrap();

        // The strict decoder accepts it and re-encodes it identically.
        let parsed = x509_cert::Certificate::from_der(&cert).unwrap();
        assert_eq!(parsed.to_der().unwrap(), cert);

        let info = certinfo::parse(&CertDer::new(cert.clone())).unwrap();
        assert_eq!(info.emails, vec!["Alice@example.org".to_string()]);
        assert_eq!(info.not_before, NOW);
        assert_eq!(info.not_after, NOW + 365 * DAY);
        assert!(info.key_usage_critical);
        let ku = info.key_usage.unwrap().names();
        if rsa {
            assert_eq!(ku, ["digitalSignature", "keyEncipherment"]);
        } else {
            assert_eq!(ku, ["digitalSignature", "keyAgreement"]);
        }
        assert_eq!(
            info.extended_key_usage.unwrap(),
            vec!["1.3.6.1.5.5.7.3.4".to_string()]
        );
        assert!(!info.is_ca);
        assert_eq!(info.signature_algorithm, "1.2.840.10045.4.3.2");
        assert_eq!(info.subject_key_id.unwrap(), key_identifier(&spki).unwrap());
        assert_eq!(info.serial_hex, hex::encode_upper(&serial));
        // The signature is the key's signature over the TBS digest.
        let digest = sha2::Sha256::digest(&tbs);
        let sig = parsed.signature().raw_bytes();
        assert_eq!(&sig[4..], digest.as_slice());
    }
}

#[test]
fn leaf_validity_over_825_days_is_refused() {
    let (_, alg) = signature_algorithm(KeyKind::Rsa { bits: 2048 }).unwrap();
    let n = Name::new().common_name("x").to_der();
    let spki = ec_spki(2);
    assert!(build_tbs(&leaf_req(&[1], &alg, &n, &n, &spki, 825)).is_ok());
    let err = build_tbs(&leaf_req(&[1], &alg, &n, &n, &spki, 826)).unwrap_err();
    assert!(err.to_string().contains("825"), "{err}");
    // A negative serial is refused.
    assert!(build_tbs(&leaf_req(&[0x80], &alg, &n, &n, &spki, 30)).is_err());
}

#[test]
fn ca_profiles() {
    let (_, alg) = signature_algorithm(KeyKind::Ec { curve: "P-384" }).unwrap();
    let name = Name::new()
        .country("DE")
        .organization("Example Org")
        .common_name("Root")
        .to_der();
    let spki = ec_spki(3);
    for (profile, path_len) in [
        (CaProfile::Root, None),
        (CaProfile::Intermediate { crl_url: None }, Some(0u8)),
    ] {
        let tbs = build_tbs(&TbsRequest {
            serial: &[0x42; 16],
            signature_algorithm: &alg,
            issuer: &name,
            subject: &name,
            spki: &spki,
            issuer_key_id: &[9; 20],
            not_before: NOW,
            not_after: NOW + 20 * 365 * DAY,
            profile,
        })
        .unwrap();
        let cert = asn1::seq(&[&tbs, &alg, &asn1::bit_string(b"x")]);
        let parsed = x509_cert::Certificate::from_der(&cert).unwrap();
        assert_eq!(parsed.to_der().unwrap(), cert);
        let info = certinfo::parse(&CertDer::new(cert.clone())).unwrap();
        assert!(info.is_ca);
        assert_eq!(info.key_usage.unwrap().names(), ["keyCertSign", "cRLSign"]);
        // 20 years on crosses 2050: GeneralizedTime, read back exactly.
        assert_eq!(info.not_after, NOW + 20 * 365 * DAY);
        let bc = parsed
            .tbs_certificate()
            .get_extension::<x509_cert::ext::pkix::BasicConstraints>()
            .unwrap()
            .unwrap();
        assert!(bc.0, "critical");
        assert!(bc.1.ca);
        assert_eq!(bc.1.path_len_constraint, path_len);
        let parts = issuer_parts(&cert).unwrap();
        assert_eq!(parts.subject, name);
        assert_eq!(parts.key_id, key_identifier(&spki).unwrap());
    }
    assert!(signature_algorithm(KeyKind::Rsa { bits: 1024 }).is_err());
}

#[test]
fn times() {
    assert_eq!(encode_time(0), asn1::encode(0x17, b"700101000000Z"));
    assert_eq!(
        encode_time(951_782_400),
        asn1::encode(0x17, b"000229000000Z")
    );
    assert_eq!(
        encode_time(2_524_608_000),
        asn1::encode(0x18, b"20500101000000Z")
    );
    assert_eq!(
        encode_time(2_524_607_999),
        asn1::encode(0x17, b"491231235959Z")
    );
}

#[test]
fn crl_v2() {
    let (scheme, alg) = signature_algorithm(KeyKind::Ec { curve: "P-256" }).unwrap();
    let issuer = Name::new().common_name("Issuing").to_der();
    let revoked = [
        RevokedEntry {
            serial: vec![0x42; 16],
            revoked_at: NOW - DAY,
            reason: RevocationReason::KeyCompromise,
        },
        RevokedEntry {
            serial: vec![0x80, 1],
            revoked_at: NOW - 2 * DAY,
            reason: RevocationReason::Superseded,
        },
    ];
    let tbs = build_tbs_crl(&CrlRequest {
        signature_algorithm: &alg,
        issuer: &issuer,
        issuer_key_id: &[5; 20],
        this_update: NOW,
        next_update: NOW + 7 * DAY,
        number: 3,
        revoked: &revoked,
    })
    .unwrap();
    let prim = FakePrimitives(AtomicU8::new(0));
    let crl = block_on(sign_tbs(
        &tbs,
        scheme,
        &alg,
        &FakeKey(CertDer::new(vec![])),
        &prim,
    ))
    .unwrap();
    let parsed =
        x509_cert::crl::CertificateList::<x509_cert::certificate::Rfc5280>::from_der(&crl).unwrap();
    assert_eq!(parsed.to_der().unwrap(), crl);
    let list = parsed.tbs_cert_list.revoked_certificates.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[1].serial_number.as_bytes(), [0x00, 0x80, 0x01]);
    assert_eq!(parsed.tbs_cert_list.crl_extensions.unwrap().len(), 2);
    assert!(
        build_tbs_crl(&CrlRequest {
            signature_algorithm: &alg,
            issuer: &issuer,
            issuer_key_id: &[5; 20],
            this_update: NOW,
            next_update: NOW,
            number: 1,
            revoked: &[],
        })
        .is_err()
    );
    assert_eq!(
        RevocationReason::from_name("key-compromise"),
        Some(RevocationReason::KeyCompromise)
    );
}

/// Accepts exactly the signature `good`.
#[derive(Debug)]
struct FakeVerifier;

impl SignatureVerifier for FakeVerifier {
    fn verify(
        &self,
        _: &[u8],
        s: SignatureScheme,
        _: &[u8],
        sig: &[u8],
    ) -> Result<bool, EngineError> {
        assert_eq!(s, SignatureScheme::Ecdsa(DigestAlg::Sha256));
        Ok(sig == b"good")
    }
    fn public_key_info(&self, _: &[u8]) -> Result<PublicKeyInfo, EngineError> {
        unreachable!()
    }
}

fn csr(signature: &[u8], with_san: bool) -> Vec<u8> {
    let subject = asn1::seq(&[&asn1::set_of(vec![asn1::seq(&[
        &oid(OID_EMAIL_ADDRESS),
        &asn1::encode(0x16, b"subject@example.org"),
    ])])]);
    let attrs = if with_san {
        let san = asn1::seq(&[&asn1::context_primitive(1, b"bob@example.org")]);
        let ext = asn1::seq(&[&oid(&[2, 5, 29, 17]), &asn1::octet_string(&san)]);
        let attr = asn1::seq(&[
            &oid(&[1, 2, 840, 113549, 1, 9, 14]),
            &asn1::set_of(vec![asn1::seq(&[&ext])]),
        ]);
        asn1::context_constructed(0, &[&attr])
    } else {
        asn1::context_constructed(0, &[])
    };
    let info = asn1::seq(&[&asn1::small_int(0), &subject, &ec_spki(4), &attrs]);
    let alg = asn1::seq(&[&oid(&[1, 2, 840, 10045, 4, 3, 2])]);
    asn1::seq(&[&info, &alg, &asn1::bit_string(signature)])
}

#[test]
fn csr_parsing() {
    let c = parse_csr(&csr(b"good", true), &FakeVerifier).unwrap();
    assert_eq!(c.email.as_deref(), Some("bob@example.org"));
    assert_eq!(c.spki, ec_spki(4));
    let c = parse_csr(&csr(b"good", false), &FakeVerifier).unwrap();
    assert_eq!(c.email.as_deref(), Some("subject@example.org"));

    // PEM works too.
    use base64::Engine;
    let pem = format!(
        "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
        base64::engine::general_purpose::STANDARD.encode(csr(b"good", true))
    );
    assert!(parse_csr(pem.as_bytes(), &FakeVerifier).is_ok());

    assert!(matches!(
        parse_csr(&csr(b"bad!", true), &FakeVerifier),
        Err(CaError::BadSignature)
    ));
    for bad in [
        b"".to_vec(),
        b"not a csr".to_vec(),
        csr(b"good", true)[..40].to_vec(),
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec(),
    ] {
        assert!(
            matches!(
                parse_csr(&bad, &FakeVerifier),
                Err(CaError::Malformed { .. })
            ),
            "{bad:02x?}"
        );
    }
}

#[test]
fn email_normalisation() {
    use super::cert::normalize_email;
    assert_eq!(
        normalize_email("Bob.Smith@Example.COM").unwrap(),
        "Bob.Smith@example.com"
    );
    for bad in [
        "",
        "bob",
        "@example.org",
        "bob@",
        "bob smith@example.org",
        "bö@example.org",
    ] {
        assert!(normalize_email(bad).is_err(), "{bad}");
    }
}
