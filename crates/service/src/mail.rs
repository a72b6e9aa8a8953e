//! Mail operations: sign, encrypt, verify, decrypt and open.

use std::sync::Arc;

use smimekit_core::{ContentCipher, DecryptionKey, DigestAlg, PrivateKey};
use smimekit_message::envelope::EncryptOptions;
use smimekit_message::report::OpenReport;
use smimekit_message::signed::{SignOptions, VerifyContext, VerifyPolicy};
use smimekit_message::smime::{self, OpenOptions};

use crate::signer_chain::SignerChain;
use crate::{ErrorKind, Named, Service, ServiceError};

/// `smimekit sign`.
#[derive(Debug, Clone)]
pub struct SignRequest {
    pub key: Arc<dyn PrivateKey>,
    pub digest: DigestAlg,
    pub pss: bool,
    pub opaque: bool,
    pub message: Vec<u8>,
    /// Issuer certificates (PEM, DER, PKCS#7, SST) to complete the signer's chain when neither
    /// the key store nor the directories have them.
    pub chain: Vec<Named<Vec<u8>>>,
}

/// What `sign` made: the signed message, and the chain it carries.
#[derive(Debug, Clone)]
pub struct SignResult {
    pub message: Vec<u8>,
    pub chain: SignerChain,
}

/// One recipient (or several) of `encrypt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncryptTo {
    /// Certificates (PEM, DER, PKCS#7, SST): every end-entity certificate among them is a
    /// recipient; CA certificates bundled beside them are not.
    Certificates(Named<Vec<u8>>),
    /// An address, resolved through the configured directories (in search order) to its
    /// usable certificate ([`Service::resolve_recipient`]).
    Address(String),
}

/// `smimekit encrypt`.
#[derive(Debug, Clone)]
pub struct EncryptRequest {
    /// The recipients: certificates or addresses.
    pub to: Vec<EncryptTo>,
    pub cipher: ContentCipher,
    pub oaep: bool,
    pub message: Vec<u8>,
    /// Encrypt to an address's certificate even when it does not name the address or does not
    /// chain to the directory's trust chain.
    pub force: bool,
}

/// `smimekit open` (and `verify`).
#[derive(Debug, Clone, Default)]
pub struct OpenRequest {
    /// Keys to decrypt with, with or without their certificates
    /// ([`Service::open_decryption_key`]).
    pub keys: Vec<DecryptionKey>,
    /// Trust anchors (PEM, DER, PKCS#7, SST).
    pub trust: Vec<Named<Vec<u8>>>,
    /// Untrusted intermediate or signer certificates.
    pub certs: Vec<Named<Vec<u8>>>,
    pub crls: Vec<Vec<u8>>,
    /// Validation time (Unix seconds); the service clock when absent.
    pub at: Option<i64>,
    pub message: Vec<u8>,
    /// Content of a raw CMS detached signature.
    pub detached_content: Option<Vec<u8>>,
    /// Accept SHA-1 signatures (old mail); the report says so. MD5 is never accepted.
    pub allow_sha1: bool,
    /// Accept signers whose certificate does not name the message's From/Sender address;
    /// the report says so.
    pub allow_address_mismatch: bool,
}

/// `smimekit decrypt`: remove the outer encryption layer only.
#[derive(Debug, Clone)]
pub struct DecryptRequest {
    pub keys: Vec<DecryptionKey>,
    pub message: Vec<u8>,
}

/// The report and the innermost content.
#[derive(Debug, Clone)]
pub struct OpenResult {
    pub report: OpenReport,
    pub content: Vec<u8>,
}

impl Service {
    /// Signs with the signer's chain (no root) built from the key store, the directories'
    /// trust chains and `req.chain`; an incomplete chain is reported in the result, not refused.
    pub async fn sign(&self, req: SignRequest) -> Result<SignResult, ServiceError> {
        if req.pss && !matches!(req.key.kind(), smimekit_core::KeyKind::Rsa { .. }) {
            return Err(ServiceError::new(
                ErrorKind::Invalid,
                "RSA-PSS needs an RSA key (this key is not RSA)",
            )
            .for_field("pss"));
        }
        let (chain, report) = self.signer_chain(req.key.as_ref(), &req.chain).await?;
        let opts = SignOptions {
            digest: req.digest,
            pss: req.pss,
            detached: !req.opaque,
            signing_time: self.now(),
            chain,
        };
        let message =
            smime::sign_message(self.engine(), req.key.as_ref(), &req.message, &opts).await?;
        Ok(SignResult {
            message,
            chain: report,
        })
    }

    pub async fn encrypt(&self, req: EncryptRequest) -> Result<Vec<u8>, ServiceError> {
        if req.to.is_empty() {
            return Err(ServiceError::new(ErrorKind::Invalid, "no recipient given").for_field("to"));
        }
        // A file may carry the recipient with its issuers (a PKCS#7 or PEM bundle, an export
        // with its chain): encrypt to its end-entity certificates, never to the CAs beside them.
        let mut recipients = Vec::new();
        for to in &req.to {
            let input = match to {
                EncryptTo::Certificates(input) => input,
                EncryptTo::Address(a) => {
                    recipients.push(self.resolve_recipient_with(a, None, req.force).await?);
                    continue;
                }
            };
            let certs = self.certificates(input)?;
            let is_ca = |c: &smimekit_core::CertDer| {
                smimekit_pki::certinfo::parse(c).is_ok_and(|i| i.is_ca)
            };
            if certs.iter().any(|c| !is_ca(c)) {
                recipients.extend(certs.into_iter().filter(|c| !is_ca(c)));
            } else {
                recipients.extend(certs);
            }
        }
        let opts = EncryptOptions {
            cipher: req.cipher,
            oaep: req.oaep,
        };
        Ok(smime::encrypt_message(
            self.engine(),
            &recipients,
            &req.message,
            &opts,
        )?)
    }

    pub async fn open(&self, req: OpenRequest) -> Result<OpenResult, ServiceError> {
        let opts = self.open_options(&req, false)?;
        let opened = smime::open(self.engine(), req.message, &req.keys, &opts).await?;
        Ok(OpenResult {
            report: opened.report,
            content: opened.content,
        })
    }

    pub async fn decrypt(&self, req: DecryptRequest) -> Result<OpenResult, ServiceError> {
        let opts = OpenOptions {
            single_layer: true,
            ..OpenOptions::default()
        };
        let opened = smime::open(self.engine(), req.message, &req.keys, &opts).await?;
        if !opened.report.layers.first().is_some_and(|l| {
            matches!(
                l.kind,
                smimekit_message::report::LayerKind::Enveloped
                    | smimekit_message::report::LayerKind::AuthEnveloped
            )
        }) {
            return Err(ServiceError::new(
                ErrorKind::Malformed,
                "the message is not encrypted (use verify or open)",
            ));
        }
        Ok(OpenResult {
            report: opened.report,
            content: opened.content,
        })
    }

    fn open_options(&self, req: &OpenRequest, single: bool) -> Result<OpenOptions, ServiceError> {
        Ok(OpenOptions {
            verify: VerifyContext {
                anchors: self.all_certificates(&req.trust)?,
                extra_certs: self.all_certificates(&req.certs)?,
                crls: req.crls.clone(),
                at: req.at.unwrap_or_else(|| self.now()),
                senders: Default::default(),
                policy: VerifyPolicy {
                    allow_sha1: req.allow_sha1,
                    allow_address_mismatch: req.allow_address_mismatch,
                },
            },
            detached_content: req.detached_content.clone(),
            single_layer: single,
        })
    }
}
