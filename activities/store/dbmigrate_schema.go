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

// TransformationCount is how many values of an entity's column one kind of transformation
// changed (transformation_counts).
type TransformationCount struct {
	EntityName string `db:"entity_name"`
	ColumnName string `db:"column_name"`
	Change     string `db:"change"`
	ValueCount int64  `db:"value_count"`
}

// ListTransformationCounts lists a migration's counted value changes by entity and column.
func (s *Store) ListTransformationCounts(ctx context.Context, migrationID uuid.UUID) ([]TransformationCount, error) {
	rows, err := s.q.Query(ctx, `SELECT entity_name, column_name, change, value_count FROM transformation_counts
		WHERE migration_id = $1 AND value_count > 0 ORDER BY entity_name, column_name, change`, migrationID)
	if err != nil {
		return nil, fmt.Errorf("list changed values of %s: %w", migrationID, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByName[TransformationCount])
	if err != nil {
		return nil, fmt.Errorf("list changed values of %s: %w", migrationID, err)
	}
	return out, nil
}
