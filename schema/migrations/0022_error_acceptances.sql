-- Issue 17: a migration whose quarantine is not empty does not end completed unless the spec
-- sets an error budget or an operator accepts the quarantined rows (cutover db accept-errors
-- ID --reason). An acceptance covers the quarantine as it was when it was given: it holds
-- while the migration's quarantined rows do not exceed quarantined_rows.
CREATE TABLE migration_error_acceptances (
    id               UUID PRIMARY KEY,
    migration_id     UUID        NOT NULL REFERENCES migration_orchestrations (id) ON DELETE CASCADE,
    accepted_by      TEXT        NOT NULL CHECK (accepted_by <> ''),
    reason           TEXT        NOT NULL CHECK (reason <> ''),
    quarantined_rows BIGINT      NOT NULL CHECK (quarantined_rows >= 0),
    accepted_at      TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX idx_migration_error_acceptances_migration ON migration_error_acceptances (migration_id, accepted_at);
