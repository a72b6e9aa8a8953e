//! The crate's error type.
//!
//! Every container error names the input (`name`: a file name or other label supplied by the
//! caller) and the cause, so it can be shown to a user as is.

use crate::ber::BerError;
use crate::sst::SstError;

/// Errors of `smimekit-pki`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// The input is not a container this crate reads, or is malformed; `reason` says why.
    #[error("{name}: {reason}")]
    Container { name: String, reason: String },
    /// A malformed Microsoft serialized store.
    #[error("{name}: SST: {error}")]
    Sst {
        name: String,
        #[source]
        error: SstError,
    },
    /// BER that could not be normalised to DER.
    #[error("{name}: BER: {error}")]
    Ber {
        name: String,
        #[source]
        error: BerError,
    },
    /// A certificate whose structure could not be parsed.
    #[error("malformed certificate: {0}")]
    Certificate(String),
}

impl PkiError {
    pub(crate) fn container(name: &str, reason: impl Into<String>) -> Self {
        PkiError::Container {
            name: name.to_string(),
            reason: reason.into(),
        }
    }
}
