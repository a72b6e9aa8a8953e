//! The signer's chain for `sign`: the issuer certificates a signed message carries so that a
//! recipient who holds only the root can verify it (Outlook always includes them).
//!
//! The path is built with `smimekit_pki::chain` from a pool gathered, in order of preference,
//! from the key store (what came with the key, then what its store holds beside it: a token's
//! CA objects, a PKCS#12's bag, the Windows CA store), the trust chains of the configured
//! directories (what `trust push` stored), and the `--chain` files. The directories are asked
//! only when the key store and the files cannot complete the chain, so a complete store costs
//! no directory round trip. Self-signed roots complete a chain but are never included.
//!
//! An incomplete chain is an outcome, not an error: the message is signed with what was found
//! and [`SignerChain`] says which issuer is missing. This module does not validate the chain
//! for trust (that is the recipient's verifier's job) and never asks for credentials.

use serde::Serialize;
use smimekit_core::{CertDer, DirectoryError, PrivateKey};
use smimekit_pki::certinfo;
use smimekit_pki::chain::{ChainBuilder, ChainPath, PathProblem};

use crate::{Named, Service, ServiceError};

/// What `sign` included besides the signer's certificate, and whether that reaches a root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignerChain {
    /// Subjects of the certificates included, nearest issuer first (the root never is).
    pub included: Vec<String>,
    /// The path reaches a self-signed root (known to smimekit, left out of the message).
    pub complete: bool,
    /// When incomplete: the last certificate on the path that was found (the signer's own
    /// when no issuer was found at all).
    pub stops_at: Option<String>,
    /// When incomplete: the issuer name of [`Self::stops_at`] that no source had.
    pub missing_issuer: Option<String>,
    /// Sources that could not be read (a directory that was unreachable…), each named with its
    /// cause; reported because one of them may have held the missing issuer.
    pub unavailable: Vec<String>,
}

impl SignerChain {
    /// A sentence for people when the chain is incomplete; `None` when it is complete. It says
    /// where the issuer was looked for, not how to give it (a frontend adds that: the request's
    /// `chain`, or a directory's trust chain).
    pub fn warning(&self) -> Option<String> {
        if self.complete {
            return None;
        }
        let missing = self.missing_issuer.as_deref().unwrap_or("unknown issuer");
        let stops = self
            .stops_at
            .as_deref()
            .unwrap_or("the signer's certificate");
        let mut s = if self.included.is_empty() {
            format!(
                "signed without the signer's chain: no certificate for {missing:?} (the issuer of {stops:?}) in the key store, the directories' trust chains or the chain certificates given; recipients who do not hold it cannot verify the signature"
            )
        } else {
            format!(
                "the signer's chain stops at {stops:?}: no certificate for its issuer {missing:?} in the key store, the directories' trust chains or the chain certificates given; recipients must already hold it"
            )
        };
        if !self.unavailable.is_empty() {
            s.push_str(&format!("; not searched: {}", self.unavailable.join("; ")));
        }
        Some(s)
    }
}

/// One path-building attempt: the chain to include and the gap, if any.
struct Attempt {
    chain: Vec<CertDer>,
    included: Vec<String>,
    complete: bool,
    stops_at: Option<String>,
    missing_issuer: Option<String>,
}

impl Service {
    /// Builds the chain `key`'s certificate is sent with, from the key store, the configured
    /// directories' trust chains and the `files` (any certificate container). Returns the
    /// certificates to include (nearest issuer first, no root) and the report. A chain file
    /// that cannot be read is an error; a directory that cannot be read is reported in
    /// [`SignerChain::unavailable`].
    pub(crate) async fn signer_chain(
        &self,
        key: &dyn PrivateKey,
        files: &[Named<Vec<u8>>],
    ) -> Result<(Vec<CertDer>, SignerChain), ServiceError> {
        let mut unavailable = Vec::new();
        let mut from_store: Vec<CertDer> = key.chain().to_vec();
        match key.store_certificates().await {
            Ok(more) => from_store.extend(more),
            Err(e) => unavailable.push(format!("key store: {e}")),
        }
        let from_files = self.all_certificates(files)?;

        let pool: Vec<CertDer> = from_store.iter().chain(&from_files).cloned().collect();
        let mut attempt = self.signer_path(key.certificate(), &pool)?;
        if !attempt.complete {
            let from_directories = self.directory_trust_chains(&mut unavailable).await;
            if !from_directories.is_empty() {
                let pool: Vec<CertDer> = from_store
                    .iter()
                    .chain(&from_directories)
                    .chain(&from_files)
                    .cloned()
                    .collect();
                attempt = self.signer_path(key.certificate(), &pool)?;
            }
        }
        let report = SignerChain {
            included: attempt.included,
            complete: attempt.complete,
            stops_at: attempt.stops_at,
            missing_issuer: attempt.missing_issuer,
            unavailable: if attempt.complete {
                Vec::new()
            } else {
                unavailable
            },
        };
        Ok((attempt.chain, report))
    }

    /// Every configured directory's trust chain, in search order. Directories that keep none
    /// are skipped; one that cannot be opened or read is named in `unavailable`.
    async fn directory_trust_chains(&self, unavailable: &mut Vec<String>) -> Vec<CertDer> {
        let mut out = Vec::new();
        for name in self.directory_names() {
            let dir = match self.open_directory(&name).await {
                Ok(d) => d,
                Err(e) => {
                    unavailable.push(format!("directory {name}: {}", e.message));
                    continue;
                }
            };
            match dir.trust_chain().await {
                Ok(chain) => out.extend(chain),
                Err(DirectoryError::Unsupported(_)) => {}
                Err(e) => unavailable.push(format!("directory {name}: {e}")),
            }
        }
        out
    }

    /// The best path from `leaf` through `pool`: the first (fewest problems) that ends at a
    /// self-signed root with every link's signature verifying; else the longest such prefix,
    /// reported with the issuer it lacks.
    fn signer_path(&self, leaf: &CertDer, pool: &[CertDer]) -> Result<Attempt, ServiceError> {
        let builder = ChainBuilder::new(self.engine().verifier, pool, &[])?;
        let report = builder
            .build(leaf, self.now())
            .map_err(|e| ServiceError::from(e).context("the signer's certificate"))?;
        let sound = |p: &&ChainPath| {
            !p.problems
                .iter()
                .any(|x| matches!(x, PathProblem::BadSignature { .. }))
        };
        let reaches_root = |p: &&ChainPath| {
            let last = p.certificates.len().saturating_sub(1);
            p.problems
                .iter()
                .any(|x| matches!(x, PathProblem::UntrustedRoot { cert } if *cert == last))
        };
        let complete = report.paths.iter().filter(sound).find(reaches_root);
        let path = complete.or_else(|| {
            report
                .paths
                .iter()
                .filter(sound)
                .max_by_key(|p| p.certificates.len())
        });
        let Some(path) = path else {
            // No path without a forged link: send the certificate alone.
            let issuer = certinfo::parse(leaf).map(|i| i.issuer).ok();
            return Ok(Attempt {
                chain: Vec::new(),
                included: Vec::new(),
                complete: false,
                stops_at: certinfo::parse(leaf).map(|i| i.subject).ok(),
                missing_issuer: issuer,
            });
        };
        let mut chain = Vec::new();
        let mut included = Vec::new();
        for (c, subject) in path.certificates.iter().zip(&path.subjects).skip(1) {
            if !certinfo::parse(c).is_ok_and(|i| i.self_signed) {
                chain.push(c.clone());
                included.push(subject.clone());
            }
        }
        // A path that ends at a CA certificate (not the leaf) whose issuer we do not hold stops
        // below the root, which is never sent: recipients who trust that root can verify, as
        // `openssl cms -verify -CAfile root.pem` does. Only a chain with nothing above the leaf,
        // or one ending at a certificate that may not issue, is incomplete.
        let stops_at_ca = path.certificates.len() > 1
            && path
                .certificates
                .last()
                .and_then(|c| certinfo::parse(c).ok())
                .is_some_and(|i| i.is_ca);
        if complete.is_some() || stops_at_ca {
            return Ok(Attempt {
                chain,
                included,
                complete: true,
                stops_at: None,
                missing_issuer: None,
            });
        }
        let last = path.certificates.len().saturating_sub(1);
        let missing = path
            .problems
            .iter()
            .find_map(|x| match x {
                PathProblem::UnknownIssuer { cert, issuer } if *cert == last => {
                    Some(issuer.clone())
                }
                _ => None,
            })
            .or_else(|| {
                path.certificates
                    .last()
                    .and_then(|c| certinfo::parse(c).ok())
                    .map(|i| i.issuer)
            });
        Ok(Attempt {
            chain,
            included,
            complete: false,
            stops_at: path.subjects.last().cloned(),
            missing_issuer: missing,
        })
    }
}
