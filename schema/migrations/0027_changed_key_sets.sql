-- Issue 16: a drain notes the keys it wrote as one row per chunk (up to 5,000 keys in an
-- array), not one row per key. changed_keys cost each key an upsert into its primary key, an
-- entry in its drain index and a foreign-key check: measured as the drain's second costliest
-- statement after the target's own upsert (6,452 keys, 6,452 foreign-key checks in a seed-002
-- drain). The validation inside the cutover freeze reads the distinct keys of the sets written
-- after the full validation started; the full validation deletes the sets written before it
-- (their rows' final state is what it compares), so the table holds what changed since.
CREATE TABLE changed_key_sets (
    migration_id UUID   NOT NULL REFERENCES migration_orchestrations (id) ON DELETE CASCADE,
    entity_name  TEXT   NOT NULL,
    drain        BIGINT NOT NULL,
    source_ids   TEXT[] NOT NULL
);
CREATE INDEX idx_changed_key_sets_drain ON changed_key_sets (migration_id, entity_name, drain);

INSERT INTO changed_key_sets (migration_id, entity_name, drain, source_ids)
    SELECT migration_id, entity_name, drain, array_agg(source_id) FROM changed_keys GROUP BY 1, 2, 3;

DROP TABLE changed_keys;
