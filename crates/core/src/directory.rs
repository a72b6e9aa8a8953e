//! The directory port: where recipients' certificates are found and published.
//!
//! Backends (embedded, LDAP, Exchange Online) implement [`Directory`]. Writes have merge
//! semantics chosen by [`PublishMode`]: a directory write never drops a certificate it was
//! not told to drop.

use std::fmt::Debug;

use async_trait::async_trait;
use serde::Serialize;

use crate::{CertDer, Mailbox};

/// A mailbox of the organisation, or an external contact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecipientKind {
    Mailbox,
    Contact,
}

/// One recipient and the certificates published for it.
#[derive(Clone, Debug)]
pub struct Recipient {
    pub address: Mailbox,
    pub kind: RecipientKind,
    pub certificates: Vec<CertDer>,
}

/// How `publish` treats the certificates already there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PublishMode {
    /// Add the new certificate, keep the others.
    Merge,
    /// Keep only the new certificate.
    Replace,
}

/// Errors of a directory backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    #[error("{0}: no such recipient")]
    NotFound(Mailbox),
    #[error("{0}: recipient already exists")]
    AlreadyExists(Mailbox),
    #[error("directory rejected the value: {0}")]
    Rejected(String),
    /// Read-back shows something other than what was written.
    #[error("read-back mismatch for {address}: {detail}")]
    ReadBackMismatch { address: Mailbox, detail: String },
    #[error("directory unavailable: {0}")]
    Unavailable(String),
    #[error("directory: {0}")]
    Other(String),
}

#[async_trait]
pub trait Directory: Debug + Send + Sync {
    /// The configured name (`local`, `corp-ldap`…).
    fn name(&self) -> &str;

    /// Certificates published for an address (empty when none).
    async fn lookup(&self, address: &Mailbox) -> Result<Vec<CertDer>, DirectoryError>;

    async fn recipients(&self) -> Result<Vec<Recipient>, DirectoryError>;

    /// Publishes `certificate` for `address`, creating the recipient as `kind` if missing.
    /// Returns the certificates the directory holds afterwards, as read back.
    async fn publish(
        &self,
        address: &Mailbox,
        kind: RecipientKind,
        certificate: &CertDer,
        mode: PublishMode,
    ) -> Result<Vec<CertDer>, DirectoryError>;

    /// Removes one certificate value; returns what remains, as read back.
    async fn unpublish(
        &self,
        address: &Mailbox,
        certificate: &CertDer,
    ) -> Result<Vec<CertDer>, DirectoryError>;
}
