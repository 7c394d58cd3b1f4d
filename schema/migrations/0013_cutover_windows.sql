-- Issue 16: the cutover window of a captured migration, measured from the freeze's start (the
-- operator's cutover) to its completion (last changes drained, the rows changed since the full
-- validation validated), for the status, the report and the metrics.
CREATE TABLE cutover_windows (
    migration_id     UUID        NOT NULL REFERENCES migration_orchestrations (id) ON DELETE CASCADE,
    started_at       TIMESTAMPTZ NOT NULL,
    completed_at     TIMESTAMPTZ NOT NULL,
    seconds          DOUBLE PRECISION NOT NULL CHECK (seconds >= 0),
    drained_changes  BIGINT      NOT NULL DEFAULT 0 CHECK (drained_changes >= 0),
    validated_rows   BIGINT      NOT NULL DEFAULT 0 CHECK (validated_rows >= 0),
    passed           BOOLEAN     NOT NULL,
    PRIMARY KEY (migration_id, started_at)
);
