//! Errors of the message layer: input that cannot be processed at all.

use smimekit_core::{EngineError, KeyStoreError};

use crate::asn1::Asn1Error;
use crate::mime::MimeError;

/// Could not process the message. A signature that does not verify is *not* an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// The MIME structure is broken.
    #[error("malformed MIME: {0}")]
    Mime(#[from] MimeError),
    /// The CMS structure is broken.
    #[error("malformed CMS: {0}")]
    Asn1(#[from] Asn1Error),
    #[error("malformed CMS: {0}")]
    Malformed(String),
    /// An algorithm we do not implement.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// None of the given keys decrypts this message. One error for every cause (no key of
    /// the right type, a wrong key, a failed unwrap, content that does not decrypt), so that
    /// it tells an attacker nothing about which step failed.
    #[error(
        "no key for any recipient of this message (recipients: {recipients}), or the message is damaged"
    )]
    NoRecipientKey { recipients: String },
    /// The message is encrypted and no key was given.
    #[error("the message is encrypted and no key was given")]
    NeedsKey,
    /// A recipient certificate cannot be used for encryption.
    #[error("recipient certificate {subject}: {detail}")]
    BadRecipient { subject: String, detail: String },
    /// Decryption failed with a key that matched the recipient (wrong key or tampered data).
    #[error("decryption failed: {0}")]
    DecryptFailed(String),
    #[error(transparent)]
    Key(#[from] KeyStoreError),
    #[error("crypto engine: {0}")]
    Engine(EngineError),
    #[error("nesting deeper than {0} layers")]
    TooDeep(usize),
    /// The input exceeds one of the limits on input ([`smimekit_pki::LIMITS`]).
    #[error("malformed CMS: {0}")]
    Limit(#[from] smimekit_pki::LimitExceeded),
}

impl From<EngineError> for MessageError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Unsupported(s) => MessageError::Unsupported(s),
            EngineError::DecryptFailed(s) => MessageError::DecryptFailed(s),
            other => MessageError::Engine(other),
        }
    }
}

impl From<smimekit_pki::ber::BerError> for MessageError {
    fn from(e: smimekit_pki::ber::BerError) -> Self {
        MessageError::Malformed(format!("BER: {e}"))
    }
}

impl From<smimekit_pki::PkiError> for MessageError {
    fn from(e: smimekit_pki::PkiError) -> Self {
        MessageError::Malformed(e.to_string())
    }
}
