-- The web admin's users and sessions (`smimekit-web`).

-- Users: an argon2id PHC string (never a password), a role, and the failed sign-ins counted
-- for the lockout.
CREATE TABLE IF NOT EXISTS web_user (
    name TEXT NOT NULL PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created BIGINT NOT NULL,
    failures BIGINT NOT NULL,
    locked_until BIGINT
);

-- Sessions, keyed by the SHA-256 of the cookie's token; a user's removal removes them.
CREATE TABLE IF NOT EXISTS web_session (
    id TEXT NOT NULL PRIMARY KEY,
    user_name TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created BIGINT NOT NULL,
    last_seen BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS web_session_user ON web_session (user_name);
