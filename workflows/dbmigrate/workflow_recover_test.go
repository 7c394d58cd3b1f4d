package dbmigrate

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cutover/cutover/activities/dbcopy"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// endedState is a migration that ended with status, its entities in the given statuses
// (testOrder's order).
func endedState(status model.OrchestrationStatus, entities ...model.EntityStatus) *dbmigrateapi.State {
	st := &dbmigrateapi.State{MigrationID: "3f1c2a1e-1111-4a4a-8a8a-000000000001", MigrationType: model.MigrationFull,
		Status: status, Phase: dbmigrateapi.PhaseDone, TotalEntities: int32(len(testOrder)), Error: "it ended",
		Transitions: []model.OrchestrationStatus{model.OrchPending, model.OrchRunning, status}}
	for i, n := range testOrder {
		st.Entities = append(st.Entities, &dbmigrateapi.EntityState{Name: n, Status: entities[i], Total: 100})
	}
	return st
}

// TestRecoveryRunsTakeUpEndedMigrations: a new run over an ended migration's state resumes a
// failed one (entities it completed are not loaded again), accepts its quarantined rows and
// completes, retries its quarantined rows (those of an entity stopped mid-load before its load
// resumes), rolls a completed one back in reverse order, and
// refuses what the state does not allow without touching the ledger.
func TestRecoveryRunsTakeUpEndedMigrations(t *testing.T) {
	done, failed, pending := model.EntityCompleted, model.EntityFailed, model.EntityPending
	for _, tc := range []struct {
		name        string
		state       *dbmigrateapi.State
		action      dbmigrateapi.RecoveryAction
		transitions string
		status      model.OrchestrationStatus
		has, hasNot []string
	}{
		{name: "retry a failed load", state: endedState(model.OrchFailed, done, failed, pending, done),
			action: dbmigrateapi.RecoverRetry, transitions: "[running completed]", status: model.OrchCompleted,
			has: []string{"start profiles", "start doctors", "validate projects"}, hasNot: []string{"start offices", "start projects"}},
		{name: "accept the quarantine", state: endedState(model.OrchFailed, done, done, done, done),
			action: dbmigrateapi.RecoverAccept, transitions: "[running completed]", status: model.OrchCompleted,
			has: []string{"accept ops: legacy rows", "validate offices"}, hasNot: []string{"start offices"}},
		{name: "retry quarantined rows of a completed one", state: endedState(model.OrchCompleted, done, done, done, done),
			action: dbmigrateapi.RecoverRetryFailed, transitions: "[running completed]", status: model.OrchCompleted,
			has: []string{"retry offices", "retry projects", "validate doctors"}},
		{name: "retry quarantined rows of a failed one", state: endedState(model.OrchFailed, done, failed, pending, done),
			action: dbmigrateapi.RecoverRetryFailed, transitions: "[running completed]", status: model.OrchCompleted,
			has: []string{"retry offices", "retry profiles", "start profiles", "start doctors"}, hasNot: []string{"retry doctors"}},
		{name: "roll back a completed one", state: endedState(model.OrchCompleted, done, done, done, done),
			action: dbmigrateapi.RecoverRollback, transitions: "[rolling_back pending]", status: model.OrchPending,
			has: []string{"rollback projects", "rollback offices"}, hasNot: []string{"validate offices"}},
		{name: "roll back a failed one", state: endedState(model.OrchFailed, done, failed, pending, pending),
			action: dbmigrateapi.RecoverRollback, transitions: "[rolling_back pending]", status: model.OrchPending,
			has: []string{"rollback offices", "rollback doctors"}},
		{name: "retry one that failed before it ran", state: &dbmigrateapi.State{MigrationID: "3f1c2a1e-1111-4a4a-8a8a-000000000001",
			MigrationType: model.MigrationFull, Status: model.OrchFailed, Phase: dbmigrateapi.PhaseDone, Error: "prepare: permission denied"},
			action: dbmigrateapi.RecoverRetry, transitions: "[running completed]", status: model.OrchCompleted,
			has: []string{"start offices", "start projects", "validate doctors"}},
		{name: "rollback refused on one that failed before it ran", state: &dbmigrateapi.State{Status: model.OrchFailed, Error: "prepare: x"},
			action: dbmigrateapi.RecoverRollback, transitions: "[]", status: model.OrchFailed, hasNot: []string{"rollback offices"}},
		{name: "retry refused on a completed one", state: endedState(model.OrchCompleted, done, done, done, done),
			action: dbmigrateapi.RecoverRetry, transitions: "[]", status: model.OrchCompleted, hasNot: []string{"validate offices"}},
		{name: "accept refused after a rollback", state: endedState(model.OrchPending, pending, pending, pending, pending),
			action: dbmigrateapi.RecoverAccept, transitions: "[]", status: model.OrchPending, hasNot: []string{"accept ops: legacy rows"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			env := newEnv(t, rec)
			in := testInput(t, model.MigrationFull, dbmigrateapi.Config{})
			in.Resume = tc.state
			in.Recover = &dbmigrateapi.Recovery{Action: tc.action, PreviousRunID: "run-1", RequestedBy: "ops",
				Reason: "legacy rows", AcceptanceID: "6d3c1a50-0000-4000-8000-000000000001"}
			env.ExecuteWorkflow(dbmigrateapi.WorkflowName, in)
			st := result(t, env)
			if got := fmt.Sprint(rec.transitions); got != tc.transitions {
				t.Errorf("got: want tc.transitions; ledger transitions %s, status %s; want %s, %s (error %q)",
					got, st.Status, tc.transitions, tc.status, st.Error)
			} else if st.Status != tc.status {
				t.Errorf("st.Status: want tc.status; ledger transitions %s, status %s; want %s, %s (error %q)",
					got, st.Status, tc.transitions, tc.status, st.Error)
			}
			want := []dbmigrateapi.RecoveryRecord{{Action: tc.action, PreviousRunID: "run-1", RequestedBy: "ops",
				Reason: "legacy rows", From: tc.state.Status}}
			if diff := cmp.Diff(want, st.Recoveries); diff != "" {
				t.Errorf("recoveries (-want +got):\n%s", diff)
			}
			events := strings.Join(rec.events, "\n")
			for _, ev := range tc.has {
				if rec.index(ev) < 0 {
					t.Errorf("no %q in\n%s", ev, events)
				}
			}
			for _, ev := range tc.hasNot {
				if rec.index(ev) >= 0 {
					t.Errorf("%q in\n%s", ev, events)
				}
			}
			// An entity stopped mid-load has its quarantined rows re-driven before its load resumes
			// (resuming first would stop it at the same error limit again).
			if i, j := rec.index("retry profiles"), rec.index("start profiles"); j >= 0 && i > j {
				t.Errorf("profiles' rows re-driven after its load resumed:\n%s", events)
			}
			if tc.action == dbmigrateapi.RecoverRollback && rec.index("rollback projects") > rec.index("rollback offices") {
				t.Errorf("rolled back out of reverse order:\n%s", events)
			}
		})
	}
}

// TestFailureBeforeRunningEndsFailed: a migration whose preparation fails (the target refused
// it) ends failed with the cause, not "pending, phase done", without a ledger write to the
// database that failed.
func TestFailureBeforeRunningEndsFailed(t *testing.T) {
	rec := &recorder{prepareErr: temporal.NewNonRetryableApplicationError("target: permission denied to create "+
		"tables: grant CREATE on the database, then cutover db retry", dbcopy.ErrTypeSpec, nil)}
	env := newEnv(t, rec)
	env.ExecuteWorkflow(dbmigrateapi.WorkflowName, testInput(t, model.MigrationFull, dbmigrateapi.Config{}))
	st := result(t, env)
	if st.Status != model.OrchFailed {
		t.Errorf("st.Status: want model.OrchFailed; status %s, phase %s, error %q; want failed, done, the cause",
			st.Status, st.Phase, st.Error)
	} else if st.Phase != dbmigrateapi.PhaseDone {
		t.Errorf("st.Phase: want dbmigrateapi.PhaseDone; status %s, phase %s, error %q; want failed, done, the cause",
			st.Status, st.Phase, st.Error)
	} else if !strings.Contains(st.Error, "grant CREATE") {
		t.Errorf("strings.Contains(st.Error, \"grant CREATE\") is false; status %s, phase %s, error %q; want failed, done, the cause",
			st.Status, st.Phase, st.Error)
	}
	if len(rec.transitions) != 0 {
		t.Errorf("ledger transitions %v, want none", rec.transitions)
	}
	if why := dbmigrateapi.RecoveryRefusal(&st, dbmigrateapi.RecoverRetry); why != "" {
		t.Errorf("retry refused: %s", why)
	}
}

// TestOrphansRedrivenAfterTheirParents: an entity with quarantined rows has its rows without a
// parent re-driven when it completes (after its parents) and after every catch-up pass, not
// again at the end of the load when its parents gained no row since
// (TestEndOfLoadRedrivesAfterArrivals); an entity without quarantined rows is not asked.
func TestOrphansRedrivenAfterTheirParents(t *testing.T) {
	rec := &recorder{failed: map[string]int64{"doctors": 1}}
	env := newEnv(t, rec)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(dbmigrateapi.SignalCutover, dbmigrateapi.CutoverRequest{RequestedBy: "ops"})
	}, 90*time.Second)
	env.ExecuteWorkflow(dbmigrateapi.WorkflowName, testInput(t, model.MigrationIncremental, dbmigrateapi.Config{SyncInterval: time.Minute}))
	st := result(t, env)
	if st.Passes < 2 {
		t.Fatalf("%d catch-up passes (error %q)", st.Passes, st.Error)
	}
	var got []string
	for _, ev := range rec.events {
		if strings.HasPrefix(ev, "orphans ") || ev == "done doctors" || strings.HasPrefix(ev, "sync doctors") {
			got = append(got, ev)
		}
	}
	// On completion, after each pass (its sync first).
	want := []string{"done doctors", "orphans doctors"}
	for i := 0; i < st.Passes; i++ {
		want = append(want, "sync doctors", "orphans doctors")
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("re-drives (-want +got):\n%s\nall events:\n%s", diff, strings.Join(rec.events, "\n"))
	}
}

// TestAcceptedRowsLeaveTheErrorLimit: a migration whose entity stopped at its error limit (5
// rows quarantined, limit 2) is taken up by accept_errors: the entity resumes with the accepted
// rows off its count and the migration completes; a resume without the acceptance (retry)
// stops at the same limit again, naming it.
func TestAcceptedRowsLeaveTheErrorLimit(t *testing.T) {
	for _, tc := range []struct {
		action dbmigrateapi.RecoveryAction
		status model.OrchestrationStatus
	}{
		{dbmigrateapi.RecoverAccept, model.OrchCompleted},
		{dbmigrateapi.RecoverRetry, model.OrchFailed},
	} {
		t.Run(string(tc.action), func(t *testing.T) {
			rec := &recorder{failed: map[string]int64{"profiles": 5}}
			env := newEnv(t, rec)
			in := testInput(t, model.MigrationFull, dbmigrateapi.Config{MaxErrors: 2})
			ended := endedState(model.OrchFailed, model.EntityCompleted, model.EntityFailed, model.EntityPending,
				model.EntityCompleted)
			ended.Entities[1].Failed = 5
			in.Resume = ended
			in.Recover = &dbmigrateapi.Recovery{Action: tc.action, PreviousRunID: "run-1", RequestedBy: "ops",
				Reason: "five legacy rows", AcceptanceID: "6d3c1a50-0000-4000-8000-000000000002"}
			env.ExecuteWorkflow(dbmigrateapi.WorkflowName, in)
			st := result(t, env)
			if st.Status != tc.status {
				t.Fatalf("st.Status = %s, want %s (error %q)", st.Status, tc.status, st.Error)
			}
			if tc.status == model.OrchFailed && !strings.Contains(st.Error, "exceed the limit of 2") {
				t.Errorf("st.Error = %q, want the error limit named", st.Error)
			}
			if rec.index("start profiles") < 0 {
				t.Errorf("profiles not resumed:\n%s", strings.Join(rec.events, "\n"))
			}
		})
	}
}

// TestEndOfLoadRedrivesRunSideBySide: at the end of the load, the re-drives of offices and
// profiles (neither depends on the other; each is held until the other is in flight, or 300
// ms) overlap, and doctors' (it references both) starts after both ended. The end of the load
// re-drives every entity with quarantined rows here, as executions recorded before
// redriveArrivalsChange do, and as every catch-up pass does.
func TestEndOfLoadRedrivesRunSideBySide(t *testing.T) {
	rec := &recorder{failed: map[string]int64{"offices": 1, "profiles": 1, "doctors": 1}}
	var mu sync.Mutex
	inFlight := map[string]bool{}
	rec.orphanHook = func(entity string) {
		mu.Lock()
		inFlight[entity] = true
		mu.Unlock()
		defer func() { mu.Lock(); delete(inFlight, entity); mu.Unlock() }()
		other := map[string]string{"offices": "profiles", "profiles": "offices"}[entity]
		if other == "" {
			return
		}
		for deadline := time.Now().Add(300 * time.Millisecond); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			mu.Lock()
			there := inFlight[other]
			mu.Unlock()
			if there {
				return
			}
		}
	}
	env := newEnv(t, rec)
	env.OnGetVersion(redriveArrivalsChange, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	env.ExecuteWorkflow(dbmigrateapi.WorkflowName, testInput(t, model.MigrationFull, dbmigrateapi.Config{Parallelism: 2}))
	result(t, env)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	last := func(ev string) int { return lastIndex(rec.events, ev) }
	if last("orphans offices") > last("orphans-end profiles") {
		t.Errorf("offices' last re-drive started after profiles' ended: %v", rec.events)
	}
	if last("orphans profiles") > last("orphans-end offices") {
		t.Errorf("profiles' last re-drive started after offices' ended: %v", rec.events)
	}
	for _, parent := range []string{"offices", "profiles"} {
		if last("orphans doctors") < last("orphans-end "+parent) {
			t.Errorf("doctors' last re-drive started before %s's ended: %v", parent, rec.events)
		}
	}
}

// TestEndOfLoadRedrivesAfterArrivals: the end of the load re-drives only an entity whose parents
// gained rows after its last re-drive started. doctors completes while offices' re-drive, which
// loads a row, is still in flight (held until doctors' re-drive started): doctors is re-driven
// once more at the end; profiles, whose re-drive loads nothing, and offices, which references
// nothing, are not.
func TestEndOfLoadRedrivesAfterArrivals(t *testing.T) {
	rec := &recorder{failed: map[string]int64{"offices": 1, "profiles": 1, "doctors": 1},
		orphansLoadAt: map[string]int{"offices": 1}}
	rec.orphanHook = func(entity string) {
		if entity != "offices" {
			return
		}
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			rec.mu.Lock()
			there := slices.Contains(rec.events, "orphans doctors")
			rec.mu.Unlock()
			if there {
				return
			}
		}
		t.Error("doctors' re-drive never started while offices' was in flight")
	}
	env := newEnv(t, rec)
	env.ExecuteWorkflow(dbmigrateapi.WorkflowName, testInput(t, model.MigrationFull, dbmigrateapi.Config{Parallelism: 2}))
	result(t, env)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	// doctors is re-driven when it completes and once more at the end; a third time, when
	// profiles' Finalize ends after doctors completed (profiles' completion re-drives its
	// completed dependents), depends on which of the two ends first.
	got := maps.Clone(rec.orphanCalls)
	if got["doctors"] >= 2 {
		got["doctors"] = 2
	}
	want := map[string]int{"offices": 1, "profiles": 1, "doctors": 2}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("re-drives per entity (-want +got, doctors' above 2 counted as 2):\n%s\nall events:\n%s", diff, strings.Join(rec.events, "\n"))
	}
	if last := lastIndex(rec.events, "orphans doctors"); last < lastIndex(rec.events, "orphans-end offices") {
		t.Errorf("doctors' last re-drive started before offices' loaded its row: %v", rec.events)
	}
}

// TestDependentDoneFirstIsRedrivenOnce: doctors starts when its parents loaded and completes
// while profiles still finalizes (held here until doctors is done); doctors' completion
// re-drives its orphans, and profiles' completion, which brought no row since, does not again
// (completionRedrivesDueChange), nor does the end of the load.
func TestDependentDoneFirstIsRedrivenOnce(t *testing.T) {
	rec := &recorder{failed: map[string]int64{"doctors": 1}}
	var held atomic.Bool
	rec.finalizeHook = func(entity string) {
		if entity != "profiles" {
			return
		}
		done := func() bool {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			return rec.index("done doctors") >= 0
		}
		for deadline := time.Now().Add(2 * time.Second); !done() && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
		held.Store(done())
	}
	env := newEnv(t, rec)
	env.ExecuteWorkflow(dbmigrateapi.WorkflowName, testInput(t, model.MigrationFull, dbmigrateapi.Config{}))
	st := result(t, env)
	if st.Status != model.OrchCompleted {
		t.Fatalf("st.Status = %s, want completed (error %q)", st.Status, st.Error)
	}
	if !held.Load() {
		t.Fatalf("doctors did not complete while profiles finalized:\n%s", strings.Join(rec.events, "\n"))
	}
	if n := rec.count("orphans doctors"); n != 1 {
		t.Errorf("doctors re-driven %d times, want once:\n%s", n, strings.Join(rec.events, "\n"))
	}
}
