// Package plan is the pure planning of a database migration: the entity DAG from the spec
// (references plus explicit dependencies), which entities may start given what is done and how
// many may run at once, where schema change operations go, and the reverse order rollbacks
// compensate in. No I/O: workflow code calls it and it is unit-tested on its own.
package plan

import (
	"fmt"

	"github.com/cutover/cutover/activities/dbcopy/spec"
)

// Plan is a migration's schedule.
type Plan struct {
	Order []string            // a dependency order (parents first; ties in spec order)
	Deps  map[string][]string // prerequisites of each entity
	// OpsAfter lists, per entity, the schema operations placed after it ("" = after all
	// entities are loaded), in spec order.
	OpsAfter map[string][]string
	Risky    map[string]bool // operations that are critical before any assessment (drop_column or risk: critical)
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
	p := &Plan{Order: order, Deps: sp.Dependencies(), OpsAfter: map[string][]string{}, Risky: map[string]bool{}}
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
			if !completed[d] {
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

// String renders the plan's waves.
func (p *Plan) String() string {
	s := ""
	for i, l := range p.Levels() {
		s += fmt.Sprintf("wave %d: %v\n", i+1, l)
	}
	return s
}
