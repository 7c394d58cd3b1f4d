package dbmigrate

import (
	"testing"
	"time"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// twoSourceInput is the captured test migration with a second captured source, "other", read
// by the entity moved.
func twoSourceInput(t *testing.T, moved string) dbmigrateapi.Input {
	in := capturedInput(t, dbmigrateapi.Config{SyncInterval: time.Hour})
	in.Spec.Sources["other"] = spec.Source{Driver: "sqlite", Path: "/nonexistent/other.db"}
	for i := range in.Spec.Entities {
		if in.Spec.Entities[i].Name == moved {
			in.Spec.Entities[i].Source = "other"
		}
	}
	return in
}

// runFreeze runs a two-source captured migration to its cutover and returns its final pass's
// seconds (each drain takes 10 s) and the recorded events.
func runFreeze(t *testing.T, in dbmigrateapi.Input) (float64, []string) {
	t.Helper()
	rec := &recorder{drainDelay: 10 * time.Second}
	env := newEnv(t, rec)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(dbmigrateapi.SignalCutover, dbmigrateapi.CutoverRequest{RequestedBy: "ops"})
	}, 2*time.Hour+30*time.Minute)
	env.ExecuteWorkflow(dbmigrateapi.WorkflowName, in)
	st := result(t, env)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if st.Status != model.OrchCompleted {
		t.Fatalf("st.Status = %v, want completed; state %+v", st.Status, st)
	}
	return st.FinalPassSeconds, rec.events
}

// TestIndependentSourcesDrainTogether: two captured sources none of whose entities reference
// the other's are drained at the same time, so the freeze's drain takes one drain's time.
func TestIndependentSourcesDrainTogether(t *testing.T) {
	secs, events := runFreeze(t, twoSourceInput(t, "projects"))
	if secs != 10 {
		t.Fatalf("final pass %v s, want 10 (the two 10 s drains at once); events %v", secs, events)
	}
}

// TestDependentSourcesDrainInOrder: a source whose entity references the other's entities is
// drained after it (its rows' parents must be committed first), so the drains take their sum.
func TestDependentSourcesDrainInOrder(t *testing.T) {
	secs, events := runFreeze(t, twoSourceInput(t, "doctors"))
	if secs != 20 {
		t.Fatalf("final pass %v s, want 20 (one 10 s drain after the other); events %v", secs, events)
	}
	last, first := -1, -1
	for i, e := range events {
		switch e {
		case "drain legacy":
			last = i
		case "drain other":
			if first < 0 || i > first {
				first = i
			}
		}
	}
	if first < last {
		t.Fatalf("the last drain of other (event %d) came before the last drain of legacy (event %d): %v", first, last, events)
	}
}
