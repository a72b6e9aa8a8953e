//! The embedded store: one SQLite file (bundled SQLite, no server).
//!
//! * **WAL journal**, `synchronous = NORMAL`: readers never wait for the writer and a commit
//!   costs no fsync (the WAL is synced at checkpoints). A crash of the process or the machine
//!   never corrupts the file; a power cut may lose the last commits, as with any WAL database
//!   in this mode.
//! * **Writes** are `BEGIN IMMEDIATE` transactions on one writer connection per process, run on
//!   tokio's blocking pool: they take SQLite's write lock at the start (so a read-modify-write
//!   never works on stale data), and wait up to the busy timeout for another process's
//!   writer. Tasks of one process queue on the writer's mutex; processes queue on SQLite's
//!   lock. Nothing is lost either way, and no lock of our own is involved.
//! * **Reads** run inline on pooled reader connections: a WAL read sees the last commit and
//!   waits for no writer, and an indexed point read takes microseconds (what makes 100,000
//!   lookups a second possible; a hop to the blocking pool would cost more than the read).
//! * **Migrations** (refinery, the folder shared with PostgreSQL) run at open in `IMMEDIATE`
//!   transactions; when two processes create the same file at once, the loser's attempt fails
//!   on the history table and is simply run again (the statements are idempotent).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use smimekit_core::store::{
    AuditEntry, AuditFilter, AuditRecord, AuditVerdict, DirectoryData, ImportMode, ImportOutcome,
    ImportSource, InventoryCert, InventoryQuery, JobRecord, JournalEntry, LockInfo, ManagedCert,
    Publish, Seen, Sighting, Store, StoreError, WebSession, WebUser,
};
use smimekit_core::{CertDer, Mailbox, PublishMode, Recipient};

use crate::common::{
    self, Param, audit_hash, dedup, group_recipients, join_list, kind_text, plan_publish,
    split_list, sqlite_placeholders,
};
use crate::sql;

/// Reader connections kept open per store handle.
const MAX_IDLE_READERS: usize = 8;

/// Bytes of the file SQLite may map (a limit, not an allocation).
const MMAP_SIZE: i64 = 1 << 30;

/// Names the file in messages and maps SQLite's errors to what the caller can do.
#[derive(Clone)]
struct Place {
    name: Arc<str>,
    busy: Duration,
}

impl Place {
    fn err(&self, e: rusqlite::Error) -> StoreError {
        use rusqlite::ErrorCode as C;
        let at = &self.name;
        match &e {
            rusqlite::Error::SqliteFailure(f, _) => match f.code {
                C::DatabaseBusy | C::DatabaseLocked => StoreError::Conflict(format!(
                    "{at}: another smimekit is writing (still locked after {} s)",
                    self.busy.as_secs()
                )),
                C::DatabaseCorrupt | C::NotADatabase => {
                    StoreError::Corrupt(format!("{at}: {e} (restore it from a backup)"))
                }
                _ => StoreError::Unavailable(format!("{at}: {e}")),
            },
            rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::IntegralValueOutOfRange(..) => {
                StoreError::Corrupt(format!("{at}: unreadable stored value: {e}"))
            }
            _ => StoreError::Unavailable(format!("{at}: {e}")),
        }
    }
}

/// An error inside a transaction: SQLite's, or ours.
enum Fail {
    Sql(rusqlite::Error),
    Store(StoreError),
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Self {
        Fail::Sql(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

impl Place {
    fn fail(&self, f: Fail) -> StoreError {
        match f {
            Fail::Sql(e) => self.err(e),
            Fail::Store(e) => e,
        }
    }
}

/// The SQLite store.
pub struct SqliteStore {
    path: PathBuf,
    place: Place,
    writer: Arc<Mutex<Connection>>,
    readers: Mutex<Vec<Connection>>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

fn connect(path: &Path, place: &Place) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| place.err(e))?;
    conn.busy_timeout(place.busy).map_err(|e| place.err(e))?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(|e| place.err(e))?;
    // Reads through a memory map: no read() call per page, and the OS page cache is shared
    // by every connection (SQLite's own cache is per connection and small).
    conn.pragma_update(None, "mmap_size", MMAP_SIZE)
        .map_err(|e| place.err(e))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

fn migrate(conn: &mut Connection, place: &Place) -> Result<(), StoreError> {
    let applied = |conn: &Connection| -> Option<i64> {
        conn.query_row(
            "SELECT MAX(version) FROM refinery_schema_history",
            [],
            |r| r.get::<_, Option<i64>>(0),
        )
        .ok()
        .flatten()
    };
    let latest = crate::latest_version();
    match applied(conn) {
        Some(v) if v == latest => return Ok(()),
        Some(v) if v > latest => {
            return Err(StoreError::Corrupt(format!(
                "{}: schema version {v} was written by a newer smimekit (this one knows {latest})",
                place.name
            )));
        }
        _ => {}
    }
    conn.set_transaction_behavior(TransactionBehavior::Immediate);
    let mut last = None;
    // A second process creating the same file at the same moment makes the first attempt
    // fail on the history table after the other committed; the second attempt finds the
    // schema in place.
    for _ in 0..3 {
        match crate::embedded::migrations::runner().run(conn) {
            Ok(_) => {
                last = None;
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    conn.set_transaction_behavior(TransactionBehavior::Deferred);
    match last {
        None => Ok(()),
        Some(e) => Err(StoreError::Unavailable(format!(
            "{}: bringing the schema up to date: {e}",
            place.name
        ))),
    }
}

impl SqliteStore {
    /// Opens (creating it and its folder if missing) the store at `path`, in WAL mode with
    /// the schema up to date. `busy_timeout` bounds the wait for another process's write.
    pub async fn open(
        path: impl Into<PathBuf>,
        busy_timeout: Duration,
    ) -> Result<Self, StoreError> {
        let path = path.into();
        let place = Place {
            name: format!("sqlite:{}", path.display()).into(),
            busy: busy_timeout,
        };
        let (p, pl) = (path.clone(), place.clone());
        // Creating the file and migrating may wait for another process: blocking pool.
        let writer = tokio::task::spawn_blocking(move || prepare(&p, &pl))
            .await
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", place.name)))??;
        Ok(Self {
            path,
            place,
            writer: Arc::new(Mutex::new(writer)),
            readers: Mutex::new(Vec::new()),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on a reader connection, inline (see the module docs).
    /// Inventory rows of a query whose columns are `common::inventory_sql`'s.
    fn inventory_rows(
        &self,
        text: &str,
        params: &[common::Param],
    ) -> Result<Vec<InventoryCert>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(text)?;
            let binds: Vec<&dyn rusqlite::ToSql> = params.iter().map(to_sql).collect();
            let rows = stmt
                .query_map(binds.as_slice(), |r| {
                    Ok(common::InventoryRow {
                        directory: r.get(0)?,
                        address: r.get(1)?,
                        recipient_kind: r.get(2)?,
                        sha1: r.get(3)?,
                        sha256: r.get(4)?,
                        subject: r.get(5)?,
                        issuer: r.get(6)?,
                        serial: r.get(7)?,
                        not_before: r.get(8)?,
                        not_after: r.get(9)?,
                        key_type: r.get(10)?,
                        source_attribute: r.get(11)?,
                        first_seen: r.get(12)?,
                        last_seen: r.get(13)?,
                        published: r.get(14)?,
                        present: r.get(15)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|r| r.into_cert(&self.place.name).map_err(Fail::from))
                .collect()
        })
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T, Fail>) -> Result<T, StoreError> {
        let conn = match self.readers.lock().ok().and_then(|mut r| r.pop()) {
            Some(c) => c,
            None => connect(&self.path, &self.place)?,
        };
        let out = f(&conn).map_err(|e| self.place.fail(e));
        if let Ok(mut r) = self.readers.lock()
            && r.len() < MAX_IDLE_READERS
        {
            r.push(conn);
        }
        out
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction on the writer, on the blocking pool.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, Fail> + Send + 'static,
    ) -> Result<T, StoreError> {
        let writer = self.writer.clone();
        let place = self.place.clone();
        let place2 = self.place.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = writer.lock().map_err(|_| {
                StoreError::Unavailable(format!("{}: writer poisoned by a panic", place.name))
            })?;
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| place.err(e))?;
            let value = f(&tx).map_err(|e| place.fail(e))?;
            tx.commit().map_err(|e| place.err(e))?;
            Ok(value)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("{}: {e}", place2.name)))?
    }
}

fn prepare(path: &Path, place: &Place) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Unavailable(format!("{}: creating {}: {e}", place.name, dir.display()))
        })?;
    }
    let mut conn = connect(path, place)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(|e| place.err(e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(format!(
            "{}: cannot use write-ahead logging (journal mode stays {mode}); put the store on a local file system",
            place.name
        )));
    }
    migrate(&mut conn, place)?;
    Ok(conn)
}

/// A shared statement in SQLite's placeholder style, converted once per call site (lookups
/// run this per call: no lock, no allocation on the hot path).
macro_rules! q {
    ($sql:expr) => {{
        static CONVERTED: std::sync::LazyLock<String> =
            std::sync::LazyLock::new(|| sqlite_placeholders($sql));
        CONVERTED.as_str()
    }};
}

fn read_recipient(
    c: &Connection,
    directory: &str,
    key: &str,
    place: &Place,
) -> Result<Option<Recipient>, Fail> {
    // The lookup hot path: one statement, each certificate copied once.
    let mut stmt = c.prepare_cached(q!(sql::RECIPIENT))?;
    let mut rows = stmt.query(params![directory, key])?;
    let mut out: Option<Recipient> = None;
    while let Some(row) = rows.next()? {
        let r = match &mut out {
            Some(r) => r,
            None => out.insert(
                group_recipients([(row.get(0)?, row.get(1)?, None)], &place.name)?
                    .pop()
                    .ok_or_else(|| {
                        Fail::Store(StoreError::Corrupt(format!("{}: empty row", place.name)))
                    })?,
            ),
        };
        if let rusqlite::types::ValueRef::Blob(der) = row.get_ref(2)? {
            r.certificates.push(CertDer::new(der));
        }
    }
    Ok(out)
}

fn read_certificates(
    c: &Connection,
    directory: &str,
    key: &str,
) -> Result<Vec<(i64, CertDer)>, Fail> {
    let mut stmt = c.prepare_cached(q!(sql::CERTIFICATES))?;
    let rows = stmt
        .query_map(params![directory, key], |r| {
            Ok((r.get::<_, i64>(0)?, CertDer::new(r.get::<_, Vec<u8>>(1)?)))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

fn read_trust(c: &Connection, directory: &str) -> Result<Vec<CertDer>, Fail> {
    let mut stmt = c.prepare_cached(q!(sql::TRUST))?;
    let rows = stmt
        .query_map(params![directory], |r| {
            Ok(CertDer::new(r.get::<_, Vec<u8>>(0)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

fn read_recipients(c: &Connection, directory: &str, place: &Place) -> Result<Vec<Recipient>, Fail> {
    let mut stmt = c.prepare_cached(q!(sql::RECIPIENTS))?;
    let rows = stmt
        .query_map(params![directory], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get::<_, Option<Vec<u8>>>(2)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(group_recipients(rows, &place.name)?)
}

fn ensure_directory(c: &Connection, directory: &str) -> Result<(), Fail> {
    c.prepare_cached(q!(sql::ENSURE_DIRECTORY))?
        .execute(params![directory])?;
    Ok(())
}

/// The publish inside a write transaction; the certificates as read back.
fn publish_in(c: &Connection, directory: &str, p: &Publish<'_>) -> Result<Vec<CertDer>, Fail> {
    let key = p.address.key();
    ensure_directory(c, directory)?;
    c.prepare_cached(q!(sql::ENSURE_RECIPIENT))?
        .execute(params![
            directory,
            key,
            p.address.as_str(),
            kind_text(p.kind)
        ])?;
    let existing = read_certificates(c, directory, &key)?;
    let plan = plan_publish(&existing, p);
    if !plan.delete.is_empty() {
        let mut del = c.prepare_cached(q!(sql::DELETE_CERTIFICATE))?;
        for pos in &plan.delete {
            del.execute(params![directory, key, pos])?;
        }
    }
    if let Some(pos) = plan.append_at {
        c.prepare_cached(q!(sql::INSERT_CERTIFICATE))?
            .execute(params![directory, key, pos, p.certificate.as_bytes()])?;
    }
    Ok(read_certificates(c, directory, &key)?
        .into_iter()
        .map(|(_, c)| c)
        .collect())
}

fn set_trust_in(c: &Connection, directory: &str, chain: &[CertDer]) -> Result<Vec<CertDer>, Fail> {
    ensure_directory(c, directory)?;
    c.prepare_cached(q!(sql::DELETE_TRUST))?
        .execute(params![directory])?;
    let mut ins = c.prepare_cached(q!(sql::INSERT_TRUST))?;
    for (i, der) in dedup(chain).iter().enumerate() {
        ins.execute(params![directory, i as i64, der.as_bytes()])?;
    }
    read_trust(c, directory)
}

fn read_import_source(c: &Connection, directory: &str) -> Result<Option<ImportSource>, Fail> {
    let row = c
        .prepare_cached(q!(sql::IMPORT_SOURCE))?
        .query_row(params![directory], |r| {
            Ok((
                r.get::<_, Option<String>>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<i64>>(2)?,
            ))
        })
        .optional()?;
    Ok(match row {
        Some((Some(file), Some(sha256), Some(time))) => Some(ImportSource { file, sha256, time }),
        _ => None,
    })
}

fn audit_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRecord> {
    Ok(AuditRecord {
        seq: r.get(0)?,
        entry: AuditEntry {
            time: r.get(1)?,
            actor: r.get(2)?,
            frontend: r.get(3)?,
            operation: r.get(4)?,
            directory: r.get(5)?,
            address: r.get(6)?,
            before: split_list(&r.get::<_, String>(7)?),
            after: split_list(&r.get::<_, String>(8)?),
            result: r.get(9)?,
        },
        hash: r.get(10)?,
    })
}

fn to_sql(p: &Param) -> &dyn rusqlite::ToSql {
    match p {
        Param::Text(s) => s,
        Param::Int(i) => i,
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn describe(&self) -> String {
        self.place.name.to_string()
    }

    async fn recipient(
        &self,
        directory: &str,
        address: &Mailbox,
    ) -> Result<Option<Recipient>, StoreError> {
        self.read(|c| read_recipient(c, directory, &address.key(), &self.place))
    }

    async fn recipients(&self, directory: &str) -> Result<Vec<Recipient>, StoreError> {
        self.read(|c| read_recipients(c, directory, &self.place))
    }

    async fn publish(
        &self,
        directory: &str,
        publish: &Publish<'_>,
    ) -> Result<Vec<CertDer>, StoreError> {
        let directory = directory.to_string();
        let (address, kind, certificate, mode, remove) = (
            publish.address.clone(),
            publish.kind,
            publish.certificate.clone(),
            publish.mode,
            publish.remove.to_vec(),
        );
        self.write(move |tx| {
            let p = Publish {
                address: &address,
                kind,
                certificate: &certificate,
                mode,
                remove: &remove,
            };
            publish_in(tx, &directory, &p)
        })
        .await
    }

    async fn unpublish(
        &self,
        directory: &str,
        address: &Mailbox,
        certificate: &CertDer,
    ) -> Result<Vec<CertDer>, StoreError> {
        let (directory, address, certificate) =
            (directory.to_string(), address.clone(), certificate.clone());
        self.write(move |tx| {
            let key = address.key();
            let kind: Option<String> = tx
                .prepare_cached(q!(sql::RECIPIENT_KIND))?
                .query_row(params![directory, key], |r| r.get(0))
                .optional()?;
            if kind.is_none() {
                return Err(StoreError::NotFound(format!(
                    "{address}: no such recipient in directory {directory}"
                ))
                .into());
            }
            let mut del = tx.prepare_cached(q!(sql::DELETE_CERTIFICATE))?;
            for (pos, der) in read_certificates(tx, &directory, &key)? {
                if der == certificate {
                    del.execute(params![directory, key, pos])?;
                }
            }
            Ok(read_certificates(tx, &directory, &key)?
                .into_iter()
                .map(|(_, c)| c)
                .collect())
        })
        .await
    }

    async fn trust_chain(&self, directory: &str) -> Result<Vec<CertDer>, StoreError> {
        self.read(|c| read_trust(c, directory))
    }

    async fn set_trust_chain(
        &self,
        directory: &str,
        chain: &[CertDer],
    ) -> Result<Vec<CertDer>, StoreError> {
        let (directory, chain) = (directory.to_string(), chain.to_vec());
        self.write(move |tx| set_trust_in(tx, &directory, &chain))
            .await
    }

    async fn export_directory(&self, directory: &str) -> Result<DirectoryData, StoreError> {
        self.read(|c| {
            // One read transaction: recipients and chain from the same commit.
            let tx = c.unchecked_transaction()?;
            let recipients = read_recipients(&tx, directory, &self.place)?;
            let trust_chain = read_trust(&tx, directory)?;
            tx.finish()?;
            Ok(DirectoryData {
                recipients,
                trust_chain,
            })
        })
    }

    async fn import_directory(
        &self,
        directory: &str,
        data: &DirectoryData,
        mode: ImportMode,
        source: Option<&ImportSource>,
    ) -> Result<ImportOutcome, StoreError> {
        let (directory, data, source) = (directory.to_string(), data.clone(), source.cloned());
        self.write(move |tx| {
            ensure_directory(tx, &directory)?;
            if let Some(src) = &source
                && let Some(before) = read_import_source(tx, &directory)?
                && before.sha256 == src.sha256
            {
                return Ok(ImportOutcome::AlreadyImported { source: before });
            }
            if mode == ImportMode::Replace {
                tx.prepare_cached(q!(sql::DELETE_CERTIFICATES))?
                    .execute(params![directory])?;
                tx.prepare_cached(q!(sql::DELETE_RECIPIENTS))?
                    .execute(params![directory])?;
            }
            let (mut recipients, mut certificates) = (0u64, 0u64);
            for r in &data.recipients {
                recipients += 1;
                if r.certificates.is_empty() {
                    tx.prepare_cached(q!(sql::ENSURE_RECIPIENT))?
                        .execute(params![
                            directory,
                            r.address.key(),
                            r.address.as_str(),
                            kind_text(r.kind)
                        ])?;
                }
                for c in &r.certificates {
                    certificates += 1;
                    publish_in(
                        tx,
                        &directory,
                        &Publish {
                            address: &r.address,
                            kind: r.kind,
                            certificate: c,
                            mode: PublishMode::Merge,
                            remove: &[],
                        },
                    )?;
                }
            }
            if mode == ImportMode::Replace || !data.trust_chain.is_empty() {
                set_trust_in(tx, &directory, &data.trust_chain)?;
            }
            if let Some(src) = &source {
                tx.prepare_cached(q!(sql::SET_IMPORT_SOURCE))?
                    .execute(params![directory, src.file, src.sha256, src.time])?;
            }
            Ok(ImportOutcome::Imported {
                recipients,
                certificates,
                trust_chain: data.trust_chain.len() as u64,
            })
        })
        .await
    }

    async fn import_source(&self, directory: &str) -> Result<Option<ImportSource>, StoreError> {
        self.read(|c| read_import_source(c, directory))
    }

    async fn inventory_record(&self, sightings: &[Sighting<'_>]) -> Result<(), StoreError> {
        let owned: Vec<common::OwnedSighting> =
            sightings.iter().map(common::OwnedSighting::from).collect();
        self.write(move |tx| {
            let mut up = tx.prepare_cached(q!(sql::INVENTORY_UPSERT))?;
            for s in &owned {
                for f in &s.certificates {
                    up.execute(params![
                        s.directory,
                        s.key,
                        s.address,
                        s.kind,
                        f.sha256,
                        f.sha1,
                        f.subject,
                        f.issuer,
                        f.serial,
                        f.not_before,
                        f.not_after,
                        f.key_type,
                        f.source_attribute,
                        s.time,
                        i64::from(s.published)
                    ])?;
                }
                if s.complete {
                    let present: Vec<String> = tx
                        .prepare_cached(q!(sql::INVENTORY_PRESENT))?
                        .query_map(params![s.directory, s.key], |r| r.get(0))?
                        .collect::<Result<_, _>>()?;
                    let mut gone = tx.prepare_cached(q!(sql::INVENTORY_GONE))?;
                    for sha in present {
                        if !s.certificates.iter().any(|f| f.sha256 == sha) {
                            gone.execute(params![s.directory, s.key, sha])?;
                        }
                    }
                }
            }
            tx.prepare_cached(sql::INVENTORY_BUMP)?.execute([])?;
            Ok(())
        })
        .await
    }

    async fn inventory_touch(
        &self,
        directory: &str,
        seen: &[Seen<'_>],
        time: i64,
    ) -> Result<Vec<bool>, StoreError> {
        let owned: Vec<common::OwnedSeen> = seen.iter().map(common::OwnedSeen::from).collect();
        let directory = directory.to_string();
        self.write(move |tx| {
            let rows = tx
                .prepare_cached(q!(sql::INVENTORY_PRESENT_ALL))?
                .query_map(params![directory], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?
                .collect::<Result<Vec<common::PresentRow>, _>>()?;
            let unchanged = common::unchanged(&rows, &owned);
            let keys = common::unchanged_keys(&owned, &unchanged);
            let touched = if common::covers_all(&rows, &keys) {
                tx.prepare_cached(q!(sql::INVENTORY_SEEN_PUT))?
                    .execute(params![directory, time])?
            } else {
                // A list of strings always serialises.
                let keys = serde_json::to_string(&keys).unwrap_or_else(|_| "[]".into());
                tx.prepare_cached(q!(sql::INVENTORY_TOUCH_JSON))?
                    .execute(params![time, directory, keys])?
            };
            if touched > 0 {
                tx.prepare_cached(sql::INVENTORY_BUMP)?.execute([])?;
            }
            Ok(unchanged)
        })
        .await
    }

    async fn inventory(&self, query: &InventoryQuery) -> Result<Vec<InventoryCert>, StoreError> {
        let (text, params) = common::inventory_sql(query);
        self.inventory_rows(&sqlite_placeholders(&text), &params)
    }

    async fn inventory_first_addresses(
        &self,
        count: usize,
    ) -> Result<Vec<InventoryCert>, StoreError> {
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        self.inventory_rows(
            q!(&common::inventory_first_sql()),
            &[common::Param::Int(count)],
        )
    }

    async fn inventory_version(&self) -> Result<i64, StoreError> {
        self.read(|c| {
            Ok(c.prepare_cached(sql::INVENTORY_VERSION)?
                .query_row([], |r| r.get(0))?)
        })
    }

    async fn signature_checks(&self) -> Result<Vec<String>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(sql::SIGNATURE_CHECKS)?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<Result<Vec<String>, _>>()?)
        })
    }

    async fn signature_checks_record(
        &self,
        digests: &[String],
        at: i64,
        forget_before: i64,
    ) -> Result<(), StoreError> {
        let digests = digests.to_vec();
        self.write(move |tx| {
            let mut put = tx.prepare_cached(q!(sql::SIGNATURE_CHECK_PUT))?;
            for d in &digests {
                put.execute(params![d, at])?;
            }
            tx.prepare_cached(q!(sql::SIGNATURE_CHECK_FORGET))?
                .execute(params![forget_before])?;
            Ok(())
        })
        .await
    }

    async fn audit_append(&self, entry: &AuditEntry) -> Result<AuditRecord, StoreError> {
        let entry = entry.clone();
        self.write(move |tx| {
            let (seq, prev): (i64, String) = tx
                .prepare_cached(q!(sql::AUDIT_HEAD))?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            let seq = seq + 1;
            let hash = audit_hash(&prev, seq, &entry);
            tx.prepare_cached(q!(sql::AUDIT_INSERT))?.execute(params![
                seq,
                entry.time,
                entry.actor,
                entry.frontend,
                entry.operation,
                entry.directory,
                entry.address,
                entry.address.to_ascii_lowercase(),
                join_list(&entry.before),
                join_list(&entry.after),
                entry.result,
                hash
            ])?;
            tx.prepare_cached(q!(sql::AUDIT_SET_HEAD))?
                .execute(params![seq, hash])?;
            Ok(AuditRecord { seq, entry, hash })
        })
        .await
    }

    async fn audit_log(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let (text, params) = sql::audit_filtered(filter);
        let text = sqlite_placeholders(&text);
        self.read(|c| {
            let mut stmt = c.prepare_cached(&text)?;
            let binds: Vec<&dyn rusqlite::ToSql> = params.iter().map(to_sql).collect();
            Ok(stmt
                .query_map(binds.as_slice(), audit_row)?
                .collect::<Result<Vec<_>, _>>()?)
        })
    }

    async fn audit_verify(&self) -> Result<AuditVerdict, StoreError> {
        self.read(|c| {
            let tx = c.unchecked_transaction()?;
            let (seq, hash): (i64, String) =
                tx.query_row(q!(sql::AUDIT_HEAD), [], |r| Ok((r.get(0)?, r.get(1)?)))?;
            let verdict = {
                let mut stmt = tx.prepare(&format!("{} ORDER BY seq", sql::AUDIT_COLUMNS))?;
                let rows = stmt
                    .query_map([], audit_row)?
                    .collect::<Result<Vec<_>, _>>()?;
                common::verify_chain(rows, seq, &hash)
            };
            tx.finish()?;
            Ok(verdict)
        })
    }

    async fn job_start(
        &self,
        kind: &str,
        actor: &str,
        frontend: &str,
        started: i64,
    ) -> Result<i64, StoreError> {
        let (kind, actor, frontend) = (kind.to_string(), actor.to_string(), frontend.to_string());
        self.write(move |tx| {
            let id: i64 = tx.query_row(q!(sql::JOB_NEXT_ID), [], |r| r.get(0))?;
            tx.prepare_cached(q!(sql::JOB_INSERT))?
                .execute(params![id, kind, actor, frontend, started])?;
            Ok(id)
        })
        .await
    }

    async fn job_finish(
        &self,
        id: i64,
        finished: i64,
        outcome: &str,
        items: &str,
    ) -> Result<(), StoreError> {
        let (outcome, items) = (outcome.to_string(), items.to_string());
        self.write(move |tx| {
            let n = tx
                .prepare_cached(q!(sql::JOB_FINISH))?
                .execute(params![id, finished, outcome, items])?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("job {id}: no such job")).into());
            }
            Ok(())
        })
        .await
    }

    async fn jobs(&self, limit: u32) -> Result<Vec<JobRecord>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(q!(sql::JOBS))?;
            Ok(stmt
                .query_map(params![i64::from(limit)], |r| {
                    Ok(JobRecord {
                        id: r.get(0)?,
                        kind: r.get(1)?,
                        actor: r.get(2)?,
                        frontend: r.get(3)?,
                        started: r.get(4)?,
                        finished: r.get(5)?,
                        outcome: r.get(6)?,
                        items: r.get(7)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?)
        })
    }

    async fn directory_state(
        &self,
        directory: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        self.read(|c| {
            Ok(c.prepare_cached(q!(sql::DIRECTORY_STATE))?
                .query_row(params![directory, key], |r| r.get(0))
                .optional()?)
        })
    }

    async fn set_directory_state(
        &self,
        directory: &str,
        key: &str,
        value: &str,
        updated: i64,
    ) -> Result<(), StoreError> {
        let (directory, key, value) = (directory.to_string(), key.to_string(), value.to_string());
        self.write(move |tx| {
            tx.prepare_cached(q!(sql::SET_DIRECTORY_STATE))?
                .execute(params![directory, key, value, updated])?;
            Ok(())
        })
        .await
    }

    async fn managed(&self, directory: Option<&str>) -> Result<Vec<ManagedCert>, StoreError> {
        self.read(|c| {
            let mut shared = HashMap::new();
            let mut row = |r: &rusqlite::Row<'_>| managed_row_sharing(r, &mut shared);
            let rows = match directory {
                Some(d) => {
                    let mut stmt = c.prepare_cached(q!(&format!(
                        "{} WHERE directory = $1{}",
                        sql::MANAGED_COLUMNS,
                        sql::MANAGED_ORDER
                    )))?;
                    stmt.query_map(params![d], &mut row)?
                        .collect::<Result<Vec<_>, _>>()?
                }
                None => {
                    let mut stmt = c.prepare_cached(q!(&format!(
                        "{}{}",
                        sql::MANAGED_COLUMNS,
                        sql::MANAGED_ORDER
                    )))?;
                    stmt.query_map([], &mut row)?
                        .collect::<Result<Vec<_>, _>>()?
                }
            };
            Ok(rows)
        })
    }

    async fn managed_for(
        &self,
        directory: &str,
        address: &str,
    ) -> Result<Vec<ManagedCert>, StoreError> {
        let key = common::managed_address(directory, address, &self.place.name)?;
        self.read(|c| {
            let mut stmt = c.prepare_cached(q!(sql::MANAGED_FOR))?;
            Ok(stmt
                .query_map(params![directory, key], managed_row)?
                .collect::<Result<Vec<_>, _>>()?)
        })
    }

    async fn managed_put(&self, rows: &[ManagedCert]) -> Result<(), StoreError> {
        let rows = rows
            .iter()
            .map(|m| common::managed_normalised(m, &self.place.name))
            .collect::<Result<Vec<_>, _>>()?;
        self.write(move |tx| {
            let mut up = tx.prepare_cached(q!(sql::MANAGED_UPSERT))?;
            for m in &rows {
                up.execute(params![
                    m.directory,
                    m.address,
                    m.thumbprint,
                    m.certificate.as_bytes(),
                    m.published,
                    i64::from(m.confirmed),
                    m.superseded
                ])?;
            }
            Ok(())
        })
        .await
    }

    async fn managed_forget(
        &self,
        directory: &str,
        address: &str,
        thumbprint: &str,
    ) -> Result<(), StoreError> {
        let key = common::managed_key(directory, address, thumbprint, &self.place.name)?;
        self.write(move |tx| {
            tx.prepare_cached(q!(sql::MANAGED_FORGET))?
                .execute(params![key.0, key.1, key.2])?;
            Ok(())
        })
        .await
    }

    async fn lock_acquire(
        &self,
        lock: &LockInfo,
        replace: Option<&str>,
    ) -> Result<Option<LockInfo>, StoreError> {
        common::non_empty(
            &self.place.name,
            &[("lock name", &lock.name), ("lock id", &lock.id)],
        )?;
        let (lock, replace) = (lock.clone(), replace.map(str::to_string));
        let place = self.place.clone();
        // The write transaction holds the file's lock: insert, take over and read see one state.
        self.write(move |tx| {
            let l = &lock;
            let fields = params![
                l.name,
                l.id,
                l.host,
                i64::from(l.pid),
                l.actor,
                l.started,
                l.heartbeat
            ];
            if tx.prepare_cached(q!(sql::LOCK_INSERT))?.execute(fields)? == 1 {
                return Ok(None);
            }
            if let Some(old) = &replace
                && tx.prepare_cached(q!(sql::LOCK_REPLACE))?.execute(params![
                    l.name,
                    l.id,
                    l.host,
                    i64::from(l.pid),
                    l.actor,
                    l.started,
                    l.heartbeat,
                    old
                ])? == 1
            {
                return Ok(None);
            }
            match read_lock(tx, &l.name, &place)? {
                Some(holder) if holder.id == l.id => Ok(None),
                Some(holder) => Ok(Some(holder)),
                // Cannot happen under the file lock (the insert found a row); say so if it does.
                None => Err(StoreError::Conflict(format!(
                    "{}: lock {:?} changed while being taken; retry",
                    place.name, l.name
                ))
                .into()),
            }
        })
        .await
    }

    async fn lock_get(&self, name: &str) -> Result<Option<LockInfo>, StoreError> {
        self.read(|c| read_lock(c, name, &self.place))
    }

    async fn lock_heartbeat(&self, name: &str, id: &str, at: i64) -> Result<bool, StoreError> {
        let (name, id) = (name.to_string(), id.to_string());
        self.write(move |tx| {
            Ok(tx
                .prepare_cached(q!(sql::LOCK_HEARTBEAT))?
                .execute(params![name, id, at])?
                > 0)
        })
        .await
    }

    async fn lock_release(&self, name: &str, id: &str) -> Result<bool, StoreError> {
        let (name, id) = (name.to_string(), id.to_string());
        self.write(move |tx| {
            Ok(tx
                .prepare_cached(q!(sql::LOCK_RELEASE))?
                .execute(params![name, id])?
                > 0)
        })
        .await
    }

    async fn journal_append(&self, entry: &JournalEntry) -> Result<(), StoreError> {
        common::non_empty(
            &self.place.name,
            &[
                ("journal run", &entry.run),
                ("journal step", &entry.step),
                ("journal phase", &entry.phase),
            ],
        )?;
        let entry = entry.clone();
        self.write(move |tx| journal_append_in(tx, &entry)).await
    }

    async fn journal(&self, run: &str) -> Result<Vec<JournalEntry>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(q!(sql::JOURNAL_RUN))?;
            Ok(stmt
                .query_map(params![run], journal_row)?
                .collect::<Result<Vec<_>, _>>()?)
        })
    }

    async fn journal_interrupted(&self) -> Result<Vec<JournalEntry>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(q!(sql::JOURNAL_INTERRUPTED))?;
            Ok(stmt
                .query_map([], journal_row)?
                .collect::<Result<Vec<_>, _>>()?)
        })
    }

    async fn journal_resolve(&self, step: &str, at: i64) -> Result<(), StoreError> {
        let step = step.to_string();
        self.write(move |tx| {
            let runs: Vec<String> = tx
                .prepare_cached(q!(sql::JOURNAL_OPEN_RUNS))?
                .query_map(params![step], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            for run in runs {
                journal_append_in(
                    tx,
                    &JournalEntry {
                        run,
                        step: step.clone(),
                        phase: common::PHASE_RESOLVED.into(),
                        detail: String::new(),
                        at,
                    },
                )?;
            }
            Ok(())
        })
        .await
    }

    async fn remind(&self, key: &str, since: i64, at: i64) -> Result<bool, StoreError> {
        common::non_empty(&self.place.name, &[("reminder key", key)])?;
        let key = key.to_string();
        self.write(move |tx| {
            Ok(tx
                .prepare_cached(q!(sql::REMIND))?
                .query_row(params![key, since, at], |_| Ok(()))
                .optional()?
                .is_some())
        })
        .await
    }

    async fn user_put(&self, user: &WebUser) -> Result<(), StoreError> {
        common::non_empty(
            &self.place.name,
            &[("user name", &user.name), ("user role", &user.role)],
        )?;
        let u = user.clone();
        self.write(move |tx| {
            tx.prepare_cached(q!(sql::USER_PUT))?.execute(params![
                u.name,
                u.role,
                u.password_hash,
                u.created,
                i64::from(u.failures),
                u.locked_until
            ])?;
            Ok(())
        })
        .await
    }

    async fn user_get(&self, name: &str) -> Result<Option<WebUser>, StoreError> {
        self.read(|c| {
            Ok(c.prepare_cached(q!(sql::USER_GET))?
                .query_row(params![name], user_row)
                .optional()?)
        })
    }

    async fn users(&self) -> Result<Vec<WebUser>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(q!(sql::USERS))?;
            Ok(stmt
                .query_map([], user_row)?
                .collect::<Result<Vec<_>, _>>()?)
        })
    }

    async fn user_remove(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_string();
        self.write(move |tx| {
            tx.prepare_cached(q!(sql::USER_SESSIONS_REMOVE))?
                .execute(params![name])?;
            Ok(tx
                .prepare_cached(q!(sql::USER_REMOVE))?
                .execute(params![name])?
                > 0)
        })
        .await
    }

    async fn session_put(&self, session: &WebSession) -> Result<(), StoreError> {
        common::non_empty(
            &self.place.name,
            &[("session id", &session.id), ("session user", &session.user)],
        )?;
        let (s, name) = (session.clone(), self.place.name.clone());
        self.write(move |tx| {
            let n = tx.prepare_cached(q!(sql::SESSION_PUT))?.execute(params![
                s.id,
                s.user,
                s.csrf,
                s.created,
                s.last_seen
            ])?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("{name}: no user {:?}", s.user)).into());
            }
            Ok(())
        })
        .await
    }

    async fn session_get(&self, id: &str) -> Result<Option<WebSession>, StoreError> {
        self.read(|c| {
            Ok(c.prepare_cached(q!(sql::SESSION_GET))?
                .query_row(params![id], |r| {
                    Ok(WebSession {
                        id: r.get(0)?,
                        user: r.get(1)?,
                        csrf: r.get(2)?,
                        created: r.get(3)?,
                        last_seen: r.get(4)?,
                    })
                })
                .optional()?)
        })
    }

    async fn session_touch(&self, id: &str, at: i64) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.write(move |tx| {
            Ok(tx
                .prepare_cached(q!(sql::SESSION_TOUCH))?
                .execute(params![id, at])?
                > 0)
        })
        .await
    }

    async fn session_remove(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.write(move |tx| {
            Ok(tx
                .prepare_cached(q!(sql::SESSION_REMOVE))?
                .execute(params![id])?
                > 0)
        })
        .await
    }
}

fn user_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<WebUser> {
    Ok(WebUser {
        name: r.get(0)?,
        role: r.get(1)?,
        password_hash: r.get(2)?,
        created: r.get(3)?,
        // Written from a u32: a larger value is stored data we did not write; saturate.
        failures: u32::try_from(r.get::<_, i64>(4)?.max(0)).unwrap_or(u32::MAX),
        locked_until: r.get(5)?,
    })
}

fn managed_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ManagedCert> {
    managed_row_sharing(r, &mut HashMap::new())
}

/// [`managed_row`], sharing the bytes of a certificate already read in `shared` (by
/// thumbprint, the bytes compared): the same certificate is published to several
/// directories, and a plan reads every row.
fn managed_row_sharing(
    r: &rusqlite::Row<'_>,
    shared: &mut HashMap<String, CertDer>,
) -> rusqlite::Result<ManagedCert> {
    let thumbprint: String = r.get(2)?;
    let der = r.get_ref(3)?;
    let der = der.as_blob().map_err(|_| {
        rusqlite::Error::InvalidColumnType(3, "certificate".into(), der.data_type())
    })?;
    let certificate = match shared.get(&thumbprint) {
        Some(c) if c.as_bytes() == der => c.clone(),
        _ => {
            let c = CertDer::new(der.to_vec());
            shared.insert(thumbprint.clone(), c.clone());
            c
        }
    };
    Ok(ManagedCert {
        directory: r.get(0)?,
        address: r.get(1)?,
        thumbprint,
        certificate,
        published: r.get(4)?,
        confirmed: r.get::<_, i64>(5)? != 0,
        superseded: r.get(6)?,
    })
}

fn read_lock(c: &Connection, name: &str, place: &Place) -> Result<Option<LockInfo>, Fail> {
    let row = c
        .prepare_cached(q!(sql::LOCK_GET))?
        .query_row(params![name], |r| {
            Ok((
                LockInfo {
                    name: r.get(0)?,
                    id: r.get(1)?,
                    host: r.get(2)?,
                    pid: 0,
                    actor: r.get(4)?,
                    started: r.get(5)?,
                    heartbeat: r.get(6)?,
                },
                r.get::<_, i64>(3)?,
            ))
        })
        .optional()?;
    Ok(match row {
        Some((mut lock, pid)) => {
            lock.pid = common::pid_from(pid, &place.name)?;
            Some(lock)
        }
        None => None,
    })
}

fn journal_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<JournalEntry> {
    Ok(JournalEntry {
        run: r.get(0)?,
        step: r.get(1)?,
        phase: r.get(2)?,
        detail: r.get(3)?,
        at: r.get(4)?,
    })
}

/// Appends a journal row inside a write transaction and keeps the open steps in step.
fn journal_append_in(c: &Connection, e: &JournalEntry) -> Result<(), Fail> {
    let seq: i64 = c
        .prepare_cached(q!(sql::JOURNAL_NEXT_SEQ))?
        .query_row([], |r| r.get(0))?;
    c.prepare_cached(q!(sql::JOURNAL_INSERT))?
        .execute(params![seq, e.run, e.step, e.phase, e.detail, e.at])?;
    if e.phase == common::PHASE_START {
        c.prepare_cached(q!(sql::JOURNAL_OPEN))?
            .execute(params![e.run, e.step, seq])?;
    } else {
        c.prepare_cached(q!(sql::JOURNAL_CLOSE))?
            .execute(params![e.run, e.step])?;
    }
    Ok(())
}
