-- Issue 19: what operators asked a database migration for, who and why (cutover db cutover,
-- close, approve-op, retry-failed and rollback --reason while it runs; retry, retry-failed and
-- rollback of an ended one), so its report shows them beside the acceptances of its quarantine.
-- The reason is operator text, never a secret. The workflow names each request (id), so a
-- retried activity records it once.
CREATE TABLE migration_operator_requests (
    id           UUID PRIMARY KEY,
    migration_id UUID        NOT NULL REFERENCES migration_orchestrations (id) ON DELETE CASCADE,
    request      TEXT        NOT NULL CHECK (request <> ''),
    subject      TEXT        NOT NULL DEFAULT '',
    requested_by TEXT        NOT NULL DEFAULT '',
    reason       TEXT        NOT NULL DEFAULT '',
    requested_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX idx_migration_operator_requests_migration ON migration_operator_requests (migration_id, requested_at);
