//! Certificates as opaque DER and mailbox addresses.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

/// A DER-encoded X.509 certificate. Cheap to clone; parsing is the business of the crates
/// that need the fields (`smimekit-pki`, `smimekit-message`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CertDer(Arc<[u8]>);

impl CertDer {
    pub fn new(der: impl Into<Arc<[u8]>>) -> Self {
        Self(der.into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for CertDer {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for CertDer {
    fn from(v: Vec<u8>) -> Self {
        Self::new(v)
    }
}

impl fmt::Debug for CertDer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertDer({} bytes)", self.0.len())
    }
}

/// An SMTP mailbox address (`local@domain`), kept as given and compared case-insensitively,
/// which is what every mail system in our scope does in practice.
#[derive(Clone, Eq, Serialize)]
#[serde(transparent)]
pub struct Mailbox(String);

/// Why a string is not a mailbox address.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum MailboxError {
    #[error("address {0:?} has no '@'")]
    MissingAt(String),
    #[error("address {0:?} has an empty local part or domain")]
    Empty(String),
    #[error("address {0:?} contains whitespace or control characters")]
    BadCharacter(String),
}

impl Mailbox {
    /// Parses a bare address, or the address inside `Name <addr>`.
    pub fn parse(s: &str) -> Result<Self, MailboxError> {
        let s = s.trim();
        let inner = match (s.rfind('<'), s.rfind('>')) {
            (Some(a), Some(b)) if a < b => &s[a + 1..b],
            _ => s,
        };
        let inner = inner.trim();
        let Some(at) = inner.rfind('@') else {
            return Err(MailboxError::MissingAt(inner.to_string()));
        };
        if at == 0 || at + 1 == inner.len() {
            return Err(MailboxError::Empty(inner.to_string()));
        }
        if inner.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(MailboxError::BadCharacter(inner.to_string()));
        }
        Ok(Self(inner.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The canonical comparison key: the whole address lowercased.
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl PartialEq for Mailbox {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

impl std::hash::Hash for Mailbox {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mailbox({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bare_and_named_addresses() {
        assert_eq!(
            Mailbox::parse("alice@example.com").unwrap().as_str(),
            "alice@example.com"
        );
        assert_eq!(
            Mailbox::parse("Alice <Alice@Example.com>").unwrap(),
            Mailbox::parse("alice@example.com").unwrap()
        );
        assert!(matches!(
            Mailbox::parse("alice"),
            Err(MailboxError::MissingAt(_))
        ));
        assert!(matches!(Mailbox::parse("@x"), Err(MailboxError::Empty(_))));
        assert!(matches!(
            Mailbox::parse("a b@x"),
            Err(MailboxError::BadCharacter(_))
        ));
    }
}
