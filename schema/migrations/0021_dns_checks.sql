-- Issue 19: the DNS checks of the migration plan. dns_ttl warns while the MX or the IMAP host
-- name has a TTL above the spec's max_ttl before DNS is switched; mx_switched warns after the
-- DNS cutover confirmation while MX does not point at the destination.
ALTER TABLE migration_gate_checks
    DROP CONSTRAINT migration_gate_checks_check_id_check,
    ADD CONSTRAINT migration_gate_checks_check_id_check CHECK (check_id IN (
        'count_ratio', 'inbox_complete', 'sent_complete', 'pst_quarantine', 'delta_pending',
        'dest_held', 'dns_ttl', 'mx_switched', 'manual_approval'));
