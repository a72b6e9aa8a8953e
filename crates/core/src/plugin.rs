//! Registration of first-party plugins with [`inventory`].
//!
//! A factory is const data: an id, a description and function pointers. Nothing runs before
//! `main`. `smimekit-builtins` names each plugin crate so that the linker keeps it.

use crate::directory::Directory;
use crate::secret::{SecretError, SecretRequest, SecretSource};
use crate::{CryptoEngine, DirectoryError, KeySpec, KeyStore, KeyStoreError, NewKey, Secret};

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

/// What a directory plugin asks for when it needs a private key of its own (Exchange Online
/// signs its OAuth client assertion with one): a KEYREF, an optional separate certificate
/// file, and where its configuration says the key's password or PIN is.
#[derive(Debug, Clone)]
pub struct KeyOpenRequest {
    pub reference: String,
    pub certificate: Option<String>,
    /// Who needs the key, for messages and the prompt (`directory exo`).
    pub purpose: String,
    /// The configuration's own sources of the key's secret (`certificate_password_env`); the
    /// host tries them first, then its own, in the order of [`crate::secret`].
    pub secret_sources: Vec<SecretSource>,
}

/// Host services for directory plugins: opening keys, finding secrets and showing sign-in
/// challenges. The service implements it with its own KEYREF resolution (PKCS#11 modules
/// from `[keystore.*]`, relative paths), its secret sources (`--password-file`, the
/// environment, a terminal) and its frontends' sign-in stream; plugins cannot call the
/// service otherwise, and never print. Object-safe.
#[async_trait::async_trait]
pub trait KeyOpener: std::fmt::Debug + Send + Sync {
    async fn open_key(
        &self,
        req: &KeyOpenRequest,
    ) -> Result<std::sync::Arc<dyn crate::PrivateKey>, KeyStoreError>;

    /// A secret the plugin's configuration refers to (an LDAP bind password), found in the
    /// order of [`crate::secret::resolve`]: the request's own sources first. Hosts without
    /// secret sources refuse.
    fn secret(&self, req: &SecretRequest) -> Result<Secret, SecretError> {
        Err(SecretError::NoHost {
            object: req.object.clone(),
        })
    }

    /// Shows an interactive sign-in to whoever can act on it (the service hands it to its
    /// frontends); `false` when nobody will see it, and the plugin should fail rather than
    /// wait for a sign-in that cannot happen. Hosts without frontends refuse.
    fn show_sign_in(&self, challenge: &crate::SignInChallenge) -> bool {
        let _ = challenge;
        false
    }

    /// Something the user should know that is not an error (a fallback the plugin took, such
    /// as another signature algorithm for its sign-in): the host shows it once the operation
    /// is over. Hosts without a user to tell drop it.
    fn notice(&self, text: &str) {
        let _ = text;
    }

    /// A small fact the plugin remembered for directory `directory` under `key` in an earlier
    /// run (which byte encoding the server accepts), kept by the host (the service's store).
    /// Hosts without a place to keep it have none; failures to read are `None` too (the
    /// plugin then finds the fact out again).
    async fn state(&self, directory: &str, key: &str) -> Option<String> {
        let _ = (directory, key);
        None
    }

    /// Remembers `value` for directory `directory` under `key` for later runs. Best effort:
    /// hosts without a place to keep it, or that fail to, drop it.
    async fn set_state(&self, directory: &str, key: &str, value: &str) {
        let _ = (directory, key, value);
    }
}

/// Opens a configured directory with help from the host (a [`KeyOpener`]).
pub type OpenDirectoryWithKeys = fn(
    name: &str,
    config: &str,
    keys: std::sync::Arc<dyn KeyOpener>,
) -> Result<Box<dyn Directory>, DirectoryError>;

/// A directory-backend plugin that needs host services (keys). Additive to
/// [`DirectoryFactory`]: a plugin registers both (same `kind`); hosts that know this type
/// (the service) prefer it, others use the plain factory.
#[derive(Debug)]
pub struct DirectoryFactoryWithKeys {
    pub kind: &'static str,
    pub open: OpenDirectoryWithKeys,
}

inventory::collect!(DirectoryFactoryWithKeys);

/// What a directory kind refuses in a trust chain, checked without opening a directory (the
/// offline `trust push --emit-powershell`): Exchange Online's Set-SmimeConfig refuses expired
/// certificates and an SST above its size limit. `now` in seconds since the Unix epoch.
#[derive(Debug)]
pub struct TrustChainCheck {
    pub kind: &'static str,
    pub check: fn(chain: &[crate::CertDer], now: i64) -> Result<(), DirectoryError>,
}

inventory::collect!(TrustChainCheck);

pub fn trust_chain_checks() -> impl Iterator<Item = &'static TrustChainCheck> {
    inventory::iter::<TrustChainCheck>.into_iter()
}

/// One change a generated script makes in a directory, for an administrator who must run the
/// changes themselves (`--emit-powershell`, `apply --emit-powershell`). Addresses and names
/// are data: an emitter must write them so that no value can end its literal.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ScriptOperation {
    /// The organisation's trust chain becomes exactly these certificates (Exchange Online:
    /// Set-SmimeConfig with an SST of them), checked by [`TrustChainCheck`]'s rules first.
    SetTrustChain { chain: Vec<crate::CertDer> },
    /// Adds `certificate` to the recipient's certificates, read back. `replace`: it becomes the
    /// only one; `prune_expired`: expired others are dropped; `create_contact`: a missing
    /// recipient becomes an external contact named by the directory's convention.
    AddCertificate {
        address: crate::Mailbox,
        certificate: crate::CertDer,
        replace: bool,
        prune_expired: bool,
        create_contact: bool,
    },
    /// Removes the certificate with this SHA-1 thumbprint (hex) from the recipient's
    /// certificates, read back; nothing to do when it is not there.
    RemoveCertificate {
        address: crate::Mailbox,
        thumbprint: String,
    },
    /// Creates an external contact for `address` (named `display_name`, else by the
    /// directory's convention) holding `certificate`; an existing contact gets the
    /// certificate added.
    CreateContact {
        address: crate::Mailbox,
        display_name: Option<String>,
        certificate: crate::CertDer,
    },
}

/// What a [`ScriptEmitter`] is asked for.
#[derive(Debug, Clone, Copy)]
pub struct ScriptRequest<'a> {
    /// The directory's name, for messages.
    pub directory: &'a str,
    /// The directory's configuration as TOML text (empty when none is configured); read
    /// leniently, since nothing is contacted.
    pub config: &'a str,
    pub operations: &'a [ScriptOperation],
    /// The time checks use (expired certificates), in seconds since the Unix epoch.
    pub now: i64,
}

/// A generated script and what it does.
#[derive(Debug, Clone)]
pub struct Script {
    /// The script's text, for the caller to save.
    pub text: String,
    /// One line per operation the script performs, for people.
    pub operations: Vec<String>,
}

/// Writes a directory kind's changes as a script an administrator runs (Exchange Online:
/// PowerShell 7 with ExchangeOnlineManagement), registered for the kind like
/// [`TrustChainCheck`]; the host only chooses the emitter by the directory's kind.
#[derive(Debug)]
pub struct ScriptEmitter {
    pub kind: &'static str,
    /// The script's language (`powershell`).
    pub language: &'static str,
    pub emit: fn(&ScriptRequest<'_>) -> Result<Script, DirectoryError>,
}

inventory::collect!(ScriptEmitter);

pub fn script_emitters() -> impl Iterator<Item = &'static ScriptEmitter> {
    inventory::iter::<ScriptEmitter>.into_iter()
}

pub fn directories_with_keys() -> impl Iterator<Item = &'static DirectoryFactoryWithKeys> {
    inventory::iter::<DirectoryFactoryWithKeys>.into_iter()
}

/// Opens a store from its URL (connects, and brings the schema up to date).
pub type OpenStore = fn(
    url: &str,
) -> std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = Result<std::sync::Arc<dyn crate::store::Store>, crate::store::StoreError>,
            > + Send
            + '_,
    >,
>;

/// A store plugin, chosen by the scheme of `[store] url` (`sqlite`, `postgres`).
#[derive(Debug)]
pub struct StoreFactory {
    pub schemes: &'static [&'static str],
    pub description: &'static str,
    pub open: OpenStore,
}

/// Opens a configured directory that keeps its data in the host's store (the `local`
/// kind). Additive to [`DirectoryFactory`], like [`DirectoryFactoryWithKeys`]: hosts with a
/// store (the service) prefer it, others use the plain factory.
pub type OpenDirectoryWithStore = fn(
    name: &str,
    config: &str,
    store: std::sync::Arc<crate::store::LazyStore>,
) -> Result<Box<dyn Directory>, DirectoryError>;

#[derive(Debug)]
pub struct DirectoryFactoryWithStore {
    pub kind: &'static str,
    pub open: OpenDirectoryWithStore,
}

inventory::collect!(StoreFactory);
inventory::collect!(DirectoryFactoryWithStore);

pub fn stores() -> impl Iterator<Item = &'static StoreFactory> {
    inventory::iter::<StoreFactory>.into_iter()
}

pub fn directories_with_store() -> impl Iterator<Item = &'static DirectoryFactoryWithStore> {
    inventory::iter::<DirectoryFactoryWithStore>.into_iter()
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
