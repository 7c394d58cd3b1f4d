package dbcopy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// defaultPartitionsAhead is how many months past the current one get a partition when the
// spec's partition.ahead is not set.
const defaultPartitionsAhead = 3

// appColumn is a target table column as the application's INSERT meets it.
type appColumn struct {
	name, typ, category string
	notNull, hasDefault bool
	integer             bool
	sequence            *string
}

// checkAppInsert makes an entity's table ready for the application's own writes after cutover
// and proves it: sequences and identities are moved past the copied maximum, a partitioned
// table gets its partitions for the coming months and a DEFAULT partition, then one row is
// inserted the way the application would (no integer or UUID key, only the NOT NULL columns
// without a default, with the values of a copied row taken out first) in a transaction that is
// rolled back.
func (e *Engine) checkAppInsert(ctx context.Context, p *entityPlan) (store.ValidationResult, bool, error) {
	v := store.ValidationResult{ValidationType: model.ValidationBusinessRule, RecordsValidated: 1,
		ValidationCriteria: mustJSON(map[string]any{"check": "application insert",
			"rule": "after cutover the application inserts a row without key or defaulted columns (rolled back)"})}
	details := map[string]any{}
	if ent := p.ent; ent.Partition != nil {
		ahead := ent.Partition.Ahead
		if ahead == 0 {
			ahead = defaultPartitionsAhead
		}
		made, err := e.PartitionsAhead(ctx, ent.Name, time.Now(), ahead)
		if err != nil {
			return v, false, err
		}
		details["partitions_created"], details["months_ahead"] = made, ahead
	}
	cols, err := e.appColumns(ctx, p)
	if err != nil {
		return v, false, err
	}
	var moved []string
	for _, c := range cols {
		if c.sequence == nil || !c.integer {
			continue
		}
		if _, err := e.pool.Exec(ctx, fmt.Sprintf(`SELECT setval($1::regclass, greatest(coalesce(max(%[1]s), 0), 1),
			max(%[1]s) IS NOT NULL) FROM %[2]s`, spec.QuoteIdent(c.name), p.target), *c.sequence); err != nil {
			return v, false, fmt.Errorf("move %s past the copied maximum: %w", *c.sequence, err)
		}
		moved = append(moved, *c.sequence)
	}
	details["sequences_moved"] = moved
	var names, values []string
	for _, c := range cols {
		if !c.notNull || c.hasDefault {
			continue
		}
		if c.name == p.ent.Key.Target && c.integer {
			// The application leaves an integer key to the database (an identity or a sequence);
			// a UUID key without a default it makes itself, as ORMs do (appValue gives one).
			continue
		}
		names = append(names, spec.QuoteIdent(c.name))
		values = append(values, appValue(c))
	}
	stmt := fmt.Sprintf("INSERT INTO %s DEFAULT VALUES", p.target)
	if len(names) > 0 {
		stmt = fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s)", p.target, strings.Join(names, ", "), strings.Join(values, ", "))
	}
	details["insert"] = stmt
	errInsert := errors.New("rolled back")
	err = pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		// The model row is taken out first (its unique values become free, its references
		// stay valid; foreign keys deferred, all of it rolled back), then the application's row
		// goes in with its values.
		if _, err := tx.Exec(ctx, "SET LOCAL statement_timeout = 60000; SET CONSTRAINTS ALL DEFERRED"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf(`CREATE TEMP TABLE cutover_app_row ON COMMIT DROP AS
			SELECT * FROM %[1]s LIMIT 0`, p.target)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SAVEPOINT model_row"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf(`WITH d AS (DELETE FROM %[1]s WHERE (tableoid, ctid) =
			(SELECT tableoid, ctid FROM %[1]s LIMIT 1) RETURNING *) INSERT INTO cutover_app_row SELECT * FROM d`,
			p.target)); err != nil {
			if _, rerr := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT model_row"); rerr != nil {
				return rerr
			}
			if _, err := tx.Exec(ctx, fmt.Sprintf(`INSERT INTO cutover_app_row SELECT * FROM %s LIMIT 1`, p.target)); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, stmt); err != nil {
			return err
		}
		return errInsert
	})
	if !errors.Is(err, errInsert) {
		if ctx.Err() != nil {
			return v, false, err
		}
		v.IssuesFound = 1
		details["error"] = err.Error()
	}
	v.IssueDetails = mustJSON(details)
	return v, true, nil
}

// appValue is the value the application's row gives a NOT NULL column without a default: the
// model row's (a neutral value of the column's kind when the table is empty).
func appValue(c appColumn) string {
	zero := map[string]string{"S": "''", "N": "0", "B": "false", "D": "now()"}[c.category]
	if c.typ == "uuid" {
		zero = "gen_random_uuid()"
	}
	if zero == "" {
		zero = "NULL"
	}
	return fmt.Sprintf("coalesce((SELECT %s FROM cutover_app_row), %s)", spec.QuoteIdent(c.name), zero)
}

// appColumns reads an entity's target columns: nullability, defaults (identity and generated
// columns count) and the sequence behind an integer column.
func (e *Engine) appColumns(ctx context.Context, p *entityPlan) ([]appColumn, error) {
	rows, err := e.pool.Query(ctx, `SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typcategory::text,
		a.attnotnull, a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '',
		a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype),
		pg_get_serial_sequence($1, a.attname)
		FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
		WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`, p.target)
	if err != nil {
		return nil, fmt.Errorf("columns of %s: %w", p.ent.TargetTable, err)
	}
	cols, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (appColumn, error) {
		var c appColumn
		err := r.Scan(&c.name, &c.typ, &c.category, &c.notNull, &c.hasDefault, &c.integer, &c.sequence)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("columns of %s: %w", p.ent.TargetTable, err)
	}
	return cols, nil
}
