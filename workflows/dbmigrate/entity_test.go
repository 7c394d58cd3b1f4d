package dbmigrate

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// TestEntityRecordsItsStatusInItsChunkAndFinalize: an entity's workflow runs no activity of its
// own to record the entity running or completed: its first chunk records it running (the later
// ones do not), and its Finalize records it completed.
func TestEntityRecordsItsStatusInItsChunkAndFinalize(t *testing.T) {
	rec := &recorder{chunksToDo: 3}
	env := newEnv(t, rec)
	in := EntityInput{Migration: migrationOf(testInput(t, model.MigrationFull, dbmigrateapi.Config{})), Entity: "offices",
		Cursor: dbmigrateapi.BatchRequest{Entity: "offices"}}
	env.ExecuteWorkflow(dbmigrateapi.EntityWorkflowName, in)
	var res EntityResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if res.Status != model.EntityCompleted {
		t.Fatalf("res.Status = %s, want completed", res.Status)
	}
	var running []bool
	for _, c := range rec.chunkCalls {
		running = append(running, c.Running)
	}
	if diff := cmp.Diff([]bool{true, false, false}, running); diff != "" {
		t.Errorf("chunks asked to record the entity running (-want +got):\n%s", diff)
	}
	if rec.entityStatusCalls != 0 {
		t.Errorf("%d activities recorded the entity's status, want none", rec.entityStatusCalls)
	}
	want := []string{"start offices", "loaded offices", "done offices"}
	if diff := cmp.Diff(want, rec.events); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}
