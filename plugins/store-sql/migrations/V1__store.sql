-- The smimekit store, version 1. One file for SQLite and PostgreSQL: only types and
-- statements both accept (TEXT, BIGINT, BYTEA, composite primary keys, ON CONFLICT DO
-- NOTHING). Integers are BIGINT everywhere (booleans are 0/1), times are seconds since the
-- Unix epoch, certificates are DER bytes. Statements are idempotent (IF NOT EXISTS) so that
-- a migration interrupted on SQLite can simply run again.

-- Local directories (kind = "local"), by configured name, and where their first-use import
-- came from (a directory.json of an earlier smimekit).
CREATE TABLE IF NOT EXISTS dir_directory (
    directory TEXT NOT NULL PRIMARY KEY,
    import_file TEXT,
    import_sha256 TEXT,
    import_time BIGINT
);

-- Recipients by the lowercased address (Mailbox::key); `address` as first given.
CREATE TABLE IF NOT EXISTS dir_recipient (
    directory TEXT NOT NULL,
    address_key TEXT NOT NULL,
    address TEXT NOT NULL,
    kind TEXT NOT NULL,
    PRIMARY KEY (directory, address_key)
);

-- A recipient's certificates in publish order (position grows, never reused while the
-- recipient has certificates).
CREATE TABLE IF NOT EXISTS dir_certificate (
    directory TEXT NOT NULL,
    address_key TEXT NOT NULL,
    position BIGINT NOT NULL,
    der BYTEA NOT NULL,
    PRIMARY KEY (directory, address_key, position)
);

-- The trust chain (root and intermediates), in stored order.
CREATE TABLE IF NOT EXISTS dir_trust (
    directory TEXT NOT NULL,
    position BIGINT NOT NULL,
    der BYTEA NOT NULL,
    PRIMARY KEY (directory, position)
);

-- Every certificate seen in any directory (local, LDAP, Exchange…), per address.
CREATE TABLE IF NOT EXISTS inventory (
    directory TEXT NOT NULL,
    address_key TEXT NOT NULL,
    address TEXT NOT NULL,
    recipient_kind TEXT,
    sha256 TEXT NOT NULL,
    sha1 TEXT NOT NULL,
    subject TEXT NOT NULL,
    issuer TEXT NOT NULL,
    serial TEXT NOT NULL,
    not_before BIGINT NOT NULL,
    not_after BIGINT NOT NULL,
    key_type TEXT NOT NULL,
    source_attribute TEXT,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    published BIGINT NOT NULL,
    present BIGINT NOT NULL,
    PRIMARY KEY (directory, address_key, sha256)
);
CREATE INDEX IF NOT EXISTS inventory_not_after ON inventory (not_after);
CREATE INDEX IF NOT EXISTS inventory_directory_not_after ON inventory (directory, not_after);

-- The audit log: append-only, numbered 1, 2, 3…; `hash` = SHA-256(previous hash ‖ canonical
-- row), hex. Thumbprint lists are comma-separated SHA-1 hex.
CREATE TABLE IF NOT EXISTS audit_log (
    seq BIGINT NOT NULL PRIMARY KEY,
    time BIGINT NOT NULL,
    actor TEXT NOT NULL,
    frontend TEXT NOT NULL,
    operation TEXT NOT NULL,
    directory TEXT NOT NULL,
    address TEXT NOT NULL,
    address_key TEXT NOT NULL,
    before_thumbprints TEXT NOT NULL,
    after_thumbprints TEXT NOT NULL,
    result TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_time ON audit_log (time);
CREATE INDEX IF NOT EXISTS audit_log_address ON audit_log (address_key);

-- The last row's number and hash: appends lock this row, and verification compares the end
-- of the log with it (so removing the newest rows is found too).
CREATE TABLE IF NOT EXISTS audit_head (
    id BIGINT NOT NULL PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000')
ON CONFLICT DO NOTHING;

-- Long operations, for the frontends to list.
CREATE TABLE IF NOT EXISTS job (
    id BIGINT NOT NULL PRIMARY KEY,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    frontend TEXT NOT NULL,
    started BIGINT NOT NULL,
    finished BIGINT,
    outcome TEXT,
    items TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS job_started ON job (started);

-- Counters handed out inside write transactions (job ids).
CREATE TABLE IF NOT EXISTS counter (
    name TEXT NOT NULL PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counter (name, value) VALUES ('job', 0) ON CONFLICT DO NOTHING;
