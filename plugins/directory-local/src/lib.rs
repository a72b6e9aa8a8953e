//! The embedded local directory: the default [`Directory`] backend, needing no server.
//!
//! One JSON file holds the recipients (mailboxes and external contacts), their certificates
//! (DER) and the organisation's trust chain. See [`store`](self) for the layout and the
//! atomic write protocol: every write takes an exclusive lock on `<file>.lock`, re-reads the
//! current file, applies the change, writes a temporary file, flushes it, renames it over the
//! old one and flushes the folder; then the file is **read back from disk** and that is what
//! the write returns, so callers compare what they intended with what is actually stored.
//!
//! Merge semantics are those of the port (and of `smimekit_testkit::MemoryDirectory`):
//! `publish` adds a certificate and keeps the others unless [`PublishMode::Replace`];
//! [`Directory::publish_removing`] drops, in the same atomic write, exactly the values it is
//! given (how `--prune-expired` works: the service decides which are expired at its clock).
//!
//! Reads are cached per handle and re-read only when the file was replaced, so a long-lived
//! handle sees other writers' changes and lookups cost a `stat`. Bulk imports use
//! [`LocalDirectory::publish_batch`] (one write for any number of certificates): a single
//! file is rewritten whole on every write, so one-at-a-time publishing of thousands of
//! recipients would be quadratic.
//!
//! Configuration (`[directory.NAME]` in smimekit's config): `kind = "local"`, `path = "…"`
//! (the JSON file), optional `lock_timeout_secs` (default 30).

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod bench;
mod store;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use smimekit_core::plugin::DirectoryFactory;
use smimekit_core::{
    CertDer, Directory, DirectoryError, Mailbox, PublishMode, Recipient, RecipientKind,
};

pub use bench::{BenchFigures, bench_publish_lookup};

use store::{Data, FileIdent, WriteFault};

/// Simulated failures, for tests of atomicity and of the callers' read-back checks.
///
/// Unit tests set them directly; debug builds (what the end-to-end tests run) also read
/// `SMIMEKIT_LOCAL_DIRECTORY_FAULT` (`crash-before-rename` or `drop-published`). Release
/// builds never read the variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Write and flush the temporary file, then fail before the rename (a killed writer).
    CrashBeforeRename,
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
        "crash-before-rename" => Some(Fault::CrashBeforeRename),
        "drop-published" => Some(Fault::DropPublished),
        _ => None,
    }
}

/// The local directory: one JSON file.
#[derive(Debug)]
pub struct LocalDirectory {
    name: String,
    path: PathBuf,
    lock_timeout: Duration,
    cache: Mutex<Option<(FileIdent, Arc<Data>)>>,
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
    lock_timeout_secs: Option<u64>,
}

impl LocalDirectory {
    /// A handle on the directory file at `path`. Does no I/O: a missing file is an empty
    /// directory, created by the first write (with its folder).
    pub fn open(name: &str, path: impl Into<PathBuf>) -> Self {
        Self {
            name: name.to_string(),
            path: path.into(),
            lock_timeout: Duration::from_secs(30),
            cache: Mutex::new(None),
            fault: fault_from_env(),
        }
    }

    /// Opens from the TOML text of a `[directory.NAME]` table (the plugin factory).
    pub fn from_config(name: &str, config: &str) -> Result<Self, DirectoryError> {
        let c: LocalConfig = toml::from_str(config)
            .map_err(|e| DirectoryError::Config(format!("directory {name}: {}", e.message())))?;
        if c.path.as_os_str().is_empty() {
            return Err(DirectoryError::Config(format!(
                "directory {name}: path is empty"
            )));
        }
        let mut d = Self::open(name, c.path);
        if let Some(t) = c.lock_timeout_secs {
            d.lock_timeout = Duration::from_secs(t);
        }
        Ok(d)
    }

    /// How long a writer waits for another writer's lock.
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// The directory file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn cached(&self) -> Option<(FileIdent, Arc<Data>)> {
        self.cache.lock().ok().and_then(|c| c.clone())
    }

    fn remember(&self, entry: Option<(FileIdent, Arc<Data>)>) {
        if let Ok(mut c) = self.cache.lock() {
            *c = entry;
        }
    }

    /// The current content: the cached copy while the file is unchanged, else read afresh.
    fn snapshot(&self) -> Result<Arc<Data>, DirectoryError> {
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.remember(None);
                return Ok(Arc::new(Data::default()));
            }
            Err(e) => {
                return Err(DirectoryError::Unavailable(format!(
                    "{}: {e}",
                    self.path.display()
                )));
            }
        };
        if let Some((ident, data)) = self.cached()
            && ident == FileIdent::of(&meta)
        {
            return Ok(data);
        }
        match store::read(&self.path)? {
            Some((ident, data)) => {
                let data = Arc::new(data);
                self.remember(Some((ident, data.clone())));
                Ok(data)
            }
            None => Ok(Arc::new(Data::default())),
        }
    }

    /// One read-modify-write under the writer lock; returns the closure's value and the
    /// content as read back from disk after the write.
    fn write<R>(
        &self,
        change: impl FnOnce(&mut Data) -> Result<R, DirectoryError>,
    ) -> Result<(R, Arc<Data>), DirectoryError> {
        let _lock = store::lock(&self.path, self.lock_timeout)?;
        let mut data = (*self.snapshot()?).clone();
        let value = change(&mut data)?;
        let bytes = store::encode(&self.path, &data)?;
        let fault =
            (self.fault == Some(Fault::CrashBeforeRename)).then_some(WriteFault::BeforeRename);
        store::replace(&self.path, &bytes, fault)?;
        // Read back from disk, not from memory: this is what the next reader will see.
        self.remember(None);
        let back = self.snapshot()?;
        Ok((value, back))
    }

    /// The recipient at `address`, if any (no await: for batch tools and benchmarks).
    pub fn find(&self, address: &Mailbox) -> Result<Option<Recipient>, DirectoryError> {
        Ok(self.snapshot()?.recipients.get(&address.key()).cloned())
    }

    /// Number of recipients.
    pub fn len(&self) -> Result<usize, DirectoryError> {
        Ok(self.snapshot()?.recipients.len())
    }

    /// Whether the directory has no recipient.
    pub fn is_empty(&self) -> Result<bool, DirectoryError> {
        Ok(self.len()? == 0)
    }

    /// Publishes many certificates in one atomic write (bulk import). Each item follows
    /// `publish` semantics with `mode`; with [`PublishMode::Replace`] a recipient listed
    /// several times keeps all of this batch's certificates. Returns the number of recipients
    /// afterwards, as read back.
    pub fn publish_batch(
        &self,
        items: &[(Mailbox, RecipientKind, CertDer)],
        mode: PublishMode,
    ) -> Result<usize, DirectoryError> {
        let (_, back) = self.write(|d| {
            let mut replaced = std::collections::HashSet::new();
            for (address, kind, cert) in items {
                let key = address.key();
                let clear = mode == PublishMode::Replace && replaced.insert(key.clone());
                apply_publish(d, key, address, *kind, cert, clear, &[]);
            }
            Ok(())
        })?;
        Ok(back.recipients.len())
    }

    fn publish_now(
        &self,
        address: &Mailbox,
        kind: RecipientKind,
        certificate: &CertDer,
        mode: PublishMode,
        remove: &[CertDer],
    ) -> Result<Vec<CertDer>, DirectoryError> {
        let key = address.key();
        let drop_it = self.fault == Some(Fault::DropPublished);
        let (_, back) = self.write(|d| {
            apply_publish(
                d,
                key.clone(),
                address,
                kind,
                certificate,
                mode == PublishMode::Replace,
                remove,
            );
            if drop_it && let Some(r) = d.recipients.get_mut(&key) {
                r.certificates.retain(|c| c != certificate);
            }
            Ok(())
        })?;
        Ok(certificates_of(&back, &key))
    }
}

fn certificates_of(data: &Data, key: &str) -> Vec<CertDer> {
    data.recipients
        .get(key)
        .map(|r| r.certificates.clone())
        .unwrap_or_default()
}

/// The one merge rule: create the recipient as `kind` if missing (an existing recipient keeps
/// its kind), clear when replacing, drop the listed values, add the certificate once.
fn apply_publish(
    d: &mut Data,
    key: String,
    address: &Mailbox,
    kind: RecipientKind,
    cert: &CertDer,
    clear: bool,
    remove: &[CertDer],
) {
    let entry = d.recipients.entry(key).or_insert_with(|| Recipient {
        address: address.clone(),
        kind,
        certificates: Vec::new(),
    });
    if clear {
        entry.certificates.clear();
    }
    entry
        .certificates
        .retain(|c| c == cert || !remove.contains(c));
    if !entry.certificates.contains(cert) {
        entry.certificates.push(cert.clone());
    }
}

#[async_trait]
impl Directory for LocalDirectory {
    fn name(&self) -> &str {
        &self.name
    }

    async fn lookup(&self, address: &Mailbox) -> Result<Vec<CertDer>, DirectoryError> {
        Ok(certificates_of(&*self.snapshot()?, &address.key()))
    }

    async fn recipients(&self) -> Result<Vec<Recipient>, DirectoryError> {
        Ok(self.snapshot()?.recipients.values().cloned().collect())
    }

    async fn recipient(&self, address: &Mailbox) -> Result<Option<Recipient>, DirectoryError> {
        self.find(address)
    }

    async fn publish(
        &self,
        address: &Mailbox,
        kind: RecipientKind,
        certificate: &CertDer,
        mode: PublishMode,
    ) -> Result<Vec<CertDer>, DirectoryError> {
        self.publish_now(address, kind, certificate, mode, &[])
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
    }

    async fn unpublish(
        &self,
        address: &Mailbox,
        certificate: &CertDer,
    ) -> Result<Vec<CertDer>, DirectoryError> {
        let key = address.key();
        let (_, back) = self.write(|d| {
            let entry = d
                .recipients
                .get_mut(&key)
                .ok_or_else(|| DirectoryError::NotFound(address.clone()))?;
            entry.certificates.retain(|c| c != certificate);
            Ok(())
        })?;
        Ok(certificates_of(&back, &key))
    }

    async fn trust_chain(&self) -> Result<Vec<CertDer>, DirectoryError> {
        Ok(self.snapshot()?.trust_chain.clone())
    }

    async fn set_trust_chain(&self, chain: &[CertDer]) -> Result<Vec<CertDer>, DirectoryError> {
        let (_, back) = self.write(|d| {
            d.trust_chain.clear();
            for c in chain {
                if !d.trust_chain.contains(c) {
                    d.trust_chain.push(c.clone());
                }
            }
            Ok(())
        })?;
        Ok(back.trust_chain.clone())
    }
}

fn open_factory(name: &str, config: &str) -> Result<Box<dyn Directory>, DirectoryError> {
    Ok(Box::new(LocalDirectory::from_config(name, config)?))
}

inventory::submit! {
    DirectoryFactory {
        kind: "local",
        description: "embedded local directory: one JSON file, atomic writes, no server",
        open: open_factory,
    }
}

/// Referenced by `smimekit-builtins` so that the linker keeps the registration.
pub fn link() {}

#[cfg(test)]
mod tests;
