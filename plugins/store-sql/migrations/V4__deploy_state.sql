-- What plan/apply (`smimekit plan`/`apply`/`status`) keeps between runs.

-- Certificate values smimekit published (ownership: only these, and what the deploy policy
-- names, are ever removed), by directory, address (Mailbox::key form) and SHA-1 thumbprint
-- (upper-case hex). `published` is recorded before the write, `confirmed` (0/1) once the
-- write was read back, `superseded` when a successor was published beside it.
CREATE TABLE IF NOT EXISTS managed_cert (
    directory TEXT NOT NULL,
    address_key TEXT NOT NULL,
    thumbprint TEXT NOT NULL,
    der BYTEA NOT NULL,
    published BIGINT NOT NULL,
    confirmed BIGINT NOT NULL,
    superseded BIGINT,
    PRIMARY KEY (directory, address_key, thumbprint)
);

-- Named exclusive locks (one apply at a time per store): the row exists while held.
CREATE TABLE IF NOT EXISTS deploy_lock (
    name TEXT NOT NULL PRIMARY KEY,
    id TEXT NOT NULL,
    host TEXT NOT NULL,
    pid BIGINT NOT NULL,
    actor TEXT NOT NULL,
    started BIGINT NOT NULL,
    heartbeat BIGINT NOT NULL
);

-- The apply journal, numbered in append order (counter 'journal').
CREATE TABLE IF NOT EXISTS deploy_journal (
    seq BIGINT NOT NULL PRIMARY KEY,
    run TEXT NOT NULL,
    step TEXT NOT NULL,
    phase TEXT NOT NULL,
    detail TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS deploy_journal_run ON deploy_journal (run, seq);

-- The (run, step) pairs whose last journal row is 'start', with that row's number: what an
-- interrupted apply left open, found without scanning the journal.
CREATE TABLE IF NOT EXISTS deploy_journal_open (
    run TEXT NOT NULL,
    step TEXT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (run, step)
);
CREATE INDEX IF NOT EXISTS deploy_journal_open_step ON deploy_journal_open (step);

INSERT INTO counter (name, value) VALUES ('journal', 0) ON CONFLICT DO NOTHING;

-- `status` reminders: when each was last given.
CREATE TABLE IF NOT EXISTS reminder (
    key TEXT NOT NULL PRIMARY KEY,
    last BIGINT NOT NULL
);
