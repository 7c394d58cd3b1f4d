package spec

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// whereOps are the operators a source row filter may use: those both SQLite and PostgreSQL
// evaluate alike (no regular expressions: SQLite has none built in).
var whereOps = []string{"not_null", "eq", "ne", "gt", "ge", "lt", "le", "in", "max_length"}

// validateShape checks what the spec says about the shape of the data beyond the column rules:
// the source row filter, the target's CHECK constraints and column DEFAULTs. tcols are the
// entity's target column types.
func validateShape(e *Entity, where string, tcols map[string]string, p *problems) {
	for j, r := range e.Where {
		w := fmt.Sprintf("%s where #%d", where, j+1)
		p.ident(w+" column", r.Column)
		if !slices.Contains(whereOps, r.Op) {
			p.add("%s: op %q: want one of %s", w, r.Op, strings.Join(whereOps, ", "))
			continue
		}
		if r.Name != "" || r.Severity != "" {
			p.add("%s: a row filter takes no name or severity", w)
		}
		// The column is a source column: check the rule's shape against itself.
		if err := r.check(map[string]string{r.Column: ""}); err != nil {
			p.add("%s: %v", w, err)
		}
	}
	names := map[string]bool{}
	for j, r := range e.Checks {
		w := fmt.Sprintf("%s check #%d", where, j+1)
		if err := r.check(tcols); err != nil {
			p.add("%s: %v", w, err)
		}
		if r.Severity != "" {
			p.add("%s: a CHECK constraint has no severity", w)
		}
		if r.Name != "" {
			p.ident(w+" name", r.Name)
			if names[r.Name] {
				p.add("%s: name %q used twice", w, r.Name)
			}
			names[r.Name] = true
		}
	}
	for _, c := range e.Columns {
		d := c.TargetDefault
		if d == nil || c.Drop {
			continue
		}
		w := fmt.Sprintf("%s column %q target_default", where, c.Target)
		switch {
		case (d.Value == nil) == (d.Function == ""):
			p.add("%s: give value or function", w)
		case d.Function != "":
			if _, ok := DefaultFunctions[d.Function]; !ok {
				fns := make([]string, 0, len(DefaultFunctions))
				for f := range DefaultFunctions {
					fns = append(fns, f)
				}
				sort.Strings(fns)
				p.add("%s: function %q: want one of %s", w, d.Function, strings.Join(fns, ", "))
			}
		}
	}
}
