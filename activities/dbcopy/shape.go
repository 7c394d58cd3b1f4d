package dbcopy

import (
	"context"
	"fmt"
	"strconv"

	"github.com/cutover/cutover/activities/dbcopy/source"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// The shape of the data beyond the column rules: the source row filter (where), the target's
// CHECK constraints and column DEFAULTs (checks, target_default).

// whereConds are the entity's row filter as source conditions.
func whereConds(ent *spec.Entity) []source.Cond {
	out := make([]source.Cond, len(ent.Where))
	for i, r := range ent.Where {
		c := source.Cond{Column: r.Column, Op: r.Op, Values: r.Values}
		if r.Value != nil {
			c.Values = []string{*r.Value}
		}
		out[i] = c
	}
	return out
}

// checkName is the constraint name of an entity's i-th CHECK.
func checkName(ent *spec.Entity, i int) string {
	if r := ent.Checks[i]; r.Name != "" {
		return r.Name
	}
	return ident63(ent.TargetTable, ent.Checks[i].Column, "check", strconv.Itoa(i+1))
}

// checkDefs are the table's CHECK constraints as CREATE TABLE clauses.
func checkDefs(ent *spec.Entity) []string {
	types := entityTypes(ent)
	out := make([]string, len(ent.Checks))
	for i, r := range ent.Checks {
		out[i] = fmt.Sprintf("CONSTRAINT %s CHECK (%s)", spec.QuoteIdent(checkName(ent, i)), ruleSQL(r, types[r.Column]))
	}
	return out
}

// defaultSQL is a target_default as SQL: a literal cast to the column's type, or its function.
func defaultSQL(c spec.Column) string {
	if c.TargetDefault.Function != "" {
		return spec.DefaultFunctions[c.TargetDefault.Function]
	}
	typ := c.Type
	if typ == "" || !spec.KnownType(typ) {
		typ = "text"
	}
	return quoteLiteral(*c.TargetDefault.Value) + "::" + typ
}

func hasTargetDefault(ent *spec.Entity) bool {
	for _, c := range ent.Columns {
		if c.TargetDefault != nil && !c.Drop {
			return true
		}
	}
	return false
}

// ensureShape gives an existing target table the spec's CHECK constraints (those it lacks,
// by name) and column DEFAULTs, before the load: a row breaking a check is then quarantined
// like any refused row. Idempotent.
func (e *Engine) ensureShape(ctx context.Context, ent *spec.Entity) error {
	table := e.qualified(ent.TargetTable)
	if len(ent.Checks) == 0 && !hasTargetDefault(ent) {
		return nil
	}
	var exists bool
	if err := e.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&exists); err != nil || !exists {
		return err // a missing table is reported by compile, with every other misfit
	}
	for i, def := range checkDefs(ent) {
		var exists bool
		if err := e.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = $1 AND conrelid = $2::regclass)`,
			checkName(ent, i), table).Scan(&exists); err != nil {
			return fmt.Errorf("constraints of %s: %w", ent.TargetTable, err)
		}
		if !exists {
			if _, err := e.pool.Exec(ctx, "ALTER TABLE "+table+" ADD "+def); err != nil {
				return fmt.Errorf("add check %s to %s: %w", checkName(ent, i), ent.TargetTable, err)
			}
		}
	}
	for _, c := range ent.Columns {
		if c.TargetDefault == nil || c.Drop {
			continue
		}
		if _, err := e.pool.Exec(ctx, fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s SET DEFAULT %s", table,
			spec.QuoteIdent(c.Target), defaultSQL(c))); err != nil {
			return fmt.Errorf("default of %s.%s: %w", ent.TargetTable, c.Target, err)
		}
	}
	return nil
}
