//! People: every address the inventory knows, one row each, with its directories, its
//! certificates and a status — the list the web admin and the TUI page, filter and sort. It
//! reads the store only (no directory is asked): a person's detail, with lint and "can
//! Outlook/OWA encrypt to them", is a lookup ([`Service::lookup`]).

use std::collections::BTreeMap;

use serde::Serialize;
use smimekit_core::RecipientKind;
use smimekit_core::store::InventoryQuery;

use crate::certs::rfc3339;
use crate::store::store_error;
use crate::{ErrorKind, Service, ServiceError};

const DAY: i64 = 86_400;
/// The largest page [`PeopleQuery::page_size`] may ask for.
pub const MAX_PAGE_SIZE: usize = 1_000;

/// A person's status, from the certificates the inventory saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PersonStatus {
    /// No valid certificate anywhere: nobody can encrypt to them.
    NotReady,
    /// The last valid certificate ends within the expiry window.
    Expiring,
    Ready,
}

impl PersonStatus {
    pub fn name(self) -> &'static str {
        match self {
            Self::NotReady => "not-ready",
            Self::Expiring => "expiring",
            Self::Ready => "ready",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "not-ready" => Some(Self::NotReady),
            "expiring" => Some(Self::Expiring),
            "ready" => Some(Self::Ready),
            _ => None,
        }
    }
}

/// How [`PeopleQuery`] sorts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PeopleSort {
    #[default]
    Address,
    Status,
    /// Earliest expiry first.
    Expiry,
}

/// What to list.
#[derive(Clone, Debug, Default)]
pub struct PeopleQuery {
    /// Part of the address, any case.
    pub query: Option<String>,
    /// Only people seen in this directory.
    pub directory: Option<String>,
    pub status: Option<PersonStatus>,
    /// Days before expiry that make a person `expiring` (default 30).
    pub expiring_days: Option<u32>,
    pub sort: PeopleSort,
    /// 0-based.
    pub page: usize,
    /// Default 50, at most [`MAX_PAGE_SIZE`].
    pub page_size: Option<usize>,
}

/// One person.
#[derive(Clone, Debug, Serialize)]
pub struct PersonRow {
    pub address: String,
    /// `None` when the directories disagree or did not say.
    pub kind: Option<RecipientKind>,
    pub directories: Vec<String>,
    /// Certificates present, over all directories (one certificate in two directories counts once).
    pub certificates: usize,
    pub status: PersonStatus,
    /// The not-after of the valid certificate that ends first, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub earliest_expiry: Option<String>,
    #[serde(skip)]
    pub earliest_expiry_unix: Option<i64>,
}

/// One page of people.
#[derive(Clone, Debug, Serialize)]
pub struct PeoplePage {
    /// People matching the query, over all pages.
    pub total: usize,
    pub page: usize,
    pub page_size: usize,
    pub people: Vec<PersonRow>,
    /// Counts over everyone matching the query but the status filter.
    pub ready: usize,
    pub not_ready: usize,
    pub expiring: usize,
}

impl Service {
    /// Every person of the inventory (see the module documentation); store only.
    pub async fn people_all(&self, expiring_days: u32) -> Result<Vec<PersonRow>, ServiceError> {
        let store = self.store().await?;
        let rows = store
            .inventory(&InventoryQuery::default())
            .await
            .map_err(store_error)?;
        let now = self.now();
        let horizon = now + i64::from(expiring_days) * DAY;
        struct Acc {
            kinds: Vec<Option<RecipientKind>>,
            directories: Vec<String>,
            certs: Vec<String>,
            valid_until: Vec<i64>,
        }
        let mut by: BTreeMap<String, Acc> = BTreeMap::new();
        for r in rows.into_iter().filter(|r| r.present) {
            let a = by.entry(r.address.to_ascii_lowercase()).or_insert(Acc {
                kinds: Vec::new(),
                directories: Vec::new(),
                certs: Vec::new(),
                valid_until: Vec::new(),
            });
            if !a.kinds.contains(&r.recipient_kind) {
                a.kinds.push(r.recipient_kind);
            }
            if !a.directories.contains(&r.directory) {
                a.directories.push(r.directory);
            }
            if !a.certs.contains(&r.facts.sha1) {
                a.certs.push(r.facts.sha1);
            }
            if r.facts.not_before <= now && r.facts.not_after >= now {
                a.valid_until.push(r.facts.not_after);
            }
        }
        Ok(by
            .into_iter()
            .map(|(address, mut a)| {
                a.directories.sort();
                let earliest = a.valid_until.iter().copied().min();
                let last = a.valid_until.iter().copied().max();
                let status = match last {
                    None => PersonStatus::NotReady,
                    Some(l) if l <= horizon => PersonStatus::Expiring,
                    Some(_) => PersonStatus::Ready,
                };
                PersonRow {
                    address,
                    kind: match a.kinds.as_slice() {
                        [one] => *one,
                        _ => None,
                    },
                    directories: a.directories,
                    certificates: a.certs.len(),
                    status,
                    earliest_expiry: earliest.map(rfc3339),
                    earliest_expiry_unix: earliest,
                }
            })
            .collect())
    }

    /// The first `count` people by address, as [`Service::people_all`] would list them: what a
    /// frontend shows before the whole list is in (the TUI's first frame).
    pub async fn people_first(
        &self,
        count: usize,
        expiring_days: u32,
    ) -> Result<Vec<PersonRow>, ServiceError> {
        let mut all = self.people_all(expiring_days).await?;
        all.truncate(count);
        Ok(all)
    }

    /// One page of [`Service::people_all`], filtered and sorted.
    pub async fn people(&self, q: &PeopleQuery) -> Result<PeoplePage, ServiceError> {
        let page_size = q.page_size.unwrap_or(50);
        if page_size == 0 || page_size > MAX_PAGE_SIZE {
            return Err(ServiceError::new(
                ErrorKind::Invalid,
                format!("page size {page_size}: from 1 to {MAX_PAGE_SIZE}"),
            )
            .for_field("page_size"));
        }
        let all = self.people_all(q.expiring_days.unwrap_or(30)).await?;
        let needle = q.query.as_deref().map(str::to_ascii_lowercase);
        let mut matching: Vec<PersonRow> = all
            .into_iter()
            .filter(|p| needle.as_deref().is_none_or(|n| p.address.contains(n)))
            .filter(|p| {
                q.directory
                    .as_deref()
                    .is_none_or(|d| p.directories.iter().any(|x| x == d))
            })
            .collect();
        let count = |s: PersonStatus| matching.iter().filter(|p| p.status == s).count();
        let (ready, not_ready, expiring) = (
            count(PersonStatus::Ready),
            count(PersonStatus::NotReady),
            count(PersonStatus::Expiring),
        );
        if let Some(s) = q.status {
            matching.retain(|p| p.status == s);
        }
        match q.sort {
            PeopleSort::Address => {}
            PeopleSort::Status => matching.sort_by_key(|p| p.status),
            PeopleSort::Expiry => {
                matching.sort_by_key(|p| p.earliest_expiry_unix.unwrap_or(i64::MAX))
            }
        }
        let total = matching.len();
        let people = matching
            .into_iter()
            .skip(q.page.saturating_mul(page_size))
            .take(page_size)
            .collect();
        Ok(PeoplePage {
            total,
            page: q.page,
            page_size,
            people,
            ready,
            not_ready,
            expiring,
        })
    }
}

/// `GET /api/v1/people/{address}`: a person as every configured directory holds them, each
/// certificate linted (the OWA profile, against that directory's trust chain when it keeps one),
/// and the audit log's rows for the address. Asks the directories (each answer is recorded in
/// the inventory, as a lookup's is); a directory that fails is reported in its entry, not as the
/// request's failure.
#[derive(Clone, Debug, Serialize)]
pub struct PersonDetail {
    pub address: String,
    pub directories: Vec<PersonDirectory>,
    /// Outlook / OWA can encrypt to them through at least one directory.
    pub can_encrypt: bool,
    /// The audit log's rows for this address, oldest first.
    pub history: Vec<crate::AuditLogRow>,
}

/// One directory's entry for a person.
#[derive(Clone, Debug, Serialize)]
pub struct PersonDirectory {
    pub directory: String,
    /// `None`: no entry in this directory (or it could not be read).
    pub kind: Option<RecipientKind>,
    pub certificates: Vec<PersonCert>,
    /// A certificate here is usable for encryption and has no lint error.
    pub can_encrypt: bool,
    /// Why this directory could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A certificate of a person, with its lint findings and its PEM (public data).
#[derive(Clone, Debug, Serialize)]
pub struct PersonCert {
    #[serde(flatten)]
    pub cert: crate::DirectoryCert,
    pub findings: Vec<crate::Finding>,
    pub pem: String,
}

impl Service {
    /// See [`PersonDetail`]; `Invalid` when `address` is not an address.
    pub async fn person(&self, address: &str) -> Result<PersonDetail, ServiceError> {
        let mailbox = crate::directory::parse_address(address)?;
        let now = self.now();
        let mut directories = Vec::new();
        for name in self.directory_names() {
            directories.push(match self.person_in(&name, &mailbox, now).await {
                Ok(d) => d,
                Err(e) => PersonDirectory {
                    directory: name,
                    kind: None,
                    certificates: Vec::new(),
                    can_encrypt: false,
                    error: Some(e.to_string()),
                },
            });
        }
        let history = match self.store {
            Some(_) => {
                self.audit_log(&crate::AuditLogRequest {
                    address: Some(mailbox.to_string()),
                    ..crate::AuditLogRequest::default()
                })
                .await?
                .rows
            }
            None => Vec::new(),
        };
        Ok(PersonDetail {
            address: mailbox.to_string(),
            can_encrypt: directories.iter().any(|d| d.can_encrypt),
            directories,
            history,
        })
    }

    async fn person_in(
        &self,
        name: &str,
        mailbox: &smimekit_core::Mailbox,
        now: i64,
    ) -> Result<PersonDirectory, ServiceError> {
        let dir = self.open_directory(name).await?;
        let Some(r) = dir.recipient(mailbox).await? else {
            return Ok(PersonDirectory {
                directory: name.to_string(),
                kind: None,
                certificates: Vec::new(),
                can_encrypt: false,
                error: None,
            });
        };
        if self.store.is_some() {
            self.record_sighting(name, mailbox, Some(r.kind), &r.certificates, None)
                .await?;
        }
        let trust_store = match dir.trust_chain().await {
            Ok(c) if !c.is_empty() => Some(c),
            _ => None,
        };
        let report = smimekit_pki::lint::lint(
            self.engine().verifier,
            &r.certificates,
            &smimekit_pki::lint::LintOptions {
                profile: crate::Profile::Owa,
                at: now,
                expiring_days: 30,
                address: Some(mailbox.to_string()),
                trust_store,
            },
        );
        let mut findings: Vec<Vec<crate::Finding>> = report
            .certificates
            .into_iter()
            .map(|c| c.findings)
            .collect();
        findings.resize(r.certificates.len(), Vec::new());
        let certificates: Vec<PersonCert> = r
            .certificates
            .iter()
            .zip(findings)
            .map(|(c, findings)| PersonCert {
                cert: self.directory_cert(c),
                findings,
                pem: smimekit_pki::container::write_pem(std::slice::from_ref(c)),
            })
            .collect();
        let can_encrypt = certificates.iter().any(|c| {
            c.cert.usable_for_encryption
                && !c
                    .findings
                    .iter()
                    .any(|f| f.severity == crate::Severity::Error)
        });
        Ok(PersonDirectory {
            directory: name.to_string(),
            kind: Some(r.kind),
            certificates,
            can_encrypt,
            error: None,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::{Config, Named, PublishRequest};

    fn fixture(name: &str) -> Named<Vec<u8>> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/pki")
            .join(name);
        Named::new(name, std::fs::read(path).unwrap())
    }

    #[tokio::test]
    async fn people_are_listed_filtered_sorted_and_paged_from_the_inventory() {
        let tmp = tempfile::tempdir().unwrap();
        let config = Config::from_toml(
            "[store]\nurl = \"sqlite:smimekit.db\"\n[directory.one]\nkind = \"local\"\npath = \"one.json\"\n[directory.two]\nkind = \"local\"\npath = \"two.json\"\n",
            &tmp.path().join("config.toml"),
        )
        .unwrap();
        let svc = Service::builder()
            .config(config)
            .clock(smimekit_testkit::pinned_clock())
            .build()
            .unwrap();
        for (address, file, directory) in [
            ("alice@example.org", "alice.pem", "one"),
            ("alice@example.org", "alice.pem", "two"),
            ("bob@example.org", "bob.pem", "two"),
        ] {
            svc.publish(&PublishRequest {
                address: address.into(),
                certificate: fixture(file),
                directory: Some(directory.into()),
                ..PublishRequest::default()
            })
            .await
            .unwrap();
        }
        let all = svc.people(&PeopleQuery::default()).await.unwrap();
        assert_eq!(all.total, 2);
        let alice = &all.people[0];
        assert_eq!(alice.address, "alice@example.org");
        assert_eq!(alice.directories, ["one", "two"]);
        // The same certificate in two directories is one certificate.
        assert_eq!(alice.certificates, 1);
        assert_eq!(alice.kind, Some(RecipientKind::Mailbox));
        let two = svc
            .people(&PeopleQuery {
                directory: Some("one".into()),
                ..PeopleQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(two.total, 1);
        let found = svc
            .people(&PeopleQuery {
                query: Some("BOB".into()),
                ..PeopleQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(found.people[0].address, "bob@example.org");
        let paged = svc
            .people(&PeopleQuery {
                page: 1,
                page_size: Some(1),
                ..PeopleQuery::default()
            })
            .await
            .unwrap();
        assert_eq!((paged.total, paged.people.len()), (2, 1));
        assert_eq!(paged.people[0].address, "bob@example.org");
        assert_eq!(all.ready + all.expiring + all.not_ready, 2);
        let bad = svc
            .people(&PeopleQuery {
                page_size: Some(0),
                ..PeopleQuery::default()
            })
            .await
            .unwrap_err();
        assert_eq!(bad.field, Some("page_size"));
    }
}
