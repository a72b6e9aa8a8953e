//! [`BareSoftKey`]: a private key from a file that holds no certificate for it (`bob.key`
//! opened without `--cert`). It decrypts and nothing else; signing needs the certificate.

use std::fmt;

use async_trait::async_trait;
use openssl::pkey::{PKey, Private};
use smimekit_core::{BareKey, EngineError, KeyKind, KeyStoreError, RsaPadding, Secret};

use crate::softkey::key_kind;

/// A key without its certificate. `Debug` shows only the id and kind.
pub struct BareSoftKey {
    id: String,
    pkey: PKey<Private>,
}

impl BareSoftKey {
    pub(crate) fn new(id: String, pkey: PKey<Private>) -> Self {
        Self { id, pkey }
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

impl fmt::Debug for BareSoftKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BareSoftKey")
            .field("id", &self.id)
            .field("kind", &key_kind(&self.pkey))
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl BareKey for BareSoftKey {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> KeyKind {
        key_kind(&self.pkey)
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
