//! Test helpers: keys (cached, key generation is slow) and a tiny certificate factory.
//!
//! Test-only; nothing here is part of the engine.

use std::sync::OnceLock;

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::dsa::Dsa;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{HasPublic, PKey, PKeyRef, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, KeyUsage};
use openssl::x509::{X509, X509Builder, X509NameBuilder};

/// An RSA key; 2048-bit keys are generated once per test binary.
pub fn rsa_key(bits: u32) -> PKey<Private> {
    static KEY2048: OnceLock<PKey<Private>> = OnceLock::new();
    let make = || PKey::from_rsa(Rsa::generate(bits).unwrap()).unwrap();
    if bits == 2048 {
        KEY2048.get_or_init(make).clone()
    } else {
        make()
    }
}

pub fn ec_key(curve: Nid) -> PKey<Private> {
    let group = EcGroup::from_curve_name(curve).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

pub fn dsa_key() -> PKey<Private> {
    static KEY: OnceLock<PKey<Private>> = OnceLock::new();
    KEY.get_or_init(|| PKey::from_dsa(Dsa::generate(2048).unwrap()).unwrap())
        .clone()
}

/// The DER SubjectPublicKeyInfo of a key.
pub fn spki<T: HasPublic>(key: &PKeyRef<T>) -> Vec<u8> {
    key.public_key_to_der().unwrap()
}

/// 2020-01-01T00:00:00Z.
pub const T2020: i64 = 1_577_836_800;
/// One day in seconds.
pub const DAY: i64 = 86_400;

/// Issues a certificate for `cn` valid from `not_before` for `days` days; self-signed when
/// `issuer` is `None`.
pub fn cert(
    cn: &str,
    key: &PKeyRef<Private>,
    issuer: Option<(&X509, &PKeyRef<Private>)>,
    ca: bool,
    serial: u32,
    not_before: i64,
    days: i64,
) -> X509 {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_nid(Nid::COMMONNAME, cn).unwrap();
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    let serial = BigNum::from_u32(serial).unwrap().to_asn1_integer().unwrap();
    b.set_serial_number(&serial).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(issuer.map_or(&name, |(c, _)| c.subject_name()))
        .unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::from_unix(not_before).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(not_before + days * DAY).unwrap())
        .unwrap();
    if ca {
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
    } else {
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
    }
    let signer = issuer.map_or(key, |(_, k)| k);
    b.sign(signer, MessageDigest::sha256()).unwrap();
    b.build()
}
