//! Key store for PKCS#12 and PEM/DER key files.
//!
//! [`FileKeyStore`] opens
//!
//! * PKCS#12 files (`.p12`/`.pfx`, DER, BER or PEM-armoured `-----BEGIN PKCS12-----`), with
//!   modern PBES2/AES or legacy 3DES/RC2-40 bags (OpenSSL's legacy provider is loaded for
//!   RC2) and SHA-x or RFC 9579 PBMAC1 integrity;
//! * PEM or DER private keys (PKCS#8, encrypted PKCS#8, `RSA PRIVATE KEY`, `EC PRIVATE KEY`)
//!   with their certificate from a separate file (`--cert`), or a PEM file that holds the key
//!   and its certificate(s). Without any certificate the file still opens, and its key is a
//!   [`BareSoftKey`] that can only decrypt ([`KeyStore::open_for_decryption`]).
//!
//! A password-protected file is [`Protection::Locked`] until [`KeyStore::unlock`]; PKCS#12
//! files with an empty or absent password open without asking. The password is used once, to
//! decrypt, and not kept. Keys are [`SoftKey`]s whose operations run in
//! `smimekit-engine-openssl`.
//!
//! [`read_bundle`] gives everything a file holds (keys, all certificates, friendly names),
//! including certificate-only PKCS#12 files, which list no keys.
//!
//! Opening reads the file and may decrypt it (a PKCS#12 without a password still runs its
//! key derivations): the factory's `open` is synchronous, and hosts run it off their async
//! threads. [`KeyStore::unlock`], which derives keys from the password (PBKDF2, tens of
//! milliseconds to seconds), runs on tokio's blocking pool, never on the caller's thread.

#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use smimekit_core::plugin::{KeyStoreFactory, KeyStoreParams};
use smimekit_core::{
    DecryptionKey, KeyInfo, KeyStore, KeyStoreError, PrivateKey, Protection, Secret,
};

mod bare;
mod bundle;
mod generate;
mod keyfile;
mod p12;
mod pem;
mod softkey;

#[doc(hidden)]
pub mod fuzzing;

pub use bare::BareSoftKey;
pub use bundle::{Bundle, BundleCert};
pub use generate::{generate, generate_boxed};
pub use softkey::SoftKey;

use keyfile::KeyFile;

/// What the file is, kept until it is decrypted.
enum Source {
    P12(Vec<u8>),
    KeyFile(KeyFile),
}

impl Source {
    fn load(&self, id: &str, password: Option<&Secret>) -> Result<Bundle, KeyStoreError> {
        match self {
            Source::P12(data) => p12::read(id, data, password),
            Source::KeyFile(kf) => kf.read(id, password),
        }
    }

    fn hint(&self) -> &'static str {
        match self {
            Source::P12(_) => "PKCS#12 password",
            Source::KeyFile(_) => "key file password",
        }
    }
}

/// A PKCS#12 or PEM/DER key file.
pub struct FileKeyStore {
    id: String,
    /// Shared with the blocking task that decrypts it.
    source: Arc<Source>,
    /// `None` while locked.
    unlocked: Mutex<Option<Arc<Bundle>>>,
}

impl std::fmt::Debug for FileKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &*self.state() {
            Some(b) => format!("unlocked, {} key(s)", b.keys.len()),
            None => "locked".to_string(),
        };
        f.debug_struct("FileKeyStore")
            .field("id", &self.id)
            .field(
                "kind",
                &match *self.source {
                    Source::P12(_) => "pkcs12",
                    Source::KeyFile(_) => "key file",
                },
            )
            .field("state", &state)
            .finish()
    }
}

fn read_file(path: &str) -> Result<Vec<u8>, KeyStoreError> {
    std::fs::read(path).map_err(|e| KeyStoreError::Io {
        key: path.to_string(),
        detail: format!("cannot read {path}: {e}"),
    })
}

fn has_p12_extension(path: &str) -> bool {
    Path::new(path)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("p12") || e.eq_ignore_ascii_case("pfx"))
}

/// Reads and classifies a file.
fn source_for(path: &str, certificate: Option<&str>) -> Result<Source, KeyStoreError> {
    let data = read_file(path)?;
    if has_p12_extension(path) || p12::looks_like_p12(&data) {
        return Ok(Source::P12(data));
    }
    let cert_data = certificate
        .map(|c| read_file(c).map(|d| (c, d)))
        .transpose()?;
    let cert = cert_data.as_ref().map(|(c, d)| (*c, d.as_slice()));
    match KeyFile::parse(path, &data, cert)? {
        Some(kf) => Ok(Source::KeyFile(kf)),
        None => Err(KeyStoreError::Malformed {
            key: path.to_string(),
            detail: "not a PKCS#12 file, nor a PEM or DER private key".into(),
        }),
    }
}

impl FileKeyStore {
    /// Opens a key file as a [`KeyStore`] (the plugin entry point).
    pub fn open(params: &KeyStoreParams<'_>) -> Result<Box<dyn KeyStore>, KeyStoreError> {
        Ok(Box::new(Self::open_file(params)?))
    }

    /// Opens a key file. PKCS#12 files with an empty or absent password, and unencrypted key
    /// files, are unlocked at once; others wait for [`KeyStore::unlock`].
    pub fn open_file(params: &KeyStoreParams<'_>) -> Result<Self, KeyStoreError> {
        let id = params.reference.to_string();
        let source = source_for(&id, params.certificate)?;
        let initial = match &source {
            Source::KeyFile(kf) if kf.encrypted() => None,
            _ => match source.load(&id, None) {
                Ok(b) => Some(Arc::new(b)),
                Err(KeyStoreError::Locked { .. }) => None,
                Err(e) => return Err(e),
            },
        };
        Ok(Self {
            id,
            source: Arc::new(source),
            unlocked: Mutex::new(initial),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Option<Arc<Bundle>>> {
        self.unlocked.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Everything the file holds; fails with `Locked` until unlocked.
    pub fn bundle(&self) -> Result<Arc<Bundle>, KeyStoreError> {
        self.state().clone().ok_or_else(|| KeyStoreError::Locked {
            key: self.id.clone(),
            hint: self.source.hint().into(),
        })
    }

    /// Every certificate in the file, with or without a key (a certificate-only PKCS#12
    /// lists no keys, but its certificates are here).
    pub fn certificates(&self) -> Result<Vec<BundleCert>, KeyStoreError> {
        Ok(self.bundle()?.certificates.clone())
    }
}

/// Reads a whole key file: keys with their certificates, every certificate, friendly names.
/// `password: None` opens files without a password (for PKCS#12, the empty and the absent
/// password are both tried) and fails with [`KeyStoreError::Locked`] otherwise.
pub fn read_bundle(path: &Path, password: Option<&Secret>) -> Result<Bundle, KeyStoreError> {
    let id = path.to_string_lossy();
    let source = source_for(&id, None)?;
    source.load(&id, password)
}

#[async_trait]
impl KeyStore for FileKeyStore {
    fn id(&self) -> &str {
        &self.id
    }

    async fn protection(&self) -> Protection {
        match &*self.state() {
            Some(_) => Protection::Unlocked,
            None => Protection::Locked {
                hint: self.source.hint().into(),
                tries_left: None,
            },
        }
    }

    async fn unlock(&self, secret: Secret) -> Result<(), KeyStoreError> {
        if self.state().is_some() {
            return Ok(());
        }
        let (source, id) = (self.source.clone(), self.id.clone());
        let decrypt = move || {
            let bundle = source.load(&id, Some(&secret));
            drop(secret);
            bundle
        };
        // The password-based key derivations are CPU work: off the async threads.
        let bundle = match tokio::runtime::Handle::try_current() {
            Ok(rt) => rt
                .spawn_blocking(decrypt)
                .await
                .map_err(|e| KeyStoreError::Failed {
                    key: self.id.clone(),
                    detail: format!("decrypting: {e}"),
                })??,
            // No runtime: nothing to keep responsive.
            Err(_) => decrypt()?,
        };
        *self.state() = Some(Arc::new(bundle));
        Ok(())
    }

    async fn list(&self) -> Result<Vec<KeyInfo>, KeyStoreError> {
        Ok(self.bundle()?.keys.clone())
    }

    async fn open(&self, selector: Option<&str>) -> Result<Arc<dyn PrivateKey>, KeyStoreError> {
        let bundle = self.bundle()?;
        if matches!(*self.source, Source::KeyFile(_)) && bundle.certificates.is_empty() {
            return Err(KeyStoreError::Failed {
                key: self.id.clone(),
                detail: "needs a certificate: the file holds a private key but none; give the \
                         certificate file with the key (without one it can only decrypt)"
                    .into(),
            });
        }
        let key: Arc<dyn PrivateKey> = bundle.key(selector)?;
        Ok(key)
    }

    /// A key file without a certificate gives its key bare: it decrypts (tried on every
    /// recipient of its type) but cannot sign.
    async fn open_for_decryption(
        &self,
        selector: Option<&str>,
    ) -> Result<DecryptionKey, KeyStoreError> {
        self.bundle()?.decryption_key(selector)
    }
}

/// Whether `reference` starts with a URI scheme (`pkcs11:`, `windows:`…) rather than being a
/// path. A one-letter "scheme" is a Windows drive (`C:\keys\me.p12`).
fn has_uri_scheme(reference: &str) -> bool {
    let Some((scheme, _)) = reference.split_once(':') else {
        return false;
    };
    scheme.len() > 1
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// Whether the file store handles `reference`: any path, but not a URI of another store,
/// unless a file of that name exists.
pub fn accepts(reference: &str) -> bool {
    !reference.is_empty() && (!has_uri_scheme(reference) || Path::new(reference).is_file())
}

inventory::submit! {
    KeyStoreFactory {
        id: "file",
        description: "PKCS#12 (.p12/.pfx), PEM/DER key files",
        accepts,
        open: FileKeyStore::open,
        generate: Some(generate_boxed),
    }
}

/// Referenced by `smimekit-builtins` so that the linker keeps this crate's registration.
pub fn link() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_paths_not_uris() {
        assert!(accepts("me.p12"));
        assert!(accepts("/home/me/key.pem"));
        assert!(accepts(r"C:\keys\me.pfx"));
        assert!(accepts("./odd:name.p12"));
        assert!(!accepts("pkcs11:token=Smart%20Card;object=Sign"));
        assert!(!accepts("windows:my"));
        assert!(!accepts(""));
    }
}
