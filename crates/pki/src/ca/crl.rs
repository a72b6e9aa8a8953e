//! CRL v2 (RFC 5280 §5): revoked serials with dates and reason codes, cRLNumber, AKI.

use crate::asn1;

use super::der::{self, extension, uint};
use super::{CaError, encode_time};

/// CRLReason (RFC 5280 §5.3.1), the subset a mailbox CA uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RevocationReason {
    Unspecified,
    KeyCompromise,
    AffiliationChanged,
    Superseded,
    CessationOfOperation,
}

impl RevocationReason {
    pub fn code(self) -> u8 {
        match self {
            RevocationReason::Unspecified => 0,
            RevocationReason::KeyCompromise => 1,
            RevocationReason::AffiliationChanged => 3,
            RevocationReason::Superseded => 4,
            RevocationReason::CessationOfOperation => 5,
        }
    }

    /// Parses `key-compromise`, `keyCompromise`, `superseded`…
    pub fn from_name(name: &str) -> Option<Self> {
        let n: String = name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        Some(match n.as_str() {
            "unspecified" => Self::Unspecified,
            "keycompromise" => Self::KeyCompromise,
            "affiliationchanged" => Self::AffiliationChanged,
            "superseded" => Self::Superseded,
            "cessationofoperation" => Self::CessationOfOperation,
            _ => return None,
        })
    }
}

/// One revoked certificate.
#[derive(Debug, Clone)]
pub struct RevokedEntry {
    /// Positive INTEGER content octets.
    pub serial: Vec<u8>,
    pub revoked_at: i64,
    pub reason: RevocationReason,
}

/// What goes into a TBSCertList.
#[derive(Debug, Clone)]
pub struct CrlRequest<'a> {
    pub signature_algorithm: &'a [u8],
    /// The issuing CA's subject Name DER.
    pub issuer: &'a [u8],
    pub issuer_key_id: &'a [u8],
    pub this_update: i64,
    pub next_update: i64,
    /// Monotonic cRLNumber.
    pub number: u64,
    pub revoked: &'a [RevokedEntry],
}

/// Builds the DER TBSCertList.
pub fn build_tbs_crl(req: &CrlRequest<'_>) -> Result<Vec<u8>, CaError> {
    if req.next_update <= req.this_update {
        return Err(CaError::Profile(
            "nextUpdate must be after thisUpdate".into(),
        ));
    }
    let mut parts: Vec<Vec<u8>> = vec![
        asn1::small_int(1),
        req.signature_algorithm.to_vec(),
        req.issuer.to_vec(),
        encode_time(req.this_update),
        encode_time(req.next_update),
    ];
    if !req.revoked.is_empty() {
        let entries: Vec<Vec<u8>> = req
            .revoked
            .iter()
            .map(|r| {
                let reason = asn1::encode(0x0a, &[r.reason.code()]);
                let ext = extension(der::OID_EXT_REASON_CODE, false, &reason);
                asn1::seq(&[
                    &uint(&r.serial),
                    &encode_time(r.revoked_at),
                    &asn1::seq(&[&ext]),
                ])
            })
            .collect();
        let refs: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
        parts.push(asn1::seq(&refs));
    }
    let aki = asn1::seq(&[&asn1::context_primitive(0, req.issuer_key_id)]);
    let number = uint(&req.number.to_be_bytes());
    let exts = asn1::seq(&[
        &extension(der::OID_EXT_AKI, false, &aki),
        &extension(der::OID_EXT_CRL_NUMBER, false, &number),
    ]);
    parts.push(asn1::context_constructed(0, &[&exts]));
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    Ok(asn1::seq(&refs))
}
