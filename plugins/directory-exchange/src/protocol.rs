//! Every wire choice of the Exchange Online admin API that public material leaves open, in one
//! place, each with its evidence (shared/docs/exchange-online.md §1.2–§1.8, §2.3–§2.6) and,
//! where it is only INFERRED, a `[directory.NAME.protocol]` switch. The emulator
//! (tests/exchange-emulator) models these facts in its strict mode, the default of the tests.
//!
//! | choice | default | status and evidence |
//! |---|---|---|
//! | a `byte[]` value in a request | `{"Data": [48, 130, …]}`: integer arrays | CONFIRMED: the module 3.9's `AdminApiProvider.dll` embeds the schema `ComplexType ByteArrayType { Data: Collection(Edm.Byte) }`, and `Collection(Edm.Byte)` is an array of numbers in OData JSON (base64 is `Edm.Binary`, another type); every public PowerShell client (CIPP, ExoHelper, ScubaGear, M365Permissions) builds bodies with `ConvertTo-Json`, which writes integer arrays. INFERRED: that the service refuses base64. On a 400 whose text is a conversion error ([`conversion_error`]) the other encoding is tried once and remembered for the directory (switch `byte_encoding`) |
//! | `NAME@odata.type` beside a list of byte arrays | `#Collection(Exchange.ByteArrayType)` | CONFIRMED only in a public C# port of the module's helpers; when refused ([`annotation_refused`]) it is dropped once and remembered (switch `annotate`) |
//! | a single `byte[]` (`-SMIMECertificateIssuingCA`) | `{"@odata.type": "#Exchange.ByteArrayType", "Data": …}` | CONFIRMED in the same C# port |
//! | adding a value | `@{Add=…}` (`#Exchange.GenericHashTable`) | CONFIRMED for MultiValuedProperty parameters; kept only while a read-back proves it, else the full list is set |
//! | removing a value | never `@{Remove=…}`: the full list is set | `MultiValuedProperty<T>.Remove` finds the value with `object.Equals`, a reference comparison for `byte[]` (decompiled on-premises code): removing by value very likely does nothing, silently. INFERRED for Exchange Online; setting the full list is the seed article's own path |
//! | reading | `X-ResponseFormat: clixml`, where byte arrays are `<BA>` base64 elements | CONFIRMED: what the module itself sends, and the seed's check reads bytes back through it; a JSON answer is read too (switch `response_format`) |
//! | `X-SerializationLevel` | `Full` | CONFIRMED that `Partial` flattens complex values to type names; what `Full` JSON makes of bytes is unverified, so base64 strings, `{"Data": […]}` and integer arrays are all read, and values are compared by thumbprint |
//! | `X-AnchorMailbox` | `APP:SystemMailbox{bb558c35-…}@tenant` | CONFIRMED both `APP:` and `UPN:` in public clients (switch `anchor`) |
//! | token scope | the endpoint's cloud ([`Cloud`]) | CONFIRMED (ScubaGear): commercial `outlook.office365.com`, GCC High `outlook.office365.us`, DoD `outlook-dod.office365.us`; 21Vianet INFERRED |
//! | client assertion | PS256 + `x5t#S256`, once RS256 + `x5t` on AADSTS700027 | CONFIRMED: MSAL pairs them so; reports differ on PS256 for every tenant (config `assertion` pins one) |
//! | regional host | `GET …/AdminApi/v1.0/{tenant}/EXOModuleFile` once, not followed; a 3xx `Location` gives the region label | CONFIRMED third-party behaviour (ScubaGear, a Go client); the token goes only to `https://LABEL.<configured host>` |

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// How a `byte[]` goes into the JSON body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ByteEncoding {
    /// `"Data": [48, 130, …]`: `Collection(Edm.Byte)` as OData and `ConvertTo-Json` write it.
    IntArray,
    /// `"Data": "<base64>"`: the `Edm.Binary` form.
    Base64,
}

impl ByteEncoding {
    pub fn other(self) -> Self {
        match self {
            Self::IntArray => Self::Base64,
            Self::Base64 => Self::IntArray,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::IntArray => "int-array",
            Self::Base64 => "base64",
        }
    }

    /// The encoding [`Self::name`] names.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::IntArray, Self::Base64]
            .into_iter()
            .find(|e| e.name() == name)
    }
}

/// The `X-ResponseFormat` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ResponseFormat {
    /// Each `value` item is `{"_clixml": "<Objs…>"}` (what the module reads).
    #[default]
    Clixml,
    /// Plain JSON objects (what third-party clients read).
    Json,
}

impl ResponseFormat {
    pub fn header(self) -> &'static str {
        match self {
            Self::Clixml => "clixml",
            Self::Json => "json",
        }
    }
}

/// The `X-SerializationLevel` header (§1.2, §2.6: with `Partial` a certificate comes back as
/// the type name `System.Byte[]`).
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

/// The switches. An absent `byte_encoding` or `annotate` means: the default, and the
/// alternative once when the service refuses it (then remembered for the directory); a set
/// one is used as it is.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Protocol {
    pub byte_encoding: Option<ByteEncoding>,
    pub annotate: Option<bool>,
    pub response_format: ResponseFormat,
    pub serialization_level: SerializationLevel,
    pub anchor: Anchor,
}

/// How byte values are written on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wire {
    pub encoding: ByteEncoding,
    /// Send `NAME@odata.type` beside a list of byte arrays.
    pub annotate: bool,
}

/// The annotation of a list of byte arrays (§2.6, the C# port).
pub const BYTE_ARRAY_LIST_TYPE: &str = "#Collection(Exchange.ByteArrayType)";

impl Wire {
    fn data(&self, bytes: &[u8]) -> Value {
        match self.encoding {
            ByteEncoding::Base64 => Value::String(B64.encode(bytes)),
            ByteEncoding::IntArray => Value::Array(bytes.iter().map(|b| json!(b)).collect()),
        }
    }

    /// A single `byte[]` parameter (`-SMIMECertificateIssuingCA`).
    pub fn byte_array(&self, bytes: &[u8]) -> Value {
        json!({"@odata.type": "#Exchange.ByteArrayType", "Data": self.data(bytes)})
    }

    /// A `byte[][]` list.
    pub fn byte_array_list(&self, values: &[&[u8]]) -> Value {
        Value::Array(
            values
                .iter()
                .map(|v| json!({"Data": self.data(v)}))
                .collect(),
        )
    }

    /// Sets parameter `name` to the full list `values` (and its annotation).
    pub fn put_list(&self, params: &mut Map<String, Value>, name: &str, values: &[&[u8]]) {
        if self.annotate {
            params.insert(format!("{name}@odata.type"), json!(BYTE_ARRAY_LIST_TYPE));
        }
        params.insert(name.to_string(), self.byte_array_list(values));
    }

    /// Sets parameter `name` to `@{Add=values}` (§1.3), the list annotated inside the table.
    pub fn put_add(&self, params: &mut Map<String, Value>, name: &str, values: &[&[u8]]) {
        let mut m = Map::new();
        m.insert("@odata.type".into(), json!("#Exchange.GenericHashTable"));
        if self.annotate {
            m.insert("Add@odata.type".into(), json!(BYTE_ARRAY_LIST_TYPE));
        }
        m.insert("Add".into(), self.byte_array_list(values));
        params.insert(name.to_string(), Value::Object(m));
    }
}

impl Protocol {
    /// What to send first: the switches, else integer arrays with the annotation.
    pub fn first_wire(&self) -> Wire {
        Wire {
            encoding: self.byte_encoding.unwrap_or(ByteEncoding::IntArray),
            annotate: self.annotate.unwrap_or(true),
        }
    }

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
}

/// Whether a 400's text says a value could not be converted or deserialised (INFERRED wording:
/// the OData reader's "… 'StartArray' node was expected", PowerShell's parameter binder
/// "Cannot convert value …", .NET's "… is not a valid Base-64 string"), so that the request
/// was not run and may be sent again in the other byte encoding.
pub fn conversion_error(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    [
        "cannot convert",
        "could not convert",
        "conversion",
        "deserializ",
        "deserialis",
        "startarray",
        "primitivevalue",
        "edm.byte",
        "edm.binary",
        "base-64",
        "invalid cast",
        "bytearraytype",
    ]
    .iter()
    .any(|w| t.contains(w))
}

/// Whether a 400 refuses a `NAME@odata.type` annotation (taken for an unknown parameter),
/// so that it may be sent again without it. A conversion error naming the annotated type is
/// not one: it is about the encoding.
pub fn annotation_refused(text: &str) -> bool {
    text.contains("@odata.type")
}

/// The Microsoft cloud of an endpoint: where tokens come from and for which resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cloud {
    Commercial,
    GccHigh,
    Dod,
    /// 21Vianet: INFERRED values.
    China,
}

impl Cloud {
    /// The cloud an endpoint host belongs to (a loopback emulator and unknown hosts:
    /// commercial).
    pub fn of_host(host: &str) -> Self {
        let h = host.to_ascii_lowercase();
        if h == "outlook-dod.office365.us" || h.ends_with(".outlook-dod.office365.us") {
            Self::Dod
        } else if h.ends_with("office365.us") {
            Self::GccHigh
        } else if h.ends_with("office365.cn") || h.ends_with("outlook.cn") {
            Self::China
        } else {
            Self::Commercial
        }
    }

    /// The client-credentials scope (§1.8, §2.6).
    pub fn scope(self, endpoint_host: &str) -> String {
        match self {
            Self::Commercial => "https://outlook.office365.com/.default".into(),
            Self::GccHigh => "https://outlook.office365.us/.default".into(),
            Self::Dod => "https://outlook-dod.office365.us/.default".into(),
            Self::China => format!("https://{endpoint_host}/.default"),
        }
    }

    /// The Entra ID authority of the cloud.
    pub fn authority(self) -> &'static str {
        match self {
            Self::Commercial => "https://login.microsoftonline.com",
            Self::GccHigh | Self::Dod => "https://login.microsoftonline.us",
            Self::China => "https://login.chinacloudapi.cn",
        }
    }

    /// DNS suffixes a regional redirect may point into.
    pub fn domains(self) -> &'static [&'static str] {
        match self {
            Self::Commercial => &["office365.com", "outlook.com", "office.com"],
            Self::GccHigh | Self::Dod => &["office365.us"],
            Self::China => &["office365.cn", "outlook.cn"],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Commercial => "commercial",
            Self::GccHigh => "gcc-high",
            Self::Dod => "dod",
            Self::China => "china",
        }
    }
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
        for encoding in [ByteEncoding::Base64, ByteEncoding::IntArray] {
            let w = Wire {
                encoding,
                annotate: true,
            };
            let v = w.byte_array_list(&[b"\x30\x82ab"]);
            assert_eq!(
                decode_byte_list(Some(&v)).unwrap(),
                vec![b"\x30\x82ab".to_vec()]
            );
            let mut m = Map::new();
            w.put_list(&mut m, "UserCertificate", &[b"\x01"]);
            assert_eq!(m["UserCertificate@odata.type"], BYTE_ARRAY_LIST_TYPE);
        }
        assert_eq!(
            Protocol::default()
                .first_wire()
                .byte_array_list(&[b"\x30\x01"]),
            json!([{"Data": [48, 1]}])
        );
        assert!(matches!(
            decode_bytes(&json!("System.Byte[]")),
            Err(DecodeError::NotSerialized)
        ));
        // Every rendering of one value reads the same.
        for v in [
            json!("MAE="),
            json!({"Data": [48, 1]}),
            json!([48, 1]),
            json!({"Data": "MAE="}),
        ] {
            assert_eq!(decode_bytes(&v).unwrap(), vec![48, 1], "{v}");
        }
    }

    #[test]
    fn clouds_and_refusals() {
        assert_eq!(Cloud::of_host("outlook.office365.com"), Cloud::Commercial);
        assert_eq!(Cloud::of_host("outlook.office365.us"), Cloud::GccHigh);
        assert_eq!(Cloud::of_host("outlook-dod.office365.us"), Cloud::Dod);
        assert_eq!(Cloud::of_host("127.0.0.1"), Cloud::Commercial);
        assert_eq!(
            Cloud::GccHigh.scope("x"),
            "https://outlook.office365.us/.default"
        );
        assert!(conversion_error(
            "Cannot convert value \"MIIB\" to type \"System.Byte\"."
        ));
        assert!(conversion_error(
            "An unexpected 'PrimitiveValue' node was found when reading from the JSON reader. A 'StartArray' node was expected."
        ));
        assert!(!conversion_error(
            "The specified mailbox Identity:\"x\" doesn't exist."
        ));
        assert!(annotation_refused(
            "A parameter cannot be found that matches parameter name 'UserCertificate@odata.type'."
        ));
    }
}
