package dbmigrate

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// TestMilestonesPublishedByTheirStatusWrites: a full migration's started, progress and
// completed events are published by the status writes they follow, each in its order, and no
// activity of its own publishes one.
func TestMilestonesPublishedByTheirStatusWrites(t *testing.T) {
	rec := &recorder{}
	env := newEnv(t, rec)
	env.ExecuteWorkflow(dbmigrateapi.WorkflowName, testInput(t, model.MigrationFull, dbmigrateapi.Config{}))
	if st := result(t, env); st.Status != model.OrchCompleted {
		t.Fatalf("st.Status = %s, want completed (error %q)", st.Status, st.Error)
	}
	want := []string{"migration_started", "migration_progress", "migration_progress", "migration_progress",
		"migration_progress", "migration_completed"}
	if diff := cmp.Diff(want, rec.published); diff != "" {
		t.Errorf("events published (-want +got):\n%s", diff)
	}
	if rec.emitCalls != 0 {
		t.Errorf("%d events published by activities of their own, want none", rec.emitCalls)
	}
}
