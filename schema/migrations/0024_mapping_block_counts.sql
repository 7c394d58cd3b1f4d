-- Issue 16: catch-up and the cutover freeze cost what changed, not the size of the mapping
-- blocks (schema migration 0023).
--
-- 1. The count check inside the freeze counted mappings through the migration_mappings view,
--    unnesting every block's arrays. Each block now carries its number of mappings, kept by
--    PostgreSQL on every write of the block.
-- 2. Forgetting a block's mapping (a row deleted in the source during catch-up) rewrote the
--    block's two arrays (some 140 KB for 5,000 mappings) once per drain that touched it. A
--    block is now written once, by the first load, and a mapping forgotten afterwards is noted
--    in migration_mapping_forgotten (the block and the legacy id); the view leaves it out. The
--    engine notes only mappings the block holds and has not forgotten yet, so the mapped count
--    is the blocks' mappings less their forgotten ones, plus the per-row table's rows.
ALTER TABLE migration_mapping_blocks
    ADD COLUMN mappings INTEGER GENERATED ALWAYS AS (cardinality(source_ids)) STORED;

CREATE TABLE migration_mapping_forgotten (
    block_id  UUID NOT NULL REFERENCES migration_mapping_blocks (id) ON DELETE CASCADE,
    source_id TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (block_id, source_id)
);

CREATE OR REPLACE VIEW migration_mappings AS
    SELECT id, migration_id, source_table, source_id, destination_table, destination_id, entity_type,
           mapping_metadata, created_at, is_active
    FROM migration_mapping_rows
    UNION ALL
    SELECT md5(b.id::text || '/' || u.n)::uuid, b.migration_id, b.source_table, u.source_id, b.destination_table,
           u.destination_id, b.entity_type, NULL::jsonb, b.created_at, true
    FROM migration_mapping_blocks b, unnest(b.source_ids, b.destination_ids) WITH ORDINALITY AS u(source_id, destination_id, n)
    WHERE NOT EXISTS (SELECT 1 FROM migration_mapping_forgotten f WHERE f.block_id = b.id AND f.source_id = u.source_id);

-- Rewrote blocks; the engine forgets mappings itself now (it notes them as above).
DROP FUNCTION migration_mapping_forget(UUID, TEXT, TEXT[], UUID[], BYTEA, BYTEA);
