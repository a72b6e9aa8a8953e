-- A directory whose present inventory rows a read found all unchanged at once
-- (`Store::inventory_touch` of a whole listing, what a plan of a converged directory does every
-- time) is marked seen here, once, instead of rewriting `last_seen` on each of its rows. A
-- present row was last seen at the later of its own `last_seen` and its directory's `seen`;
-- a row marked gone takes that time into its own `last_seen` first.
CREATE TABLE IF NOT EXISTS inventory_seen (
    directory TEXT NOT NULL PRIMARY KEY,
    seen BIGINT NOT NULL
);
