//! CryptoEngine implemented on OpenSSL (the `openssl` crate over system OpenSSL 3).
//!
//! [`ENGINE`] (also [`engine()`]) wires one unit struct per port of
//! [`smimekit_core::CryptoEngine`]: digests and randomness ([`OsslPrimitives`]), signature
//! verification ([`OsslVerifier`]), content encryption ([`OsslCrypter`]), key transport and
//! agreement ([`OsslKeyTransport`]) and certification-path validation ([`OsslChain`]). The
//! engine registers itself with `inventory` under the id `openssl`.
//!
//! For the file key store, [`sign_digest_with`], [`rsa_decrypt_with`] and [`ecdh_with`] run the
//! private-key operations on an OpenSSL key the caller holds. This crate never loads private
//! keys from anywhere itself, and never consults the system's default CA store.
//!
//! Legacy algorithms (RC2, single DES) need OpenSSL 3's legacy provider; it is loaded on first
//! use by [`load_legacy_provider`].

// Tests may unwrap: a panic there is a test failure.
#![cfg_attr(test, allow(clippy::unwrap_used))]

use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::md::{Md, MdRef};
use smimekit_core::{CryptoEngine, DigestAlg, EngineError};

mod chain;
mod content;
mod ffi;
mod primitives;
mod private;
mod provider;
mod transport;
mod verify;

#[cfg(test)]
mod testutil;

pub use chain::OsslChain;
pub use content::OsslCrypter;
pub use primitives::OsslPrimitives;
pub use private::{ecdh_with, rsa_decrypt_with, sign_digest_with};
pub use provider::{active_providers, load_legacy_provider};
pub use transport::OsslKeyTransport;
pub use verify::OsslVerifier;

/// The OpenSSL engine.
pub static ENGINE: CryptoEngine = CryptoEngine {
    name: "openssl",
    primitives: &OsslPrimitives,
    verifier: &OsslVerifier,
    crypter: &OsslCrypter,
    key_transport: &OsslKeyTransport,
    chain: &OsslChain,
};

/// The OpenSSL engine, as the plugin factory hands it out.
pub fn engine() -> &'static CryptoEngine {
    &ENGINE
}

inventory::submit! {
    smimekit_core::plugin::EngineFactory {
        id: "openssl",
        description: "OpenSSL 3 (system libcrypto): digests, RSA/ECDSA/DSA, AES-CBC/GCM, 3DES, RC2, ECDH, X.509 path validation",
        engine,
    }
}

/// Decrypts `data` with the password-based scheme named by the DER AlgorithmIdentifier
/// `algorithm` (PBES2, the PKCS#12 PBE schemes, PBES1), as OpenSSL's own PKCS#12 parser
/// decrypts bags and safes (`PKCS12_pbe_crypt`). `password: None` is PKCS#12's absent
/// password, which its PBE schemes tell apart from the empty one; a PKCS#12 scheme takes the
/// password as UTF-8 and converts it as RFC 7292 says.
///
/// Errors: [`EngineError::DecryptFailed`] for a wrong password or altered data,
/// [`EngineError::Unsupported`] for an algorithm OpenSSL lacks (RC2 and RC4 until
/// [`load_legacy_provider`]), [`EngineError::Invalid`] otherwise.
pub fn pbe_decrypt(
    algorithm: &[u8],
    password: Option<&[u8]>,
    data: &[u8],
) -> Result<zeroize::Zeroizing<Vec<u8>>, EngineError> {
    ffi::pbe_decrypt(algorithm, password, data).map_err(|e| match e {
        ffi::PbeFailure::TooLarge => EngineError::Invalid("input too large".into()),
        ffi::PbeFailure::OpenSsl(e) => {
            let why = describe(&e);
            let lower = why.to_ascii_lowercase();
            if lower.contains("bad decrypt") || lower.contains("cipherfinal") {
                EngineError::DecryptFailed(why)
            } else if lower.contains("unsupported") || lower.contains("unknown") {
                EngineError::Unsupported(why)
            } else {
                EngineError::Invalid(why)
            }
        }
    })
}

/// The OpenSSL digest for one of ours.
pub(crate) fn message_digest(alg: DigestAlg) -> Result<MessageDigest, EngineError> {
    Ok(match alg {
        DigestAlg::Md5 => MessageDigest::md5(),
        DigestAlg::Sha1 => MessageDigest::sha1(),
        DigestAlg::Sha224 => MessageDigest::sha224(),
        DigestAlg::Sha256 => MessageDigest::sha256(),
        DigestAlg::Sha384 => MessageDigest::sha384(),
        DigestAlg::Sha512 => MessageDigest::sha512(),
        #[allow(unreachable_patterns)] // DigestAlg is non_exhaustive.
        other => return Err(EngineError::Unsupported(format!("digest {other:?}"))),
    })
}

/// The OpenSSL `EVP_MD` (for `PkeyCtx` parameters) for one of ours.
pub(crate) fn md_ref(alg: DigestAlg) -> Result<&'static MdRef, EngineError> {
    Ok(match alg {
        DigestAlg::Md5 => Md::md5(),
        DigestAlg::Sha1 => Md::sha1(),
        DigestAlg::Sha224 => Md::sha224(),
        DigestAlg::Sha256 => Md::sha256(),
        DigestAlg::Sha384 => Md::sha384(),
        DigestAlg::Sha512 => Md::sha512(),
        #[allow(unreachable_patterns)] // DigestAlg is non_exhaustive.
        other => return Err(EngineError::Unsupported(format!("digest {other:?}"))),
    })
}

/// Renders an OpenSSL error stack compactly: the reasons, without file/line noise.
pub(crate) fn describe(e: &ErrorStack) -> String {
    let reasons: Vec<String> = e
        .errors()
        .iter()
        .map(|err| {
            err.reason()
                .map(str::to_string)
                .unwrap_or_else(|| format!("error {:#x}", err.code()))
        })
        .collect();
    if reasons.is_empty() {
        "OpenSSL reported an error".to_string()
    } else {
        reasons.join("; ")
    }
}

/// `map_err` helper: an [`EngineError::Invalid`] with context.
pub(crate) fn invalid(what: &'static str) -> impl Fn(ErrorStack) -> EngineError {
    move |e| EngineError::Invalid(format!("{what}: {}", describe(&e)))
}

/// `map_err` helper: an [`EngineError::Unsupported`] with context.
pub(crate) fn unsupported(what: &'static str) -> impl Fn(ErrorStack) -> EngineError {
    move |e| EngineError::Unsupported(format!("{what}: {}", describe(&e)))
}

/// `map_err` helper: an [`EngineError::DecryptFailed`] with context.
pub(crate) fn decrypt_failed(what: &'static str) -> impl Fn(ErrorStack) -> EngineError {
    move |e| EngineError::DecryptFailed(format!("{what}: {}", describe(&e)))
}

/// Referenced by `smimekit-builtins` so that the linker keeps this crate's registration.
pub fn link() {}

#[cfg(test)]
mod tests {
    #[test]
    fn engine_is_registered() {
        let found = smimekit_core::plugin::engines().find(|f| f.id == "openssl");
        let factory = found.expect("openssl engine registered");
        assert_eq!((factory.engine)().name, "openssl");
    }
}
