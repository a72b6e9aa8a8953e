//! What verification and opening found, as data. Rendering is the application's business.

use serde::Serialize;

/// The verdict on one signer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignerStatus {
    /// Signature good, chain trusted, attributes consistent.
    Valid,
    /// The content does not match the signature (tampered, or re-encoded in transit).
    BadSignature,
    /// The signature is good but the certificate does not chain to a trust anchor.
    Untrusted,
    /// The signer's certificate is not in the message nor among the given certificates.
    MissingCertificate,
    /// The certificate may not sign mail (keyUsage / extendedKeyUsage).
    WrongKeyUsage,
    /// Signed attributes are missing or malformed (contentType, messageDigest…).
    BadAttributes,
    /// An algorithm we cannot check.
    Unsupported,
    /// Good signature and chain, but the message's From (or Sender) address is not among the
    /// signer certificate's addresses: someone signed mail in another person's name.
    AddressMismatch,
    /// Signed with MD5 or SHA-1, which no longer prove anything (collisions can be bought).
    WeakAlgorithm,
}

/// One signer of a SignedData layer.
#[derive(Debug, Clone, Serialize)]
pub struct SignerReport {
    pub status: SignerStatus,
    /// subjectAltName rfc822Name, else the subject's emailAddress, else the subject DN.
    pub address: Option<String>,
    pub subject: Option<String>,
    pub digest: String,
    pub signature_algorithm: String,
    pub signing_time: Option<String>,
    /// The signature matches the content.
    pub signature_ok: bool,
    /// The certificate chains to a trust anchor at the validation time.
    pub chain_ok: bool,
    /// Subjects of the validated path, leaf first.
    pub chain: Vec<String>,
    /// Whether the signer's addresses include the message's `From:` and `Sender:` (None when
    /// the message names no sender: raw CMS, an entity without `From:`).
    pub matches_from: Option<bool>,
    /// The message's sender as compared with the signer (the `From:` address, the `Sender:`
    /// one, or the header as written when it cannot match), when it does not match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    /// Weaknesses that do not make the signature invalid (an RSA key under 2048 bits, DSA), and
    /// what a caller chose to accept (SHA-1, a sender mismatch).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Why the signer is not valid, in words an admin can act on.
    pub reason: Option<String>,
}

impl SignerReport {
    pub fn is_valid(&self) -> bool {
        self.status == SignerStatus::Valid
    }
}

/// The kind of one layer of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LayerKind {
    SignedDetached,
    SignedOpaque,
    Enveloped,
    AuthEnveloped,
    Digested,
    Data,
    /// A plain multipart (or a non-S/MIME multipart/signed, e.g. PGP) around the S/MIME part:
    /// only that part is protected, its siblings are not.
    MimeWrapper,
}

/// One layer peeled by `open`, outermost first.
#[derive(Debug, Clone, Serialize)]
pub struct Layer {
    #[serde(rename = "type")]
    pub kind: LayerKind,
    /// Digest (signed), content cipher (enveloped) or digest (digested).
    pub algorithm: String,
    /// Key-encryption algorithms of the recipient infos (enveloped layers).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub key_algorithms: Vec<String>,
    /// The recipient whose key opened the layer (enveloped layers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub signers: Vec<SignerReport>,
    /// For signed and digested layers: whether it verified; None otherwise.
    pub valid: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What `open` found.
///
/// `valid` is true only when at least one layer carries a signer and every signer of every
/// layer is [`SignerStatus::Valid`]; false when any signer is not (or a DigestedData layer's
/// digest does not match); null when no layer holds a signer (DigestedData, id-data, an empty
/// SignedData, plain MIME, encryption alone): nothing unsigned is ever valid.
#[derive(Debug, Clone, Serialize)]
pub struct OpenReport {
    /// True when every signature verified; false when any did not; null when nothing was signed.
    pub valid: Option<bool>,
    /// The outermost signer's address.
    pub signer: Option<String>,
    /// SHA-256 (hex) of the innermost content.
    pub content_sha256: String,
    pub layers: Vec<Layer>,
}
