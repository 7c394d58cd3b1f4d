// Package plan is the pure planning of a database migration: the entity DAG from the spec
// (references plus explicit dependencies), which entities may start given what is done and how
// many may run at once, where schema change operations go, and the reverse order rollbacks
// compensate in. No I/O: workflow code calls it and it is unit-tested on its own.
package plan

import (
	"fmt"

	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// Plan is a migration's schedule.
type Plan struct {
	Order []string            // a dependency order (parents first; ties in spec order)
	Deps  map[string][]string // prerequisites of each entity
	// Refs are the prerequisites an entity only references (a column's references:, not a
	// depends_on): what it needs of them is their rows and mappings, there once they loaded.
	Refs map[string]map[string]bool
	// SelfRef marks entities referencing their own rows: their Finalize may still quarantine
	// (delete) loaded rows, so nothing may rely on their rows before they completed.
	SelfRef map[string]bool
	// OpsAfter lists, per entity, the schema operations placed after it ("" = after all
	// entities are loaded), in spec order.
	OpsAfter map[string][]string
	Risky    map[string]bool // operations that are critical before any assessment (drop_column or risk: critical)
	// Changes lists, per entity in plan order, the transformations that may change a value on
	// its way (each changed value is counted in the status and the report).
	Changes map[string][]string
	// Ignored lists what the spec leaves behind in the sources on purpose (ignore:), as
	// "table" or "table.column"; anything else no entity reads refuses the migration.
	Ignored []string
}

// New plans a spec; a cyclic dependency (or any spec problem) is an error before anything runs.
func New(sp *spec.Spec) (*Plan, error) {
	if err := sp.Validate(); err != nil {
		return nil, err
	}
	order, err := sp.Order()
	if err != nil {
		return nil, err
	}
	p := &Plan{Order: order, Deps: sp.Dependencies(), OpsAfter: map[string][]string{}, Risky: map[string]bool{},
		Changes: map[string][]string{}, Refs: map[string]map[string]bool{}, SelfRef: map[string]bool{}}
	for _, e := range sp.Entities {
		refs := map[string]bool{}
		for _, c := range e.Columns {
			switch c.References {
			case "":
			case e.Name:
				p.SelfRef[e.Name] = true
			default:
				refs[c.References] = true
			}
		}
		for _, d := range e.DependsOn {
			delete(refs, d)
		}
		p.Refs[e.Name] = refs
		if c := valueChanges(e); len(c) > 0 {
			p.Changes[e.Name] = c
		}
	}
	for _, ig := range sp.Ignore {
		if len(ig.Columns) == 0 {
			p.Ignored = append(p.Ignored, ig.Table)
		}
		for _, c := range ig.Columns {
			p.Ignored = append(p.Ignored, ig.Table+"."+c)
		}
	}
	for _, op := range sp.SchemaOps {
		p.OpsAfter[op.After] = append(p.OpsAfter[op.After], op.Name)
		if op.Type == "drop_column" || op.Risk == "critical" {
			p.Risky[op.Name] = true
		}
	}
	return p, nil
}

// Ready returns the entities that may start now: not started, every prerequisite completed,
// at most limit-running of them (limit <= 0: no limit), in plan order.
func (p *Plan) Ready(completed, started map[string]bool, running, limit int) []string {
	return p.ReadyLoaded(completed, nil, started, running, limit)
}

// ReadyLoaded is Ready where a prerequisite an entity only references counts as done once it
// is in loaded (its rows and mappings are all written, its Finalize may still run); a
// depends_on prerequisite, or one referencing itself, still counts only once completed.
func (p *Plan) ReadyLoaded(completed, loaded, started map[string]bool, running, limit int) []string {
	var out []string
	for _, name := range p.Order {
		if limit > 0 && running+len(out) >= limit {
			break
		}
		if started[name] {
			continue
		}
		ok := true
		for _, d := range p.Deps[name] {
			if !completed[d] && !(loaded[d] && p.Refs[name][d] && !p.SelfRef[d]) {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, name)
		}
	}
	return out
}

// Blocked reports entities that can never start because a prerequisite failed.
func (p *Plan) Blocked(failed map[string]bool) []string {
	bad := map[string]bool{}
	for k, v := range failed {
		bad[k] = v
	}
	var out []string
	for _, name := range p.Order { // parents come first, so failure propagates in one pass
		for _, d := range p.Deps[name] {
			if bad[d] {
				bad[name] = true
				out = append(out, name)
				break
			}
		}
	}
	return out
}

// Reverse is the compensation order: children before parents.
func (p *Plan) Reverse() []string {
	out := make([]string, len(p.Order))
	for i, n := range p.Order {
		out[len(p.Order)-1-i] = n
	}
	return out
}

// Levels groups entities into waves that could run fully in parallel (for display).
func (p *Plan) Levels() [][]string {
	level := map[string]int{}
	var out [][]string
	for _, n := range p.Order {
		l := 0
		for _, d := range p.Deps[n] {
			l = max(l, level[d]+1)
		}
		level[n] = l
		for len(out) <= l {
			out = append(out, nil)
		}
		out[l] = append(out[l], n)
	}
	return out
}

// String renders the plan's waves and the transformations that may change values.
func (p *Plan) String() string {
	s := ""
	for i, l := range p.Levels() {
		s += fmt.Sprintf("wave %d: %v\n", i+1, l)
	}
	for _, name := range p.Order {
		for _, c := range p.Changes[name] {
			s += fmt.Sprintf("changes values: %s.%s (counted)\n", name, c)
		}
	}
	for _, ig := range p.Ignored {
		s += fmt.Sprintf("left behind in the source (ignore): %s\n", ig)
	}
	return s
}

// valueChanges are an entity's column rules that may change a value, as "column: what" (a
// cast from text also drops spaces around a value: counted as trimmed, not listed here).
func valueChanges(e spec.Entity) []string {
	var out []string
	for _, c := range e.Columns {
		if c.Drop {
			continue
		}
		var what []string
		if c.EmptyAsNull {
			what = append(what, "'' and blank text become NULL (empty_as_null)")
		}
		if c.Default != nil {
			what = append(what, fmt.Sprintf("NULL becomes %q (default)", *c.Default))
		}
		if c.Round {
			what = append(what, "values the type cannot hold exactly are rounded (round)")
		}
		for _, w := range what {
			out = append(out, c.Target+": "+w)
		}
	}
	return out
}
