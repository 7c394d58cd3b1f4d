package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// ErrorAcceptance is a migration_error_acceptances row: an operator accepted the migration's
// quarantined rows as they were (QuarantinedRows of them), with a reason.
type ErrorAcceptance struct {
	ID              uuid.UUID `db:"id" json:"id"`
	MigrationID     uuid.UUID `db:"migration_id" json:"migration_id"`
	AcceptedBy      string    `db:"accepted_by" json:"accepted_by"`
	Reason          string    `db:"reason" json:"reason"`
	QuarantinedRows int64     `db:"quarantined_rows" json:"quarantined_rows"`
	AcceptedAt      time.Time `db:"accepted_at" json:"accepted_at"`
}

const acceptanceColumns = `id, migration_id, accepted_by, reason, quarantined_rows, accepted_at`

// RecordErrorAcceptance records an acceptance (a given ID twice keeps the first, so a retried
// activity records one).
func (s *Store) RecordErrorAcceptance(ctx context.Context, a ErrorAcceptance) (ErrorAcceptance, error) {
	if a.ID == uuid.Nil {
		a.ID = uuid.New()
	}
	if a.AcceptedBy == "" || a.Reason == "" {
		return a, errors.New("an acceptance of quarantined rows needs who accepts and a reason")
	}
	rows, err := s.q.Query(ctx, `WITH ins AS (
			INSERT INTO migration_error_acceptances (id, migration_id, accepted_by, reason, quarantined_rows)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING RETURNING `+acceptanceColumns+`)
		SELECT `+acceptanceColumns+` FROM ins
		UNION ALL SELECT `+acceptanceColumns+` FROM migration_error_acceptances WHERE id = $1`,
		a.ID, a.MigrationID, a.AcceptedBy, a.Reason, a.QuarantinedRows)
	if err != nil {
		return a, fmt.Errorf("record acceptance of %s: %w", a.MigrationID, err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByName[ErrorAcceptance])
	if err != nil || len(got) == 0 {
		return a, fmt.Errorf("record acceptance of %s: %w", a.MigrationID, errors.Join(err, ErrNotFound))
	}
	return got[0], nil
}

// ListErrorAcceptances returns a migration's acceptances, oldest first.
func (s *Store) ListErrorAcceptances(ctx context.Context, migrationID uuid.UUID) ([]ErrorAcceptance, error) {
	rows, err := s.q.Query(ctx, `SELECT `+acceptanceColumns+` FROM migration_error_acceptances
		WHERE migration_id = $1 ORDER BY accepted_at, id`, migrationID)
	if err != nil {
		return nil, fmt.Errorf("list acceptances of %s: %w", migrationID, err)
	}
	as, err := pgx.CollectRows(rows, pgx.RowToStructByName[ErrorAcceptance])
	if err != nil {
		return nil, fmt.Errorf("list acceptances of %s: %w", migrationID, err)
	}
	return as, nil
}
