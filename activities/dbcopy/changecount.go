package dbcopy

import (
	"context"
	"fmt"
	"sort"

	"github.com/jackc/pgx/v5"

	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// ColumnChange is the contract's count of one column's changed values.
type ColumnChange = dbmigrateapi.ColumnChange

// countChanges adds the changes of the loaded rows to the entity's counts, in tx (the batch's
// transaction: a replayed batch adds nothing again).
func (e *Engine) countChanges(ctx context.Context, tx pgx.Tx, p *entityPlan, loaded []prepared) error {
	type k struct {
		col  int32
		kind change
	}
	n := map[k]int64{}
	for i := range loaded {
		for _, c := range loaded[i].changes {
			n[k(c)]++
		}
	}
	if len(n) == 0 {
		return nil
	}
	var cols, kinds []string
	var counts []int64
	for key, c := range n {
		cols, kinds, counts = append(cols, p.cols[key.col]), append(kinds, key.kind.String()), append(counts, c)
	}
	_, err := tx.Exec(ctx, `INSERT INTO transformation_counts (migration_id, entity_name, column_name, change, value_count)
		SELECT $1, $2, u.c, u.k, u.n FROM unnest($3::text[], $4::text[], $5::bigint[]) AS u(c, k, n)
		ON CONFLICT (migration_id, entity_name, column_name, change)
		DO UPDATE SET value_count = transformation_counts.value_count + EXCLUDED.value_count`,
		e.opt.MigrationID, p.ent.Name, cols, kinds, counts)
	if err != nil {
		return fmt.Errorf("count changed values: %w", err)
	}
	return nil
}

// ChangeCounts are the entity's counted changes, by column then change.
func (e *Engine) ChangeCounts(ctx context.Context, entity string) ([]ColumnChange, error) {
	rows, err := e.pool.Query(ctx, `SELECT column_name, change, value_count FROM transformation_counts
		WHERE migration_id = $1 AND entity_name = $2 AND value_count > 0`, e.opt.MigrationID, entity)
	if err != nil {
		return nil, fmt.Errorf("changed values of %s: %w", entity, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ColumnChange, error) {
		var c ColumnChange
		err := r.Scan(&c.Column, &c.Change, &c.Count)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("changed values of %s: %w", entity, err)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Column != out[j].Column {
			return out[i].Column < out[j].Column
		}
		return out[i].Change < out[j].Change
	})
	return out, nil
}
