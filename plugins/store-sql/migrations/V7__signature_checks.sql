-- Signature checks that succeeded, by the lowercase hex SHA-256 of what was checked (the
-- public key, the scheme, the signed bytes and the signature, each with its length). A check
-- is a pure function of those: plan's readiness (lint and chain of every person's
-- certificates against the trust chain, 10,000 people at a time) asks the engine only for
-- checks not in here. Rows older than the service's horizon are forgotten when new ones are
-- recorded; a forgotten check is made again and recorded again.
CREATE TABLE IF NOT EXISTS signature_check (
    digest TEXT NOT NULL PRIMARY KEY,
    checked_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS signature_check_at ON signature_check (checked_at);
