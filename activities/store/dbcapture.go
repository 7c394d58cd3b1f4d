package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// CaptureRow is one change capture of a migration (ledger table change_capture).
type CaptureRow struct {
	SourceName     string
	Direction      string
	Method         string
	Position       string
	SlotName       *string
	ChangesApplied int64
	Drains         int64
	RowsPerSecond  float64
	InstalledAt    time.Time
	RemovedAt      *time.Time
}

// ListCaptures lists a migration's change captures, forward first.
func (s *Store) ListCaptures(ctx context.Context, migrationID uuid.UUID) ([]CaptureRow, error) {
	rows, err := s.q.Query(ctx, `SELECT source_name, direction, method, position, slot_name, changes_applied, drains,
		rows_per_second, installed_at, removed_at FROM change_capture WHERE migration_id = $1 ORDER BY direction, source_name`, migrationID)
	if err != nil {
		return nil, fmt.Errorf("list change captures: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (CaptureRow, error) {
		var c CaptureRow
		err := r.Scan(&c.SourceName, &c.Direction, &c.Method, &c.Position, &c.SlotName, &c.ChangesApplied, &c.Drains,
			&c.RowsPerSecond, &c.InstalledAt, &c.RemovedAt)
		return c, err
	})
}

// CutoverWindow is a measured cutover freeze (ledger table cutover_windows).
type CutoverWindow struct {
	StartedAt, CompletedAt time.Time
	Seconds                float64
	DrainedChanges         int64
	ValidatedRows          int64
	Passed                 bool
}

// ListCutoverWindows lists a migration's cutover windows, oldest first.
func (s *Store) ListCutoverWindows(ctx context.Context, migrationID uuid.UUID) ([]CutoverWindow, error) {
	rows, err := s.q.Query(ctx, `SELECT started_at, completed_at, seconds, drained_changes, validated_rows, passed
		FROM cutover_windows WHERE migration_id = $1 ORDER BY started_at`, migrationID)
	if err != nil {
		return nil, fmt.Errorf("list cutover windows: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (CutoverWindow, error) {
		var w CutoverWindow
		err := r.Scan(&w.StartedAt, &w.CompletedAt, &w.Seconds, &w.DrainedChanges, &w.ValidatedRows, &w.Passed)
		return w, err
	})
}
