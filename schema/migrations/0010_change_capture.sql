-- Issue 16: change capture. A migration's catch-up follows each source's changes (SQLite: the
-- change log its triggers fill; PostgreSQL: a logical replication slot) and, after cutover,
-- the target's changes back to the source (direction 'reverse').
--
-- change_capture is one row per source and direction: what is installed where, the position
-- applied so far (SQLite: the log's seq; PostgreSQL: an LSN), committed in the same transaction
-- as the rows it covers, so a drain retried after a crash resumes exactly there; the lag figures
-- the status shows; and removed_at once nothing of it is left in the source.
CREATE TABLE change_capture (
    migration_id      UUID        NOT NULL REFERENCES migration_orchestrations (id) ON DELETE CASCADE,
    source_name       TEXT        NOT NULL,
    direction         TEXT        NOT NULL DEFAULT 'forward' CHECK (direction IN ('forward', 'reverse')),
    method            TEXT        NOT NULL CHECK (method IN ('sqlite_triggers', 'pg_logical')),
    position          TEXT        NOT NULL DEFAULT '0',
    slot_name         TEXT,
    changes_applied   BIGINT      NOT NULL DEFAULT 0 CHECK (changes_applied >= 0),
    rows_applied      BIGINT      NOT NULL DEFAULT 0 CHECK (rows_applied >= 0),
    drains            BIGINT      NOT NULL DEFAULT 0 CHECK (drains >= 0),
    pending           BIGINT      NOT NULL DEFAULT 0 CHECK (pending >= 0),
    rows_per_second   DOUBLE PRECISION NOT NULL DEFAULT 0,
    installed_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_drain_at     TIMESTAMPTZ,
    removed_at        TIMESTAMPTZ,
    PRIMARY KEY (migration_id, source_name, direction)
);

-- Every drain takes a number from this sequence; changed_keys remembers, per row, the last
-- drain that wrote it. A full validation notes the highest drain committed when it starts, so
-- the validation inside the cutover freeze re-checks only the rows written after that (and the
-- rows the full validation found different while the source was still moving).
CREATE SEQUENCE change_drain_seq;

CREATE TABLE changed_keys (
    migration_id UUID   NOT NULL REFERENCES migration_orchestrations (id) ON DELETE CASCADE,
    entity_name  TEXT   NOT NULL,
    source_id    TEXT   NOT NULL,
    drain        BIGINT NOT NULL,
    PRIMARY KEY (migration_id, entity_name, source_id)
);
CREATE INDEX idx_changed_keys_drain ON changed_keys (migration_id, entity_name, drain);
