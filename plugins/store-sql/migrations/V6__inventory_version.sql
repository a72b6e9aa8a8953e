-- The inventory's version: a counter every inventory write bumps in its own transaction.
-- Readers that keep a view built from the inventory (the people list of the web admin and
-- the TUI) compare it instead of reading the inventory again; a write made by another
-- process (several servers on one PostgreSQL) bumps it too.
CREATE TABLE IF NOT EXISTS inventory_version (
    id BIGINT NOT NULL PRIMARY KEY,
    version BIGINT NOT NULL
);
INSERT INTO inventory_version (id, version) VALUES (1, 0) ON CONFLICT DO NOTHING;

-- The first people by address (a frontend's first page) without reading the whole inventory.
CREATE INDEX IF NOT EXISTS inventory_address ON inventory (address_key, present);
