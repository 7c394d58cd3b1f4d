package dbcopy

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// copyIsolating COPYs rows (in keyOrder) into the entity's target under savepoints, splitting
// off the rows PostgreSQL refuses, as bisect does; it returns the rows loaded (in rows' order)
// and the rows refused. A COPY PostgreSQL refuses at a row names the tuple in its error's
// context ("COPY people, line 7"): that row is refused, the rows before it (which PostgreSQL
// took) are written again as one COPY and the rest as another, so a refused row costs about two
// statements and one batch's worth of inserts, where bisecting costs some 2·log2(n) statements
// and inserts about half again the batch (measured: 3,070 inserts for one refused row of 1,024
// against 2,047). An error that names no tuple (an AFTER trigger's, raised once the rows are
// in) is bisected.
func (e *Engine) copyIsolating(ctx context.Context, tx pgx.Tx, p *entityPlan, rows []prepared) ([]prepared, []failure, error) {
	order := keyOrder(p, rows)
	write := func(ctx context.Context, tx pgx.Tx, lo, hi int) error {
		return copyTuples(ctx, tx, p.copySQL, hi-lo, func(buf []byte, m *pgtype.Map, i int) ([]byte, error) {
			return appendRowTuple(buf, m, p, &rows[order[lo+i]])
		})
	}
	refused := map[int32]*pgconn.PgError{}
	line := func(err *pgconn.PgError) int { return copyLine(err, p.ent.TargetTable) }
	if err := isolate(ctx, tx, 0, len(order), write, line, func(i int, err *pgconn.PgError) { refused[order[i]] = err }); err != nil {
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

// isolate writes the items [lo, hi) of a sequence (write) under a savepoint; when PostgreSQL
// refuses the write for a row's data, the row line names (1-based within the write; 0: none
// named) is refused and the items before it and after it are written apart, or without a line
// the items are halved, until each refused row is alone. Errors that are not about a row abort.
func isolate(ctx context.Context, tx pgx.Tx, lo, hi int, write func(context.Context, pgx.Tx, int, int) error,
	line func(*pgconn.PgError) int, refuse func(int, *pgconn.PgError)) error {
	for lo < hi {
		sp, err := tx.Begin(ctx)
		if err != nil {
			return err
		}
		werr := write(ctx, sp, lo, hi)
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
		if hi-lo == 1 {
			refuse(lo, pgErr)
			return nil
		}
		if at := line(pgErr); at >= 1 && at <= hi-lo {
			refuse(lo+at-1, pgErr)
			if err := isolate(ctx, tx, lo, lo+at-1, write, line, refuse); err != nil {
				return err
			}
			lo += at
			continue
		}
		mid := lo + (hi-lo)/2
		if err := isolate(ctx, tx, lo, mid, write, line, refuse); err != nil {
			return err
		}
		lo = mid
	}
	return nil
}

// copyLine is the tuple (1-based) a COPY into table failed on, as PostgreSQL's error context
// names it ("COPY t, line N" or "COPY t, line N, column c"; binary COPY counts tuples as
// lines, and an index's error names the tuple being indexed); 0 when the context names none.
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
