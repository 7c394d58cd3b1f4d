-- Seed 001: database migration orchestration. UUID keys, the seed's enums as CHECKs, its
-- validation rules as constraints where a row can check them, its critical indexes.

CREATE TABLE migration_orchestrations (
    id                  UUID PRIMARY KEY,
    migration_type      TEXT        NOT NULL CHECK (migration_type IN (
                            'full_migration', 'incremental', 'schema_cleanup')),
    status              TEXT        NOT NULL DEFAULT 'pending' CHECK (status IN (
                            'pending', 'running', 'completed', 'failed', 'rolling_back')),
    started_at          TIMESTAMPTZ,
    completed_at        TIMESTAMPTZ,
    progress_percentage NUMERIC(5, 2) NOT NULL DEFAULT 0 CHECK (progress_percentage BETWEEN 0 AND 100),
    total_entities      INTEGER     NOT NULL DEFAULT 0 CHECK (total_entities >= 0),
    completed_entities  INTEGER     NOT NULL DEFAULT 0 CHECK (completed_entities >= 0),
    error_count         BIGINT      NOT NULL DEFAULT 0 CHECK (error_count >= 0),
    configuration       JSONB       NOT NULL DEFAULT '{}',
    created_by          TEXT        NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (completed_entities <= total_entities),
    CHECK (completed_at IS NULL OR started_at IS NULL OR started_at <= completed_at)
);

CREATE INDEX idx_migration_orchestrations_status ON migration_orchestrations (status);

CREATE TABLE entity_migration_status (
    id                    UUID PRIMARY KEY,
    migration_id          UUID        NOT NULL REFERENCES migration_orchestrations (id) ON DELETE CASCADE,
    entity_name           TEXT        NOT NULL CHECK (entity_name <> ''),
    target_entity         TEXT        NOT NULL CHECK (target_entity <> ''),
    dependency_order      INTEGER     NOT NULL CHECK (dependency_order >= 0),
    status                TEXT        NOT NULL DEFAULT 'pending' CHECK (status IN (
                              'pending', 'running', 'completed', 'failed', 'skipped')),
    records_total         BIGINT      NOT NULL DEFAULT 0 CHECK (records_total >= 0),
    records_processed     BIGINT      NOT NULL DEFAULT 0 CHECK (records_processed >= 0),
    records_failed        BIGINT      NOT NULL DEFAULT 0 CHECK (records_failed >= 0),
    started_at            TIMESTAMPTZ,
    completed_at          TIMESTAMPTZ,
    last_processed_id     TEXT,
    batch_size            INTEGER     NOT NULL CHECK (batch_size > 0),
    throughput_per_second DOUBLE PRECISION NOT NULL DEFAULT 0 CHECK (throughput_per_second >= 0),
    UNIQUE (migration_id, entity_name),
    UNIQUE (migration_id, dependency_order),
    CHECK (records_processed + records_failed <= records_total),
    CHECK (completed_at IS NULL OR started_at IS NULL OR started_at <= completed_at)
);

CREATE INDEX idx_entity_migration_status_migration ON entity_migration_status (migration_id);
CREATE INDEX idx_entity_migration_status_order ON entity_migration_status (entity_name, dependency_order);

CREATE TABLE migration_checkpoints (
    id                UUID PRIMARY KEY,
    migration_id      UUID        NOT NULL REFERENCES migration_orchestrations (id) ON DELETE CASCADE,
    entity_name       TEXT        NOT NULL,
    checkpoint_type   TEXT        NOT NULL CHECK (checkpoint_type IN (
                          'batch_completion', 'entity_completion', 'error_recovery')),
    batch_number      BIGINT      NOT NULL CHECK (batch_number >= 0),
    last_source_id    TEXT,
    records_processed BIGINT      NOT NULL DEFAULT 0 CHECK (records_processed >= 0),
    -- "system_state must contain required recovery information": at least an object.
    system_state      JSONB       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(system_state) = 'object'),
    created_at        TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    is_resumable      BOOLEAN     NOT NULL DEFAULT true,
    -- One checkpoint per batch: a re-run batch cannot record a second one.
    UNIQUE (migration_id, entity_name, checkpoint_type, batch_number)
);

CREATE INDEX idx_migration_checkpoints_migration_created ON migration_checkpoints (migration_id, created_at);

CREATE TABLE migration_mappings (
    id                UUID PRIMARY KEY,
    migration_id      UUID        NOT NULL REFERENCES migration_orchestrations (id) ON DELETE CASCADE,
    source_table      TEXT        NOT NULL,
    source_id         TEXT        NOT NULL,
    destination_table TEXT        NOT NULL,
    destination_id    UUID        NOT NULL,
    entity_type       TEXT        NOT NULL,
    mapping_metadata  JSONB,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    is_active         BOOLEAN     NOT NULL DEFAULT true,
    UNIQUE (migration_id, source_table, source_id)
);

CREATE INDEX idx_migration_mappings_source ON migration_mappings (source_table, source_id);
CREATE INDEX idx_migration_mappings_destination ON migration_mappings (destination_table, destination_id);

CREATE TABLE batch_processing_status (
    id                     UUID PRIMARY KEY,
    entity_status_id       UUID        NOT NULL REFERENCES entity_migration_status (id) ON DELETE CASCADE,
    batch_number           BIGINT      NOT NULL CHECK (batch_number >= 0),
    batch_size             INTEGER     NOT NULL CHECK (batch_size >= 0),
    status                 TEXT        NOT NULL DEFAULT 'pending' CHECK (status IN (
                               'pending', 'processing', 'completed', 'failed', 'retrying')),
    records_successful     INTEGER     NOT NULL DEFAULT 0 CHECK (records_successful >= 0),
    records_failed         INTEGER     NOT NULL DEFAULT 0 CHECK (records_failed >= 0),
    started_at             TIMESTAMPTZ,
    completed_at           TIMESTAMPTZ,
    processing_duration_ms BIGINT CHECK (processing_duration_ms >= 0),
    retry_count            INTEGER     NOT NULL DEFAULT 0 CHECK (retry_count >= 0),
    error_summary          TEXT,
    UNIQUE (entity_status_id, batch_number),
    -- A finished batch accounts for every record in it.
    CHECK (status NOT IN ('completed', 'failed') OR records_successful + records_failed = batch_size)
);

CREATE INDEX idx_batch_processing_status_entity ON batch_processing_status (entity_status_id);

-- The seed suggests monthly partitions by occurred_at; a partitioned table cannot carry the
-- foreign keys below, and the error volume of one migration does not need it.
CREATE TABLE migration_errors (
    id               UUID PRIMARY KEY,
    migration_id     UUID        NOT NULL REFERENCES migration_orchestrations (id) ON DELETE CASCADE,
    entity_status_id UUID REFERENCES entity_migration_status (id) ON DELETE CASCADE,
    batch_id         UUID REFERENCES batch_processing_status (id) ON DELETE SET NULL,
    error_type       TEXT        NOT NULL CHECK (error_type IN (
                         'connection_error', 'data_validation', 'constraint_violation', 'timeout', 'unknown')),
    error_code       TEXT        NOT NULL DEFAULT '',
    error_message    TEXT        NOT NULL CHECK (error_message <> ''),
    source_record_id TEXT,
    source_data      JSONB,
    context          JSONB       NOT NULL DEFAULT '{}',
    stack_trace      TEXT,
    occurred_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    is_resolved      BOOLEAN     NOT NULL DEFAULT false,
    resolution_notes TEXT
);

CREATE INDEX idx_migration_errors_migration ON migration_errors (migration_id);
CREATE INDEX idx_migration_errors_entity ON migration_errors (entity_status_id);
CREATE INDEX idx_migration_errors_type_occurred ON migration_errors (error_type, occurred_at);
-- A re-run batch records the same bad row once.
CREATE UNIQUE INDEX uq_migration_errors_unresolved_record
    ON migration_errors (entity_status_id, source_record_id, error_code)
    WHERE source_record_id IS NOT NULL AND NOT is_resolved;

CREATE TABLE schema_change_operations (
    id                 UUID PRIMARY KEY,
    migration_id       UUID        NOT NULL REFERENCES migration_orchestrations (id) ON DELETE CASCADE,
    operation_type     TEXT        NOT NULL CHECK (operation_type IN (
                           'drop_column', 'add_column', 'modify_column', 'create_backup')),
    table_name         TEXT        NOT NULL CHECK (table_name <> ''),
    column_name        TEXT,
    operation_sql      TEXT        NOT NULL CHECK (operation_sql <> ''),
    status             TEXT        NOT NULL DEFAULT 'pending' CHECK (status IN (
                           'pending', 'completed', 'failed', 'rolled_back')),
    executed_at        TIMESTAMPTZ,
    rollback_sql       TEXT,
    backup_table_name  TEXT,
    risk_level         TEXT        NOT NULL CHECK (risk_level IN ('low', 'medium', 'high', 'critical')),
    validation_results JSONB,
    approved_by        TEXT,
    approved_at        TIMESTAMPTZ,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Column operations name their column.
    CHECK (operation_type = 'create_backup' OR column_name IS NOT NULL),
    -- Every operation here is reversible, so each carries its rollback.
    CHECK (rollback_sql IS NOT NULL AND rollback_sql <> ''),
    -- Validation results are required once a critical operation has run.
    CHECK (risk_level <> 'critical' OR status = 'pending' OR validation_results IS NOT NULL),
    CHECK (status = 'pending' OR executed_at IS NOT NULL)
);

CREATE INDEX idx_schema_change_operations_migration ON schema_change_operations (migration_id);

CREATE TABLE legacy_entity_mappings (
    id                   UUID PRIMARY KEY,
    source_entity        TEXT        NOT NULL CHECK (source_entity <> ''),
    destination_entity   TEXT        NOT NULL CHECK (destination_entity <> ''),
    transformation_rules JSONB       NOT NULL CHECK (jsonb_typeof(transformation_rules) = 'object'),
    dependency_entities  TEXT[]      NOT NULL DEFAULT '{}',
    validation_rules     JSONB       NOT NULL DEFAULT '{}',
    is_active            BOOLEAN     NOT NULL DEFAULT true,
    version              TEXT        NOT NULL,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (source_entity, destination_entity, version),
    CHECK (NOT (source_entity = ANY (dependency_entities)))
);

CREATE TABLE data_validation_results (
    id                    UUID PRIMARY KEY,
    migration_id          UUID        NOT NULL REFERENCES migration_orchestrations (id) ON DELETE CASCADE,
    validation_type       TEXT        NOT NULL CHECK (validation_type IN (
                              'referential_integrity', 'data_completeness', 'business_rules', 'performance')),
    entity_name           TEXT        NOT NULL,
    status                TEXT        NOT NULL CHECK (status IN ('passed', 'failed', 'warning')),
    records_validated     BIGINT      NOT NULL DEFAULT 0 CHECK (records_validated >= 0),
    issues_found          BIGINT      NOT NULL DEFAULT 0 CHECK (issues_found >= 0),
    issue_details         JSONB,
    validation_criteria   JSONB       NOT NULL CHECK (validation_criteria <> '{}'::jsonb),
    executed_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    execution_duration_ms BIGINT      NOT NULL DEFAULT 0 CHECK (execution_duration_ms >= 0),
    CHECK (issues_found <= records_validated),
    CHECK (status = 'passed' OR issue_details IS NOT NULL)
);

CREATE INDEX idx_data_validation_results_migration ON data_validation_results (migration_id);
