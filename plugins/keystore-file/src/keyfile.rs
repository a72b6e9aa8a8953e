//! PEM or DER private-key files, with certificates from `--cert` or from the same PEM file, or
//! with none (a bare key, for decryption).

use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use smimekit_core::{KeyStoreError, Secret};
use smimekit_pki::asn1::{Reader, TAG_OCTET_STRING, TAG_SEQUENCE};

use crate::bundle::{Bundle, RawCert, RawKey, assemble};
use crate::p12::{describe, kids};
use crate::pem;

/// One private key as stored.
enum KeySource {
    /// A PEM block (text with armour); `encrypted` for `ENCRYPTED PRIVATE KEY` or a
    /// `Proc-Type: 4,ENCRYPTED` header.
    Pem { text: String, encrypted: bool },
    /// DER: PKCS#8 `EncryptedPrivateKeyInfo` when `encrypted`, else PKCS#8 or a traditional
    /// RSA/EC key.
    Der { der: Vec<u8>, encrypted: bool },
}

impl KeySource {
    fn encrypted(&self) -> bool {
        match self {
            KeySource::Pem { encrypted, .. } | KeySource::Der { encrypted, .. } => *encrypted,
        }
    }
}

/// A parsed key file: keys still as stored (possibly encrypted), certificates parsed.
pub(crate) struct KeyFile {
    keys: Vec<KeySource>,
    certs: Vec<X509>,
}

/// Whether `data` is a DER private key (PKCS#8, encrypted PKCS#8, or traditional RSA/EC).
fn der_key_kind(data: &[u8]) -> Option<bool> {
    let mut r = Reader::new(data);
    let seq = r.next().ok()??;
    if seq.tag != TAG_SEQUENCE || !r.is_empty() {
        return None;
    }
    let parts = kids(&seq).ok()?;
    // EncryptedPrivateKeyInfo ::= SEQUENCE { AlgorithmIdentifier, OCTET STRING }
    if parts.len() == 2 && parts[0].tag == TAG_SEQUENCE && parts[1].tag == TAG_OCTET_STRING {
        return Some(true);
    }
    PKey::private_key_from_der(data).ok().map(|_| false)
}

/// Certificates from a PEM or DER file.
pub(crate) fn parse_certs(id: &str, data: &[u8]) -> Result<Vec<X509>, KeyStoreError> {
    let bad = |detail: String| KeyStoreError::Malformed {
        key: id.to_string(),
        detail,
    };
    if pem::is_pem(data) {
        let text = std::str::from_utf8(data).map_err(|_| bad("PEM file is not text".into()))?;
        pem::blocks(text)
            .iter()
            .filter(|b| pem::is_cert_label(b.label))
            .map(|b| {
                let der = b.decode().map_err(&bad)?;
                X509::from_der(&der).map_err(|e| bad(format!("bad certificate: {}", describe(&e))))
            })
            .collect()
    } else {
        X509::from_der(data)
            .map(|c| vec![c])
            .map_err(|e| bad(format!("not a PEM or DER certificate: {}", describe(&e))))
    }
}

impl KeyFile {
    /// Finds the key(s) in `data` and the certificates (from `cert`, or else from `data`).
    /// `Ok(None)` when `data` holds no private key at all.
    pub(crate) fn parse(
        id: &str,
        data: &[u8],
        cert: Option<(&str, &[u8])>,
    ) -> Result<Option<Self>, KeyStoreError> {
        let mut keys = Vec::new();
        let mut inline_certs = Vec::new();
        if pem::is_pem(data) {
            let text = std::str::from_utf8(data).map_err(|_| KeyStoreError::Malformed {
                key: id.to_string(),
                detail: "PEM file is not text".into(),
            })?;
            for b in pem::blocks(text) {
                if pem::is_key_label(b.label) {
                    keys.push(KeySource::Pem {
                        text: b.text.to_string(),
                        encrypted: b.label == "ENCRYPTED PRIVATE KEY" || b.encrypted_header,
                    });
                } else if pem::is_cert_label(b.label) {
                    inline_certs.push(b);
                }
            }
        } else if let Some(encrypted) = der_key_kind(data) {
            keys.push(KeySource::Der {
                der: data.to_vec(),
                encrypted,
            });
        }
        if keys.is_empty() {
            return Ok(None);
        }
        let certs = match cert {
            Some((cert_id, cert_data)) => parse_certs(cert_id, cert_data)?,
            None if !inline_certs.is_empty() => parse_certs(id, data)?,
            // A bare key: it can decrypt; `open` (to sign) asks for `--cert`.
            None => {
                return Ok(Some(Self {
                    keys,
                    certs: Vec::new(),
                }));
            }
        };
        if certs.is_empty() {
            let from = cert.map_or(id, |(c, _)| c);
            return Err(KeyStoreError::Malformed {
                key: from.to_string(),
                detail: "no certificate found".into(),
            });
        }
        Ok(Some(Self { keys, certs }))
    }

    /// Whether a password is needed.
    pub(crate) fn encrypted(&self) -> bool {
        self.keys.iter().any(KeySource::encrypted)
    }

    /// Decrypts the keys and matches them with the certificates.
    pub(crate) fn read(
        &self,
        id: &str,
        password: Option<&Secret>,
    ) -> Result<Bundle, KeyStoreError> {
        let mut keys = Vec::with_capacity(self.keys.len());
        for (i, source) in self.keys.iter().enumerate() {
            keys.push(RawKey {
                pkey: decode_key(id, i, source, password)?,
                label: None,
            });
        }
        let certs: Vec<RawCert> = self
            .certs
            .iter()
            .map(|c| RawCert {
                x509: c.clone(),
                label: None,
            })
            .collect();
        let given = !certs.is_empty();
        let bundle = assemble(id, keys, certs)?;
        if given && let Some(k) = bundle.keys.iter().find(|k| k.certificate.is_none()) {
            return Err(KeyStoreError::Malformed {
                key: id.to_string(),
                detail: format!(
                    "no certificate matches private key {} (wrong certificate file?)",
                    k.selector
                ),
            });
        }
        Ok(bundle)
    }
}

fn decode_key(
    id: &str,
    index: usize,
    source: &KeySource,
    password: Option<&Secret>,
) -> Result<PKey<Private>, KeyStoreError> {
    if source.encrypted() {
        let Some(pw) = password else {
            return Err(KeyStoreError::Locked {
                key: id.to_string(),
                hint: "key file password".into(),
            });
        };
        if pw.expose().contains(&0) {
            return Err(KeyStoreError::BadSecret {
                key: id.to_string(),
                tries_left: None,
            });
        }
        let r = match source {
            KeySource::Pem { text, .. } => {
                PKey::private_key_from_pem_passphrase(text.as_bytes(), pw.expose())
            }
            KeySource::Der { der, .. } => PKey::private_key_from_pkcs8_passphrase(der, pw.expose()),
        };
        // A structurally broken block was already ruled out as far as we can tell; failure
        // to decrypt means the password.
        r.map_err(|_| KeyStoreError::BadSecret {
            key: id.to_string(),
            tries_left: None,
        })
    } else {
        let r = match source {
            KeySource::Pem { text, .. } => PKey::private_key_from_pem(text.as_bytes()),
            KeySource::Der { der, .. } => PKey::private_key_from_der(der),
        };
        r.map_err(|e| KeyStoreError::Malformed {
            key: id.to_string(),
            detail: format!("private key #{index}: {}", describe(&e)),
        })
    }
}
