-- Issue 15: keywords a destination refuses, and flags after an attempt that failed.

-- Keywords of the source message the destination refused to store (Cyrus 3.6 keeps at most 100
-- per folder: "Too many user flags in mailbox"). The message was stored without them; later
-- passes do not ask again, and reports and the go/no-go gate show what was dropped.
ALTER TABLE mail_messages ADD COLUMN dropped_flags TEXT[] NOT NULL DEFAULT '{}';

-- A flag change was sent to the destination and its outcome is not recorded (the pass failed
-- between the STORE and the ledger update): flags may not be what the destination holds. The
-- next pass reads the destination's flags for these rows before comparing them with the
-- source, so keywords a failed attempt stored do not stay for ever.
ALTER TABLE mail_messages ADD COLUMN flags_unsure BOOLEAN NOT NULL DEFAULT false;

CREATE INDEX idx_mail_messages_flags_unsure ON mail_messages (folder_id) WHERE flags_unsure;
