package dbcopy

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// maxGuidedSplits bounds the rows of one batch split off by the line their error names; after
// that the rest is bisected (each split re-sends the batch's remaining rows).
const maxGuidedSplits = 4

// copyIsolating COPYs rows into the entity's target under savepoints (each COPY in keyOrder),
// splitting off the rows PostgreSQL refuses as bisect does, and returns the rows loaded (in
// rows' order) and the rows refused. A row refused for its own data (a NOT NULL or CHECK
// constraint, a value the type cannot hold) is named by the error's context ("COPY people,
// line 7"): it is split off and the batch's other rows are written again as one COPY, where
// bisecting cost some 2·log2(n) statements and half again the batch's inserts. A unique or
// exclusion violation is bisected in read order: of two rows with one value the row read first
// loads, and the row PostgreSQL names is the later of the two in key order.
func (e *Engine) copyIsolating(ctx context.Context, tx pgx.Tx, p *entityPlan, rows []prepared) ([]prepared, []failure, error) {
	idx := make([]int32, len(rows))
	for i := range idx {
		idx[i] = int32(i)
	}
	refused := map[int32]*pgconn.PgError{}
	guided := 0
	if err := e.isolateCopy(ctx, tx, p, rows, idx, refused, &guided); err != nil {
		return nil, nil, err
	}
	if len(refused) == 0 {
		return rows, nil, nil
	}
	loaded := make([]prepared, 0, len(rows)-len(refused))
	var bad []failure
	for i := range rows {
		if err, ok := refused[int32(i)]; ok {
			bad = append(bad, failure{rows[i], pgRowError(err)})
			continue
		}
		loaded = append(loaded, rows[i])
	}
	return loaded, bad, nil
}

// isolateCopy writes the rows idx (indexes into rows, in read order) as one COPY in key order
// under a savepoint, and on a row-level refusal splits them as copyIsolating says.
func (e *Engine) isolateCopy(ctx context.Context, tx pgx.Tx, p *entityPlan, rows []prepared, idx []int32,
	refused map[int32]*pgconn.PgError, guided *int) error {
	if len(idx) == 0 {
		return nil
	}
	order := keyOrder(p, rows, idx)
	sp, err := tx.Begin(ctx)
	if err != nil {
		return err
	}
	werr := copyTuples(ctx, sp, p.copySQL, len(order), func(buf []byte, m *pgtype.Map, i int) ([]byte, error) {
		return appendRowTuple(buf, m, p, &rows[order[i]])
	})
	if werr == nil {
		return sp.Commit(ctx)
	}
	if err := sp.Rollback(ctx); err != nil {
		return errors.Join(werr, err)
	}
	var pgErr *pgconn.PgError
	if !errors.As(werr, &pgErr) || !rowLevel(pgErr.Code) {
		return werr
	}
	if len(idx) == 1 {
		refused[idx[0]] = pgErr
		return nil
	}
	if at := copyLine(pgErr, p.ent.TargetTable); at >= 1 && at <= len(order) && *guided < maxGuidedSplits &&
		pgErr.Code != "23505" && pgErr.Code != "23P01" {
		*guided++
		bad := order[at-1]
		refused[bad] = pgErr
		rest := slices.DeleteFunc(slices.Clone(idx), func(i int32) bool { return i == bad })
		return e.isolateCopy(ctx, tx, p, rows, rest, refused, guided)
	}
	mid := len(idx) / 2
	if err := e.isolateCopy(ctx, tx, p, rows, idx[:mid], refused, guided); err != nil {
		return err
	}
	return e.isolateCopy(ctx, tx, p, rows, idx[mid:], refused, guided)
}

// copyLine is the tuple (1-based) a COPY into table failed on, as PostgreSQL's error context
// names it ("COPY t, line N" or "COPY t, line N, column c"; binary COPY counts tuples as
// lines); 0 when the context names none.
func copyLine(err *pgconn.PgError, table string) int {
	prefix := "COPY " + table + ", line "
	ctxLines := strings.Split(err.Where, "\n")
	for i := len(ctxLines) - 1; i >= 0; i-- {
		rest, ok := strings.CutPrefix(ctxLines[i], prefix)
		if !ok {
			continue
		}
		digits := len(rest) - len(strings.TrimLeft(rest, "0123456789"))
		if tail := rest[digits:]; tail != "" && !strings.HasPrefix(tail, ", column ") {
			return 0
		}
		n, perr := strconv.Atoi(rest[:digits])
		if perr != nil {
			return 0
		}
		return n
	}
	return 0
}
