//! The statements both backends run, in PostgreSQL's placeholder style (`$1`); SQLite gets
//! them through [`sqlite_placeholders`](crate::common::sqlite_placeholders). PostgreSQL adds
//! `FOR UPDATE` to the locking reads (SQLite's writers hold the whole file's lock).

pub(crate) const RECIPIENT: &str = "SELECT r.address, r.kind, c.der FROM dir_recipient r \
     LEFT JOIN dir_certificate c ON c.directory = r.directory AND c.address_key = r.address_key \
     WHERE r.directory = $1 AND r.address_key = $2 ORDER BY c.position";

pub(crate) const RECIPIENTS: &str = "SELECT r.address, r.kind, c.der FROM dir_recipient r \
     LEFT JOIN dir_certificate c ON c.directory = r.directory AND c.address_key = r.address_key \
     WHERE r.directory = $1 ORDER BY r.address_key, c.position";

pub(crate) const ENSURE_DIRECTORY: &str =
    "INSERT INTO dir_directory (directory) VALUES ($1) ON CONFLICT DO NOTHING";

pub(crate) const LOCK_DIRECTORY: &str =
    "SELECT directory FROM dir_directory WHERE directory = $1 FOR UPDATE";

pub(crate) const ENSURE_RECIPIENT: &str = "INSERT INTO dir_recipient \
     (directory, address_key, address, kind) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";

pub(crate) const RECIPIENT_KIND: &str =
    "SELECT kind FROM dir_recipient WHERE directory = $1 AND address_key = $2";

pub(crate) const CERTIFICATES: &str = "SELECT position, der FROM dir_certificate \
     WHERE directory = $1 AND address_key = $2 ORDER BY position";

pub(crate) const DELETE_CERTIFICATE: &str = "DELETE FROM dir_certificate \
     WHERE directory = $1 AND address_key = $2 AND position = $3";

pub(crate) const INSERT_CERTIFICATE: &str = "INSERT INTO dir_certificate \
     (directory, address_key, position, der) VALUES ($1, $2, $3, $4)";

pub(crate) const TRUST: &str = "SELECT der FROM dir_trust WHERE directory = $1 ORDER BY position";

pub(crate) const DELETE_TRUST: &str = "DELETE FROM dir_trust WHERE directory = $1";

pub(crate) const INSERT_TRUST: &str =
    "INSERT INTO dir_trust (directory, position, der) VALUES ($1, $2, $3)";

pub(crate) const DELETE_RECIPIENTS: &str = "DELETE FROM dir_recipient WHERE directory = $1";

pub(crate) const DELETE_CERTIFICATES: &str = "DELETE FROM dir_certificate WHERE directory = $1";

pub(crate) const IMPORT_SOURCE: &str = "SELECT import_file, import_sha256, import_time \
     FROM dir_directory WHERE directory = $1";

pub(crate) const SET_IMPORT_SOURCE: &str = "UPDATE dir_directory \
     SET import_file = $2, import_sha256 = $3, import_time = $4 WHERE directory = $1";

pub(crate) const INVENTORY_UPSERT: &str = "INSERT INTO inventory (directory, address_key, \
     address, recipient_kind, sha256, sha1, subject, issuer, serial, not_before, not_after, \
     key_type, source_attribute, first_seen, last_seen, published, present) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $15, 1) \
     ON CONFLICT (directory, address_key, sha256) DO UPDATE SET \
     address = excluded.address, \
     recipient_kind = COALESCE(excluded.recipient_kind, inventory.recipient_kind), \
     source_attribute = COALESCE(excluded.source_attribute, inventory.source_attribute), \
     last_seen = CASE WHEN excluded.last_seen > inventory.last_seen \
         THEN excluded.last_seen ELSE inventory.last_seen END, \
     published = CASE WHEN excluded.published = 1 THEN 1 ELSE inventory.published END, \
     present = 1";

pub(crate) const INVENTORY_PRESENT: &str = "SELECT sha256 FROM inventory \
     WHERE directory = $1 AND address_key = $2 AND present = 1";

/// The present rows of one directory, as [`crate::common::unchanged`] compares them.
pub(crate) const INVENTORY_PRESENT_ALL: &str = "SELECT address_key, sha256, address, \
     recipient_kind FROM inventory WHERE directory = $1 AND present = 1";

/// Moves `last_seen` of the present rows of many addresses of one directory (SQLite: a JSON
/// array of address keys; one statement, not one per address).
pub(crate) const INVENTORY_TOUCH_JSON: &str = "UPDATE inventory SET last_seen = $1 \
     WHERE directory = $2 AND present = 1 AND last_seen < $1 \
     AND address_key IN (SELECT value FROM json_each($3))";

/// [`INVENTORY_TOUCH_JSON`] for PostgreSQL (a text array).
pub(crate) const INVENTORY_TOUCH_ANY: &str = "UPDATE inventory SET last_seen = $1 \
     WHERE directory = $2 AND address_key = ANY($3) AND present = 1 AND last_seen < $1";

/// When an inventory row was last seen: the later of its own `last_seen` and, while present,
/// its directory's mark (`inventory_seen`, migration V8).
macro_rules! seen_at {
    () => {
        "CASE WHEN present = 1 AND last_seen < COALESCE((SELECT seen FROM inventory_seen s \
         WHERE s.directory = inventory.directory), 0) \
         THEN (SELECT seen FROM inventory_seen s WHERE s.directory = inventory.directory) \
         ELSE last_seen END"
    };
}
pub(crate) use seen_at;

/// A row no longer present keeps the time it was last seen ([`seen_at`]).
pub(crate) const INVENTORY_GONE: &str = concat!(
    "UPDATE inventory SET present = 0, last_seen = ",
    seen_at!(),
    " WHERE directory = $1 AND address_key = $2 AND sha256 = $3"
);

/// Marks every present row of directory `$1` seen at `$2` (migration V8), when that is later
/// than its mark; no row changed when it is not.
pub(crate) const INVENTORY_SEEN_PUT: &str = "INSERT INTO inventory_seen (directory, seen) \
     VALUES ($1, $2) ON CONFLICT (directory) DO UPDATE SET seen = excluded.seen \
     WHERE inventory_seen.seen < excluded.seen";

/// Bumped by every inventory write, last in its transaction (`Store::inventory_version`).
pub(crate) const INVENTORY_BUMP: &str =
    "UPDATE inventory_version SET version = version + 1 WHERE id = 1";

pub(crate) const INVENTORY_VERSION: &str = "SELECT version FROM inventory_version WHERE id = 1";

pub(crate) const AUDIT_HEAD: &str = "SELECT seq, hash FROM audit_head WHERE id = 1";

pub(crate) const AUDIT_INSERT: &str = "INSERT INTO audit_log (seq, time, actor, frontend, \
     operation, directory, address, address_key, before_thumbprints, after_thumbprints, result, \
     hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";

pub(crate) const AUDIT_SET_HEAD: &str = "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1";

pub(crate) const AUDIT_COLUMNS: &str = "SELECT seq, time, actor, frontend, operation, \
     directory, address, before_thumbprints, after_thumbprints, result, hash FROM audit_log";

pub(crate) const JOB_NEXT_ID: &str =
    "UPDATE counter SET value = value + 1 WHERE name = 'job' RETURNING value";

pub(crate) const JOB_INSERT: &str = "INSERT INTO job (id, kind, actor, frontend, started, \
     items) VALUES ($1, $2, $3, $4, $5, '[]')";

pub(crate) const JOB_FINISH: &str =
    "UPDATE job SET finished = $2, outcome = $3, items = $4 WHERE id = $1";

pub(crate) const JOBS: &str = "SELECT id, kind, actor, frontend, started, finished, outcome, \
     items FROM job ORDER BY id DESC LIMIT $1";

/// The audit rows matching a filter, oldest first (filters as in `inventory_sql`).
pub(crate) fn audit_filtered(
    f: &smimekit_core::store::AuditFilter,
) -> (String, Vec<crate::common::Param>) {
    use crate::common::Param;
    let mut sql = format!("{AUDIT_COLUMNS} WHERE 1 = 1");
    let mut params = Vec::new();
    if let Some(t) = f.since {
        params.push(Param::Int(t));
        sql.push_str(&format!(" AND time >= ${}", params.len()));
    }
    if let Some(a) = &f.address {
        params.push(Param::Text(a.to_ascii_lowercase()));
        sql.push_str(&format!(" AND address_key = ${}", params.len()));
    }
    if let Some(d) = &f.directory {
        params.push(Param::Text(d.clone()));
        sql.push_str(&format!(" AND directory = ${}", params.len()));
    }
    sql.push_str(" ORDER BY seq");
    (sql, params)
}

pub(crate) const DIRECTORY_STATE: &str =
    "SELECT value FROM directory_state WHERE directory = $1 AND key = $2";

pub(crate) const SET_DIRECTORY_STATE: &str = "INSERT INTO directory_state (directory, key, value, updated) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (directory, key) DO UPDATE SET value = excluded.value, updated = excluded.updated";

pub(crate) const MANAGED_COLUMNS: &str = "SELECT directory, address_key, thumbprint, der, \
     published, confirmed, superseded FROM managed_cert";

pub(crate) const MANAGED_ORDER: &str = " ORDER BY directory, address_key, published, thumbprint";

pub(crate) const MANAGED_FOR: &str = "SELECT directory, address_key, thumbprint, der, \
     published, confirmed, superseded FROM managed_cert WHERE directory = $1 AND address_key = $2 \
     ORDER BY published, thumbprint";

pub(crate) const MANAGED_UPSERT: &str = "INSERT INTO managed_cert (directory, address_key, \
     thumbprint, der, published, confirmed, superseded) VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (directory, address_key, thumbprint) DO UPDATE SET der = excluded.der, \
     published = excluded.published, confirmed = excluded.confirmed, \
     superseded = excluded.superseded";

pub(crate) const MANAGED_FORGET: &str = "DELETE FROM managed_cert \
     WHERE directory = $1 AND address_key = $2 AND thumbprint = $3";

pub(crate) const LOCK_INSERT: &str = "INSERT INTO deploy_lock (name, id, host, pid, actor, \
     started, heartbeat) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING";

/// Takes the lock over from the holder `$8` (the caller decided it is dead).
pub(crate) const LOCK_REPLACE: &str = "UPDATE deploy_lock SET id = $2, host = $3, pid = $4, \
     actor = $5, started = $6, heartbeat = $7 WHERE name = $1 AND id = $8";

pub(crate) const LOCK_GET: &str = "SELECT name, id, host, pid, actor, started, heartbeat \
     FROM deploy_lock WHERE name = $1";

pub(crate) const LOCK_HEARTBEAT: &str =
    "UPDATE deploy_lock SET heartbeat = $3 WHERE name = $1 AND id = $2";

pub(crate) const LOCK_RELEASE: &str = "DELETE FROM deploy_lock WHERE name = $1 AND id = $2";

pub(crate) const JOURNAL_NEXT_SEQ: &str =
    "UPDATE counter SET value = value + 1 WHERE name = 'journal' RETURNING value";

pub(crate) const JOURNAL_INSERT: &str = "INSERT INTO deploy_journal (seq, run, step, phase, \
     detail, at) VALUES ($1, $2, $3, $4, $5, $6)";

pub(crate) const JOURNAL_OPEN: &str = "INSERT INTO deploy_journal_open (run, step, seq) \
     VALUES ($1, $2, $3) ON CONFLICT (run, step) DO UPDATE SET seq = excluded.seq";

pub(crate) const JOURNAL_CLOSE: &str =
    "DELETE FROM deploy_journal_open WHERE run = $1 AND step = $2";

pub(crate) const JOURNAL_RUN: &str = "SELECT run, step, phase, detail, at FROM deploy_journal \
     WHERE run = $1 ORDER BY seq";

pub(crate) const JOURNAL_INTERRUPTED: &str = "SELECT j.run, j.step, j.phase, j.detail, j.at \
     FROM deploy_journal_open o JOIN deploy_journal j ON j.seq = o.seq ORDER BY o.seq";

/// The open runs of one step, oldest first (PostgreSQL adds `FOR UPDATE`).
pub(crate) const JOURNAL_OPEN_RUNS: &str =
    "SELECT run FROM deploy_journal_open WHERE step = $1 ORDER BY seq";

/// Records the reminder unless it was given at or after `$2`; a row back when recorded.
pub(crate) const REMIND: &str = "INSERT INTO reminder (key, last) VALUES ($1, $3) \
     ON CONFLICT (key) DO UPDATE SET last = excluded.last WHERE reminder.last < $2 \
     RETURNING key";

pub(crate) const USER_PUT: &str = "INSERT INTO web_user (name, role, password_hash, created, \
     failures, locked_until) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO UPDATE SET \
     role = excluded.role, password_hash = excluded.password_hash, created = excluded.created, \
     failures = excluded.failures, locked_until = excluded.locked_until";

pub(crate) const USER_GET: &str = "SELECT name, role, password_hash, created, failures, \
     locked_until FROM web_user WHERE name = $1";

pub(crate) const USERS: &str = "SELECT name, role, password_hash, created, failures, \
     locked_until FROM web_user ORDER BY name";

pub(crate) const USER_REMOVE: &str = "DELETE FROM web_user WHERE name = $1";

pub(crate) const USER_SESSIONS_REMOVE: &str = "DELETE FROM web_session WHERE user_name = $1";

pub(crate) const SESSION_PUT: &str = "INSERT INTO web_session (id, user_name, csrf, created, \
     last_seen) SELECT $1, name, $3, $4, $5 FROM web_user WHERE name = $2";

pub(crate) const SESSION_GET: &str =
    "SELECT id, user_name, csrf, created, last_seen FROM web_session WHERE id = $1";

pub(crate) const SESSION_TOUCH: &str = "UPDATE web_session SET last_seen = $2 WHERE id = $1";

pub(crate) const SESSION_REMOVE: &str = "DELETE FROM web_session WHERE id = $1";

/// Signature checks that succeeded (`Store::signature_checks`).
pub(crate) const SIGNATURE_CHECKS: &str = "SELECT digest FROM signature_check";
pub(crate) const SIGNATURE_CHECK_PUT: &str = "INSERT INTO signature_check (digest, checked_at) \
     VALUES ($1, $2) ON CONFLICT (digest) DO UPDATE SET checked_at = excluded.checked_at";
pub(crate) const SIGNATURE_CHECK_FORGET: &str = "DELETE FROM signature_check WHERE checked_at < $1";
