//! Certificate containers (PEM, DER, PKCS#7 certs-only, Microsoft SST) and certificate facts.
//!
//! * [`container`]: sniff and read any supported container ([`load_certificates`]); write
//!   PEM and `.p7b`.
//! * [`sst`]: the Microsoft serialized certificate store used by Exchange Online uploads.
//! * [`certinfo`]: subject, issuer, serial, validity, e-mail addresses, key usages,
//!   thumbprints — parsed leniently from the DER.
//! * [`asn1`]: the BER reader (raw bytes kept, indefinite lengths, chunked strings) and DER
//!   writer that every smimekit crate parsing or building ASN.1 uses.
//! * [`ber`]: the one BER → DER converter (PKCS#7 files, CMS attributes sent in BER).
//! * [`limits`]: the one table of limits on input ([`LIMITS`]) and its error.
//!
//! Pure Rust, no OpenSSL. This crate never verifies signatures or builds chains; certificates
//! travel as [`smimekit_core::CertDer`] and are never re-encoded.

pub mod asn1;
pub mod ber;
pub mod ca;
pub mod certinfo;
pub mod chain;
pub mod container;
mod error;
pub mod limits;
pub mod lint;
pub mod sst;
#[cfg(test)]
mod testcert;

pub use certinfo::{CertInfo, KeyUsageBits};
pub use container::{load_certificates, write_p7b, write_pem};
pub use error::PkiError;
pub use limits::{LIMITS, LimitExceeded, Limits};
pub use sst::{SstEntry, SstError, read_sst, write_sst};
