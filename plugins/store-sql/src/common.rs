//! What both backends share: the merge rule, the audit hash chain and its verification,
//! the inventory query, and the text forms of stored values. No I/O here.

use sha2::{Digest, Sha256};
use smimekit_core::store::{
    AuditEntry, AuditProblem, AuditRecord, AuditVerdict, CertFacts, InventoryCert, InventoryQuery,
    ManagedCert, Publish, Seen, Sighting, StoreError,
};
use smimekit_core::{CertDer, Mailbox, PublishMode, Recipient, RecipientKind};

/// The hash of "no previous row".
pub(crate) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

pub(crate) fn kind_text(k: RecipientKind) -> &'static str {
    match k {
        RecipientKind::Mailbox => "mailbox",
        RecipientKind::Contact => "contact",
    }
}

pub(crate) fn kind_from(s: &str, store: &str) -> Result<RecipientKind, StoreError> {
    match s {
        "mailbox" => Ok(RecipientKind::Mailbox),
        "contact" => Ok(RecipientKind::Contact),
        other => Err(StoreError::Corrupt(format!(
            "{store}: unknown recipient kind {other:?} (a newer smimekit wrote it?)"
        ))),
    }
}

/// What a publish does to the rows of one recipient's certificates.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct PublishPlan {
    /// Positions to delete.
    pub delete: Vec<i64>,
    /// Position for the new certificate, when it is not there yet.
    pub append_at: Option<i64>,
}

/// The one merge rule (that of `Directory::publish_removing` and `MemoryDirectory`): clear
/// when replacing, drop the listed values, add the certificate once; `certificate` itself is
/// never dropped.
pub(crate) fn plan_publish(existing: &[(i64, CertDer)], p: &Publish<'_>) -> PublishPlan {
    let mut plan = PublishPlan::default();
    for (pos, der) in existing {
        let keep =
            der == p.certificate || (p.mode == PublishMode::Merge && !p.remove.contains(der));
        if !keep {
            plan.delete.push(*pos);
        }
    }
    if !existing.iter().any(|(_, der)| der == p.certificate) {
        plan.append_at = Some(next_position(existing));
    }
    plan
}

pub(crate) fn next_position(existing: &[(i64, CertDer)]) -> i64 {
    existing.iter().map(|(p, _)| *p).max().map_or(0, |m| m + 1)
}

/// `hash` of an audit row: SHA-256 over the previous row's hash (raw bytes) and the row's
/// canonical form, lowercase hex.
pub(crate) fn audit_hash(prev_hex: &str, seq: i64, entry: &AuditEntry) -> String {
    let mut h = Sha256::new();
    // A stored hash that is not hex hashes as its text: the chain breaks there, as it should.
    match hex::decode(prev_hex) {
        Ok(b) => h.update(&b),
        Err(_) => h.update(prev_hex.as_bytes()),
    }
    h.update(entry.canonical(seq));
    hex::encode(h.finalize())
}

pub(crate) fn join_list(items: &[String]) -> String {
    items.join(",")
}

pub(crate) fn split_list(s: &str) -> Vec<String> {
    if s.is_empty() {
        Vec::new()
    } else {
        s.split(',').map(str::to_string).collect()
    }
}

/// Walks the log (oldest first) and the head row; the first row that was changed or removed.
pub(crate) fn verify_chain(
    rows: impl IntoIterator<Item = AuditRecord>,
    head_seq: i64,
    head_hash: &str,
) -> AuditVerdict {
    let mut prev = GENESIS.to_string();
    let mut expected = 1i64;
    let mut ok = 0u64;
    for row in rows {
        if row.seq != expected {
            return AuditVerdict::Broken {
                seq: expected,
                problem: AuditProblem::Removed,
                rows_ok: ok,
            };
        }
        if audit_hash(&prev, row.seq, &row.entry) != row.hash {
            return AuditVerdict::Broken {
                seq: row.seq,
                problem: AuditProblem::Changed,
                rows_ok: ok,
            };
        }
        prev = row.hash;
        expected += 1;
        ok += 1;
    }
    let last = expected - 1;
    if head_seq > last {
        return AuditVerdict::Broken {
            seq: expected,
            problem: AuditProblem::Removed,
            rows_ok: ok,
        };
    }
    if head_seq < last || head_hash != prev {
        // Rows appended behind the log's back, or the last row rewritten with a new hash.
        return AuditVerdict::Broken {
            seq: last,
            problem: AuditProblem::Changed,
            rows_ok: ok.saturating_sub(1),
        };
    }
    AuditVerdict::Intact { rows: ok }
}

/// One row of the recipient queries: address, kind, a certificate (NULL for none).
pub(crate) type RecipientRow = (String, String, Option<Vec<u8>>);

/// Recipients from the rows of [`sql::RECIPIENTS`](crate::sql::RECIPIENTS) (address, kind,
/// certificate or NULL), grouped: the rows come ordered by recipient.
pub(crate) fn group_recipients(
    rows: impl IntoIterator<Item = RecipientRow>,
    store: &str,
) -> Result<Vec<Recipient>, StoreError> {
    let mut out: Vec<Recipient> = Vec::new();
    for (address, kind, der) in rows {
        let same = out
            .last()
            .is_some_and(|r: &Recipient| r.address.as_str() == address);
        if !same {
            out.push(Recipient {
                address: Mailbox::parse(&address)
                    .map_err(|e| StoreError::Corrupt(format!("{store}: stored recipient: {e}")))?,
                kind: kind_from(&kind, store)?,
                certificates: Vec::new(),
            });
        }
        if let (Some(der), Some(r)) = (der, out.last_mut()) {
            r.certificates.push(CertDer::new(der));
        }
    }
    Ok(out)
}

/// Drops repeated certificates, keeping the first of each (the order is the stored order).
pub(crate) fn dedup(certs: &[CertDer]) -> Vec<CertDer> {
    let mut out: Vec<CertDer> = Vec::with_capacity(certs.len());
    for c in certs {
        if !out.contains(c) {
            out.push(c.clone());
        }
    }
    out
}

/// The stored key of a managed certificate: the directory as given (not empty), the address
/// in [`Mailbox::key`] form, the thumbprint as 40 upper-case hex digits.
pub(crate) fn managed_key(
    directory: &str,
    address: &str,
    thumbprint: &str,
    store: &str,
) -> Result<(String, String, String), StoreError> {
    let at = || format!("{store}: managed certificate {directory:?} {address:?} {thumbprint:?}");
    if directory.is_empty() {
        return Err(StoreError::Invalid(format!("{}: directory: empty", at())));
    }
    let mailbox = Mailbox::parse(address)
        .map_err(|e| StoreError::Invalid(format!("{}: address: {e}", at())))?;
    if thumbprint.len() != 40 || !thumbprint.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(StoreError::Invalid(format!(
            "{}: thumbprint: not a SHA-1 (40 hex digits)",
            at()
        )));
    }
    Ok((
        directory.to_string(),
        mailbox.key(),
        thumbprint.to_ascii_uppercase(),
    ))
}

/// The stored form of a managed certificate's address ([`Mailbox::key`]).
pub(crate) fn managed_address(
    directory: &str,
    address: &str,
    store: &str,
) -> Result<String, StoreError> {
    Mailbox::parse(address).map(|m| m.key()).map_err(|e| {
        StoreError::Invalid(format!(
            "{store}: managed certificates of {directory:?} {address:?}: address: {e}"
        ))
    })
}

/// A managed certificate with its key normalised (see [`managed_key`]).
pub(crate) fn managed_normalised(m: &ManagedCert, store: &str) -> Result<ManagedCert, StoreError> {
    let (directory, address, thumbprint) =
        managed_key(&m.directory, &m.address, &m.thumbprint, store)?;
    Ok(ManagedCert {
        directory,
        address,
        thumbprint,
        ..m.clone()
    })
}

/// Refuses a lock, journal or reminder call whose `what` is empty.
pub(crate) fn non_empty(store: &str, fields: &[(&str, &str)]) -> Result<(), StoreError> {
    match fields.iter().find(|(_, v)| v.is_empty()) {
        Some((name, _)) => Err(StoreError::Invalid(format!("{store}: {name}: empty"))),
        None => Ok(()),
    }
}

/// The phase that leaves a journal step open (interrupted until closed).
pub(crate) const PHASE_START: &str = "start";

/// What [`Store::journal_resolve`](smimekit_core::store::Store::journal_resolve) appends.
pub(crate) const PHASE_RESOLVED: &str = "resolved";

/// A stored process id back as `u32`.
pub(crate) fn pid_from(pid: i64, store: &str) -> Result<u32, StoreError> {
    u32::try_from(pid).map_err(|_| {
        StoreError::Corrupt(format!(
            "{store}: deploy_lock: pid {pid} is not a process id"
        ))
    })
}

/// A [`Sighting`] with owned fields, to move into a blocking task.
#[derive(Debug, Clone)]
pub(crate) struct OwnedSighting {
    pub directory: String,
    pub key: String,
    pub address: String,
    pub kind: Option<&'static str>,
    pub certificates: Vec<CertFacts>,
    pub time: i64,
    pub published: bool,
    pub complete: bool,
}

impl From<&Sighting<'_>> for OwnedSighting {
    fn from(s: &Sighting<'_>) -> Self {
        Self {
            directory: s.directory.to_string(),
            key: s.address.key(),
            address: s.address.as_str().to_string(),
            kind: s.kind.map(kind_text),
            certificates: s.certificates.to_vec(),
            time: s.time,
            published: s.published,
            complete: s.complete,
        }
    }
}

/// A [`Seen`] as the backends compare it.
pub(crate) struct OwnedSeen {
    pub key: String,
    pub address: String,
    pub kind: &'static str,
    pub sha256: std::collections::BTreeSet<String>,
}

impl From<&Seen<'_>> for OwnedSeen {
    fn from(s: &Seen<'_>) -> Self {
        Self {
            key: s.address.key(),
            address: s.address.as_str().to_string(),
            kind: kind_text(s.kind),
            sha256: s.sha256.iter().cloned().collect(),
        }
    }
}

/// A present inventory row ([`crate::sql::INVENTORY_PRESENT_ALL`]): address key, SHA-256,
/// address as written, kind.
pub(crate) type PresentRow = (String, String, String, Option<String>);

/// Which of `seen` a directory's present `rows` hold exactly: the same set of certificates,
/// each row under the same address and kind (what recording the sighting in full would leave
/// unchanged but for `last_seen`).
pub(crate) fn unchanged(rows: &[PresentRow], seen: &[OwnedSeen]) -> Vec<bool> {
    /// A present row by its address key: its SHA-256, address and kind.
    type Held<'r> = (&'r str, &'r str, Option<&'r str>);
    let mut by_key: std::collections::HashMap<&str, Vec<Held<'_>>> =
        std::collections::HashMap::new();
    for (key, sha, address, kind) in rows {
        by_key
            .entry(key)
            .or_default()
            .push((sha, address, kind.as_deref()));
    }
    seen.iter()
        .map(|s| {
            by_key.get(s.key.as_str()).is_some_and(|rows| {
                rows.len() == s.sha256.len()
                    && rows.iter().all(|(sha, address, kind)| {
                        s.sha256.iter().any(|x| x == sha)
                            && *address == s.address
                            && *kind == Some(s.kind)
                    })
            })
        })
        .collect()
}

/// Whether the unchanged address `keys` hold every present row of the directory (`rows`):
/// then a touch marks the directory seen once ([`crate::sql::INVENTORY_SEEN_PUT`]) instead of
/// writing each row.
pub(crate) fn covers_all(rows: &[PresentRow], keys: &[&str]) -> bool {
    let keys: std::collections::HashSet<&str> = keys.iter().copied().collect();
    !rows.is_empty() && rows.iter().all(|(key, ..)| keys.contains(key.as_str()))
}

/// The address keys of the `seen` that [`unchanged`] found unchanged: the rows to touch.
pub(crate) fn unchanged_keys<'a>(seen: &'a [OwnedSeen], unchanged: &[bool]) -> Vec<&'a str> {
    seen.iter()
        .zip(unchanged)
        .filter(|(_, u)| **u)
        .map(|(s, _)| s.key.as_str())
        .collect()
}

/// An inventory row as both backends read it.
#[derive(Debug)]
pub(crate) struct InventoryRow {
    pub directory: String,
    pub address: String,
    pub recipient_kind: Option<String>,
    pub sha1: String,
    pub sha256: String,
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub not_before: i64,
    pub not_after: i64,
    pub key_type: String,
    pub source_attribute: Option<String>,
    pub first_seen: i64,
    pub last_seen: i64,
    pub published: i64,
    pub present: i64,
}

impl InventoryRow {
    pub(crate) fn into_cert(self, store: &str) -> Result<InventoryCert, StoreError> {
        Ok(InventoryCert {
            directory: self.directory,
            address: self.address,
            recipient_kind: self
                .recipient_kind
                .map(|k| kind_from(&k, store))
                .transpose()?,
            facts: CertFacts {
                sha1: self.sha1,
                sha256: self.sha256,
                subject: self.subject,
                issuer: self.issuer,
                serial: self.serial,
                not_before: self.not_before,
                not_after: self.not_after,
                key_type: self.key_type,
                source_attribute: self.source_attribute,
            },
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            published_by_smimekit: self.published != 0,
            present: self.present != 0,
        })
    }
}

/// A bound value of a query built at run time.
#[derive(Debug, Clone)]
pub(crate) enum Param {
    Text(String),
    Int(i64),
}

/// The inventory query in PostgreSQL's placeholder style (`$1`…); SQLite takes the same text
/// through [`sqlite_placeholders`]. Only the filters given appear, so both planners use the
/// `not_after` indexes.
pub(crate) fn inventory_sql(q: &InventoryQuery) -> (String, Vec<Param>) {
    let mut sql = format!("SELECT {INVENTORY_COLUMNS} FROM inventory WHERE 1 = 1");
    let mut params = Vec::new();
    let mut push = |sql: &mut String, clause: &str, p: Param| {
        params.push(p);
        sql.push_str(&clause.replace("{}", &format!("${}", params.len())));
    };
    if let Some(d) = &q.directory {
        push(&mut sql, " AND directory = {}", Param::Text(d.clone()));
    }
    if let Some(t) = q.not_after_from {
        push(&mut sql, " AND not_after >= {}", Param::Int(t));
    }
    if let Some(t) = q.not_after_until {
        push(&mut sql, " AND not_after < {}", Param::Int(t));
    }
    if !q.include_gone {
        sql.push_str(" AND present = 1");
    }
    sql.push_str(" ORDER BY not_after, directory, address_key, sha256");
    (sql, params)
}

/// The columns of an inventory row, in [`InventoryRow`]'s order. A present row was last seen
/// at the later of its own `last_seen` and its directory's mark (`inventory_seen`, migration V8).
const INVENTORY_COLUMNS: &str = concat!(
    "directory, address, recipient_kind, sha1, sha256, subject, issuer, serial, not_before, \
     not_after, key_type, source_attribute, first_seen, ",
    crate::sql::seen_at!(),
    ", published, present"
);

/// `Store::inventory_first_addresses`: the present rows of the first `$1` addresses (by
/// address key) that have one, by address key then directory (the `inventory_address` index
/// finds them without reading the rest).
pub(crate) fn inventory_first_sql() -> String {
    format!(
        "SELECT {INVENTORY_COLUMNS} FROM inventory WHERE present = 1 AND address_key IN \
         (SELECT DISTINCT address_key FROM inventory WHERE present = 1 \
         ORDER BY address_key LIMIT $1) ORDER BY address_key, directory, sha256"
    )
}

/// `$1` → `?1`: SQLite's numbered parameters (its `$NAME` form would number by first use).
pub(crate) fn sqlite_placeholders(sql: &str) -> String {
    sql.replace('$', "?")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(b: u8) -> CertDer {
        CertDer::new(vec![0x30, 1, b])
    }

    #[test]
    fn plan_follows_the_merge_rule() {
        let a = Mailbox::parse("a@x").unwrap();
        let existing = vec![(0, cert(1)), (3, cert(2))];
        let plan = |c: &CertDer, mode, remove: &[CertDer]| {
            plan_publish(
                &existing,
                &Publish {
                    address: &a,
                    kind: RecipientKind::Mailbox,
                    certificate: c,
                    mode,
                    remove,
                },
            )
        };
        let expect = |delete: Vec<i64>, append_at| PublishPlan { delete, append_at };
        assert_eq!(
            plan(&cert(3), PublishMode::Merge, &[]),
            expect(vec![], Some(4))
        );
        // The certificate itself is never removed, even when listed.
        assert_eq!(
            plan(&cert(2), PublishMode::Merge, &[cert(1), cert(2)]),
            expect(vec![0], None)
        );
        assert_eq!(
            plan(&cert(3), PublishMode::Replace, &[]),
            expect(vec![0, 3], Some(4))
        );
        assert_eq!(
            plan(&cert(1), PublishMode::Replace, &[]),
            expect(vec![3], None)
        );
    }

    fn entry(n: i64) -> AuditEntry {
        AuditEntry {
            time: n,
            actor: "u".into(),
            frontend: "cli".into(),
            operation: "publish".into(),
            directory: "local".into(),
            address: format!("a{n}@x"),
            before: vec![],
            after: vec!["ab".into()],
            result: "ok".into(),
        }
    }

    fn chain(n: i64) -> Vec<AuditRecord> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|seq| {
                let e = entry(seq);
                let hash = audit_hash(&prev, seq, &e);
                prev = hash.clone();
                AuditRecord {
                    seq,
                    entry: e,
                    hash,
                }
            })
            .collect()
    }

    #[test]
    fn verification_finds_the_first_changed_or_removed_row() {
        let rows = chain(5);
        let head = (5, rows[4].hash.clone());
        assert_eq!(
            verify_chain(rows.clone(), head.0, &head.1),
            AuditVerdict::Intact { rows: 5 }
        );
        let mut changed = rows.clone();
        changed[2].entry.result = "failed".into();
        assert_eq!(
            verify_chain(changed, head.0, &head.1),
            AuditVerdict::Broken {
                seq: 3,
                problem: AuditProblem::Changed,
                rows_ok: 2
            }
        );
        let mut removed = rows.clone();
        removed.remove(1);
        assert_eq!(
            verify_chain(removed, head.0, &head.1),
            AuditVerdict::Broken {
                seq: 2,
                problem: AuditProblem::Removed,
                rows_ok: 1
            }
        );
        let mut tail = rows.clone();
        tail.pop();
        assert_eq!(
            verify_chain(tail, head.0, &head.1),
            AuditVerdict::Broken {
                seq: 5,
                problem: AuditProblem::Removed,
                rows_ok: 4
            }
        );
        assert_eq!(
            verify_chain(Vec::new(), 0, GENESIS),
            AuditVerdict::Intact { rows: 0 }
        );
    }

    #[test]
    fn inventory_sql_has_only_the_filters_given() {
        let (sql, params) = inventory_sql(&InventoryQuery {
            directory: Some("corp".into()),
            not_after_from: None,
            not_after_until: Some(10),
            include_gone: false,
        });
        assert!(
            sql.contains("directory = $1") && sql.contains("not_after < $2"),
            "{sql}"
        );
        assert!(!sql.contains("not_after >="), "{sql}");
        assert_eq!(params.len(), 2);
        assert!(sqlite_placeholders(&sql).contains("not_after < ?2"));
    }
}
