package dbcopy

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// indexDef is one of the spec's indexes: CREATE [UNIQUE] INDEX name ON <table> tail.
type indexDef struct {
	name   string
	unique bool
	tail   string // "USING gin (…)" or "(a, b) WHERE …"
	gin    bool
}

// specIndexes are an entity's declared indexes (B-tree, partial, full-text GIN).
func specIndexes(ent *spec.Entity) []indexDef {
	q := spec.QuoteIdent
	types := entityTypes(ent)
	var out []indexDef
	for _, ix := range ent.Indexes {
		name := ix.Name
		if ix.FullText != nil {
			if name == "" {
				name = ident63(append(append([]string{ent.TargetTable}, ix.FullText.Columns...), "fts")...)
			}
			parts := make([]string, len(ix.FullText.Columns))
			for i, c := range ix.FullText.Columns {
				parts[i] = fmt.Sprintf("coalesce(%s::text, '')", q(c))
			}
			out = append(out, indexDef{name: name, gin: true, tail: fmt.Sprintf("USING gin (to_tsvector(%s::regconfig, %s))",
				quoteLiteral(ix.FullText.Config), strings.Join(parts, " || ' ' || "))})
			continue
		}
		if name == "" {
			name = ident63(append(append([]string{ent.TargetTable}, ix.Columns...), "idx")...)
		}
		cols := make([]string, len(ix.Columns))
		for i, c := range ix.Columns {
			cols[i] = q(c)
		}
		tail := "(" + strings.Join(cols, ", ") + ")"
		if ix.Where != nil {
			tail += " WHERE " + ruleSQL(*ix.Where, types[ix.Where.Column])
		}
		out = append(out, indexDef{name: name, unique: ix.Unique, tail: tail})
	}
	return out
}

func (d indexDef) on(name, table string) string {
	uniq := ""
	if d.unique {
		uniq = "UNIQUE "
	}
	return fmt.Sprintf("CREATE %sINDEX IF NOT EXISTS %s ON %s %s", uniq, spec.QuoteIdent(name), table, d.tail)
}

// indexBuild is one CREATE INDEX to run, with what orders the builds: GIN ones and those over
// more bytes first.
type indexBuild struct {
	sql   string
	gin   bool
	bytes int64
	// tablespace, when set, is where the index goes (default_tablespace for the build).
	tablespace *string
	// then, when set, runs in the build's transaction after it (a ledger write).
	then func(ctx context.Context, tx pgx.Tx) error
}

// run builds b in its own transaction.
func (b indexBuild) run(ctx context.Context, pool interface {
	Begin(context.Context) (pgx.Tx, error)
}) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if err := indexBuildSettings(ctx, tx); err != nil {
			return err
		}
		if b.tablespace != nil {
			if _, err := tx.Exec(ctx, "SELECT set_config('default_tablespace', $1, true)", *b.tablespace); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, b.sql); err != nil {
			return err
		}
		if b.then != nil {
			return b.then(ctx, tx)
		}
		return nil
	})
}

// buildIndexes builds an entity's missing indexes, up to Writers builds at once (each on its
// own connection; CREATE INDEX takes a SHARE lock, which does not conflict with another). A
// partitioned table's index is built partition by partition, the partitions' builds side by
// side, then created on the table, which attaches the partitions' matching indexes instead of
// building them again (and, a crash between, the next Finalize finds them by name).
func (e *Engine) buildIndexes(ctx context.Context, ent *spec.Entity, defs []indexDef) error {
	table := e.qualified(ent.TargetTable)
	var missing []indexDef
	for _, d := range defs {
		var exists bool
		if err := e.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`,
			spec.QuoteQualified(e.spec.Target.Schema, d.name)).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			missing = append(missing, d)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	parts, err := e.leafPartitions(ctx, table)
	if err != nil {
		return err
	}
	var builds, after []indexBuild
	for _, d := range missing {
		if ent.Partition == nil || parts == nil {
			builds = append(builds, indexBuild{sql: d.on(d.name, table), gin: d.gin})
			continue
		}
		for _, p := range parts {
			builds = append(builds, indexBuild{sql: d.on(ident63(p.name, d.name), spec.QuoteQualified(p.schema, p.name)),
				gin: d.gin, bytes: p.bytes})
		}
		after = append(after, indexBuild{sql: d.on(d.name, table)})
	}
	if err := e.runBuilds(ctx, builds, e.writers()); err != nil {
		return err
	}
	return e.runBuilds(ctx, after, 1)
}

// biggestFirst orders builds: GIN ones, then those over more bytes, first.
func biggestFirst(builds []indexBuild) {
	slices.SortStableFunc(builds, func(a, b indexBuild) int {
		if a.gin != b.gin {
			if a.gin {
				return -1
			}
			return 1
		}
		return cmp.Compare(b.bytes, a.bytes)
	})
}

type partition struct {
	schema, name string
	bytes        int64
}

// leafPartitions are a partitioned table's partitions with their sizes; nil when the table is
// not partitioned or a partition is partitioned itself (the table's index is then built whole).
func (e *Engine) leafPartitions(ctx context.Context, table string) ([]partition, error) {
	rows, err := e.pool.Query(ctx, `SELECT n.nspname, c.relname, c.relkind = 'r', pg_total_relation_size(c.oid)
		FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE h.inhparent = $1::regclass`, table)
	if err != nil {
		return nil, fmt.Errorf("partitions of %s: %w", table, err)
	}
	defer rows.Close()
	var out []partition
	for rows.Next() {
		var p partition
		var leaf bool
		if err := rows.Scan(&p.schema, &p.name, &leaf, &p.bytes); err != nil {
			return nil, err
		}
		if !leaf {
			return nil, nil
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// runBuilds runs the builds, biggest first, n at a time; the first error stops those not
// started.
func (e *Engine) runBuilds(ctx context.Context, builds []indexBuild, n int) error {
	biggestFirst(builds)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan indexBuild)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range max(1, min(n, len(builds))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range next {
				if err := b.run(ctx, e.pool); err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("%s: %w", firstLine(b.sql), err)
					}
					mu.Unlock()
					cancel()
				}
			}
		}()
	}
feed:
	for _, b := range builds {
		select {
		case next <- b:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	return first
}
