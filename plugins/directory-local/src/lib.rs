//! The local directory: the default [`Directory`] backend, needing no server, kept in the
//! host's [`Store`] (SQLite by default, PostgreSQL for several servers).
//!
//! Recipients (mailboxes and external contacts), their certificates and the organisation's
//! trust chain live in the store under the directory's configured name; every write is one
//! store transaction and returns the certificates **as read back** in it, so callers compare
//! what they intended with what is stored. Merge semantics are those of the port (and of
//! `smimekit_testkit::MemoryDirectory`): `publish` adds a certificate and keeps the others
//! unless [`PublishMode::Replace`]; [`Directory::publish_removing`] drops, in the same
//! transaction, exactly the values it is given (how `--prune-expired` works: the service
//! decides which are expired at its clock). Concurrent writers, tasks or processes, queue on
//! the store's locks and lose nothing.
//!
//! **First use.** Before the store, the directory was one JSON file (`path`). When that file
//! exists, the first operation of a handle imports it into the store in one transaction,
//! recording its SHA-256, then renames it `<path>.imported` (kept for the admin). A run killed
//! between the import and the rename finds the same file recorded and only renames it; a
//! different file at `path` after an import is refused rather than silently merged.
//! `smimekit directory export`/`import` keep the reviewable JSON form
//! ([`smimekit_core::directory_file`]).
//!
//! Configuration (`[directory.NAME]`): `kind = "local"`, `path = "…"` (the JSON file to import
//! on first use; its folder also holds the default store when no `[store]` is configured),
//! optional `store = "sqlite:…|postgres://…"` (only for hosts that have no store of their own;
//! the service always uses its `[store]`), `lock_timeout_secs` (accepted for older configs:
//! writers now wait for the store's lock, see `[store]`).

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod bench;
mod json_baseline;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use smimekit_core::plugin::{DirectoryFactory, DirectoryFactoryWithStore};
use smimekit_core::store::{ImportMode, ImportSource, LazyStore, Publish, Store, StoreError};
use smimekit_core::{
    CertDer, Directory, DirectoryError, Mailbox, PublishMode, Recipient, RecipientKind,
    directory_file,
};

pub use bench::{BenchFigures, StoreBenchFigures, bench_publish_lookup, bench_store};

/// Simulated failures, for tests of the callers' read-back checks.
///
/// Debug builds (what the end-to-end tests run) read `SMIMEKIT_LOCAL_DIRECTORY_FAULT`
/// (`drop-published`); release builds never read the variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Silently lose the certificate being published (a directory that drops a value), so the
    /// read-back contradicts the publish.
    DropPublished,
}

fn fault_from_env() -> Option<Fault> {
    if !cfg!(debug_assertions) {
        return None;
    }
    match std::env::var("SMIMEKIT_LOCAL_DIRECTORY_FAULT")
        .ok()?
        .as_str()
    {
        "drop-published" => Some(Fault::DropPublished),
        _ => None,
    }
}

/// The local directory: a name in the store, and the JSON file to import on first use.
#[derive(Debug)]
pub struct LocalDirectory {
    name: String,
    path: PathBuf,
    store: Arc<LazyStore>,
    /// This handle looked for the JSON file already.
    checked: AtomicBool,
    fault: Option<Fault>,
}

/// The `[directory.NAME]` table of a local directory.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LocalConfig {
    #[allow(dead_code)]
    kind: String,
    path: PathBuf,
    #[serde(default)]
    #[allow(dead_code)]
    lock_timeout_secs: Option<u64>,
    #[serde(default)]
    store: Option<String>,
}

/// The store a host without one of its own uses: `smimekit.db` beside the JSON file.
pub fn default_store_url(path: &Path) -> String {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    format!("sqlite:{}", dir.join("smimekit.db").display())
}

pub(crate) fn store_err(e: StoreError) -> DirectoryError {
    match e {
        StoreError::NotFound(m) | StoreError::Invalid(m) => DirectoryError::Rejected(m),
        // A writer that waited too long for another's lock: as with any busy directory.
        StoreError::Conflict(m) | StoreError::Unavailable(m) => DirectoryError::Unavailable(m),
        StoreError::Corrupt(m) => DirectoryError::Corrupt(m),
        StoreError::Config(m) => DirectoryError::Config(m),
        other => DirectoryError::Other(other.to_string()),
    }
}

impl LocalDirectory {
    /// A handle on directory `name` in `store`, importing the JSON file at `path` on first
    /// use if there is one. Does no I/O.
    pub fn open(name: &str, path: impl Into<PathBuf>, store: Arc<LazyStore>) -> Self {
        Self {
            name: name.to_string(),
            path: path.into(),
            store,
            checked: AtomicBool::new(false),
            fault: fault_from_env(),
        }
    }

    fn config(name: &str, config: &str) -> Result<LocalConfig, DirectoryError> {
        let c: LocalConfig = toml::from_str(config)
            .map_err(|e| DirectoryError::Config(format!("directory {name}: {}", e.message())))?;
        if c.path.as_os_str().is_empty() {
            return Err(DirectoryError::Config(format!(
                "directory {name}: path is empty"
            )));
        }
        Ok(c)
    }

    /// Opens from the TOML text of a `[directory.NAME]` table with the host's store.
    pub fn from_config_with_store(
        name: &str,
        config: &str,
        store: Arc<LazyStore>,
    ) -> Result<Self, DirectoryError> {
        let c = Self::config(name, config)?;
        Ok(Self::open(name, c.path, store))
    }

    /// Opens from the TOML text alone (hosts without a store): the table's `store` URL, else
    /// [`default_store_url`].
    pub fn from_config(name: &str, config: &str) -> Result<Self, DirectoryError> {
        let c = Self::config(name, config)?;
        let url = c.store.unwrap_or_else(|| default_store_url(&c.path));
        Ok(Self::open(name, c.path, Arc::new(LazyStore::new(url))))
    }

    /// The JSON file imported on first use.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory's name in the store.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The store, after the first-use import of the JSON file.
    pub async fn store(&self) -> Result<Arc<dyn Store>, DirectoryError> {
        let store = self.store.get().await.map_err(store_err)?;
        if !self.checked.load(Ordering::Acquire) {
            self.import_legacy_file(store.as_ref()).await?;
            self.checked.store(true, Ordering::Release);
        }
        Ok(store)
    }

    /// Imports `path` when it exists (see the crate docs), then renames it.
    async fn import_legacy_file(&self, store: &dyn Store) -> Result<(), DirectoryError> {
        let shown = self.path.display().to_string();
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(DirectoryError::Unavailable(format!("{shown}: {e}"))),
        };
        let sha256 = hex::encode(Sha256::digest(&bytes));
        if let Some(before) = store.import_source(&self.name).await.map_err(store_err)? {
            if before.sha256 == sha256 {
                // Imported by an earlier run that stopped before the rename.
                self.rename_imported();
                return Ok(());
            }
            return Err(DirectoryError::Corrupt(format!(
                "{shown}: directory {} was already imported into the store (from {}), and this file differs; \
                 import it explicitly (directory import, which merges) or move it away",
                self.name, before.file
            )));
        }
        let data = directory_file::decode(&shown, &bytes)?;
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let source = ImportSource {
            file: shown,
            sha256,
            time,
        };
        store
            .import_directory(&self.name, &data, ImportMode::Merge, Some(&source))
            .await
            .map_err(store_err)?;
        self.rename_imported();
        Ok(())
    }

    /// `<path>.imported` (or `.imported.N` when taken). The import is recorded already, so a
    /// rename that fails (a read-only folder, another process first) only leaves the file
    /// where it is, to be renamed by a later run.
    fn rename_imported(&self) {
        for n in 0..100u32 {
            let mut target = self.path.as_os_str().to_owned();
            target.push(".imported");
            if n > 0 {
                target.push(format!(".{n}"));
            }
            let target = PathBuf::from(target);
            if target.exists() {
                continue;
            }
            let _ = std::fs::rename(&self.path, &target);
            return;
        }
    }

    async fn publish_now(
        &self,
        address: &Mailbox,
        kind: RecipientKind,
        certificate: &CertDer,
        mode: PublishMode,
        remove: &[CertDer],
    ) -> Result<Vec<CertDer>, DirectoryError> {
        let store = self.store().await?;
        let back = store
            .publish(
                &self.name,
                &Publish {
                    address,
                    kind,
                    certificate,
                    mode,
                    remove,
                },
            )
            .await
            .map_err(store_err)?;
        if self.fault == Some(Fault::DropPublished) {
            return store
                .unpublish(&self.name, address, certificate)
                .await
                .map_err(store_err);
        }
        Ok(back)
    }
}

#[async_trait]
impl Directory for LocalDirectory {
    fn name(&self) -> &str {
        &self.name
    }

    async fn lookup(&self, address: &Mailbox) -> Result<Vec<CertDer>, DirectoryError> {
        Ok(self
            .recipient(address)
            .await?
            .map(|r| r.certificates)
            .unwrap_or_default())
    }

    async fn recipients(&self) -> Result<Vec<Recipient>, DirectoryError> {
        self.store()
            .await?
            .recipients(&self.name)
            .await
            .map_err(store_err)
    }

    async fn recipient(&self, address: &Mailbox) -> Result<Option<Recipient>, DirectoryError> {
        self.store()
            .await?
            .recipient(&self.name, address)
            .await
            .map_err(store_err)
    }

    async fn publish(
        &self,
        address: &Mailbox,
        kind: RecipientKind,
        certificate: &CertDer,
        mode: PublishMode,
    ) -> Result<Vec<CertDer>, DirectoryError> {
        self.publish_now(address, kind, certificate, mode, &[])
            .await
    }

    async fn publish_removing(
        &self,
        address: &Mailbox,
        kind: RecipientKind,
        certificate: &CertDer,
        mode: PublishMode,
        remove: &[CertDer],
    ) -> Result<Vec<CertDer>, DirectoryError> {
        self.publish_now(address, kind, certificate, mode, remove)
            .await
    }

    async fn unpublish(
        &self,
        address: &Mailbox,
        certificate: &CertDer,
    ) -> Result<Vec<CertDer>, DirectoryError> {
        match self
            .store()
            .await?
            .unpublish(&self.name, address, certificate)
            .await
        {
            Err(StoreError::NotFound(_)) => Err(DirectoryError::NotFound(address.clone())),
            other => other.map_err(store_err),
        }
    }

    async fn trust_chain(&self) -> Result<Vec<CertDer>, DirectoryError> {
        self.store()
            .await?
            .trust_chain(&self.name)
            .await
            .map_err(store_err)
    }

    async fn set_trust_chain(&self, chain: &[CertDer]) -> Result<Vec<CertDer>, DirectoryError> {
        self.store()
            .await?
            .set_trust_chain(&self.name, chain)
            .await
            .map_err(store_err)
    }
}

fn open_factory(name: &str, config: &str) -> Result<Box<dyn Directory>, DirectoryError> {
    Ok(Box::new(LocalDirectory::from_config(name, config)?))
}

fn open_with_store(
    name: &str,
    config: &str,
    store: Arc<LazyStore>,
) -> Result<Box<dyn Directory>, DirectoryError> {
    Ok(Box::new(LocalDirectory::from_config_with_store(
        name, config, store,
    )?))
}

inventory::submit! {
    DirectoryFactory {
        kind: "local",
        description: "embedded local directory, kept in the store (SQLite or PostgreSQL), no server",
        open: open_factory,
    }
}

inventory::submit! {
    DirectoryFactoryWithStore {
        kind: "local",
        open: open_with_store,
    }
}

/// Referenced by `smimekit-builtins` so that the linker keeps the registration.
pub fn link() {}

#[cfg(test)]
mod tests;
