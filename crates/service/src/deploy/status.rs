//! `status`: per person and directory, whether Outlook/OWA can encrypt to them, and which
//! certificates expire soon; for a cron job or a systemd timer (it fails when anything is
//! not ready or expiring). Reminders are recorded in the store, so the same one is flagged
//! new at most once a day.

use std::sync::Arc;

use serde::Serialize;
use smimekit_core::{CertDer, Directory, Mailbox, RecipientKind};
use smimekit_pki::certinfo;

use super::plan::{CertRef, Readiness, Remembering, prepared, read_entries, read_trust};
use super::spec::Desired;
use crate::certs::rfc3339;
use crate::store::store_error;
use crate::{Service, ServiceError};

const DAY: i64 = 86_400;

/// What `status` looks at.
#[derive(Debug, Clone)]
pub struct StatusRequest {
    /// The people of a deploy file; `None`: everyone in every configured directory.
    pub desired: Option<Desired>,
    /// A certificate is expiring when the person's last one ends within this many days.
    pub expiring_days: u32,
}

/// One person in one directory.
#[derive(Debug, Clone, Serialize)]
pub struct StatusEntry {
    pub directory: String,
    pub address: String,
    /// `None`: the directory has no entry for the address.
    pub kind: Option<RecipientKind>,
    pub ready: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    pub certificates: Vec<CertRef>,
    /// The certificates that end within the window, when no later one follows them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expiring: Vec<CertRef>,
    /// Not reminded of in the last day (a monitor's new alert).
    pub new_reminder: bool,
}

/// What `status` found.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub at: String,
    pub expiring_days: u32,
    pub people: usize,
    pub ready: usize,
    pub not_ready: usize,
    pub expiring: usize,
    pub entries: Vec<StatusEntry>,
}

impl StatusReport {
    /// Everyone ready and nothing expiring.
    pub fn ok(&self) -> bool {
        self.not_ready == 0 && self.expiring == 0
    }
}

impl Service {
    /// `smimekit status`.
    pub async fn status(&self, req: &StatusRequest) -> Result<StatusReport, ServiceError> {
        let now = self.now();
        let horizon = now + i64::from(req.expiring_days) * DAY;
        let names = match &req.desired {
            Some(d) => self.deploy_directories(d)?,
            None => self.directory_names(),
        };
        let trust: Vec<CertDer> = req
            .desired
            .as_ref()
            .and_then(|d| d.trust.as_ref())
            .map(|t| t.certificates.clone())
            .unwrap_or_default();
        let store = self.store().await?;
        // The CA certificates above everyone are verified once.
        let verifier = Remembering::new(self.engine().verifier);
        let mut entries = Vec::new();
        for name in names {
            let dir: Arc<dyn Directory> = self.open_directory(&name).await?;
            let addresses: Vec<Mailbox> = match &req.desired {
                Some(d) => d
                    .people
                    .iter()
                    .filter(|p| p.directories.contains(&name))
                    .map(|p| p.address.clone())
                    .collect(),
                None => dir
                    .recipients()
                    .await
                    .map_err(|e| {
                        ServiceError::from(e).context(format!("status: directory {name}"))
                    })?
                    .into_iter()
                    .map(|r| r.address)
                    .collect(),
            };
            let read = read_entries(&dir, &addresses)
                .await
                .map_err(|e| ServiceError::from(e).context(format!("status: directory {name}")))?;
            let anchors = if trust.is_empty() {
                read_trust(dir.as_ref())
                    .await
                    .map_err(|e| {
                        ServiceError::from(e).context(format!("status: directory {name}"))
                    })?
                    .unwrap_or_default()
            } else {
                trust.clone()
            };
            let anchors = prepared(&anchors);
            for a in &addresses {
                let r = read.get(&a.key()).and_then(Option::as_ref);
                let certs: Vec<CertDer> = r.map(|r| r.certificates.clone()).unwrap_or_default();
                let Readiness {
                    encryptable,
                    reasons,
                } = self.readiness(&verifier, a, &certs, anchors.as_deref(), now);
                let reasons = if r.is_none() {
                    vec!["no entry in the directory".into()]
                } else {
                    reasons
                };
                let infos: Vec<(CertDer, certinfo::CertInfo)> = certs
                    .iter()
                    .filter_map(|c| certinfo::parse(c).ok().map(|i| (c.clone(), i)))
                    .filter(|(_, i)| i.not_after >= now && !i.is_ca)
                    .collect();
                let last = infos.iter().map(|(_, i)| i.not_after).max();
                let expiring: Vec<CertRef> = match last {
                    Some(l) if l <= horizon => infos
                        .iter()
                        .filter(|(_, i)| i.not_after == l)
                        .map(|(c, _)| CertRef::of(c))
                        .collect(),
                    _ => Vec::new(),
                };
                let mut new_reminder = false;
                if !encryptable || !expiring.is_empty() {
                    let what = expiring
                        .iter()
                        .map(|c| c.thumbprint.clone())
                        .collect::<Vec<_>>()
                        .join(",");
                    let key = format!(
                        "status/{name}/{}/{}",
                        a.key(),
                        if what.is_empty() { "not-ready" } else { &what }
                    );
                    new_reminder = store
                        .remind(&key, now - DAY, now)
                        .await
                        .map_err(store_error)?;
                }
                entries.push(StatusEntry {
                    directory: name.clone(),
                    address: a.to_string(),
                    kind: r.map(|r| r.kind),
                    ready: encryptable,
                    reasons: if encryptable { Vec::new() } else { reasons },
                    certificates: certs.iter().map(CertRef::of).collect(),
                    expiring,
                    new_reminder,
                });
            }
        }
        Ok(StatusReport {
            at: rfc3339(now),
            expiring_days: req.expiring_days,
            people: entries.len(),
            ready: entries.iter().filter(|e| e.ready).count(),
            not_ready: entries.iter().filter(|e| !e.ready).count(),
            expiring: entries.iter().filter(|e| !e.expiring.is_empty()).count(),
            entries,
        })
    }
}
