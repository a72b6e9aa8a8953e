//! Key store for the Windows certificate store: certificates in a system store
//! (CurrentUser\MY by default) with private keys in CNG key storage providers or legacy CSPs.
//! Keys never leave Windows: signing, decryption and ECDH run in the provider, which may show
//! its own PIN or consent UI.
//!
//! KEYREFs ([`keyref`]): `windows:my?email=ADDRESS`, `windows:my?thumbprint=HEX`, with
//! `store=NAME` (`my`, `ca`, `root`, `addressbook`, or any system store), `location=user|machine`
//! and `provider=auto|cng|legacy`. Without a selector, `open` takes the first certificate
//! with a private key.
//!
//! Private keys are acquired with `CryptAcquireCertificatePrivateKey`; an NCrypt handle goes
//! to the CNG path (RSA PKCS#1 v1.5 / PSS, ECDSA, RSA v1.5 / OAEP decryption, ECDH), an
//! `HCRYPTPROV` to the legacy CryptoAPI path (RSA PKCS#1 v1.5 signing, v1.5 and OAEP-SHA1
//! decryption). Both share the certificate lookup ([`keyref::Selector`]).
//!
//! On other systems the crate registers a factory that accepts `windows:` references and
//! explains that the store exists only on Windows, so the workspace builds everywhere.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod der;
pub mod errors;
pub mod keyref;

#[cfg(windows)]
mod store;
#[cfg(windows)]
#[allow(unsafe_code)]
pub mod win;

#[cfg(windows)]
pub use store::{WinKey, WinStore, import_pkcs12_into, wine_version};

use smimekit_core::plugin::{KeyStoreFactory, KeyStoreParams};
use smimekit_core::{KeyStore, KeyStoreError};

/// References this plugin, so that the linker keeps its registration.
pub fn link() {}

/// `windows:` references.
pub fn accepts(reference: &str) -> bool {
    keyref::accepts(reference)
}

#[cfg(windows)]
fn open(p: &KeyStoreParams<'_>) -> Result<Box<dyn KeyStore>, KeyStoreError> {
    Ok(Box::new(store::WinStore::open(p.reference)?))
}

#[cfg(not(windows))]
fn open(p: &KeyStoreParams<'_>) -> Result<Box<dyn KeyStore>, KeyStoreError> {
    Err(KeyStoreError::Unsupported {
        key: p.reference.to_string(),
        detail: "the Windows certificate store is only available on Windows".into(),
    })
}

inventory::submit! {
    KeyStoreFactory {
        id: "windows",
        description: "Windows certificate store (windows:my?email=…): CNG and CryptoAPI keys",
        accepts,
        open,
        generate: None,
    }
}

#[cfg(all(test, not(windows)))]
mod tests {
    #[test]
    fn not_on_this_system() {
        let e = super::open(&super::KeyStoreParams {
            reference: "windows:my",
            certificate: None,
        })
        .unwrap_err();
        assert!(e.to_string().contains("only available on Windows"));
    }
}
