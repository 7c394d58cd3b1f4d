package dbcopy

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.temporal.io/sdk/testsuite"

	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
	"github.com/cutover/cutover/internal/metrics"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// read reads one metric's current value (a gauge, a counter, or a histogram's count and sum).
func read(t *testing.T, m prometheus.Metric) (value float64, count uint64) {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	switch {
	case d.Gauge != nil:
		return d.Gauge.GetValue(), 0
	case d.Counter != nil:
		return d.Counter.GetValue(), 0
	case d.Histogram != nil:
		return d.Histogram.GetSampleSum(), d.Histogram.GetSampleCount()
	}
	return 0, 0
}

// TestCaptureActivitiesSetLagAndWindowMetrics runs the capture activities of a SQLite source
// with the application writing: a drain sets the rate, the predicted final pass and the changes
// counter; the status sets the pending changes; the window lands once in the histogram (a retried
// recording does not count twice); removing the capture deletes the migration's gauges.
func TestCaptureActivitiesSetLagAndWindowMetrics(t *testing.T) {
	ctx := ctxT(t)
	app, err := dbcopytest.CreateApp(ctx, "sqlite", filepath.Join(t.TempDir(), "app.db"), 400, 600)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := spec.Parse([]byte(dbcopytest.AppSpec(app.SourceYAML(), 100)))
	if err != nil {
		t.Fatal(err)
	}
	a := &Activities{TargetURL: newTarget(t)}
	t.Cleanup(func() {
		for _, ce := range a.engines {
			ce.Close()
		}
	})
	m := Migration{ID: newID().String(), Type: model.MigrationIncremental, Spec: sp}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	run := func(fn, arg any, out any) {
		t.Helper()
		v, err := env.ExecuteActivity(fn, arg)
		if err != nil {
			t.Fatal(err)
		}
		if out != nil {
			if err := v.Get(out); err != nil {
				t.Fatal(err)
			}
		}
	}
	run(a.DBPrepare, m, nil)
	run(a.DBInstallCapture, m, nil)
	e, release, err := a.engine(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	copyAll(t, e)
	release()
	w, err := dbcopytest.NewWriter(app, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	step := func(n int) {
		for range n {
			if err := w.Step(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	step(300)

	changes0, _ := read(t, metrics.CaptureChanges.WithLabelValues(DirForward))
	var drained DrainResult
	run(a.DBDrain, DrainRequest{Migration: m, Source: "app"}, &drained)
	changes1, _ := read(t, metrics.CaptureChanges.WithLabelValues(DirForward))
	rate, _ := read(t, metrics.CaptureRate.WithLabelValues(m.ID, "app", DirForward))
	predicted, _ := read(t, metrics.CapturePredicted.WithLabelValues(m.ID))
	if drained.Stats.Changes == 0 {
		t.Fatalf("drained.Stats.Changes = %v, want != 0; after a drain of %+v in %.3f s: changes counter +%v, rate %v (status %v), predicted final pass %v",
			drained.Stats.Changes, drained.Stats, drained.Seconds, changes1-changes0, rate, drained.Capture.RowsPerSecond, predicted)
	}
	if changes1-changes0 != float64(drained.Stats.Changes) {
		t.Fatalf("changes1-changes0: want float64(drained.Stats.Changes); after a drain of %+v in %.3f s: changes counter +%v, rate %v (status %v), predicted final pass %v",
			drained.Stats, drained.Seconds, changes1-changes0, rate, drained.Capture.RowsPerSecond, predicted)
	}
	if rate <= 0 {
		t.Fatalf("rate: want > 0; after a drain of %+v in %.3f s: changes counter +%v, rate %v (status %v), predicted final pass %v",
			drained.Stats, drained.Seconds, changes1-changes0, rate, drained.Capture.RowsPerSecond, predicted)
	}
	if rate != drained.Capture.RowsPerSecond {
		t.Fatalf("rate: want drained.Capture.RowsPerSecond; after a drain of %+v in %.3f s: changes counter +%v, rate %v (status %v), predicted final pass %v",
			drained.Stats, drained.Seconds, changes1-changes0, rate, drained.Capture.RowsPerSecond, predicted)
	}
	if predicted != drained.Seconds {
		t.Fatalf("predicted: want drained.Seconds; after a drain of %+v in %.3f s: changes counter +%v, rate %v (status %v), predicted final pass %v",
			drained.Stats, drained.Seconds, changes1-changes0, rate, drained.Capture.RowsPerSecond, predicted)
	}
	if predicted <= 0 {
		t.Fatalf("predicted: want > 0; after a drain of %+v in %.3f s: changes counter +%v, rate %v (status %v), predicted final pass %v",
			drained.Stats, drained.Seconds, changes1-changes0, rate, drained.Capture.RowsPerSecond, predicted)
	}

	step(50) // captured, not drained yet
	var caps CaptureResult
	run(a.DBCaptureStatus, m, &caps)
	pending, _ := read(t, metrics.CapturePending.WithLabelValues(m.ID, "app", DirForward, "changes"))
	if len(caps.Sources) != 1 {
		t.Fatalf("len(caps.Sources) = %v, want 1; pending: gauge %v, status %+v",
			len(caps.Sources), pending, caps.Sources)
	}
	if caps.Sources[0].Pending < 50 {
		t.Fatalf("caps.Sources[0].Pending = %v, want >= 50; pending: gauge %v, status %+v",
			caps.Sources[0].Pending, pending, caps.Sources)
	}
	if pending != float64(caps.Sources[0].Pending) {
		t.Fatalf("pending: want float64(caps.Sources[0].Pending); pending: gauge %v, status %+v",
			pending, caps.Sources)
	}

	sum0, n0 := read(t, metrics.CutoverWindow)
	start := time.Now().UTC().Truncate(time.Microsecond)
	win := WindowRequest{Migration: m, StartedAt: start, CompletedAt: start.Add(4218 * time.Millisecond), DrainedChanges: 50, ValidatedRows: 50, Passed: true}
	run(a.DBRecordWindow, win, nil)
	run(a.DBRecordWindow, win, nil) // a retried attempt
	sum1, n1 := read(t, metrics.CutoverWindow)
	if n1-n0 != 1 {
		t.Fatalf("n1-n0: want 1; window histogram: +%d samples, +%v s; want one of 4.218 s", n1-n0, sum1-sum0)
	}
	if sum1-sum0 < 4.2179 {
		t.Fatalf("sum1-sum0: want >= 4.2179; window histogram: +%d samples, +%v s; want one of 4.218 s",
			n1-n0, sum1-sum0)
	}
	if sum1-sum0 > 4.2181 {
		t.Fatalf("sum1-sum0: want <= 4.2181; window histogram: +%d samples, +%v s; want one of 4.218 s",
			n1-n0, sum1-sum0)
	}

	run(a.DBRemoveCapture, m, nil)
	for _, gone := range []bool{
		metrics.CapturePending.DeleteLabelValues(m.ID, "app", DirForward, "changes"),
		metrics.CaptureRate.DeleteLabelValues(m.ID, "app", DirForward),
		metrics.CapturePredicted.DeleteLabelValues(m.ID),
	} {
		if gone {
			t.Fatal("a gauge of the removed capture is still exported")
		}
	}
}
