//! The audit log: one append-only row per change smimekit makes in any directory (publish,
//! unpublish, trust push, import), each carrying a hash of the previous one (see
//! `smimekit_core::store`). Not to be confused with `audit`, the directory hygiene audit.
//!
//! A change is recorded once the directory has answered, with its outcome: `ok`, or what
//! failed (a refused write, a read-back that contradicts it).

use serde::Serialize;
use smimekit_core::store::{AuditEntry, AuditFilter, AuditProblem, AuditRecord, AuditVerdict};
use smimekit_core::{CertDer, Mailbox, RecipientKind};
use smimekit_pki::certinfo;

use crate::certs::rfc3339;
use crate::store::store_error;
use crate::{Service, ServiceError, TrustResult};

/// `smimekit audit log`.
#[derive(Debug, Clone, Default)]
pub struct AuditLogRequest {
    /// Only rows at or after this time (seconds since the Unix epoch).
    pub since: Option<i64>,
    /// Only rows for this address (case-insensitive).
    pub address: Option<String>,
    pub directory: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditLogResult {
    pub store: String,
    /// Oldest first.
    pub rows: Vec<AuditLogRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditLogRow {
    pub seq: i64,
    pub time: String,
    pub actor: String,
    pub frontend: String,
    pub operation: String,
    pub directory: String,
    pub address: String,
    /// SHA-1 thumbprints before and after the change.
    pub before: Vec<String>,
    pub after: Vec<String>,
    pub result: String,
    pub hash: String,
}

impl From<AuditRecord> for AuditLogRow {
    fn from(r: AuditRecord) -> Self {
        Self {
            seq: r.seq,
            time: rfc3339(r.entry.time),
            actor: r.entry.actor,
            frontend: r.entry.frontend,
            operation: r.entry.operation,
            directory: r.entry.directory,
            address: r.entry.address,
            before: r.entry.before,
            after: r.entry.after,
            result: r.entry.result,
            hash: r.hash,
        }
    }
}

/// `smimekit audit verify`.
#[derive(Debug, Clone, Serialize)]
pub struct AuditVerifyResult {
    pub store: String,
    pub intact: bool,
    /// Rows checked and found intact (before the first bad one).
    pub rows_ok: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad: Option<AuditBadRow>,
}

/// The first row that was changed or removed.
#[derive(Debug, Clone, Serialize)]
pub struct AuditBadRow {
    pub seq: i64,
    /// `changed` or `removed`.
    pub problem: &'static str,
    /// The row as stored now (none when it was removed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row: Option<AuditLogRow>,
}

/// A change to one recipient, as the audit log records it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Change<'a> {
    pub operation: &'a str,
    pub directory: &'a str,
    pub address: &'a Mailbox,
    /// The recipient's certificates before.
    pub before: &'a [CertDer],
}

impl<'a> Change<'a> {
    pub(crate) fn new(
        operation: &'a str,
        directory: &'a str,
        address: &'a Mailbox,
        before: &'a [CertDer],
    ) -> Self {
        Self {
            operation,
            directory,
            address,
            before,
        }
    }
}

/// SHA-1 thumbprints (uppercase hex) of certificates, for audit rows.
pub(crate) fn thumbprints(certs: &[CertDer]) -> Vec<String> {
    certs
        .iter()
        .map(|c| {
            certinfo::parse(c)
                .map(|i| i.sha1_thumbprint)
                .unwrap_or_else(|_| format!("unreadable-{}-bytes", c.as_bytes().len()))
        })
        .collect()
}

impl Service {
    /// `smimekit audit log`.
    pub async fn audit_log(&self, req: &AuditLogRequest) -> Result<AuditLogResult, ServiceError> {
        let store = self.store().await?;
        let rows = store
            .audit_log(&AuditFilter {
                since: req.since,
                address: req.address.clone(),
                directory: req.directory.clone(),
            })
            .await
            .map_err(store_error)?;
        Ok(AuditLogResult {
            store: store.describe(),
            rows: rows.into_iter().map(AuditLogRow::from).collect(),
        })
    }

    /// `smimekit audit verify`: recomputes the hash chain; the first row changed or removed.
    pub async fn audit_verify(&self) -> Result<AuditVerifyResult, ServiceError> {
        let store = self.store().await?;
        let verdict = store.audit_verify().await.map_err(store_error)?;
        let (intact, rows_ok, first_bad) = match verdict {
            AuditVerdict::Intact { rows } => (true, rows, None),
            AuditVerdict::Broken {
                seq,
                problem,
                rows_ok,
            } => {
                let row = match problem {
                    AuditProblem::Changed => store
                        .audit_log(&AuditFilter::default())
                        .await
                        .map_err(store_error)?
                        .into_iter()
                        .find(|r| r.seq == seq)
                        .map(AuditLogRow::from),
                    AuditProblem::Removed => None,
                };
                let problem = match problem {
                    AuditProblem::Changed => "changed",
                    AuditProblem::Removed => "removed",
                };
                (false, rows_ok, Some(AuditBadRow { seq, problem, row }))
            }
        };
        Ok(AuditVerifyResult {
            store: store.describe(),
            intact,
            rows_ok,
            first_bad,
        })
    }

    /// Appends one row for a change made by this service's actor.
    pub(crate) async fn audit_change(
        &self,
        operation: &str,
        directory: &str,
        address: &str,
        before: Vec<String>,
        after: Vec<String>,
        result: String,
    ) -> Result<(), ServiceError> {
        let store = self.store().await?;
        store
            .audit_append(&AuditEntry {
                time: self.now(),
                actor: self.actor.user.clone(),
                frontend: self.actor.frontend.clone(),
                operation: operation.to_string(),
                directory: directory.to_string(),
                address: address.to_string(),
                before,
                after,
                result,
            })
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// After a write to a directory was attempted: the audit row (with `outcome`) and, when
    /// the directory answered with its content `after` (kind and certificates), the
    /// inventory. A failure to record is an error that says whether the change was made.
    pub(crate) async fn record_write(
        &self,
        change: &Change<'_>,
        after: Option<(Option<RecipientKind>, &[CertDer])>,
        published: Option<&CertDer>,
        outcome: &Result<(), ServiceError>,
    ) -> Result<(), ServiceError> {
        let result = match outcome {
            Ok(()) => "ok".to_string(),
            Err(e) => format!("failed: {e}"),
        };
        let Change {
            operation,
            directory,
            address,
            before,
        } = *change;
        let recorded = async {
            self.audit_change(
                operation,
                directory,
                address.as_str(),
                thumbprints(before),
                after.map(|(_, a)| thumbprints(a)).unwrap_or_default(),
                result,
            )
            .await?;
            if let Some((kind, after)) = after {
                self.record_sighting(directory, address, kind, after, published)
                    .await?;
            }
            Ok::<_, ServiceError>(())
        }
        .await;
        recorded.map_err(|e| {
            e.context(format!(
                "{operation} for {address} in directory {directory} ({}), but recording it",
                if outcome.is_ok() { "done" } else { "failed" }
            ))
        })
    }

    /// The audit row of a trust push: the chain's thumbprints before and after.
    pub(crate) async fn record_trust_push(
        &self,
        directory: &str,
        before: &[CertDer],
        outcome: &Result<TrustResult, ServiceError>,
    ) -> Result<(), ServiceError> {
        let (after, result) = match outcome {
            Ok(r) => (
                r.certificates
                    .iter()
                    .map(|c| c.sha1_thumbprint.clone())
                    .collect(),
                "ok".to_string(),
            ),
            Err(e) => (Vec::new(), format!("failed: {e}")),
        };
        self.audit_change(
            "trust-push",
            directory,
            "",
            thumbprints(before),
            after,
            result,
        )
        .await
        .map_err(|e| {
            e.context(format!(
                "trust push to directory {directory} ({}), but recording it",
                if outcome.is_ok() { "done" } else { "failed" }
            ))
        })
    }
}
