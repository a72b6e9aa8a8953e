//! MIME and CMS: sign, verify, encrypt, decrypt and open S/MIME messages.
//!
//! Everything here is written against the `smimekit-core` ports: primitives come from a
//! [`CryptoEngine`](smimekit_core::CryptoEngine), private keys are used only through
//! [`PrivateKey`](smimekit_core::PrivateKey) (sign a digest, unwrap a key, ECDH), so token and
//! system-store keys work with no change here. This crate does no I/O and starts no runtime.
//!
//! Layers:
//! * [`asn1`] (from `smimekit-pki`): a BER reader that keeps raw bytes, and a DER writer;
//! * [`mime`]: parsing and building MIME entities, canonical form;
//! * [`signed`] and [`envelope`]: CMS SignedData, EnvelopedData and AuthEnvelopedData;
//! * [`smime`]: whole messages: sign, encrypt, and `open` (peel every layer, verify each).
//!
//! A bad signature is not an error: it is a [`report::SignerReport`] with a status.

pub use smimekit_pki::asn1;
mod certid;
pub mod envelope;
pub mod error;
pub mod mime;
pub mod oids;
pub mod report;
pub mod sender;
pub mod signed;
pub mod smime;
mod time_fmt;

pub use error::MessageError;
