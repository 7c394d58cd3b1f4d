package dbcopy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/cutover/cutover/activities/dbcopy/source"
	"github.com/cutover/cutover/activities/dbcopy/spec"
	"github.com/cutover/cutover/internal/model"
)

// BatchRequest asks for one batch of an entity: the rows after key After ("" = from the start).
type BatchRequest struct {
	Entity      string `json:"entity"`
	BatchNumber int64  `json:"batch_number"`
	After       string `json:"after,omitempty"`
	// Mark/Sync select a catch-up batch (incremental sync): rows whose watermark is after
	// (Mark, After), written as upserts. Without a watermark column, rows after After.
	Sync bool   `json:"sync,omitempty"`
	Mark string `json:"mark,omitempty"`
}

// BatchResult is what a batch did; a replayed (already committed) batch returns what was
// recorded when it committed.
type BatchResult struct {
	Entity      string  `json:"entity"`
	BatchNumber int64   `json:"batch_number"`
	Rows        int     `json:"rows"`
	Loaded      int     `json:"loaded"`
	Inserted    int     `json:"inserted"` // loaded rows that were new (upserts may update)
	Failed      int     `json:"failed"`
	LastKey     string  `json:"last_key,omitempty"`
	LastMark    string  `json:"last_mark,omitempty"`
	MarkStart   string  `json:"mark_start,omitempty"` // watermark high-water before the first batch
	Done        bool    `json:"done"`
	Replayed    bool    `json:"replayed,omitempty"`
	Bytes       int64   `json:"bytes"`
	DurationMS  int64   `json:"duration_ms"`
	RowsPerSec  float64 `json:"rows_per_sec"`
	Empty       bool    `json:"empty,omitempty"` // nothing to read: no batch was recorded
}

// failure is a row that was not loaded and why.
type failure struct {
	row prepared
	err *rowError
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
func (e *Engine) CopyBatch(ctx context.Context, req BatchRequest) (BatchResult, error) {
	p, err := e.plan(ctx, req.Entity)
	if err != nil {
		return BatchResult{}, err
	}
	pg, err := e.readPage(ctx, p, req)
	if err != nil {
		return BatchResult{}, err
	}
	return e.writeBatch(ctx, p, req, pg, nil)
}

// page is a batch read from the source.
type page struct {
	rows      [][]any // nil once prep holds them (n and last remain)
	n         int     // rows read
	last      []any   // the last row read
	full      bool    // the page hit the limit: more may follow
	bytes     int64
	markStart string
	err       error
	// prep is the page transformed and encoded ahead of its writer (CopyBatches' reader does
	// it, so writers spend their time on PostgreSQL); nil: the writer transforms.
	prep *transformed
}

// transformed is a page's rows transformed: the good ones encoded, the bad ones with why.
type transformed struct {
	good []prepared
	bad  []failure
	took time.Duration
	err  error
}

func (e *Engine) transformed(p *entityPlan, pg page) *transformed {
	start := time.Now()
	good, bad, err := e.transformPage(p, pg)
	return &transformed{good: good, bad: bad, took: time.Since(start), err: err}
}

// prepare transforms and encodes the page ahead of its writer and lets go of its source rows:
// an encoded row keeps only its source key, so a page in flight holds about half the memory
// (rows that fail later get their source row back by key: refetchSources).
func (e *Engine) prepare(p *entityPlan, pg *page) {
	pg.prep = e.transformed(p, *pg)
	for i := range pg.prep.good {
		r := &pg.prep.good[i]
		r.srcKey, r.src = r.src[0], nil
	}
	pg.rows = nil
}

func (e *Engine) readPage(ctx context.Context, p *entityPlan, req BatchRequest) (page, error) {
	limit := p.ent.BatchSize
	q := source.Query{Table: p.ent.SourceTable, Columns: p.readCols, Key: p.ent.Key.Source, Limit: limit}
	var pg page
	if req.After != "" {
		v, err := source.KeyValue(req.After, p.keyInt)
		if err != nil {
			return pg, fmt.Errorf("%w: %w", ErrSpec, err)
		}
		q.After = v
	}
	if req.Sync && p.markIdx >= 0 {
		q.Mark = p.ent.Incremental.Column
		if req.Mark != "" {
			q.AfterMark = e.markValue(p, req.Mark)
		}
	}
	if !req.Sync && req.After == "" && p.markIdx >= 0 {
		// The first batch records the watermark's high-water: catch-up passes start there.
		m, err := p.src.Max(ctx, p.ent.SourceTable, p.ent.Incremental.Column)
		if err != nil {
			return pg, err
		}
		pg.markStart, _ = keyText(m)
	}
	rows, err := p.src.Read(ctx, q)
	if err != nil {
		return pg, err
	}
	pg.full = len(rows) >= limit
	if pg.full && q.Mark == "" {
		// Keep every row of the last key in this batch: the next one starts after that key,
		// so a duplicated legacy key must not straddle two batches.
		last := rows[len(rows)-1][0]
		lastText, _ := keyText(last)
		cut := len(rows)
		for cut > 0 {
			if k, _ := keyText(rows[cut-1][0]); k != lastText {
				break
			}
			cut--
		}
		same, err := p.src.Read(ctx, source.Query{Table: q.Table, Columns: q.Columns, Key: q.Key, Equal: last})
		if err != nil {
			return pg, err
		}
		rows = append(rows[:cut], same...)
	}
	pg.rows, pg.n = rows, len(rows)
	if len(rows) > 0 {
		// A copy: a row is a window on an array shared by thousands, which it would keep.
		pg.last = slices.Clone(rows[len(rows)-1])
	}
	for _, r := range rows {
		pg.bytes += rowBytes(r)
	}
	return pg, nil
}

// markValue converts a checkpointed watermark to the type its column compares as.
func (e *Engine) markValue(p *entityPlan, mark string) any {
	if v, err := source.KeyValue(mark, p.markInt); err == nil {
		return v
	}
	return mark
}

func rowBytes(r []any) int64 {
	var n int64
	for _, v := range r {
		switch x := v.(type) {
		case string:
			n += int64(len(x))
		case []byte:
			n += int64(len(x))
		case nil:
		default:
			n += 8
		}
	}
	return n
}

// writeBatch writes one page in one transaction. turn, when set, is called after the rows and
// mappings are written and before the counters and checkpoint: it returns once every earlier
// batch committed, so concurrent writers still commit (and checkpoint) in batch order.
func (e *Engine) writeBatch(ctx context.Context, p *entityPlan, req BatchRequest, pg page, turn func() error) (BatchResult, error) {
	start := time.Now()
	res := BatchResult{Entity: p.ent.Name, BatchNumber: req.BatchNumber, Rows: pg.n, Done: !pg.full,
		Bytes: pg.bytes, MarkStart: pg.markStart, LastKey: req.After, LastMark: req.Mark}
	if pg.n == 0 {
		res.Empty = true
		return res, nil
	}
	last := pg.last
	res.LastKey, _ = keyText(last[0])
	if p.markIdx >= 0 && req.Sync {
		res.LastMark, _ = keyText(last[p.markIdx])
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
		VALUES ($1, $2, $3, $4, 'processing', now()) ON CONFLICT (entity_status_id, batch_number) DO NOTHING`,
		batchID, p.statusID, req.BatchNumber, pg.n)
	if err != nil {
		return res, fmt.Errorf("batch %s/%d: claim: %w", p.ent.Name, req.BatchNumber, err)
	}
	if tag.RowsAffected() == 0 {
		_ = tx.Rollback(ctx)
		return e.replayed(ctx, p, req, res)
	}

	good, orphans, err := e.checkParents(ctx, tx, p, good)
	if err != nil {
		return res, err
	}
	bad = append(bad, orphans...)

	var loaded []prepared
	var dbBad []failure
	inserted := 0
	if req.Sync {
		if err := e.createStage(ctx, tx, p); err != nil {
			return res, err
		}
		loaded, dbBad, err = bisect(ctx, tx, good, func(ctx context.Context, tx pgx.Tx, rows []prepared) error {
			n, err := e.upsertRows(ctx, tx, p, rows)
			inserted += n
			return err
		})
	} else {
		loaded, dbBad, err = bisect(ctx, tx, good, func(ctx context.Context, tx pgx.Tx, rows []prepared) error {
			return e.copyRows(ctx, tx, p, rows)
		})
		inserted = len(loaded)
	}
	if err != nil {
		return res, fmt.Errorf("batch %s/%d: write: %w", p.ent.Name, req.BatchNumber, err)
	}
	bad = append(bad, dbBad...)
	if err := e.writeMappings(ctx, tx, p, loaded, req.Sync); err != nil {
		return res, fmt.Errorf("batch %s/%d: mappings: %w", p.ent.Name, req.BatchNumber, err)
	}
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
	if res.LastMark != "" {
		state["last_mark"] = res.LastMark
	}
	if res.MarkStart != "" {
		state["mark_start"] = res.MarkStart
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
func (e *Engine) replayed(ctx context.Context, p *entityPlan, req BatchRequest, res BatchResult) (BatchResult, error) {
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
		Done      bool   `json:"done"`
		Inserted  int    `json:"inserted"`
		LastMark  string `json:"last_mark"`
		MarkStart string `json:"mark_start"`
	}
	_ = json.Unmarshal(state, &st)
	if last != nil {
		res.LastKey = *last
	}
	res.Done, res.Inserted, res.LastMark, res.MarkStart = st.Done, st.Inserted, st.LastMark, st.MarkStart
	res.Replayed = true
	res.DurationMS, res.RowsPerSec = 0, 0
	return res, nil
}

func summarize(bad []failure) string {
	counts := map[string]int{}
	var order []string
	for _, f := range bad {
		if counts[f.err.Code] == 0 {
			order = append(order, f.err.Code)
		}
		counts[f.err.Code]++
	}
	parts := make([]string, len(order))
	for i, c := range order {
		parts[i] = fmt.Sprintf("%s×%d", c, counts[c])
	}
	return strings.Join(parts, ", ")
}

// bisect writes rows; when PostgreSQL rejects a row, it splits the set under savepoints until
// each bad row is isolated, so the others still commit. Errors that are not about a row
// (connection, permissions) abort the batch.
func bisect(ctx context.Context, tx pgx.Tx, rows []prepared, write func(context.Context, pgx.Tx, []prepared) error) ([]prepared, []failure, error) {
	if len(rows) == 0 {
		return nil, nil, nil
	}
	sp, err := tx.Begin(ctx)
	if err != nil {
		return nil, nil, err
	}
	werr := write(ctx, sp, rows)
	if werr == nil {
		if err := sp.Commit(ctx); err != nil {
			return nil, nil, err
		}
		return rows, nil, nil
	}
	if err := sp.Rollback(ctx); err != nil {
		return nil, nil, errors.Join(werr, err)
	}
	var pgErr *pgconn.PgError
	if !errors.As(werr, &pgErr) || !rowLevel(pgErr.Code) {
		return nil, nil, werr
	}
	if len(rows) == 1 {
		return nil, []failure{{rows[0], pgRowError(pgErr)}}, nil
	}
	mid := len(rows) / 2
	okA, badA, err := bisect(ctx, tx, rows[:mid], write)
	if err != nil {
		return nil, nil, err
	}
	okB, badB, err := bisect(ctx, tx, rows[mid:], write)
	if err != nil {
		return nil, nil, err
	}
	return append(okA, okB...), append(badA, badB...), nil
}

// rowLevel reports whether a SQLSTATE is about the data of a row: data exceptions (22),
// integrity violations (23), an index row too large (54000).
func rowLevel(code string) bool {
	return strings.HasPrefix(code, "22") || strings.HasPrefix(code, "23") || code == "54000"
}

func pgRowError(e *pgconn.PgError) *rowError {
	typ := model.ErrDataValidation
	if strings.HasPrefix(e.Code, "23") {
		typ = model.ErrConstraintViolation
	}
	msg := e.Message
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return &rowError{Type: typ, Code: e.Code, Column: e.ColumnName, Message: msg}
}

// transformPage transforms a page's rows and encodes the good ones as binary COPY tuples in
// one buffer, in read order: encoding walks the source values in the order they were
// allocated (sending rows sorted by key from their values was measured at twice the encoding
// cost), and a bisected batch re-sends tuples without encoding them again.
func (e *Engine) transformPage(p *entityPlan, pg page) ([]prepared, []failure, error) {
	good := make([]prepared, 0, len(pg.rows))
	var bad []failure
	m := typeMaps.Get().(*pgtype.Map)
	defer typeMaps.Put(m)
	buf := make([]byte, 0, pg.bytes+int64(len(pg.rows)*(2+4*len(p.cols)+16)))
	ends := make([]int, 0, len(pg.rows))
	values := make([]any, len(p.cols))
	for _, r := range pg.rows {
		clear(values)
		pr, rerr := e.transformInto(p, r, values)
		pr.values = nil // reused for the next row
		if rerr != nil {
			bad = append(bad, failure{pr, rerr})
			continue
		}
		var err error
		if buf, err = appendTuple(buf, m, p.oids, values); err != nil {
			return nil, nil, fmt.Errorf("row %s: %w", pr.key, err)
		}
		ends = append(ends, len(buf))
		good = append(good, pr)
	}
	start := 0
	for i, end := range ends {
		good[i].tuple = buf[start:end:end]
		start = end
	}
	return good, bad, nil
}

// typeMaps are pgx type maps for the values the COPY encoder leaves to pgx (a map is not safe
// for concurrent use).
var typeMaps = sync.Pool{New: func() any { return pgtype.NewMap() }}

// appendRowTuple appends a row's COPY tuple: the one its batch encoded, or encoded now.
func appendRowTuple(buf []byte, m *pgtype.Map, p *entityPlan, r *prepared) ([]byte, error) {
	if r.tuple != nil {
		return append(buf, r.tuple...), nil
	}
	return appendTuple(buf, m, p.oids, r.values)
}

func (e *Engine) copyRows(ctx context.Context, tx pgx.Tx, p *entityPlan, rows []prepared) error {
	order := keyOrder(p, rows)
	return copyTuples(ctx, tx, p.copySQL, len(rows), func(buf []byte, m *pgtype.Map, i int) ([]byte, error) {
		return appendRowTuple(buf, m, p, &rows[order[i]])
	})
}

// keyOrder is the order to COPY rows in: by their UUID key when the key is a UUID. Random
// (UUIDv5) keys inserted in sorted order descend the primary key index along neighbouring
// pages, which costs PostgreSQL about a fifth less than scattered inserts (measured); ordered
// keys are already sorted and cost one pass to check.
func keyOrder(p *entityPlan, rows []prepared) []int32 {
	order := make([]int32, len(rows))
	for i := range order {
		order[i] = int32(i)
	}
	if p.ent.Key.Mode != spec.KeyModeUUID {
		return order
	}
	less := func(a, b int32) int { return bytes.Compare(rows[a].uuid[:], rows[b].uuid[:]) }
	if !slices.IsSortedFunc(order, less) {
		slices.SortStableFunc(order, less) // stable: of rows with one key, the first read wins, as before
	}
	return order
}

func stageName(p *entityPlan) string { return "cutover_stage_" + p.ent.Name }

func (e *Engine) createStage(ctx context.Context, tx pgx.Tx, p *entityPlan) error {
	_, err := tx.Exec(ctx, fmt.Sprintf(`CREATE TEMP TABLE IF NOT EXISTS %s (LIKE %s INCLUDING DEFAULTS) ON COMMIT DROP`,
		spec.QuoteIdent(stageName(p)), p.target))
	if err != nil {
		return fmt.Errorf("staging table for %s: %w", p.ent.Name, err)
	}
	return nil
}

// upsertRows writes rows through the staging table as INSERT … ON CONFLICT DO UPDATE and
// returns how many were new.
func (e *Engine) upsertRows(ctx context.Context, tx pgx.Tx, p *entityPlan, rows []prepared) (int, error) {
	stage := spec.QuoteIdent(stageName(p))
	if _, err := tx.Exec(ctx, "DELETE FROM pg_temp."+stage); err != nil {
		return 0, err
	}
	if err := copyTuples(ctx, tx, copyStatement(pgx.Identifier{"pg_temp", stageName(p)}, p.cols), len(rows),
		func(buf []byte, m *pgtype.Map, i int) ([]byte, error) {
			return appendRowTuple(buf, m, p, &rows[i])
		}); err != nil {
		return 0, err
	}
	cols := make([]string, len(p.cols))
	for i, c := range p.cols {
		cols[i] = spec.QuoteIdent(c)
	}
	conflict := []string{cols[0]}
	if p.partIdx > 0 {
		conflict = append(conflict, cols[p.partIdx])
	}
	var sets []string
	for i, c := range cols {
		if i == 0 || i == p.partIdx {
			continue
		}
		sets = append(sets, c+" = EXCLUDED."+c)
	}
	action := "DO NOTHING"
	if len(sets) > 0 {
		action = "DO UPDATE SET " + strings.Join(sets, ", ")
	}
	list := strings.Join(cols, ", ")
	// New rows are counted before the upsert: RETURNING xmax is not allowed on partitioned tables.
	match := make([]string, len(conflict))
	for i, c := range conflict {
		match[i] = "t." + c + " = s." + c
	}
	var n int
	if err := tx.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM pg_temp.%s s WHERE NOT EXISTS (SELECT 1 FROM %s t WHERE %s)`,
		stage, p.target, strings.Join(match, " AND "))).Scan(&n); err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf(`INSERT INTO %s (%s) SELECT %s FROM pg_temp.%s ON CONFLICT (%s) %s`,
		p.target, list, list, stage, strings.Join(conflict, ", "), action)); err != nil {
		return 0, err
	}
	return n, nil
}

// writeMappings records legacy id → UUID for the loaded rows: COPY for a first load (the batch
// claim makes them new), an idempotent insert for catch-up passes.
func (e *Engine) writeMappings(ctx context.Context, tx pgx.Tx, p *entityPlan, rows []prepared, upsert bool) error {
	if len(rows) == 0 {
		return nil
	}
	mid := e.opt.MigrationID
	table, dest, typ := p.ent.SourceTable, p.ent.TargetTable, p.ent.EntityType
	// Mapping ids only need to be unique (re-runs are caught by the batch claim or by the
	// (migration, table, source id) key); they are made as the rows are sent (mappingIDs).
	if !upsert {
		return copyTuples(ctx, tx, e.mappingCopySQL(), len(rows), func(buf []byte, _ *pgtype.Map, i int) ([]byte, error) {
			return appendMapping(buf, e.mapIDs.next(), mid, table, rows[i].key, dest, rows[i].uuid, typ), nil
		})
	}
	ids, keys, dests := make([]uuid.UUID, len(rows)), make([]string, len(rows)), make([]uuid.UUID, len(rows))
	for i := range rows {
		ids[i], keys[i], dests[i] = e.mapIDs.next(), rows[i].key, uuid.UUID(rows[i].uuid)
	}
	_, err := tx.Exec(ctx, `INSERT INTO migration_mappings
		(id, migration_id, source_table, source_id, destination_table, destination_id, entity_type)
		SELECT u.id, $1, $2, u.k, $3, u.d, $4 FROM unnest($5::uuid[], $6::text[], $7::uuid[]) AS u(id, k, d)
		ON CONFLICT (migration_id, source_table, (length(source_id)), source_id) DO NOTHING`,
		mid, table, dest, typ, ids, keys, dests)
	return err
}

// refetchSources gives failed rows whose source row was let go after encoding (prepare) that
// row back: read again by key, and told apart from other rows with the same key by encoding
// each the same way. A row changed or deleted since is left without (writeErrors says so).
func (e *Engine) refetchSources(ctx context.Context, p *entityPlan, bad []failure) error {
	var keys []any
	want := map[string][]int{} // key text → indexes in bad
	for i := range bad {
		if r := &bad[i].row; r.src == nil && r.srcKey != nil {
			k, _ := keyText(r.srcKey)
			if len(want[k]) == 0 {
				keys = append(keys, r.srcKey)
			}
			want[k] = append(want[k], i)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	m := typeMaps.Get().(*pgtype.Map)
	defer typeMaps.Put(m)
	values := make([]any, len(p.cols))
	var buf []byte
	const chunk = 500
	for start := 0; start < len(keys); start += chunk {
		rows, err := p.src.Read(ctx, source.Query{Table: p.ent.SourceTable, Columns: p.readCols, Key: p.ent.Key.Source,
			In: keys[start:min(start+chunk, len(keys))]})
		if err != nil {
			return err
		}
		for _, row := range rows {
			k, _ := keyText(row[0])
			clear(values)
			if _, rerr := e.transformInto(p, row, values); rerr != nil {
				continue
			}
			if buf, err = appendTuple(buf[:0], m, p.oids, values); err != nil {
				continue
			}
			for _, i := range want[k] {
				if r := &bad[i].row; r.src == nil && bytes.Equal(r.tuple, buf) {
					r.src = row
					break
				}
			}
		}
	}
	return nil
}

// writeErrors records the batch's bad rows (one row per record and code while unresolved).
func (e *Engine) writeErrors(ctx context.Context, tx pgx.Tx, p *entityPlan, batchID *uuid.UUID, n int64, bad []failure) error {
	if len(bad) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for _, f := range bad {
		data := map[string]any{}
		for i, c := range p.readCols {
			if i < len(f.row.src) {
				data[c] = snapshotValue(f.row.src[i])
			}
		}
		ctxJSON := map[string]any{"entity": p.ent.Name, "source_table": p.ent.SourceTable}
		if f.row.src == nil && f.row.srcKey != nil {
			ctxJSON["source_row"] = "not found again by its key: changed or deleted since it was read"
		}
		if n >= 0 {
			ctxJSON["batch_number"] = n
		} else {
			ctxJSON["retry"] = true
		}
		if f.err.Column != "" {
			ctxJSON["column"] = f.err.Column
		}
		var rec *string
		if f.row.key != "" {
			k := f.row.key
			rec = &k
		}
		b.Queue(`INSERT INTO migration_errors
			(id, migration_id, entity_status_id, batch_id, error_type, error_code, error_message, source_record_id, source_data, context)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
			ON CONFLICT (entity_status_id, source_record_id, error_code) WHERE source_record_id IS NOT NULL AND NOT is_resolved DO NOTHING`,
			uuid.New(), e.opt.MigrationID, p.statusID, batchID, f.err.Type, f.err.Code, f.err.Error(), rec,
			mustJSON(data), mustJSON(ctxJSON))
	}
	return tx.SendBatch(ctx, b).Close()
}

// checkParents splits rows whose references point at a parent row absent from the target
// (orphans: constraint_violation, not loaded).
func (e *Engine) checkParents(ctx context.Context, tx pgx.Tx, p *entityPlan, rows []prepared) ([]prepared, []failure, error) {
	type parentSet struct {
		ent  *spec.Entity
		vals []any
		seen map[string]bool
	}
	sets := map[string]*parentSet{}
	var names []string
	for _, r := range rows {
		for _, fk := range r.fks {
			s := sets[fk.parent.Name]
			if s == nil {
				s = &parentSet{ent: fk.parent, seen: map[string]bool{}}
				sets[fk.parent.Name] = s
				names = append(names, fk.parent.Name)
			}
			if k := canon(keyTypeOf(fk.parent), fk.value); !s.seen[k] {
				s.seen[k] = true
				s.vals = append(s.vals, fk.value)
			}
		}
	}
	if len(names) == 0 {
		return rows, nil, nil
	}
	present := map[string]map[string]bool{}
	for _, name := range names {
		s := sets[name]
		typ := keyTypeOf(s.ent)
		q := fmt.Sprintf(`SELECT %s FROM %s WHERE %s = ANY($1::%s[])`, spec.QuoteIdent(s.ent.Key.Target),
			spec.QuoteQualified(e.spec.Target.Schema, s.ent.TargetTable), spec.QuoteIdent(s.ent.Key.Target), typ)
		rs, err := tx.Query(ctx, q, s.vals)
		if err != nil {
			return nil, nil, fmt.Errorf("check parents in %s: %w", s.ent.TargetTable, err)
		}
		found := map[string]bool{}
		for rs.Next() {
			var v any
			if err := rs.Scan(&v); err != nil {
				rs.Close()
				return nil, nil, err
			}
			found[canon(typ, v)] = true
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return nil, nil, err
		}
		present[name] = found
	}
	var ok []prepared
	var bad []failure
	for _, r := range rows {
		var missing *fkValue
		for i := range r.fks {
			fk := r.fks[i]
			if !present[fk.parent.Name][canon(keyTypeOf(fk.parent), fk.value)] {
				missing = &r.fks[i]
				break
			}
		}
		if missing == nil {
			ok = append(ok, r)
			continue
		}
		col := ""
		for _, b := range p.build {
			if b.parent == missing.parent {
				col = b.column
			}
		}
		bad = append(bad, failure{r, &rowError{Type: model.ErrConstraintViolation, Code: "orphan_fk", Column: col,
			Message: fmt.Sprintf("references a %s row that is not in %s (missing or failed parent)", missing.parent.Name, missing.parent.TargetTable)}})
	}
	return ok, bad, nil
}

// keyTypeOf is the target type of an entity's key.
func keyTypeOf(ent *spec.Entity) string {
	if ent.Key.Mode == spec.KeyModeKeep {
		return ent.Key.Type
	}
	return "uuid"
}
