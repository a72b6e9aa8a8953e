//! A plugin's key store as a core [`KeyStore`], its keys as [`PrivateKey`]s.

use std::sync::Arc;

use async_trait::async_trait;
use smimekit_core::{
    CertDer, DigestAlg, KeyInfo, KeyKind, KeyStore, KeyStoreError, PrivateKey, Protection,
    RsaPadding, Secret, SignatureScheme,
};
use smimekit_plugin_abi::{self as abi, Key, Status, Store, list};

use crate::ffi::{CallError, Handle, HandleId, HandleKind, LaneFail, Library, call_buf};

fn map_err(key: &str, plugin: &str, e: CallError) -> KeyStoreError {
    let key = key.to_string();
    let detail = if e.message.is_empty() {
        format!(
            "plugin {plugin}: {}",
            e.status.c_name().unwrap_or("unknown status")
        )
    } else {
        format!("plugin {plugin}: {}", e.message)
    };
    match e.status {
        Status::NEEDS_UNLOCK => KeyStoreError::Locked {
            key,
            hint: e.message,
        },
        Status::BAD_SECRET => KeyStoreError::BadSecret {
            key,
            tries_left: None,
        },
        Status::NOT_FOUND => KeyStoreError::NotFound { key, detail },
        Status::MALFORMED | Status::INVALID_ARGUMENT => KeyStoreError::Malformed { key, detail },
        Status::UNSUPPORTED => KeyStoreError::Unsupported { key, detail },
        Status::IO | Status::UNAVAILABLE => KeyStoreError::Io { key, detail },
        _ => KeyStoreError::Failed { key, detail },
    }
}

/// A call that got no answer: the lane stopped, or the call timed out.
fn stopped(key: &str, e: LaneFail) -> KeyStoreError {
    KeyStoreError::Io {
        key: key.to_string(),
        detail: e.to_string(),
    }
}

fn unsupported(key: &str, what: &str) -> KeyStoreError {
    KeyStoreError::Unsupported {
        key: key.to_string(),
        detail: format!("the plugin does not support {what}"),
    }
}

fn digest_code(d: DigestAlg) -> u32 {
    match d {
        DigestAlg::Md5 => abi::DIGEST_MD5,
        DigestAlg::Sha1 => abi::DIGEST_SHA1,
        DigestAlg::Sha224 => abi::DIGEST_SHA224,
        DigestAlg::Sha256 => abi::DIGEST_SHA256,
        DigestAlg::Sha384 => abi::DIGEST_SHA384,
        DigestAlg::Sha512 => abi::DIGEST_SHA512,
        // A digest newer than this ABI: 0 is never a valid code, the plugin says unsupported.
        _ => 0,
    }
}

/// `scheme` as the ABI encodes it (`SMK_SIG_* << 8 | SMK_DIGEST_*`).
pub fn scheme_code(s: SignatureScheme) -> u32 {
    let alg = match s {
        SignatureScheme::RsaPkcs1(_) => abi::SIG_RSA_PKCS1,
        SignatureScheme::RsaPss(_) => abi::SIG_RSA_PSS,
        SignatureScheme::Ecdsa(_) => abi::SIG_ECDSA,
        SignatureScheme::Dsa(_) => abi::SIG_DSA,
        _ => 0,
    };
    alg << 8 | digest_code(s.digest())
}

/// An open key store of a plugin.
#[derive(Debug)]
pub struct PluginKeyStore {
    lib: Arc<Library>,
    handle: Handle<Store>,
    hid: HandleId,
    id: String,
    plugin: String,
    guard: Arc<StoreGuard>,
}

impl PluginKeyStore {
    /// Opens the store a KEYREF names through `lib` (which must have a key-store table).
    pub async fn open(
        lib: Arc<Library>,
        reference: &str,
        certificate: Option<&str>,
    ) -> Result<Self, KeyStoreError> {
        let plugin = lib
            .keystore_info()
            .map(|i| i.name.clone())
            .unwrap_or_default();
        let (r, c) = (reference.to_string(), certificate.unwrap_or("").to_string());
        let l = lib.clone();
        let res = lib
            .call_timed(move || {
                let t = l.ks()?;
                let open = t.store_open?;
                let mut h: *mut Store = std::ptr::null_mut();
                let r = call_buf(t.free_buf, |err| {
                    // SAFETY: byte slices and out-pointers are valid for the call; the lane
                    // serialises calls as the plugin's flags require.
                    unsafe { open(r.as_ptr(), r.len(), c.as_ptr(), c.len(), &mut h, err) }
                });
                Some(r.and_then(|_| {
                    if h.is_null() {
                        return Err(CallError {
                            status: Status::FAILED,
                            message: "store_open returned SMK_OK with a null handle".into(),
                        });
                    }
                    let id = l.register_on_lane(HandleKind::Store, Handle(h))?;
                    Ok((Handle(h), id))
                }))
            })
            .await
            .map_err(|e| stopped(reference, e))?
            .ok_or_else(|| unsupported(reference, "key stores"))?
            .map_err(|e| map_err(reference, &plugin, e))?;
        let (res, hid) = res;
        Ok(Self {
            guard: Arc::new(StoreGuard(lib.clone(), res, hid)),
            lib,
            handle: res,
            hid,
            id: reference.to_string(),
            plugin,
        })
    }

    async fn call(
        &self,
        f: impl FnOnce(&abi::KeyStoreV1, *mut Store, *mut abi::Buf) -> Option<Status> + Send + 'static,
    ) -> Result<Option<Vec<u8>>, KeyStoreError> {
        let r = crate::ffi::call_on_lane(&self.lib, Library::ks, self.handle, self.hid, f)
            .await
            .map_err(|e| stopped(&self.id, e))?;
        match r {
            None => Ok(None),
            Some(r) => r.map(Some).map_err(|e| map_err(&self.id, &self.plugin, e)),
        }
    }
}

#[async_trait]
impl KeyStore for PluginKeyStore {
    fn id(&self) -> &str {
        &self.id
    }

    async fn protection(&self) -> Protection {
        let r = self
            .call(|t, h, out| {
                // SAFETY: live handle, valid out buffer; serialised by the lane.
                t.store_protection.map(|f| unsafe { f(h, out) })
            })
            .await;
        match r {
            Err(KeyStoreError::Locked { hint, .. }) => Protection::Locked {
                hint,
                tries_left: None,
            },
            _ => Protection::Unlocked,
        }
    }

    async fn unlock(&self, secret: Secret) -> Result<(), KeyStoreError> {
        self.call(move |t, h, out| {
            let s = secret.expose();
            // SAFETY: live handle; `s` is valid for the call.
            t.store_unlock
                .map(|f| unsafe { f(h, s.as_ptr(), s.len(), out) })
        })
        .await
        .map(|_| ())
    }

    async fn list(&self) -> Result<Vec<KeyInfo>, KeyStoreError> {
        let data = self
            .call(|t, h, out| {
                // SAFETY: live handle, valid out buffer.
                t.store_list.map(|f| unsafe { f(h, out) })
            })
            .await?
            .ok_or_else(|| unsupported(&self.id, "listing keys"))?;
        let items = list::decode(&data).ok_or_else(|| KeyStoreError::Malformed {
            key: self.id.clone(),
            detail: format!(
                "plugin {}: store_list returned a malformed list",
                self.plugin
            ),
        })?;
        let bad = |why: &str| KeyStoreError::Malformed {
            key: self.id.clone(),
            detail: format!("plugin {}: store_list: {why}", self.plugin),
        };
        if items.len() % 3 != 0 {
            return Err(bad(&format!(
                "{} items, not three per key (selector, label, certificate)",
                items.len()
            )));
        }
        let text = |b: &[u8], what: &str| {
            std::str::from_utf8(b)
                .map(str::to_string)
                .map_err(|_| bad(&format!("a {what} is not UTF-8")))
        };
        items
            .chunks(3)
            .map(|c| {
                Ok(KeyInfo {
                    selector: text(c[0], "selector")?,
                    label: (!c[1].is_empty())
                        .then(|| text(c[1], "label"))
                        .transpose()?,
                    kind: KeyKind::Other,
                    certificate: (!c[2].is_empty()).then(|| CertDer::new(c[2].to_vec())),
                    chain: Vec::new(),
                })
            })
            .collect()
    }

    async fn open(&self, selector: Option<&str>) -> Result<Arc<dyn PrivateKey>, KeyStoreError> {
        let l = self.lib.clone();
        let (h, hid) = (self.handle, self.hid);
        let sel = selector.unwrap_or("").to_string();
        let key = self
            .lib
            .call_timed(move || {
                if !l.is_open(hid) {
                    return Some(Err(crate::ffi::closed_handle()));
                }
                let t = l.ks()?;
                let (open, cert, kind) = (t.key_open?, t.key_certificate?, t.key_kind?);
                let mut k: *mut Key = std::ptr::null_mut();
                let r = call_buf(t.free_buf, |err| {
                    // SAFETY: live store handle; `sel` and the out-pointer are valid.
                    unsafe { open(h.get(), sel.as_ptr(), sel.len(), &mut k, err) }
                });
                if let Err(e) = r {
                    return Some(Err(e));
                }
                if k.is_null() {
                    return Some(Err(CallError {
                        status: Status::FAILED,
                        message: "key_open returned SMK_OK with a null handle".into(),
                    }));
                }
                let close = |k| {
                    if let Some(c) = t.key_close {
                        // SAFETY: closing the key just opened, once.
                        unsafe { c(k) }
                    }
                };
                // SAFETY: live key handle, valid out buffer.
                let c = match call_buf(t.free_buf, |out| unsafe { cert(k, out) }) {
                    Ok(c) => c,
                    Err(e) => {
                        close(k);
                        return Some(Err(e));
                    }
                };
                let chain = match t.key_chain {
                    // SAFETY: live key handle, valid out buffer.
                    Some(f) => call_buf(t.free_buf, |out| unsafe { f(k, out) }).unwrap_or_default(),
                    None => Vec::new(),
                };
                let (mut a, mut b) = (0u32, 0u32);
                // SAFETY: live key handle; `a`, `b` are valid u32 slots.
                let st = unsafe { kind(k, &mut a, &mut b) };
                if st != Status::OK {
                    a = abi::KEY_OTHER;
                }
                let kid = match l.register_on_lane(HandleKind::Key, Handle(k)) {
                    Ok(id) => id,
                    Err(e) => return Some(Err(e)),
                };
                Some(Ok((Handle(k), kid, c, chain, a, b)))
            })
            .await
            .map_err(|e| stopped(&self.id, e))?
            .ok_or_else(|| unsupported(&self.id, "keys"))?
            .map_err(|e| map_err(&self.id, &self.plugin, e))?;
        let (handle, hid, cert, chain, kind, param) = key;
        let chain = list::decode(&chain)
            .unwrap_or_default()
            .into_iter()
            .map(|c| CertDer::new(c.to_vec()))
            .collect();
        let kind = match (kind, param) {
            (abi::KEY_RSA, bits) => KeyKind::Rsa { bits },
            (abi::KEY_EC, abi::CURVE_P256) => KeyKind::Ec { curve: "P-256" },
            (abi::KEY_EC, abi::CURVE_P384) => KeyKind::Ec { curve: "P-384" },
            (abi::KEY_EC, abi::CURVE_P521) => KeyKind::Ec { curve: "P-521" },
            _ => KeyKind::Other,
        };
        Ok(Arc::new(PluginKey {
            lib: self.lib.clone(),
            handle,
            hid,
            id: self.id.clone(),
            plugin: self.plugin.clone(),
            certificate: CertDer::new(cert),
            chain,
            kind,
            _store: self.guard.clone(),
        }))
    }
}

/// Closes the store handle when the store and every key opened from it are gone (the ABI
/// says keys are closed before their store).
#[derive(Debug)]
struct StoreGuard(Arc<Library>, Handle<Store>, HandleId);

impl Drop for StoreGuard {
    fn drop(&mut self) {
        // Closed once, after its keys (they hold this guard): here, unless the library's
        // shutdown closed it first.
        self.0
            .close_detached(self.2, HandleKind::Store, self.1.get() as usize);
    }
}

/// An open key of a plugin.
#[derive(Debug)]
pub struct PluginKey {
    lib: Arc<Library>,
    handle: Handle<Key>,
    hid: HandleId,
    id: String,
    plugin: String,
    certificate: CertDer,
    chain: Vec<CertDer>,
    kind: KeyKind,
    _store: Arc<StoreGuard>,
}

impl PluginKey {
    async fn call(
        &self,
        what: &str,
        f: impl FnOnce(&abi::KeyStoreV1, *mut Key, *mut abi::Buf) -> Option<Status> + Send + 'static,
    ) -> Result<Vec<u8>, KeyStoreError> {
        let r = crate::ffi::call_on_lane(&self.lib, Library::ks, self.handle, self.hid, f)
            .await
            .map_err(|e| stopped(&self.id, e))?;
        match r {
            None => Err(unsupported(&self.id, what)),
            Some(r) => r.map_err(|e| map_err(&self.id, &self.plugin, e)),
        }
    }
}

impl Drop for PluginKey {
    fn drop(&mut self) {
        // Closed once: here, unless the library's shutdown closed it first.
        self.lib
            .close_detached(self.hid, HandleKind::Key, self.handle.get() as usize);
    }
}

#[async_trait]
impl PrivateKey for PluginKey {
    fn certificate(&self) -> &CertDer {
        &self.certificate
    }

    fn chain(&self) -> &[CertDer] {
        &self.chain
    }

    fn kind(&self) -> KeyKind {
        self.kind
    }

    async fn sign_digest(
        &self,
        scheme: SignatureScheme,
        digest: &[u8],
    ) -> Result<Vec<u8>, KeyStoreError> {
        let code = scheme_code(scheme);
        let d = digest.to_vec();
        self.call("signing", move |t, k, out| {
            // SAFETY: live key handle; `d` valid for the call.
            t.key_sign_digest
                .map(|f| unsafe { f(k, code, d.as_ptr(), d.len(), out) })
        })
        .await
    }

    async fn decrypt_key(
        &self,
        padding: &RsaPadding,
        wrapped: &[u8],
    ) -> Result<Secret, KeyStoreError> {
        let (p, h, m, label) = match padding {
            RsaPadding::Pkcs1v15 => (abi::PADDING_PKCS1, 0, 0, Vec::new()),
            RsaPadding::Oaep { hash, mgf1, label } => (
                abi::PADDING_OAEP,
                digest_code(*hash),
                digest_code(*mgf1),
                label.clone(),
            ),
            _ => return Err(unsupported(&self.id, "this padding")),
        };
        let w = wrapped.to_vec();
        self.call("decryption", move |t, k, out| {
            t.key_decrypt.map(|f| {
                // SAFETY: live key handle; `label` and `w` valid for the call.
                unsafe {
                    f(
                        k,
                        p,
                        h,
                        m,
                        label.as_ptr(),
                        label.len(),
                        w.as_ptr(),
                        w.len(),
                        out,
                    )
                }
            })
        })
        .await
        .map(Secret::new)
    }

    async fn ecdh(&self, peer_point: &[u8]) -> Result<Secret, KeyStoreError> {
        let p = peer_point.to_vec();
        self.call("ECDH", move |t, k, out| {
            // SAFETY: live key handle; `p` valid for the call.
            t.key_ecdh
                .map(|f| unsafe { f(k, p.as_ptr(), p.len(), out) })
        })
        .await
        .map(Secret::new)
    }
}
