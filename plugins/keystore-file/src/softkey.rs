//! [`SoftKey`]: an OpenSSL private key held in memory, with its certificate and chain.

use std::fmt;

use async_trait::async_trait;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, PKeyRef, Private};
use smimekit_core::{
    CertDer, EngineError, KeyKind, KeyStoreError, PrivateKey, RsaPadding, Secret, SignatureScheme,
};

/// A private key loaded from a file. The key material never leaves this value: operations
/// run through `smimekit-engine-openssl`, and `Debug` shows only the id and kind.
pub struct SoftKey {
    id: String,
    label: Option<String>,
    pkey: PKey<Private>,
    certificate: CertDer,
    chain: Vec<CertDer>,
    /// Every other certificate of the file the key came from (the PKCS#12's bag).
    bag: Vec<CertDer>,
}

impl SoftKey {
    pub(crate) fn new(
        id: String,
        label: Option<String>,
        pkey: PKey<Private>,
        certificate: CertDer,
        chain: Vec<CertDer>,
    ) -> Self {
        Self {
            id,
            label,
            pkey,
            certificate,
            chain,
            bag: Vec::new(),
        }
    }

    /// Records the other certificates of the key's file, for
    /// [`PrivateKey::store_certificates`].
    pub(crate) fn with_bag(mut self, bag: Vec<CertDer>) -> Self {
        self.bag = bag;
        self
    }

    /// `FILE#N`: the store path and the key's selector.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The friendly name from the file, if any.
    pub fn label(&self) -> Option<&str> {
        self.label.as_deref()
    }

    pub(crate) fn pkey(&self) -> &PKeyRef<Private> {
        &self.pkey
    }

    /// Records the certificate issued for a freshly generated key.
    pub(crate) fn set_certificate_inner(&mut self, cert: CertDer) {
        self.certificate = cert;
    }

    fn engine_error(&self, e: EngineError) -> KeyStoreError {
        match e {
            EngineError::Unsupported(detail) => KeyStoreError::Unsupported {
                key: self.id.clone(),
                detail,
            },
            other => KeyStoreError::Failed {
                key: self.id.clone(),
                detail: other.to_string(),
            },
        }
    }
}

/// The [`KeyKind`] of an OpenSSL key.
pub(crate) fn key_kind(pkey: &PKeyRef<Private>) -> KeyKind {
    match pkey.id() {
        Id::RSA | Id::RSA_PSS => KeyKind::Rsa { bits: pkey.bits() },
        Id::EC => {
            let curve = pkey
                .ec_key()
                .ok()
                .and_then(|ec| ec.group().curve_name())
                .and_then(|nid| match nid {
                    Nid::X9_62_PRIME256V1 => Some("P-256"),
                    Nid::SECP384R1 => Some("P-384"),
                    Nid::SECP521R1 => Some("P-521"),
                    _ => None,
                });
            curve.map_or(KeyKind::Other, |curve| KeyKind::Ec { curve })
        }
        _ => KeyKind::Other,
    }
}

impl fmt::Debug for SoftKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SoftKey")
            .field("id", &self.id)
            .field("label", &self.label)
            .field("kind", &key_kind(&self.pkey))
            .field("certificate", &self.certificate)
            .field("chain", &self.chain.len())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl PrivateKey for SoftKey {
    fn certificate(&self) -> &CertDer {
        &self.certificate
    }

    fn chain(&self) -> &[CertDer] {
        &self.chain
    }

    /// The rest of the file's certificates (a PKCS#12's bag), those of other keys included.
    async fn store_certificates(&self) -> Result<Vec<CertDer>, KeyStoreError> {
        Ok(self.bag.clone())
    }

    fn kind(&self) -> KeyKind {
        key_kind(&self.pkey)
    }

    async fn sign_digest(
        &self,
        scheme: SignatureScheme,
        digest: &[u8],
    ) -> Result<Vec<u8>, KeyStoreError> {
        smimekit_engine_openssl::sign_digest_with(&self.pkey, scheme, digest)
            .map_err(|e| self.engine_error(e))
    }

    async fn decrypt_key(
        &self,
        padding: &RsaPadding,
        wrapped: &[u8],
    ) -> Result<Secret, KeyStoreError> {
        smimekit_engine_openssl::rsa_decrypt_with(&self.pkey, padding, wrapped)
            .map_err(|e| self.engine_error(e))
    }

    async fn ecdh(&self, peer_point: &[u8]) -> Result<Secret, KeyStoreError> {
        smimekit_engine_openssl::ecdh_with(&self.pkey, peer_point).map_err(|e| self.engine_error(e))
    }
}
