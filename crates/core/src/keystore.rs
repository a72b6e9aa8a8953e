//! The key-store port: private keys that sign digests, unwrap content-encryption keys and
//! derive ECDH secrets, without ever handing out key material.
//!
//! Unlocking is a protocol, not a callback: a store (or key) that needs a password or PIN
//! reports [`Protection::Locked`] or fails with [`KeyStoreError::Locked`]; the application asks
//! the person, then calls `unlock` and tries again.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

use crate::{CertDer, RsaPadding, Secret, SignatureScheme};

/// Whether a store or key can be used now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Protection {
    Unlocked,
    /// A password or PIN is needed. `tries_left` is shown when the store reports it.
    Locked {
        hint: String,
        tries_left: Option<u32>,
    },
}

/// The kind of a private key, as far as the message layer cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum KeyKind {
    Rsa {
        bits: u32,
    },
    /// An EC key on a named curve (`curve` is the OID in dotted form's short name: `P-256`…).
    Ec {
        curve: &'static str,
    },
    Other,
}

/// What `keys list` shows for one key.
#[derive(Clone, Debug, Serialize)]
pub struct KeyInfo {
    /// The store-specific selector that opens this key again (`#0` for a p12's first key…).
    pub selector: String,
    pub label: Option<String>,
    pub kind: KeyKind,
    #[serde(skip)]
    pub certificate: Option<CertDer>,
    #[serde(skip)]
    pub chain: Vec<CertDer>,
}

/// Errors of a key store. Variants say what the caller can do next.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyStoreError {
    /// Ask for the secret, call `unlock`, then retry.
    #[error("{key} is locked: {hint}")]
    Locked { key: String, hint: String },
    /// The password or PIN was wrong.
    #[error("wrong password or PIN for {key}{}", tries_left.map(|t| format!(" ({t} tries left)")).unwrap_or_default())]
    BadSecret {
        key: String,
        tries_left: Option<u32>,
    },
    #[error("{key}: no such key: {detail}")]
    NotFound { key: String, detail: String },
    /// The stored data could not be parsed.
    #[error("{key}: malformed key store: {detail}")]
    Malformed { key: String, detail: String },
    /// The key cannot do this operation (wrong key type, mechanism missing on a token…).
    #[error("{key}: operation not supported: {detail}")]
    Unsupported { key: String, detail: String },
    /// A cryptographic operation failed (e.g. a decryption with the wrong key).
    #[error("{key}: {detail}")]
    Failed { key: String, detail: String },
    /// The store could not be reached or read.
    #[error("{key}: {detail}")]
    Io { key: String, detail: String },
}

/// What key to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeySpec {
    /// RSA with this modulus size (2048..=4096, a multiple of 8).
    Rsa(u32),
    EcP256,
    EcP384,
}

/// A key a store has just generated, before its certificate exists. It signs through the
/// [`PrivateKey`] port like any other key (a CA's root signs itself that way).
pub trait NewKey: PrivateKey {
    /// The public key as a DER SubjectPublicKeyInfo (what a certificate or CSR carries).
    fn spki_der(&self) -> Result<Vec<u8>, KeyStoreError>;

    /// Records the certificate issued for this key.
    fn set_certificate(&mut self, cert: CertDer);

    /// Writes key, certificate and chain as a PKCS#12 protected by `password` (PBES2/AES-256,
    /// or 3DES with `legacy`). Keys that cannot leave their store (tokens) return
    /// [`KeyStoreError::Unsupported`].
    fn export_pkcs12(
        &self,
        friendly_name: &str,
        certificate: &CertDer,
        chain: &[CertDer],
        password: &Secret,
        legacy: bool,
    ) -> Result<Vec<u8>, KeyStoreError>;

    /// Stores the issued certificate (and its issuers) beside the key where the key lives and
    /// returns the KEYREF that opens the key again. A token writes certificate objects under
    /// the key's CKA_ID and label; soft keys are stored by [`NewKey::export_pkcs12`] instead
    /// and return `Ok(None)` (the default).
    fn store_certificate(
        &mut self,
        _certificate: &CertDer,
        _chain: &[CertDer],
    ) -> Result<Option<String>, KeyStoreError> {
        Ok(None)
    }
}

/// A collection of keys (a PKCS#12 file, a token, a system store).
#[async_trait]
pub trait KeyStore: Debug + Send + Sync {
    /// A name for messages: the path or URI the store was opened from.
    fn id(&self) -> &str;

    /// Whether `unlock` must be called before `list`/`open`.
    async fn protection(&self) -> Protection;

    /// Supplies the store password or PIN.
    async fn unlock(&self, secret: Secret) -> Result<(), KeyStoreError>;

    /// The keys in the store, with their certificates.
    async fn list(&self) -> Result<Vec<KeyInfo>, KeyStoreError>;

    /// Opens one key; `None` selects the only (or first) key that has a certificate.
    async fn open(&self, selector: Option<&str>) -> Result<Arc<dyn PrivateKey>, KeyStoreError>;

    /// Opens one key to decrypt with. Unlike [`KeyStore::open`], a key whose certificate the
    /// store does not hold opens too, as a [`DecryptionKey::Bare`]; `None` selects the only (or
    /// first) key with a certificate, else the first key. The default opens with `open`.
    async fn open_for_decryption(
        &self,
        selector: Option<&str>,
    ) -> Result<DecryptionKey, KeyStoreError> {
        Ok(DecryptionKey::Certified(self.open(selector).await?))
    }

    /// Forgets what unlocking gave: logs out of a token (login state is per token and
    /// process, so keys opened from it stop working). Hosts that keep stores open (a
    /// long-lived service) call it when asked to close one. The default has nothing to forget:
    /// dropping the store frees what it decrypted.
    async fn close(&self) -> Result<(), KeyStoreError> {
        Ok(())
    }

    /// Puts a PKCS#12 bundle's key, certificate and chain into the store (tokens), labelled
    /// `label` (default: from the certificate). Stores that cannot take keys say Unsupported.
    async fn import_pkcs12(
        &self,
        _data: &[u8],
        _password: &Secret,
        _label: Option<&str>,
    ) -> Result<KeyInfo, KeyStoreError> {
        Err(KeyStoreError::Unsupported {
            key: self.id().to_string(),
            detail: "this key store cannot import keys".into(),
        })
    }
}

/// A private key with its certificate. Implementations keep the key where it lives.
#[async_trait]
pub trait PrivateKey: Debug + Send + Sync {
    /// The public half.
    fn certificate(&self) -> &CertDer;

    /// Other certificates that came with the key (issuers, nearest first when the store knows
    /// the order), leaf excluded.
    fn chain(&self) -> &[CertDer];

    /// Further certificates the key's store holds beside the key that may complete its
    /// certification path: a token's CA and other certificate objects, the rest of a PKCS#12's
    /// bag, the system's intermediate and root stores. In no particular order; roots and
    /// unrelated certificates may be among them, because whoever needs the chain builds the
    /// path (`sign` does, with `smimekit_pki::chain`, from these, [`PrivateKey::chain`], the
    /// directories' trust chains and `--chain` files). The default is none.
    async fn store_certificates(&self) -> Result<Vec<CertDer>, KeyStoreError> {
        Ok(Vec::new())
    }

    fn kind(&self) -> KeyKind;

    /// Signs a precomputed digest. RSA PKCS#1 v1.5 wraps it in a DigestInfo; ECDSA returns DER.
    async fn sign_digest(
        &self,
        scheme: SignatureScheme,
        digest: &[u8],
    ) -> Result<Vec<u8>, KeyStoreError>;

    /// Decrypts an RSA-encrypted content-encryption key.
    async fn decrypt_key(
        &self,
        padding: &RsaPadding,
        wrapped: &[u8],
    ) -> Result<Secret, KeyStoreError>;

    /// ECDH with a peer's public point (uncompressed SEC1), returning the shared secret Z.
    async fn ecdh(&self, peer_point: &[u8]) -> Result<Secret, KeyStoreError>;
}

/// A private key whose certificate is not known: a PEM or DER key file opened without one
/// (`open --key bob.key`). It can only decrypt. With no certificate there is no recipient
/// identifier to match, so the message layer tries it on every recipient of its algorithm
/// (RSA on key transport, EC on key agreement of the same curve), as `openssl cms -decrypt
/// -inkey` does without `-recip`.
#[async_trait]
pub trait BareKey: Debug + Send + Sync {
    /// A name for messages: the file and the key's selector.
    fn id(&self) -> &str;

    fn kind(&self) -> KeyKind;

    /// Decrypts an RSA-encrypted content-encryption key.
    async fn decrypt_key(
        &self,
        padding: &RsaPadding,
        wrapped: &[u8],
    ) -> Result<Secret, KeyStoreError>;

    /// ECDH with a peer's public point (uncompressed SEC1), returning the shared secret Z.
    async fn ecdh(&self, peer_point: &[u8]) -> Result<Secret, KeyStoreError>;
}

/// A key to decrypt with: what [`KeyStore::open_for_decryption`] returns.
#[derive(Debug, Clone)]
pub enum DecryptionKey {
    /// A key with its certificate: recipients are matched by issuer and serial number or by
    /// subject key identifier.
    Certified(Arc<dyn PrivateKey>),
    /// A key without a certificate, tried on every recipient of its algorithm and curve.
    Bare(Arc<dyn BareKey>),
}

impl DecryptionKey {
    pub fn kind(&self) -> KeyKind {
        match self {
            DecryptionKey::Certified(k) => k.kind(),
            DecryptionKey::Bare(k) => k.kind(),
        }
    }

    /// The certificate, when known.
    pub fn certificate(&self) -> Option<&CertDer> {
        match self {
            DecryptionKey::Certified(k) => Some(k.certificate()),
            DecryptionKey::Bare(_) => None,
        }
    }

    pub async fn decrypt_key(
        &self,
        padding: &RsaPadding,
        wrapped: &[u8],
    ) -> Result<Secret, KeyStoreError> {
        match self {
            DecryptionKey::Certified(k) => k.decrypt_key(padding, wrapped).await,
            DecryptionKey::Bare(k) => k.decrypt_key(padding, wrapped).await,
        }
    }

    pub async fn ecdh(&self, peer_point: &[u8]) -> Result<Secret, KeyStoreError> {
        match self {
            DecryptionKey::Certified(k) => k.ecdh(peer_point).await,
            DecryptionKey::Bare(k) => k.ecdh(peer_point).await,
        }
    }
}

impl From<Arc<dyn PrivateKey>> for DecryptionKey {
    fn from(key: Arc<dyn PrivateKey>) -> Self {
        DecryptionKey::Certified(key)
    }
}

impl From<Arc<dyn BareKey>> for DecryptionKey {
    fn from(key: Arc<dyn BareKey>) -> Self {
        DecryptionKey::Bare(key)
    }
}
