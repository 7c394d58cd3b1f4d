package dbcopy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// BatchResult is what a batch did; a replayed (already committed) batch returns what was
// recorded when it committed.
type BatchResult struct {
	Entity      string `json:"entity"`
	BatchNumber int64  `json:"batch_number"`
	Rows        int    `json:"rows"`
	Loaded      int    `json:"loaded"`
	Inserted    int    `json:"inserted"` // loaded rows that were new (upserts may update)
	Failed      int    `json:"failed"`
	LastKey     string `json:"last_key,omitempty"`
	LastKeyType string `json:"last_key_type,omitempty"` // LastKey's storage class (BatchRequest.AfterType)
	LastMark    string `json:"last_mark,omitempty"`
	// LastMarkType is LastMark's storage class (BatchRequest.MarkType).
	LastMarkType string `json:"last_mark_type,omitempty"`
	MarkStart    string `json:"mark_start,omitempty"` // watermark high-water before the first batch
	// MarkStartType is MarkStart's storage class (BatchRequest.MarkType).
	MarkStartType string  `json:"mark_start_type,omitempty"`
	Done          bool    `json:"done"`
	Replayed      bool    `json:"replayed,omitempty"`
	Bytes         int64   `json:"bytes"`
	DurationMS    int64   `json:"duration_ms"`
	RowsPerSec    float64 `json:"rows_per_sec"`
	Empty         bool    `json:"empty,omitempty"` // nothing to read: no batch was recorded
}

// concurrentLockTimeout bounds a row-lock wait of a batch written beside others (CopyBatches
// then goes on with one writer).
var concurrentLockTimeout = 10 * time.Second

// testHookBeforeCommit runs after a batch's writes and before its commit (tests simulate a
// crash there).
var testHookBeforeCommit func(ctx context.Context, tx pgx.Tx) error

// CopyBatch copies one batch: read the page, transform, and in one transaction write the rows
// (COPY), their mappings (COPY), the errors of bad rows, the checkpoint, the batch status and
// the entity's counters. A batch number already committed is a no-op returning the recorded
// outcome.
func (e *Engine) CopyBatch(ctx context.Context, req dbmigrateapi.BatchRequest) (BatchResult, error) {
	p, err := e.plan(ctx, req.Entity)
	if err != nil {
		return BatchResult{}, err
	}
	pg, err := e.readPage(ctx, p, req)
	if err != nil {
		return BatchResult{}, err
	}
	res, err := e.writeBatch(ctx, p, req, pg, nil)
	if err != nil {
		e.recordBatchFailure(ctx, p, req, pg.n, err)
	}
	return res, err
}

// writeBatch writes one page in one transaction. turn, when set, is called after the rows and
// mappings are written and before the counters and checkpoint: it returns once every earlier
// batch committed, so concurrent writers still commit (and checkpoint) in batch order.
func (e *Engine) writeBatch(ctx context.Context, p *entityPlan, req dbmigrateapi.BatchRequest, pg page, turn func() error) (BatchResult, error) {
	res, err := e.writeBatchOnce(ctx, p, req, pg, turn)
	if errors.Is(err, errMappedMeanwhile) {
		// Rolled back. Every earlier batch has committed by now (turn returned): written again,
		// the batch finds their mappings and refuses the keys they loaded (duplicate_key), as
		// it would have had they committed before it started.
		return e.writeBatchOnce(ctx, p, req, pg, turn)
	}
	return res, err
}

func (e *Engine) writeBatchOnce(ctx context.Context, p *entityPlan, req dbmigrateapi.BatchRequest, pg page,
	turn func() error) (BatchResult, error) {
	start := time.Now()
	res := BatchResult{Entity: p.ent.Name, BatchNumber: req.BatchNumber, Rows: pg.n, Done: !pg.full,
		Bytes: pg.bytes, MarkStart: pg.markStart, LastKey: req.After,
		LastKeyType: req.AfterType, LastMark: req.Mark, LastMarkType: req.MarkType, MarkStartType: pg.markStartType}
	if pg.n == 0 {
		res.Empty = true
		return res, nil
	}
	last := pg.last
	res.LastKey, _ = p.rowKey(last)
	res.LastKeyType = p.keyClass(last)
	if p.markIdx >= 0 && req.Sync {
		res.LastMark, _ = keyText(last[p.markIdx])
		res.LastMarkType = p.markClass(last[p.markIdx])
	}

	tr := pg.prep
	if tr == nil {
		tr = e.transformed(p, pg)
	} else {
		start = start.Add(-tr.took) // the batch's duration includes its transformation
	}
	good, bad := tr.good, tr.bad
	if tr.err != nil {
		return res, fmt.Errorf("batch %s/%d: %w", p.ent.Name, req.BatchNumber, tr.err)
	}
	if err := e.ensurePartitions(ctx, p, good); err != nil {
		return res, err
	}

	conn, err := e.pool.Acquire(ctx)
	if err != nil {
		return res, fmt.Errorf("batch %s/%d: acquire: %w", p.ent.Name, req.BatchNumber, err)
	}
	defer conn.Release()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return res, fmt.Errorf("batch %s/%d: begin: %w", p.ent.Name, req.BatchNumber, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	// A batch's statements are bounded more tightly than the session's: a batch writes
	// thousands of rows, not millions.
	if _, err := tx.Exec(ctx, fmt.Sprintf(`SET LOCAL statement_timeout = %d`,
		min(batchStatementTimeout, spec.Bound(e.spec.Target.StatementTimeout, batchStatementTimeout)).Milliseconds())); err != nil {
		return res, fmt.Errorf("batch %s/%d: %w", p.ent.Name, req.BatchNumber, err)
	}
	if turn != nil {
		// Two writers can wait on each other's uncommitted rows (a duplicate unique value in
		// batches k and k+1) while k+1 waits for k's commit: a lock timeout breaks the tie.
		if _, err := tx.Exec(ctx, fmt.Sprintf(`SET LOCAL lock_timeout = '%dms'`, concurrentLockTimeout.Milliseconds())); err != nil {
			return res, fmt.Errorf("batch %s/%d: %w", p.ent.Name, req.BatchNumber, err)
		}
	}

	batchID := uuid.NewSHA1(p.statusID, fmt.Appendf(nil, "batch/%d", req.BatchNumber))
	tag, err := tx.Exec(ctx, `INSERT INTO batch_processing_status
		(id, entity_status_id, batch_number, batch_size, status, started_at)
		VALUES ($1, $2, $3, $4, 'processing', now()) ON CONFLICT (entity_status_id, batch_number)
		DO UPDATE SET status = 'processing', batch_size = EXCLUDED.batch_size, started_at = now()
		WHERE batch_processing_status.status = 'retrying'`,
		batchID, p.statusID, req.BatchNumber, pg.n)
	if err != nil {
		return res, fmt.Errorf("batch %s/%d: claim: %w", p.ent.Name, req.BatchNumber, err)
	}
	if tag.RowsAffected() == 0 {
		_ = tx.Rollback(ctx)
		return e.replayed(ctx, p, req, res)
	}

	if err := resolveBatchFailures(ctx, tx, batchID); err != nil {
		return res, fmt.Errorf("batch %s/%d: %w", p.ent.Name, req.BatchNumber, err)
	}

	good, orphans, err := e.checkParentsIn(ctx, tx, p, good, !req.Sync)
	if err != nil {
		return res, err
	}
	bad = append(bad, orphans...)

	block := e.mapIDs.next() // the id of a first load's block of mappings
	loaded, dbBad, inserted, err := e.writeRows(ctx, tx, p, good, req.Sync || e.upsertOnExisting(), block)
	if err != nil {
		return res, fmt.Errorf("batch %s/%d: write: %w", p.ent.Name, req.BatchNumber, err)
	}
	bad = append(bad, dbBad...)
	if err := e.refetchSources(ctx, p, bad); err != nil {
		return res, fmt.Errorf("batch %s/%d: source rows of errors: %w", p.ent.Name, req.BatchNumber, err)
	}
	if err := e.writeErrors(ctx, tx, p, &batchID, req.BatchNumber, bad); err != nil {
		return res, fmt.Errorf("batch %s/%d: errors: %w", p.ent.Name, req.BatchNumber, err)
	}

	res.Loaded, res.Inserted, res.Failed = len(loaded), inserted, len(bad)
	elapsed := time.Since(start)
	res.DurationMS = elapsed.Milliseconds()
	res.RowsPerSec = float64(pg.n) / max(elapsed.Seconds(), 1e-6)

	if turn != nil {
		if err := turn(); err != nil {
			return res, err
		}
		if !req.Sync && !e.upsertOnExisting() && len(loaded) > 0 {
			twice, err := e.mappedMeanwhile(ctx, tx, p, block)
			if err != nil {
				return res, fmt.Errorf("batch %s/%d: %w", p.ent.Name, req.BatchNumber, err)
			}
			if twice {
				return res, errMappedMeanwhile
			}
		}
	}
	// The counters are rows every batch of the entity updates: only after this batch's turn
	// (the batch before it committed), or concurrent writers would wait on each other.
	if err := e.countChanges(ctx, tx, p, loaded); err != nil {
		return res, fmt.Errorf("batch %s/%d: %w", p.ent.Name, req.BatchNumber, err)
	}
	var processed int64
	if err := tx.QueryRow(ctx, `UPDATE entity_migration_status SET
		status = CASE WHEN status = 'pending' THEN 'running' ELSE status END,
		started_at = coalesce(started_at, now()),
		records_processed = records_processed + $2, records_failed = records_failed + $3,
		records_total = greatest(records_total, records_processed + $2 + records_failed + $3),
		last_processed_id = $4, throughput_per_second = $5
		WHERE id = $1 RETURNING records_processed`,
		p.statusID, inserted, len(bad), res.LastKey, res.RowsPerSec).Scan(&processed); err != nil {
		return res, fmt.Errorf("batch %s/%d: entity progress: %w", p.ent.Name, req.BatchNumber, err)
	}
	state := map[string]any{"last_key": res.LastKey, "rows": res.Rows, "loaded": res.Loaded,
		"inserted": res.Inserted, "failed": res.Failed, "done": res.Done, "sync": req.Sync}
	if res.LastKeyType != "" {
		state["last_key_type"] = res.LastKeyType
	}
	if res.LastMark != "" {
		state["last_mark"] = res.LastMark
	}
	if res.MarkStart != "" {
		state["mark_start"] = res.MarkStart
	}
	if res.LastMarkType != "" {
		state["last_mark_type"] = res.LastMarkType
	}
	if res.MarkStartType != "" {
		state["mark_start_type"] = res.MarkStartType
	}
	if _, err := tx.Exec(ctx, `INSERT INTO migration_checkpoints
		(id, migration_id, entity_name, checkpoint_type, batch_number, last_source_id, records_processed, system_state)
		VALUES ($1, $2, $3, 'batch_completion', $4, $5, $6, $7)`,
		uuid.NewSHA1(batchID, []byte("checkpoint")), e.opt.MigrationID, p.ent.Name, req.BatchNumber,
		res.LastKey, processed, mustJSON(state)); err != nil {
		return res, fmt.Errorf("batch %s/%d: checkpoint: %w", p.ent.Name, req.BatchNumber, err)
	}
	var summary *string
	if len(bad) > 0 {
		s := summarize(bad)
		summary = &s
	}
	if _, err := tx.Exec(ctx, `UPDATE batch_processing_status SET status = 'completed',
		records_successful = $2, records_failed = $3, completed_at = greatest(now(), started_at),
		processing_duration_ms = $4, error_summary = $5 WHERE id = $1`,
		batchID, res.Loaded, res.Failed, res.DurationMS, summary); err != nil {
		return res, fmt.Errorf("batch %s/%d: status: %w", p.ent.Name, req.BatchNumber, err)
	}
	if res.Loaded+res.Failed != res.Rows {
		return res, fmt.Errorf("batch %s/%d: accounted for %d+%d of %d rows", p.ent.Name, req.BatchNumber, res.Loaded, res.Failed, res.Rows)
	}
	if testHookBeforeCommit != nil {
		if err := testHookBeforeCommit(ctx, tx); err != nil {
			return res, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return res, fmt.Errorf("batch %s/%d: commit: %w", p.ent.Name, req.BatchNumber, err)
	}
	return res, nil
}

// replayed returns what a committed batch recorded.
func (e *Engine) replayed(ctx context.Context, p *entityPlan, req dbmigrateapi.BatchRequest,
	res BatchResult) (BatchResult, error) {
	var state json.RawMessage
	var last *string
	err := e.pool.QueryRow(ctx, `SELECT b.batch_size, b.records_successful, b.records_failed, c.last_source_id, c.system_state
		FROM batch_processing_status b LEFT JOIN migration_checkpoints c
		  ON c.migration_id = $3 AND c.entity_name = $4 AND c.checkpoint_type = 'batch_completion' AND c.batch_number = b.batch_number
		WHERE b.entity_status_id = $1 AND b.batch_number = $2`,
		p.statusID, req.BatchNumber, e.opt.MigrationID, p.ent.Name).Scan(&res.Rows, &res.Loaded, &res.Failed, &last, &state)
	if err != nil {
		return res, fmt.Errorf("batch %s/%d: read committed outcome: %w", p.ent.Name, req.BatchNumber, err)
	}
	var st struct {
		Done        bool   `json:"done"`
		Inserted    int    `json:"inserted"`
		LastKeyTy   string `json:"last_key_type"`
		LastMark    string `json:"last_mark"`
		LastMarkTy  string `json:"last_mark_type"`
		MarkStart   string `json:"mark_start"`
		MarkStartTy string `json:"mark_start_type"`
	}
	_ = json.Unmarshal(state, &st)
	if last != nil {
		res.LastKey = *last
	}
	res.Done, res.Inserted, res.LastMark, res.MarkStart = st.Done, st.Inserted, st.LastMark, st.MarkStart
	res.LastKeyType, res.LastMarkType, res.MarkStartType = st.LastKeyTy, st.LastMarkTy, st.MarkStartTy
	res.Replayed = true
	res.DurationMS, res.RowsPerSec = 0, 0
	return res, nil
}
