//! Every INFERRED protocol choice of the Exchange Online admin API, in one place, each with
//! its config switch (`[directory.NAME.protocol]`). See shared/docs/exchange-online.md §1.4,
//! §2.5, §2.6 and §7: these must be checked against a real tenant, and the emulator accepts
//! every alternative listed here.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use serde_json::{Value, json};

/// How a `byte[]` goes into the JSON body (§2.6, INFERRED: base64 inside `Data`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ByteEncoding {
    /// `"Data": "<base64>"` (what .NET / OData `Edm.Binary` write).
    #[default]
    Base64,
    /// `"Data": [48, 130, …]` (what PowerShell's ConvertTo-Json would write).
    IntArray,
}

/// The `X-SerializationLevel` header (§1.2, §2.6: with `Partial` a certificate may come
/// back as the type name `System.Byte[]`; `Full` is the safe choice, INFERRED).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum SerializationLevel {
    #[default]
    Full,
    Partial,
}

/// Prefix of the app-only `X-AnchorMailbox` (§1.2: both seen in the wild).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum Anchor {
    #[default]
    #[serde(rename = "APP")]
    App,
    #[serde(rename = "UPN")]
    Upn,
}

/// The switches.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Protocol {
    pub byte_encoding: ByteEncoding,
    pub serialization_level: SerializationLevel,
    pub anchor: Anchor,
}

/// Property and parameter names (§2.3, §2.5; CONFIRMED names, INFERRED for Get-MailContact).
pub const PROP_USER_CERTIFICATE: &str = "UserCertificate";
pub const PROP_USER_SMIME_CERTIFICATE: &str = "UserSMimeCertificate";
pub const PROP_PRIMARY_SMTP: &str = "PrimarySmtpAddress";
pub const PROP_EXTERNAL_EMAIL: &str = "ExternalEmailAddress";
pub const PROP_ISSUING_CA: &str = "SMIMECertificateIssuingCA";
pub const PROP_NAME: &str = "Name";
/// The literal a `Partial` serialization may put instead of bytes (INFERRED).
pub const UNSERIALIZED_BYTES: &str = "System.Byte[]";

impl Protocol {
    pub fn serialization_header(&self) -> &'static str {
        match self.serialization_level {
            SerializationLevel::Full => "Full",
            SerializationLevel::Partial => "Partial",
        }
    }

    /// `X-AnchorMailbox` for app-only calls.
    pub fn anchor_header(&self, tenant: &str) -> String {
        let p = match self.anchor {
            Anchor::App => "APP",
            Anchor::Upn => "UPN",
        };
        format!("{p}:SystemMailbox{{bb558c35-97f1-4cb9-8ff7-d53741dc928c}}@{tenant}")
    }

    fn data(&self, bytes: &[u8]) -> Value {
        match self.byte_encoding {
            ByteEncoding::Base64 => Value::String(B64.encode(bytes)),
            ByteEncoding::IntArray => Value::Array(bytes.iter().map(|b| json!(b)).collect()),
        }
    }

    /// A single `byte[]` parameter (`-SMIMECertificateIssuingCA`).
    pub fn byte_array(&self, bytes: &[u8]) -> Value {
        json!({"@odata.type": "#Exchange.ByteArrayType", "Data": self.data(bytes)})
    }

    /// A `byte[][]` list (the full value of `-UserCertificate`).
    pub fn byte_array_list(&self, values: &[&[u8]]) -> Value {
        Value::Array(
            values
                .iter()
                .map(|v| json!({"Data": self.data(v)}))
                .collect(),
        )
    }

    /// A MultiValuedProperty `@{Add=…; Remove=…}` of byte arrays (§1.3, §2.3).
    pub fn add_remove(&self, add: &[&[u8]], remove: &[&[u8]]) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("@odata.type".into(), json!("#Exchange.GenericHashTable"));
        if !add.is_empty() {
            m.insert("Add".into(), self.byte_array_list(add));
        }
        if !remove.is_empty() {
            m.insert("Remove".into(), self.byte_array_list(remove));
        }
        Value::Object(m)
    }
}

/// The Set-SmimeConfig OWA parameters and their types (§2.1, CONFIRMED).
pub const OWA_BOOL: &[&str] = &[
    "OWAAllowUserChoiceOfSigningCertificate",
    "OWAAlwaysEncrypt",
    "OWAAlwaysSign",
    "OWACheckCRLOnSend",
    "OWAClearSign",
    "OWACopyRecipientHeaders",
    "OWADisableCRLCheck",
    "OWAEncryptTemporaryBuffers",
    "OWAForceSMIMEClientUpgrade",
    "OWAIncludeCertificateChainAndRootCertificate",
    "OWAIncludeCertificateChainWithoutRootCertificate",
    "OWAIncludeSMIMECapabilitiesInMessage",
    "OWAOnlyUseSmartCard",
    "OWASignedEmailCertificateInclusion",
    "OWATripleWrapSignedEncryptedMail",
    "OWAUseKeyIdentifier",
    "OWAUseSecondaryProxiesWhenFindingCertificates",
    "NoSignOnReply",
];
pub const OWA_UINT: &[&str] = &[
    "OWABCCEncryptedEmailForking",
    "OWACRLConnectionTimeout",
    "OWACRLRetrievalTimeout",
    "OWADLExpansionTimeout",
];
pub const OWA_STRING: &[&str] = &[
    "OWAEncryptionAlgorithms",
    "OWASigningAlgorithms",
    "OWASenderCertificateAttributesToDisplay",
];

/// A `NAME=VALUE` for Set-SmimeConfig, typed: the canonical name and the JSON value.
pub fn owa_setting(name: &str, value: &str) -> Result<(&'static str, Value), String> {
    let find = |list: &[&'static str]| list.iter().copied().find(|n| n.eq_ignore_ascii_case(name));
    if let Some(n) = find(OWA_BOOL) {
        return match value.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok((n, json!(true))),
            "false" | "0" | "no" => Ok((n, json!(false))),
            _ => Err(format!("{n} takes true or false, not {value:?}")),
        };
    }
    if let Some(n) = find(OWA_UINT) {
        let v: u32 = value
            .parse()
            .map_err(|_| format!("{n} takes a number, not {value:?}"))?;
        if n == "OWABCCEncryptedEmailForking" && v > 2 {
            return Err(format!("{n} takes 0, 1 or 2"));
        }
        return Ok((n, json!(v)));
    }
    if let Some(n) = find(OWA_STRING) {
        return Ok((n, json!(value)));
    }
    Err(format!(
        "unknown S/MIME setting {name:?}; known: {}",
        [OWA_BOOL, OWA_UINT, OWA_STRING].concat().join(", ")
    ))
}

/// Why a returned byte value cannot be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error(
        "the service returned {UNSERIALIZED_BYTES:?} instead of the bytes (set protocol.serialization_level = \"Full\")"
    )]
    NotSerialized,
    #[error("unreadable byte value: {0}")]
    Bad(String),
}

/// One returned `byte[]` value: a base64 string, `{"Data": …}`, or an array of integers.
pub fn decode_bytes(v: &Value) -> Result<Vec<u8>, DecodeError> {
    match v {
        Value::String(s) if s == UNSERIALIZED_BYTES => Err(DecodeError::NotSerialized),
        Value::String(s) => B64
            .decode(s.trim())
            .map_err(|e| DecodeError::Bad(format!("base64: {e}"))),
        Value::Object(o) => match o.get("Data") {
            Some(d) => decode_bytes(d),
            None => Err(DecodeError::Bad("object without Data".into())),
        },
        Value::Array(a) => a
            .iter()
            .map(|x| {
                x.as_u64()
                    .and_then(|n| u8::try_from(n).ok())
                    .ok_or_else(|| DecodeError::Bad("array element is not a byte".into()))
            })
            .collect(),
        other => Err(DecodeError::Bad(format!("unexpected JSON {other}"))),
    }
}

/// A multi-valued byte property (`UserCertificate`): absent or null is empty.
pub fn decode_byte_list(v: Option<&Value>) -> Result<Vec<Vec<u8>>, DecodeError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a.iter().map(decode_bytes).collect(),
        Some(other) => Ok(vec![decode_bytes(other)?]),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn encodings_round_trip() {
        for enc in [ByteEncoding::Base64, ByteEncoding::IntArray] {
            let p = Protocol {
                byte_encoding: enc,
                ..Protocol::default()
            };
            let v = p.byte_array_list(&[b"\x30\x82ab"]);
            assert_eq!(
                decode_byte_list(Some(&v)).unwrap(),
                vec![b"\x30\x82ab".to_vec()]
            );
        }
        assert!(matches!(
            decode_bytes(&json!("System.Byte[]")),
            Err(DecodeError::NotSerialized)
        ));
    }
}
