//! TBSCertificate v3 for the three profiles a small S/MIME CA needs.
//!
//! End entity (CA/Browser Forum S/MIME BR, mailbox-validated **strict**, policy
//! 2.23.140.1.5.1.3): keyUsage critical digitalSignature + keyEncipherment (RSA) or
//! keyAgreement (EC); extendedKeyUsage emailProtection only; subjectAltName rfc822Name = the
//! address with its domain lowercased; SKI (method 1) and AKI; a CRL distribution point;
//! validity at most [`MAX_LEAF_DAYS`].
//!
//! Root: basicConstraints critical cA; keyUsage critical keyCertSign + cRLSign; SKI.
//! Issuing intermediate: as the root plus pathLenConstraint 0, AKI, EKU emailProtection (the
//! BR require it on S/MIME subordinate CAs) and the root's CRL distribution point if given.

use crate::KeyUsageBits;
use crate::asn1::{self};

use super::der::{self, extension, named_bits, oid};
use super::{CaError, SpkiKind, encode_time, key_identifier, spki_parts};

/// The S/MIME BR maximum validity of a subscriber certificate.
pub const MAX_LEAF_DAYS: i64 = 825;

/// Which profile to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaProfile {
    /// A self-signed trust anchor.
    Root,
    /// An issuing CA (pathLen 0): it signs end entities only.
    Intermediate { crl_url: Option<String> },
    /// A mailbox certificate for `email`.
    Leaf {
        email: String,
        crl_url: Option<String>,
    },
}

/// What goes into a TBSCertificate.
#[derive(Debug, Clone)]
pub struct TbsRequest<'a> {
    /// Positive INTEGER content octets (from [`super::random_serial`]).
    pub serial: &'a [u8],
    /// The signature AlgorithmIdentifier of the issuer's key ([`super::signature_algorithm`]).
    pub signature_algorithm: &'a [u8],
    /// Issuer Name DER (the subject itself for a root).
    pub issuer: &'a [u8],
    pub subject: &'a [u8],
    /// The subject's SubjectPublicKeyInfo DER.
    pub spki: &'a [u8],
    /// The issuer's key identifier (ignored for a root, whose AKI is its own SKI).
    pub issuer_key_id: &'a [u8],
    pub not_before: i64,
    pub not_after: i64,
    pub profile: CaProfile,
}

/// The address as certified: the local part as given, the domain lowercased.
pub fn normalize_email(addr: &str) -> Result<String, CaError> {
    let addr = addr.trim();
    let (local, domain) = addr
        .rsplit_once('@')
        .ok_or_else(|| CaError::Profile(format!("{addr:?} is not a mailbox address")))?;
    let ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic() && b != b'@');
    if !ok(local) || !ok(domain) || !domain.contains('.') && domain != "localhost" {
        return Err(CaError::Profile(format!(
            "{addr:?} is not a mailbox address (ASCII local@domain expected)"
        )));
    }
    Ok(format!("{local}@{}", domain.to_ascii_lowercase()))
}

fn validity_check(req: &TbsRequest<'_>) -> Result<(), CaError> {
    if req.not_after <= req.not_before {
        return Err(CaError::Profile("notAfter must be after notBefore".into()));
    }
    if matches!(req.profile, CaProfile::Leaf { .. })
        && req.not_after - req.not_before > MAX_LEAF_DAYS * 86_400
    {
        return Err(CaError::Profile(format!(
            "validity of {} days exceeds the S/MIME Baseline Requirements maximum of {MAX_LEAF_DAYS} days",
            (req.not_after - req.not_before + 86_399) / 86_400
        )));
    }
    Ok(())
}

fn crl_dp(url: &str) -> Vec<u8> {
    // CRLDistributionPoints ::= SEQUENCE OF DistributionPoint { distributionPoint [0]
    // { fullName [0] IMPLICIT GeneralNames { uniformResourceIdentifier [6] } } }
    let uri = asn1::context_primitive(6, url.as_bytes());
    let full_name = asn1::context_constructed(0, &[&uri]);
    let dp_name = asn1::context_constructed(0, &[&full_name]);
    asn1::seq(&[&asn1::seq(&[&dp_name])])
}

fn aki(key_id: &[u8]) -> Vec<u8> {
    asn1::seq(&[&asn1::context_primitive(0, key_id)])
}

fn eku_email() -> Vec<u8> {
    asn1::seq(&[&oid(der::OID_KP_EMAIL_PROTECTION)])
}

/// Builds the DER TBSCertificate, enforcing the profile.
pub fn build_tbs(req: &TbsRequest<'_>) -> Result<Vec<u8>, CaError> {
    validity_check(req)?;
    if req.serial.is_empty() || req.serial[0] & 0x80 != 0 || req.serial.len() > 20 {
        return Err(CaError::Profile(
            "serial number must be positive and at most 20 octets".into(),
        ));
    }
    let (kind, _) = spki_parts(req.spki)?;
    let ski = key_identifier(req.spki)?;
    let ca_usage = KeyUsageBits::KEY_CERT_SIGN | KeyUsageBits::CRL_SIGN;
    let mut exts: Vec<Vec<u8>> = Vec::new();
    match &req.profile {
        CaProfile::Root => {
            let bc = asn1::seq(&[&asn1::encode(asn1::TAG_BOOLEAN, &[0xff])]);
            exts.push(extension(der::OID_EXT_BASIC_CONSTRAINTS, true, &bc));
            exts.push(extension(
                der::OID_EXT_KEY_USAGE,
                true,
                &named_bits(ca_usage),
            ));
            exts.push(extension(
                der::OID_EXT_SKI,
                false,
                &asn1::octet_string(&ski),
            ));
            exts.push(extension(der::OID_EXT_AKI, false, &aki(&ski)));
        }
        CaProfile::Intermediate { crl_url } => {
            let bc = asn1::seq(&[
                &asn1::encode(asn1::TAG_BOOLEAN, &[0xff]),
                &asn1::small_int(0),
            ]);
            exts.push(extension(der::OID_EXT_BASIC_CONSTRAINTS, true, &bc));
            exts.push(extension(
                der::OID_EXT_KEY_USAGE,
                true,
                &named_bits(ca_usage),
            ));
            exts.push(extension(der::OID_EXT_EKU, false, &eku_email()));
            exts.push(extension(
                der::OID_EXT_SKI,
                false,
                &asn1::octet_string(&ski),
            ));
            exts.push(extension(der::OID_EXT_AKI, false, &aki(req.issuer_key_id)));
            if let Some(url) = crl_url {
                exts.push(extension(der::OID_EXT_CRL_DP, false, &crl_dp(url)));
            }
        }
        CaProfile::Leaf { email, crl_url } => {
            let email = normalize_email(email)?;
            let usage = KeyUsageBits::DIGITAL_SIGNATURE
                | match kind {
                    SpkiKind::Rsa => KeyUsageBits::KEY_ENCIPHERMENT,
                    SpkiKind::Ec => KeyUsageBits::KEY_AGREEMENT,
                };
            exts.push(extension(der::OID_EXT_KEY_USAGE, true, &named_bits(usage)));
            exts.push(extension(der::OID_EXT_EKU, false, &eku_email()));
            let san = asn1::seq(&[&asn1::context_primitive(1, email.as_bytes())]);
            exts.push(extension(der::OID_EXT_SAN, false, &san));
            let policies = asn1::seq(&[&asn1::seq(&[&oid(der::OID_POLICY_MAILBOX_STRICT)])]);
            exts.push(extension(der::OID_EXT_POLICIES, false, &policies));
            exts.push(extension(
                der::OID_EXT_SKI,
                false,
                &asn1::octet_string(&ski),
            ));
            exts.push(extension(der::OID_EXT_AKI, false, &aki(req.issuer_key_id)));
            if let Some(url) = crl_url {
                exts.push(extension(der::OID_EXT_CRL_DP, false, &crl_dp(url)));
            }
        }
    }
    let ext_refs: Vec<&[u8]> = exts.iter().map(Vec::as_slice).collect();
    let extensions = asn1::context_constructed(3, &[&asn1::seq(&ext_refs)]);
    let version = asn1::context_constructed(0, &[&asn1::small_int(2)]);
    let validity = asn1::seq(&[&encode_time(req.not_before), &encode_time(req.not_after)]);
    Ok(asn1::seq(&[
        &version,
        &asn1::encode(asn1::TAG_INTEGER, req.serial),
        req.signature_algorithm,
        req.issuer,
        &validity,
        req.subject,
        req.spki,
        &extensions,
    ]))
}
