//! The directory port: where recipients' certificates are found and published.
//!
//! Backends (embedded, LDAP, Exchange Online) implement [`Directory`]. Writes have merge
//! semantics chosen by [`PublishMode`]: a directory write never drops a certificate it was
//! not told to drop.

use std::fmt::Debug;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{CertDer, Mailbox};

/// A mailbox of the organisation, or an external contact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecipientKind {
    Mailbox,
    Contact,
}

/// One recipient and the certificates published for it.
#[derive(Clone, Debug)]
pub struct Recipient {
    pub address: Mailbox,
    pub kind: RecipientKind,
    pub certificates: Vec<CertDer>,
}

/// One stored value of a recipient, as a backend with several attributes keeps it (LDAP:
/// `userCertificate` and `userSMIMECertificate`), for hygiene checks.
#[derive(Clone, Debug)]
pub struct StoredValue {
    /// The attribute or field holding it (`userCertificate`, `userSMIMECertificate`).
    pub attribute: String,
    /// The certificates in the value: one for a DER certificate, leaf and chain for PKCS#7.
    pub certificates: Vec<CertDer>,
    /// Mail clients read this attribute's values before the others' (Outlook reads
    /// `userSMIMECertificate` first, and only without one `userCertificate`).
    pub preferred: bool,
    /// Why the value cannot be read (then `certificates` is empty).
    pub problem: Option<String>,
}

/// A recipient with every stored value and every address it answers to.
#[derive(Clone, Debug)]
pub struct RecipientValues {
    pub recipient: Recipient,
    /// Other addresses of the recipient (AD `proxyAddresses`), besides `recipient.address`.
    pub aliases: Vec<String>,
    /// Where the entry lives (an LDAP DN), for reports.
    pub location: Option<String>,
    pub values: Vec<StoredValue>,
}

/// What a backend's read-only self-test found (`smimekit exchange probe`), for an
/// administrator to run first against a real service and send to the developers.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ProbeReport {
    /// The checks in the order they ran.
    pub checks: Vec<ProbeCheck>,
    /// Configuration lines the findings suggest (`byte_encoding = "base64"`), if any.
    pub suggestions: Vec<String>,
}

/// One check of a [`ProbeReport`].
#[derive(Clone, Debug, Serialize)]
pub struct ProbeCheck {
    /// What was checked (`sign-in`, `read clixml`…).
    pub name: String,
    pub status: ProbeStatus,
    /// What was seen: the evidence to send back.
    pub detail: String,
}

/// The outcome of one probe check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeStatus {
    Passed,
    /// Works, but not as expected (a fallback was needed, something could not be compared).
    Warning,
    Failed,
    /// Not run: an earlier check failed or nothing to check with.
    Skipped,
}

/// How `publish` treats the certificates already there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PublishMode {
    /// Add the new certificate, keep the others.
    Merge,
    /// Keep only the new certificate.
    Replace,
}

/// An interactive sign-in waiting for someone: open `verification_uri`, enter `user_code`
/// (OAuth 2.0 device authorization, RFC 8628). The backend keeps polling until `expires_in`
/// seconds have passed; the host shows it (a frontend renders it), the backend never prints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SignInChallenge {
    /// The configured directory asking.
    pub directory: String,
    /// The identity provider's own instruction, ready to show.
    pub message: String,
    pub verification_uri: String,
    /// What to type at `verification_uri`: not a secret (it is useless without the sign-in
    /// that follows), shown to the person signing in.
    pub user_code: String,
    /// Seconds until the code expires.
    pub expires_in: u64,
}

/// Errors of a directory backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    #[error("{0}: no such recipient")]
    NotFound(Mailbox),
    #[error("{0}: recipient already exists")]
    AlreadyExists(Mailbox),
    #[error("directory rejected the value: {0}")]
    Rejected(String),
    /// Read-back shows something other than what was written.
    #[error("read-back mismatch for {address}: {detail}")]
    ReadBackMismatch { address: Mailbox, detail: String },
    #[error("directory unavailable: {0}")]
    Unavailable(String),
    /// The directory is throttling (or overloaded, or its answer was lost) and the request did
    /// not knowingly complete: try again later, after `retry_after` when the directory said.
    /// A write that failed so may or may not have been applied: read before writing again.
    #[error("directory busy: {detail}")]
    Busy {
        detail: String,
        retry_after: Option<std::time::Duration>,
    },
    /// The directory's configuration is wrong (missing or unknown key, bad value).
    #[error("directory configuration: {0}")]
    Config(String),
    /// The stored directory cannot be read (names the file or entry and the cause).
    #[error("directory data corrupt: {0}")]
    Corrupt(String),
    /// The backend does not implement this operation.
    #[error("{0}")]
    Unsupported(String),
    #[error("directory: {0}")]
    Other(String),
}

#[async_trait]
pub trait Directory: Debug + Send + Sync {
    /// The configured name (`local`, `corp-ldap`…).
    fn name(&self) -> &str;

    /// The name a new external contact for `address` gets in this directory (Exchange's
    /// `contact_name` convention, what users pick in the address list); `None`: the address.
    fn contact_name(&self, address: &Mailbox) -> Option<String> {
        let _ = address;
        None
    }

    /// Certificates published for an address (empty when none).
    async fn lookup(&self, address: &Mailbox) -> Result<Vec<CertDer>, DirectoryError>;

    async fn recipients(&self) -> Result<Vec<Recipient>, DirectoryError>;

    /// Publishes `certificate` for `address`, creating the recipient as `kind` if missing.
    /// Returns the certificates the directory holds afterwards, as read back.
    async fn publish(
        &self,
        address: &Mailbox,
        kind: RecipientKind,
        certificate: &CertDer,
        mode: PublishMode,
    ) -> Result<Vec<CertDer>, DirectoryError>;

    /// Removes one certificate value; returns what remains, as read back.
    async fn unpublish(
        &self,
        address: &Mailbox,
        certificate: &CertDer,
    ) -> Result<Vec<CertDer>, DirectoryError>;

    /// One recipient with its kind and certificates, `None` when the directory has no entry.
    ///
    /// The default scans [`Directory::recipients`]; backends with an index override it.
    async fn recipient(&self, address: &Mailbox) -> Result<Option<Recipient>, DirectoryError> {
        Ok(self
            .recipients()
            .await?
            .into_iter()
            .find(|r| &r.address == address))
    }

    /// Every address of the recipient that answers to `address`: `address` first, then the
    /// entry's other addresses (AD `mail` and `proxyAddresses`); empty when the directory has
    /// no such recipient. The addresses of one entry are one person, so a certificate naming
    /// any of them may be published under any of them.
    ///
    /// The default knows one address per recipient; backends with aliases override it.
    async fn addresses(&self, address: &Mailbox) -> Result<Vec<Mailbox>, DirectoryError> {
        Ok(self
            .recipient(address)
            .await?
            .map(|_| vec![address.clone()])
            .unwrap_or_default())
    }

    /// [`Directory::publish`], and in the same write remove the listed certificate values
    /// (those of them present; `certificate` itself is never removed). This is how callers
    /// prune expired certificates: they decide which values are expired, the directory drops
    /// exactly those and nothing it was not told to drop, even when another writer added
    /// certificates meanwhile.
    ///
    /// The default publishes, then unpublishes each value: backends that can write both in
    /// one atomic step override it.
    async fn publish_removing(
        &self,
        address: &Mailbox,
        kind: RecipientKind,
        certificate: &CertDer,
        mode: PublishMode,
        remove: &[CertDer],
    ) -> Result<Vec<CertDer>, DirectoryError> {
        let mut after = self.publish(address, kind, certificate, mode).await?;
        for old in remove {
            if old != certificate && after.contains(old) {
                after = self.unpublish(address, old).await?;
            }
        }
        Ok(after)
    }

    /// Every recipient with its stored values per attribute, for backends that keep
    /// certificates in more than one place (`None`: the backend has one list per recipient,
    /// and [`Directory::recipients`] says everything).
    async fn recipient_values(&self) -> Result<Option<Vec<RecipientValues>>, DirectoryError> {
        Ok(None)
    }

    /// The organisation's trust chain (root and intermediates, as Exchange Online's
    /// `SMIMECertificateIssuingCA` holds it), in stored order.
    async fn trust_chain(&self) -> Result<Vec<CertDer>, DirectoryError> {
        Err(DirectoryError::Unsupported(format!(
            "directory {}: keeps no trust chain",
            self.name()
        )))
    }

    /// Authenticates now and says how; backends without a sign-in have nothing to do. An
    /// interactive sign-in (Exchange Online's device code) is not printed by the backend: it
    /// hands a [`SignInChallenge`] to its host (see `plugin::KeyOpener::show_sign_in`).
    async fn connect(&self) -> Result<String, DirectoryError> {
        Ok(format!("directory {}: no sign-in needed", self.name()))
    }

    /// Ends the session with the backend (an LDAP unbind, a token forgotten); the host drops
    /// the handle afterwards. Hosts that keep directories open (a long-lived service) call it
    /// when asked to close one. The default has nothing to end.
    async fn close(&self) -> Result<(), DirectoryError> {
        Ok(())
    }

    /// Organisation-wide S/MIME settings by name (Exchange Online: the OWA* values of
    /// Get-SmimeConfig), as text.
    async fn org_settings(&self) -> Result<Vec<(String, String)>, DirectoryError> {
        Err(DirectoryError::Unsupported(format!(
            "directory {}: has no organisation S/MIME settings",
            self.name()
        )))
    }

    /// What is risky in organisation settings as [`Self::org_settings`] returns them (weak
    /// algorithms, no revocation check), one sentence each; none when nothing is known.
    fn settings_warnings(&self, settings: &[(String, String)]) -> Vec<String> {
        let _ = settings;
        Vec::new()
    }

    /// Changes some organisation settings; returns all of them as read back.
    async fn set_org_settings(
        &self,
        values: &[(String, String)],
    ) -> Result<Vec<(String, String)>, DirectoryError> {
        let _ = values;
        self.org_settings().await
    }

    /// A read-only self-test against the live service (sign-in, permissions, how values are
    /// written and read), using `address` or a recipient of the backend's choosing.
    async fn probe(&self, address: Option<&Mailbox>) -> Result<ProbeReport, DirectoryError> {
        let _ = address;
        Err(DirectoryError::Unsupported(format!(
            "directory {}: has no probe",
            self.name()
        )))
    }

    /// Replaces the trust chain with `chain` (as Set-SmimeConfig does with an SST); returns
    /// the chain as read back.
    async fn set_trust_chain(&self, chain: &[CertDer]) -> Result<Vec<CertDer>, DirectoryError> {
        let _ = chain;
        Err(DirectoryError::Unsupported(format!(
            "directory {}: cannot store a trust chain",
            self.name()
        )))
    }
}
