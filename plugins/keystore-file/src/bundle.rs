//! [`Bundle`]: what a key file holds once decrypted: keys (with their certificates) and
//! every certificate, with friendly names.

use std::fmt;
use std::sync::Arc;

use openssl::pkey::{PKey, Private};
use openssl::x509::{X509, X509VerifyResult};
use smimekit_core::{CertDer, DecryptionKey, KeyInfo, KeyStoreError};

use crate::bare::BareSoftKey;
use crate::softkey::{SoftKey, key_kind};

/// One certificate found in a key file.
#[derive(Clone, Debug)]
pub struct BundleCert {
    pub der: CertDer,
    /// The PKCS#12 friendlyName of its bag, if any.
    pub friendly_name: Option<String>,
    /// The selector (`#0`…) of the key this certificate belongs to, if any.
    pub key: Option<String>,
}

/// The decrypted contents of a key file. `Debug` shows no key material.
#[derive(Clone)]
pub struct Bundle {
    /// The keys, in file order; `selector` is `#0`, `#1`…
    pub keys: Vec<KeyInfo>,
    /// Every certificate in the file: key certificates first (in key order), then the rest.
    pub certificates: Vec<BundleCert>,
    /// Parallel to `keys`: the usable key, or `None` when the key has no certificate.
    soft: Vec<Option<Arc<SoftKey>>>,
    /// Parallel to `keys`: the key alone, for decryption, when it has no certificate.
    bare: Vec<Option<Arc<BareSoftKey>>>,
    id: String,
}

impl fmt::Debug for Bundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bundle")
            .field("id", &self.id)
            .field("keys", &self.keys)
            .field("certificates", &self.certificates.len())
            .finish()
    }
}

impl Bundle {
    /// Every friendly name in the file (keys' and certificates'), deduplicated, in order.
    pub fn friendly_names(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let names = self.keys.iter().filter_map(|k| k.label.clone()).chain(
            self.certificates
                .iter()
                .filter_map(|c| c.friendly_name.clone()),
        );
        for n in names {
            if !out.contains(&n) {
                out.push(n);
            }
        }
        out
    }

    /// Finds a key: `None` is the first key with a certificate; `#N` by index; anything else
    /// by friendly name.
    pub fn key(&self, selector: Option<&str>) -> Result<Arc<SoftKey>, KeyStoreError> {
        let not_found = |detail: String| KeyStoreError::NotFound {
            key: self.id.clone(),
            detail,
        };
        let index = match selector {
            None => {
                return self.soft.iter().flatten().next().cloned().ok_or_else(|| {
                    not_found(if self.keys.is_empty() {
                        "the file holds no private key".into()
                    } else {
                        "no private key in the file has a certificate".into()
                    })
                });
            }
            Some(sel) => {
                let by_index = sel
                    .strip_prefix('#')
                    .and_then(|n| n.parse::<usize>().ok())
                    .filter(|i| *i < self.keys.len());
                let by_label = || {
                    self.keys
                        .iter()
                        .position(|k| k.label.as_deref() == Some(sel))
                };
                by_index.or_else(by_label).ok_or_else(|| {
                    not_found(format!(
                        "no key {sel:?} (the file has {} key(s): {})",
                        self.keys.len(),
                        self.keys
                            .iter()
                            .map(|k| k.selector.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?
            }
        };
        self.soft[index].clone().ok_or_else(|| {
            not_found(format!(
                "key {} has no certificate in the file",
                self.keys[index].selector
            ))
        })
    }
}

impl Bundle {
    /// Finds a key to decrypt with, as [`Bundle::key`] does; a key without a certificate is
    /// returned bare. `None` is the first key with a certificate, else the first key.
    pub fn decryption_key(&self, selector: Option<&str>) -> Result<DecryptionKey, KeyStoreError> {
        let not_certified = match self.key(selector) {
            Ok(k) => return Ok(DecryptionKey::Certified(k)),
            Err(e) => e,
        };
        // `None` failed above only when no key has a certificate: the first key, bare.
        let index = match selector {
            None => Some(0),
            Some(_) => self.selected(selector),
        };
        index
            .and_then(|i| self.bare.get(i).cloned().flatten())
            .map(|b| DecryptionKey::Bare(b))
            .ok_or(not_certified)
    }

    /// The index `selector` names (`#N`, or a friendly name).
    fn selected(&self, selector: Option<&str>) -> Option<usize> {
        let sel = selector?;
        sel.strip_prefix('#')
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|i| *i < self.keys.len())
            .or_else(|| {
                self.keys
                    .iter()
                    .position(|k| k.label.as_deref() == Some(sel))
            })
    }
}

/// A key as found, before matching.
pub(crate) struct RawKey {
    pub pkey: PKey<Private>,
    pub label: Option<String>,
}

/// A certificate as found.
pub(crate) struct RawCert {
    pub x509: X509,
    pub label: Option<String>,
}

/// Matches keys to certificates by public key and builds each key's chain: the issuers found
/// by walking from the leaf, then any other certificate that belongs to no key.
pub(crate) fn assemble(
    id: &str,
    keys: Vec<RawKey>,
    certs: Vec<RawCert>,
) -> Result<Bundle, KeyStoreError> {
    let ders: Vec<CertDer> = certs
        .iter()
        .map(|c| c.x509.to_der().map(CertDer::from))
        .collect::<Result<_, _>>()
        .map_err(|e| KeyStoreError::Malformed {
            key: id.into(),
            detail: e.to_string(),
        })?;

    // Which certificate belongs to which key.
    let mut owner: Vec<Option<usize>> = vec![None; certs.len()];
    let mut leaf_of: Vec<Option<usize>> = vec![None; keys.len()];
    for (k, key) in keys.iter().enumerate() {
        let found = certs.iter().enumerate().position(|(c, cert)| {
            owner[c].is_none()
                && cert
                    .x509
                    .public_key()
                    .map(|p| p.public_eq(&key.pkey))
                    .unwrap_or(false)
        });
        if let Some(c) = found {
            owner[c] = Some(k);
            leaf_of[k] = Some(c);
        }
    }

    let mut infos = Vec::with_capacity(keys.len());
    let mut soft = Vec::with_capacity(keys.len());
    let mut bare = Vec::with_capacity(keys.len());
    for (k, key) in keys.into_iter().enumerate() {
        let selector = format!("#{k}");
        let label = key
            .label
            .or_else(|| leaf_of[k].and_then(|c| certs[c].label.clone()));
        let kind = key_kind(&key.pkey);
        let chain: Vec<CertDer> = match leaf_of[k] {
            Some(leaf) => chain_for(leaf, &certs, &owner)
                .into_iter()
                .map(|c| ders[c].clone())
                .collect(),
            None => Vec::new(),
        };
        let certificate = leaf_of[k].map(|c| ders[c].clone());
        bare.push(certificate.is_none().then(|| {
            Arc::new(BareSoftKey::new(
                format!("{id}{selector}"),
                key.pkey.clone(),
            ))
        }));
        let bag = (0..ders.len())
            .filter(|c| Some(*c) != leaf_of[k])
            .map(|c| ders[c].clone())
            .collect();
        soft.push(certificate.clone().map(|cert| {
            Arc::new(
                SoftKey::new(
                    format!("{id}{selector}"),
                    label.clone(),
                    key.pkey,
                    cert,
                    chain.clone(),
                )
                .with_bag(bag),
            )
        }));
        infos.push(KeyInfo {
            selector,
            label,
            kind,
            certificate,
            chain,
        });
    }

    let mut order: Vec<usize> = leaf_of.iter().flatten().copied().collect();
    order.extend((0..certs.len()).filter(|c| owner[*c].is_none()));
    let certificates = order
        .into_iter()
        .map(|c| BundleCert {
            der: ders[c].clone(),
            friendly_name: certs[c].label.clone(),
            key: owner[c].map(|k| format!("#{k}")),
        })
        .collect();

    Ok(Bundle {
        keys: infos,
        certificates,
        soft,
        bare,
        id: id.to_string(),
    })
}

/// Issuers of `leaf` among the certificates that belong to no key, nearest first, then the
/// remaining key-less certificates.
fn chain_for(leaf: usize, certs: &[RawCert], owner: &[Option<usize>]) -> Vec<usize> {
    let candidates: Vec<usize> = (0..certs.len()).filter(|c| owner[*c].is_none()).collect();
    let mut chain: Vec<usize> = Vec::new();
    let mut current = leaf;
    loop {
        let next = candidates.iter().copied().find(|c| {
            *c != current
                && !chain.contains(c)
                && certs[*c].x509.issued(&certs[current].x509) == X509VerifyResult::OK
        });
        match next {
            Some(c) => {
                chain.push(c);
                current = c;
            }
            None => break,
        }
    }
    let rest: Vec<usize> = candidates
        .into_iter()
        .filter(|c| !chain.contains(c))
        .collect();
    chain.extend(rest);
    chain
}
