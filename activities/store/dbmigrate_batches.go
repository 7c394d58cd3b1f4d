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
		b.Queue(`INSERT INTO migration_mapping_rows
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
