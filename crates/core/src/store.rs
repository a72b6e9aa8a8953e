//! The store port: smimekit's own data, in an embedded database or a server.
//!
//! One [`Store`] holds five things, each keyed so that several smimekit processes (a CLI and
//! web servers) can share it:
//!
//! * **the local directory's data** (the `local` directory kind): recipients with their kind
//!   and certificates, and the trust chain, per directory name. [`Store::publish`] has the
//!   merge semantics of [`Directory::publish_removing`](crate::Directory::publish_removing)
//!   and runs in one transaction; it returns the certificates as read back;
//! * **the inventory**: every certificate seen in any directory, with the facts an admin
//!   searches by (thumbprints, validity, issuer…), first and last seen;
//! * **the audit log**: append-only rows, each carrying a SHA-256 hash over the previous
//!   row's hash and its own [canonical content](AuditEntry::canonical), so that
//!   [`Store::audit_verify`] finds the first row that was changed or removed;
//! * **job records** for long operations (bulk publish, directory audits);
//! * **plan/apply state**: the certificates smimekit published ([`ManagedCert`]), the apply
//!   lock ([`LockInfo`]), the apply journal ([`JournalEntry`]) and `status` reminders.
//!
//! This module is vocabulary only: no I/O, no SQL. Implementations live in plugins
//! (`smimekit-store-sql`: SQLite and PostgreSQL) and register a [`StoreFactory`] by URL
//! scheme. Times are seconds since the Unix epoch, given by the caller (the store reads no
//! clock, so tests pin it). Nothing here parses certificates: callers hand over the facts.

use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::Serialize;

use crate::plugin::StoreFactory;
use crate::{CertDer, Mailbox, PublishMode, Recipient, RecipientKind};

/// Errors of a store. Each variant says what the caller can do next.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The row asked for does not exist (a recipient, a job): nothing to retry.
    #[error("{0}")]
    NotFound(String),
    /// Another writer got in the way (a lock not granted in time, a serialization failure,
    /// a conflicting import): read again and retry.
    #[error("{0}")]
    Conflict(String),
    /// The database cannot be reached or written (file permissions, disk full, server down):
    /// fix the environment and retry later.
    #[error("{0}")]
    Unavailable(String),
    /// What is stored cannot be read (an unknown value, a newer schema): restore a backup.
    #[error("{0}")]
    Corrupt(String),
    /// The store URL or an option is wrong: fix the configuration.
    #[error("{0}")]
    Config(String),
    /// The caller handed over something the store refuses (an empty address, a bad job id).
    #[error("{0}")]
    Invalid(String),
}

/// One publish, as [`Directory::publish_removing`](crate::Directory::publish_removing)
/// describes it: create the recipient as `kind` if missing (an existing one keeps its kind),
/// clear its certificates first with [`PublishMode::Replace`], drop the `remove` values
/// (never `certificate` itself), add `certificate` once.
#[derive(Debug, Clone, Copy)]
pub struct Publish<'a> {
    pub address: &'a Mailbox,
    pub kind: RecipientKind,
    pub certificate: &'a CertDer,
    pub mode: PublishMode,
    pub remove: &'a [CertDer],
}

/// A whole local directory: what `directory export` writes and `directory import` reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectoryData {
    /// Sorted by the address's canonical key ([`Mailbox::key`]).
    pub recipients: Vec<Recipient>,
    pub trust_chain: Vec<CertDer>,
}

impl PartialEq for Recipient {
    fn eq(&self, other: &Self) -> bool {
        self.address.as_str() == other.address.as_str()
            && self.kind == other.kind
            && self.certificates == other.certificates
    }
}

impl Eq for Recipient {}

/// How [`Store::import_directory`] treats what the directory holds already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImportMode {
    /// Every certificate is published with [`PublishMode::Merge`]; the trust chain is
    /// replaced only when the imported one is not empty. Nothing is dropped.
    Merge,
    /// The directory becomes exactly the imported data.
    Replace,
}

/// Where imported data came from, recorded with the import in the same transaction (so an
/// interrupted first-use import of a `directory.json` is recognised and not repeated).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportSource {
    /// The file, as the user named it.
    pub file: String,
    /// SHA-256 of the file's bytes, lowercase hex.
    pub sha256: String,
    pub time: i64,
}

/// What [`Store::import_directory`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "status")]
pub enum ImportOutcome {
    Imported {
        recipients: u64,
        certificates: u64,
        trust_chain: u64,
    },
    /// This source (same SHA-256) was imported before; nothing changed.
    AlreadyImported { source: ImportSource },
}

/// The facts of one certificate, as the inventory keeps them (the caller parses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertFacts {
    /// SHA-1 of the DER, uppercase hex (Exchange's `Thumbprint`).
    pub sha1: String,
    /// Lowercase hex of the SHA-256 of the DER.
    pub sha256: String,
    pub subject: String,
    pub issuer: String,
    /// Serial number, hex.
    pub serial: String,
    pub not_before: i64,
    pub not_after: i64,
    /// `rsa2048`, `p256`…
    pub key_type: String,
    /// The attribute the value came from (`userCertificate`…), when the directory says.
    pub source_attribute: Option<String>,
}

/// Certificates seen for one address in one directory at one time.
#[derive(Debug, Clone)]
pub struct Sighting<'a> {
    pub directory: &'a str,
    pub address: &'a Mailbox,
    pub kind: Option<RecipientKind>,
    pub certificates: &'a [CertFacts],
    pub time: i64,
    /// smimekit itself just published these.
    pub published: bool,
    /// `certificates` is everything the address holds in that directory: the inventory marks
    /// the address's other certificates there as no longer present.
    pub complete: bool,
}

/// What a complete read of one address found, by its certificates' SHA-256 (lowercase hex):
/// see [`Store::inventory_touch`].
#[derive(Debug, Clone)]
pub struct Seen<'a> {
    pub address: &'a Mailbox,
    pub kind: RecipientKind,
    pub sha256: Vec<String>,
}

/// One inventory row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InventoryCert {
    pub directory: String,
    pub address: String,
    pub recipient_kind: Option<RecipientKind>,
    #[serde(flatten)]
    pub facts: CertFacts,
    pub first_seen: i64,
    pub last_seen: i64,
    /// smimekit published it (rather than only finding it).
    pub published_by_smimekit: bool,
    /// Still there when the address was last looked at.
    pub present: bool,
}

/// What [`Store::inventory`] returns.
#[derive(Debug, Clone, Default)]
pub struct InventoryQuery {
    pub directory: Option<String>,
    /// Only certificates whose `not_after` lies in `[from, until)`.
    pub not_after_from: Option<i64>,
    pub not_after_until: Option<i64>,
    /// Include certificates no longer present.
    pub include_gone: bool,
}

/// One change smimekit made, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub time: i64,
    /// The OS user (CLI) or the signed-in web user.
    pub actor: String,
    /// `cli`, `web`, `tui`…
    pub frontend: String,
    /// `publish`, `unpublish`, `trust-push`, `import`…
    pub operation: String,
    pub directory: String,
    /// The recipient's address; empty for directory-wide changes (trust chain).
    pub address: String,
    /// SHA-1 thumbprints (uppercase hex, as Exchange shows them) before and after the change.
    pub before: Vec<String>,
    pub after: Vec<String>,
    /// `ok`, or what went wrong.
    pub result: String,
}

impl AuditEntry {
    /// The bytes the row hash covers besides the previous hash: every field, length-prefixed
    /// (`<len>:<bytes>`, lists as their count then each item), so no two rows share a form.
    pub fn canonical(&self, seq: i64) -> Vec<u8> {
        fn field(out: &mut Vec<u8>, s: &str) {
            out.extend_from_slice(s.len().to_string().as_bytes());
            out.push(b':');
            out.extend_from_slice(s.as_bytes());
            out.push(b'\n');
        }
        let mut out = Vec::with_capacity(256);
        field(&mut out, "smimekit-audit-v1");
        field(&mut out, &seq.to_string());
        field(&mut out, &self.time.to_string());
        field(&mut out, &self.actor);
        field(&mut out, &self.frontend);
        field(&mut out, &self.operation);
        field(&mut out, &self.directory);
        field(&mut out, &self.address);
        for list in [&self.before, &self.after] {
            field(&mut out, &list.len().to_string());
            for t in list {
                field(&mut out, t);
            }
        }
        field(&mut out, &self.result);
        out
    }
}

/// A row of the audit log as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// 1, 2, 3… with no gaps.
    pub seq: i64,
    #[serde(flatten)]
    pub entry: AuditEntry,
    /// SHA-256 (hex) of the previous row's hash (32 zero bytes for the first row) followed
    /// by [`AuditEntry::canonical`].
    pub hash: String,
}

/// Which audit rows [`Store::audit_log`] returns (oldest first).
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub since: Option<i64>,
    /// Compared case-insensitively.
    pub address: Option<String>,
    pub directory: Option<String>,
}

/// What [`Store::audit_verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "status")]
pub enum AuditVerdict {
    /// Every row's hash matches and none is missing.
    Intact { rows: u64 },
    /// The first bad row.
    Broken {
        seq: i64,
        problem: AuditProblem,
        /// The rows before it that checked out.
        rows_ok: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum AuditProblem {
    /// The row's content or hash does not match its hash chain.
    Changed,
    /// The row with this number is gone (the next one is `seq`, or the log ends early).
    Removed,
}

/// A job: a long operation that the frontends list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobRecord {
    pub id: i64,
    /// `bulk-publish`, `directory-audit`…
    pub kind: String,
    pub actor: String,
    pub frontend: String,
    pub started: i64,
    pub finished: Option<i64>,
    /// `ok`, `failed: …`, `cancelled`; `None` while running.
    pub outcome: Option<String>,
    /// Per-item results, as JSON text (an array).
    pub items: String,
}

/// A certificate value smimekit published to a directory (what plan/apply owns): only these,
/// and what the deploy policy names, are ever removed. Keyed by (directory, address,
/// thumbprint); the store keeps `address` in [`Mailbox::key`] form and `thumbprint` upper case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ManagedCert {
    /// The configured directory name.
    pub directory: String,
    /// The recipient, in [`Mailbox::key`] form.
    pub address: String,
    /// SHA-1 of the DER, uppercase hex (Exchange's `Thumbprint`).
    pub thumbprint: String,
    /// The value itself; not in the serialised form (certificates are shown by their facts
    /// and thumbprint, never as base64).
    #[serde(skip)]
    pub certificate: CertDer,
    /// When the publish was recorded (before the write), seconds since the Unix epoch.
    pub published: i64,
    /// The write was read back from the directory.
    pub confirmed: bool,
    /// When a successor was published beside it.
    pub superseded: Option<i64>,
}

/// A named exclusive lock held in the store (one apply at a time per store), shared by every
/// process on it (several web servers on one PostgreSQL database). The store judges no
/// liveness: the caller decides from `host`, `pid` and `heartbeat` that a holder is dead and
/// takes the lock over with [`Store::lock_acquire`]'s `replace`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LockInfo {
    /// Which lock (`apply`).
    pub name: String,
    /// The holder's id, random per run (what `--force-unlock ID` names).
    pub id: String,
    pub host: String,
    pub pid: u32,
    pub actor: String,
    pub started: i64,
    pub heartbeat: i64,
}

/// One row of the apply journal: each step is recorded before it runs (`start`) and after
/// (`done`, `failed`); a step whose last row is `start` was interrupted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct JournalEntry {
    /// The apply run's id.
    pub run: String,
    /// The step's stable name (the same step has the same name in every run).
    pub step: String,
    /// `start`, `done`, `failed`, or `resolved` (written by [`Store::journal_resolve`]).
    pub phase: String,
    /// Free text for the report (what was attempted, the directory's error).
    pub detail: String,
    pub at: i64,
}

/// A user of the web admin (`smimekit-web user add`): a name, a role, an argon2id hash (PHC
/// string; the store never sees a password) and the sign-in failures counted for the lockout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WebUser {
    pub name: String,
    /// `viewer`, `operator` or `admin` (the service checks the value).
    pub role: String,
    /// The PHC string (`$argon2id$v=19$…`); not in the serialised form.
    #[serde(skip)]
    pub password_hash: String,
    pub created: i64,
    /// Failed sign-ins since the last success.
    pub failures: u32,
    /// No sign-in is accepted before this time.
    pub locked_until: Option<i64>,
}

/// A signed-in web session, keyed by the SHA-256 (hex) of its cookie's token: the store never
/// holds a token that would let a reader of the database sign in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WebSession {
    /// SHA-256 of the cookie token, lower-case hex.
    pub id: String,
    pub user: String,
    /// The CSRF token every state-changing request carries; not in the serialised form.
    #[serde(skip)]
    pub csrf: String,
    pub created: i64,
    /// The last request seen (for the idle timeout).
    pub last_seen: i64,
}

/// The store port. Object-safe; every method is one transaction.
#[async_trait]
pub trait Store: Debug + Send + Sync {
    /// What it is, for messages: `sqlite:/path/smimekit.db`, `postgres://host/db` (never a
    /// password).
    fn describe(&self) -> String;

    // The local directory's data.

    /// One recipient of a local directory, `None` when absent.
    async fn recipient(
        &self,
        directory: &str,
        address: &Mailbox,
    ) -> Result<Option<Recipient>, StoreError>;

    /// Every recipient of a local directory, sorted by [`Mailbox::key`].
    async fn recipients(&self, directory: &str) -> Result<Vec<Recipient>, StoreError>;

    /// Applies one publish atomically; returns the recipient's certificates as read back in
    /// the same transaction.
    async fn publish(
        &self,
        directory: &str,
        publish: &Publish<'_>,
    ) -> Result<Vec<CertDer>, StoreError>;

    /// Removes one certificate value; returns what remains. [`StoreError::NotFound`] when
    /// the recipient does not exist.
    async fn unpublish(
        &self,
        directory: &str,
        address: &Mailbox,
        certificate: &CertDer,
    ) -> Result<Vec<CertDer>, StoreError>;

    async fn trust_chain(&self, directory: &str) -> Result<Vec<CertDer>, StoreError>;

    /// Replaces the trust chain (duplicates dropped, order kept); returns it as read back.
    async fn set_trust_chain(
        &self,
        directory: &str,
        chain: &[CertDer],
    ) -> Result<Vec<CertDer>, StoreError>;

    /// The whole directory.
    async fn export_directory(&self, directory: &str) -> Result<DirectoryData, StoreError>;

    /// Imports a whole directory in one transaction. With a `source`, the import is recorded
    /// and a second import of the same source (same SHA-256) changes nothing.
    async fn import_directory(
        &self,
        directory: &str,
        data: &DirectoryData,
        mode: ImportMode,
        source: Option<&ImportSource>,
    ) -> Result<ImportOutcome, StoreError>;

    /// The last recorded import source of a directory.
    async fn import_source(&self, directory: &str) -> Result<Option<ImportSource>, StoreError>;

    // The inventory.

    /// Records sightings (one transaction for all): new certificates are added, known ones
    /// get `last_seen`, the published flag is kept once set.
    async fn inventory_record(&self, sightings: &[Sighting<'_>]) -> Result<(), StoreError>;

    /// Records `time` as the last sighting of each of `seen` whose present rows in
    /// `directory` are exactly what was seen (the same certificates, address and kind): a
    /// complete read that changes nothing else, recorded without its certificates' facts, in
    /// one transaction. Returns, in `seen`'s order, whether each was recorded so; the others
    /// go to [`Self::inventory_record`].
    async fn inventory_touch(
        &self,
        directory: &str,
        seen: &[Seen<'_>],
        time: i64,
    ) -> Result<Vec<bool>, StoreError>;

    /// Inventory rows matching the query, by `not_after` then directory and address.
    async fn inventory(&self, query: &InventoryQuery) -> Result<Vec<InventoryCert>, StoreError>;

    /// The present rows of the first `count` addresses (by lowercased address) that have one,
    /// by address then directory: a list's first page without reading the whole inventory.
    async fn inventory_first_addresses(
        &self,
        count: usize,
    ) -> Result<Vec<InventoryCert>, StoreError>;

    /// A number that changes with every inventory write (this process's or another's): a view
    /// built from the inventory is still true while it has not changed. Read it before
    /// reading the rows the view is built from.
    async fn inventory_version(&self) -> Result<i64, StoreError>;

    // Signature checks that succeeded.

    /// The digests of the signature checks recorded as succeeded: lowercase hex SHA-256 of
    /// what was checked (key, scheme, signed bytes, signature). A check is a pure function of
    /// those, so a caller that checks the same signatures again and again (plan's readiness)
    /// asks the engine only for new ones.
    async fn signature_checks(&self) -> Result<Vec<String>, StoreError>;

    /// Records `digests` as checks that succeeded at `at` (again: the time moves), in one
    /// transaction, and forgets the ones recorded before `forget_before`.
    async fn signature_checks_record(
        &self,
        digests: &[String],
        at: i64,
        forget_before: i64,
    ) -> Result<(), StoreError>;

    // The audit log.

    /// Appends a row (numbered and hashed inside the transaction); returns it.
    async fn audit_append(&self, entry: &AuditEntry) -> Result<AuditRecord, StoreError>;

    async fn audit_log(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError>;

    /// Walks the whole log and recomputes every hash.
    async fn audit_verify(&self) -> Result<AuditVerdict, StoreError>;

    // Jobs.

    /// Records a job as started; returns its id.
    async fn job_start(
        &self,
        kind: &str,
        actor: &str,
        frontend: &str,
        started: i64,
    ) -> Result<i64, StoreError>;

    /// Records a job's end, its outcome and per-item results (JSON text).
    async fn job_finish(
        &self,
        id: i64,
        finished: i64,
        outcome: &str,
        items: &str,
    ) -> Result<(), StoreError>;

    /// The most recent jobs first.
    async fn jobs(&self, limit: u32) -> Result<Vec<JobRecord>, StoreError>;

    // Directory state.

    /// A small fact a directory plugin remembered for `directory` under `key` (which byte
    /// encoding an Exchange tenant accepts), if any.
    async fn directory_state(
        &self,
        directory: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError>;

    /// Remembers `value` for `directory` under `key` (replacing an earlier one), set at
    /// `updated` (seconds since the Unix epoch).
    async fn set_directory_state(
        &self,
        directory: &str,
        key: &str,
        value: &str,
        updated: i64,
    ) -> Result<(), StoreError>;

    // Plan/apply: what smimekit published, the apply lock, the journal, reminders.

    /// The managed certificates of one directory, or of all; by directory, address,
    /// `published`, thumbprint.
    async fn managed(&self, directory: Option<&str>) -> Result<Vec<ManagedCert>, StoreError>;

    /// The managed certificates of one address in one directory (any case; an index lookup,
    /// for a step that needs only its own rows), by `published`, thumbprint.
    async fn managed_for(
        &self,
        directory: &str,
        address: &str,
    ) -> Result<Vec<ManagedCert>, StoreError>;

    /// Records managed certificates, replacing the row with the same (directory, address,
    /// thumbprint); all in one transaction. [`StoreError::Invalid`] for an empty directory, an
    /// address that is not one, or a thumbprint that is not 40 hex digits.
    async fn managed_put(&self, rows: &[ManagedCert]) -> Result<(), StoreError>;

    /// Forgets one managed certificate (nothing happens when it is not recorded).
    async fn managed_forget(
        &self,
        directory: &str,
        address: &str,
        thumbprint: &str,
    ) -> Result<(), StoreError>;

    /// Takes the lock `lock.name` when it is free, or when `replace` is `Some(id)` and the
    /// current holder has that id (the caller decided it is dead); a holder with `lock.id`
    /// already is ours. `Ok(None)` when taken, `Ok(Some(holder))` when refused. Atomic across
    /// processes: of many acquirers exactly one wins.
    async fn lock_acquire(
        &self,
        lock: &LockInfo,
        replace: Option<&str>,
    ) -> Result<Option<LockInfo>, StoreError>;

    /// The lock's current holder, if any.
    async fn lock_get(&self, name: &str) -> Result<Option<LockInfo>, StoreError>;

    /// Sets the holder's heartbeat to `at`; `false` when `id` does not hold the lock (any more).
    async fn lock_heartbeat(&self, name: &str, id: &str, at: i64) -> Result<bool, StoreError>;

    /// Releases the lock; `false` when it was not held by `id`.
    async fn lock_release(&self, name: &str, id: &str) -> Result<bool, StoreError>;

    /// Appends a journal row (the store keeps the append order).
    async fn journal_append(&self, entry: &JournalEntry) -> Result<(), StoreError>;

    /// The rows of one run, in append order.
    async fn journal(&self, run: &str) -> Result<Vec<JournalEntry>, StoreError>;

    /// The `start` rows of (run, step) pairs whose last row is `start` (interrupted), of any
    /// run, oldest first.
    async fn journal_interrupted(&self) -> Result<Vec<JournalEntry>, StoreError>;

    /// Marks every interrupted (run, `step`) resolved by appending a `resolved` row at `at`,
    /// so [`Store::journal_interrupted`] no longer reports it.
    async fn journal_resolve(&self, step: &str, at: i64) -> Result<(), StoreError>;

    /// A reminder (`status`): `true` when `key` was not reminded at or after `since`, and then
    /// `at` is recorded as its last time; `false` (nothing recorded) otherwise. Atomic: of
    /// processes racing on one key, one is told to remind.
    async fn remind(&self, key: &str, since: i64, at: i64) -> Result<bool, StoreError>;

    // Web admin users and sessions (`smimekit-web`).

    /// Creates the user, or replaces every field of the one with that name.
    async fn user_put(&self, user: &WebUser) -> Result<(), StoreError>;

    /// The user with that name, if any.
    async fn user_get(&self, name: &str) -> Result<Option<WebUser>, StoreError>;

    /// Every user, by name.
    async fn users(&self) -> Result<Vec<WebUser>, StoreError>;

    /// Removes the user and their sessions; `false` when there was no such user.
    async fn user_remove(&self, name: &str) -> Result<bool, StoreError>;

    /// Records a new session (of an existing user: otherwise `NotFound`).
    async fn session_put(&self, session: &WebSession) -> Result<(), StoreError>;

    /// The session with that id, if any.
    async fn session_get(&self, id: &str) -> Result<Option<WebSession>, StoreError>;

    /// Sets the session's `last_seen` to `at`; `false` when there is no such session.
    async fn session_touch(&self, id: &str, at: i64) -> Result<bool, StoreError>;

    /// Removes the session (sign-out, timeout); `false` when there was none.
    async fn session_remove(&self, id: &str) -> Result<bool, StoreError>;
}

/// The scheme of a store URL: `sqlite` for `sqlite:PATH`, `postgres` for `postgres://…`.
pub fn url_scheme(url: &str) -> Option<&str> {
    let (scheme, _) = url.split_once(':')?;
    (!scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+'))
    .then_some(scheme)
}

/// A store URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}@{host}{tail}")
        }
        None => url.to_string(),
    }
}

/// Opens a store through the factory registered for the URL's scheme.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    let scheme = url_scheme(url).ok_or_else(|| {
        StoreError::Config(format!(
            "store url {:?}: expected sqlite:PATH or postgres://…",
            redact_url(url)
        ))
    })?;
    let factory: &StoreFactory = crate::plugin::stores()
        .find(|f| f.schemes.contains(&scheme))
        .ok_or_else(|| {
            let known: Vec<&str> = crate::plugin::stores()
                .flat_map(|f| f.schemes.iter().copied())
                .collect();
            StoreError::Config(format!(
                "store url {}: no store for scheme {scheme:?} (known: {})",
                redact_url(url),
                if known.is_empty() {
                    "none registered".to_string()
                } else {
                    known.join(", ")
                }
            ))
        })?;
    (factory.open)(url).await
}

/// A store opened on first use and then shared: what a host hands to the plugins that keep
/// their data in it (the local directory), so that a command that never touches the store
/// never creates a database.
#[derive(Debug)]
pub struct LazyStore {
    url: String,
    opened: Mutex<Option<Arc<dyn Store>>>,
}

impl LazyStore {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            opened: Mutex::new(None),
        }
    }

    /// A store that is already open.
    pub fn ready(store: Arc<dyn Store>) -> Self {
        Self {
            url: store.describe(),
            opened: Mutex::new(Some(store)),
        }
    }

    /// The URL, without its password.
    pub fn describe(&self) -> String {
        redact_url(&self.url)
    }

    /// The store, opened now if it was not yet. Two callers racing may both open it; the
    /// first one stored wins and the other handle is dropped.
    pub async fn get(&self) -> Result<Arc<dyn Store>, StoreError> {
        if let Some(s) = self.cached() {
            return Ok(s);
        }
        let store = open(&self.url).await?;
        let mut slot = self
            .opened
            .lock()
            .map_err(|_| StoreError::Unavailable("store handle poisoned".into()))?;
        Ok(slot.get_or_insert(store).clone())
    }

    fn cached(&self) -> Option<Arc<dyn Store>> {
        self.opened.lock().ok().and_then(|s| s.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_is_unambiguous() {
        let e = AuditEntry {
            time: 1,
            actor: "a".into(),
            frontend: "cli".into(),
            operation: "publish".into(),
            directory: "local".into(),
            address: "x@y".into(),
            before: vec![],
            after: vec!["ab".into()],
            result: "ok".into(),
        };
        let mut shifted = e.clone();
        shifted.actor = "a\n1:c".into();
        shifted.frontend = "li".into();
        assert_ne!(e.canonical(1), shifted.canonical(1));
        assert_ne!(e.canonical(1), e.canonical(2));
        let mut moved = e.clone();
        moved.before = vec!["ab".into()];
        moved.after = vec![];
        assert_ne!(e.canonical(1), moved.canonical(1));
    }

    #[test]
    fn urls_are_redacted_and_schemes_read() {
        assert_eq!(url_scheme("sqlite:/x/y.db"), Some("sqlite"));
        assert_eq!(url_scheme("postgres://u@h/db"), Some("postgres"));
        assert_eq!(url_scheme("/plain/path"), None);
        assert_eq!(
            redact_url("postgres://user:secret@host:5432/db?x=1"),
            "postgres://user@host:5432/db?x=1"
        );
        assert_eq!(redact_url("sqlite:/x.db"), "sqlite:/x.db");
    }
}
