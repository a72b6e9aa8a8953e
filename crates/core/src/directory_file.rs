//! The reviewable JSON form of a local directory: what `smimekit directory export` writes and
//! `directory import` reads, and the `directory.json` of smimekit versions before the store
//! (imported on first use).
//!
//! Layout (version 1), recipients sorted by their lowercased address so the file diffs well:
//!
//! ```json
//! {
//!   "format": "smimekit-local-directory",
//!   "version": 1,
//!   "trust_chain": ["<base64 DER>", …],
//!   "recipients": [
//!     { "address": "alice@example.org", "kind": "mailbox", "certificates": ["<base64 DER>", …] }
//!   ]
//! }
//! ```
//!
//! Pure data: reading and writing files is the caller's business. Errors name the `source`
//! (a file name) and what is wrong in it.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::store::DirectoryData;
use crate::{CertDer, DirectoryError, Mailbox, Recipient, RecipientKind};

pub const FORMAT: &str = "smimekit-local-directory";
pub const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    format: String,
    version: u32,
    #[serde(default)]
    trust_chain: Vec<String>,
    #[serde(default)]
    recipients: Vec<FileRecipient>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRecipient {
    address: String,
    kind: FileKind,
    #[serde(default)]
    certificates: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
enum FileKind {
    Mailbox,
    Contact,
}

impl From<RecipientKind> for FileKind {
    fn from(k: RecipientKind) -> Self {
        match k {
            RecipientKind::Mailbox => FileKind::Mailbox,
            RecipientKind::Contact => FileKind::Contact,
        }
    }
}

impl From<FileKind> for RecipientKind {
    fn from(k: FileKind) -> Self {
        match k {
            FileKind::Mailbox => RecipientKind::Mailbox,
            FileKind::Contact => RecipientKind::Contact,
        }
    }
}

fn corrupt(source: &str, detail: impl std::fmt::Display) -> DirectoryError {
    DirectoryError::Corrupt(format!("{source}: {detail}"))
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// Reads the JSON form; `source` names it in errors.
pub fn decode(source: &str, bytes: &[u8]) -> Result<DirectoryData, DirectoryError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(corrupt(
            source,
            "empty file (not a smimekit directory; restore it from a backup or delete it to start empty)",
        ));
    }
    let doc: FileDoc = serde_json::from_slice(bytes).map_err(|e| {
        corrupt(
            source,
            format!(
                "not a smimekit directory file: line {} column {}: {e}",
                e.line(),
                e.column()
            ),
        )
    })?;
    if doc.format != FORMAT {
        return Err(corrupt(
            source,
            format!("format is {:?}, expected {FORMAT:?}", doc.format),
        ));
    }
    if doc.version != VERSION {
        return Err(corrupt(
            source,
            format!(
                "version {} (this smimekit reads version {VERSION}; a newer smimekit wrote it?)",
                doc.version
            ),
        ));
    }
    let cert = |s: &str, what: &dyn Fn() -> String| -> Result<CertDer, DirectoryError> {
        let der = b64()
            .decode(s)
            .map_err(|e| corrupt(source, format!("{}: bad base64: {e}", what())))?;
        if der.first() != Some(&0x30) {
            return Err(corrupt(
                source,
                format!("{}: not DER (no SEQUENCE)", what()),
            ));
        }
        Ok(CertDer::new(der))
    };
    let mut data = DirectoryData::default();
    for (i, c) in doc.trust_chain.iter().enumerate() {
        data.trust_chain
            .push(cert(c, &|| format!("trust_chain[{i}]"))?);
    }
    let mut keys = std::collections::BTreeMap::new();
    for (i, r) in doc.recipients.into_iter().enumerate() {
        let address = Mailbox::parse(&r.address)
            .map_err(|e| corrupt(source, format!("recipients[{i}]: {e}")))?;
        let mut certificates = Vec::with_capacity(r.certificates.len());
        for (j, c) in r.certificates.iter().enumerate() {
            certificates.push(cert(c, &|| format!("{address}: certificate {}", j + 1))?);
        }
        if let Some(dup) = keys.insert(address.key(), address.clone()) {
            return Err(corrupt(source, format!("recipient {dup} is listed twice")));
        }
        data.recipients.push(Recipient {
            address,
            kind: r.kind.into(),
            certificates,
        });
    }
    data.recipients.sort_by_key(|r| r.address.key());
    Ok(data)
}

/// Writes the JSON form (pretty, recipients sorted by address, a final newline).
pub fn encode(data: &DirectoryData) -> Vec<u8> {
    let enc = |c: &CertDer| b64().encode(c.as_bytes());
    let mut recipients: Vec<&Recipient> = data.recipients.iter().collect();
    recipients.sort_by_key(|r| r.address.key());
    let doc = FileDoc {
        format: FORMAT.to_string(),
        version: VERSION,
        trust_chain: data.trust_chain.iter().map(enc).collect(),
        recipients: recipients
            .iter()
            .map(|r| FileRecipient {
                address: r.address.as_str().to_string(),
                kind: r.kind.into(),
                certificates: r.certificates.iter().map(enc).collect(),
            })
            .collect(),
    };
    // Serialising plain strings, numbers and lists into memory cannot fail.
    let mut out = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    out.push(b'\n');
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_sorted_by_address() {
        let c = |b: u8| CertDer::new(vec![0x30, 3, 2, 1, b]);
        let data = DirectoryData {
            recipients: vec![
                Recipient {
                    address: Mailbox::parse("zed@example.org").unwrap(),
                    kind: RecipientKind::Mailbox,
                    certificates: vec![c(1)],
                },
                Recipient {
                    address: Mailbox::parse("Amy@example.org").unwrap(),
                    kind: RecipientKind::Contact,
                    certificates: vec![c(2), c(3)],
                },
            ],
            trust_chain: vec![c(9)],
        };
        let bytes = encode(&data);
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["format"], FORMAT);
        assert_eq!(v["recipients"][0]["address"], "Amy@example.org");
        assert_eq!(v["recipients"][0]["kind"], "contact");
        assert_eq!(v["recipients"][1]["certificates"][0], "MAMCAQE=");
        let back = decode("x.json", &bytes).unwrap();
        let mut sorted = data.clone();
        sorted.recipients.reverse();
        assert_eq!(back, sorted);
    }

    #[test]
    fn bad_input_names_the_source_and_the_problem() {
        let cases: &[(&str, &str)] = &[
            ("", "empty file"),
            (
                "{\"format\": \"smimekit-local-directory\", \"version\": 1, \"recip",
                "line 1 column",
            ),
            ("[1, 2]", "not a smimekit directory file"),
            (
                "{\"format\": \"something-else\", \"version\": 1}",
                "expected \"smimekit-local-directory\"",
            ),
            (
                "{\"format\": \"smimekit-local-directory\", \"version\": 9}",
                "version 9",
            ),
            (
                "{\"format\": \"smimekit-local-directory\", \"version\": 1, \"recipients\": [{\"address\": \"a@x\", \"kind\": \"mailbox\", \"certificates\": [\"!!\"]}]}",
                "a@x: certificate 1: bad base64",
            ),
            (
                "{\"format\": \"smimekit-local-directory\", \"version\": 1, \"recipients\": [{\"address\": \"a@x\", \"kind\": \"mailbox\"}, {\"address\": \"A@X\", \"kind\": \"contact\"}]}",
                "listed twice",
            ),
        ];
        for (text, needle) in cases {
            let err = decode("dir.json", text.as_bytes()).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, DirectoryError::Corrupt(_)), "{msg}");
            assert!(
                msg.contains("dir.json") && msg.contains(needle),
                "{text:?}: {msg}"
            );
        }
    }
}
