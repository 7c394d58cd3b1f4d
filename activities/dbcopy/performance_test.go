package dbcopy

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/internal/model"
)

// TestValidationTimesQueriesOnSourceAndTarget: an entity's validation records a performance
// result (the `performance` validation type): the same three queries timed on the source and the target, with
// the rows each returned and the target's speedup per query and overall.
func TestValidationTimesQueriesOnSourceAndTarget(t *testing.T) {
	ctx := ctxT(t)
	people := &dbcopytest.Table{Name: "people", PK: true, Columns: []string{"id", "name"}, Types: []string{"INTEGER", "TEXT"}}
	for i := 1; i <= 500; i++ {
		people.Rows = append(people.Rows, []any{int64(i), fmt.Sprintf("p%d", i)})
	}
	e := openEngine(t, []*dbcopytest.Table{people}, `name: perf
sources: {legacy: {driver: sqlite, path: %q}}
target: {create_tables: true}
entities:
  - {name: people, source_table: people, target_table: people, key: {source: id},
     columns: [{source: id, target: legacy_id, type: bigint}, {source: name, type: text}]}
`)
	copyAll(t, e)
	vs, err := e.Validate(ctx, "people")
	if err != nil {
		t.Fatal(err)
	}
	var perf *store.ValidationResult
	for i := range vs {
		if vs[i].ValidationType == model.ValidationPerformance {
			perf = &vs[i]
		}
	}
	if perf == nil {
		t.Fatal("no performance validation recorded")
	}
	var d struct {
		Speedup float64     `json:"speedup"`
		Queries []perfQuery `json:"queries"`
	}
	if err := json.Unmarshal(perf.IssueDetails, &d); err != nil {
		t.Fatal(err)
	}
	type shape struct {
		Name     string
		Rows     int
		Measured bool
	}
	var got []shape
	for _, q := range d.Queries {
		got = append(got, shape{q.Name, q.Rows, q.SourceMS > 0 && q.TargetMS > 0 && q.Speedup > 0})
	}
	want := []shape{{"count(*)", 500, true}, {"first 100 rows in key order", 100, true}, {"20 lookups by key", 20, true}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("timed queries (-want +got):\n%s", diff)
	}
	if d.Speedup <= 0 {
		t.Errorf("overall speedup %v", d.Speedup)
	}
	wantStatus := model.ValidationPassed
	var target float64
	for _, q := range d.Queries {
		target += q.TargetMS
	}
	if perfWarns(d.Speedup, time.Duration(target*float64(time.Millisecond))) {
		wantStatus = model.ValidationWarning
	}
	if perf.Status != wantStatus {
		t.Errorf("perf.Status: performance result %s over %d queries, want %s over 3 (speedup %.2f)",
			perf.Status, perf.RecordsValidated, wantStatus, d.Speedup)
	} else if perf.RecordsValidated != 3 {
		t.Errorf("perf.RecordsValidated: want 3; performance result %s over %d queries, want %s over 3 (speedup %.2f)",
			perf.Status, perf.RecordsValidated, wantStatus, d.Speedup)
	}
	t.Logf("target speedup %.2f×: %+v", d.Speedup, d.Queries)
}

// TestPerformanceWarnsOnlyOnFeltSlowness: a target slower than the source warns only when its
// queries take long enough to matter; a small table's milliseconds are noise, not a verdict.
func TestPerformanceWarnsOnlyOnFeltSlowness(t *testing.T) {
	for _, c := range []struct {
		speedup float64
		target  time.Duration
		want    bool
	}{
		{0.1, 3 * time.Millisecond, false}, // SQLite in process beats a socket on 500 rows
		{0.1, perfWarnFloor, true},         // ten times slower and felt
		{0.6, 2 * time.Second, false},      // slower, within the allowed factor
		{3, 2 * time.Second, false},        // faster
		{0, 2 * time.Second, false},        // nothing measured
		{0.49, perfWarnFloor + time.Second, true},
	} {
		if got := perfWarns(c.speedup, c.target); got != c.want {
			t.Errorf("perfWarns(%.2f, %s) = %v, want %v", c.speedup, c.target, got, c.want)
		}
	}
}

// TestSpeedupIsNeverRoundedAway: a target hundreds of times slower than the source keeps a
// speedup above zero (zero means "nothing measured"), so it still warns once it is felt.
func TestSpeedupIsNeverRoundedAway(t *testing.T) {
	for _, c := range []struct {
		src, tgt time.Duration
		want     float64
	}{
		{18 * time.Microsecond, 6240 * time.Microsecond, 0.00288},
		{time.Millisecond, 3 * time.Millisecond, 0.333},
		{2 * time.Second, time.Second, 2},
		{12345 * time.Millisecond, time.Second, 12.3},
		{0, time.Second, 0},
		{time.Second, 0, 0},
	} {
		if got := ratio(c.src, c.tgt); got != c.want {
			t.Errorf("ratio(%s, %s) = %v, want %v", c.src, c.tgt, got, c.want)
		}
	}
	if !perfWarns(ratio(10*time.Millisecond, perfWarnFloor*3), perfWarnFloor*3) {
		t.Errorf("perfWarns: a target %v slower than a %v source, %v in all, does not warn",
			perfWarnFloor*3, 10*time.Millisecond, perfWarnFloor*3)
	}
}

// TestPerformanceWarningsNeverStopAMigration: a slow target warns; the warning does not fail
// the validation, unlike any other warning without allow_warnings.
func TestPerformanceWarningsNeverStopAMigration(t *testing.T) {
	for _, c := range []struct {
		typ  model.ValidationType
		want bool
	}{
		{model.ValidationPerformance, true},
		{model.ValidationBusinessRule, false},
	} {
		vs := []store.ValidationResult{{ValidationType: c.typ, Status: model.ValidationWarning}}
		if got := Passed(vs, false); got != c.want {
			t.Errorf("a %s warning: Passed = %v, want %v", c.typ, got, c.want)
		}
	}
}
