-- Issue 21: a lean mapping ledger. One migration_mappings row per migrated row cost ~280 bytes
-- a row with its two indexes (measured: 55 MB for the clinic chain's 200K rows, more than the
-- target tables themselves). A first load now records each batch's mappings as one block: the
-- batch's legacy ids and the UUIDs they became, as two parallel arrays (~25 bytes a mapping).
-- Mappings written one at a time (catch-up passes, rows created on the target after cutover,
-- the store's API) keep their per-row table, renamed migration_mapping_rows. migration_mappings
-- becomes the view of both with seed 001's columns, so everything that reads mappings reads
-- them as before; writers name the table they write.
ALTER TABLE migration_mappings RENAME TO migration_mapping_rows;

-- lo and hi bound the block's legacy ids in the engine's key order (an integer id as a signed
-- 64-bit number, any other id as its bytes after every integer): a lookup or a duplicate check
-- of some ids reads only the blocks whose range may hold them. A first load reads in key order,
-- so its blocks' ranges do not overlap.
CREATE TABLE migration_mapping_blocks (
    id                UUID PRIMARY KEY,
    migration_id      UUID        NOT NULL,
    source_table      TEXT COLLATE "C" NOT NULL,
    destination_table TEXT        NOT NULL,
    entity_type       TEXT        NOT NULL,
    lo                BYTEA       NOT NULL,
    hi                BYTEA       NOT NULL,
    source_ids        TEXT[] COLLATE "C" NOT NULL,
    destination_ids   UUID[]      NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (cardinality(source_ids) = cardinality(destination_ids))
);
CREATE INDEX idx_migration_mapping_blocks_source ON migration_mapping_blocks (migration_id, source_table, hi);

-- A block's mapping gets a stable id made from the block's id and its position.
CREATE VIEW migration_mappings AS
    SELECT id, migration_id, source_table, source_id, destination_table, destination_id, entity_type,
           mapping_metadata, created_at, is_active
    FROM migration_mapping_rows
    UNION ALL
    SELECT md5(b.id::text || '/' || u.n)::uuid, b.migration_id, b.source_table, u.source_id, b.destination_table,
           u.destination_id, b.entity_type, NULL::jsonb, b.created_at, true
    FROM migration_mapping_blocks b, unnest(b.source_ids, b.destination_ids) WITH ORDINALITY AS u(source_id, destination_id, n);

-- migration_mapping_forget removes the mappings of some legacy ids (keys) or some UUIDs (dests)
-- of one source table from both tables and returns the legacy ids it removed. [lo, hi] (NULL:
-- no bound) is the range of keys in the blocks' key order.
CREATE FUNCTION migration_mapping_forget(mid UUID, tbl TEXT, keys TEXT[], dests UUID[], klo BYTEA, khi BYTEA)
RETURNS SETOF TEXT LANGUAGE sql AS $$
    WITH gone_keys AS (
        DELETE FROM migration_mapping_rows m USING unnest(keys) AS k(id)
        WHERE m.source_table = tbl COLLATE "C" AND length(m.source_id) = length(k.id)
          AND m.source_id = k.id COLLATE "C" AND m.migration_id = mid
        RETURNING m.source_id
    ), gone_dests AS (
        DELETE FROM migration_mapping_rows m
        WHERE m.migration_id = mid AND m.source_table = tbl COLLATE "C" AND m.destination_id = ANY (dests)
        RETURNING m.source_id
    ), cells AS (
        SELECT b.id, u.s, u.d, u.n,
               (u.s IN (SELECT unnest(keys)) OR u.d IN (SELECT unnest(dests))) AS gone
        FROM migration_mapping_blocks b, unnest(b.source_ids, b.destination_ids) WITH ORDINALITY AS u(s, d, n)
        WHERE b.migration_id = mid AND b.source_table = tbl COLLATE "C"
          AND (klo IS NULL OR b.hi >= klo) AND (khi IS NULL OR b.lo <= khi)
    ), hit AS (
        SELECT id FROM cells GROUP BY id HAVING bool_or(gone)
    ), kept AS (
        SELECT c.id, array_agg(c.s ORDER BY c.n) FILTER (WHERE NOT c.gone) AS s,
               array_agg(c.d ORDER BY c.n) FILTER (WHERE NOT c.gone) AS d
        FROM cells c JOIN hit USING (id) GROUP BY c.id
    ), upd AS (
        UPDATE migration_mapping_blocks b SET source_ids = k.s, destination_ids = k.d
        FROM kept k WHERE b.id = k.id AND k.s IS NOT NULL
    ), del AS (
        DELETE FROM migration_mapping_blocks b USING kept k WHERE b.id = k.id AND k.s IS NULL
    )
    SELECT source_id FROM gone_keys
    UNION ALL
    SELECT source_id FROM gone_dests
    UNION ALL
    SELECT c.s FROM cells c JOIN hit USING (id) WHERE c.gone
$$;
