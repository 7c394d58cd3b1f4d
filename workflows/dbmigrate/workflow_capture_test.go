package dbmigrate

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/testsuite"

	"github.com/cutover/cutover/activities/dbcopy"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// mockCapture stands in for the change-capture activities.
func mockCapture(env *testsuite.TestWorkflowEnvironment, rec *recorder) {
	var a *dbcopy.Activities
	status := func(removed bool) []dbmigrateapi.CaptureStatus {
		return []dbmigrateapi.CaptureStatus{{Source: "legacy", Direction: dbcopy.DirForward, Method: dbcopy.MethodSQLiteTriggers, Removed: removed}}
	}
	env.OnActivity(a.DBInstallCapture, mock.Anything, mock.Anything).Return(func(context.Context, dbcopy.Migration) (dbcopy.CaptureResult, error) {
		rec.log("install-capture")
		return dbcopy.CaptureResult{Sources: status(false)}, nil
	})
	env.OnActivity(a.DBDrain, mock.Anything, mock.Anything).Return(func(_ context.Context, r dbcopy.DrainRequest) (dbcopy.DrainResult, error) {
		rec.log("drain " + r.Source)
		return dbcopy.DrainResult{Source: r.Source, Stats: dbcopy.DrainStats{Changes: 400, Upserted: 300, Deleted: 100},
			Seconds: 2, Capture: status(false)[0], Entities: []dbcopy.EntityCounters{{Entity: "offices", Total: 120, Processed: 120}}}, nil
	}).After(rec.drainDelay)
	env.OnActivity(a.DBValidateBeforeFreeze, mock.Anything, mock.Anything).Return(func(_ context.Context, r dbcopy.ValidateRequest) (dbcopy.FreezeValidation, error) {
		rec.log("validate-full " + r.Entity)
		return dbcopy.FreezeValidation{Summary: dbmigrateapi.ValidationSummary{Entity: r.Entity, Passed: true}, Since: 7, Deferred: 1}, nil
	})
	env.OnActivity(a.DBValidateChanged, mock.Anything, mock.Anything).Return(func(_ context.Context, r dbcopy.ChangedRequest) (dbmigrateapi.ValidationSummary, error) {
		rec.log(fmt.Sprintf("validate-changed %s since %d", r.Entity, r.Since))
		return dbmigrateapi.ValidationSummary{Entity: r.Entity, Passed: true, Status: model.ValidationPassed,
			Checks: []dbmigrateapi.ValidationCheck{{Type: model.ValidationCompleteness, Status: model.ValidationPassed, Rows: 30}}}, nil
	}).After(20 * time.Second)
	env.OnActivity(a.DBRecordWindow, mock.Anything, mock.Anything).Return(func(_ context.Context, r dbcopy.WindowRequest) error {
		rec.mu.Lock()
		rec.window = &r
		rec.mu.Unlock()
		return nil
	})
	env.OnActivity(a.DBRemoveCapture, mock.Anything, mock.Anything).Return(func(context.Context, dbcopy.Migration) (dbcopy.CaptureResult, error) {
		rec.log("remove-capture")
		return dbcopy.CaptureResult{Sources: status(true)}, nil
	})
}

// capturedInput is the test migration with its source followed by change capture.
func capturedInput(t *testing.T, cfg dbmigrateapi.Config) dbmigrateapi.Input {
	in := testInput(t, model.MigrationIncremental, cfg)
	src := in.Spec.Sources["legacy"]
	src.Capture = ""
	in.Spec.Sources["legacy"] = src
	return in
}

// TestCapturedMigrationFreezesOnlyForChanges: the capture is installed before any row is
// copied; catch-up passes drain it (no key-cursor copy); the full validation runs during
// catch-up, before the cutover; the freeze drains and validates only what changed since, its
// window is measured and recorded, and the capture is removed before the migration completes.
func TestCapturedMigrationFreezesOnlyForChanges(t *testing.T) {
	rec := &recorder{drainDelay: 10 * time.Second}
	env := newEnv(t, rec)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(dbmigrateapi.SignalCutover, dbmigrateapi.CutoverRequest{RequestedBy: "ops"})
	}, 2*time.Hour+30*time.Minute)
	env.ExecuteWorkflow(dbmigrateapi.WorkflowName, capturedInput(t, dbmigrateapi.Config{SyncInterval: time.Hour}))
	st := result(t, env)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if st.Status != model.OrchCompleted {
		t.Fatalf("st.Status = %v, want model.OrchCompleted; state %+v capture %+v", st.Status, st, st.Capture)
	}
	if st.Capture == nil {
		t.Fatalf("st.Capture is nil; state %+v capture %+v", st, st.Capture)
	}
	if !st.Capture.Removed {
		t.Fatalf("st.Capture.Removed is false; state %+v capture %+v", st, st.Capture)
	}
	idx := rec.index
	if idx("install-capture") < 0 {
		t.Fatalf("want idx(\"install-capture\") >= 0; capture not installed before the load: %v", rec.events)
	}
	if idx("install-capture") > idx("start offices") {
		t.Fatalf("want idx(\"install-capture\") <= idx(\"start offices\"); capture not installed before the load: %v",
			rec.events)
	}
	for _, c := range rec.chunkCalls {
		if c.Cursor.Sync {
			t.Fatalf("a captured migration copied by key cursor: %+v", c.Cursor)
		}
	}
	if idx("validate-full offices") < idx("drain legacy") {
		t.Fatalf("want idx(\"validate-full offices\") >= idx(\"drain legacy\"); full validation not run after the first drain: %v",
			rec.events)
	}
	if idx("validate-full projects") < 0 {
		t.Fatalf("want idx(\"validate-full projects\") >= 0; full validation not run after the first drain: %v",
			rec.events)
	}
	if idx("validate offices") >= 0 {
		t.Fatalf("the freeze ran a full validation: %v", rec.events)
	}
	last := strings.Join(rec.events[len(rec.events)-6:], ",")
	want := "drain legacy,validate-changed offices since 7,validate-changed profiles since 7," +
		"validate-changed doctors since 7,validate-changed projects since 7,remove-capture"
	if last != want {
		t.Fatalf("freeze events %s, want %s", last, want)
	}
	// The window: one drain (10 s) and four validations of what changed (20 s each).
	if st.CutoverWindowSeconds != 90 {
		t.Fatalf("st.CutoverWindowSeconds: want 90; window %v s (final pass %v s), recorded %+v",
			st.CutoverWindowSeconds, st.FinalPassSeconds, rec.window)
	}
	if rec.window == nil {
		t.Fatalf("rec.window is nil; window %v s (final pass %v s), recorded %+v",
			st.CutoverWindowSeconds, st.FinalPassSeconds, rec.window)
	}
	if rec.window.CompletedAt.Sub(rec.window.StartedAt) != 90*time.Second {
		t.Fatalf("want rec.window.CompletedAt.Sub(rec.window.StartedAt) == 90*time.Second; window %v s (final pass %v s), recorded %+v",
			st.CutoverWindowSeconds, st.FinalPassSeconds, rec.window)
	}
	if rec.window.DrainedChanges != 400 {
		t.Fatalf("rec.window.DrainedChanges = %v, want 400; window %v s (final pass %v s), recorded %+v",
			rec.window.DrainedChanges, st.CutoverWindowSeconds, st.FinalPassSeconds, rec.window)
	}
	if !rec.window.Passed {
		t.Fatalf("rec.window.Passed is false; window %v s (final pass %v s), recorded %+v",
			st.CutoverWindowSeconds, st.FinalPassSeconds, rec.window)
	}
	if st.FinalPassSeconds != 10 {
		t.Fatalf("st.FinalPassSeconds: want 10; window %v s (final pass %v s), recorded %+v",
			st.CutoverWindowSeconds, st.FinalPassSeconds, rec.window)
	}
	if st.Capture.ChangesPending != 400 {
		t.Fatalf("st.Capture.ChangesPending = %v, want 400; lag %+v", st.Capture.ChangesPending, st.Capture)
	}
	if st.Capture.RowsPerSecond != 200 {
		t.Fatalf("st.Capture.RowsPerSecond = %v, want 200; lag %+v", st.Capture.RowsPerSecond, st.Capture)
	}
	if st.Capture.PredictedFinalSeconds != 2 {
		t.Fatalf("st.Capture.PredictedFinalSeconds = %v, want 2; lag %+v",
			st.Capture.PredictedFinalSeconds, st.Capture)
	}
	if !strings.Contains(Details(&st), "cutover window: 90.0 s") {
		t.Fatalf("details: %s", Details(&st))
	}
}

// TestCapturedRollbackRemovesCapture: a rollback during catch-up removes the capture from the
// source before it deletes what the migration wrote.
func TestCapturedRollbackRemovesCapture(t *testing.T) {
	rec := &recorder{}
	env := newEnv(t, rec)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(dbmigrateapi.SignalRollback, dbmigrateapi.RollbackRequest{Reason: "r", RequestedBy: "ops"})
	}, 90*time.Minute)
	env.ExecuteWorkflow(dbmigrateapi.WorkflowName, capturedInput(t, dbmigrateapi.Config{SyncInterval: time.Hour}))
	st := result(t, env)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if st.Status != model.OrchPending || !st.RolledBack || !st.Capture.Removed {
		t.Fatalf("state %+v", st)
	}
	if r := rec.index("remove-capture"); r < 0 {
		t.Fatalf("r = %v, want >= 0; capture not removed before the rollback: %v", r, rec.events)
	} else if r > rec.index("rollback projects") {
		t.Fatalf("r = %v, want <= rec.index(\"rollback projects\"); capture not removed before the rollback: %v",
			r, rec.events)
	}
}

// mockReverse stands in for the reverse flow's activities.
func mockReverse(env *testsuite.TestWorkflowEnvironment, rec *recorder) {
	var a *dbcopy.Activities
	status := func(removed bool) dbmigrateapi.CaptureStatus {
		return dbmigrateapi.CaptureStatus{Source: "legacy", Direction: dbcopy.DirReverse, Method: dbcopy.MethodPGLogical,
			Slot: "cutover_reverse", Removed: removed}
	}
	env.OnActivity(a.DBInstallReverse, mock.Anything, mock.Anything).Return(func(context.Context, dbcopy.Migration) (dbcopy.CaptureResult, error) {
		rec.log("install-reverse")
		return dbcopy.CaptureResult{Sources: []dbmigrateapi.CaptureStatus{status(false)}}, nil
	})
	env.OnActivity(a.DBReverseDrain, mock.Anything, mock.Anything).Return(func(context.Context, dbcopy.Migration) (dbcopy.DrainResult, error) {
		rec.log("reverse-drain")
		return dbcopy.DrainResult{Source: "legacy", Stats: dbcopy.DrainStats{Changes: 5, Upserted: 5}, Seconds: 1, Capture: status(false)}, nil
	})
	env.OnActivity(a.DBRemoveReverse, mock.Anything, mock.Anything).Return(func(context.Context, dbcopy.Migration) (dbcopy.CaptureResult, error) {
		rec.log("remove-reverse")
		return dbcopy.CaptureResult{Sources: []dbmigrateapi.CaptureStatus{status(true)}}, nil
	})
}

// TestReverseFlowRunsUntilClose: with target.reverse_flow, a validated cutover starts the
// reverse flow (phase reverse_sync, the migration still running) instead of completing; a close
// asked for before then is refused; reverse passes run every sync interval; `db close` drains a
// last time, removes the flow (its slot) and completes the migration. A rollback in that phase
// drains a last time and removes the flow before it rolls the entities back.
func TestReverseFlowRunsUntilClose(t *testing.T) {
	for _, end := range []string{"close", "rollback"} {
		t.Run(end, func(t *testing.T) {
			rec := &recorder{}
			env := newEnv(t, rec)
			mockReverse(env, rec)
			in := capturedInput(t, dbmigrateapi.Config{SyncInterval: time.Hour})
			in.Spec.Target.ReverseFlow = true
			var during dbmigrateapi.State
			env.RegisterDelayedCallback(func() {
				env.SignalWorkflow(dbmigrateapi.SignalClose, dbmigrateapi.CloseRequest{RequestedBy: "early"})
			}, 90*time.Minute)
			env.RegisterDelayedCallback(func() {
				env.SignalWorkflow(dbmigrateapi.SignalCutover, dbmigrateapi.CutoverRequest{RequestedBy: "ops"})
			}, 2*time.Hour+30*time.Minute)
			env.RegisterDelayedCallback(func() {
				v, err := env.QueryWorkflow(dbmigrateapi.QueryStatus)
				if err == nil {
					_ = v.Get(&during)
				}
				rec.log(end)
				if end == "close" {
					env.SignalWorkflow(dbmigrateapi.SignalClose, dbmigrateapi.CloseRequest{RequestedBy: "ops"})
				} else {
					env.SignalWorkflow(dbmigrateapi.SignalRollback, dbmigrateapi.RollbackRequest{Reason: "back", RequestedBy: "ops"})
				}
			}, 6*time.Hour)
			env.ExecuteWorkflow(dbmigrateapi.WorkflowName, in)
			st := result(t, env)
			if err := env.GetWorkflowError(); err != nil {
				t.Fatal(err)
			}
			if during.Phase != dbmigrateapi.PhaseReverseSync {
				t.Fatalf("during.Phase: want dbmigrateapi.PhaseReverseSync; before %s: phase %s status %s reverse %+v",
					end, during.Phase, during.Status, during.Reverse)
			}
			if during.Status != model.OrchRunning {
				t.Fatalf("during.Status: want model.OrchRunning; before %s: phase %s status %s reverse %+v",
					end, during.Phase, during.Status, during.Reverse)
			}
			if during.Reverse == nil {
				t.Fatalf("during.Reverse is nil; before %s: phase %s status %s reverse %+v",
					end, during.Phase, during.Status, during.Reverse)
			}
			if during.Reverse.Removed {
				t.Fatalf("during.Reverse.Removed is true; before %s: phase %s status %s reverse %+v",
					end, during.Phase, during.Status, during.Reverse)
			}
			if during.Reverse.ChangesApplied == 0 {
				t.Fatalf("during.Reverse.ChangesApplied = %v, want != 0; before %s: phase %s status %s reverse %+v",
					during.Reverse.ChangesApplied, end, during.Phase, during.Status, during.Reverse)
			}
			if !strings.Contains(strings.Join(st.Refused, ";"), "close refused: phase is") {
				t.Fatalf("a close during catch-up was not refused: %v", st.Refused)
			}
			if rec.index("install-reverse") < rec.index("remove-capture") {
				t.Fatalf("reverse flow started before the forward capture was removed: %v", rec.events)
			}
			passes := 0
			for _, ev := range rec.events {
				if ev == "reverse-drain" {
					passes++
				}
			}
			// Three sync intervals in reverse_sync, then the last drain at close or rollback.
			if passes < 3 {
				t.Fatalf("%d reverse passes: %v", passes, rec.events)
			}
			rm := rec.index("remove-reverse")
			if rm < 0 {
				t.Fatalf("rm = %v, want >= 0; the flow was not drained a last time and removed: %v, reverse %+v",
					rm, rec.events, st.Reverse)
			}
			if rec.events[rm-1] != "reverse-drain" {
				t.Fatalf("rec.events[rm-1] = %v, want \"reverse-drain\"; the flow was not drained a last time and removed: %v, reverse %+v",
					rec.events[rm-1], rec.events, st.Reverse)
			}
			if rm-1 < rec.index(end) {
				t.Fatalf("rm-1 = %v, want >= rec.index(end); the flow was not drained a last time and removed: %v, reverse %+v",
					rm-1, rec.events, st.Reverse)
			}
			if st.Reverse == nil {
				t.Fatalf("st.Reverse is nil; the flow was not drained a last time and removed: %v, reverse %+v",
					rec.events, st.Reverse)
			}
			if !st.Reverse.Removed {
				t.Fatalf("st.Reverse.Removed is false; the flow was not drained a last time and removed: %v, reverse %+v",
					rec.events, st.Reverse)
			}
			if end == "close" {
				if st.Status != model.OrchCompleted {
					t.Fatalf("st.Status: want model.OrchCompleted; after close: status %s rolled back %v, events %v",
						st.Status, st.RolledBack, rec.events)
				}
				if st.RolledBack {
					t.Fatalf("st.RolledBack is true; after close: status %s rolled back %v, events %v",
						st.Status, st.RolledBack, rec.events)
				}
				if rec.index("rollback projects") >= 0 {
					t.Fatalf("want rec.index(\"rollback projects\") < 0; after close: status %s rolled back %v, events %v",
						st.Status, st.RolledBack, rec.events)
				}
				return
			}
			if !st.RolledBack || rec.index("rollback projects") < rm {
				t.Fatalf("after rollback: status %s rolled back %v, events %v", st.Status, st.RolledBack, rec.events)
			}
		})
	}
}
