//! People: every address the inventory knows, one row each, with its directories, its
//! certificates and a status — the list the web admin and the TUI page, filter and sort. It
//! reads the store only (no directory is asked): a person's detail, with lint and "can
//! Outlook/OWA encrypt to them", is a lookup ([`Service::lookup`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use smimekit_core::RecipientKind;
use smimekit_core::store::{InventoryCert, InventoryQuery};

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
        let (snap, view) = self.people_view(expiring_days).await?;
        Ok((0..snap.base.people.len())
            .map(|i| snap.row(&view, i))
            .collect())
    }

    /// The first `count` people by address, as [`Service::people_all`] would list them: what a
    /// frontend shows before the whole list is in (the TUI's first frame). Reads only those
    /// people's rows of the store, however large the inventory.
    pub async fn people_first(
        &self,
        count: usize,
        expiring_days: u32,
    ) -> Result<Vec<PersonRow>, ServiceError> {
        let store = self.store().await?;
        let rows = store
            .inventory_first_addresses(count)
            .await
            .map_err(store_error)?;
        let snap = Snapshot::new(0, Arc::new(BaseIndex::new(rows)), self.now());
        let view = snap.view(expiring_days, snap.now);
        let mut people: Vec<PersonRow> = (0..snap.base.people.len())
            .map(|i| snap.row(&view, i))
            .collect();
        people.truncate(count);
        Ok(people)
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
        let (snap, view) = self.people_view(q.expiring_days.unwrap_or(30)).await?;
        let n = snap.base.people.len();
        // Who matches the query and the directory, by address (`None`: everyone).
        let needle = q
            .query
            .as_deref()
            .map(str::to_ascii_lowercase)
            .filter(|n| !n.is_empty());
        let mut matched: Option<Vec<u32>> = needle.as_deref().map(|n| snap.base.matching(n));
        if let Some(d) = q.directory.as_deref() {
            let here = |i: &u32| {
                snap.base.people[*i as usize]
                    .directories
                    .iter()
                    .any(|x| x == d)
            };
            match &mut matched {
                Some(m) => m.retain(here),
                None => matched = Some((0..n as u32).filter(here).collect()),
            }
        }
        let status = |i: u32| view.status[i as usize];
        let [not_ready, expiring, ready] = match &matched {
            None => view.counts,
            Some(m) => {
                let mut c = [0; 3];
                for &i in m {
                    c[status(i) as usize] += 1;
                }
                c
            }
        };
        let skip = q.page.saturating_mul(page_size);
        let page = |order: &[u32]| -> Vec<PersonRow> {
            order
                .iter()
                .skip(skip)
                .take(page_size)
                .map(|&i| snap.row(&view, i as usize))
                .collect()
        };
        let (total, people) = match matched {
            // Everyone: the kept orders; one status is a run of `by_status` (by address
            // within), so the page is a slice and the total a count.
            None => match (q.status, q.sort) {
                (None, PeopleSort::Address) => (
                    n,
                    (skip..n)
                        .take(page_size)
                        .map(|i| snap.row(&view, i))
                        .collect(),
                ),
                (None, PeopleSort::Status) => (n, page(&view.by_status)),
                (None, PeopleSort::Expiry) => (n, page(&snap.by_expiry)),
                (Some(st), PeopleSort::Address | PeopleSort::Status) => {
                    let from: usize = view.counts[..st as usize].iter().sum();
                    let run = &view.by_status[from..from + view.counts[st as usize]];
                    (run.len(), page(run))
                }
                (Some(st), PeopleSort::Expiry) => {
                    let run: Vec<u32> = snap
                        .by_expiry
                        .iter()
                        .copied()
                        .filter(|&i| status(i) == st)
                        .collect();
                    (run.len(), page(&run))
                }
            },
            // Some: sorted stably from address order, as the kept orders were.
            Some(mut m) => {
                if let Some(st) = q.status {
                    m.retain(|&i| status(i) == st);
                }
                match q.sort {
                    PeopleSort::Address => {}
                    PeopleSort::Status => m.sort_by_key(|&i| status(i)),
                    PeopleSort::Expiry => {
                        m.sort_by_key(|&i| snap.earliest[i as usize].unwrap_or(i64::MAX))
                    }
                }
                (m.len(), page(&m))
            }
        };
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

    /// The people index as the store holds it now, and its statuses for an expiry window:
    /// kept between calls while the store's inventory version and the clock's certificate
    /// boundaries say it is still true (a change made by another process is seen at once).
    async fn people_view(
        &self,
        expiring_days: u32,
    ) -> Result<(Arc<Snapshot>, Arc<View>), ServiceError> {
        let store = self.store().await?;
        let cache = &self.people_cache;
        let fresh = |version: i64, now: i64| {
            cache
                .current()
                .filter(|s| s.version == version && s.now <= now && now < s.until)
        };
        // The version first: rows read after it are at least that new.
        let version = store.inventory_version().await.map_err(store_error)?;
        let now = self.now();
        let snap = match fresh(version, now) {
            Some(s) => s,
            None => {
                let _one = cache.building.lock().await;
                match fresh(version, now) {
                    Some(s) => s,
                    None => {
                        let base = match cache.current() {
                            Some(s) if s.version == version => s.base.clone(),
                            _ => {
                                let rows = store
                                    .inventory(&InventoryQuery::default())
                                    .await
                                    .map_err(store_error)?;
                                Arc::new(BaseIndex::new(rows))
                            }
                        };
                        let s = Arc::new(Snapshot::new(version, base, now));
                        cache.set(s.clone());
                        s
                    }
                }
            }
        };
        let view = snap.view(expiring_days, now);
        Ok((snap, view))
    }
}

/// The people list kept by a [`Service`] between calls (see [`Service::people`]).
#[derive(Default)]
pub(crate) struct PeopleCache {
    current: Mutex<Option<Arc<Snapshot>>>,
    /// One build at a time: concurrent callers wait for it rather than each reading the store.
    building: tokio::sync::Mutex<()>,
}

impl PeopleCache {
    fn current(&self) -> Option<Arc<Snapshot>> {
        self.current.lock().ok().and_then(|c| c.clone())
    }

    fn set(&self, s: Arc<Snapshot>) {
        if let Ok(mut c) = self.current.lock() {
            *c = Some(s);
        }
    }
}

/// One person as the inventory has them, whatever the clock says.
struct Person {
    /// Lowercased.
    address: String,
    kind: Option<RecipientKind>,
    directories: Vec<String>,
    certificates: usize,
    /// `(not_before, not_after)` of each present row.
    validity: Vec<(i64, i64)>,
}

/// Everyone, by address, with the addresses joined for substring search.
struct BaseIndex {
    people: Vec<Person>,
    /// The addresses, each followed by `\n` (no address holds one).
    haystack: Vec<u8>,
    /// Where each address starts in `haystack`.
    starts: Vec<usize>,
}

impl BaseIndex {
    fn new(rows: Vec<InventoryCert>) -> Self {
        struct Acc {
            kinds: Vec<Option<RecipientKind>>,
            directories: Vec<String>,
            certs: Vec<String>,
            validity: Vec<(i64, i64)>,
        }
        let mut by: BTreeMap<String, Acc> = BTreeMap::new();
        for r in rows.into_iter().filter(|r| r.present) {
            let a = by
                .entry(r.address.to_ascii_lowercase())
                .or_insert_with(|| Acc {
                    kinds: Vec::new(),
                    directories: Vec::new(),
                    certs: Vec::new(),
                    validity: Vec::new(),
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
            a.validity.push((r.facts.not_before, r.facts.not_after));
        }
        let mut haystack = Vec::new();
        let mut starts = Vec::with_capacity(by.len());
        let people = by
            .into_iter()
            .map(|(address, mut a)| {
                a.directories.sort();
                starts.push(haystack.len());
                haystack.extend_from_slice(address.as_bytes());
                haystack.push(b'\n');
                Person {
                    address,
                    kind: match a.kinds.as_slice() {
                        [one] => *one,
                        _ => None,
                    },
                    directories: a.directories,
                    certificates: a.certs.len(),
                    validity: a.validity,
                }
            })
            .collect();
        Self {
            people,
            haystack,
            starts,
        }
    }

    /// Who has `needle` (lowercase, not empty) in their address, by address.
    fn matching(&self, needle: &str) -> Vec<u32> {
        let mut m: Vec<u32> = Vec::new();
        if needle.contains('\n') {
            return m;
        }
        for at in memchr::memmem::find_iter(&self.haystack, needle.as_bytes()) {
            // A match holds no `\n`, so it lies inside the address starting last before it.
            let i = (self.starts.partition_point(|&s| s <= at) - 1) as u32;
            if m.last() != Some(&i) {
                m.push(i);
            }
        }
        m
    }
}

/// The index at one time of the clock: which certificates are valid, and so each person's
/// earliest and last valid not-after.
struct Snapshot {
    version: i64,
    base: Arc<BaseIndex>,
    now: i64,
    /// The first time after `now` at which a certificate starts or stops being valid: the
    /// snapshot holds for times in `now..until`.
    until: i64,
    earliest: Vec<Option<i64>>,
    last: Vec<Option<i64>>,
    /// Earliest expiry first (no valid certificate last), by address within.
    by_expiry: Vec<u32>,
    /// Statuses per expiry window, each with the horizons it holds for.
    views: Mutex<HashMap<u32, Arc<View>>>,
}

/// Statuses for one expiry window.
struct View {
    /// `now + window` when built, and the first horizon after it at which a status changes.
    horizon: i64,
    until: i64,
    status: Vec<PersonStatus>,
    /// People per status, indexed by `PersonStatus as usize` (not ready, expiring, ready).
    counts: [usize; 3],
    /// By status (not ready first), by address within.
    by_status: Vec<u32>,
}

impl Snapshot {
    fn new(version: i64, base: Arc<BaseIndex>, now: i64) -> Self {
        let mut until = i64::MAX;
        let (mut earliest, mut last) = (Vec::new(), Vec::new());
        for p in &base.people {
            let (mut e, mut l) = (None::<i64>, None::<i64>);
            for &(nb, na) in &p.validity {
                if nb > now {
                    until = until.min(nb);
                }
                if na >= now {
                    until = until.min(na.saturating_add(1));
                }
                if nb <= now && na >= now {
                    e = Some(e.map_or(na, |x| x.min(na)));
                    l = Some(l.map_or(na, |x| x.max(na)));
                }
            }
            earliest.push(e);
            last.push(l);
        }
        let mut by_expiry: Vec<u32> = (0..base.people.len() as u32).collect();
        by_expiry.sort_by_key(|&i| earliest[i as usize].unwrap_or(i64::MAX));
        Self {
            version,
            base,
            now,
            until,
            earliest,
            last,
            by_expiry,
            views: Mutex::new(HashMap::new()),
        }
    }

    /// The statuses at `now` (within this snapshot's times) for an expiry window.
    fn view(&self, expiring_days: u32, now: i64) -> Arc<View> {
        let horizon = now.saturating_add(i64::from(expiring_days) * DAY);
        let mut views = match self.views.lock() {
            Ok(v) => v,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(v) = views.get(&expiring_days)
            && v.horizon <= horizon
            && horizon < v.until
        {
            return v.clone();
        }
        let mut until = i64::MAX;
        let mut counts = [0; 3];
        let status: Vec<PersonStatus> = self
            .last
            .iter()
            .map(|l| {
                let s = match *l {
                    None => PersonStatus::NotReady,
                    Some(l) if l <= horizon => PersonStatus::Expiring,
                    Some(l) => {
                        until = until.min(l);
                        PersonStatus::Ready
                    }
                };
                counts[s as usize] += 1;
                s
            })
            .collect();
        let mut by_status: Vec<u32> = (0..status.len() as u32).collect();
        by_status.sort_by_key(|&i| status[i as usize]);
        let v = Arc::new(View {
            horizon,
            until,
            status,
            counts,
            by_status,
        });
        views.insert(expiring_days, v.clone());
        v
    }

    fn row(&self, view: &View, i: usize) -> PersonRow {
        let p = &self.base.people[i];
        let earliest = self.earliest[i];
        PersonRow {
            address: p.address.clone(),
            kind: p.kind,
            directories: p.directories.clone(),
            certificates: p.certificates,
            status: view.status[i],
            earliest_expiry: earliest.map(rfc3339),
            earliest_expiry_unix: earliest,
        }
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

    /// A clock the test moves.
    fn moving_clock(at: &Arc<std::sync::atomic::AtomicI64>) -> crate::Clock {
        let at = at.clone();
        Arc::new(move || at.load(std::sync::atomic::Ordering::SeqCst))
    }

    fn service(dir: &std::path::Path, clock: crate::Clock) -> Service {
        let config = Config::from_toml(
            "[store]\nurl = \"sqlite:smimekit.db\"\n[directory.one]\nkind = \"local\"\npath = \"one.json\"\n",
            &dir.join("config.toml"),
        )
        .unwrap();
        Service::builder()
            .config(config)
            .clock(clock)
            .build()
            .unwrap()
    }

    /// A certificate as a test writes it: SHA-1, not-before, not-after.
    type Cert = (String, i64, i64);
    /// What a test wrote: per directory and address as given, the certificates present.
    type Written = BTreeMap<(String, String), Vec<Cert>>;

    /// Records `certs` as all a directory holds for an address (others of it are gone).
    async fn sight(
        svc: &Service,
        written: &mut Written,
        directory: &str,
        address: &str,
        certs: &[(&str, i64, i64)],
    ) {
        let facts: Vec<smimekit_core::store::CertFacts> = certs
            .iter()
            .map(|(sha1, nb, na)| smimekit_core::store::CertFacts {
                sha1: (*sha1).into(),
                sha256: format!("{sha1}-256"),
                subject: "CN=x".into(),
                issuer: "CN=ca".into(),
                serial: "01".into(),
                not_before: *nb,
                not_after: *na,
                key_type: "p256".into(),
                source_attribute: None,
            })
            .collect();
        let mailbox = smimekit_core::Mailbox::parse(address).unwrap();
        svc.store()
            .await
            .unwrap()
            .inventory_record(&[smimekit_core::store::Sighting {
                directory,
                address: &mailbox,
                kind: Some(RecipientKind::Mailbox),
                certificates: &facts,
                time: 0,
                published: false,
                complete: true,
            }])
            .await
            .unwrap();
        written.insert(
            (directory.into(), address.to_ascii_lowercase()),
            certs
                .iter()
                .map(|(s, nb, na)| ((*s).into(), *nb, *na))
                .collect(),
        );
    }

    /// The people list computed from what was written, the slow and obvious way.
    fn expected(written: &Written, now: i64, days: u32) -> Vec<PersonRow> {
        let mut by: BTreeMap<String, (Vec<String>, Vec<Cert>)> = BTreeMap::new();
        for ((d, a), certs) in written.iter().filter(|(_, c)| !c.is_empty()) {
            let e = by.entry(a.clone()).or_default();
            e.0.push(d.clone());
            e.1.extend(certs.iter().cloned());
        }
        by.into_iter()
            .map(|(address, (mut dirs, certs))| {
                dirs.sort();
                dirs.dedup();
                let mut sha1s: Vec<&String> = certs.iter().map(|c| &c.0).collect();
                sha1s.sort();
                sha1s.dedup();
                let valid: Vec<i64> = certs
                    .iter()
                    .filter(|c| c.1 <= now && now <= c.2)
                    .map(|c| c.2)
                    .collect();
                let earliest = valid.iter().min().copied();
                let status = match valid.iter().max() {
                    None => PersonStatus::NotReady,
                    Some(&l) if l <= now + i64::from(days) * DAY => PersonStatus::Expiring,
                    Some(_) => PersonStatus::Ready,
                };
                PersonRow {
                    address,
                    kind: Some(RecipientKind::Mailbox),
                    directories: dirs,
                    certificates: sha1s.len(),
                    status,
                    earliest_expiry: earliest.map(rfc3339),
                    earliest_expiry_unix: earliest,
                }
            })
            .collect()
    }

    fn key(r: &PersonRow) -> String {
        format!(
            "{} {:?} {:?} {} {:?} {:?}",
            r.address, r.directories, r.status, r.certificates, r.earliest_expiry, r.kind
        )
    }

    /// Every query of a small grid, against the obvious computation.
    async fn check(svc: &Service, written: &Written, now: i64) {
        for days in [30u32, 90] {
            let all = expected(written, now, days);
            assert_eq!(
                svc.people_all(days)
                    .await
                    .unwrap()
                    .iter()
                    .map(key)
                    .collect::<Vec<_>>(),
                all.iter().map(key).collect::<Vec<_>>(),
                "people_all at {now}, {days} days"
            );
            for query in [None, Some("User1"), Some("@b."), Some("nobody")] {
                for directory in [None, Some("one"), Some("two")] {
                    for status in [
                        None,
                        Some(PersonStatus::Expiring),
                        Some(PersonStatus::NotReady),
                    ] {
                        for sort in [PeopleSort::Address, PeopleSort::Status, PeopleSort::Expiry] {
                            let mut m: Vec<PersonRow> = all
                                .iter()
                                .filter(|p| {
                                    query
                                        .is_none_or(|q| p.address.contains(&q.to_ascii_lowercase()))
                                        && directory
                                            .is_none_or(|d| p.directories.iter().any(|x| x == d))
                                })
                                .cloned()
                                .collect();
                            let count =
                                |s: PersonStatus| m.iter().filter(|p| p.status == s).count();
                            let counts = (
                                count(PersonStatus::Ready),
                                count(PersonStatus::Expiring),
                                count(PersonStatus::NotReady),
                            );
                            m.retain(|p| status.is_none_or(|s| p.status == s));
                            match sort {
                                PeopleSort::Address => {}
                                PeopleSort::Status => m.sort_by_key(|p| p.status),
                                PeopleSort::Expiry => {
                                    m.sort_by_key(|p| p.earliest_expiry_unix.unwrap_or(i64::MAX))
                                }
                            }
                            for page in 0..3 {
                                let got = svc
                                    .people(&PeopleQuery {
                                        query: query.map(String::from),
                                        directory: directory.map(String::from),
                                        status,
                                        expiring_days: Some(days),
                                        sort,
                                        page,
                                        page_size: Some(4),
                                    })
                                    .await
                                    .unwrap();
                                let what = format!(
                                    "{query:?} {directory:?} {status:?} {sort:?} page {page} at {now}, {days} days"
                                );
                                assert_eq!(got.total, m.len(), "{what}");
                                assert_eq!(
                                    (got.ready, got.expiring, got.not_ready),
                                    counts,
                                    "{what}"
                                );
                                assert_eq!(
                                    got.people.iter().map(key).collect::<Vec<_>>(),
                                    m.iter().skip(page * 4).take(4).map(key).collect::<Vec<_>>(),
                                    "{what}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// The people list is kept between calls; every inventory write (through this service or
    /// another one on the same store, as another process would), and every move of the clock
    /// across a certificate's start, end or expiry window, shows at the next call.
    #[tokio::test]
    async fn the_kept_people_list_follows_the_store_and_the_clock() {
        let tmp = tempfile::tempdir().unwrap();
        let t0: i64 = 1_800_000_000;
        let at = Arc::new(std::sync::atomic::AtomicI64::new(t0));
        let svc = service(tmp.path(), moving_clock(&at));
        let other = service(tmp.path(), moving_clock(&at));
        let mut w = Written::new();
        for i in 0..12 {
            let address = format!("User{i}@{}.example", ["a", "b", "c"][i % 3]);
            let nb = t0 - 100 * DAY;
            let certs: Vec<(String, i64, i64)> = match i % 4 {
                0 => vec![(format!("C{i}"), nb, t0 + 10 * DAY)],
                1 => vec![
                    (format!("C{i}"), nb, t0 + 60 * DAY),
                    (format!("D{i}"), nb, t0 + 400 * DAY),
                ],
                2 => vec![(format!("C{i}"), t0 + 5 * DAY, t0 + 400 * DAY)],
                _ => vec![(format!("C{i}"), nb, t0 - DAY)],
            };
            let c: Vec<(&str, i64, i64)> =
                certs.iter().map(|(s, a, b)| (s.as_str(), *a, *b)).collect();
            sight(&svc, &mut w, "one", &address, &c).await;
            if i % 2 == 0 {
                sight(&svc, &mut w, "two", &address, &c[..1]).await;
            }
        }
        check(&svc, &w, t0).await;
        // Another service on the same store writes: this one sees it.
        sight(
            &other,
            &mut w,
            "two",
            "user1@b.example",
            &[("N1", t0 - DAY, t0 + 20 * DAY)],
        )
        .await;
        sight(&other, &mut w, "one", "user4@b.example", &[]).await;
        sight(
            &other,
            &mut w,
            "two",
            "zed@a.example",
            &[("Z", t0 - DAY, t0 + 500 * DAY)],
        )
        .await;
        check(&svc, &w, t0).await;
        // The clock passes a start (day 5), an end (day 10) and expiry windows.
        for days in [1, 5, 6, 11, 35, 70] {
            at.store(t0 + days * DAY, std::sync::atomic::Ordering::SeqCst);
            check(&svc, &w, t0 + days * DAY).await;
        }
        // And back.
        at.store(t0, std::sync::atomic::Ordering::SeqCst);
        check(&svc, &w, t0).await;
        // The first people by address are people_all's first rows.
        let all = svc.people_all(30).await.unwrap();
        let first = svc.people_first(5, 30).await.unwrap();
        assert_eq!(
            first.iter().map(key).collect::<Vec<_>>(),
            all.iter().take(5).map(key).collect::<Vec<_>>()
        );
        assert_eq!(svc.people_first(1000, 30).await.unwrap().len(), all.len());
    }
}
