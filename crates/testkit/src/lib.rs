//! Test support shared by the crates' tests: a pinned clock, an in-memory [`Directory`], and
//! a throwaway PostgreSQL cluster ([`pg`]) for the store's tests and benchmarks.
//!
//! Nothing here is for production use: the directory keeps everything in a mutex-guarded map
//! and never persists.

pub mod pg;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use smimekit_core::{
    CertDer, Directory, DirectoryError, Mailbox, PublishMode, Recipient, RecipientKind,
};

/// A fixed point in time for certificate tests: 2026-06-01T00:00:00Z.
pub const PINNED_NOW: i64 = 1_780_272_000;

/// A clock that always returns [`PINNED_NOW`], in the shape the service builder takes.
pub fn pinned_clock() -> Arc<dyn Fn() -> i64 + Send + Sync> {
    Arc::new(|| PINNED_NOW)
}

/// An in-memory directory with the same merge semantics every backend must have.
#[derive(Debug, Default)]
pub struct MemoryDirectory {
    name: String,
    entries: Mutex<BTreeMap<String, Recipient>>,
}

impl MemoryDirectory {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            entries: Mutex::default(),
        }
    }

    fn lock(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, BTreeMap<String, Recipient>>, DirectoryError> {
        self.entries
            .lock()
            .map_err(|_| DirectoryError::Other("directory lock poisoned".into()))
    }
}

#[async_trait]
impl Directory for MemoryDirectory {
    fn name(&self) -> &str {
        &self.name
    }

    async fn lookup(&self, address: &Mailbox) -> Result<Vec<CertDer>, DirectoryError> {
        Ok(self
            .lock()?
            .get(&address.key())
            .map(|r| r.certificates.clone())
            .unwrap_or_default())
    }

    async fn recipients(&self) -> Result<Vec<Recipient>, DirectoryError> {
        Ok(self.lock()?.values().cloned().collect())
    }

    async fn publish(
        &self,
        address: &Mailbox,
        kind: RecipientKind,
        certificate: &CertDer,
        mode: PublishMode,
    ) -> Result<Vec<CertDer>, DirectoryError> {
        let mut map = self.lock()?;
        let entry = map.entry(address.key()).or_insert_with(|| Recipient {
            address: address.clone(),
            kind,
            certificates: Vec::new(),
        });
        if mode == PublishMode::Replace {
            entry.certificates.clear();
        }
        if !entry.certificates.contains(certificate) {
            entry.certificates.push(certificate.clone());
        }
        Ok(entry.certificates.clone())
    }

    async fn unpublish(
        &self,
        address: &Mailbox,
        certificate: &CertDer,
    ) -> Result<Vec<CertDer>, DirectoryError> {
        let mut map = self.lock()?;
        let entry = map
            .get_mut(&address.key())
            .ok_or_else(|| DirectoryError::NotFound(address.clone()))?;
        entry.certificates.retain(|c| c != certificate);
        Ok(entry.certificates.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(b: u8) -> CertDer {
        CertDer::new(vec![0x30, 1, b])
    }

    #[tokio::test]
    async fn publish_merges_unless_told_to_replace() {
        let d = MemoryDirectory::new("mem");
        let a = Mailbox::parse("Alice@Example.org").unwrap();
        let same = Mailbox::parse("alice@example.org").unwrap();
        d.publish(&a, RecipientKind::Mailbox, &cert(1), PublishMode::Merge)
            .await
            .unwrap();
        let after = d
            .publish(&same, RecipientKind::Mailbox, &cert(2), PublishMode::Merge)
            .await
            .unwrap();
        assert_eq!(
            after,
            vec![cert(1), cert(2)],
            "merge keeps the old certificate"
        );
        let again = d
            .publish(&a, RecipientKind::Mailbox, &cert(2), PublishMode::Merge)
            .await
            .unwrap();
        assert_eq!(again.len(), 2, "publishing twice does not duplicate");
        let replaced = d
            .publish(&a, RecipientKind::Mailbox, &cert(3), PublishMode::Replace)
            .await
            .unwrap();
        assert_eq!(replaced, vec![cert(3)]);
        assert_eq!(d.lookup(&same).await.unwrap(), vec![cert(3)]);
        assert_eq!(
            d.unpublish(&a, &cert(3)).await.unwrap(),
            Vec::<CertDer>::new()
        );
        let nobody = Mailbox::parse("nobody@example.org").unwrap();
        assert!(matches!(
            d.unpublish(&nobody, &cert(1)).await,
            Err(DirectoryError::NotFound(_))
        ));
        assert!(d.lookup(&nobody).await.unwrap().is_empty());
        assert_eq!(d.recipients().await.unwrap().len(), 1);
    }
}
