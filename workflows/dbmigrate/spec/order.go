package spec

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// ErrCycle is wrapped by the error for cyclic dependencies.
var ErrCycle = errors.New("dependency cycle")

// Dependencies returns each entity's prerequisites: the entities its columns reference plus
// its explicit depends_on, sorted and without duplicates.
func (s *Spec) Dependencies() map[string][]string {
	out := map[string][]string{}
	for _, e := range s.Entities {
		set := map[string]bool{}
		for _, c := range e.Columns {
			if c.References != "" && c.References != e.Name {
				set[c.References] = true
			}
		}
		for _, d := range e.DependsOn {
			if d != e.Name {
				set[d] = true
			}
		}
		deps := make([]string, 0, len(set))
		for d := range set {
			deps = append(deps, d)
		}
		sort.Strings(deps)
		out[e.Name] = deps
	}
	return out
}

// Order returns the entities in a dependency order (parents first; ties in spec order), or an
// error wrapping ErrCycle that names the cycle.
func (s *Spec) Order() ([]string, error) {
	names := make([]string, len(s.Entities))
	for i, e := range s.Entities {
		names[i] = e.Name
	}
	return TopoOrder(names, s.Dependencies())
}

// TopoOrder orders names so each comes after its deps (ties keep the given order). Unknown
// dependencies are ignored here (Validate reports them).
func TopoOrder(names []string, deps map[string][]string) ([]string, error) {
	known := map[string]bool{}
	for _, n := range names {
		known[n] = true
	}
	done := map[string]bool{}
	var out []string
	for len(out) < len(names) {
		progressed := false
		for _, n := range names {
			if done[n] {
				continue
			}
			ready := true
			for _, d := range deps[n] {
				if known[d] && !done[d] {
					ready = false
					break
				}
			}
			if ready {
				done[n] = true
				out = append(out, n)
				progressed = true
			}
		}
		if !progressed {
			return nil, fmt.Errorf("%w: %s", ErrCycle, strings.Join(findCycle(names, deps, done), " → "))
		}
	}
	return out, nil
}

// findCycle walks unfinished nodes until one repeats and returns that loop.
func findCycle(names []string, deps map[string][]string, done map[string]bool) []string {
	var start string
	for _, n := range names {
		if !done[n] {
			start = n
			break
		}
	}
	pos := map[string]int{}
	var path []string
	cur := start
	for {
		if i, ok := pos[cur]; ok {
			return append(path[i:], cur)
		}
		pos[cur] = len(path)
		path = append(path, cur)
		next := ""
		for _, d := range deps[cur] {
			if !done[d] && slices.Contains(names, d) {
				next = d
				break
			}
		}
		if next == "" {
			return path
		}
		cur = next
	}
}

// SourceGroups partitions sources (given in the order they are drained one after another)
// into groups no entity of which depends on an entity of another group (references and
// depends_on, either way, transitively). Each group keeps the given order; groups are ordered
// by their first source. Groups may be caught up at the same time: a row of one never needs a
// parent row another group writes, so neither waits on the other's commit to find its parent.
func (s *Spec) SourceGroups(sources []string) [][]string {
	root := map[string]string{}
	for _, src := range sources {
		root[src] = src
	}
	var find func(string) string
	find = func(x string) string {
		if root[x] != x {
			root[x] = find(root[x])
		}
		return root[x]
	}
	for name, deps := range s.Dependencies() {
		e, ok := s.Entity(name)
		if !ok {
			continue
		}
		for _, d := range deps {
			p, ok := s.Entity(d)
			if !ok {
				continue
			}
			a, b := e.Source, p.Source
			if _, ok := root[a]; !ok {
				continue
			}
			if _, ok := root[b]; !ok {
				continue
			}
			root[find(a)] = find(b)
		}
	}
	var out [][]string
	at := map[string]int{}
	for _, src := range sources {
		r := find(src)
		i, ok := at[r]
		if !ok {
			i = len(out)
			at[r] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], src)
	}
	return out
}
