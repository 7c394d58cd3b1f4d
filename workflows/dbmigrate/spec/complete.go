package spec

import (
	"time"
)

// validateCompleteness checks what decides whether a migration may end completed and how it
// meets its target: the error budget, the ignore list, on_existing and the statement bounds.
func (s *Spec) validateCompleteness(p *problems) {
	if b := s.ErrorBudget; b != nil {
		if b.MaxRows < 0 {
			p.add("error_budget.max_rows %d: want 0 or more", b.MaxRows)
		}
		if b.MaxRatio < 0 || b.MaxRatio > 1 {
			p.add("error_budget.max_ratio %g: want 0..1", b.MaxRatio)
		}
		if b.MaxRows == 0 && b.MaxRatio == 0 {
			p.add("error_budget: set max_rows or max_ratio (or leave error_budget out: no quarantined row allowed)")
		}
	}
	for i, ig := range s.Ignore {
		if ig.Source != "" {
			if _, ok := s.Sources[ig.Source]; !ok {
				p.add("ignore #%d: source %q is not one of sources", i+1, ig.Source)
			}
		}
		if ig.Table == "" {
			p.add("ignore #%d: table is required", i+1)
		}
		p.ident("ignore table", ig.Table)
		for _, c := range ig.Columns {
			p.ident("ignore column", c)
		}
	}
	switch s.Target.OnExisting {
	case OnExistingRefuse, OnExistingFail, OnExistingResume, OnExistingTruncate:
	default:
		p.add("target.on_existing %q: want resume, truncate or fail", s.Target.OnExisting)
	}
	for _, d := range []struct{ name, v string }{
		{"target.lock_timeout", s.Target.LockTimeout}, {"target.statement_timeout", s.Target.StatementTimeout},
	} {
		if d.v == "" {
			continue
		}
		if v, err := time.ParseDuration(d.v); err != nil || v < 100*time.Millisecond {
			p.add("%s %q: want a duration of at least 100ms (\"30s\", \"5m\")", d.name, d.v)
		}
	}
	for _, e := range s.Entities {
		if e.Partition != nil && (e.Partition.Ahead < 0 || e.Partition.Ahead > 120) {
			p.add("entity %q: partition.ahead %d: want 0..120 months", e.Name, e.Partition.Ahead)
		}
	}
}

// Bound returns a statement bound of the target (LockTimeout, StatementTimeout), or def.
func Bound(v string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return d
	}
	return def
}
