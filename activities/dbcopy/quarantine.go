package dbcopy

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/cutover/cutover/activities/store"
)

// quarantine is a migration's quarantined rows and whether it may complete with them: never
// by default; when the spec's error budget holds them (at most max_rows rows, at most
// max_ratio of the source rows), or when an operator accepted them (cutover db
// accept-errors) and no row was quarantined since.
type quarantine struct {
	Rows       int64
	SourceRows int64
	Budget     bool                   // within the spec's error_budget
	Accepted   *store.ErrorAcceptance // the acceptance that covers them, if any
}

// allowed reports whether the migration may complete with its quarantine.
func (q quarantine) allowed() bool { return q.Rows == 0 || q.Budget || q.Accepted != nil }

// details describe the verdict for issue_details.
func (q quarantine) details(m map[string]any) {
	switch {
	case q.Rows == 0:
	case q.Accepted != nil:
		m["accepted_by"], m["accepted_reason"] = q.Accepted.AcceptedBy, q.Accepted.Reason
		m["accepted_rows"] = q.Accepted.QuarantinedRows
	case q.Budget:
		m["within_error_budget"] = true
	default:
		m["to_complete"] = "fix the rows and run cutover db retry-failed, or accept them: " +
			"cutover db accept-errors ID --reason TEXT (or set error_budget in the spec)"
	}
	if q.Rows > 0 {
		m["migration_quarantined_rows"] = q.Rows
	}
}

// quarantined reads the migration's quarantine and judges it.
func (e *Engine) quarantined(ctx context.Context) (quarantine, error) {
	var q quarantine
	if err := e.pool.QueryRow(ctx, `SELECT
		(SELECT coalesce(sum(n), 0) FROM (SELECT `+quarantinedRows+` AS n FROM migration_errors
			WHERE migration_id = $1 AND NOT is_resolved GROUP BY entity_status_id) q),
		(SELECT coalesce(sum(records_total), 0) FROM entity_migration_status WHERE migration_id = $1)`,
		e.opt.MigrationID).Scan(&q.Rows, &q.SourceRows); err != nil {
		return q, fmt.Errorf("quarantined rows: %w", err)
	}
	if q.Rows == 0 {
		return q, nil
	}
	if b := e.spec.ErrorBudget; b != nil {
		q.Budget = (b.MaxRows == 0 || q.Rows <= b.MaxRows) &&
			(b.MaxRatio == 0 || (q.SourceRows > 0 && float64(q.Rows) <= b.MaxRatio*float64(q.SourceRows)))
	}
	as, err := e.ledger.ListErrorAcceptances(ctx, e.opt.MigrationID)
	if err != nil {
		return q, err
	}
	if n := len(as); n > 0 && q.Rows <= as[n-1].QuarantinedRows {
		q.Accepted = &as[n-1]
	}
	return q, nil
}

// AcceptErrors records that by accepts the migration's quarantined rows as they are now, for
// reason: the migration may complete with them (its completeness checks say so, with the
// reason). id makes a retried call record one acceptance.
func (e *Engine) AcceptErrors(ctx context.Context, id uuid.UUID, by, reason string) (store.ErrorAcceptance, error) {
	q, err := e.quarantined(ctx)
	if err != nil {
		return store.ErrorAcceptance{}, err
	}
	return e.ledger.RecordErrorAcceptance(ctx, store.ErrorAcceptance{ID: id, MigrationID: e.opt.MigrationID,
		AcceptedBy: by, Reason: reason, QuarantinedRows: q.Rows})
}
