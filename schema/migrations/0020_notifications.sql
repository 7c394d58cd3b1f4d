-- Issue 19: the delivery log of notifications (webhooks posting the ticket payload). One row
-- per event and webhook: a retried or re-sent delivery updates it, so a delivered event is
-- never posted again by a later run of the migration.
CREATE TABLE notification_deliveries (
    target       TEXT        NOT NULL, -- the migration's workflow id (email-job-42, db-migration-<uuid>)
    seq          BIGINT      NOT NULL CHECK (seq > 0),
    url          TEXT        NOT NULL,
    event        TEXT        NOT NULL,
    status       TEXT        NOT NULL CHECK (status IN ('retrying', 'delivered', 'refused')),
    attempts     INTEGER     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    http_status  INTEGER,
    last_error   TEXT        NOT NULL DEFAULT '',
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    delivered_at TIMESTAMPTZ,
    PRIMARY KEY (target, seq, url)
);
