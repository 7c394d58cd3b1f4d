-- Issue 21: the secondary indexes of a target table that exists and is empty when an entity's
-- first load starts are dropped for the load and built once after it (maintained row by row, a
-- full-text GIN index costs the load more than building it whole). Their definitions live here,
-- written in the transaction that drops them and deleted in the one that builds them again, so
-- a crash between the two leaves the definitions for the next finalize (or rollback) to rebuild.
CREATE TABLE deferred_indexes (
    migration_id UUID        NOT NULL REFERENCES migration_orchestrations (id),
    entity_name  TEXT        NOT NULL,
    schema_name  TEXT        NOT NULL,
    table_name   TEXT        NOT NULL,
    index_name   TEXT        NOT NULL,
    -- definition is a CREATE INDEX IF NOT EXISTS statement over the whole table (a partitioned
    -- table's index on every partition).
    definition   TEXT        NOT NULL,
    tablespace   TEXT,
    comment      TEXT,
    deferred_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (migration_id, entity_name, index_name)
);
