//! Registration of first-party plugins with [`inventory`].
//!
//! A factory is const data: an id, a description and function pointers. Nothing runs before
//! `main`. `smimekit-builtins` names each plugin crate so that the linker keeps it.

use crate::directory::Directory;
use crate::{CryptoEngine, DirectoryError, KeySpec, KeyStore, KeyStoreError, NewKey};

/// What a key reference names, as given by the user.
#[derive(Debug, Clone, Copy)]
pub struct KeyStoreParams<'a> {
    /// The KEYREF: a path, a `pkcs11:` URI…
    pub reference: &'a str,
    /// A separate certificate file, for key files that hold only the key.
    pub certificate: Option<&'a str>,
}

/// Generates a key in a store; the first argument names it in errors (a path, a label).
pub type GenerateKey = fn(&str, KeySpec) -> Result<Box<dyn NewKey>, KeyStoreError>;

/// A key-store plugin.
#[derive(Debug)]
pub struct KeyStoreFactory {
    pub id: &'static str,
    pub description: &'static str,
    /// Whether this store handles the reference (by scheme or file type).
    pub accepts: fn(&str) -> bool,
    pub open: fn(&KeyStoreParams<'_>) -> Result<Box<dyn KeyStore>, KeyStoreError>,
    /// Key generation, for stores that can make keys (`None`: not supported).
    pub generate: Option<GenerateKey>,
}

/// A crypto-engine plugin.
#[derive(Debug)]
pub struct EngineFactory {
    pub id: &'static str,
    pub description: &'static str,
    pub engine: fn() -> &'static CryptoEngine,
}

/// Opens a configured directory from its name and its configuration as TOML text.
pub type OpenDirectory = fn(name: &str, config: &str) -> Result<Box<dyn Directory>, DirectoryError>;

/// A directory-backend plugin.
#[derive(Debug)]
pub struct DirectoryFactory {
    pub kind: &'static str,
    pub description: &'static str,
    pub open: OpenDirectory,
}

inventory::collect!(KeyStoreFactory);
inventory::collect!(EngineFactory);
inventory::collect!(DirectoryFactory);

pub fn key_stores() -> impl Iterator<Item = &'static KeyStoreFactory> {
    inventory::iter::<KeyStoreFactory>.into_iter()
}

pub fn engines() -> impl Iterator<Item = &'static EngineFactory> {
    inventory::iter::<EngineFactory>.into_iter()
}

pub fn directories() -> impl Iterator<Item = &'static DirectoryFactory> {
    inventory::iter::<DirectoryFactory>.into_iter()
}
