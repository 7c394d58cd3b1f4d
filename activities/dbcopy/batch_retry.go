package dbcopy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// batchStatementTimeout bounds each statement of a batch's transaction (the session's bound
// is for longer work).
var batchStatementTimeout = 5 * time.Minute

// recordBatchFailure notes, beside the rolled-back transaction, that a batch did not commit
// and will be tried again: its batch_processing_status row becomes 'retrying' (retry_count
// one higher, the error in error_summary) and the error a migration_errors row of the batch
// (timeout, connection_error or unknown, no record id), resolved when the batch commits. So a
// batch that waits, times out and waits again shows in the ledger and in the status. Best
// effort: with the target down nothing can be written, and the error still reaches Temporal.
func (e *Engine) recordBatchFailure(ctx context.Context, p *entityPlan, req dbmigrateapi.BatchRequest, rows int,
	cause error) {
	if cause == nil || errors.Is(cause, errStopped) || errors.Is(cause, context.Canceled) || errors.Is(cause, ErrSpec) {
		return
	}
	typ, code := model.ErrUnknown, pgCode(cause)
	switch {
	case isTimeout(cause):
		typ = model.ErrTimeout
	case isConnection(cause):
		typ = model.ErrConnection
		if code == "" {
			code = "connect"
		}
	case code != "" && rowLevel(code):
		return // a row error that escaped the bisection is the batch's own bug, not a retry
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	batchID := uuid.NewSHA1(p.statusID, fmt.Appendf(nil, "batch/%d", req.BatchNumber))
	msg := clip(cause.Error())
	err := pgx.BeginFunc(wctx, e.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(wctx, `INSERT INTO batch_processing_status
			(id, entity_status_id, batch_number, batch_size, status, started_at, retry_count, error_summary)
			VALUES ($1, $2, $3, $4, 'retrying', now(), 1, $5)
			ON CONFLICT (entity_status_id, batch_number) DO UPDATE SET status = 'retrying',
			  retry_count = batch_processing_status.retry_count + 1, error_summary = EXCLUDED.error_summary
			WHERE batch_processing_status.status <> 'completed'`,
			batchID, p.statusID, req.BatchNumber, rows, msg); err != nil {
			return err
		}
		_, err := tx.Exec(wctx, `INSERT INTO migration_errors
			(id, migration_id, entity_status_id, batch_id, error_type, error_code, error_message, context)
			SELECT $1, $2, $3, $4, $5, $6, $7, $8
			WHERE EXISTS (SELECT 1 FROM batch_processing_status WHERE id = $4 AND status = 'retrying')`,
			uuid.New(), e.opt.MigrationID, p.statusID, batchID, typ, code, msg,
			mustJSON(map[string]any{"entity": p.ent.Name, "batch_number": req.BatchNumber, "after": req.After,
				"will_retry": true}))
		return err
	})
	if err != nil {
		e.log.Warn("recording a failed batch", "entity", p.ent.Name, "batch", req.BatchNumber, "cause", msg, "err", err)
	}
}

// resolveBatchFailures resolves the batch-level errors of a batch that now commits.
func resolveBatchFailures(ctx context.Context, tx pgx.Tx, batchID uuid.UUID) error {
	_, err := tx.Exec(ctx, `UPDATE migration_errors SET is_resolved = true,
		resolution_notes = 'the batch committed on a later attempt'
		WHERE batch_id = $1 AND source_record_id IS NULL AND NOT is_resolved`, batchID)
	if err != nil {
		return fmt.Errorf("resolve earlier failures: %w", err)
	}
	return nil
}
