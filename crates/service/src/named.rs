//! Data handed to the service with the name a person knows it by.

use std::fmt;

/// Bytes (or text) with the name a person knows them by, a file name or an upload's, so that
/// errors and reports name them: `Named<Vec<u8>>` for the certificates, requests, PKCS#12
/// files and CRLs a request carries. The service never opens files: reading them is the
/// frontend's job (the CLI's `--cert F`, a web upload), and so is writing what it returns.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Named<T> {
    /// How messages name the data (`alice.pem`, `upload #2`).
    pub name: String,
    pub data: T,
}

impl<T> Named<T> {
    pub fn new(name: impl Into<String>, data: T) -> Self {
        Self {
            name: name.into(),
            data,
        }
    }
}

/// The name only: the data may be large, or a PKCS#12.
impl<T> fmt::Debug for Named<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Named")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
