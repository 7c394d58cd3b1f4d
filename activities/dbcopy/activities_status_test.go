package dbcopy

import (
	"path/filepath"
	"testing"

	"go.temporal.io/sdk/testsuite"

	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// TestChunkAndFinalizeRecordTheEntityStatus: an entity's first chunk asked to (Running) records
// it running before it copies, a failed one of an earlier run too; its Finalize given a status
// records it (completed, with the entity's completion checkpoint) once the builds are done.
func TestChunkAndFinalizeRecordTheEntityStatus(t *testing.T) {
	ctx := ctxT(t)
	clinic := dbcopytest.NewClinic(1, false)
	src := filepath.Join(t.TempDir(), "legacy.db")
	if err := dbcopytest.WriteSQLite(ctx, src, clinic.Tables); err != nil {
		t.Fatal(err)
	}
	sp, err := spec.Parse([]byte(dbcopytest.ClinicSpec("sqlite", src, 100)))
	if err != nil {
		t.Fatal(err)
	}
	a := &Activities{TargetURL: newTarget(t)}
	t.Cleanup(func() { Shutdown(a) })
	m := Migration{ID: newID().String(), Type: model.MigrationFull, Spec: sp}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	if _, err := env.ExecuteActivity(a.DBPrepare, m); err != nil {
		t.Fatal(err)
	}
	e, release, err := a.engine(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	status := func() (st string, completed bool, checkpoints int) {
		t.Helper()
		if err := e.pool.QueryRow(ctx, `SELECT s.status::text, s.completed_at IS NOT NULL,
			(SELECT count(*) FROM migration_checkpoints c WHERE c.migration_id = s.migration_id
				AND c.entity_name = s.entity_name AND c.checkpoint_type = 'entity_completion')
			FROM entity_migration_status s WHERE s.id = $1`, e.EntityStatusID("offices")).Scan(&st, &completed, &checkpoints); err != nil {
			t.Fatal(err)
		}
		return st, completed, checkpoints
	}
	// Failed in an earlier run: the first chunk of the new one takes it up again.
	if err := e.SetEntityStatus(ctx, "offices", model.EntityFailed); err != nil {
		t.Fatal(err)
	}
	if _, err := env.ExecuteActivity(a.DBCopyChunk, ChunkRequest{Migration: m, Cursor: dbmigrateapi.BatchRequest{Entity: "offices"},
		MaxBatches: 1, Running: true}); err != nil {
		t.Fatal(err)
	}
	st, completed, _ := status()
	if st != string(model.EntityRunning) {
		t.Fatalf("after the first chunk: status %s, want running", st)
	}
	if completed {
		t.Fatal("after the first chunk: completed_at set, want it empty")
	}
	if _, err := env.ExecuteActivity(a.DBFinalize, EntityRequest{Migration: m, Entity: "offices",
		Status: model.EntityCompleted}); err != nil {
		t.Fatal(err)
	}
	st, completed, checkpoints := status()
	if st != string(model.EntityCompleted) {
		t.Fatalf("after Finalize: status %s, want completed", st)
	}
	if !completed {
		t.Fatal("after Finalize: completed_at empty, want it set")
	}
	if checkpoints != 1 {
		t.Fatalf("after Finalize: %d completion checkpoints, want 1", checkpoints)
	}
}
