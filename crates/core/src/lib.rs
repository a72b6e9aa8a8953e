//! The vocabulary of smimekit: domain types and the ports every plugin implements.
//!
//! This crate deliberately does no I/O, links no OpenSSL and starts no runtime. It holds
//! the types that cross crate boundaries ([`CertDer`], [`Mailbox`], [`Secret`], algorithm
//! identifiers) and the ports:
//!
//! * [`KeyStore`] / [`PrivateKey`]: private keys that sign a digest, unwrap a
//!   content-encryption key or derive an ECDH secret, and never hand out key material;
//! * [`Directory`]: where recipients' certificates are looked up and published;
//! * [`Store`]: smimekit's own data (the local directory, the certificate inventory, the
//!   audit log, job records) in SQLite or PostgreSQL;
//! * [`CryptoEngine`]: the primitives the message layer needs, as data built from small sync
//!   traits (in the manner of rustls' `CryptoProvider`).
//!
//! First-party plugins register factories for these ports with [`inventory`]; see [`plugin`].

pub mod alg;
pub mod cert;
pub mod directory;
pub mod directory_file;
pub mod engine;
pub mod keystore;
pub mod plugin;
pub mod secret;
pub mod store;

pub use alg::{ContentCipher, DigestAlg, KeyAgreeAlg, RsaPadding, SignatureScheme};
pub use cert::{CertDer, Mailbox, MailboxError};
pub use directory::{
    Directory, DirectoryError, ProbeCheck, ProbeReport, ProbeStatus, PublishMode, Recipient,
    RecipientKind, RecipientValues, SignInChallenge, StoredValue,
};
pub use engine::{
    ChainOutcome, ChainRequest, ContentCrypter, CryptoEngine, EngineError, KeyTransport,
    Primitives, PublicKeyInfo, SignatureVerifier,
};
pub use keystore::{
    BareKey, DecryptionKey, KeyInfo, KeyKind, KeySpec, KeyStore, KeyStoreError, NewKey, PrivateKey,
    Protection,
};
pub use secret::{
    Resolved, Secret, SecretError, SecretIo, SecretKind, SecretRequest, SecretSource,
};
pub use store::{Store, StoreError};
