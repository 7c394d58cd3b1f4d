-- Issue 6: migration_mappings takes one row per migrated row, written in the copy engine's batch
-- transaction, so every index and per-row check on it is paid once per migrated row. Measured
-- (200K rows, backend CPU): 0002's shape costs ~3.0 s; the heap alone ~0.3 s, the FK ~1.3 s,
-- each text index ~0.45 s. This keeps seed 001's meaning with two indexes and no FK: the
-- primary key on id (the engine writes time-ordered UUIDv7 ids, so it appends at the index's
-- right edge) and one unique index.

-- The per-row FK to migration_orchestrations goes (a queued RI trigger and an index probe per
-- row). Integrity still holds: the copy engine writes mapping rows only in the transaction that
-- inserts their batch_processing_status row, whose FK chain (entity_migration_status →
-- migration_orchestrations) reaches the orchestration. Without ON DELETE CASCADE, deleting an
-- orchestration keeps its mappings, as seed 001's retention asks ("Legacy mappings: Permanent").
ALTER TABLE migration_mappings DROP CONSTRAINT migration_mappings_migration_id_fkey;

-- Nothing looks mappings up by destination: rollback and validation join the target table's
-- primary key to the mappings of (migration_id, source_table).
DROP INDEX idx_migration_mappings_destination;

DROP INDEX idx_migration_mappings_source;
ALTER TABLE migration_mappings DROP CONSTRAINT migration_mappings_migration_id_source_table_source_id_key;

-- Mapping keys compare bytewise: under the database's default collation every index comparison
-- of a text key goes through strcoll (~15% of the index's cost, measured). Equality, the only
-- comparison anything makes on these columns, is the same under any deterministic collation.
-- Same type, so no table rewrite.
ALTER TABLE migration_mappings
    ALTER COLUMN source_table TYPE TEXT COLLATE "C",
    ALTER COLUMN source_id TYPE TEXT COLLATE "C";

-- One unique index serves both the seed's uniqueness rule (source table + source id per
-- migration; ON CONFLICT (migration_id, source_table, source_id) infers it: column order does
-- not matter) and, through its leading columns, the seed's critical (source_table, source_id)
-- index, whose name it keeps.
CREATE UNIQUE INDEX idx_migration_mappings_source ON migration_mappings (source_table, source_id, migration_id);
