package dbmigrate

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/taskqueue"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// TestActivitiesRunOnTheDBQueue: every activity of a migration and of its entity workflows is
// scheduled on the database pool's queue, none on the workflows' own queue, so a worker started
// for the db pool alone runs the whole copy and a mail-only worker none of it.
func TestActivitiesRunOnTheDBQueue(t *testing.T) {
	rec := &recorder{}
	env := newEnv(t, rec)
	var mu sync.Mutex
	queues := map[string]bool{}
	started := 0
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		mu.Lock()
		defer mu.Unlock()
		queues[info.TaskQueue] = true
		started++
	})
	env.ExecuteWorkflow(dbmigrateapi.WorkflowName, testInput(t, model.MigrationFull, dbmigrateapi.Config{}))
	if st := result(t, env); st.Status != model.OrchCompleted {
		t.Fatalf("migration ended %s: %s", st.Status, st.Error)
	}
	var got []string
	for q := range queues {
		got = append(got, q)
	}
	slices.Sort(got)
	want := []string{taskqueue.Name("default-test-taskqueue", taskqueue.DB)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("task queues of the migration's %d activities (-want +got):\n%s", started, diff)
	}
}
