package dbcopy

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// checkUnlisted compares the sources' schemas with the spec: a source table no entity reads,
// or a column of a read table no entity reads (its key, columns, watermark, row filter), is
// refused unless the spec names it under ignore: — so a column or table the application added
// is never left behind silently.
func (e *Engine) checkUnlisted(ctx context.Context, plans []*entityPlan) ([]string, error) {
	read := map[string]map[string]map[string]bool{} // source → table → columns
	for _, p := range plans {
		tables := read[p.ent.Source]
		if tables == nil {
			tables = map[string]map[string]bool{}
			read[p.ent.Source] = tables
		}
		cols := tables[p.ent.SourceTable]
		if cols == nil {
			cols = map[string]bool{}
			tables[p.ent.SourceTable] = cols
		}
		for _, c := range p.query().Columns {
			cols[c] = true
		}
		for _, c := range append([]string{p.ent.Key.Source}, p.ent.Key.Columns...) {
			cols[c] = true
		}
		if p.ent.Incremental != nil {
			cols[p.ent.Incremental.Column] = true
		}
		for _, w := range p.where {
			cols[w.Column] = true
		}
	}
	var problems []string
	names := make([]string, 0, len(e.sources))
	for name := range e.sources {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		tables, err := e.sources[name].Tables(ctx)
		if err != nil {
			return nil, err
		}
		for _, t := range tables {
			cols, isRead := read[name][t]
			ignoredCols, whole := e.ignored(name, t)
			if whole {
				continue
			}
			if !isRead {
				problems = append(problems, fmt.Sprintf("source %s: table %q is not migrated: add an entity for it, "+
					"or list it under ignore: to leave it behind", name, t))
				continue
			}
			sc, err := e.sources[name].Columns(ctx, t)
			if err != nil {
				return nil, err
			}
			var left []string
			for _, c := range sc {
				if !cols[c.Name] && !ignoredCols[c.Name] {
					left = append(left, fmt.Sprintf("%q", c.Name))
				}
			}
			if len(left) > 0 {
				problems = append(problems, fmt.Sprintf("source %s: table %q: columns %s are not migrated: add them "+
					"to the entity's columns, or list them under ignore: (table %s, columns) to leave them behind",
					name, t, strings.Join(left, ", "), t))
			}
		}
	}
	return problems, nil
}

// ignored reports the columns of a source table the spec's ignore: leaves behind, and whether
// it leaves the whole table.
func (e *Engine) ignored(source, table string) (map[string]bool, bool) {
	cols := map[string]bool{}
	for _, ig := range e.spec.Ignore {
		if ig.Table != table || (ig.Source != "" && ig.Source != source) {
			continue
		}
		if len(ig.Columns) == 0 {
			return nil, true
		}
		for _, c := range ig.Columns {
			cols[c] = true
		}
	}
	return cols, false
}
