//! Opening key stores and keys from a KEYREF, with the locked → unlock flow: a locked store is
//! unlocked with the request's secret, else with one found in the order of [`crate::secrets`].

use std::sync::Arc;

use smimekit_core::plugin::{self, KeyStoreParams};
use smimekit_core::{
    DecryptionKey, KeyKind, KeyStore, PrivateKey, Protection, Secret, SecretSource,
};

use crate::session::StoreKey;
use crate::{ErrorKind, Service, ServiceError, certs, secrets};

/// Runs synchronous plugin work (a key store's open, a key generation, a file lock) on the
/// blocking pool, so that the async threads keep serving other tasks meanwhile.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ServiceError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ServiceError::new(ErrorKind::Internal, format!("blocking task: {e}")))
}

/// Which key to open.
#[derive(Debug, Clone, Default)]
pub struct KeyRequest {
    /// A path to a `.p12`/`.pfx`/PEM key, or a store URI.
    pub reference: String,
    /// A separate certificate file, for key files without one.
    pub certificate: Option<String>,
    /// Which key in a store with several (`#1`…).
    pub selector: Option<String>,
    /// The password or PIN, when known; else the service finds one when the store is locked.
    pub secret: Option<Secret>,
}

/// One key, as `keys list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeySummary {
    pub store: String,
    pub selector: String,
    pub label: Option<String>,
    pub kind: KeyKind,
    pub certificate: Option<certs::CertSummary>,
    pub chain: Vec<certs::CertSummary>,
}

impl Service {
    /// Opens the store a KEYREF names and, when it is locked, unlocks it with the request's
    /// secret or one found in the documented order ([`Service::secret`]). The unlocked store
    /// is kept for later calls (see [`Service::close_key_store`]); a request with its own
    /// secret opens it afresh.
    pub async fn open_key_store(
        &self,
        req: &KeyRequest,
    ) -> Result<Arc<dyn KeyStore>, ServiceError> {
        self.open_key_store_for(req, None, &[]).await
    }

    /// [`Service::open_key_store`] for someone (`purpose`: `directory exo`) whose
    /// configuration names its own sources of the secret, tried first.
    async fn open_key_store_for(
        &self,
        req: &KeyRequest,
        purpose: Option<&str>,
        sources: &[SecretSource],
    ) -> Result<Arc<dyn KeyStore>, ServiceError> {
        let reference = self.resolve_reference(&req.reference);
        let kept = StoreKey {
            reference: reference.clone(),
            certificate: req.certificate.clone(),
        };
        if req.secret.is_none()
            && let Some(store) = self.sessions.key_store(&kept)
        {
            return Ok(store);
        }
        let store: Box<dyn KeyStore> = match plugin::key_stores().find(|f| (f.accepts)(&reference))
        {
            // Opening reads and may decrypt a file, or load a PKCS#11 module and find its
            // token: synchronous work, on the blocking pool.
            Some(factory) => {
                let (open, reference, certificate) =
                    (factory.open, reference.clone(), req.certificate.clone());
                blocking(move || {
                    open(&KeyStoreParams {
                        reference: &reference,
                        certificate: certificate.as_deref(),
                    })
                })
                .await??
            }
            // Vendor plugins are asked after the built-ins.
            None => match self.plugins.key_store_for(&reference) {
                Some(lib) => Box::new(
                    smimekit_plugin_host::keystore::PluginKeyStore::open(
                        lib.clone(),
                        &reference,
                        req.certificate.as_deref(),
                    )
                    .await?,
                ),
                None => {
                    return Err(ServiceError::new(
                        ErrorKind::Invalid,
                        format!("{}: no key store handles this reference", req.reference),
                    ));
                }
            },
        };
        if let Protection::Locked { hint, tries_left } = store.protection().await {
            match &req.secret {
                Some(secret) => store.unlock(secret.clone()).await?,
                None => {
                    let tries = tries_left
                        .map(|t| format!(" ({t} tries left)"))
                        .unwrap_or_default();
                    let what = format!("{hint}{tries}");
                    let ask =
                        secrets::key_secret_request(&req.reference, Some(&what), purpose, sources)?;
                    // Secret files, and a prompt waiting for a person: off the async threads.
                    let svc = self.clone();
                    let found = blocking(move || svc.resolve_secret(&ask))
                        .await?
                        .map_err(|e| e.tries_left(tries_left))?;
                    store
                        .unlock(found.secret)
                        .await
                        .map_err(|e| secrets::wrong_secret(e, purpose, &found.from))?;
                }
            }
        }
        Ok(self.sessions.keep_key_store(kept, store))
    }

    /// Generates a key in the store that handles `reference` (a p12 path for the file store),
    /// through its plugin's generator, on the blocking pool (generating an RSA key takes
    /// seconds; a token's generator waits for its lane).
    pub async fn generate_key(
        &self,
        reference: &str,
        spec: smimekit_core::KeySpec,
    ) -> Result<Box<dyn smimekit_core::NewKey>, ServiceError> {
        let reference = self.resolve_reference(reference);
        let factory = plugin::key_stores()
            .find(|f| (f.accepts)(&reference))
            .ok_or_else(|| {
                ServiceError::new(
                    ErrorKind::Invalid,
                    format!("{reference}: no key store handles this reference"),
                )
            })?;
        let generate = factory.generate.ok_or_else(|| {
            ServiceError::new(
                ErrorKind::Unsupported,
                format!(
                    "{reference}: the {} key store cannot generate keys",
                    factory.id
                ),
            )
        })?;
        tracing::debug!(key_store = factory.id, ?spec, "generating a key");
        Ok(blocking(move || generate(&reference, spec)).await??)
    }

    /// Opens one key.
    pub async fn open_key(&self, req: &KeyRequest) -> Result<Arc<dyn PrivateKey>, ServiceError> {
        let store = self.open_key_store(req).await?;
        Ok(store.open(req.selector.as_deref()).await?)
    }

    /// Opens one key to decrypt with: with its certificate when the store holds one (or
    /// `certificate` names it), else bare, to be tried on every recipient of its type.
    pub async fn open_decryption_key(
        &self,
        req: &KeyRequest,
    ) -> Result<DecryptionKey, ServiceError> {
        let store = self.open_key_store(req).await?;
        Ok(store.open_for_decryption(req.selector.as_deref()).await?)
    }

    /// Every certificate of a key store (`windows:my?…`, a token, a .p12) with its chain,
    /// for `sst create --from-store`; duplicates are left to the writer.
    pub async fn store_certificates(
        &self,
        req: &KeyRequest,
    ) -> Result<Vec<smimekit_core::CertDer>, ServiceError> {
        let store = self.open_key_store(req).await?;
        let mut out = Vec::new();
        for k in store.list().await? {
            out.extend(k.certificate);
            out.extend(k.chain);
        }
        if out.is_empty() {
            return Err(ServiceError::new(
                ErrorKind::Key,
                format!("{}: no certificates selected", req.reference),
            ));
        }
        Ok(out)
    }

    /// Lists the keys of a store.
    pub async fn list_keys(&self, req: &KeyRequest) -> Result<Vec<KeySummary>, ServiceError> {
        let store = self.open_key_store(req).await?;
        let keys = store.list().await?;
        Ok(keys
            .into_iter()
            .map(|k| KeySummary {
                store: store.id().to_string(),
                selector: k.selector,
                label: k.label,
                kind: k.kind,
                certificate: k
                    .certificate
                    .as_ref()
                    .map(|c| certs::summarize(c, self.now())),
                chain: k
                    .chain
                    .iter()
                    .map(|c| certs::summarize(c, self.now()))
                    .collect(),
            })
            .collect())
    }
}

/// The service's [`plugin::KeyOpener`]: directory plugins open their own credentials (the
/// Exchange Online app certificate) with the service's KEYREF resolution, and find their
/// secrets (LDAP bind passwords) in the service's order.
#[derive(Debug)]
pub(crate) struct ServiceKeyOpener(pub(crate) Service);

#[async_trait::async_trait]
impl plugin::KeyOpener for ServiceKeyOpener {
    async fn open_key(
        &self,
        req: &plugin::KeyOpenRequest,
    ) -> Result<Arc<dyn PrivateKey>, smimekit_core::KeyStoreError> {
        use smimekit_core::KeyStoreError as K;
        let r = KeyRequest {
            reference: req.reference.clone(),
            certificate: req.certificate.clone(),
            ..KeyRequest::default()
        };
        let opened = async {
            let store = self
                .0
                .open_key_store_for(&r, Some(&req.purpose), &req.secret_sources)
                .await?;
            Ok::<_, ServiceError>(store.open(None).await?)
        };
        // The message already names the key and what was tried; the kind tells the plugin
        // whether a secret is missing.
        opened.await.map_err(|e| match e.kind {
            ErrorKind::Locked { .. } => K::Locked {
                key: secrets::redact(&req.reference),
                hint: e.message,
            },
            _ => K::Failed {
                key: secrets::redact(&req.reference),
                detail: e.message,
            },
        })
    }

    fn secret(
        &self,
        req: &smimekit_core::SecretRequest,
    ) -> Result<Secret, smimekit_core::SecretError> {
        smimekit_core::secret::resolve(req, &self.0.secrets).map(|r| r.secret)
    }

    fn show_sign_in(&self, challenge: &smimekit_core::SignInChallenge) -> bool {
        self.0.show_sign_in(challenge)
    }

    fn notice(&self, text: &str) {
        self.0.notice(text);
    }

    async fn state(&self, directory: &str, key: &str) -> Option<String> {
        // No store, or one that cannot be read: the plugin finds the fact out again.
        let store = self.0.store().await.ok()?;
        store.directory_state(directory, key).await.ok().flatten()
    }

    async fn set_state(&self, directory: &str, key: &str, value: &str) {
        let Ok(store) = self.0.store().await else {
            return;
        };
        if let Err(e) = store
            .set_directory_state(directory, key, value, self.0.now())
            .await
        {
            self.0.notice(&format!(
                "directory {directory}: could not remember {key} = {value} in the store: {e}"
            ));
        }
    }
}
