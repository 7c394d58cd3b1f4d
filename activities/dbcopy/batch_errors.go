package dbcopy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/cutover/cutover/internal/model"
)

// failure is a row that was not loaded and why.
type failure struct {
	row prepared
	err *rowError
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

// codeDuplicateKey is the error code of rows whose key is not unique in the source.
const codeDuplicateKey = "duplicate_key"

// quarantinedRows is the SQL count of the source rows behind a set of migration_errors rows:
// one per key (a row may have several errors), one per error without a key, and every row of
// a duplicated key (one error carries them: context duplicate_rows).
const quarantinedRows = `(count(DISTINCT source_record_id) + count(*) FILTER (WHERE source_record_id IS NULL) +
	coalesce(sum((context->>'duplicate_rows')::bigint - 1) FILTER (WHERE error_code = 'duplicate_key'), 0))`

// splitDuplicates moves every row whose key occurs more than once among good and bad (one
// page) to bad as duplicate_key: a key the spec declares is not unique, and which of the rows
// is the right one is the operator's call, so none is loaded. writeErrors records one error
// per key, carrying every row.
func splitDuplicates(p *entityPlan, good []prepared, bad []failure) ([]prepared, []failure) {
	n := make(map[string]int, len(good)+len(bad))
	dup := false
	for i := range good {
		n[good[i].key]++
		dup = dup || n[good[i].key] > 1
	}
	for i := range bad {
		if k := bad[i].row.key; k != "" {
			n[k]++
			dup = dup || n[k] > 1
		}
	}
	if !dup {
		return good, bad
	}
	dupErr := func(k string) *rowError {
		return &rowError{Type: model.ErrConstraintViolation, Code: codeDuplicateKey, Column: p.keyColumns(),
			Message: fmt.Sprintf("key %s is in %d rows of %s: the spec's key must be unique (declare the table's real key, "+
				"a composite one if need be); none of them was loaded", k, n[k], p.ent.SourceTable)}
	}
	kept := good[:0:0]
	for _, r := range good {
		if n[r.key] > 1 {
			bad = append(bad, failure{r, dupErr(r.key)})
			continue
		}
		kept = append(kept, r)
	}
	for i := range bad {
		if k := bad[i].row.key; k != "" && n[k] > 1 && bad[i].err.Code != codeDuplicateKey {
			bad[i].err = dupErr(k)
		}
	}
	return kept, bad
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

// refetchSources gives failed rows whose source row was let go after encoding (prepare) that
// row back: read again by key, and told apart from other rows with the same key by encoding
// each the same way. A row changed or deleted since is left without (writeErrors says so).
func (e *Engine) refetchSources(ctx context.Context, p *entityPlan, bad []failure) error {
	var keys []any
	want := map[string][]int{} // key text → indexes in bad
	for i := range bad {
		if r := &bad[i].row; r.src == nil && r.srcKey != nil {
			k := r.key
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
		q := p.query()
		q.In = keys[start:min(start+chunk, len(keys))]
		rows, err := p.src.Read(ctx, q)
		if err != nil {
			return err
		}
		for _, row := range rows {
			k, _ := p.rowKey(row)
			clear(values)
			if _, rerr := e.transformInto(p, row, values, nil); rerr != nil {
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
	// Rows of one duplicated key share their key (the error's source_record_id): one error
	// carries them all.
	dups := map[string][]failure{}
	for _, f := range bad {
		if f.err.Code == codeDuplicateKey && f.row.key != "" {
			dups[f.row.key] = append(dups[f.row.key], f)
		}
	}
	b := &pgx.Batch{}
	for _, f := range bad {
		data := rowSnapshot(p, f.row)
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
		if same, ok := dups[f.row.key]; ok && f.err.Code == codeDuplicateKey {
			if same == nil {
				continue // recorded with the key's first row
			}
			const maxRows = 20
			var rows []any
			for _, d := range same[:min(len(same), maxRows)] {
				rows = append(rows, rowSnapshot(p, d.row))
			}
			data = map[string]any{"rows": rows}
			ctxJSON["duplicate_rows"] = len(same)
			dups[f.row.key] = nil
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

// rowSnapshot is a failed row's source values by column, JSON-safe (migration_errors.source_data).
func rowSnapshot(p *entityPlan, r prepared) map[string]any {
	data := map[string]any{}
	for i, c := range p.readCols {
		if i < len(r.src) {
			data[c] = snapshotValue(r.src[i])
		}
	}
	return data
}
