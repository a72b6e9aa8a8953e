//! The crypto-engine port: the primitives the message layer needs, as data.
//!
//! Following rustls' `CryptoProvider`, an engine is a struct of references to small sync
//! traits, so a deployment can replace one field (say, a FIPS content cipher) and keep the
//! rest. Nothing here touches private keys: those stay behind [`crate::PrivateKey`].

use std::fmt::Debug;

use serde::Serialize;

use crate::{CertDer, ContentCipher, DigestAlg, RsaPadding, Secret, SignatureScheme};

/// Errors from an engine primitive.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EngineError {
    /// The engine does not implement this algorithm or parameter.
    #[error("unsupported algorithm: {0}")]
    Unsupported(String),
    /// The input (key, parameters, ciphertext) is not valid for the operation.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// Decryption or unwrapping failed: wrong key or tampered data.
    #[error("decryption failed: {0}")]
    DecryptFailed(String),
}

/// The engine: one reference per capability.
#[derive(Debug, Clone, Copy)]
pub struct CryptoEngine {
    pub name: &'static str,
    pub primitives: &'static dyn Primitives,
    pub verifier: &'static dyn SignatureVerifier,
    pub crypter: &'static dyn ContentCrypter,
    pub key_transport: &'static dyn KeyTransport,
    pub chain: &'static dyn ChainValidator,
}

/// Digests and randomness.
pub trait Primitives: Debug + Send + Sync {
    fn digest(&self, alg: DigestAlg, data: &[&[u8]]) -> Result<Vec<u8>, EngineError>;
    fn fill_random(&self, buf: &mut [u8]) -> Result<(), EngineError>;
}

/// Facts about a public key, read from a SubjectPublicKeyInfo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublicKeyInfo {
    /// `rsa`, `ec`, `dsa`, `ed25519`, …
    pub algorithm: String,
    /// Modulus bits for RSA/DSA, field bits for EC.
    pub bits: u32,
    /// Curve short name for EC keys (`P-256`…).
    pub curve: Option<String>,
}

/// Public-key signature verification.
pub trait SignatureVerifier: Debug + Send + Sync {
    /// Verifies `signature` over `message` (the engine hashes it with the scheme's digest).
    /// `Ok(false)` means the signature does not match; `Err` means it could not be checked.
    fn verify(
        &self,
        spki_der: &[u8],
        scheme: SignatureScheme,
        message: &[u8],
        signature: &[u8],
    ) -> Result<bool, EngineError>;

    fn public_key_info(&self, spki_der: &[u8]) -> Result<PublicKeyInfo, EngineError>;
}

/// Symmetric content encryption.
pub trait ContentCrypter: Debug + Send + Sync {
    /// Encrypts; for AEAD ciphers returns `(ciphertext, tag)`, else `(ciphertext, empty)`.
    fn encrypt(
        &self,
        cipher: ContentCipher,
        key: &[u8],
        iv: &[u8],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), EngineError>;

    /// Decrypts; `tag` is required for AEAD ciphers.
    fn decrypt(
        &self,
        cipher: ContentCipher,
        key: &[u8],
        iv: &[u8],
        aad: &[u8],
        ciphertext: &[u8],
        tag: Option<&[u8]>,
    ) -> Result<Vec<u8>, EngineError>;
}

/// The public-key side of recipient handling: key transport and agreement.
pub trait KeyTransport: Debug + Send + Sync {
    /// Encrypts a content-encryption key to an RSA public key.
    fn rsa_encrypt(
        &self,
        spki_der: &[u8],
        padding: &RsaPadding,
        key: &[u8],
    ) -> Result<Vec<u8>, EngineError>;

    /// Ephemeral-static ECDH against the recipient's EC public key: returns the ephemeral
    /// public point (uncompressed SEC1) and the shared secret Z.
    fn ecdh_ephemeral(&self, spki_der: &[u8]) -> Result<(Vec<u8>, Secret), EngineError>;

    /// ANSI X9.63 KDF (as used by RFC 5753) producing `len` bytes.
    fn kdf_x963(
        &self,
        digest: DigestAlg,
        z: &[u8],
        shared_info: &[u8],
        len: usize,
    ) -> Result<Secret, EngineError>;

    /// RFC 3394 AES key wrap.
    fn aes_wrap(&self, kek: &[u8], key: &[u8]) -> Result<Vec<u8>, EngineError>;

    /// RFC 3394 AES key unwrap.
    fn aes_unwrap(&self, kek: &[u8], wrapped: &[u8]) -> Result<Secret, EngineError>;

    /// RFC 3217 Triple-DES key unwrap (id-alg-CMS3DESwrap), which older ECDH senders used
    /// with 3DES content. Decryption of old mail only; engines may leave it unsupported.
    fn des3_unwrap(&self, kek: &[u8], wrapped: &[u8]) -> Result<Secret, EngineError> {
        let _ = (kek, wrapped);
        Err(EngineError::Unsupported("3DES key wrap".into()))
    }
}

/// What to validate: a leaf, candidate intermediates, trust anchors, a time and CRLs.
#[derive(Debug, Clone)]
pub struct ChainRequest {
    pub leaf: CertDer,
    pub intermediates: Vec<CertDer>,
    pub anchors: Vec<CertDer>,
    /// Validation time, seconds since the Unix epoch.
    pub at: i64,
    /// DER CRLs; when non-empty, revocation is checked for every certificate in the path.
    pub crls: Vec<Vec<u8>>,
    /// Require the S/MIME purpose (emailProtection EKU where an EKU is present).
    pub smime_purpose: bool,
    /// The security level the path must meet, in OpenSSL's scale: 0 accepts anything; 1 needs
    /// 80 bits (RSA/DSA keys of 1024 bits or more, no MD5 or SHA-1 certificate signatures
    /// below the anchor); 2 needs 112 bits (RSA 2048). Always explicit, never a library default.
    pub security_level: u8,
}

/// The result of validating a chain. A failure is an outcome, not an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainOutcome {
    pub trusted: bool,
    /// The path found, leaf first (anchor last when trusted).
    pub path: Vec<CertDer>,
    /// Why the chain is not trusted, in words an admin can act on.
    pub reason: Option<String>,
}

/// Certification path building and validation.
pub trait ChainValidator: Debug + Send + Sync {
    fn validate(&self, request: &ChainRequest) -> ChainOutcome;
}
