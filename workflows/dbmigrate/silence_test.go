package dbmigrate

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.temporal.io/sdk/testsuite"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/silence"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// TestSilentWorkerReportReachesTheDetails: a worker's report of silent activities (the
// silence.Signal its watcher sends) lands in the migration's state and in the current details
// the Temporal UI shows; an empty report clears it.
func TestSilentWorkerReportReachesTheDetails(t *testing.T) {
	rec := &recorder{copyDelay: time.Minute}
	env := newEnv(t, rec)
	note := "`DBCopyChunk` of `entity-x`: no heartbeat from worker 4242 for 14s (heartbeat timeout 15s)"
	var during, after dbmigrateapi.State
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(silence.Signal, silence.Report{Notes: []string{note}})
	}, time.Second)
	env.RegisterDelayedCallback(func() { during = queryState(t, env) }, 2*time.Second)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(silence.Signal, silence.Report{})
	}, 3*time.Second)
	env.RegisterDelayedCallback(func() { after = queryState(t, env) }, 4*time.Second)
	env.ExecuteWorkflow(dbmigrateapi.WorkflowName, testInput(t, model.MigrationFull, dbmigrateapi.Config{}))
	if st := result(t, env); st.Status != model.OrchCompleted {
		t.Fatalf("migration ended %s: %s", st.Status, st.Error)
	}
	if diff := cmp.Diff([]string{note}, during.WorkerSilent); diff != "" {
		t.Errorf("state while reported (-want +got):\n%s", diff)
	}
	if d := Details(&during); !strings.Contains(d, "⏳ "+note) {
		t.Errorf("details while reported lack the note:\n%s", d)
	}
	if len(after.WorkerSilent) != 0 {
		t.Errorf("state after the empty report: %v", after.WorkerSilent)
	}
	if d := Details(&after); strings.Contains(d, "heartbeat") {
		t.Errorf("details after the empty report still name a silent worker:\n%s", d)
	}
}

// queryState is the status query's answer ({} after an error, reported).
func queryState(t *testing.T, env *testsuite.TestWorkflowEnvironment) dbmigrateapi.State {
	t.Helper()
	var st dbmigrateapi.State
	v, err := env.QueryWorkflow(dbmigrateapi.QueryStatus)
	if err != nil {
		t.Error(err)
		return st
	}
	if err := v.Get(&st); err != nil {
		t.Error(err)
	}
	return st
}
