package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/cutover/cutover/internal/model"
)

// Orchestration is a migration_orchestrations row (seed 001 MigrationOrchestration).
type Orchestration struct {
	ID                 uuid.UUID                 `db:"id"`
	MigrationType      model.MigrationType       `db:"migration_type"`
	Status             model.OrchestrationStatus `db:"status"`
	StartedAt          *time.Time                `db:"started_at"`
	CompletedAt        *time.Time                `db:"completed_at"`
	ProgressPercentage float64                   `db:"progress_percentage"`
	TotalEntities      int32                     `db:"total_entities"`
	CompletedEntities  int32                     `db:"completed_entities"`
	ErrorCount         int64                     `db:"error_count"`
	Configuration      json.RawMessage           `db:"configuration"`
	CreatedBy          string                    `db:"created_by"`
	CreatedAt          time.Time                 `db:"created_at"`
	UpdatedAt          time.Time                 `db:"updated_at"`
}

const orchestrationColumns = `id, migration_type, status, started_at, completed_at,
	progress_percentage::float8 AS progress_percentage, total_entities, completed_entities, error_count,
	configuration, created_by, created_at, updated_at`

// CreateOrchestration inserts an orchestration in status pending; re-creating the same id is a
// no-op returning the stored row (workflow activities are retried).
func (s *Store) CreateOrchestration(ctx context.Context, o Orchestration) (Orchestration, error) {
	if len(o.Configuration) == 0 {
		o.Configuration = json.RawMessage(`{}`)
	}
	if _, err := s.q.Exec(ctx, `INSERT INTO migration_orchestrations
		(id, migration_type, status, total_entities, configuration, created_by)
		VALUES ($1, $2, 'pending', $3, $4, $5) ON CONFLICT (id) DO NOTHING`,
		o.ID, o.MigrationType, o.TotalEntities, o.Configuration, o.CreatedBy); err != nil {
		return Orchestration{}, fmt.Errorf("create orchestration %s: %w", o.ID, err)
	}
	return s.GetOrchestration(ctx, o.ID)
}

// GetOrchestration reads one orchestration.
func (s *Store) GetOrchestration(ctx context.Context, id uuid.UUID) (Orchestration, error) {
	rows, err := s.q.Query(ctx, `SELECT `+orchestrationColumns+` FROM migration_orchestrations WHERE id = $1`, id)
	if err != nil {
		return Orchestration{}, notFound(err, "orchestration", id)
	}
	o, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Orchestration])
	if err != nil {
		return Orchestration{}, notFound(err, "orchestration", id)
	}
	return o, nil
}

// ErrBadTransition is returned for a status change the seed's state diagram does not allow.
type ErrBadTransition struct {
	From, To model.OrchestrationStatus
}

func (e *ErrBadTransition) Error() string {
	return fmt.Sprintf("orchestration status %s → %s is not allowed", e.From, e.To)
}

// TransitionOrchestration moves the status along the seed's diagram, stamping started_at on
// entering running and completed_at on completed/failed. Moving to the current status is a no-op,
// so a retried activity succeeds.
func (s *Store) TransitionOrchestration(ctx context.Context, id uuid.UUID, to model.OrchestrationStatus) error {
	var from model.OrchestrationStatus
	if err := s.q.QueryRow(ctx, `SELECT status FROM migration_orchestrations WHERE id = $1 FOR UPDATE`, id).
		Scan(&from); err != nil {
		return notFound(err, "orchestration", id)
	}
	if from == to {
		return nil
	}
	if !from.CanTransition(to) {
		return &ErrBadTransition{From: from, To: to}
	}
	_, err := s.q.Exec(ctx, `UPDATE migration_orchestrations SET status = $2,
		started_at = CASE WHEN $2 = 'running' THEN coalesce(started_at, now()) ELSE started_at END,
		completed_at = CASE WHEN $2 IN ('completed', 'failed') THEN greatest(now(), started_at)
		                    WHEN $2 = 'running' THEN NULL ELSE completed_at END,
		updated_at = now() WHERE id = $1`, id, to)
	if err != nil {
		return fmt.Errorf("orchestration %s %s → %s: %w", id, from, to, err)
	}
	return nil
}

// SetOrchestrationProgress records the counters the workflow keeps true.
func (s *Store) SetOrchestrationProgress(ctx context.Context, id uuid.UUID, total, completed int32, errorCount int64) error {
	tag, err := s.q.Exec(ctx, `UPDATE migration_orchestrations SET total_entities = $2::int, completed_entities = $3::int,
		error_count = $4,
		progress_percentage = CASE WHEN $2::int = 0 THEN 0 ELSE round(100.0 * $3::int / $2::int, 2) END, updated_at = now()
		WHERE id = $1`, id, total, completed, errorCount)
	if err != nil {
		return fmt.Errorf("orchestration %s progress: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("orchestration %s progress: %w", id, ErrNotFound)
	}
	return nil
}

// EntityStatus is an entity_migration_status row.
type EntityStatus struct {
	ID                  uuid.UUID          `db:"id"`
	MigrationID         uuid.UUID          `db:"migration_id"`
	EntityName          string             `db:"entity_name"`
	TargetEntity        string             `db:"target_entity"`
	DependencyOrder     int32              `db:"dependency_order"`
	Status              model.EntityStatus `db:"status"`
	RecordsTotal        int64              `db:"records_total"`
	RecordsProcessed    int64              `db:"records_processed"`
	RecordsFailed       int64              `db:"records_failed"`
	StartedAt           *time.Time         `db:"started_at"`
	CompletedAt         *time.Time         `db:"completed_at"`
	LastProcessedID     *string            `db:"last_processed_id"`
	BatchSize           int32              `db:"batch_size"`
	ThroughputPerSecond float64            `db:"throughput_per_second"`
}

const entityColumns = `id, migration_id, entity_name, target_entity, dependency_order, status, records_total,
	records_processed, records_failed, started_at, completed_at, last_processed_id, batch_size,
	throughput_per_second`

// UpsertEntityStatus registers an entity of a migration (keyed by migration and entity name) and
// returns the stored row; an existing row keeps its progress.
func (s *Store) UpsertEntityStatus(ctx context.Context, e EntityStatus) (EntityStatus, error) {
	if e.ID == uuid.Nil {
		e.ID = uuid.New()
	}
	if e.Status == "" {
		e.Status = model.EntityPending
	}
	rows, err := s.q.Query(ctx, `INSERT INTO entity_migration_status
		(id, migration_id, entity_name, target_entity, dependency_order, status, records_total, batch_size)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (migration_id, entity_name) DO UPDATE SET target_entity = EXCLUDED.target_entity
		RETURNING `+entityColumns,
		e.ID, e.MigrationID, e.EntityName, e.TargetEntity, e.DependencyOrder, e.Status, e.RecordsTotal, e.BatchSize)
	if err != nil {
		return EntityStatus{}, fmt.Errorf("register entity %s: %w", e.EntityName, err)
	}
	out, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[EntityStatus])
	if err != nil {
		return EntityStatus{}, fmt.Errorf("register entity %s: %w", e.EntityName, err)
	}
	return out, nil
}

// GetEntityStatus reads an entity's row by migration and name.
func (s *Store) GetEntityStatus(ctx context.Context, migrationID uuid.UUID, entity string) (EntityStatus, error) {
	rows, err := s.q.Query(ctx, `SELECT `+entityColumns+` FROM entity_migration_status
		WHERE migration_id = $1 AND entity_name = $2`, migrationID, entity)
	if err != nil {
		return EntityStatus{}, notFound(err, "entity", entity)
	}
	e, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[EntityStatus])
	if err != nil {
		return EntityStatus{}, notFound(err, "entity", entity)
	}
	return e, nil
}

// ListEntityStatus returns a migration's entities in dependency order.
func (s *Store) ListEntityStatus(ctx context.Context, migrationID uuid.UUID) ([]EntityStatus, error) {
	rows, err := s.q.Query(ctx, `SELECT `+entityColumns+` FROM entity_migration_status
		WHERE migration_id = $1 ORDER BY dependency_order`, migrationID)
	if err != nil {
		return nil, fmt.Errorf("list entities of %s: %w", migrationID, err)
	}
	es, err := pgx.CollectRows(rows, pgx.RowToStructByName[EntityStatus])
	if err != nil {
		return nil, fmt.Errorf("list entities of %s: %w", migrationID, err)
	}
	return es, nil
}

// SetEntityStatus moves an entity's status, stamping started_at/completed_at.
func (s *Store) SetEntityStatus(ctx context.Context, id uuid.UUID, status model.EntityStatus) error {
	tag, err := s.q.Exec(ctx, `UPDATE entity_migration_status SET status = $2,
		started_at = CASE WHEN $2 = 'running' THEN coalesce(started_at, now()) ELSE started_at END,
		completed_at = CASE WHEN $2 IN ('completed', 'failed', 'skipped') THEN greatest(now(), started_at)
		                    WHEN $2 = 'running' THEN NULL ELSE completed_at END
		WHERE id = $1`, id, status)
	if err != nil {
		return fmt.Errorf("entity %s status %s: %w", id, status, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("entity %s status: %w", id, ErrNotFound)
	}
	return nil
}

// EntityProgress is an entity's counters after a batch.
type EntityProgress struct {
	RecordsTotal, RecordsProcessed, RecordsFailed int64
	LastProcessedID                               string
	ThroughputPerSecond                           float64
}

// SetEntityProgress records an entity's counters; records_total never falls below what was
// processed, keeping the seed's rule processed + failed <= total.
func (s *Store) SetEntityProgress(ctx context.Context, id uuid.UUID, p EntityProgress) error {
	tag, err := s.q.Exec(ctx, `UPDATE entity_migration_status SET
		records_total = greatest($2::bigint, $3::bigint + $4::bigint), records_processed = $3::bigint, records_failed = $4::bigint,
		last_processed_id = nullif($5, ''), throughput_per_second = $6
		WHERE id = $1`, id, p.RecordsTotal, p.RecordsProcessed, p.RecordsFailed, p.LastProcessedID, p.ThroughputPerSecond)
	if err != nil {
		return fmt.Errorf("entity %s progress: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("entity %s progress: %w", id, ErrNotFound)
	}
	return nil
}

// Checkpoint is a migration_checkpoints row.
type Checkpoint struct {
	ID               uuid.UUID            `db:"id"`
	MigrationID      uuid.UUID            `db:"migration_id"`
	EntityName       string               `db:"entity_name"`
	CheckpointType   model.CheckpointType `db:"checkpoint_type"`
	BatchNumber      int64                `db:"batch_number"`
	LastSourceID     *string              `db:"last_source_id"`
	RecordsProcessed int64                `db:"records_processed"`
	SystemState      json.RawMessage      `db:"system_state"`
	CreatedAt        time.Time            `db:"created_at"`
	IsResumable      bool                 `db:"is_resumable"`
}

const checkpointColumns = `id, migration_id, entity_name, checkpoint_type, batch_number, last_source_id,
	records_processed, system_state, created_at, is_resumable`

// RecordCheckpoint inserts a checkpoint; the same (entity, type, batch) twice keeps the first,
// so a re-run batch is a no-op. It reports whether a new row was written.
func (s *Store) RecordCheckpoint(ctx context.Context, c Checkpoint) (bool, error) {
	if c.ID == uuid.Nil {
		c.ID = uuid.New()
	}
	if len(c.SystemState) == 0 {
		c.SystemState = json.RawMessage(`{}`)
	}
	tag, err := s.q.Exec(ctx, `INSERT INTO migration_checkpoints
		(id, migration_id, entity_name, checkpoint_type, batch_number, last_source_id, records_processed,
		 system_state, is_resumable)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (migration_id, entity_name, checkpoint_type, batch_number) DO NOTHING`,
		c.ID, c.MigrationID, c.EntityName, c.CheckpointType, c.BatchNumber, c.LastSourceID, c.RecordsProcessed,
		c.SystemState, c.IsResumable)
	if err != nil {
		return false, fmt.Errorf("checkpoint %s batch %d: %w", c.EntityName, c.BatchNumber, err)
	}
	return tag.RowsAffected() == 1, nil
}

// LatestCheckpoint returns the resumable checkpoint with the highest batch number of an entity.
func (s *Store) LatestCheckpoint(ctx context.Context, migrationID uuid.UUID, entity string) (Checkpoint, error) {
	rows, err := s.q.Query(ctx, `SELECT `+checkpointColumns+` FROM migration_checkpoints
		WHERE migration_id = $1 AND entity_name = $2 AND is_resumable
		ORDER BY batch_number DESC, created_at DESC LIMIT 1`, migrationID, entity)
	if err != nil {
		return Checkpoint{}, notFound(err, "checkpoint of", entity)
	}
	c, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Checkpoint])
	if err != nil {
		return Checkpoint{}, notFound(err, "checkpoint of", entity)
	}
	return c, nil
}

// Mapping is a migration_mappings row: a legacy id and the UUID it became.
type Mapping struct {
	ID               uuid.UUID       `db:"id"`
	MigrationID      uuid.UUID       `db:"migration_id"`
	SourceTable      string          `db:"source_table"`
	SourceID         string          `db:"source_id"`
	DestinationTable string          `db:"destination_table"`
	DestinationID    uuid.UUID       `db:"destination_id"`
	EntityType       string          `db:"entity_type"`
	Metadata         json.RawMessage `db:"mapping_metadata"`
	CreatedAt        time.Time       `db:"created_at"`
	IsActive         bool            `db:"is_active"`
}

// RecordMappings inserts mappings, ignoring those already recorded for the same source row.
func (s *Store) RecordMappings(ctx context.Context, ms []Mapping) error {
	b := &pgx.Batch{}
	for _, m := range ms {
		if m.ID == uuid.Nil {
			m.ID = uuid.New()
		}
		b.Queue(`INSERT INTO migration_mappings
			(id, migration_id, source_table, source_id, destination_table, destination_id, entity_type, mapping_metadata)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (migration_id, source_table, (length(source_id)), source_id) DO NOTHING`,
			m.ID, m.MigrationID, m.SourceTable, m.SourceID, m.DestinationTable, m.DestinationID, m.EntityType, m.Metadata)
	}
	if err := s.q.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("record %d mappings: %w", len(ms), err)
	}
	return nil
}

// LookupMapping finds the UUID a legacy row became.
func (s *Store) LookupMapping(ctx context.Context, migrationID uuid.UUID, sourceTable, sourceID string) (Mapping, error) {
	rows, err := s.q.Query(ctx, `SELECT id, migration_id, source_table, source_id, destination_table,
		destination_id, entity_type, mapping_metadata, created_at, is_active FROM migration_mappings
		WHERE migration_id = $1 AND source_table = $2 AND length(source_id) = length($3) AND source_id = $3`, migrationID, sourceTable, sourceID)
	if err != nil {
		return Mapping{}, notFound(err, "mapping", sourceTable+"/"+sourceID)
	}
	m, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Mapping])
	if err != nil {
		return Mapping{}, notFound(err, "mapping", sourceTable+"/"+sourceID)
	}
	return m, nil
}

// Batch is a batch_processing_status row.
type Batch struct {
	ID                   uuid.UUID         `db:"id"`
	EntityStatusID       uuid.UUID         `db:"entity_status_id"`
	BatchNumber          int64             `db:"batch_number"`
	BatchSize            int32             `db:"batch_size"`
	Status               model.BatchStatus `db:"status"`
	RecordsSuccessful    int32             `db:"records_successful"`
	RecordsFailed        int32             `db:"records_failed"`
	StartedAt            *time.Time        `db:"started_at"`
	CompletedAt          *time.Time        `db:"completed_at"`
	ProcessingDurationMS *int64            `db:"processing_duration_ms"`
	RetryCount           int32             `db:"retry_count"`
	ErrorSummary         *string           `db:"error_summary"`
}

const batchColumns = `id, entity_status_id, batch_number, batch_size, status, records_successful,
	records_failed, started_at, completed_at, processing_duration_ms, retry_count, error_summary`

// RecordBatch writes a batch's final status once; a re-run of the same batch number keeps the
// first row and reports false.
func (s *Store) RecordBatch(ctx context.Context, b Batch) (bool, error) {
	if b.ID == uuid.Nil {
		b.ID = uuid.New()
	}
	tag, err := s.q.Exec(ctx, `INSERT INTO batch_processing_status
		(id, entity_status_id, batch_number, batch_size, status, records_successful, records_failed, started_at,
		 completed_at, processing_duration_ms, retry_count, error_summary)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		ON CONFLICT (entity_status_id, batch_number) DO NOTHING`,
		b.ID, b.EntityStatusID, b.BatchNumber, b.BatchSize, b.Status, b.RecordsSuccessful, b.RecordsFailed,
		b.StartedAt, b.CompletedAt, b.ProcessingDurationMS, b.RetryCount, b.ErrorSummary)
	if err != nil {
		return false, fmt.Errorf("record batch %d: %w", b.BatchNumber, err)
	}
	return tag.RowsAffected() == 1, nil
}

// ListBatches returns an entity's batches in order.
func (s *Store) ListBatches(ctx context.Context, entityStatusID uuid.UUID) ([]Batch, error) {
	rows, err := s.q.Query(ctx, `SELECT `+batchColumns+` FROM batch_processing_status
		WHERE entity_status_id = $1 ORDER BY batch_number`, entityStatusID)
	if err != nil {
		return nil, fmt.Errorf("list batches of %s: %w", entityStatusID, err)
	}
	bs, err := pgx.CollectRows(rows, pgx.RowToStructByName[Batch])
	if err != nil {
		return nil, fmt.Errorf("list batches of %s: %w", entityStatusID, err)
	}
	return bs, nil
}

// MigrationError is a migration_errors row.
type MigrationError struct {
	ID              uuid.UUID       `db:"id"`
	MigrationID     uuid.UUID       `db:"migration_id"`
	EntityStatusID  *uuid.UUID      `db:"entity_status_id"`
	BatchID         *uuid.UUID      `db:"batch_id"`
	ErrorType       model.ErrorType `db:"error_type"`
	ErrorCode       string          `db:"error_code"`
	ErrorMessage    string          `db:"error_message"`
	SourceRecordID  *string         `db:"source_record_id"`
	SourceData      json.RawMessage `db:"source_data"`
	Context         json.RawMessage `db:"context"`
	StackTrace      *string         `db:"stack_trace"`
	OccurredAt      time.Time       `db:"occurred_at"`
	IsResolved      bool            `db:"is_resolved"`
	ResolutionNotes *string         `db:"resolution_notes"`
}

const errorColumns = `id, migration_id, entity_status_id, batch_id, error_type, error_code, error_message,
	source_record_id, source_data, context, stack_trace, occurred_at, is_resolved, resolution_notes`

// RecordError inserts an error; the same unresolved (entity, record, code) is recorded once.
// It reports whether a new row was written.
func (s *Store) RecordError(ctx context.Context, e MigrationError) (bool, error) {
	if e.ID == uuid.Nil {
		e.ID = uuid.New()
	}
	if e.ErrorType == "" {
		e.ErrorType = model.ErrUnknown
	}
	if len(e.Context) == 0 {
		e.Context = json.RawMessage(`{}`)
	}
	tag, err := s.q.Exec(ctx, `INSERT INTO migration_errors
		(id, migration_id, entity_status_id, batch_id, error_type, error_code, error_message, source_record_id,
		 source_data, context, stack_trace)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		ON CONFLICT (entity_status_id, source_record_id, error_code)
			WHERE source_record_id IS NOT NULL AND NOT is_resolved DO NOTHING`,
		e.ID, e.MigrationID, e.EntityStatusID, e.BatchID, e.ErrorType, e.ErrorCode, e.ErrorMessage,
		e.SourceRecordID, e.SourceData, e.Context, e.StackTrace)
	if err != nil {
		return false, fmt.Errorf("record %s error: %w", e.ErrorType, err)
	}
	return tag.RowsAffected() == 1, nil
}

// ListErrors returns a migration's errors, oldest first; unresolvedOnly filters resolved ones out.
func (s *Store) ListErrors(ctx context.Context, migrationID uuid.UUID, unresolvedOnly bool) ([]MigrationError, error) {
	rows, err := s.q.Query(ctx, `SELECT `+errorColumns+` FROM migration_errors
		WHERE migration_id = $1 AND (NOT $2 OR NOT is_resolved) ORDER BY occurred_at, id`, migrationID, unresolvedOnly)
	if err != nil {
		return nil, fmt.Errorf("list errors of %s: %w", migrationID, err)
	}
	es, err := pgx.CollectRows(rows, pgx.RowToStructByName[MigrationError])
	if err != nil {
		return nil, fmt.Errorf("list errors of %s: %w", migrationID, err)
	}
	return es, nil
}

// ResolveError marks an error handled, with how.
func (s *Store) ResolveError(ctx context.Context, id uuid.UUID, notes string) error {
	tag, err := s.q.Exec(ctx, `UPDATE migration_errors SET is_resolved = true, resolution_notes = $2 WHERE id = $1`, id, notes)
	if err != nil {
		return fmt.Errorf("resolve error %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("resolve error %s: %w", id, ErrNotFound)
	}
	return nil
}

// SchemaOp is a schema_change_operations row.
type SchemaOp struct {
	ID                uuid.UUID            `db:"id"`
	MigrationID       uuid.UUID            `db:"migration_id"`
	OperationType     model.SchemaOpType   `db:"operation_type"`
	TableName         string               `db:"table_name"`
	ColumnName        *string              `db:"column_name"`
	OperationSQL      string               `db:"operation_sql"`
	Status            model.SchemaOpStatus `db:"status"`
	ExecutedAt        *time.Time           `db:"executed_at"`
	RollbackSQL       string               `db:"rollback_sql"`
	BackupTableName   *string              `db:"backup_table_name"`
	RiskLevel         model.RiskLevel      `db:"risk_level"`
	ValidationResults json.RawMessage      `db:"validation_results"`
	ApprovedBy        *string              `db:"approved_by"`
	ApprovedAt        *time.Time           `db:"approved_at"`
	CreatedAt         time.Time            `db:"created_at"`
}

const schemaOpColumns = `id, migration_id, operation_type, table_name, column_name, operation_sql, status,
	executed_at, rollback_sql, backup_table_name, risk_level, validation_results, approved_by, approved_at, created_at`

// CreateSchemaOp records a planned operation (status pending); the same id twice is a no-op.
func (s *Store) CreateSchemaOp(ctx context.Context, op SchemaOp) error {
	if op.Status == "" {
		op.Status = model.OpPending
	}
	_, err := s.q.Exec(ctx, `INSERT INTO schema_change_operations
		(id, migration_id, operation_type, table_name, column_name, operation_sql, status, rollback_sql,
		 backup_table_name, risk_level, validation_results)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (id) DO NOTHING`,
		op.ID, op.MigrationID, op.OperationType, op.TableName, op.ColumnName, op.OperationSQL, op.Status,
		op.RollbackSQL, op.BackupTableName, op.RiskLevel, op.ValidationResults)
	if err != nil {
		return fmt.Errorf("record schema op %s on %s: %w", op.OperationType, op.TableName, err)
	}
	return nil
}

// GetSchemaOp reads one operation.
func (s *Store) GetSchemaOp(ctx context.Context, id uuid.UUID) (SchemaOp, error) {
	rows, err := s.q.Query(ctx, `SELECT `+schemaOpColumns+` FROM schema_change_operations WHERE id = $1`, id)
	if err != nil {
		return SchemaOp{}, notFound(err, "schema operation", id)
	}
	op, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[SchemaOp])
	if err != nil {
		return SchemaOp{}, notFound(err, "schema operation", id)
	}
	return op, nil
}

// ListSchemaOps returns a migration's operations in creation order.
func (s *Store) ListSchemaOps(ctx context.Context, migrationID uuid.UUID) ([]SchemaOp, error) {
	rows, err := s.q.Query(ctx, `SELECT `+schemaOpColumns+` FROM schema_change_operations
		WHERE migration_id = $1 ORDER BY created_at, id`, migrationID)
	if err != nil {
		return nil, fmt.Errorf("list schema ops of %s: %w", migrationID, err)
	}
	ops, err := pgx.CollectRows(rows, pgx.RowToStructByName[SchemaOp])
	if err != nil {
		return nil, fmt.Errorf("list schema ops of %s: %w", migrationID, err)
	}
	return ops, nil
}

// SetSchemaOpStatus records an operation's outcome and validation results.
func (s *Store) SetSchemaOpStatus(ctx context.Context, id uuid.UUID, status model.SchemaOpStatus, validation json.RawMessage) error {
	tag, err := s.q.Exec(ctx, `UPDATE schema_change_operations SET status = $2,
		validation_results = coalesce($3, validation_results),
		executed_at = CASE WHEN $2 = 'pending' THEN executed_at ELSE coalesce(executed_at, now()) END
		WHERE id = $1`, id, status, validation)
	if err != nil {
		return fmt.Errorf("schema op %s status %s: %w", id, status, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("schema op %s status: %w", id, ErrNotFound)
	}
	return nil
}

// ApproveSchemaOp records who approved a (critical) operation.
func (s *Store) ApproveSchemaOp(ctx context.Context, id uuid.UUID, by string, at time.Time) error {
	tag, err := s.q.Exec(ctx, `UPDATE schema_change_operations SET approved_by = $2, approved_at = $3 WHERE id = $1`, id, by, at)
	if err != nil {
		return fmt.Errorf("approve schema op %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("approve schema op %s: %w", id, ErrNotFound)
	}
	return nil
}

// LegacyEntityMapping is a legacy_entity_mappings row: one entity's transformation rules.
type LegacyEntityMapping struct {
	ID                  uuid.UUID       `db:"id"`
	SourceEntity        string          `db:"source_entity"`
	DestinationEntity   string          `db:"destination_entity"`
	TransformationRules json.RawMessage `db:"transformation_rules"`
	DependencyEntities  []string        `db:"dependency_entities"`
	ValidationRules     json.RawMessage `db:"validation_rules"`
	IsActive            bool            `db:"is_active"`
	Version             string          `db:"version"`
	CreatedAt           time.Time       `db:"created_at"`
	UpdatedAt           time.Time       `db:"updated_at"`
}

// UpsertLegacyEntityMapping stores a mapping rule set keyed by (source, destination, version).
func (s *Store) UpsertLegacyEntityMapping(ctx context.Context, m LegacyEntityMapping) (LegacyEntityMapping, error) {
	if m.ID == uuid.Nil {
		m.ID = uuid.New()
	}
	if m.DependencyEntities == nil {
		m.DependencyEntities = []string{}
	}
	if len(m.ValidationRules) == 0 {
		m.ValidationRules = json.RawMessage(`{}`)
	}
	rows, err := s.q.Query(ctx, `INSERT INTO legacy_entity_mappings
		(id, source_entity, destination_entity, transformation_rules, dependency_entities, validation_rules,
		 is_active, version)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (source_entity, destination_entity, version) DO UPDATE SET
			transformation_rules = EXCLUDED.transformation_rules, dependency_entities = EXCLUDED.dependency_entities,
			validation_rules = EXCLUDED.validation_rules, is_active = EXCLUDED.is_active, updated_at = now()
		RETURNING id, source_entity, destination_entity, transformation_rules, dependency_entities,
			validation_rules, is_active, version, created_at, updated_at`,
		m.ID, m.SourceEntity, m.DestinationEntity, m.TransformationRules, m.DependencyEntities, m.ValidationRules,
		m.IsActive, m.Version)
	if err != nil {
		return LegacyEntityMapping{}, fmt.Errorf("store mapping rules %s → %s: %w", m.SourceEntity, m.DestinationEntity, err)
	}
	out, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[LegacyEntityMapping])
	if err != nil {
		return LegacyEntityMapping{}, fmt.Errorf("store mapping rules %s → %s: %w", m.SourceEntity, m.DestinationEntity, err)
	}
	return out, nil
}

// ValidationResult is a data_validation_results row.
type ValidationResult struct {
	ID                  uuid.UUID              `db:"id"`
	MigrationID         uuid.UUID              `db:"migration_id"`
	ValidationType      model.ValidationType   `db:"validation_type"`
	EntityName          string                 `db:"entity_name"`
	Status              model.ValidationStatus `db:"status"`
	RecordsValidated    int64                  `db:"records_validated"`
	IssuesFound         int64                  `db:"issues_found"`
	IssueDetails        json.RawMessage        `db:"issue_details"`
	ValidationCriteria  json.RawMessage        `db:"validation_criteria"`
	ExecutedAt          time.Time              `db:"executed_at"`
	ExecutionDurationMS int64                  `db:"execution_duration_ms"`
}

const validationColumns = `id, migration_id, validation_type, entity_name, status, records_validated,
	issues_found, issue_details, validation_criteria, executed_at, execution_duration_ms`

// RecordValidation inserts a validation result.
func (s *Store) RecordValidation(ctx context.Context, v ValidationResult) error {
	if v.ID == uuid.Nil {
		v.ID = uuid.New()
	}
	_, err := s.q.Exec(ctx, `INSERT INTO data_validation_results
		(id, migration_id, validation_type, entity_name, status, records_validated, issues_found, issue_details,
		 validation_criteria, execution_duration_ms)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING`,
		v.ID, v.MigrationID, v.ValidationType, v.EntityName, v.Status, v.RecordsValidated, v.IssuesFound,
		v.IssueDetails, v.ValidationCriteria, v.ExecutionDurationMS)
	if err != nil {
		return fmt.Errorf("record %s validation of %s: %w", v.ValidationType, v.EntityName, err)
	}
	return nil
}

// ListValidations returns a migration's validation results, oldest first.
func (s *Store) ListValidations(ctx context.Context, migrationID uuid.UUID) ([]ValidationResult, error) {
	rows, err := s.q.Query(ctx, `SELECT `+validationColumns+` FROM data_validation_results
		WHERE migration_id = $1 ORDER BY executed_at, id`, migrationID)
	if err != nil {
		return nil, fmt.Errorf("list validations of %s: %w", migrationID, err)
	}
	vs, err := pgx.CollectRows(rows, pgx.RowToStructByName[ValidationResult])
	if err != nil {
		return nil, fmt.Errorf("list validations of %s: %w", migrationID, err)
	}
	return vs, nil
}
