-- Small per-directory facts a directory plugin remembers between runs (which byte encoding
-- an Exchange tenant accepts): text values by directory and key, with the time last set.
CREATE TABLE IF NOT EXISTS directory_state (
    directory TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    updated BIGINT NOT NULL,
    PRIMARY KEY (directory, key)
);
