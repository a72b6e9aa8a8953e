//! PostgreSQL: for several smimekit servers on one database.
//!
//! A `deadpool` pool of `tokio-postgres` connections (TLS through native-tls when the URL's
//! `sslmode` asks for it; `prefer`, the default, falls back to plain on a server without
//! TLS). Every write is one READ COMMITTED transaction that first locks the rows it
//! read-modify-writes (`SELECT … FOR UPDATE`: the recipient, the directory for its trust
//! chain and imports, the audit head, the job counter), so concurrent writers queue per
//! recipient and nothing is lost. A serialization failure or a deadlock (possible between
//! inventory upserts of the same certificates in different orders) rolls back and the
//! transaction runs again, up to [`MAX_RETRIES`] times. The migrations (the refinery folder
//! shared with SQLite) run at open under a session advisory lock, so servers starting
//! together apply them once.

use std::fmt;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Transaction};
use postgres_native_tls::MakeTlsConnector;
use smimekit_core::store::{
    AuditEntry, AuditFilter, AuditRecord, AuditVerdict, DirectoryData, ImportMode, ImportOutcome,
    ImportSource, InventoryCert, InventoryQuery, JobRecord, JournalEntry, LockInfo, ManagedCert,
    Publish, Seen, Sighting, Store, StoreError, WebSession, WebUser, redact_url,
};
use smimekit_core::{CertDer, Mailbox, PublishMode, Recipient};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use crate::common::{
    self, InventoryRow, OwnedSighting, Param, audit_hash, dedup, group_recipients, join_list,
    kind_text, plan_publish, split_list,
};
use crate::sql;

/// Attempts of a transaction that failed on a serialization failure or a deadlock.
pub const MAX_RETRIES: u32 = 10;

/// Connections in the pool.
const POOL_SIZE: usize = 16;

/// `pg_advisory_lock` key held while migrating ("smimekit" in ASCII).
const MIGRATION_LOCK: i64 = 0x736d_696d_656b_6974;

/// An error inside a transaction: the database's, the pool's, or ours.
enum Fail {
    Sql(tokio_postgres::Error),
    Pool(String),
    Store(StoreError),
}

impl From<tokio_postgres::Error> for Fail {
    fn from(e: tokio_postgres::Error) -> Self {
        Fail::Sql(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

impl From<deadpool_postgres::PoolError> for Fail {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Fail::Pool(e.to_string())
    }
}

fn retryable(f: &Fail) -> bool {
    matches!(f, Fail::Sql(e) if e.code() == Some(&SqlState::T_R_SERIALIZATION_FAILURE)
        || e.code() == Some(&SqlState::T_R_DEADLOCK_DETECTED))
}

/// The PostgreSQL store.
pub struct PostgresStore {
    pool: Pool,
    name: String,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("url", &self.name)
            .finish()
    }
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user[:password]@host[:port]/database[?sslmode=…]`)
    /// and brings the schema up to date.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let name = redact_url(url);
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Config(format!("store url {name}: {e}")))?;
        let tls = native_tls::TlsConnector::new()
            .map(MakeTlsConnector::new)
            .map_err(|e| StoreError::Unavailable(format!("{name}: TLS set-up: {e}")))?;
        let store = Self {
            pool: Pool::builder(Manager::from_config(
                config.clone(),
                tls.clone(),
                ManagerConfig {
                    recycling_method: RecyclingMethod::Fast,
                },
            ))
            .max_size(POOL_SIZE)
            .build()
            .map_err(|e| StoreError::Config(format!("{name}: {e}")))?,
            name,
        };
        store.migrate(&config, tls).await?;
        Ok(store)
    }

    async fn migrate(
        &self,
        config: &tokio_postgres::Config,
        tls: MakeTlsConnector,
    ) -> Result<(), StoreError> {
        let (mut client, connection) = config
            .connect(tls)
            .await
            .map_err(|e| self.fail(Fail::Sql(e)))?;
        let task = tokio::spawn(connection);
        let result = async {
            client
                .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
                .await?;
            let applied: Option<i64> = match client
                .query_one(
                    "SELECT MAX(version)::BIGINT FROM refinery_schema_history",
                    &[],
                )
                .await
            {
                Ok(row) => row.try_get(0)?,
                Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => None,
                Err(e) => return Err(Fail::Sql(e)),
            };
            let latest = crate::latest_version();
            if let Some(v) = applied
                && v > latest
            {
                return Err(Fail::Store(StoreError::Corrupt(format!(
                    "{}: schema version {v} was written by a newer smimekit (this one knows {latest})",
                    self.name
                ))));
            }
            if applied != Some(latest) {
                crate::embedded::migrations::runner()
                    .run_async(&mut client)
                    .await
                    .map_err(|e| {
                        Fail::Store(StoreError::Unavailable(format!(
                            "{}: bringing the schema up to date: {e}",
                            self.name
                        )))
                    })?;
            }
            Ok(())
        }
        .await;
        // The lock is the session's: closing the connection releases it in any case.
        drop(client);
        let _ = task.await;
        result.map_err(|f| self.fail(f))
    }

    fn fail(&self, f: Fail) -> StoreError {
        let at = &self.name;
        match f {
            Fail::Store(e) => e,
            Fail::Pool(e) => StoreError::Unavailable(format!("{at}: {e}")),
            Fail::Sql(e) => {
                let detail = match e.as_db_error() {
                    Some(db) => format!("{}: {}", db.code().code(), db.message()),
                    None => e.to_string(),
                };
                match e.code() {
                    Some(c)
                        if c.code().starts_with("40")
                            || c == &SqlState::LOCK_NOT_AVAILABLE
                            || c.code().starts_with("23") =>
                    {
                        StoreError::Conflict(format!("{at}: {detail} (another writer; retry)"))
                    }
                    Some(c)
                        if c.code().starts_with("28") || c == &SqlState::INVALID_CATALOG_NAME =>
                    {
                        StoreError::Config(format!("{at}: {detail}"))
                    }
                    None if detail.contains("deserializ") => {
                        StoreError::Corrupt(format!("{at}: unreadable stored value: {detail}"))
                    }
                    _ => StoreError::Unavailable(format!("{at}: {detail}")),
                }
            }
        }
    }

    /// Inventory rows of a query whose columns are `common::inventory_sql`'s.
    async fn inventory_rows(
        &self,
        text: &str,
        params: &[Param],
    ) -> Result<Vec<InventoryCert>, StoreError> {
        let r: Result<_, Fail> = async {
            let c = self.client().await?;
            let stmt = c.prepare_cached(text).await?;
            let rows = c.query(&stmt, &binds(params)).await?;
            rows.iter()
                .map(|r| {
                    InventoryRow {
                        directory: r.try_get(0)?,
                        address: r.try_get(1)?,
                        recipient_kind: r.try_get(2)?,
                        sha1: r.try_get(3)?,
                        sha256: r.try_get(4)?,
                        subject: r.try_get(5)?,
                        issuer: r.try_get(6)?,
                        serial: r.try_get(7)?,
                        not_before: r.try_get(8)?,
                        not_after: r.try_get(9)?,
                        key_type: r.try_get(10)?,
                        source_attribute: r.try_get(11)?,
                        first_seen: r.try_get(12)?,
                        last_seen: r.try_get(13)?,
                        published: r.try_get(14)?,
                        present: r.try_get(15)?,
                    }
                    .into_cert(&self.name)
                    .map_err(Fail::from)
                })
                .collect()
        }
        .await;
        r.map_err(|f| self.fail(f))
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, Fail> {
        Ok(self.pool.get().await?)
    }
}

/// One write transaction with retries: `$body` runs with `$tx` bound to the transaction and
/// may use `?` on database errors and `StoreError`s.
macro_rules! write_tx {
    ($self:ident, |$tx:ident| $body:expr) => {{
        let mut attempt = 0u32;
        loop {
            let result: Result<_, Fail> = async {
                let mut client = $self.client().await?;
                let $tx = client.transaction().await?;
                let value = $body;
                $tx.commit().await?;
                Ok(value)
            }
            .await;
            match result {
                Err(f) if retryable(&f) && attempt + 1 < MAX_RETRIES => attempt += 1,
                other => break other.map_err(|f| $self.fail(f)),
            }
        }
    }};
}

async fn read_certificates(
    tx: &Transaction<'_>,
    directory: &str,
    key: &str,
) -> Result<Vec<(i64, CertDer)>, Fail> {
    let stmt = tx.prepare_cached(sql::CERTIFICATES).await?;
    tx.query(&stmt, &[&directory, &key])
        .await?
        .iter()
        .map(|r| {
            Ok((
                r.try_get::<_, i64>(0)?,
                CertDer::new(r.try_get::<_, Vec<u8>>(1)?),
            ))
        })
        .collect()
}

async fn read_trust(
    c: &impl deadpool_postgres::GenericClient,
    directory: &str,
) -> Result<Vec<CertDer>, Fail> {
    let stmt = c.prepare_cached(sql::TRUST).await?;
    c.query(&stmt, &[&directory])
        .await?
        .iter()
        .map(|r| Ok(CertDer::new(r.try_get::<_, Vec<u8>>(0)?)))
        .collect()
}

async fn read_recipients(
    c: &impl deadpool_postgres::GenericClient,
    directory: &str,
    name: &str,
) -> Result<Vec<Recipient>, Fail> {
    let stmt = c.prepare_cached(sql::RECIPIENTS).await?;
    let rows = c.query(&stmt, &[&directory]).await?;
    Ok(group_recipients(recipient_rows(&rows)?, name)?)
}

async fn lock_directory(tx: &Transaction<'_>, directory: &str) -> Result<(), Fail> {
    let ensure = tx.prepare_cached(sql::ENSURE_DIRECTORY).await?;
    tx.execute(&ensure, &[&directory]).await?;
    let lock = tx.prepare_cached(sql::LOCK_DIRECTORY).await?;
    tx.query(&lock, &[&directory]).await?;
    Ok(())
}

async fn publish_in(
    tx: &Transaction<'_>,
    directory: &str,
    p: &Publish<'_>,
) -> Result<Vec<CertDer>, Fail> {
    let key = p.address.key();
    let ensure = tx.prepare_cached(sql::ENSURE_DIRECTORY).await?;
    tx.execute(&ensure, &[&directory]).await?;
    let ensure = tx.prepare_cached(sql::ENSURE_RECIPIENT).await?;
    tx.execute(
        &ensure,
        &[&directory, &key, &p.address.as_str(), &kind_text(p.kind)],
    )
    .await?;
    let lock = tx
        .prepare_cached(&format!("{} FOR UPDATE", sql::RECIPIENT_KIND))
        .await?;
    tx.query(&lock, &[&directory, &key]).await?;
    let existing = read_certificates(tx, directory, &key).await?;
    let plan = plan_publish(&existing, p);
    if !plan.delete.is_empty() {
        let del = tx.prepare_cached(sql::DELETE_CERTIFICATE).await?;
        for pos in &plan.delete {
            tx.execute(&del, &[&directory, &key, pos]).await?;
        }
    }
    if let Some(pos) = plan.append_at {
        let ins = tx.prepare_cached(sql::INSERT_CERTIFICATE).await?;
        tx.execute(&ins, &[&directory, &key, &pos, &p.certificate.as_bytes()])
            .await?;
    }
    Ok(read_certificates(tx, directory, &key)
        .await?
        .into_iter()
        .map(|(_, c)| c)
        .collect())
}

async fn set_trust_in(
    tx: &Transaction<'_>,
    directory: &str,
    chain: &[CertDer],
) -> Result<Vec<CertDer>, Fail> {
    lock_directory(tx, directory).await?;
    let del = tx.prepare_cached(sql::DELETE_TRUST).await?;
    tx.execute(&del, &[&directory]).await?;
    let ins = tx.prepare_cached(sql::INSERT_TRUST).await?;
    for (i, der) in dedup(chain).iter().enumerate() {
        tx.execute(&ins, &[&directory, &(i as i64), &der.as_bytes()])
            .await?;
    }
    read_trust(tx, directory).await
}

async fn read_import_source(
    c: &impl deadpool_postgres::GenericClient,
    directory: &str,
) -> Result<Option<ImportSource>, Fail> {
    let stmt = c.prepare_cached(sql::IMPORT_SOURCE).await?;
    let Some(r) = c.query_opt(&stmt, &[&directory]).await? else {
        return Ok(None);
    };
    Ok(
        match (
            r.try_get::<_, Option<String>>(0)?,
            r.try_get::<_, Option<String>>(1)?,
            r.try_get::<_, Option<i64>>(2)?,
        ) {
            (Some(file), Some(sha256), Some(time)) => Some(ImportSource { file, sha256, time }),
            _ => None,
        },
    )
}

fn audit_row(r: &tokio_postgres::Row) -> Result<AuditRecord, Fail> {
    Ok(AuditRecord {
        seq: r.try_get(0)?,
        entry: AuditEntry {
            time: r.try_get(1)?,
            actor: r.try_get(2)?,
            frontend: r.try_get(3)?,
            operation: r.try_get(4)?,
            directory: r.try_get(5)?,
            address: r.try_get(6)?,
            before: split_list(r.try_get(7)?),
            after: split_list(r.try_get(8)?),
            result: r.try_get(9)?,
        },
        hash: r.try_get(10)?,
    })
}

/// (address, kind, certificate or NULL) of the recipient queries.
fn recipient_rows(rows: &[tokio_postgres::Row]) -> Result<Vec<common::RecipientRow>, Fail> {
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect()
}

fn binds(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| match p {
            Param::Text(s) => s as &(dyn ToSql + Sync),
            Param::Int(i) => i as &(dyn ToSql + Sync),
        })
        .collect()
}

#[async_trait]
impl Store for PostgresStore {
    fn describe(&self) -> String {
        self.name.clone()
    }

    async fn recipient(
        &self,
        directory: &str,
        address: &Mailbox,
    ) -> Result<Option<Recipient>, StoreError> {
        let r: Result<_, Fail> = async {
            let c = self.client().await?;
            let stmt = c.prepare_cached(sql::RECIPIENT).await?;
            let rows = c.query(&stmt, &[&directory, &address.key()]).await?;
            Ok(group_recipients(recipient_rows(&rows)?, &self.name)?.pop())
        }
        .await;
        r.map_err(|f| self.fail(f))
    }

    async fn recipients(&self, directory: &str) -> Result<Vec<Recipient>, StoreError> {
        let r: Result<_, Fail> = async {
            let c = self.client().await?;
            read_recipients(&c, directory, &self.name).await
        }
        .await;
        r.map_err(|f| self.fail(f))
    }

    async fn publish(
        &self,
        directory: &str,
        publish: &Publish<'_>,
    ) -> Result<Vec<CertDer>, StoreError> {
        write_tx!(self, |tx| publish_in(&tx, directory, publish).await?)
    }

    async fn unpublish(
        &self,
        directory: &str,
        address: &Mailbox,
        certificate: &CertDer,
    ) -> Result<Vec<CertDer>, StoreError> {
        let key = address.key();
        write_tx!(self, |tx| {
            let lock = tx
                .prepare_cached(&format!("{} FOR UPDATE", sql::RECIPIENT_KIND))
                .await?;
            if tx.query_opt(&lock, &[&directory, &key]).await?.is_none() {
                return Err(Fail::Store(StoreError::NotFound(format!(
                    "{address}: no such recipient in directory {directory}"
                ))));
            }
            let del = tx.prepare_cached(sql::DELETE_CERTIFICATE).await?;
            for (pos, der) in read_certificates(&tx, directory, &key).await? {
                if &der == certificate {
                    tx.execute(&del, &[&directory, &key, &pos]).await?;
                }
            }
            read_certificates(&tx, directory, &key)
                .await?
                .into_iter()
                .map(|(_, c)| c)
                .collect::<Vec<_>>()
        })
    }

    async fn trust_chain(&self, directory: &str) -> Result<Vec<CertDer>, StoreError> {
        let r: Result<_, Fail> = async {
            let c = self.client().await?;
            read_trust(&c, directory).await
        }
        .await;
        r.map_err(|f| self.fail(f))
    }

    async fn set_trust_chain(
        &self,
        directory: &str,
        chain: &[CertDer],
    ) -> Result<Vec<CertDer>, StoreError> {
        write_tx!(self, |tx| set_trust_in(&tx, directory, chain).await?)
    }

    async fn export_directory(&self, directory: &str) -> Result<DirectoryData, StoreError> {
        let r: Result<_, Fail> = async {
            let mut c = self.client().await?;
            // One snapshot for recipients and chain.
            let tx = c
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let recipients = read_recipients(&tx, directory, &self.name).await?;
            let trust_chain = read_trust(&tx, directory).await?;
            tx.commit().await?;
            Ok(DirectoryData {
                recipients,
                trust_chain,
            })
        }
        .await;
        r.map_err(|f| self.fail(f))
    }

    async fn import_directory(
        &self,
        directory: &str,
        data: &DirectoryData,
        mode: ImportMode,
        source: Option<&ImportSource>,
    ) -> Result<ImportOutcome, StoreError> {
        // Recipients in key order: two imports lock them in the same order.
        let mut recipients: Vec<&Recipient> = data.recipients.iter().collect();
        recipients.sort_by_key(|r| r.address.key());
        write_tx!(self, |tx| {
            lock_directory(&tx, directory).await?;
            let before = read_import_source(&tx, directory).await?;
            match (source, before) {
                (Some(src), Some(before)) if before.sha256 == src.sha256 => {
                    ImportOutcome::AlreadyImported { source: before }
                }
                _ => {
                    if mode == ImportMode::Replace {
                        for s in [sql::DELETE_CERTIFICATES, sql::DELETE_RECIPIENTS] {
                            let stmt = tx.prepare_cached(s).await?;
                            tx.execute(&stmt, &[&directory]).await?;
                        }
                    }
                    let mut certificates = 0u64;
                    for r in &recipients {
                        if r.certificates.is_empty() {
                            let ensure = tx.prepare_cached(sql::ENSURE_RECIPIENT).await?;
                            tx.execute(
                                &ensure,
                                &[
                                    &directory,
                                    &r.address.key(),
                                    &r.address.as_str(),
                                    &kind_text(r.kind),
                                ],
                            )
                            .await?;
                        }
                        for c in &r.certificates {
                            certificates += 1;
                            publish_in(
                                &tx,
                                directory,
                                &Publish {
                                    address: &r.address,
                                    kind: r.kind,
                                    certificate: c,
                                    mode: PublishMode::Merge,
                                    remove: &[],
                                },
                            )
                            .await?;
                        }
                    }
                    if mode == ImportMode::Replace || !data.trust_chain.is_empty() {
                        set_trust_in(&tx, directory, &data.trust_chain).await?;
                    }
                    if let Some(src) = source {
                        let stmt = tx.prepare_cached(sql::SET_IMPORT_SOURCE).await?;
                        tx.execute(&stmt, &[&directory, &src.file, &src.sha256, &src.time])
                            .await?;
                    }
                    ImportOutcome::Imported {
                        recipients: recipients.len() as u64,
                        certificates,
                        trust_chain: data.trust_chain.len() as u64,
                    }
                }
            }
        })
    }

    async fn import_source(&self, directory: &str) -> Result<Option<ImportSource>, StoreError> {
        let r: Result<_, Fail> = async {
            let c = self.client().await?;
            read_import_source(&c, directory).await
        }
        .await;
        r.map_err(|f| self.fail(f))
    }

    async fn inventory_record(&self, sightings: &[Sighting<'_>]) -> Result<(), StoreError> {
        let mut owned: Vec<OwnedSighting> = sightings.iter().map(OwnedSighting::from).collect();
        // Rows locked in one order by every writer: fewer deadlocks to retry.
        owned.sort_by(|a, b| (&a.directory, &a.key).cmp(&(&b.directory, &b.key)));
        for s in &mut owned {
            s.certificates.sort_by(|a, b| a.sha256.cmp(&b.sha256));
        }
        write_tx!(self, |tx| {
            let up = tx.prepare_cached(sql::INVENTORY_UPSERT).await?;
            for s in &owned {
                for f in &s.certificates {
                    tx.execute(
                        &up,
                        &[
                            &s.directory,
                            &s.key,
                            &s.address,
                            &s.kind,
                            &f.sha256,
                            &f.sha1,
                            &f.subject,
                            &f.issuer,
                            &f.serial,
                            &f.not_before,
                            &f.not_after,
                            &f.key_type,
                            &f.source_attribute,
                            &s.time,
                            &i64::from(s.published),
                        ],
                    )
                    .await?;
                }
                if s.complete {
                    let present = tx.prepare_cached(sql::INVENTORY_PRESENT).await?;
                    let gone = tx.prepare_cached(sql::INVENTORY_GONE).await?;
                    for row in tx.query(&present, &[&s.directory, &s.key]).await? {
                        let sha: String = row.try_get(0)?;
                        if !s.certificates.iter().any(|f| f.sha256 == sha) {
                            tx.execute(&gone, &[&s.directory, &s.key, &sha]).await?;
                        }
                    }
                }
            }
            // Last: the counter's row lock is held only for the commit.
            let bump = tx.prepare_cached(sql::INVENTORY_BUMP).await?;
            tx.execute(&bump, &[]).await?;
        })
    }

    async fn inventory_touch(
        &self,
        directory: &str,
        seen: &[Seen<'_>],
        time: i64,
    ) -> Result<Vec<bool>, StoreError> {
        let owned: Vec<common::OwnedSeen> = seen.iter().map(common::OwnedSeen::from).collect();
        write_tx!(self, |tx| {
            let present = tx.prepare_cached(sql::INVENTORY_PRESENT_ALL).await?;
            let mut rows: Vec<common::PresentRow> = Vec::new();
            for r in tx.query(&present, &[&directory]).await? {
                rows.push((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?));
            }
            let unchanged = common::unchanged(&rows, &owned);
            let keys = common::unchanged_keys(&owned, &unchanged);
            let touched = if common::covers_all(&rows, &keys) {
                let mark = tx.prepare_cached(sql::INVENTORY_SEEN_PUT).await?;
                tx.execute(&mark, &[&directory, &time]).await?
            } else if !keys.is_empty() {
                let touch = tx.prepare_cached(sql::INVENTORY_TOUCH_ANY).await?;
                tx.execute(&touch, &[&time, &directory, &keys]).await?
            } else {
                0
            };
            if touched > 0 {
                let bump = tx.prepare_cached(sql::INVENTORY_BUMP).await?;
                tx.execute(&bump, &[]).await?;
            }
            unchanged
        })
    }

    async fn inventory(&self, query: &InventoryQuery) -> Result<Vec<InventoryCert>, StoreError> {
        let (text, params) = common::inventory_sql(query);
        self.inventory_rows(&text, &params).await
    }

    async fn inventory_first_addresses(
        &self,
        count: usize,
    ) -> Result<Vec<InventoryCert>, StoreError> {
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        self.inventory_rows(&common::inventory_first_sql(), &[Param::Int(count)])
            .await
    }

    async fn inventory_version(&self) -> Result<i64, StoreError> {
        let r: Result<i64, Fail> = async {
            let c = self.client().await?;
            let stmt = c.prepare_cached(sql::INVENTORY_VERSION).await?;
            Ok(c.query_one(&stmt, &[]).await?.try_get(0)?)
        }
        .await;
        r.map_err(|f| self.fail(f))
    }

    async fn signature_checks(&self) -> Result<Vec<String>, StoreError> {
        let r: Result<Vec<String>, Fail> = async {
            let c = self.client().await?;
            let stmt = c.prepare_cached(sql::SIGNATURE_CHECKS).await?;
            c.query(&stmt, &[])
                .await?
                .iter()
                .map(|r| Ok(r.try_get(0)?))
                .collect()
        }
        .await;
        r.map_err(|f| self.fail(f))
    }

    async fn signature_checks_record(
        &self,
        digests: &[String],
        at: i64,
        forget_before: i64,
    ) -> Result<(), StoreError> {
        write_tx!(self, |tx| {
            let put = tx.prepare_cached(sql::SIGNATURE_CHECK_PUT).await?;
            for d in digests {
                tx.execute(&put, &[d, &at]).await?;
            }
            let forget = tx.prepare_cached(sql::SIGNATURE_CHECK_FORGET).await?;
            tx.execute(&forget, &[&forget_before]).await?;
        })
    }

    async fn audit_append(&self, entry: &AuditEntry) -> Result<AuditRecord, StoreError> {
        write_tx!(self, |tx| {
            let head = tx
                .prepare_cached(&format!("{} FOR UPDATE", sql::AUDIT_HEAD))
                .await?;
            let row = tx.query_one(&head, &[]).await?;
            let seq = row.try_get::<_, i64>(0)? + 1;
            let hash = audit_hash(row.try_get(1)?, seq, entry);
            let ins = tx.prepare_cached(sql::AUDIT_INSERT).await?;
            tx.execute(
                &ins,
                &[
                    &seq,
                    &entry.time,
                    &entry.actor,
                    &entry.frontend,
                    &entry.operation,
                    &entry.directory,
                    &entry.address,
                    &entry.address.to_ascii_lowercase(),
                    &join_list(&entry.before),
                    &join_list(&entry.after),
                    &entry.result,
                    &hash,
                ],
            )
            .await?;
            let set = tx.prepare_cached(sql::AUDIT_SET_HEAD).await?;
            tx.execute(&set, &[&seq, &hash]).await?;
            AuditRecord {
                seq,
                entry: entry.clone(),
                hash,
            }
        })
    }

    async fn audit_log(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let (text, params) = sql::audit_filtered(filter);
        let r: Result<_, Fail> = async {
            let c = self.client().await?;
            let stmt = c.prepare_cached(&text).await?;
            c.query(&stmt, &binds(&params))
                .await?
                .iter()
                .map(audit_row)
                .collect()
        }
        .await;
        r.map_err(|f| self.fail(f))
    }

    async fn audit_verify(&self) -> Result<AuditVerdict, StoreError> {
        let r: Result<_, Fail> = async {
            let mut c = self.client().await?;
            let tx = c
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let head = tx.query_one(sql::AUDIT_HEAD, &[]).await?;
            let rows = tx
                .query(&format!("{} ORDER BY seq", sql::AUDIT_COLUMNS), &[])
                .await?;
            tx.commit().await?;
            let rows = rows.iter().map(audit_row).collect::<Result<Vec<_>, _>>()?;
            Ok(common::verify_chain(
                rows,
                head.try_get(0)?,
                head.try_get(1)?,
            ))
        }
        .await;
        r.map_err(|f| self.fail(f))
    }

    async fn job_start(
        &self,
        kind: &str,
        actor: &str,
        frontend: &str,
        started: i64,
    ) -> Result<i64, StoreError> {
        write_tx!(self, |tx| {
            let next = tx.prepare_cached(sql::JOB_NEXT_ID).await?;
            let id: i64 = tx.query_one(&next, &[]).await?.try_get(0)?;
            let ins = tx.prepare_cached(sql::JOB_INSERT).await?;
            tx.execute(&ins, &[&id, &kind, &actor, &frontend, &started])
                .await?;
            id
        })
    }

    async fn job_finish(
        &self,
        id: i64,
        finished: i64,
        outcome: &str,
        items: &str,
    ) -> Result<(), StoreError> {
        write_tx!(self, |tx| {
            let stmt = tx.prepare_cached(sql::JOB_FINISH).await?;
            if tx
                .execute(&stmt, &[&id, &finished, &outcome, &items])
                .await?
                == 0
            {
                return Err(Fail::Store(StoreError::NotFound(format!(
                    "job {id}: no such job"
                ))));
            }
        })
    }

    async fn jobs(&self, limit: u32) -> Result<Vec<JobRecord>, StoreError> {
        let r: Result<_, Fail> = async {
            let c = self.client().await?;
            let stmt = c.prepare_cached(sql::JOBS).await?;
            c.query(&stmt, &[&i64::from(limit)])
                .await?
                .iter()
                .map(|r| {
                    Ok(JobRecord {
                        id: r.try_get(0)?,
                        kind: r.try_get(1)?,
                        actor: r.try_get(2)?,
                        frontend: r.try_get(3)?,
                        started: r.try_get(4)?,
                        finished: r.try_get(5)?,
                        outcome: r.try_get(6)?,
                        items: r.try_get(7)?,
                    })
                })
                .collect()
        }
        .await;
        r.map_err(|f| self.fail(f))
    }

    async fn directory_state(
        &self,
        directory: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        let r: Result<_, Fail> = async {
            let c = self.client().await?;
            let stmt = c.prepare_cached(sql::DIRECTORY_STATE).await?;
            match c.query_opt(&stmt, &[&directory, &key]).await? {
                Some(row) => Ok(Some(row.try_get(0)?)),
                None => Ok(None),
            }
        }
        .await;
        r.map_err(|f| self.fail(f))
    }

    async fn set_directory_state(
        &self,
        directory: &str,
        key: &str,
        value: &str,
        updated: i64,
    ) -> Result<(), StoreError> {
        write_tx!(self, |tx| {
            let stmt = tx.prepare_cached(sql::SET_DIRECTORY_STATE).await?;
            tx.execute(&stmt, &[&directory, &key, &value, &updated])
                .await?;
        })
    }

    async fn managed(&self, directory: Option<&str>) -> Result<Vec<ManagedCert>, StoreError> {
        let r: Result<_, Fail> = async {
            let c = self.client().await?;
            let rows = match directory {
                Some(d) => {
                    let stmt = c
                        .prepare_cached(&format!(
                            "{} WHERE directory = $1{}",
                            sql::MANAGED_COLUMNS,
                            sql::MANAGED_ORDER
                        ))
                        .await?;
                    c.query(&stmt, &[&d]).await?
                }
                None => {
                    let stmt = c
                        .prepare_cached(&format!("{}{}", sql::MANAGED_COLUMNS, sql::MANAGED_ORDER))
                        .await?;
                    c.query(&stmt, &[]).await?
                }
            };
            rows.iter().map(managed_row).collect()
        }
        .await;
        r.map_err(|f| self.fail(f))
    }

    async fn managed_for(
        &self,
        directory: &str,
        address: &str,
    ) -> Result<Vec<ManagedCert>, StoreError> {
        let key = common::managed_address(directory, address, &self.name)?;
        let r: Result<_, Fail> = async {
            let c = self.client().await?;
            let stmt = c.prepare_cached(sql::MANAGED_FOR).await?;
            c.query(&stmt, &[&directory, &key])
                .await?
                .iter()
                .map(managed_row)
                .collect()
        }
        .await;
        r.map_err(|f| self.fail(f))
    }

    async fn managed_put(&self, rows: &[ManagedCert]) -> Result<(), StoreError> {
        let mut rows = rows
            .iter()
            .map(|m| common::managed_normalised(m, &self.name))
            .collect::<Result<Vec<_>, _>>()?;
        // Rows locked in one order by every writer: no deadlock between two puts. A key given
        // twice keeps its last row (the stable sort keeps the given order among equals).
        rows.sort_by(|a, b| {
            (&a.directory, &a.address, &a.thumbprint).cmp(&(
                &b.directory,
                &b.address,
                &b.thumbprint,
            ))
        });
        write_tx!(self, |tx| {
            let up = tx.prepare_cached(sql::MANAGED_UPSERT).await?;
            for m in &rows {
                tx.execute(
                    &up,
                    &[
                        &m.directory,
                        &m.address,
                        &m.thumbprint,
                        &m.certificate.as_bytes(),
                        &m.published,
                        &i64::from(m.confirmed),
                        &m.superseded,
                    ],
                )
                .await?;
            }
        })
    }

    async fn managed_forget(
        &self,
        directory: &str,
        address: &str,
        thumbprint: &str,
    ) -> Result<(), StoreError> {
        let (d, a, t) = common::managed_key(directory, address, thumbprint, &self.name)?;
        write_tx!(self, |tx| {
            let stmt = tx.prepare_cached(sql::MANAGED_FORGET).await?;
            tx.execute(&stmt, &[&d, &a, &t]).await?;
        })
    }

    async fn lock_acquire(
        &self,
        lock: &LockInfo,
        replace: Option<&str>,
    ) -> Result<Option<LockInfo>, StoreError> {
        common::non_empty(
            &self.name,
            &[("lock name", &lock.name), ("lock id", &lock.id)],
        )?;
        let l = lock;
        let pid = i64::from(l.pid);
        // READ COMMITTED: the insert waits for a concurrent inserter of the same name and then
        // does nothing; the take-over waits for a concurrent one and re-checks the holder's id
        // on the row it committed. Each statement sees the latest commit, so when the holder
        // released between the insert and the read, the insert is simply tried again.
        write_tx!(self, |tx| {
            let insert = tx.prepare_cached(sql::LOCK_INSERT).await?;
            let take = tx.prepare_cached(sql::LOCK_REPLACE).await?;
            let get = tx.prepare_cached(sql::LOCK_GET).await?;
            let fields: [&(dyn ToSql + Sync); 7] = [
                &l.name,
                &l.id,
                &l.host,
                &pid,
                &l.actor,
                &l.started,
                &l.heartbeat,
            ];
            let mut outcome = None;
            for _ in 0..3 {
                if tx.execute(&insert, &fields).await? == 1 {
                    outcome = Some(None);
                    break;
                }
                if let Some(old) = replace {
                    let mut with_old: Vec<&(dyn ToSql + Sync)> = fields.to_vec();
                    with_old.push(&old);
                    if tx.execute(&take, &with_old).await? == 1 {
                        outcome = Some(None);
                        break;
                    }
                }
                if let Some(row) = tx.query_opt(&get, &[&l.name]).await? {
                    let holder = lock_row(&row, &self.name)?;
                    outcome = Some(if holder.id == l.id {
                        None
                    } else {
                        Some(holder)
                    });
                    break;
                }
            }
            match outcome {
                Some(o) => o,
                None => {
                    return Err(Fail::Store(StoreError::Conflict(format!(
                        "{}: lock {:?} keeps changing hands; retry",
                        self.name, l.name
                    ))));
                }
            }
        })
    }

    async fn lock_get(&self, name: &str) -> Result<Option<LockInfo>, StoreError> {
        let r: Result<_, Fail> = async {
            let c = self.client().await?;
            let stmt = c.prepare_cached(sql::LOCK_GET).await?;
            match c.query_opt(&stmt, &[&name]).await? {
                Some(row) => Ok(Some(lock_row(&row, &self.name)?)),
                None => Ok(None),
            }
        }
        .await;
        r.map_err(|f| self.fail(f))
    }

    async fn lock_heartbeat(&self, name: &str, id: &str, at: i64) -> Result<bool, StoreError> {
        write_tx!(self, |tx| {
            let stmt = tx.prepare_cached(sql::LOCK_HEARTBEAT).await?;
            tx.execute(&stmt, &[&name, &id, &at]).await? > 0
        })
    }

    async fn lock_release(&self, name: &str, id: &str) -> Result<bool, StoreError> {
        write_tx!(self, |tx| {
            let stmt = tx.prepare_cached(sql::LOCK_RELEASE).await?;
            tx.execute(&stmt, &[&name, &id]).await? > 0
        })
    }

    async fn journal_append(&self, entry: &JournalEntry) -> Result<(), StoreError> {
        common::non_empty(
            &self.name,
            &[
                ("journal run", &entry.run),
                ("journal step", &entry.step),
                ("journal phase", &entry.phase),
            ],
        )?;
        write_tx!(self, |tx| journal_append_in(&tx, entry).await?)
    }

    async fn journal(&self, run: &str) -> Result<Vec<JournalEntry>, StoreError> {
        let r: Result<_, Fail> = async {
            let c = self.client().await?;
            let stmt = c.prepare_cached(sql::JOURNAL_RUN).await?;
            c.query(&stmt, &[&run])
                .await?
                .iter()
                .map(journal_row)
                .collect()
        }
        .await;
        r.map_err(|f| self.fail(f))
    }

    async fn journal_interrupted(&self) -> Result<Vec<JournalEntry>, StoreError> {
        let r: Result<_, Fail> = async {
            let c = self.client().await?;
            let stmt = c.prepare_cached(sql::JOURNAL_INTERRUPTED).await?;
            c.query(&stmt, &[]).await?.iter().map(journal_row).collect()
        }
        .await;
        r.map_err(|f| self.fail(f))
    }

    async fn journal_resolve(&self, step: &str, at: i64) -> Result<(), StoreError> {
        write_tx!(self, |tx| {
            let open = tx
                .prepare_cached(&format!("{} FOR UPDATE", sql::JOURNAL_OPEN_RUNS))
                .await?;
            let runs = tx.query(&open, &[&step]).await?;
            for row in runs {
                journal_append_in(
                    &tx,
                    &JournalEntry {
                        run: row.try_get(0)?,
                        step: step.to_string(),
                        phase: common::PHASE_RESOLVED.into(),
                        detail: String::new(),
                        at,
                    },
                )
                .await?;
            }
        })
    }

    async fn remind(&self, key: &str, since: i64, at: i64) -> Result<bool, StoreError> {
        common::non_empty(&self.name, &[("reminder key", key)])?;
        write_tx!(self, |tx| {
            let stmt = tx.prepare_cached(sql::REMIND).await?;
            tx.query_opt(&stmt, &[&key, &since, &at]).await?.is_some()
        })
    }

    async fn user_put(&self, user: &WebUser) -> Result<(), StoreError> {
        common::non_empty(
            &self.name,
            &[("user name", &user.name), ("user role", &user.role)],
        )?;
        let failures = i64::from(user.failures);
        write_tx!(self, |tx| {
            let stmt = tx.prepare_cached(sql::USER_PUT).await?;
            tx.execute(
                &stmt,
                &[
                    &user.name,
                    &user.role,
                    &user.password_hash,
                    &user.created,
                    &failures,
                    &user.locked_until,
                ],
            )
            .await?;
        })
    }

    async fn user_get(&self, name: &str) -> Result<Option<WebUser>, StoreError> {
        let r: Result<_, Fail> = async {
            let c = self.client().await?;
            let stmt = c.prepare_cached(sql::USER_GET).await?;
            match c.query_opt(&stmt, &[&name]).await? {
                Some(row) => Ok(Some(user_row(&row)?)),
                None => Ok(None),
            }
        }
        .await;
        r.map_err(|f| self.fail(f))
    }

    async fn users(&self) -> Result<Vec<WebUser>, StoreError> {
        let r: Result<_, Fail> = async {
            let c = self.client().await?;
            let stmt = c.prepare_cached(sql::USERS).await?;
            c.query(&stmt, &[]).await?.iter().map(user_row).collect()
        }
        .await;
        r.map_err(|f| self.fail(f))
    }

    async fn user_remove(&self, name: &str) -> Result<bool, StoreError> {
        write_tx!(self, |tx| {
            let sessions = tx.prepare_cached(sql::USER_SESSIONS_REMOVE).await?;
            tx.execute(&sessions, &[&name]).await?;
            let stmt = tx.prepare_cached(sql::USER_REMOVE).await?;
            tx.execute(&stmt, &[&name]).await? > 0
        })
    }

    async fn session_put(&self, session: &WebSession) -> Result<(), StoreError> {
        common::non_empty(
            &self.name,
            &[("session id", &session.id), ("session user", &session.user)],
        )?;
        let s = session;
        write_tx!(self, |tx| {
            let stmt = tx.prepare_cached(sql::SESSION_PUT).await?;
            let n = tx
                .execute(&stmt, &[&s.id, &s.user, &s.csrf, &s.created, &s.last_seen])
                .await?;
            if n == 0 {
                return Err(Fail::Store(StoreError::NotFound(format!(
                    "{}: no user {:?}",
                    self.name, s.user
                ))));
            }
        })
    }

    async fn session_get(&self, id: &str) -> Result<Option<WebSession>, StoreError> {
        let r: Result<_, Fail> = async {
            let c = self.client().await?;
            let stmt = c.prepare_cached(sql::SESSION_GET).await?;
            match c.query_opt(&stmt, &[&id]).await? {
                Some(row) => Ok(Some(WebSession {
                    id: row.try_get(0)?,
                    user: row.try_get(1)?,
                    csrf: row.try_get(2)?,
                    created: row.try_get(3)?,
                    last_seen: row.try_get(4)?,
                })),
                None => Ok(None),
            }
        }
        .await;
        r.map_err(|f| self.fail(f))
    }

    async fn session_touch(&self, id: &str, at: i64) -> Result<bool, StoreError> {
        write_tx!(self, |tx| {
            let stmt = tx.prepare_cached(sql::SESSION_TOUCH).await?;
            tx.execute(&stmt, &[&id, &at]).await? > 0
        })
    }

    async fn session_remove(&self, id: &str) -> Result<bool, StoreError> {
        write_tx!(self, |tx| {
            let stmt = tx.prepare_cached(sql::SESSION_REMOVE).await?;
            tx.execute(&stmt, &[&id]).await? > 0
        })
    }
}

fn user_row(r: &tokio_postgres::Row) -> Result<WebUser, Fail> {
    Ok(WebUser {
        name: r.try_get(0)?,
        role: r.try_get(1)?,
        password_hash: r.try_get(2)?,
        created: r.try_get(3)?,
        // Written from a u32: a larger value is stored data we did not write; saturate.
        failures: u32::try_from(r.try_get::<_, i64>(4)?.max(0)).unwrap_or(u32::MAX),
        locked_until: r.try_get(5)?,
    })
}

fn managed_row(r: &tokio_postgres::Row) -> Result<ManagedCert, Fail> {
    Ok(ManagedCert {
        directory: r.try_get(0)?,
        address: r.try_get(1)?,
        thumbprint: r.try_get(2)?,
        certificate: CertDer::new(r.try_get::<_, Vec<u8>>(3)?),
        published: r.try_get(4)?,
        confirmed: r.try_get::<_, i64>(5)? != 0,
        superseded: r.try_get(6)?,
    })
}

fn lock_row(r: &tokio_postgres::Row, name: &str) -> Result<LockInfo, Fail> {
    Ok(LockInfo {
        name: r.try_get(0)?,
        id: r.try_get(1)?,
        host: r.try_get(2)?,
        pid: common::pid_from(r.try_get(3)?, name)?,
        actor: r.try_get(4)?,
        started: r.try_get(5)?,
        heartbeat: r.try_get(6)?,
    })
}

fn journal_row(r: &tokio_postgres::Row) -> Result<JournalEntry, Fail> {
    Ok(JournalEntry {
        run: r.try_get(0)?,
        step: r.try_get(1)?,
        phase: r.try_get(2)?,
        detail: r.try_get(3)?,
        at: r.try_get(4)?,
    })
}

/// Appends a journal row inside a write transaction and keeps the open steps in step. The
/// counter row's lock orders concurrent appends.
async fn journal_append_in(tx: &Transaction<'_>, e: &JournalEntry) -> Result<(), Fail> {
    let next = tx.prepare_cached(sql::JOURNAL_NEXT_SEQ).await?;
    let seq: i64 = tx.query_one(&next, &[]).await?.try_get(0)?;
    let ins = tx.prepare_cached(sql::JOURNAL_INSERT).await?;
    tx.execute(&ins, &[&seq, &e.run, &e.step, &e.phase, &e.detail, &e.at])
        .await?;
    if e.phase == common::PHASE_START {
        let open = tx.prepare_cached(sql::JOURNAL_OPEN).await?;
        tx.execute(&open, &[&e.run, &e.step, &seq]).await?;
    } else {
        let close = tx.prepare_cached(sql::JOURNAL_CLOSE).await?;
        tx.execute(&close, &[&e.run, &e.step]).await?;
    }
    Ok(())
}
