package dbmigrate

import (
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// count is how many times s was logged.
func (r *recorder) count(s string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e == s {
			n++
		}
	}
	return n
}

// TestEntitiesValidatedWhileLaterOnesLoad: a full migration validates offices (a parent) while
// doctors (its child) is still loading, and records every entity's summary once, in plan order.
func TestEntitiesValidatedWhileLaterOnesLoad(t *testing.T) {
	rec := &recorder{copyDelay: 50 * time.Millisecond}
	env := newEnv(t, rec)
	env.ExecuteWorkflow(dbmigrateapi.WorkflowName, testInput(t, model.MigrationFull, dbmigrateapi.Config{}))
	st := result(t, env)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	v, d := rec.index("validate offices"), rec.index("done doctors")
	if v < 0 {
		t.Fatalf("offices never validated: %v", rec.events)
	}
	if v > d {
		t.Fatalf("offices validated at event %d, doctors done at %d: want offices validated while doctors loads: %v", v, d, rec.events)
	}
	for _, n := range testOrder {
		if got := rec.count("validate " + n); got != 1 {
			t.Errorf("%s validated %d times, want 1: %v", n, got, rec.events)
		}
	}
	var got []string
	for _, v := range st.Validation {
		got = append(got, v.Entity)
	}
	if len(got) != len(testOrder) {
		t.Fatalf("validation summaries for %v, want %v", got, testOrder)
	}
	for i := range got {
		if got[i] != testOrder[i] {
			t.Fatalf("validation summaries for %v, want %v (plan order)", got, testOrder)
		}
	}
}

// TestEarlyValidationRedoneWhenTheEntityChanges: profiles is validated as soon as it completed;
// the orphan re-drive at the end of the load then loads one of its quarantined rows, so the
// early result is no proof any more and profiles is validated again after it. The entities
// nothing changed keep their single validation. (The end of the load re-drives every entity
// with quarantined rows, as before redriveArrivalsChange and after every catch-up pass.)
func TestEarlyValidationRedoneWhenTheEntityChanges(t *testing.T) {
	rec := &recorder{failed: map[string]int64{"profiles": 1}, orphansLoadAt: map[string]int{"profiles": 2}}
	env := newEnv(t, rec)
	env.OnGetVersion(redriveArrivalsChange, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	env.ExecuteWorkflow(dbmigrateapi.WorkflowName, testInput(t, model.MigrationFull, dbmigrateapi.Config{}))
	st := result(t, env)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if got := rec.count("validate profiles"); got != 2 {
		t.Fatalf("profiles validated %d times, want 2 (early, then after the re-drive loaded a row): %v", got, rec.events)
	}
	last := lastIndex(rec.events, "validate profiles")
	if redrive := rec.orphanCalls["profiles"]; redrive < 2 {
		t.Fatalf("profiles' orphans re-driven %d times, want 2: %v", redrive, rec.events)
	}
	if o := lastIndex(rec.events, "orphans profiles"); last < o {
		t.Fatalf("last validation of profiles at event %d, before its re-drive at %d: %v", last, o, rec.events)
	}
	for _, n := range []string{"offices", "doctors", "projects"} {
		if got := rec.count("validate " + n); got != 1 {
			t.Errorf("%s validated %d times, want 1 (nothing changed it): %v", n, got, rec.events)
		}
	}
	if len(st.Validation) != len(testOrder) {
		t.Fatalf("validation summaries: %+v", st.Validation)
	}
}

// TestNoEarlyValidationWithSchemaOps: an operation may change any table after its entity, so
// with operations every entity is validated after the load and the operations, as before.
func TestNoEarlyValidationWithSchemaOps(t *testing.T) {
	rec := &recorder{}
	env := newEnv(t, rec)
	ops := []spec.SchemaOp{{Name: "add-a", Type: "add_column", Table: "offices", Column: "a", ColType: "text", After: "offices"}}
	env.ExecuteWorkflow(dbmigrateapi.WorkflowName, testInput(t, model.MigrationFull, dbmigrateapi.Config{}, ops...))
	result(t, env)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	for _, n := range testOrder {
		if v, d := rec.index("validate "+n), max(rec.index("done projects"), rec.index("done doctors")); v < d {
			t.Errorf("%s validated at event %d, before the load ended at %d: %v", n, v, d, rec.events)
		}
		if v, o := rec.index("validate "+n), rec.index("op-exec add-a"); v < o {
			t.Errorf("%s validated at event %d, before the operation at %d: %v", n, v, o, rec.events)
		}
	}
}

func lastIndex(events []string, s string) int {
	out := -1
	for i, e := range events {
		if e == s {
			out = i
		}
	}
	return out
}

// TestEarlyValidationRedoneAfterAnAcceptance: an acceptance recorded before the validation
// changes what every entity's completeness check allows, so no early result stands.
func TestEarlyValidationRedoneAfterAnAcceptance(t *testing.T) {
	rec := &recorder{copyDelay: 20 * time.Millisecond}
	env := newEnv(t, rec)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(dbmigrateapi.SignalAccept, dbmigrateapi.AcceptRequest{ID: "a1", RequestedBy: "ops", Reason: "known bad rows"})
	}, time.Millisecond)
	env.ExecuteWorkflow(dbmigrateapi.WorkflowName, testInput(t, model.MigrationFull, dbmigrateapi.Config{}))
	result(t, env)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	a := rec.index("accept ops: known bad rows")
	if a < 0 {
		t.Fatalf("no acceptance recorded: %v", rec.events)
	}
	for _, n := range testOrder {
		if v := lastIndex(rec.events, "validate "+n); v < a {
			t.Errorf("%s last validated at event %d, before the acceptance at %d: %v", n, v, a, rec.events)
		}
	}
}

// TestEarlyValidationsBoundedByParallelism: validations beside the load run at most
// Parallelism at a time (each holds pages of both sides in the worker), however fast the
// entities complete.
func TestEarlyValidationsBoundedByParallelism(t *testing.T) {
	rec := &recorder{}
	var mu sync.Mutex
	running, most := 0, 0
	rec.validateHook = func(string) {
		mu.Lock()
		running++
		most = max(most, running)
		mu.Unlock()
		time.Sleep(30 * time.Millisecond)
		mu.Lock()
		running--
		mu.Unlock()
	}
	env := newEnv(t, rec)
	env.ExecuteWorkflow(dbmigrateapi.WorkflowName, testInput(t, model.MigrationFull, dbmigrateapi.Config{Parallelism: 1}))
	result(t, env)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if most > 1 {
		t.Fatalf("%d validations ran at once with Parallelism 1: %v", most, rec.events)
	}
	for _, n := range testOrder {
		if got := rec.count("validate " + n); got != 1 {
			t.Errorf("%s validated %d times, want 1: %v", n, got, rec.events)
		}
	}
}

// TestDependentsStartBeforeTheBookkeepingEnds: doctors (a child of offices and profiles) starts
// while its parents' completion bookkeeping (here their status writes, held until doctors
// started) is still going on; before, it waited for it. (The schema operation after projects
// keeps validations during the load, whose ends would wake the loop too, out of the test.)
func TestDependentsStartBeforeTheBookkeepingEnds(t *testing.T) {
	rec := &recorder{}
	var mu sync.Mutex
	waited := false
	rec.statusHook = func() {
		started := func() bool {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			return rec.index("start doctors") >= 0
		}
		for deadline := time.Now().Add(700 * time.Millisecond); !started(); {
			if time.Now().After(deadline) {
				mu.Lock()
				waited = true
				mu.Unlock()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	env := newEnv(t, rec)
	ops := []spec.SchemaOp{{Name: "add-a", Type: "add_column", Table: "projects", Column: "a", ColType: "text", After: "projects"}}
	// One entity at a time: no other child's progress wakes the loop meanwhile.
	env.ExecuteWorkflow(dbmigrateapi.WorkflowName, testInput(t, model.MigrationFull, dbmigrateapi.Config{Parallelism: 1}, ops...))
	result(t, env)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if waited {
		t.Fatalf("doctors did not start while its parents' status writes were held: %v", rec.events)
	}
}

// TestDependentsStartWhileTheirParentsFinalize: doctors (it only references offices and
// profiles) starts once both loaded, while their Finalize (held here until doctors started)
// still runs; before, it waited for their completion. Two entities load at once: the parents
// in Finalize no longer count.
func TestDependentsStartWhileTheirParentsFinalize(t *testing.T) {
	rec := &recorder{}
	var mu sync.Mutex
	var waited []string
	rec.finalizeHook = func(entity string) {
		if entity != "offices" && entity != "profiles" {
			return
		}
		started := func() bool {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			return rec.index("start doctors") >= 0
		}
		for deadline := time.Now().Add(2 * time.Second); !started(); {
			if time.Now().After(deadline) {
				mu.Lock()
				waited = append(waited, entity)
				mu.Unlock()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	env := newEnv(t, rec)
	env.ExecuteWorkflow(dbmigrateapi.WorkflowName, testInput(t, model.MigrationFull, dbmigrateapi.Config{Parallelism: 2}))
	st := result(t, env)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if len(waited) > 0 {
		t.Fatalf("doctors did not start while the Finalize of %v was held: %v", waited, rec.events)
	}
	for _, parent := range []string{"offices", "profiles"} {
		if rec.index("start doctors") > rec.index("done "+parent) {
			t.Errorf("doctors started after %s was done: %v", parent, rec.events)
		}
	}
	if st.CompletedEntities != 4 {
		t.Fatalf("st.CompletedEntities = %v, want 4; events %v", st.CompletedEntities, rec.events)
	}
}

// TestDependentsOfASchemaOpsEntityWaitForItsCompletion: an entity with schema operations after
// it keeps its dependents waiting for its completion.
func TestDependentsOfASchemaOpsEntityWaitForItsCompletion(t *testing.T) {
	rec := &recorder{}
	env := newEnv(t, rec)
	ops := []spec.SchemaOp{{Name: "add-a", Type: "add_column", Table: "offices", Column: "a", ColType: "text", After: "offices"}}
	env.ExecuteWorkflow(dbmigrateapi.WorkflowName, testInput(t, model.MigrationFull, dbmigrateapi.Config{Parallelism: 2}, ops...))
	result(t, env)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if rec.index("start doctors") < rec.index("done offices") {
		t.Fatalf("doctors started before offices, with a schema operation after it, was done: %v", rec.events)
	}
}
