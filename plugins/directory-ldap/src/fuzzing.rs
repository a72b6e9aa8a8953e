//! Entry points for the fuzz targets in `fuzz/` (not an API: hidden from the docs).
//!
//! What a hostile server can send this backend: search result entries (BER) and the values of
//! their certificate attributes, decoded as a lookup and the directory audit decode them.

use ldap3::ResultEntry;
use ldap3::asn1::parse_tag;
use smimekit_core::{CertDer, SecretError, SecretRequest};

use crate::config::Settings;
use crate::entry::{self, Entry};

/// Decodes `data` as a SearchResultEntry protocol op, then the recipient entry made from it
/// under the default settings and the Active Directory flavour: addresses, contact test,
/// certificates.
pub fn decode_entry(data: &[u8]) {
    let Ok((_, tag)) = parse_tag(data) else {
        return;
    };
    let Some(raw) = entry::parse(ResultEntry::new(tag)) else {
        return;
    };
    let refuse = |req: &SecretRequest| -> Result<smimekit_core::Secret, SecretError> {
        Err(SecretError::NotFound {
            object: req.object.clone(),
            tried: Vec::new(),
        })
    };
    for flavour in ["openldap", "active-directory"] {
        let config = format!(
            "url = \"ldap://127.0.0.1\"\nbase_dn = \"dc=example,dc=org\"\nflavor = \"{flavour}\"\n"
        );
        let Ok(settings) = Settings::from_toml_with("fuzz", &config, &refuse) else {
            return;
        };
        let e = Entry::from_raw(&raw, &settings);
        let _ = e.primary_address();
        let _ = e.addresses();
        let _ = e.is_contact(&settings);
        let _ = e.certificates();
        for v in &e.smime {
            let _ = entry::smime_certificates(v);
        }
    }
}

/// Decodes one `userSMIMECertificate` value: its end-entity certificates.
pub fn smime_value(value: &[u8]) -> Result<Vec<CertDer>, String> {
    entry::smime_leaves(value)
}
