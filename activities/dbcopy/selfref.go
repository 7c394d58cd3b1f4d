package dbcopy

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// A self reference (Employee.ReportsTo → Employee, a reply's parent comment) is loaded in key
// order: a row may point at a row of a later batch (checkParentsIn lets it when the source has
// that row). Once the table is loaded, before its foreign key is added, rows whose parent did
// not arrive after all (quarantined itself) are taken out and quarantined as orphans, and
// so, in turn, are their own children.

// quarantineSelfOrphans removes the entity's rows whose self-referencing column col points at
// no row of the table, with their mappings, records them as orphan_fk errors with their source
// rows, and keeps the counters true; repeated until no row is left without its parent. It
// returns how many rows it took out.
func (e *Engine) quarantineSelfOrphans(ctx context.Context, p *entityPlan, col string) (int64, error) {
	q := spec.QuoteIdent
	key := q(p.ent.Key.Target)
	var total int64
	for {
		var n int64
		err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
			rs, err := tx.Query(ctx, fmt.Sprintf(`DELETE FROM %[1]s c WHERE c.%[2]s IS NOT NULL
				AND NOT EXISTS (SELECT 1 FROM %[1]s r WHERE r.%[3]s = c.%[2]s) RETURNING c.%[3]s::text`, p.target, q(col), key))
			if err != nil {
				return err
			}
			gone, err := pgx.CollectRows(rs, pgx.RowTo[string])
			if err != nil || len(gone) == 0 {
				return err
			}
			legacy, err := e.forgetSelfOrphans(ctx, tx, p, gone)
			if err != nil {
				return err
			}
			bad, err := e.orphanFailures(ctx, p, col, legacy)
			if err != nil {
				return err
			}
			if err := e.writeErrors(ctx, tx, p, nil, -1, bad); err != nil {
				return err
			}
			n = int64(len(gone))
			_, err = tx.Exec(ctx, `UPDATE entity_migration_status SET records_processed = greatest(records_processed - $2, 0),
				records_failed = records_failed + $2 WHERE id = $1`, p.statusID, n)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("quarantine rows of %s whose %s is not in the table: %w", p.ent.Name, col, err)
		}
		if n == 0 {
			return total, nil
		}
		total += n
		e.log.Info("self references without their row quarantined", "entity", p.ent.Name, "column", col, "rows", n)
	}
}

// orphanFailures are the orphan_fk failures of the rows with these legacy keys, with their
// source rows as they are now.
func (e *Engine) orphanFailures(ctx context.Context, p *entityPlan, col string, keys []string) ([]failure, error) {
	rowErr := func() *rowError {
		return &rowError{Type: model.ErrConstraintViolation, Code: "orphan_fk", Column: col,
			Message: fmt.Sprintf("references a %s row that is not in %s (its own parent was quarantined)", p.ent.Name, p.ent.TargetTable)}
	}
	src := map[string][]any{}
	const chunk = 500
	for start := 0; start < len(keys); start += chunk {
		var in []any
		for _, k := range keys[start:min(start+chunk, len(keys))] {
			if v, err := p.keyArg(k); err == nil {
				in = append(in, v)
			}
		}
		if len(in) == 0 {
			continue
		}
		q := p.query()
		q.In = in
		rows, err := p.src.Read(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			k, _ := p.rowKey(r)
			src[k] = r
		}
	}
	out := make([]failure, len(keys))
	for i, k := range keys {
		out[i] = failure{row: prepared{key: k, src: src[k]}, err: rowErr()}
	}
	return out, nil
}

// forgetSelfOrphans deletes the mappings of the rows with these target keys and returns their
// legacy keys.
func (e *Engine) forgetSelfOrphans(ctx context.Context, tx pgx.Tx, p *entityPlan, gone []string) ([]string, error) {
	if p.ent.Key.Mode == spec.KeyModeKeep {
		return e.forgetMappingKeys(ctx, tx, p, gone)
	}
	dests := make([]pgtype.UUID, 0, len(gone))
	for _, g := range gone {
		u, err := uuid.Parse(g)
		if err != nil {
			return nil, fmt.Errorf("target key %q is not a UUID: %w", g, err)
		}
		dests = append(dests, pgtype.UUID{Bytes: u, Valid: true})
	}
	return e.forgetMappingDests(ctx, tx, p, dests)
}
