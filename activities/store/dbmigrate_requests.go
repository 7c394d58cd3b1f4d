package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// OperatorRequest is a migration_operator_requests row: something an operator asked a database
// migration for (Request: the signal, update or recovery action; Subject: the operation
// approved, the entity re-driven), who asked and why.
type OperatorRequest struct {
	ID          uuid.UUID `db:"id" json:"id"`
	MigrationID uuid.UUID `db:"migration_id" json:"migration_id"`
	Request     string    `db:"request" json:"request"`
	Subject     string    `db:"subject" json:"subject,omitempty"`
	RequestedBy string    `db:"requested_by" json:"requested_by,omitempty"`
	Reason      string    `db:"reason" json:"reason,omitempty"`
	RequestedAt time.Time `db:"requested_at" json:"requested_at"`
}

const requestColumns = `id, migration_id, request, subject, requested_by, reason, requested_at`

// RecordOperatorRequest records a request (a given ID twice keeps the first, so a retried
// activity records one). A migration without its orchestration row (it failed before its
// ledger was written) records nothing: ErrNotFound.
func (s *Store) RecordOperatorRequest(ctx context.Context, r OperatorRequest) error {
	tag, err := s.q.Exec(ctx, `INSERT INTO migration_operator_requests (`+requestColumns+`)
		SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS (SELECT 1 FROM migration_orchestrations WHERE id = $2)
		ON CONFLICT (id) DO NOTHING`,
		r.ID, r.MigrationID, r.Request, r.Subject, r.RequestedBy, r.Reason, r.RequestedAt)
	if err != nil {
		return fmt.Errorf("record %s request of %s: %w", r.Request, r.MigrationID, err)
	}
	if tag.RowsAffected() == 0 {
		var known bool
		if err := s.q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM migration_operator_requests WHERE id = $1)`,
			r.ID).Scan(&known); err != nil {
			return fmt.Errorf("record %s request of %s: %w", r.Request, r.MigrationID, err)
		}
		if !known {
			return fmt.Errorf("record %s request: migration %s: %w", r.Request, r.MigrationID, ErrNotFound)
		}
	}
	return nil
}

// ListOperatorRequests returns a migration's requests, oldest first.
func (s *Store) ListOperatorRequests(ctx context.Context, migrationID uuid.UUID) ([]OperatorRequest, error) {
	rows, err := s.q.Query(ctx, `SELECT `+requestColumns+` FROM migration_operator_requests
		WHERE migration_id = $1 ORDER BY requested_at, id`, migrationID)
	if err != nil {
		return nil, fmt.Errorf("list operator requests of %s: %w", migrationID, err)
	}
	rs, err := pgx.CollectRows(rows, pgx.RowToStructByName[OperatorRequest])
	if err != nil {
		return nil, fmt.Errorf("list operator requests of %s: %w", migrationID, err)
	}
	return rs, nil
}
