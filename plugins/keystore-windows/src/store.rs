//! The key store on top of [`crate::win`]: certificate lookup shared by both key paths, the
//! CNG and the legacy CryptoAPI key operations, PFX import.

use std::sync::Arc;

use async_trait::async_trait;
use smimekit_core::{
    CertDer, DigestAlg, KeyInfo, KeyKind, KeyStore, KeyStoreError, PrivateKey, Protection,
    RsaPadding, Secret, SignatureScheme,
};

use crate::errors::{self, NTE_BAD_ALGID};
use crate::keyref::{self, Location, ProviderPref, Selector, WinRef};
use crate::win::{self, Cert, KeyHandle};

pub use crate::win::wine_version;

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_EC: &str = "1.2.840.10045.2.1";

/// A system certificate store opened from a `windows:` KEYREF.
#[derive(Debug)]
pub struct WinStore {
    id: String,
    r: WinRef,
}

fn usage(key: &str, detail: impl Into<String>) -> KeyStoreError {
    KeyStoreError::Malformed {
        key: key.to_string(),
        detail: detail.into(),
    }
}

fn open_store(key: &str, r: &WinRef, read_only: bool) -> Result<win::Store, KeyStoreError> {
    match win::open_system_store(&r.store, r.location == Location::Machine, read_only) {
        // A system store nobody has written to yet (a fresh profile) holds no certificates:
        // read it as empty rather than creating it.
        Err(errors::ERROR_FILE_NOT_FOUND) if read_only => win::open_memory_store(),
        other => other,
    }
    .map_err(|c| errors::map(key, &format!("opening store {}", r.store), c))
}

fn kind_of(c: &Cert) -> KeyKind {
    let (oid, params, bits) = c.public_key();
    match oid.as_str() {
        OID_RSA => KeyKind::Rsa { bits },
        OID_EC => KeyKind::Ec {
            curve: match params.as_slice() {
                [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07] => "P-256",
                [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22] => "P-384",
                [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23] => "P-521",
                _ => "unknown",
            },
        },
        _ => KeyKind::Other,
    }
}

fn matches(c: &Cert, sel: &Selector) -> bool {
    match sel {
        Selector::Email(e) => c.email().eq_ignore_ascii_case(e),
        Selector::Thumbprint(t) => c.thumbprint().is_ok_and(|x| &x == t),
    }
}

/// Finds the certificate: by the selector, else the first one with a private key.
fn find(key: &str, store: &win::Store, sel: Option<&Selector>) -> Result<Cert, KeyStoreError> {
    let certs = store.certs();
    let found = match sel {
        Some(s) => {
            // Several certificates for one address: prefer one with a key, then the latest.
            let mut hits: Vec<Cert> = certs.into_iter().filter(|c| matches(c, s)).collect();
            hits.sort_by_key(|c| (c.prov_info().is_some(), c.not_after_unix()));
            hits.pop()
        }
        None => certs.into_iter().find(|c| c.prov_info().is_some()),
    };
    found.ok_or_else(|| KeyStoreError::NotFound {
        key: key.to_string(),
        detail: match sel {
            Some(Selector::Email(e)) => format!("no certificate for {e} in the store"),
            Some(Selector::Thumbprint(t)) => {
                format!("no certificate with thumbprint {t} in the store")
            }
            None => "no certificate with a private key in the store".into(),
        },
    })
}

/// The issuers of `c` from the system stores, leaf excluded: the system chain engine first;
/// when it finds nothing (Wine 8's engine ignores CurrentUser\CA), a walk by issuer name
/// through CA, ROOT and MY of the same location (at most 8 levels).
fn chain_of(r: &WinRef, c: &Cert) -> Vec<CertDer> {
    let built = c.chain().unwrap_or_default();
    if !built.is_empty() || c.self_issued() {
        return built.into_iter().map(CertDer::new).collect();
    }
    let machine = r.location == Location::Machine;
    let stores: Vec<win::Store> = ["CA", "ROOT", "MY"]
        .iter()
        .filter_map(|n| win::open_system_store(n, machine, true).ok())
        .collect();
    let mut out: Vec<CertDer> = Vec::new();
    let mut cur: Option<Cert> = None;
    for _ in 0..8 {
        let subject = cur.as_ref().unwrap_or(c);
        if subject.self_issued() {
            break;
        }
        let Some(issuer) = stores.iter().find_map(|s| s.find_issuer_of(subject)) else {
            break;
        };
        let der = CertDer::new(issuer.der());
        if out.iter().any(|d| d.as_bytes() == der.as_bytes()) {
            break;
        }
        out.push(der);
        cur = Some(issuer);
    }
    out
}

/// `YYYY-MM-DD` of a Unix time (civil-from-days).
fn date(unix: i64) -> String {
    let z = unix.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// What `keys list` says about the key link.
fn provider_label(c: &Cert) -> String {
    match c.prov_info() {
        None => "no private key".into(),
        Some(p) if p.is_cng() => format!("private key: CNG ({})", p.provider),
        Some(p) => format!("private key: legacy CSP ({})", p.provider),
    }
}

fn info_of(key: &str, r: &WinRef, c: &Cert) -> Result<KeyInfo, KeyStoreError> {
    let thumb = c
        .thumbprint()
        .map_err(|e| errors::map(key, "reading the thumbprint", e))?;
    let email = c.email();
    let who = if email.is_empty() {
        c.subject_display()
    } else {
        email
    };
    Ok(KeyInfo {
        selector: format!("thumbprint={thumb}"),
        label: Some(format!(
            "{who}; issuer {}; expires {}; {}",
            c.issuer_display(),
            date(c.not_after_unix()),
            provider_label(c)
        )),
        kind: kind_of(c),
        certificate: Some(CertDer::new(c.der())),
        chain: chain_of(r, c),
    })
}

impl WinStore {
    pub fn open(reference: &str) -> Result<Self, KeyStoreError> {
        let r = keyref::parse(reference).map_err(|e| usage(reference, e))?;
        // Fail early when the store does not exist.
        open_store(reference, &r, true)?;
        Ok(Self {
            id: reference.to_string(),
            r,
        })
    }

    /// `open`, returning the concrete key (tests, diagnostics).
    pub fn open_win_key(&self, selector: Option<&str>) -> Result<WinKey, KeyStoreError> {
        let sel = match selector {
            Some(s) => Some(keyref::parse_selector(s).map_err(|e| usage(&self.id, e))?),
            None => self.r.selector.clone(),
        };
        let store = open_store(&self.id, &self.r, true)?;
        let c = find(&self.id, &store, sel.as_ref())?;
        let thumbprint = c
            .thumbprint()
            .map_err(|e| errors::map(&self.id, "reading the thumbprint", e))?;
        Ok(WinKey {
            id: self.id.clone(),
            r: self.r.clone(),
            thumbprint,
            certificate: CertDer::new(c.der()),
            chain: chain_of(&self.r, &c),
            kind: kind_of(&c),
            has_key: c.prov_info().is_some(),
        })
    }
}

#[async_trait]
impl KeyStore for WinStore {
    fn id(&self) -> &str {
        &self.id
    }

    /// Windows asks for PINs itself (provider UI) when a key is used.
    async fn protection(&self) -> Protection {
        Protection::Unlocked
    }

    async fn unlock(&self, _secret: Secret) -> Result<(), KeyStoreError> {
        Ok(())
    }

    async fn list(&self) -> Result<Vec<KeyInfo>, KeyStoreError> {
        let store = open_store(&self.id, &self.r, true)?;
        store
            .certs()
            .iter()
            .filter(|c| self.r.selector.as_ref().is_none_or(|s| matches(c, s)))
            .map(|c| info_of(&self.id, &self.r, c))
            .collect()
    }

    async fn open(&self, selector: Option<&str>) -> Result<Arc<dyn PrivateKey>, KeyStoreError> {
        Ok(Arc::new(self.open_win_key(selector)?))
    }

    async fn import_pkcs12(
        &self,
        data: &[u8],
        password: &Secret,
        _label: Option<&str>,
    ) -> Result<KeyInfo, KeyStoreError> {
        let mut infos = import_pkcs12_into(&self.id, &self.r, data, password)?;
        infos.pop().ok_or_else(|| KeyStoreError::NotFound {
            key: self.id.clone(),
            detail: "the PKCS#12 holds no certificate with a private key".into(),
        })
    }
}

/// Imports a PKCS#12: each identity's key into its own (non-exportable) container by
/// `PFXImportCertStore` — a CNG KSP when Windows allows it, else the CSP the file names —
/// its certificate into the KEYREF's store, other certificates into `CA`. Returns the
/// identities (with private keys) imported.
pub fn import_pkcs12_into(
    key: &str,
    r: &WinRef,
    data: &[u8],
    password: &Secret,
) -> Result<Vec<KeyInfo>, KeyStoreError> {
    let pw = password.as_str().ok_or_else(|| KeyStoreError::BadSecret {
        key: key.to_string(),
        tries_left: None,
    })?;
    // CNG first; Wine 8 (and old Windows) refuse PKCS12_PREFER_CNG_KSP: fall back to the CSP.
    let pfx = win::pfx_import(data, pw, win::pfx_flags(true))
        .or_else(|_| win::pfx_import(data, pw, win::pfx_flags(false)))
        .map_err(|c| match c {
            0x56 => KeyStoreError::BadSecret {
                key: key.to_string(),
                tries_left: None,
            },
            c => errors::map(key, "PFXImportCertStore", c),
        })?;
    let target = open_store(key, r, false)?;
    let mut others = None;
    let mut out = Vec::new();
    for c in pfx.certs() {
        if c.prov_info().is_some() {
            let added = target
                .add(&c, win::ADD_REPLACE)
                .map_err(|e| errors::map(key, "adding the certificate", e))?;
            out.push(info_of(key, r, &added)?);
        } else {
            if others.is_none() {
                let ca = WinRef {
                    store: "CA".into(),
                    ..r.clone()
                };
                others = Some(open_store(key, &ca, false)?);
            }
            if let Some(ca) = &others {
                ca.add(&c, win::ADD_USE_EXISTING)
                    .map_err(|e| errors::map(key, "adding an issuer certificate", e))?;
            }
        }
    }
    Ok(out)
}

/// A certificate in a Windows store and the private key linked to it. Each operation looks
/// the certificate up again by thumbprint and acquires its key (so the object is `Send`,
/// holds no handle, and sees a re-imported key).
#[derive(Debug)]
pub struct WinKey {
    id: String,
    r: WinRef,
    thumbprint: String,
    certificate: CertDer,
    chain: Vec<CertDer>,
    kind: KeyKind,
    has_key: bool,
}

fn digest_name(d: DigestAlg) -> &'static str {
    d.name()
}

impl WinKey {
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    fn cert(&self) -> Result<Cert, KeyStoreError> {
        let store = open_store(&self.id, &self.r, true)?;
        find(
            &self.id,
            &store,
            Some(&Selector::Thumbprint(self.thumbprint.clone())),
        )
    }

    fn acquire(&self) -> Result<(Cert, KeyHandle), KeyStoreError> {
        if !self.has_key {
            return Err(KeyStoreError::NotFound {
                key: self.id.clone(),
                detail: format!(
                    "certificate {} has no private key attached",
                    self.thumbprint
                ),
            });
        }
        let c = self.cert()?;
        let flags = match self.r.provider {
            ProviderPref::Auto => win::ACQUIRE_AUTO,
            ProviderPref::Cng => win::ACQUIRE_CNG_ONLY,
            ProviderPref::Legacy => win::ACQUIRE_LEGACY,
        };
        let h = win::acquire_key(&c, flags)
            .map_err(|e| errors::map(&self.id, "CryptAcquireCertificatePrivateKey", e))?;
        if self.r.provider == ProviderPref::Cng && matches!(h, KeyHandle::Capi(..)) {
            // Windows fails ONLY_NCRYPT for CSP-only keys; Wine 8 hands out a CSP handle anyway.
            return Err(KeyStoreError::Unsupported {
                key: self.id.clone(),
                detail: "provider=cng: the key is only available through a legacy CSP".into(),
            });
        }
        Ok((c, h))
    }

    fn unsupported(&self, detail: String) -> KeyStoreError {
        KeyStoreError::Unsupported {
            key: self.id.clone(),
            detail,
        }
    }

    /// Legacy key spec: Windows reports 1 or 2; Wine's PFX import reports an invalid 3, whose
    /// key is the exchange key.
    fn capi_spec(spec: u32) -> u32 {
        if spec == 1 || spec == 2 {
            spec
        } else {
            win::KEYSPEC_KEYEXCHANGE
        }
    }

    /// A PROV_RSA_FULL container cannot hash SHA-2: reopen it in the AES provider.
    fn capi_sha2_provider(&self, c: &Cert) -> Result<win::Prov, KeyStoreError> {
        let p = c
            .prov_info()
            .ok_or_else(|| self.unsupported("no key link".into()))?;
        let flags = if p.machine_keyset() {
            win::MACHINE_KEYSET
        } else {
            0
        };
        win::acquire_context(
            Some(&p.container),
            win::aes_provider_name(),
            win::PROV_RSA_AES_TYPE,
            flags,
        )
        .map_err(|e| errors::map(&self.id, "CryptAcquireContext (AES provider)", e))
    }

    fn sign_now(&self, scheme: SignatureScheme, digest: &[u8]) -> Result<Vec<u8>, KeyStoreError> {
        let (c, h) = self.acquire()?;
        let dname = digest_name(scheme.digest());
        match h {
            KeyHandle::NCrypt(k, _) => {
                let alg = win::cng_alg(dname)
                    .ok_or_else(|| self.unsupported(format!("{dname} with a CNG key")))?;
                let sig = match scheme {
                    SignatureScheme::RsaPkcs1(_) => {
                        win::ncrypt_sign(k, win::CngSignPad::Pkcs1, &alg, digest)
                    }
                    SignatureScheme::RsaPss(_) => win::ncrypt_sign(
                        k,
                        win::CngSignPad::Pss {
                            salt: digest.len() as u32,
                        },
                        &alg,
                        digest,
                    ),
                    SignatureScheme::Ecdsa(_) => {
                        let raw = win::ncrypt_sign(k, win::CngSignPad::None, &alg, digest)
                            .map_err(|e| errors::map(&self.id, "NCryptSignHash", e))?;
                        return crate::der::ecdsa_raw_to_der(&raw).ok_or_else(|| {
                            KeyStoreError::Failed {
                                key: self.id.clone(),
                                detail: "NCryptSignHash returned a malformed ECDSA signature"
                                    .into(),
                            }
                        });
                    }
                    other => {
                        return Err(self.unsupported(format!("{} with a CNG key", other.name())));
                    }
                };
                sig.map_err(|e| errors::map(&self.id, "NCryptSignHash", e))
            }
            KeyHandle::Capi(prov, spec, _) => {
                let SignatureScheme::RsaPkcs1(_) = scheme else {
                    return Err(self.unsupported(format!(
                        "{} with a legacy CryptoAPI key (PKCS#1 v1.5 only)",
                        scheme.name()
                    )));
                };
                let alg = win::calg(dname).ok_or_else(|| {
                    self.unsupported(format!("{dname} with a legacy CryptoAPI key"))
                })?;
                let spec = Self::capi_spec(spec);
                match win::capi_sign(prov, spec, alg, digest) {
                    Err(NTE_BAD_ALGID) => {
                        let p = self.capi_sha2_provider(&c)?;
                        win::capi_sign(p.raw(), spec, alg, digest)
                            .map_err(|e| errors::map(&self.id, "CryptSignHash", e))
                    }
                    r => r.map_err(|e| errors::map(&self.id, "CryptSignHash", e)),
                }
            }
        }
    }

    fn decrypt_now(&self, padding: &RsaPadding, wrapped: &[u8]) -> Result<Secret, KeyStoreError> {
        let (_c, h) = self.acquire()?;
        let out = match h {
            KeyHandle::NCrypt(k, _) => {
                let r = match padding {
                    RsaPadding::Pkcs1v15 => win::ncrypt_decrypt(k, wrapped, None),
                    RsaPadding::Oaep { hash, mgf1, label } => {
                        if hash != mgf1 {
                            return Err(self.unsupported(format!(
                                "{}: CNG uses MGF1 with the OAEP hash",
                                padding.name()
                            )));
                        }
                        let alg = win::cng_alg(hash.name())
                            .ok_or_else(|| self.unsupported(padding.name()))?;
                        win::ncrypt_decrypt(k, wrapped, Some((&alg, label)))
                    }
                    other => return Err(self.unsupported(other.name())),
                };
                r.map_err(|e| errors::map(&self.id, "NCryptDecrypt", e))?
            }
            KeyHandle::Capi(prov, spec, _) => {
                let oaep = match padding {
                    RsaPadding::Pkcs1v15 => false,
                    RsaPadding::Oaep {
                        hash: DigestAlg::Sha1,
                        mgf1: DigestAlg::Sha1,
                        label,
                    } if label.is_empty() => true,
                    _ => {
                        return Err(self.unsupported(format!(
                            "{} with a legacy CryptoAPI key (PKCS#1 v1.5 and OAEP-SHA1 only)",
                            padding.name()
                        )));
                    }
                };
                win::capi_decrypt(prov, Self::capi_spec(spec), wrapped, oaep)
                    .map_err(|e| errors::map(&self.id, "CryptDecrypt", e))?
            }
        };
        Ok(Secret::new(out))
    }

    fn ecdh_now(&self, peer_point: &[u8]) -> Result<Secret, KeyStoreError> {
        let (_c, h) = self.acquire()?;
        match h {
            KeyHandle::NCrypt(k, _) => win::ncrypt_ecdh(k, peer_point)
                .map(Secret::new)
                .map_err(|e| errors::map(&self.id, "NCryptSecretAgreement", e)),
            KeyHandle::Capi(..) => Err(self.unsupported("ECDH with a legacy CryptoAPI key".into())),
        }
    }

    /// Every certificate of the system's intermediate (`CA`) and root (`ROOT`) stores of the
    /// key's location: candidates for its chain when the system chain engine found none. A
    /// store nobody has written to yet is read as empty.
    fn ca_store_certificates(&self) -> Result<Vec<CertDer>, KeyStoreError> {
        let machine = self.r.location == Location::Machine;
        let mut out = Vec::new();
        for name in ["CA", "ROOT"] {
            match win::open_system_store(name, machine, true) {
                Ok(store) => out.extend(store.certs().iter().map(|c| CertDer::new(c.der()))),
                Err(errors::ERROR_FILE_NOT_FOUND) => {}
                Err(e) => return Err(errors::map(&self.id, &format!("opening store {name}"), e)),
            }
        }
        Ok(out)
    }

    /// Which API the key is reached through now ("cng" or "legacy"), and the CNG algorithm group.
    pub fn provider_kind(&self) -> Result<String, KeyStoreError> {
        let (_c, h) = self.acquire()?;
        Ok(match h {
            KeyHandle::NCrypt(k, _) => {
                format!("cng {}", win::ncrypt_algorithm_group(k).unwrap_or_default())
            }
            KeyHandle::Capi(_, spec, _) => format!("legacy keyspec={spec}"),
        })
    }
}

#[async_trait]
impl PrivateKey for WinKey {
    fn certificate(&self) -> &CertDer {
        &self.certificate
    }

    fn chain(&self) -> &[CertDer] {
        &self.chain
    }

    /// The system's intermediate and root stores (`CA`, `ROOT`) of the key's location.
    async fn store_certificates(&self) -> Result<Vec<CertDer>, KeyStoreError> {
        self.ca_store_certificates()
    }

    fn kind(&self) -> KeyKind {
        self.kind
    }

    async fn sign_digest(
        &self,
        scheme: SignatureScheme,
        digest: &[u8],
    ) -> Result<Vec<u8>, KeyStoreError> {
        self.sign_now(scheme, digest)
    }

    async fn decrypt_key(
        &self,
        padding: &RsaPadding,
        wrapped: &[u8],
    ) -> Result<Secret, KeyStoreError> {
        self.decrypt_now(padding, wrapped)
    }

    async fn ecdh(&self, peer_point: &[u8]) -> Result<Secret, KeyStoreError> {
        self.ecdh_now(peer_point)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates() {
        assert_eq!(super::date(0), "1970-01-01");
        assert_eq!(super::date(1_700_000_000), "2023-11-14");
    }
}
