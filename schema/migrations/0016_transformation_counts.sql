-- Issue 22: no silent change. Every value a transformation changes on its way to the target
-- ('' loaded as NULL by empty_as_null, spaces around a value cast from text, a value rounded
-- by a column that may round, NULL filled by a column default) is counted per column, in the
-- transaction that commits the rows it changed: the status and the report show the counts.
CREATE TABLE transformation_counts (
    migration_id UUID   NOT NULL,
    entity_name  TEXT   NOT NULL,
    column_name  TEXT   NOT NULL,
    change       TEXT   NOT NULL CHECK (change IN ('empty_to_null', 'trimmed', 'rounded', 'default_filled')),
    value_count  BIGINT NOT NULL DEFAULT 0 CHECK (value_count >= 0),
    PRIMARY KEY (migration_id, entity_name, column_name, change)
);
