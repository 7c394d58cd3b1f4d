package dbcopy

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cutover/cutover/activities/dbcopy/spec"
)

// ident63 joins parts into an identifier PostgreSQL keeps whole (63 bytes), shortening long
// ones with a hash so distinct inputs stay distinct.
func ident63(parts ...string) string {
	s := strings.Join(parts, "_")
	if len(s) <= 63 {
		return s
	}
	h := fnv.New32a()
	h.Write([]byte(s))
	return fmt.Sprintf("%s_%08x", s[:54], h.Sum32())
}

// quoteLiteral renders s as a SQL string literal whatever standard_conforming_strings says.
func quoteLiteral(s string) string {
	if strings.Contains(s, `\`) {
		return `E'` + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), `'`, `''`) + `'`
	}
	return `'` + strings.ReplaceAll(s, `'`, `''`) + `'`
}

func (e *Engine) qualified(table string) string {
	return spec.QuoteQualified(e.spec.Target.Schema, table)
}

// CreateTables creates each entity's target table from the spec when it does not exist: key
// (and partition column) as primary key, column types and NOT NULL/UNIQUE from the spec,
// monthly range partitioning, and the cross-partition uniqueness helpers. Secondary indexes and
// foreign keys come after the load (Finalize).
func (e *Engine) CreateTables(ctx context.Context) error {
	order, err := e.spec.Order()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSpec, err)
	}
	for _, name := range order {
		ent, _ := e.spec.Entity(name)
		if err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
			for _, stmt := range e.tableDDL(ent) {
				if _, err := tx.Exec(ctx, stmt); err != nil {
					return fmt.Errorf("%s: %w", firstLine(stmt), err)
				}
			}
			return nil
		}); err != nil {
			return fmt.Errorf("create target table %s: %w", ent.TargetTable, err)
		}
	}
	return nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return clip(s)
}

// tableDDL is the CREATE statements of an entity's table (all IF NOT EXISTS / OR REPLACE).
func (e *Engine) tableDDL(ent *spec.Entity) []string {
	q := spec.QuoteIdent
	table := e.qualified(ent.TargetTable)
	var defs []string
	keyType := keyTypeOf(ent)
	defs = append(defs, fmt.Sprintf("%s %s NOT NULL", q(ent.Key.Target), keyType))
	partCol := ""
	if ent.Partition != nil {
		partCol = ent.Partition.Column
	}
	for _, c := range ent.Columns {
		if c.Drop {
			continue
		}
		d := fmt.Sprintf("%s %s", q(c.Target), c.Type)
		if c.NotNull || c.Target == partCol {
			d += " NOT NULL"
		}
		defs = append(defs, d)
	}
	pk := q(ent.Key.Target)
	if partCol != "" {
		pk += ", " + q(partCol)
	}
	defs = append(defs, "PRIMARY KEY ("+pk+")")
	for _, c := range ent.Columns {
		if c.Unique && !c.Drop {
			u := q(c.Target)
			if partCol != "" && c.Target != partCol {
				u += ", " + q(partCol) // PostgreSQL requires the partition key in unique constraints
			}
			defs = append(defs, "UNIQUE ("+u+")")
		}
	}
	create := fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (\n  %s\n)", table, strings.Join(defs, ",\n  "))
	if partCol != "" {
		create += " PARTITION BY RANGE (" + q(partCol) + ")"
	}
	stmts := []string{create}
	for _, col := range ent.UniqueAcrossPartitions {
		stmts = append(stmts, e.uniqueAcrossDDL(ent, col)...)
	}
	return stmts
}

// uniqueAcrossDDL keeps a column unique over every partition: a companion table keyed by the
// value records which row owns it, maintained by a trigger. Re-inserting the same row (an
// upsert) passes; another row with the same value fails with unique_violation (23505), which
// the batch writer quarantines like any duplicate.
func (e *Engine) uniqueAcrossDDL(ent *spec.Entity, col string) []string {
	q := spec.QuoteIdent
	table := e.qualified(ent.TargetTable)
	comp := e.qualified(uniqueTableName(ent, col))
	fn := e.qualified(ident63(ent.TargetTable, col, "uniq_fn"))
	var colType string
	for _, c := range ent.Columns {
		if c.Target == col {
			colType = c.Type
		}
	}
	key := q(ent.Key.Target)
	return []string{
		fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (value %s PRIMARY KEY, row_key %s NOT NULL)", comp, colType, keyTypeOf(ent)),
		fmt.Sprintf(`CREATE OR REPLACE FUNCTION %[1]s() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  IF TG_OP IN ('DELETE', 'UPDATE') AND OLD.%[3]s IS NOT NULL THEN
    IF TG_OP = 'DELETE' OR OLD.%[3]s IS DISTINCT FROM NEW.%[3]s THEN
      DELETE FROM %[2]s WHERE value = OLD.%[3]s AND row_key = OLD.%[4]s;
    END IF;
  END IF;
  IF TG_OP = 'DELETE' THEN
    RETURN OLD;
  END IF;
  IF NEW.%[3]s IS NOT NULL THEN
    INSERT INTO %[2]s (value, row_key) VALUES (NEW.%[3]s, NEW.%[4]s) ON CONFLICT (value) DO NOTHING;
    IF NOT FOUND AND NOT EXISTS (SELECT 1 FROM %[2]s WHERE value = NEW.%[3]s AND row_key = NEW.%[4]s) THEN
      RAISE EXCEPTION USING ERRCODE = 'unique_violation', COLUMN = %[5]s,
        MESSAGE = format('duplicate key value violates uniqueness of %%s across partitions', %[5]s),
        DETAIL = format('Key (%%s)=(%%s) already exists.', %[5]s, NEW.%[3]s);
    END IF;
  END IF;
  RETURN NEW;
END
$fn$`, fn, comp, q(col), key, quoteLiteral(col)),
		fmt.Sprintf("CREATE OR REPLACE TRIGGER %s BEFORE INSERT OR UPDATE OF %s ON %s FOR EACH ROW EXECUTE FUNCTION %s()",
			q(ident63(ent.TargetTable, col, "uniq_ins")), q(col), table, fn),
		fmt.Sprintf("CREATE OR REPLACE TRIGGER %s AFTER DELETE ON %s FOR EACH ROW EXECUTE FUNCTION %s()",
			q(ident63(ent.TargetTable, col, "uniq_del")), table, fn),
	}
}

func uniqueTableName(ent *spec.Entity, col string) string {
	return ident63(ent.TargetTable, col, "uniq")
}

// ensurePartitions creates the monthly partitions the rows fall into (before the batch's
// transaction, under an advisory lock, so concurrent batches do not race).
func (e *Engine) ensurePartitions(ctx context.Context, p *entityPlan, rows []prepared) error {
	if p.partIdx < 0 {
		return nil
	}
	months := map[string]time.Time{}
	for _, r := range rows {
		t, ok := r.part.(time.Time)
		if !ok {
			continue
		}
		m := time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
		name := ident63(p.ent.TargetTable, m.Format("2006_01"))
		e.mu.Lock()
		known := e.partitions[name]
		e.mu.Unlock()
		if !known {
			months[name] = m
		}
	}
	for name, m := range months {
		stmt := fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s PARTITION OF %s FOR VALUES FROM ('%s') TO ('%s')",
			e.qualified(name), p.target, m.Format("2006-01-02"), m.AddDate(0, 1, 0).Format("2006-01-02"))
		err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, p.target); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, stmt)
			return err
		})
		var pgErr *pgconn.PgError
		if err != nil && !(errors.As(err, &pgErr) && pgErr.Code == "42P17") { // overlaps an existing partition
			return fmt.Errorf("create partition %s: %w", name, err)
		}
		e.mu.Lock()
		e.partitions[name] = true
		e.mu.Unlock()
	}
	return nil
}

// Finalize builds what is cheaper after the load: the spec's indexes (B-tree, partial,
// full-text GIN) and the foreign keys of reference columns, then ANALYZE. Idempotent.
func (e *Engine) Finalize(ctx context.Context, entity string) error {
	ent, ok := e.spec.Entity(entity)
	if !ok {
		return fmt.Errorf("%w: no entity %q", ErrSpec, entity)
	}
	q := spec.QuoteIdent
	table := e.qualified(ent.TargetTable)
	types := entityTypes(ent)
	var stmts []string
	for _, ix := range ent.Indexes {
		name := ix.Name
		switch {
		case ix.FullText != nil:
			if name == "" {
				name = ident63(append(append([]string{ent.TargetTable}, ix.FullText.Columns...), "fts")...)
			}
			parts := make([]string, len(ix.FullText.Columns))
			for i, c := range ix.FullText.Columns {
				parts[i] = fmt.Sprintf("coalesce(%s::text, '')", q(c))
			}
			stmts = append(stmts, fmt.Sprintf("CREATE INDEX IF NOT EXISTS %s ON %s USING gin (to_tsvector(%s::regconfig, %s))",
				q(name), table, quoteLiteral(ix.FullText.Config), strings.Join(parts, " || ' ' || ")))
		default:
			if name == "" {
				name = ident63(append(append([]string{ent.TargetTable}, ix.Columns...), "idx")...)
			}
			cols := make([]string, len(ix.Columns))
			for i, c := range ix.Columns {
				cols[i] = q(c)
			}
			uniq := ""
			if ix.Unique {
				uniq = "UNIQUE "
			}
			stmt := fmt.Sprintf("CREATE %sINDEX IF NOT EXISTS %s ON %s (%s)", uniq, q(name), table, strings.Join(cols, ", "))
			if ix.Where != nil {
				stmt += " WHERE " + ruleSQL(*ix.Where, types[ix.Where.Column])
			}
			stmts = append(stmts, stmt)
		}
	}
	for _, c := range ent.Columns {
		if c.References == "" {
			continue
		}
		parent, _ := e.spec.Entity(c.References)
		if parent.Partition != nil {
			continue // a partitioned parent's key is (key, partition column): no single-column FK target
		}
		name := ident63(ent.TargetTable, c.Target, "fkey")
		var exists bool
		if err := e.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = $1 AND conrelid = $2::regclass)`,
			name, table).Scan(&exists); err != nil {
			return fmt.Errorf("finalize %s: %w", entity, err)
		}
		if !exists {
			stmts = append(stmts, fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s FOREIGN KEY (%s) REFERENCES %s (%s)",
				table, q(name), q(c.Target), e.qualified(parent.TargetTable), q(parent.Key.Target)))
		}
	}
	stmts = append(stmts, "ANALYZE "+table)
	for _, s := range stmts {
		if _, err := e.pool.Exec(ctx, s); err != nil {
			return fmt.Errorf("finalize %s: %s: %w", entity, firstLine(s), err)
		}
	}
	return nil
}

// entityTypes maps target columns to their spec types (the key included).
func entityTypes(ent *spec.Entity) map[string]string {
	m := map[string]string{ent.Key.Target: keyTypeOf(ent)}
	for _, c := range ent.Columns {
		if !c.Drop {
			m[c.Target] = c.Type
		}
	}
	return m
}

// ruleSQL renders a rule as a SQL predicate over its column; values are literals cast to the
// column's type (typ from the allowlist, or text when unknown).
func ruleSQL(r spec.Rule, typ string) string {
	col := spec.QuoteIdent(r.Column)
	if typ == "" || !spec.KnownType(typ) {
		typ = "text"
	}
	lit := func(v string) string { return quoteLiteral(v) + "::" + typ }
	ops := map[string]string{"eq": "=", "ne": "<>", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}
	switch r.Op {
	case "not_null":
		return col + " IS NOT NULL"
	case "in":
		vals := make([]string, len(r.Values))
		for i, v := range r.Values {
			vals[i] = lit(v)
		}
		return fmt.Sprintf("%s IN (%s)", col, strings.Join(vals, ", "))
	case "matches":
		return fmt.Sprintf("%s::text ~ %s", col, quoteLiteral(*r.Value))
	case "max_length":
		return fmt.Sprintf("length(%s::text) <= %s::int", col, quoteLiteral(*r.Value))
	default:
		return fmt.Sprintf("%s %s %s", col, ops[r.Op], lit(*r.Value))
	}
}
