//! The service's error: a kind a frontend acts on, a message naming file, field and cause, the
//! request field concerned, and the library error underneath.
//!
//! Each frontend maps the kind once: the CLI to its documented exit codes, a web server to an
//! HTTP status (`NotFound` 404, `Conflict` 409, `Unavailable` 503, `Locked` a prompt for the
//! secret, `PermissionDenied` 403, `Invalid` and `Malformed` 400…), a TUI to a message or a PIN
//! dialog. The message is complete for a person: it already says what the library error says,
//! so a renderer prints it and stops there; [`std::error::Error::source`] keeps the library
//! error for code that inspects it (logs, tests). Messages name no frontend's options: when a
//! request field is wrong, or would let the request through (`force`, `renew`), the error names
//! the field ([`ServiceError::field`]) and the frontend adds its own hint (the CLI its flag).

use smimekit_core::store::StoreError;
use smimekit_core::{DirectoryError, KeyStoreError};
use smimekit_message::MessageError;

/// What kind of failure, for a frontend to map once.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request itself is wrong: a bad or missing value, fields that exclude each other, a
    /// name that is not configured.
    Invalid,
    /// The input is not what it claims to be (broken MIME, CMS, certificate, stored data…).
    Malformed,
    /// What the request names does not exist: a recipient, a published certificate, a key.
    NotFound,
    /// The request collides with the state it found: another run holds the lock, the data
    /// changed meanwhile, the name is taken. Read again, then retry.
    Conflict,
    /// A saved plan no longer matches what it was made from: a directory it read changed
    /// since. Plan again.
    Stale,
    /// A directory or the store cannot be reached, or is throttling: retry later.
    Unavailable,
    /// A key needs a password or PIN and none was found: ask for it, then call again with it
    /// (a request's `secret`).
    Locked {
        /// What is locked, ready to use as the question (`PIN of token "alice" for pkcs11:…`).
        object: String,
        /// Where the secret was looked for, or the store's own word for it.
        hint: String,
        /// PIN tries left before the token locks itself, when it says.
        tries_left: Option<u32>,
    },
    /// The operating system or a backend refused access.
    PermissionDenied,
    /// Another key, password or recipient problem: a wrong password, a key that cannot do
    /// this, a value the directory refuses, a read-back that contradicts the write.
    Key,
    /// Reading or writing a file failed.
    Io,
    /// An algorithm or feature we do not implement.
    Unsupported,
    /// A fault of smimekit's own (a task that panicked, a report that cannot be serialised).
    Internal,
}

impl ErrorKind {
    /// Every kind's [`ErrorKind::name`], so that a frontend's table can be checked complete.
    pub const NAMES: &'static [&'static str] = &[
        "invalid",
        "malformed",
        "not-found",
        "conflict",
        "stale",
        "unavailable",
        "locked",
        "permission-denied",
        "key",
        "io",
        "unsupported",
        "internal",
    ];

    /// The kind's stable name, as JSON tags it (`not-found`, `locked`…).
    pub fn name(&self) -> &'static str {
        match self {
            ErrorKind::Invalid => "invalid",
            ErrorKind::Malformed => "malformed",
            ErrorKind::NotFound => "not-found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Stale => "stale",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Locked { .. } => "locked",
            ErrorKind::PermissionDenied => "permission-denied",
            ErrorKind::Key => "key",
            ErrorKind::Io => "io",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Internal => "internal",
        }
    }
}

/// A failure, with a message that names the file and the cause.
#[derive(Debug)]
pub struct ServiceError {
    pub kind: ErrorKind,
    /// For a person, complete: it includes what the source error says.
    pub message: String,
    /// The request field this error is about, by its name in the request struct: the value
    /// that is wrong (`days`, `pss`), or the switch that would let the request through
    /// (`force`, `renew`). A form can point at it; the CLI adds its flag.
    pub field: Option<&'static str>,
    /// What only some errors have, boxed to keep `Result<_, ServiceError>` small.
    detail: Option<Box<Detail>>,
}

#[derive(Debug, Default)]
struct Detail {
    /// The library error this one was made from.
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    /// Set when a directory was busy (throttling, or its answer was lost): the request may
    /// succeed later, after the directory's Retry-After when it gave one. Bulk runs put such
    /// items back in their queue.
    busy: Option<Busy>,
}

/// A directory's "not now" ([`smimekit_core::DirectoryError::Busy`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Busy {
    pub retry_after: Option<std::time::Duration>,
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ServiceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.detail
            .as_ref()
            .and_then(|d| d.source.as_deref())
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl ServiceError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            field: None,
            detail: None,
        }
    }

    /// Keeps the library error this one was made from (its text is already in the message).
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.detail.get_or_insert_default().source = Some(Box::new(source));
        self
    }

    /// The directory's "not now", when it was busy: see [`Busy`].
    pub(crate) fn busy(&self) -> Option<Busy> {
        self.detail.as_ref().and_then(|d| d.busy)
    }

    /// Names the request field the error is about (see [`ServiceError::field`]).
    pub fn for_field(mut self, field: &'static str) -> Self {
        self.field = Some(field);
        self
    }

    /// Prefixes the message with where it happened (a file name, usually).
    pub fn context(mut self, what: impl std::fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }

    /// A file that cannot be read or written, named.
    pub(crate) fn io(path: &std::path::Path, e: std::io::Error) -> Self {
        let kind = match e.kind() {
            std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
            _ => ErrorKind::Io,
        };
        Self::new(kind, format!("{}: {e}", path.display())).with_source(e)
    }

    /// Sets the PIN tries left of a [`ErrorKind::Locked`] error (other kinds are unchanged).
    pub(crate) fn tries_left(mut self, tries: Option<u32>) -> Self {
        if let ErrorKind::Locked { tries_left, .. } = &mut self.kind {
            *tries_left = tries.or(*tries_left);
        }
        self
    }
}

/// The kind of a key-store failure.
fn key_error_kind(e: &KeyStoreError) -> ErrorKind {
    match e {
        KeyStoreError::Locked { key, hint } => ErrorKind::Locked {
            object: key.clone(),
            hint: hint.clone(),
            tries_left: None,
        },
        KeyStoreError::NotFound { .. } => ErrorKind::NotFound,
        KeyStoreError::Malformed { .. } => ErrorKind::Malformed,
        KeyStoreError::Io { .. } => ErrorKind::Io,
        // A wrong secret, a key that cannot do this (exit 4 in the CLI, as ever), a failure.
        _ => ErrorKind::Key,
    }
}

impl From<KeyStoreError> for ServiceError {
    fn from(e: KeyStoreError) -> Self {
        Self::new(key_error_kind(&e), e.to_string()).with_source(e)
    }
}

impl From<MessageError> for ServiceError {
    fn from(e: MessageError) -> Self {
        let kind = match &e {
            MessageError::Mime(_)
            | MessageError::Asn1(_)
            | MessageError::Malformed(_)
            | MessageError::TooDeep(_)
            | MessageError::Limit(_) => ErrorKind::Malformed,
            MessageError::Unsupported(_) => ErrorKind::Unsupported,
            MessageError::Key(k) => key_error_kind(k),
            _ => ErrorKind::Key,
        };
        let needs_key = matches!(e, MessageError::NeedsKey);
        let err = Self::new(kind, e.to_string()).with_source(e);
        if needs_key {
            err.for_field("keys")
        } else {
            err
        }
    }
}

impl From<smimekit_pki::PkiError> for ServiceError {
    fn from(e: smimekit_pki::PkiError) -> Self {
        Self::new(ErrorKind::Malformed, e.to_string()).with_source(e)
    }
}

impl From<DirectoryError> for ServiceError {
    fn from(e: DirectoryError) -> Self {
        let kind = match &e {
            DirectoryError::Config(_) => ErrorKind::Invalid,
            DirectoryError::Corrupt(_) => ErrorKind::Malformed,
            DirectoryError::Unsupported(_) => ErrorKind::Unsupported,
            DirectoryError::Unavailable(_) | DirectoryError::Busy { .. } => ErrorKind::Unavailable,
            DirectoryError::NotFound(_) => ErrorKind::NotFound,
            DirectoryError::AlreadyExists(_) => ErrorKind::Conflict,
            // A recipient problem: a rejected value, a read-back mismatch.
            _ => ErrorKind::Key,
        };
        let busy = match &e {
            DirectoryError::Busy { retry_after, .. } => Some(Busy {
                retry_after: *retry_after,
            }),
            _ => None,
        };
        let mut err = Self::new(kind, e.to_string()).with_source(e);
        err.detail.get_or_insert_default().busy = busy;
        err
    }
}

impl From<StoreError> for ServiceError {
    /// The store's error, prefixed `store: `.
    fn from(e: StoreError) -> Self {
        let kind = match &e {
            StoreError::NotFound(_) => ErrorKind::NotFound,
            StoreError::Conflict(_) => ErrorKind::Conflict,
            StoreError::Unavailable(_) => ErrorKind::Unavailable,
            StoreError::Corrupt(_) => ErrorKind::Malformed,
            StoreError::Config(_) | StoreError::Invalid(_) => ErrorKind::Invalid,
            _ => ErrorKind::Internal,
        };
        Self::new(kind, format!("store: {e}")).with_source(e)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn names_are_the_json_tags() {
        let every = [
            ErrorKind::Invalid,
            ErrorKind::Malformed,
            ErrorKind::NotFound,
            ErrorKind::Conflict,
            ErrorKind::Stale,
            ErrorKind::Unavailable,
            ErrorKind::Locked {
                object: "PIN of token \"t\"".into(),
                hint: "not found in SMIMEKIT_PIN".into(),
                tries_left: Some(2),
            },
            ErrorKind::PermissionDenied,
            ErrorKind::Key,
            ErrorKind::Io,
            ErrorKind::Unsupported,
            ErrorKind::Internal,
        ];
        let names: Vec<&str> = every.iter().map(ErrorKind::name).collect();
        assert_eq!(names, ErrorKind::NAMES);
        for k in &every {
            let json = serde_json::to_value(k).unwrap();
            assert_eq!(json["kind"], k.name(), "{json}");
        }
        let locked = serde_json::to_value(&every[6]).unwrap();
        assert_eq!(locked["tries_left"], 2);
        assert_eq!(locked["object"], "PIN of token \"t\"");
    }

    /// Through the service: a key whose password no source has comes back `Locked`, naming
    /// the key and every source tried, for a frontend to ask and call again.
    #[tokio::test]
    async fn a_key_without_its_password_is_locked_with_the_question() {
        use crate::{CaInitRequest, CaKeyType, KeyRequest, Secret, Service};
        let svc = Service::builder()
            .clock(smimekit_testkit::pinned_clock())
            .password_file_name("the password file")
            .build()
            .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ca");
        svc.ca_init(&CaInitRequest {
            dir: dir.clone(),
            name: "Locked".into(),
            key_type: CaKeyType::P256,
            secret: Secret::from("pw"),
            crl_url: None,
        })
        .await
        .unwrap();
        let key = dir.join("issuing.p12").display().to_string();
        let e = svc
            .open_key(&KeyRequest {
                reference: key.clone(),
                ..KeyRequest::default()
            })
            .await
            .unwrap_err();
        if std::env::var_os(smimekit_core::secret::PASSWORD_VAR).is_some() {
            // The environment answers (with a wrong password): a key error, not a question.
            assert_eq!(e.kind, ErrorKind::Key, "{e}");
            return;
        }
        let ErrorKind::Locked {
            object,
            hint,
            tries_left,
        } = &e.kind
        else {
            panic!("{e:?}");
        };
        assert!(object.contains(&key), "{object}");
        assert_eq!(hint, "not found in the password file, SMIMEKIT_PASSWORD");
        assert_eq!(*tries_left, None);
        assert!(e.message.starts_with(object.as_str()), "{e}");
    }

    #[test]
    fn library_errors_keep_their_kind_and_source() {
        let e = ServiceError::from(DirectoryError::NotFound(
            smimekit_core::Mailbox::parse("a@example.org").unwrap(),
        ));
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert_eq!(e.message, "a@example.org: no such recipient");
        let source = e.source().unwrap();
        assert!(source.downcast_ref::<DirectoryError>().is_some());

        let e = ServiceError::from(DirectoryError::Busy {
            detail: "429".into(),
            retry_after: None,
        });
        assert_eq!(e.kind, ErrorKind::Unavailable);
        assert!(e.busy().is_some());
        assert_eq!(
            ServiceError::from(DirectoryError::AlreadyExists(
                smimekit_core::Mailbox::parse("a@example.org").unwrap()
            ))
            .kind,
            ErrorKind::Conflict
        );

        let e = ServiceError::from(KeyStoreError::Locked {
            key: "alice.p12".into(),
            hint: "PKCS#12 password".into(),
        })
        .tries_left(Some(3));
        assert_eq!(
            e.kind,
            ErrorKind::Locked {
                object: "alice.p12".into(),
                hint: "PKCS#12 password".into(),
                tries_left: Some(3)
            }
        );
        let e = ServiceError::from(StoreError::Conflict("database is locked".into()));
        assert_eq!(e.kind, ErrorKind::Conflict);
        assert_eq!(e.to_string(), "store: database is locked");
        let e = ServiceError::from(MessageError::NeedsKey);
        assert_eq!((e.kind, e.field), (ErrorKind::Key, Some("keys")));
        let e = ServiceError::io(
            std::path::Path::new("x.pem"),
            std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        );
        assert_eq!(e.kind, ErrorKind::PermissionDenied);
        assert!(e.message.starts_with("x.pem: "), "{e}");
    }
}
