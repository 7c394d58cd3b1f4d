-- Issue 23: a pass's ledger summary costs the folders of the mailbox, not its messages.
--
-- Every pass read the summary of each folder (messages copied or adopted, their bytes, pending
-- rows, rows stored without some keywords) by aggregating every mail_messages row of the
-- mailbox: a no-change pass over 20,000 messages read 20,000 rows to learn nothing changed.
-- Each folder now carries its summary, kept by PostgreSQL after every statement that writes
-- the folder's ledger rows: one UPDATE per folder per statement, from the statement's own
-- changed rows (transition tables), so a write costs what it changed and a read costs one
-- row per folder.
ALTER TABLE mail_folders
    ADD COLUMN ledger_messages BIGINT NOT NULL DEFAULT 0, -- copied + adopted
    ADD COLUMN ledger_bytes    BIGINT NOT NULL DEFAULT 0, -- their sizes
    ADD COLUMN ledger_pending  BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN ledger_dropped  BIGINT NOT NULL DEFAULT 0; -- rows with dropped_flags

-- mail_folder_count_delta adds what a statement changed (its new rows less its old ones) to their
-- folders' summaries, leaving alone folders whose summary did not change (a flag update). The
-- folder row is locked by the UPDATE alone (FOR NO KEY UPDATE, which the KEY SHARE locks of
-- concurrent writers' foreign key checks do not block); locking it first with a SELECT … FOR
-- UPDATE made concurrent writers of one folder deadlock.
CREATE FUNCTION mail_folder_count_delta() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed TEXT := CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT folder_id, state, size, dropped_flags, 1 AS n FROM new_rows'
        WHEN 'DELETE' THEN 'SELECT folder_id, state, size, dropped_flags, -1 AS n FROM old_rows'
        ELSE 'SELECT folder_id, state, size, dropped_flags, 1 AS n FROM new_rows
            UNION ALL SELECT folder_id, state, size, dropped_flags, -1 FROM old_rows'
    END;
BEGIN
    EXECUTE format($q$
        WITH c AS (%s),
        d AS (
            SELECT folder_id,
                coalesce(sum(n) FILTER (WHERE state <> 'pending'), 0) AS messages,
                coalesce(sum(n * size) FILTER (WHERE state <> 'pending'), 0) AS bytes,
                coalesce(sum(n) FILTER (WHERE state = 'pending'), 0) AS pending,
                coalesce(sum(n) FILTER (WHERE cardinality(dropped_flags) > 0), 0) AS dropped
            FROM c GROUP BY folder_id
        )
        UPDATE mail_folders f SET ledger_messages = f.ledger_messages + d.messages,
            ledger_bytes = f.ledger_bytes + d.bytes, ledger_pending = f.ledger_pending + d.pending,
            ledger_dropped = f.ledger_dropped + d.dropped
        FROM d WHERE d.folder_id = f.id
            AND (d.messages <> 0 OR d.bytes <> 0 OR d.pending <> 0 OR d.dropped <> 0)$q$, changed);
    RETURN NULL;
END $$;

CREATE TRIGGER mail_messages_count_insert AFTER INSERT ON mail_messages
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION mail_folder_count_delta();
CREATE TRIGGER mail_messages_count_update AFTER UPDATE ON mail_messages
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION mail_folder_count_delta();
CREATE TRIGGER mail_messages_count_delete AFTER DELETE ON mail_messages
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION mail_folder_count_delta();

-- The summaries of the ledger as it stands.
UPDATE mail_folders f SET ledger_messages = m.messages, ledger_bytes = m.bytes, ledger_pending = m.pending,
    ledger_dropped = m.dropped
FROM (SELECT folder_id, count(*) FILTER (WHERE state <> 'pending') AS messages,
        coalesce(sum(size) FILTER (WHERE state <> 'pending'), 0) AS bytes,
        count(*) FILTER (WHERE state = 'pending') AS pending,
        count(*) FILTER (WHERE cardinality(dropped_flags) > 0) AS dropped
    FROM mail_messages GROUP BY folder_id) m
WHERE m.folder_id = f.id;
