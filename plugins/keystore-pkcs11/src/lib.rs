//! Key store for PKCS#11 tokens: smartcards, HSMs, SoftHSM2. Keys never leave the token.
//!
//! Key references are RFC 7512 `pkcs11:` URIs ([`uri`]). The module comes from the URI's
//! `module-path=` query attribute (the service adds it from `[keystore.NAME] kind = "pkcs11"`
//! when the URI has none). A URI selects one token (by `token=` label, `serial=`,
//! `manufacturer=`, `model=`, `slot-id=`); `object=`/`id=` narrow the keys.
//!
//! PIN: a token that needs one is [`Protection::Locked`] until [`KeyStore::unlock`], with the
//! token's PIN flags (count low, final try, locked) in the hint. The host finds the PIN, in
//! smimekit's one order (`smimekit_core::secret`): the URI's `pin-value=` and `pin-source=`
//! first, then its own sources; this crate reads no PIN itself.
//!
//! Operations run on the token ([`key`]): RSA PKCS#1 v1.5 signatures as `CKM_RSA_PKCS` over a
//! DigestInfo we build (so any digest works on any token that has raw RSA PKCS#1), RSA-PSS as
//! `CKM_RSA_PKCS_PSS` on the digest, ECDSA as raw `CKM_ECDSA` on the digest (r‖s converted to
//! DER; tokens such as SoftHSM have no `CKM_ECDSA_SHA256`), RSA v1.5 and OAEP decryption, and
//! ECDH with `CKM_ECDH1_DERIVE`. Threading: one worker lane per token ([`lane`]).

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod import;
mod key;
mod lane;
pub mod uri;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use cryptoki::context::Pkcs11;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::RawAuthPin;
use smimekit_core::plugin::{KeyStoreFactory, KeyStoreParams};
use smimekit_core::{
    CertDer, KeyInfo, KeyKind, KeySpec, KeyStore, KeyStoreError, NewKey, PrivateKey, Protection,
    Secret,
};

pub use key::TokenKey;
use lane::{Lane, TokenState};
use uri::Pkcs11Uri;

/// `pkcs11:` URIs.
pub fn accepts(reference: &str) -> bool {
    uri::is_pkcs11(reference)
}

/// A reference with `pin-value` removed, for messages.
pub(crate) fn redact(reference: &str) -> String {
    let Some((path, query)) = reference.split_once('?') else {
        return reference.to_string();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| !p.to_ascii_lowercase().starts_with("pin-value"))
        .collect();
    if kept.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", kept.join("&"))
    }
}

pub(crate) fn rv_name(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, f) => format!("{f}: {rv:?}"),
        other => other.to_string(),
    }
}

/// Maps a token error on an operation to what the caller can do next.
pub(crate) fn op_error(key: &str, what: &str, e: &CkError) -> KeyStoreError {
    let key = key.to_string();
    match e {
        CkError::Pkcs11(rv, _) => match rv {
            RvError::MechanismInvalid | RvError::MechanismParamInvalid => {
                KeyStoreError::Unsupported {
                    key,
                    detail: format!("the token does not support {what} ({})", rv_name(e)),
                }
            }
            RvError::KeyFunctionNotPermitted | RvError::KeyTypeInconsistent => {
                KeyStoreError::Unsupported {
                    key,
                    detail: format!("the key may not be used for {what} ({})", rv_name(e)),
                }
            }
            RvError::UserNotLoggedIn => KeyStoreError::Locked {
                key,
                hint: "token PIN".into(),
            },
            RvError::PinLocked => KeyStoreError::Failed {
                key,
                detail: "the token's user PIN is locked: unblock it with the SO PIN".into(),
            },
            RvError::DeviceRemoved
            | RvError::TokenNotPresent
            | RvError::DeviceError
            | RvError::SessionHandleInvalid
            | RvError::SessionClosed => KeyStoreError::Io {
                key,
                detail: format!("{what}: the token is unreachable ({})", rv_name(e)),
            },
            _ => KeyStoreError::Failed {
                key,
                detail: format!("{what} failed on the token ({})", rv_name(e)),
            },
        },
        other => KeyStoreError::Failed {
            key,
            detail: format!("{what}: {other}"),
        },
    }
}

fn malformed(key: &str, detail: impl Into<String>) -> KeyStoreError {
    KeyStoreError::Malformed {
        key: key.to_string(),
        detail: detail.into(),
    }
}

/// One token as it appears in a slot.
#[derive(Debug, Clone)]
struct TokenDesc {
    slot: Slot,
    label: String,
    serial: String,
    login_required: bool,
}

fn describe(p: &Pkcs11, slot: Slot) -> Option<TokenDesc> {
    let i = p.get_token_info(slot).ok()?;
    Some(TokenDesc {
        slot,
        label: i.label().trim_end().to_string(),
        serial: i.serial_number().trim_end().to_string(),
        login_required: i.login_required(),
    })
}

/// The one token the URI selects.
fn find_token(p: &Pkcs11, u: &Pkcs11Uri, key: &str) -> Result<TokenDesc, KeyStoreError> {
    let slots = p.get_slots_with_token().map_err(|e| KeyStoreError::Io {
        key: key.to_string(),
        detail: format!("listing slots: {}", rv_name(&e)),
    })?;
    let mut all = Vec::new();
    let mut found = Vec::new();
    for slot in slots {
        let Ok(info) = p.get_token_info(slot) else {
            continue;
        };
        let Some(d) = describe(p, slot) else { continue };
        all.push(format!(
            "slot {} token \"{}\" serial {}",
            slot.id(),
            d.label,
            d.serial
        ));
        let ok = u.token.as_ref().is_none_or(|t| *t == d.label)
            && u.serial.as_ref().is_none_or(|s| *s == d.serial)
            && u.manufacturer
                .as_ref()
                .is_none_or(|m| m == info.manufacturer_id().trim_end())
            && u.model
                .as_ref()
                .is_none_or(|m| m == info.model().trim_end())
            && u.slot_id.is_none_or(|s| s == slot.id())
            && info.token_initialized();
        if ok {
            found.push(d);
        }
    }
    let present = if all.is_empty() {
        "no token is present".to_string()
    } else {
        format!("present: {}", all.join("; "))
    };
    match found.len() {
        0 => Err(KeyStoreError::NotFound {
            key: key.to_string(),
            detail: format!("no token matches {} ({present})", u.token_uri()),
        }),
        1 => Ok(found.remove(0)),
        _ if u.token.is_some() || u.serial.is_some() || u.slot_id.is_some() => Ok(found.remove(0)),
        _ => Err(KeyStoreError::NotFound {
            key: key.to_string(),
            detail: format!("several tokens match: add token=… or serial=… ({present})"),
        }),
    }
}

/// The module, token and lane for a URI.
pub(crate) struct Target {
    pub uri: Pkcs11Uri,
    pub id: String,
    pub lane: Arc<Lane>,
    token: TokenDesc,
}

pub(crate) fn target(reference: &str) -> Result<Target, KeyStoreError> {
    let id = redact(reference);
    let u =
        Pkcs11Uri::parse(reference).map_err(|e| malformed(&id, format!("bad pkcs11: URI: {e}")))?;
    let module = u.module_path.clone().ok_or_else(|| KeyStoreError::Io {
        key: id.clone(),
        detail: "no PKCS#11 module: add ?module-path=/path/to/module.so to the URI, or configure [keystore.NAME] kind = \"pkcs11\" module = \"…\"".into(),
    })?;
    let (canonical, p) = lane::module(Path::new(&module), &id)?;
    let token = find_token(&p, &u, &id)?;
    let lane = lane::lane(&canonical, &p, token.slot, &u.token_uri())?;
    Ok(Target {
        uri: u,
        id,
        lane,
        token,
    })
}

/// The token's PIN flags, as words and as a count of tries where it is implied.
fn pin_state(p: &Pkcs11, slot: Slot) -> (String, Option<u32>, bool) {
    match p.get_token_info(slot) {
        Ok(i) if i.user_pin_locked() => ("the PIN is locked".into(), Some(0), true),
        Ok(i) if i.user_pin_final_try() => {
            ("final try before the PIN locks".into(), Some(1), false)
        }
        Ok(i) if i.user_pin_count_low() => ("an incorrect PIN was entered".into(), None, false),
        _ => (String::new(), None, false),
    }
}

/// Logs in on the lane's session (no-op when already logged in).
fn login(st: &mut TokenState, pin: &Secret, key: &str) -> Result<(), KeyStoreError> {
    let session = st
        .session()
        .map_err(|e| op_error(key, "opening a session", &e))?;
    let raw = RawAuthPin::new(Box::new(pin.expose().to_vec()));
    match session.login_with_raw(UserType::User, &raw) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
        Err(CkError::Pkcs11(
            RvError::PinIncorrect | RvError::PinLenRange | RvError::PinInvalid,
            _,
        )) => {
            let (_, tries_left, locked) = pin_state(&st.pkcs11, st.slot);
            if locked {
                return Err(KeyStoreError::Failed {
                    key: key.to_string(),
                    detail: "wrong PIN, and the token's user PIN is now locked: unblock it with the SO PIN".into(),
                });
            }
            Err(KeyStoreError::BadSecret {
                key: key.to_string(),
                tries_left,
            })
        }
        Err(e) => Err(op_error(key, "login", &e)),
    }
}

/// A token, opened from a `pkcs11:` URI.
pub struct Pkcs11Store {
    target: Target,
}

impl std::fmt::Debug for Pkcs11Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Store")
            .field("id", &self.target.id)
            .field("token", &self.target.token.label)
            .field("slot", &self.target.token.slot.id())
            .finish_non_exhaustive()
    }
}

/// A key found on the token, with its certificate (if any).
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub handle: ObjectHandle,
    pub ck_id: Vec<u8>,
    pub label: Option<String>,
    pub kind: KeyKind,
    pub certificate: Option<CertDer>,
    pub chain: Vec<CertDer>,
    /// Every other certificate object on the token (CA certificates and the rest): candidates
    /// for the key's chain ([`smimekit_core::PrivateKey::store_certificates`]).
    pub others: Vec<CertDer>,
}

pub(crate) fn attr_bytes(attrs: &[Attribute], t: AttributeType) -> Option<Vec<u8>> {
    attrs.iter().find_map(|a| match (a, t) {
        (Attribute::Id(v), AttributeType::Id)
        | (Attribute::Label(v), AttributeType::Label)
        | (Attribute::Modulus(v), AttributeType::Modulus)
        | (Attribute::EcParams(v), AttributeType::EcParams)
        | (Attribute::EcPoint(v), AttributeType::EcPoint)
        | (Attribute::PublicExponent(v), AttributeType::PublicExponent)
        | (Attribute::Value(v), AttributeType::Value) => Some(v.clone()),
        _ => None,
    })
}

pub(crate) const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
pub(crate) const OID_P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
pub(crate) const OID_P521: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23];

pub(crate) fn curve_of(params: &[u8]) -> KeyKind {
    match params {
        p if p == OID_P256 => KeyKind::Ec { curve: "P-256" },
        p if p == OID_P384 => KeyKind::Ec { curve: "P-384" },
        p if p == OID_P521 => KeyKind::Ec { curve: "P-521" },
        _ => KeyKind::Other,
    }
}

fn key_kind(session: &Session, h: ObjectHandle) -> KeyKind {
    let Ok(attrs) = session.get_attributes(
        h,
        &[
            AttributeType::KeyType,
            AttributeType::Modulus,
            AttributeType::EcParams,
        ],
    ) else {
        return KeyKind::Other;
    };
    let kt = attrs.iter().find_map(|a| match a {
        Attribute::KeyType(k) => Some(*k),
        _ => None,
    });
    match kt {
        Some(k) if k == KeyType::RSA => attr_bytes(&attrs, AttributeType::Modulus)
            .map(|m| {
                let m: Vec<u8> = m.into_iter().skip_while(|b| *b == 0).collect();
                let bits = u32::try_from(m.len() * 8).unwrap_or(0)
                    - m.first().map_or(0, |b| b.leading_zeros());
                KeyKind::Rsa { bits }
            })
            .unwrap_or(KeyKind::Other),
        Some(k) if k == KeyType::EC => attr_bytes(&attrs, AttributeType::EcParams)
            .map(|p| curve_of(&p))
            .unwrap_or(KeyKind::Other),
        _ => KeyKind::Other,
    }
}

/// Issuers of `leaf` among `pool`, nearest first (at most 8 deep).
fn chain_for(leaf: &[u8], pool: &[Vec<u8>]) -> Vec<CertDer> {
    use openssl::x509::{X509, X509VerifyResult};
    let xs: Vec<X509> = pool.iter().filter_map(|d| X509::from_der(d).ok()).collect();
    let Ok(mut cur) = X509::from_der(leaf) else {
        return Vec::new();
    };
    let mut out: Vec<CertDer> = Vec::new();
    for _ in 0..8 {
        let next = xs.iter().find(|c| {
            c.issued(&cur) == X509VerifyResult::OK
                && c.to_der().ok().as_deref() != cur.to_der().ok().as_deref()
        });
        let Some(next) = next else { break };
        let Ok(der) = next.to_der() else { break };
        if out.iter().any(|c| c.as_bytes() == der.as_slice()) {
            break;
        }
        out.push(CertDer::new(der));
        cur = next.clone();
    }
    out
}

/// Every private key the URI selects, with certificates matched by CKA_ID (else label).
pub(crate) fn find_keys(
    st: &mut TokenState,
    u: &Pkcs11Uri,
    id: &str,
) -> Result<Vec<Found>, KeyStoreError> {
    let session = st
        .session()
        .map_err(|e| op_error(id, "opening a session", &e))?;
    let mut tmpl = vec![Attribute::Class(ObjectClass::PRIVATE_KEY)];
    if let Some(o) = &u.object {
        tmpl.push(Attribute::Label(o.as_bytes().to_vec()));
    }
    if let Some(i) = &u.id {
        tmpl.push(Attribute::Id(i.clone()));
    }
    let keys = session
        .find_objects(&tmpl)
        .map_err(|e| op_error(id, "searching keys", &e))?;
    let certs = session
        .find_objects(&[Attribute::Class(ObjectClass::CERTIFICATE)])
        .map_err(|e| op_error(id, "searching certificates", &e))?;
    let mut cert_list = Vec::new();
    for c in certs {
        if let Ok(a) = session.get_attributes(
            c,
            &[
                AttributeType::Id,
                AttributeType::Label,
                AttributeType::Value,
            ],
        ) && let Some(v) = attr_bytes(&a, AttributeType::Value)
        {
            cert_list.push((
                attr_bytes(&a, AttributeType::Id).unwrap_or_default(),
                attr_bytes(&a, AttributeType::Label),
                v,
            ));
        }
    }
    let pool: Vec<Vec<u8>> = cert_list.iter().map(|c| c.2.clone()).collect();
    let mut out = Vec::new();
    for h in keys {
        let a = session
            .get_attributes(h, &[AttributeType::Id, AttributeType::Label])
            .map_err(|e| op_error(id, "reading key attributes", &e))?;
        let ck_id = attr_bytes(&a, AttributeType::Id).unwrap_or_default();
        let label =
            attr_bytes(&a, AttributeType::Label).map(|l| String::from_utf8_lossy(&l).into_owned());
        let cert = cert_list
            .iter()
            .find(|c| !ck_id.is_empty() && c.0 == ck_id)
            .or_else(|| {
                cert_list.iter().find(|c| {
                    ck_id.is_empty()
                        && label.is_some()
                        && c.1.as_deref() == label.as_deref().map(str::as_bytes)
                })
            })
            .map(|c| c.2.clone());
        let chain = cert
            .as_deref()
            .map(|c| chain_for(c, &pool))
            .unwrap_or_default();
        let others = pool
            .iter()
            .filter(|c| cert.as_deref() != Some(c.as_slice()))
            .map(|c| CertDer::new(c.clone()))
            .collect();
        out.push(Found {
            handle: h,
            kind: key_kind(session, h),
            ck_id,
            label,
            certificate: cert.map(CertDer::new),
            chain,
            others,
        });
    }
    Ok(out)
}

impl Pkcs11Store {
    /// Opens the token a `pkcs11:` URI names (the plugin entry point). It is locked until
    /// the host unlocks it, unless this process has logged in to the token already.
    pub fn open(params: &KeyStoreParams<'_>) -> Result<Box<dyn KeyStore>, KeyStoreError> {
        Ok(Box::new(Self::open_uri(params.reference)?))
    }

    pub fn open_uri(reference: &str) -> Result<Self, KeyStoreError> {
        Ok(Self {
            target: target(reference)?,
        })
    }

    fn object_uri(&self, f: &Found) -> String {
        let mut u = self.target.uri.clone();
        u.token = Some(self.target.token.label.clone());
        u.serial = Some(self.target.token.serial.clone());
        u.object_uri(f.label.as_deref(), &f.ck_id, "private")
    }

    async fn found(&self) -> Result<Vec<Found>, KeyStoreError> {
        if let Protection::Locked { hint, .. } = self.protection().await {
            return Err(KeyStoreError::Locked {
                key: self.target.id.clone(),
                hint,
            });
        }
        let u = self.target.uri.clone();
        let id = self.target.id.clone();
        self.target
            .lane
            .call(move |st| find_keys(st, &u, &id))
            .await?
    }
}

#[async_trait]
impl KeyStore for Pkcs11Store {
    fn id(&self) -> &str {
        &self.target.id
    }

    async fn protection(&self) -> Protection {
        if !self.target.token.login_required {
            return Protection::Unlocked;
        }
        // Both token calls on the lane: C_GetTokenInfo may take as long as any other call.
        let checked = self
            .target
            .lane
            .call(|st| (st.logged_in(), pin_state(&st.pkcs11, st.slot)))
            .await;
        let (state, tries_left) = match checked {
            Ok((true, _)) => return Protection::Unlocked,
            Ok((false, (state, tries_left, _))) => (state, tries_left),
            Err(_) => (String::new(), None),
        };
        let mut hint = format!("PIN of token \"{}\"", self.target.token.label);
        if !state.is_empty() {
            hint.push_str(&format!(" ({state})"));
        }
        Protection::Locked { hint, tries_left }
    }

    async fn unlock(&self, secret: Secret) -> Result<(), KeyStoreError> {
        let (_, _, locked) = self
            .target
            .lane
            .call(|st| pin_state(&st.pkcs11, st.slot))
            .await?;
        if locked {
            return Err(KeyStoreError::Failed {
                key: self.target.id.clone(),
                detail: "the token's user PIN is locked: unblock it with the SO PIN".into(),
            });
        }
        let id = self.target.id.clone();
        self.target
            .lane
            .call(move |st| {
                if st.logged_in() {
                    return Ok(());
                }
                login(st, &secret, &id)
            })
            .await?
    }

    /// Logs out (C_Logout on the lane's session): the login is the token's, for this
    /// process, so every key opened from it needs the PIN again.
    async fn close(&self) -> Result<(), KeyStoreError> {
        let id = self.target.id.clone();
        self.target
            .lane
            .call(move |st| {
                if !st.logged_in() {
                    return Ok(());
                }
                let session = st
                    .session()
                    .map_err(|e| op_error(&id, "opening a session", &e))?;
                match session.logout() {
                    Ok(()) | Err(CkError::Pkcs11(RvError::UserNotLoggedIn, _)) => Ok(()),
                    Err(e) => Err(op_error(&id, "logout", &e)),
                }
            })
            .await?
    }

    async fn list(&self) -> Result<Vec<KeyInfo>, KeyStoreError> {
        let found = self.found().await?;
        Ok(found
            .iter()
            .map(|f| KeyInfo {
                selector: self.object_uri(f),
                label: f.label.clone(),
                kind: f.kind,
                certificate: f.certificate.clone(),
                chain: f.chain.clone(),
            })
            .collect())
    }

    async fn open(&self, selector: Option<&str>) -> Result<Arc<dyn PrivateKey>, KeyStoreError> {
        let mut found = self.found().await?;
        let id = &self.target.id;
        if let Some(sel) = selector {
            if uri::is_pkcs11(sel) {
                let s = Pkcs11Uri::parse(sel).map_err(|e| malformed(sel, e.to_string()))?;
                found.retain(|f| {
                    s.object
                        .as_ref()
                        .is_none_or(|o| f.label.as_ref() == Some(o))
                        && s.id.as_ref().is_none_or(|i| *i == f.ck_id)
                });
            } else if let Some(n) = sel.strip_prefix('#').and_then(|n| n.parse::<usize>().ok()) {
                found = found.into_iter().skip(n).take(1).collect();
            } else {
                found.retain(|f| f.label.as_deref() == Some(sel));
            }
        }
        if found.is_empty() {
            return Err(KeyStoreError::NotFound {
                key: id.clone(),
                detail: format!(
                    "no private key matches on token \"{}\"",
                    self.target.token.label
                ),
            });
        }
        let Some(pos) = found.iter().position(|f| f.certificate.is_some()) else {
            let f = &found[0];
            return Err(KeyStoreError::NotFound {
                key: id.clone(),
                detail: format!(
                    "private key {} has no certificate on the token (write one with the same CKA_ID: import the key's PKCS#12 onto the token, or use pkcs11-tool --write-object CERT --type cert --id …)",
                    self.object_uri(f)
                ),
            });
        };
        let f = found.swap_remove(pos);
        let key_id = self.object_uri(&f);
        Ok(Arc::new(TokenKey::new(self.target.lane.clone(), key_id, f)))
    }

    async fn import_pkcs12(
        &self,
        data: &[u8],
        password: &Secret,
        label: Option<&str>,
    ) -> Result<KeyInfo, KeyStoreError> {
        if let Protection::Locked { hint, .. } = self.protection().await {
            return Err(KeyStoreError::Locked {
                key: self.target.id.clone(),
                hint,
            });
        }
        let objects = import::objects_from_p12(&self.target.id, data, password, label)?;
        let id = self.target.id.clone();
        let (ck_id, lbl) = (objects.ck_id.clone(), objects.label.clone());
        self.target
            .lane
            .call(move |st| import::create(st, &objects, &id))
            .await??;
        let mut u = self.target.uri.clone();
        u.object = Some(lbl);
        u.id = Some(ck_id);
        let id = self.target.id.clone();
        let mut found = self
            .target
            .lane
            .call(move |st| find_keys(st, &u, &id))
            .await??;
        let f = found.pop().ok_or_else(|| KeyStoreError::Failed {
            key: self.target.id.clone(),
            detail: "the imported key is not on the token".into(),
        })?;
        Ok(KeyInfo {
            selector: self.object_uri(&f),
            label: f.label.clone(),
            kind: f.kind,
            certificate: f.certificate.clone(),
            chain: f.chain.clone(),
        })
    }
}

/// Generates a key pair on the token a `pkcs11:` URI names (label from `object=`, default
/// `smimekit`; CKA_ID from `id=`, else 16 random bytes). The token must be logged in: open
/// and unlock the store first (the lane keeps the login for the process).
pub fn generate(reference: &str, spec: KeySpec) -> Result<TokenKey, KeyStoreError> {
    let store = Pkcs11Store::open_uri(reference)?;
    let t = store.target;
    let id = t.id.clone();
    let label = t.uri.object.clone().unwrap_or_else(|| "smimekit".into());
    let want_id = t.uri.id.clone();
    let (handle, ck_id, kind, spki) = t
        .lane
        .call_blocking(move |st| key::generate_on_token(st, spec, &label, want_id, &id))??;
    let mut u = t.uri.clone();
    u.token = Some(t.token.label.clone());
    u.serial = Some(t.token.serial.clone());
    let label = t.uri.object.clone().unwrap_or_else(|| "smimekit".into());
    let key_id = u.object_uri(Some(&label), &ck_id, "private");
    Ok(TokenKey::generated(
        t.lane.clone(),
        key_id,
        Found {
            handle,
            ck_id,
            label: Some(label),
            kind,
            certificate: None,
            chain: Vec::new(),
            others: Vec::new(),
        },
        spki,
    ))
}

/// [`generate`] boxed, for the key-store factory.
pub fn generate_boxed(reference: &str, spec: KeySpec) -> Result<Box<dyn NewKey>, KeyStoreError> {
    Ok(Box::new(generate(reference, spec)?))
}

inventory::submit! {
    KeyStoreFactory {
        id: "pkcs11",
        description: "PKCS#11 tokens (smartcards, HSMs, SoftHSM2) by pkcs11: URI",
        accepts,
        open: Pkcs11Store::open,
        generate: Some(generate_boxed),
    }
}

/// Referenced by `smimekit-builtins` so that the linker keeps this crate's registration.
pub fn link() {}

/// The default module paths tried by tools, for documentation and tests.
pub fn softhsm_module() -> Option<PathBuf> {
    [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/local/lib/softhsm/libsofthsm2.so",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_pin_value() {
        assert_eq!(
            redact("pkcs11:token=t?pin-value=1234&module-path=/m.so"),
            "pkcs11:token=t?module-path=/m.so"
        );
        assert_eq!(redact("pkcs11:token=t?pin-value=1234"), "pkcs11:token=t");
        assert!(accepts("pkcs11:token=x") && accepts("PKCS11:") && !accepts("x.p12"));
    }

    /// SoftHSM never locks a PIN, so the mapping of token answers is pinned here.
    #[test]
    fn token_errors_map_to_what_the_caller_can_do() {
        use cryptoki::context::Function;
        let e = |rv| op_error("k", "signing", &CkError::Pkcs11(rv, Function::Sign));
        assert!(
            matches!(e(RvError::PinLocked), KeyStoreError::Failed { detail, .. } if detail.contains("locked"))
        );
        assert!(matches!(
            e(RvError::UserNotLoggedIn),
            KeyStoreError::Locked { .. }
        ));
        assert!(matches!(
            e(RvError::MechanismInvalid),
            KeyStoreError::Unsupported { .. }
        ));
        assert!(matches!(
            e(RvError::KeyFunctionNotPermitted),
            KeyStoreError::Unsupported { .. }
        ));
        assert!(matches!(
            e(RvError::DeviceRemoved),
            KeyStoreError::Io { .. }
        ));
        assert!(matches!(
            e(RvError::DataInvalid),
            KeyStoreError::Failed { .. }
        ));
    }
}
