//! Tokens (PKCS#11): `token enroll` (key pair generated on the token, CSR, certificate from the
//! smimekit CA or an external one, certificate written back to the token) and `token import`
//! (a PKCS#12 put on a token), plus the `pkcs11:` reference helpers the service needs.

use std::path::PathBuf;

use serde::Serialize;
use smimekit_core::{CertDer, Secret};
use smimekit_pki::ca::{self as pkica, Name};

use crate::ca::{CaKeyType, pem_block};
use crate::certs::{CertSummary, summarize};
use crate::{
    CaIssueRequest, ErrorKind, IssueSource, KeyRequest, KeySummary, Named, Service, ServiceError,
};

fn is_pkcs11(reference: &str) -> bool {
    reference
        .get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("pkcs11:"))
}

/// Percent-encodes a URI attribute value (RFC 3986 unreserved kept, and `/` when asked).
fn encode(value: &str, keep_slash: bool) -> String {
    let mut s = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (keep_slash && b == b'/') {
            s.push(char::from(b));
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// A token URI narrowed to one object label: `pkcs11:token=t?q` → `pkcs11:token=t;object=L?q`.
pub(crate) fn with_object(store: &str, label: &str) -> Result<String, ServiceError> {
    if !is_pkcs11(store) {
        return Err(ServiceError::new(
            ErrorKind::Invalid,
            format!("{store}: a key store for generated CA or token keys must be a pkcs11: URI"),
        ));
    }
    let (path, query) = match store.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (store, None),
    };
    if path[7..].split(';').any(|a| {
        a.to_ascii_lowercase().starts_with("object=") || a.to_ascii_lowercase().starts_with("id=")
    }) {
        return Err(ServiceError::new(
            ErrorKind::Invalid,
            format!(
                "{path}: name only the token here (no object= or id=); the label is set by smimekit"
            ),
        ));
    }
    let sep = if path.len() > 7 { ";" } else { "" };
    let mut s = format!("{path}{sep}object={}", encode(label, false));
    if let Some(q) = query {
        s.push('?');
        s.push_str(q);
    }
    Ok(s)
}

impl Service {
    /// Adds `module-path=` from `[keystore.NAME] kind = "pkcs11"` to a `pkcs11:` reference that
    /// has none (other references are returned as they are).
    pub(crate) fn resolve_reference(&self, reference: &str) -> String {
        if !is_pkcs11(reference) {
            return reference.to_string();
        }
        let query = reference.split_once('?').map(|(_, q)| q).unwrap_or("");
        let attrs: Vec<(&str, &str)> = query.split('&').filter_map(|p| p.split_once('=')).collect();
        if attrs
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("module-path"))
        {
            return reference.to_string();
        }
        let name = attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("module-name"))
            .map(|(_, v)| *v);
        let Some(module) = self.config.pkcs11_module(name) else {
            return reference.to_string();
        };
        let sep = if reference.contains('?') { "&" } else { "?" };
        format!(
            "{reference}{sep}module-path={}",
            encode(&module.to_string_lossy(), true)
        )
    }
}

/// `token enroll`.
#[derive(Debug)]
pub struct TokenEnrollRequest {
    /// The token (`pkcs11:token=…`), without object/id.
    pub token: String,
    /// The token PIN (`None` when the URI carries one or the token needs none).
    pub secret: Option<Secret>,
    /// CKA_LABEL of the new key pair and certificate (default: the address).
    pub label: Option<String>,
    pub email: String,
    pub key_type: CaKeyType,
    /// Have the smimekit CA in this directory issue the certificate (else the result's CSR
    /// is for an external CA).
    pub ca: Option<PathBuf>,
    pub ca_secret: Option<Secret>,
    pub days: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct TokenEnrollResult {
    /// The new key's `pkcs11:` URI.
    pub key: String,
    pub certificate: Option<CertSummary>,
    pub serial: Option<String>,
    /// The certificate request signed by the new key (PEM), for an external CA.
    #[serde(skip)]
    pub csr_pem: String,
}

/// `token import`.
#[derive(Debug)]
pub struct TokenImportRequest {
    pub token: String,
    pub secret: Option<Secret>,
    /// The PKCS#12 to put on the token.
    pub p12: Named<Vec<u8>>,
    pub p12_secret: Secret,
    pub label: Option<String>,
}

impl Service {
    /// Generates a key pair on the token and makes a CSR signed by it (in the result, for an
    /// external CA); with `ca`, has the smimekit CA issue the certificate and writes it to the
    /// token under the key's CKA_ID and label.
    pub async fn token_enroll(
        &self,
        req: &TokenEnrollRequest,
    ) -> Result<TokenEnrollResult, ServiceError> {
        let email = smimekit_pki::ca::cert::normalize_email(&req.email)?;
        self.open_key_store(&KeyRequest {
            reference: req.token.clone(),
            secret: req.secret.clone(),
            ..KeyRequest::default()
        })
        .await?;
        let label = req.label.clone().unwrap_or_else(|| email.clone());
        let key_ref = with_object(&req.token, &label)?;
        let mut key = self.generate_key(&key_ref, req.key_type.spec()).await?;
        let spki = key.spki_der()?;
        let subject = Name::new().common_name(&email).email(&email).to_der();
        let csr = pkica::build_csr(
            &subject,
            &spki,
            Some(&email),
            key.as_ref(),
            self.engine().primitives,
        )
        .await?;
        let csr_pem = pem_block("CERTIFICATE REQUEST", &csr);
        let mut result = TokenEnrollResult {
            key: key_ref.clone(),
            certificate: None,
            serial: None,
            csr_pem: csr_pem.clone(),
        };
        if let Some(dir) = &req.ca {
            let issued = self
                .ca_issue(&CaIssueRequest {
                    dir: dir.clone(),
                    ca_secret: req.ca_secret.clone(),
                    source: IssueSource::Csr {
                        csr: Named::new(
                            format!("certificate request for {email}"),
                            csr_pem.into_bytes(),
                        ),
                        email: Some(email.clone()),
                    },
                    days: req.days,
                    renew: false,
                })
                .await?;
            let cert: CertDer = issued.der;
            // The chain the CA hands out (issuing CA, then root), as `ca init` wrote it.
            let chain_path = dir.join("chain.pem");
            // The CA's file, read on the blocking pool like the rest of the CA's state.
            let chain = crate::keys::blocking(move || std::fs::read(chain_path))
                .await?
                .ok()
                .and_then(|pem| self.certificates(&Named::new("chain.pem", pem)).ok())
                .unwrap_or_default();
            // A synchronous write to the token (it waits for the token's lane): off the runtime.
            let stored = {
                let cert = cert.clone();
                crate::keys::blocking(move || key.store_certificate(&cert, &chain)).await??
            };
            if let Some(stored) = stored {
                result.key = stored;
            }
            result.certificate = Some(summarize(&cert, self.now()));
            result.serial = Some(issued.serial);
        }
        Ok(result)
    }

    /// Puts a PKCS#12's key, certificate and chain on a token.
    pub async fn token_import(&self, req: &TokenImportRequest) -> Result<KeySummary, ServiceError> {
        let store = self
            .open_key_store(&KeyRequest {
                reference: req.token.clone(),
                secret: req.secret.clone(),
                ..KeyRequest::default()
            })
            .await?;
        let k = store
            .import_pkcs12(&req.p12.data, &req.p12_secret, req.label.as_deref())
            .await
            .map_err(|e| ServiceError::from(e).context(&req.p12.name))?;
        Ok(KeySummary {
            store: store.id().to_string(),
            selector: k.selector,
            label: k.label,
            kind: k.kind,
            certificate: k.certificate.as_ref().map(|c| summarize(c, self.now())),
            chain: k.chain.iter().map(|c| summarize(c, self.now())).collect(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn object_goes_in_the_path() {
        assert_eq!(
            with_object("pkcs11:token=t?module-path=/m.so", "A B").unwrap(),
            "pkcs11:token=t;object=A%20B?module-path=/m.so"
        );
        assert_eq!(with_object("pkcs11:", "x").unwrap(), "pkcs11:object=x");
        assert!(with_object("pkcs11:token=t;object=y", "x").is_err());
        assert!(with_object("ca.p12", "x").is_err());
    }
}
