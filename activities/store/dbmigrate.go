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

// Orchestration is a migration_orchestrations row: one migration run.
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

// ErrBadTransition is returned for a status change the orchestration's state diagram
// (internal/model) does not allow.
type ErrBadTransition struct {
	From, To model.OrchestrationStatus
}

func (e *ErrBadTransition) Error() string {
	return fmt.Sprintf("orchestration status %s → %s is not allowed", e.From, e.To)
}

// TransitionOrchestration moves the status along the state diagram, stamping started_at on entering
// running and completed_at on completed/failed. Moving to the current status is a no-op, so a
// retried activity succeeds.
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
// processed, keeping the rule processed + failed <= total.
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
