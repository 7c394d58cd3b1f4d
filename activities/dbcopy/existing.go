package dbcopy

import (
	"context"
	"fmt"
	"strings"

	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// mappedKey is the SQL condition joining a target row t to its mapping m.
func mappedKey(p *entityPlan) string {
	if p.ent.Key.Mode == spec.KeyModeKeep {
		return "t." + spec.QuoteIdent(p.ent.Key.Target) + "::text = m.source_id"
	}
	return "t." + spec.QuoteIdent(p.ent.Key.Target) + " = m.destination_id"
}

// foreignRows counts (up to limit) the rows of an entity's target table this migration did not
// write: no mapping of this migration has their key.
func (e *Engine) foreignRows(ctx context.Context, p *entityPlan, limit int) (int64, error) {
	var n int64
	err := e.pool.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM (SELECT 1 FROM %s t WHERE NOT EXISTS (
		SELECT 1 FROM migration_mappings m WHERE m.migration_id = $1 AND m.source_table = $2 AND %s) LIMIT %d) x`,
		p.target, mappedKey(p), limit), e.opt.MigrationID, p.ent.SourceTable).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("rows already in %s: %w", p.ent.TargetTable, err)
	}
	return n, nil
}

// checkExisting applies target.on_existing to target tables that already hold rows this
// migration did not write (a second migration into a loaded target, an application's rows):
// by default the migration is refused, naming them; truncate empties them first (in one
// statement, so their references among themselves allow it); resume loads over them as
// upserts (the batches' writes, see upsertOnExisting).
func (e *Engine) checkExisting(ctx context.Context, plans []*entityPlan) ([]string, error) {
	const counted = 1000
	var held []*entityPlan
	var named []string
	for _, p := range plans {
		n, err := e.foreignRows(ctx, p, counted)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			continue
		}
		held = append(held, p)
		what := fmt.Sprintf("%d", n)
		if n == counted {
			what = fmt.Sprintf("%d or more", n)
		}
		named = append(named, fmt.Sprintf("%s (%s rows)", p.ent.TargetTable, what))
	}
	if len(held) == 0 {
		return nil, nil
	}
	switch e.spec.Target.OnExisting {
	case spec.OnExistingResume:
		e.log.Info("loading over rows already in the target", "migration_id", e.opt.MigrationID, "tables", named)
		return nil, nil
	case spec.OnExistingTruncate:
		tables := make([]string, len(held))
		for i, p := range held {
			tables[i] = p.target
		}
		if _, err := e.pool.Exec(ctx, "TRUNCATE "+strings.Join(tables, ", ")); err != nil {
			return nil, fmt.Errorf("target.on_existing truncate %s: %w", strings.Join(named, ", "), err)
		}
		e.log.Warn("emptied target tables before the load (target.on_existing: truncate)", "migration_id", e.opt.MigrationID,
			"tables", named)
		return nil, nil
	}
	return []string{fmt.Sprintf("target tables already hold rows this migration did not write: %s; empty them, "+
		"or set target.on_existing: resume (load over them as upserts) or truncate (empty them first)",
		strings.Join(named, ", "))}, nil
}

// upsertOnExisting reports whether first-load batches write as upserts (target.on_existing:
// resume), so rows already in the target are overwritten instead of failing as duplicates.
func (e *Engine) upsertOnExisting() bool { return e.spec.Target.OnExisting == spec.OnExistingResume }
