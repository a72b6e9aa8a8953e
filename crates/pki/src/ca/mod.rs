//! Certificate authority encoding: TBSCertificate (S/MIME BR profiles), PKCS#10 CSR parsing,
//! CRL v2, and signing through the [`PrivateKey`] port.
//!
//! Everything here is pure: time comes in as Unix seconds, randomness and digests through the
//! engine's [`Primitives`], signatures through a [`PrivateKey`] (so a CA key on a token or in a
//! file works the same, and is never assumed exportable), CSR signature checks through the
//! engine's [`smimekit_core::SignatureVerifier`]. DER is written with [`crate::asn1`].
//!
//! * [`cert`]: the end-entity profile (CA/Browser Forum S/MIME BR, mailbox-validated strict)
//!   and the root / issuing-intermediate CA profiles.
//! * [`csr`]: PKCS#10 parsing with signature verification.
//! * [`crl`]: CRL v2 with cRLNumber, AKI and reason codes.

pub mod cert;
pub mod crl;
pub mod csr;
mod der;

use smimekit_core::{
    DigestAlg, EngineError, KeyKind, KeyStoreError, Primitives, PrivateKey, SignatureScheme,
};

use crate::asn1::{self, Asn1Error, Reader, TAG_BIT_STRING, TAG_INTEGER, TAG_OID, TAG_SEQUENCE};

pub use cert::{CaProfile, MAX_LEAF_DAYS, TbsRequest, build_tbs};
pub use crl::{CrlRequest, RevocationReason, RevokedEntry, build_tbs_crl};
pub use csr::{Csr, build_csr, parse_csr};
pub use der::{Name, encode_time};

/// Why a CA operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// Input (a CSR, a certificate, a public key) is not well-formed.
    #[error("malformed {what}: {detail}")]
    Malformed { what: &'static str, detail: String },
    /// The CSR's self-signature does not verify.
    #[error(
        "the certificate request's signature does not verify (tampered or not signed by its key)"
    )]
    BadSignature,
    /// An algorithm, key size or curve outside the profile.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The request breaks the profile (validity too long, bad address…).
    #[error("{0}")]
    Profile(String),
    #[error(transparent)]
    Key(#[from] KeyStoreError),
    #[error("crypto engine: {0}")]
    Engine(#[from] EngineError),
}

impl CaError {
    pub(crate) fn malformed(what: &'static str, detail: impl std::fmt::Display) -> Self {
        CaError::Malformed {
            what,
            detail: detail.to_string(),
        }
    }
}

fn asn1_err(what: &'static str) -> impl Fn(Asn1Error) -> CaError {
    move |e| CaError::malformed(what, e)
}

/// The signature scheme and the DER AlgorithmIdentifier for certificates signed by a key of
/// this kind: sha256WithRSAEncryption, ecdsa-with-SHA256 (P-256), ecdsa-with-SHA384 (P-384).
pub fn signature_algorithm(kind: KeyKind) -> Result<(SignatureScheme, Vec<u8>), CaError> {
    match kind {
        KeyKind::Rsa { bits } if bits >= 2048 => Ok((
            SignatureScheme::RsaPkcs1(DigestAlg::Sha256),
            asn1::seq(&[&der::oid(der::OID_SHA256_RSA), &asn1::null()]),
        )),
        KeyKind::Ec { curve: "P-256" } => Ok((
            SignatureScheme::Ecdsa(DigestAlg::Sha256),
            asn1::seq(&[&der::oid(der::OID_ECDSA_SHA256)]),
        )),
        KeyKind::Ec { curve: "P-384" } => Ok((
            SignatureScheme::Ecdsa(DigestAlg::Sha384),
            asn1::seq(&[&der::oid(der::OID_ECDSA_SHA384)]),
        )),
        other => Err(CaError::Unsupported(format!(
            "CA key {other:?}: use RSA 2048-4096 or EC P-256/P-384"
        ))),
    }
}

/// Signs a TBSCertificate or TBSCertList: digest through the engine, `sign_digest` through the
/// key, and the `SEQUENCE { tbs, algorithm, BIT STRING signature }` wrapper.
/// `algorithm` must be the AlgorithmIdentifier already inside `tbs` (from
/// [`signature_algorithm`]).
pub async fn sign_tbs(
    tbs: &[u8],
    scheme: SignatureScheme,
    algorithm: &[u8],
    key: &dyn PrivateKey,
    primitives: &dyn Primitives,
) -> Result<Vec<u8>, CaError> {
    let digest = primitives.digest(scheme.digest(), &[tbs])?;
    let signature = key.sign_digest(scheme, &digest).await?;
    Ok(asn1::seq(&[tbs, algorithm, &asn1::bit_string(&signature)]))
}

/// A fresh certificate serial number: 16 random bytes from the engine (at least 120 bits of
/// entropy), positive, with no leading zero octet. Returned as INTEGER content octets.
pub fn random_serial(primitives: &dyn Primitives) -> Result<Vec<u8>, CaError> {
    let mut serial = [0u8; 16];
    primitives.fill_random(&mut serial)?;
    serial[0] &= 0x7f; // positive
    serial[0] |= 0x40; // no leading zero octet, so always 16 bytes of DER content
    Ok(serial.to_vec())
}

/// The facts about a public key the profiles need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpkiKind {
    Rsa,
    Ec,
}

/// Reads a SubjectPublicKeyInfo: its algorithm and the subjectPublicKey bits (the SKI input).
pub fn spki_parts(spki: &[u8]) -> Result<(SpkiKind, Vec<u8>), CaError> {
    let e = asn1_err("SubjectPublicKeyInfo");
    let top = asn1::parse_single(spki)
        .map_err(&e)?
        .expect(TAG_SEQUENCE, "SubjectPublicKeyInfo")
        .map_err(&e)?;
    let mut r = top.children();
    let alg = r.read_tag(TAG_SEQUENCE, "algorithm").map_err(&e)?;
    let oid = alg
        .children()
        .read_tag(TAG_OID, "algorithm OID")
        .map_err(&e)?;
    let bits = r.read_tag(TAG_BIT_STRING, "subjectPublicKey").map_err(&e)?;
    let content = bits.content;
    if content.first() != Some(&0) {
        return Err(CaError::malformed(
            "SubjectPublicKeyInfo",
            "subjectPublicKey has unused bits",
        ));
    }
    let kind = if oid.content == der::OID_RSA_ENCRYPTION_DER {
        SpkiKind::Rsa
    } else if oid.content == der::OID_EC_PUBLIC_KEY_DER {
        SpkiKind::Ec
    } else {
        return Err(CaError::Unsupported(
            "public key algorithm: only RSA and EC keys are certified".into(),
        ));
    };
    Ok((kind, content[1..].to_vec()))
}

/// Subject key identifier, RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits.
pub fn key_identifier(spki: &[u8]) -> Result<Vec<u8>, CaError> {
    use sha1::{Digest, Sha1};
    let (_, bits) = spki_parts(spki)?;
    Ok(Sha1::digest(&bits).to_vec())
}

/// The raw pieces of a certificate a CA needs from its issuer certificate.
#[derive(Debug, Clone)]
pub struct IssuerParts {
    /// The subject Name DER (becomes the issuer of what it signs).
    pub subject: Vec<u8>,
    pub spki: Vec<u8>,
    /// Its subjectKeyIdentifier, or the computed method-1 identifier.
    pub key_id: Vec<u8>,
    pub serial: Vec<u8>,
}

/// Reads subject, SPKI, serial and key identifier from a certificate.
pub fn issuer_parts(cert: &[u8]) -> Result<IssuerParts, CaError> {
    let e = asn1_err("certificate");
    let top = asn1::parse_single(cert)
        .map_err(&e)?
        .expect(TAG_SEQUENCE, "Certificate")
        .map_err(&e)?;
    let tbs = top
        .children()
        .read_tag(TAG_SEQUENCE, "tbsCertificate")
        .map_err(&e)?;
    let mut r = tbs.children();
    r.optional(0xa0).map_err(&e)?;
    let serial = r.read_tag(TAG_INTEGER, "serialNumber").map_err(&e)?;
    r.read_tag(TAG_SEQUENCE, "signature").map_err(&e)?;
    r.read_tag(TAG_SEQUENCE, "issuer").map_err(&e)?;
    r.read_tag(TAG_SEQUENCE, "validity").map_err(&e)?;
    let subject = r.read_tag(TAG_SEQUENCE, "subject").map_err(&e)?;
    let spki = r
        .read_tag(TAG_SEQUENCE, "subjectPublicKeyInfo")
        .map_err(&e)?;
    let mut key_id = None;
    while let Some(t) = r.next().map_err(&e)? {
        if t.context() == Some(3) {
            key_id = find_ski(t).map_err(&e)?;
        }
    }
    let key_id = match key_id {
        Some(k) => k,
        None => key_identifier(spki.raw)?,
    };
    Ok(IssuerParts {
        subject: subject.raw.to_vec(),
        spki: spki.raw.to_vec(),
        key_id,
        serial: serial.content.to_vec(),
    })
}

fn find_ski(exts: asn1::Tlv<'_>) -> Result<Option<Vec<u8>>, Asn1Error> {
    let seq = exts.children().read_tag(TAG_SEQUENCE, "extensions")?;
    let mut r: Reader<'_> = seq.children();
    while let Some(ext) = r.next()? {
        let mut er = ext.children();
        let oid = er.read_tag(TAG_OID, "extnID")?;
        er.optional(asn1::TAG_BOOLEAN)?;
        let value = er.read_tag(asn1::TAG_OCTET_STRING, "extnValue")?;
        if oid.content == der::OID_SKI_DER {
            let inner = asn1::parse_single(value.content)?;
            return Ok(Some(inner.content.to_vec()));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests;
