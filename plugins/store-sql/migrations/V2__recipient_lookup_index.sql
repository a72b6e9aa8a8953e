-- Lookups read a recipient's address and kind by (directory, address_key): an index that
-- holds them answers from the index alone (SQLite's primary key on a table with a rowid is a
-- separate index, so without it every lookup also reads the table row).
CREATE INDEX IF NOT EXISTS dir_recipient_lookup ON dir_recipient (directory, address_key, address, kind);
