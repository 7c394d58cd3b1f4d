package dbmigrate

import (
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// TestValidationRunsEntitiesInParallel: the first two entity validations wait for each other
// (the test fails unless the workflow runs two at once), and the summaries are recorded in
// plan order whatever order the validations ended in.
func TestValidationRunsEntitiesInParallel(t *testing.T) {
	rec := &recorder{}
	var mu sync.Mutex
	seen, alone := 0, false
	both := make(chan struct{})
	rec.validateHook = func(string) {
		mu.Lock()
		seen++
		if seen == 2 {
			close(both)
		}
		first := seen <= 2
		mu.Unlock()
		if first {
			select {
			case <-both:
			case <-time.After(10 * time.Second):
				mu.Lock()
				alone = true
				mu.Unlock()
			}
		}
	}
	env := newEnv(t, rec)
	env.ExecuteWorkflow(dbmigrateapi.WorkflowName, testInput(t, model.MigrationFull, dbmigrateapi.Config{Parallelism: 2}))
	st := result(t, env)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if alone {
		t.Fatal("a validation waited 10 s for a second one: they ran one at a time")
	}
	var got []string
	for _, v := range st.Validation {
		got = append(got, v.Entity)
	}
	plan, err := testInput(t, model.MigrationFull, dbmigrateapi.Config{}).Spec.Order()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(plan, got); diff != "" {
		t.Fatalf("validation summaries not in plan order (-want +got):\n%s", diff)
	}
}
