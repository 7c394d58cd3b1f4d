-- Issue 4: what the email workflows mirror beyond seed 000's columns, so a ticket desk can read
-- the whole state of a job from PostgreSQL alone.

ALTER TABLE migration_jobs
    -- The phase a failed job resumes from on retry (NULL unless phase = 'failed').
    ADD COLUMN failed_phase TEXT CHECK (failed_phase IS NULL OR failed_phase IN (
        'discovered', 'preflight', 'initial_sync', 'delta_sync', 'cutover_ready',
        'dns_cutover', 'final_sync', 'verified', 'closed')),
    ADD COLUMN last_error TEXT,
    -- The migration hour planned for DNS/MX (seed 003); dns_cutover_at is when it happened.
    ADD COLUMN cutover_planned_at TIMESTAMPTZ,
    -- The ticket payload's migration_sync_percent.
    ADD COLUMN sync_percent REAL NOT NULL DEFAULT 0 CHECK (sync_percent BETWEEN 0 AND 100),
    -- The last presync's duration: the prediction of the final sync's.
    ADD COLUMN predicted_final_sync_seconds DOUBLE PRECISION CHECK (predicted_final_sync_seconds >= 0),
    -- The last state write applied (activity run + id), so a retried write is not appended twice.
    ADD COLUMN mirror_key TEXT;

ALTER TABLE migration_mailboxes
    -- The mailbox's entry of the job spec (user, dest user, credential refs, include/exclude,
    -- age window): never a secret. Lets the workflows load mailboxes page by page.
    ADD COLUMN spec_json JSONB CHECK (spec_json IS NULL OR jsonb_typeof(spec_json) = 'object');
