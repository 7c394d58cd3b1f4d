package dbcopy

import (
	"context"
	"fmt"

	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// checkReferences proves that every reference of the entity's target rows resolves to a row of
// its parent. Where PostgreSQL enforces the reference itself (a foreign key from the column to
// the parent's key that is validated, its triggers enabled), it holds for every row by
// construction: the check counts the references and names the key instead of looking each one
// up in the parent (an anti-join over both tables, a tenth of the validation's time on the
// clinic chain). Otherwise every reference is looked up.
func (e *Engine) checkReferences(ctx context.Context, p *entityPlan) (store.ValidationResult, bool, error) {
	v := store.ValidationResult{ValidationType: model.ValidationReferential}
	var checked []string
	details := map[string]any{}
	for _, b := range p.build {
		if b.parent == nil {
			continue
		}
		col := spec.QuoteIdent(b.column)
		parent := spec.QuoteQualified(e.spec.Target.Schema, b.parent.TargetTable)
		fk, err := e.enforcingKey(ctx, p.target, b.column, parent, b.parent.Key.Target)
		if err != nil {
			return v, false, err
		}
		var n, dangling int64
		d := map[string]any{}
		if fk != "" {
			err = e.pool.QueryRow(ctx, fmt.Sprintf(`SELECT count(%s) FROM %s`, col, p.target)).Scan(&n)
			d["enforced_by"] = "foreign key " + fk + " (validated)"
		} else {
			err = e.pool.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FILTER (WHERE c.%[1]s IS NOT NULL),
				count(*) FILTER (WHERE c.%[1]s IS NOT NULL AND NOT EXISTS (SELECT 1 FROM %[2]s p WHERE p.%[3]s = c.%[1]s))
				FROM %[4]s c`, col, parent, spec.QuoteIdent(b.parent.Key.Target), p.target)).Scan(&n, &dangling)
		}
		if err != nil {
			return v, false, fmt.Errorf("references %s → %s: %w", b.column, b.parent.TargetTable, err)
		}
		checked = append(checked, b.column+" → "+b.parent.TargetTable)
		v.RecordsValidated += n
		v.IssuesFound += dangling
		d["references"], d["dangling"] = n, dangling
		details[b.column] = d
	}
	if len(checked) == 0 {
		return v, false, nil
	}
	v.ValidationCriteria = mustJSON(map[string]any{"check": "every reference resolves to a parent row", "references": checked,
		"method": "each reference looked up in its parent, or counted where a validated foreign key from the column to " +
			"the parent's key, its triggers enabled, makes PostgreSQL hold it for every row"})
	v.IssueDetails = mustJSON(details)
	return v, true, nil
}

// enforcingKey names a foreign key that makes PostgreSQL guarantee every non-NULL value of
// table.column is a key of parent.parentKey: on exactly that column and that parent column,
// validated (every row present when it was added checked), no trigger of it disabled (rows
// written since checked as they came, partitions' clones included; a session running with
// session_replication_role = replica would skip them, which the copy never does). "" when there
// is none.
func (e *Engine) enforcingKey(ctx context.Context, table, column, parent, parentKey string) (string, error) {
	var name string
	err := e.pool.QueryRow(ctx, `SELECT coalesce(min(c.conname::text), '') FROM pg_constraint c
		WHERE c.contype = 'f' AND c.convalidated
		  AND c.conrelid = $1::regclass AND c.confrelid = $3::regclass
		  AND c.conkey = ARRAY[(SELECT attnum FROM pg_attribute WHERE attrelid = $1::regclass AND attname = $2 AND NOT attisdropped)]
		  AND c.confkey = ARRAY[(SELECT attnum FROM pg_attribute WHERE attrelid = $3::regclass AND attname = $4 AND NOT attisdropped)]
		  AND NOT EXISTS (SELECT 1 FROM pg_trigger t JOIN pg_constraint k ON k.oid = t.tgconstraint
		                  WHERE (k.oid = c.oid OR k.conparentid = c.oid) AND t.tgenabled = 'D')`,
		table, column, parent, parentKey).Scan(&name)
	if err != nil {
		return "", fmt.Errorf("foreign keys of %s.%s: %w", table, column, err)
	}
	return name, nil
}
