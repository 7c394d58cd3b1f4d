-- Issue 15: identities that survive what a destination server rewrites.

-- The identity of the copy as the destination stored it (read back after the APPEND): a
-- server may rewrite identity headers (Cyrus turns raw 8-bit header bytes into 'X'). NULL until
-- read; equal to identity when nothing identifying changed.
ALTER TABLE mail_messages ADD COLUMN dest_identity TEXT;

-- What the ledger knew of a folder's copies when the source's UIDVALIDITY changed: the old
-- source UIDs mean nothing any more, but the destination copies are still there, still ours.
-- The next pass re-identifies the source's messages against these claims first (by the source
-- identity, whatever the destination rewrote), keeps their state (a copy stays ours) and
-- replays the source's current flags against the flags last applied, removals included.
-- Claims are dropped when adopted, or when the destination folder or its UIDVALIDITY changes.
CREATE TABLE mail_prior_claims (
    folder_id        BIGINT      NOT NULL REFERENCES mail_folders (id) ON DELETE CASCADE,
    dest_name        TEXT        NOT NULL,
    dest_uidvalidity BIGINT      NOT NULL CHECK (dest_uidvalidity >= 0),
    dest_uid         BIGINT      NOT NULL CHECK (dest_uid > 0),
    state            TEXT        NOT NULL CHECK (state IN ('copied', 'adopted')),
    identity         TEXT        NOT NULL,
    dest_identity    TEXT,
    size             BIGINT      NOT NULL CHECK (size >= 0),
    flags            TEXT[]      NOT NULL DEFAULT '{}',
    recorded_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (folder_id, dest_uid)
);
