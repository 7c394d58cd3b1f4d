package dbcopy

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// The performance validation (migration_validations' `performance` type) times a few queries an
// application runs against an entity — count the table, read its first page in key order,
// look rows up by key — on the source and on the target, each perfRounds times (the median
// counts), and records per query and overall how many times faster the target answers
// (source time / target time; the mail system's plan expects 2–3×). It is a measurement, not a proof of the
// copy: a target more than perfSlowerWarn times slower than the source warns when its queries
// also take perfWarnFloor in all (below it the ratio is timing noise: an in-process SQLite
// answers a small table in microseconds, a PostgreSQL socket in a millisecond), and no
// performance result stops a migration.
const (
	perfRounds     = 3
	perfPage       = 100
	perfLookups    = 20
	perfSlowerWarn = 2.0
	perfWarnFloor  = 250 * time.Millisecond
)

// perfQuery is one timed query on both sides.
type perfQuery struct {
	Name     string  `json:"query"`
	SourceMS float64 `json:"source_ms"`
	TargetMS float64 `json:"target_ms"`
	Speedup  float64 `json:"speedup"`
	Rows     int     `json:"rows"`
}

// checkPerformance runs the representative queries of an entity on its source and target.
func (e *Engine) checkPerformance(ctx context.Context, p *entityPlan) (store.ValidationResult, bool, error) {
	v := store.ValidationResult{ValidationType: model.ValidationPerformance,
		ValidationCriteria: mustJSON(map[string]any{"check": "query timings, source vs target",
			"queries": []string{"count(*)", fmt.Sprintf("first %d rows in key order", perfPage),
				fmt.Sprintf("%d lookups by key", perfLookups)},
			"rounds": perfRounds, "statistic": "median", "speedup": "source time / target time",
			"warns_when": fmt.Sprintf("the target is more than %.0f× slower overall and its queries take over %s in all",
				perfSlowerWarn, perfWarnFloor)})}
	page := p.query()
	page.Limit = perfPage
	first, err := p.src.Read(ctx, page)
	if err != nil {
		return v, false, err
	}
	var keys []string
	var keyVals []any
	for i, r := range first {
		if len(keys) == perfLookups || i%max(1, len(first)/perfLookups) != 0 {
			continue
		}
		if k, ok := p.rowKey(r); ok {
			keys, keyVals = append(keys, k), append(keyVals, p.rowKeyValue(r))
		}
	}
	cols, key := contentSelect(p, ""), spec.QuoteIdent(p.ent.Key.Target)
	lookup := p.query()
	lookup.In = keyVals
	queries := []struct {
		name   string
		source func() (int, error)
		target func() (int, error)
	}{
		{"count(*)",
			func() (int, error) { n, err := p.src.Count(ctx, p.ent.SourceTable, p.where...); return int(n), err },
			func() (int, error) { return e.timedRows(ctx, "SELECT count(*) FROM "+p.target) }},
		{fmt.Sprintf("first %d rows in key order", perfPage),
			func() (int, error) { rows, err := p.src.Read(ctx, page); return len(rows), err },
			func() (int, error) {
				return e.timedRows(ctx, fmt.Sprintf("SELECT %s FROM %s ORDER BY %s LIMIT %d", cols, p.target, key, perfPage))
			}},
		{fmt.Sprintf("%d lookups by key", len(keys)),
			func() (int, error) { rows, err := p.src.Read(ctx, lookup); return len(rows), err },
			func() (int, error) {
				return e.timedRows(ctx, fmt.Sprintf("SELECT %s FROM %s t WHERE t.%s", cols, p.target, keyMatch(p)), targetKeys(p, keys))
			}},
	}
	var out []perfQuery
	var srcTotal, tgtTotal float64
	for _, q := range queries {
		if len(keys) == 0 && q.name != "count(*)" {
			continue // an empty table: only its count
		}
		s, rows, err := timedMedian(q.source)
		if err != nil {
			return v, false, fmt.Errorf("performance %s on the source: %w", q.name, err)
		}
		t, _, err := timedMedian(q.target)
		if err != nil {
			return v, false, fmt.Errorf("performance %s on the target: %w", q.name, err)
		}
		out = append(out, perfQuery{Name: q.name, SourceMS: ms(s), TargetMS: ms(t), Speedup: ratio(s, t), Rows: rows})
		srcTotal, tgtTotal = srcTotal+s.Seconds(), tgtTotal+t.Seconds()
	}
	overall := ratio(time.Duration(srcTotal*float64(time.Second)), time.Duration(tgtTotal*float64(time.Second)))
	v.RecordsValidated = int64(len(out))
	v.Status = model.ValidationPassed
	if perfWarns(overall, time.Duration(tgtTotal*float64(time.Second))) {
		v.Status, v.IssuesFound = model.ValidationWarning, 1
	}
	v.IssueDetails = mustJSON(map[string]any{"speedup": overall, "queries": out})
	return v, true, nil
}

// perfWarns says whether timings warn: the target more than perfSlowerWarn times slower than the
// source, on queries that took it at least perfWarnFloor in all.
func perfWarns(speedup float64, target time.Duration) bool {
	return speedup > 0 && speedup < 1/perfSlowerWarn && target >= perfWarnFloor
}

// timedRows runs a query on the target and counts the rows it returns.
func (e *Engine) timedRows(ctx context.Context, q string, args ...any) (int, error) {
	rows, err := e.pool.Query(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		n++
	}
	return n, rows.Err()
}

// timedMedian runs f perfRounds times and returns the median duration and the rows of the last run.
func timedMedian(f func() (int, error)) (time.Duration, int, error) {
	ds := make([]time.Duration, 0, perfRounds)
	rows := 0
	for range perfRounds {
		start := time.Now()
		n, err := f()
		if err != nil {
			return 0, 0, err
		}
		ds, rows = append(ds, time.Since(start)), n
	}
	slices.Sort(ds)
	return ds[len(ds)/2], rows, nil
}

func ms(d time.Duration) float64 { return math.Round(float64(d.Microseconds())) / 1000 }

// ratio is source/target to three significant figures (0 when either took no measurable time).
// Not to a fixed number of decimals: a target 300 times slower would read 0.00, which perfWarns
// takes for "nothing measured".
func ratio(src, tgt time.Duration) float64 {
	if src <= 0 || tgt <= 0 {
		return 0
	}
	r := float64(src) / float64(tgt)
	scale := math.Pow(10, 2-math.Floor(math.Log10(r)))
	return math.Round(r*scale) / scale
}
