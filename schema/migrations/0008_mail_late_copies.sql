-- Issue 9: late copies of our own abandoned APPENDs.
--
-- When a pass is interrupted with APPENDs unanswered, the next attempt looks for those messages
-- on the destination and copies again the ones it does not find. The abandoned APPEND's bytes
-- may still be on their way (queued on a slow link or in an intermediary) and land after that
-- check: a second copy, made by us. Each identity copied again that way is recorded here, per
-- source folder, so verification can recognise such a copy — a destination message the ledger
-- does not claim, of a watched identity, beyond the source's own count of it — and remove it,
-- while leaving every other extra message (a user's, another tool's) alone.
CREATE TABLE mail_late_copy_watch (
    folder_id   BIGINT      NOT NULL REFERENCES mail_folders (id) ON DELETE CASCADE,
    identity    TEXT        NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (folder_id, identity)
);
