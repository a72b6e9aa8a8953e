//! The service's error: a stable kind for the apps, and a message naming file and cause.

use smimekit_core::{DirectoryError, KeyStoreError};
use smimekit_message::MessageError;

/// What kind of failure, for the app to map once (the CLI maps these to exit codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request itself is wrong (bad option value, missing argument).
    Usage,
    /// The input is not what it claims to be (broken MIME, CMS, certificate…).
    Malformed,
    /// A key needs a password or PIN: ask, then call again with the secret.
    Locked,
    /// Key, password or recipient problem.
    Key,
    /// Reading or writing a file failed.
    Io,
    /// An algorithm or feature we do not implement.
    Unsupported,
}

/// A failure, with a message that names the file and the cause.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ServiceError {
    pub kind: ErrorKind,
    pub message: String,
    /// Set when a directory was busy (throttling, or its answer was lost): the request may
    /// succeed later, after the directory's Retry-After when it gave one. Bulk runs put such
    /// items back in their queue.
    pub(crate) busy: Option<Busy>,
}

/// A directory's "not now" ([`smimekit_core::DirectoryError::Busy`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Busy {
    pub retry_after: Option<std::time::Duration>,
}

impl ServiceError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            busy: None,
        }
    }

    /// Prefixes the message with where it happened (a file name, usually).
    pub fn context(mut self, what: impl std::fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }

    pub(crate) fn io(path: &std::path::Path, e: std::io::Error) -> Self {
        Self::new(ErrorKind::Io, format!("{}: {e}", path.display()))
    }
}

/// The kind of a key-store failure.
fn key_error_kind(e: &KeyStoreError) -> ErrorKind {
    match e {
        KeyStoreError::Locked { .. } => ErrorKind::Locked,
        KeyStoreError::Malformed { .. } => ErrorKind::Malformed,
        KeyStoreError::Io { .. } => ErrorKind::Io,
        _ => ErrorKind::Key,
    }
}

impl From<KeyStoreError> for ServiceError {
    fn from(e: KeyStoreError) -> Self {
        Self::new(key_error_kind(&e), e.to_string())
    }
}

impl From<MessageError> for ServiceError {
    fn from(e: MessageError) -> Self {
        let kind = match &e {
            MessageError::Mime(_)
            | MessageError::Asn1(_)
            | MessageError::Malformed(_)
            | MessageError::TooDeep(_) => ErrorKind::Malformed,
            MessageError::Unsupported(_) => ErrorKind::Unsupported,
            MessageError::Key(k) => key_error_kind(k),
            _ => ErrorKind::Key,
        };
        Self::new(kind, e.to_string())
    }
}

impl From<smimekit_pki::PkiError> for ServiceError {
    fn from(e: smimekit_pki::PkiError) -> Self {
        Self::new(ErrorKind::Malformed, e.to_string())
    }
}

impl From<DirectoryError> for ServiceError {
    fn from(e: DirectoryError) -> Self {
        let kind = match &e {
            DirectoryError::Config(_) => ErrorKind::Usage,
            DirectoryError::Corrupt(_) => ErrorKind::Malformed,
            DirectoryError::Unsupported(_) => ErrorKind::Unsupported,
            DirectoryError::Unavailable(_) | DirectoryError::Busy { .. } => ErrorKind::Io,
            // A recipient problem: missing, duplicate, rejected value, read-back mismatch.
            _ => ErrorKind::Key,
        };
        let busy = match &e {
            DirectoryError::Busy { retry_after, .. } => Some(Busy {
                retry_after: *retry_after,
            }),
            _ => None,
        };
        Self {
            busy,
            ..Self::new(kind, e.to_string())
        }
    }
}
