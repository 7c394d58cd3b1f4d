package dbcopy

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
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
	a, m, env := preparedClinic(t, &Activities{TargetURL: newTarget(t)})
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

// preparedClinic is a small clinic migration prepared by a's DBPrepare in an activity
// environment.
func preparedClinic(t *testing.T, a *Activities) (*Activities, Migration, *testsuite.TestActivityEnvironment) {
	t.Helper()
	clinic := dbcopytest.NewClinic(1, false)
	src := filepath.Join(t.TempDir(), "legacy.db")
	if err := dbcopytest.WriteSQLite(ctxT(t), src, clinic.Tables); err != nil {
		t.Fatal(err)
	}
	sp, err := spec.Parse([]byte(dbcopytest.ClinicSpec("sqlite", src, 100)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Shutdown(a) })
	m := Migration{ID: newID().String(), Type: model.MigrationFull, Spec: sp}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	if _, err := env.ExecuteActivity(a.DBPrepare, m); err != nil {
		t.Fatal(err)
	}
	return a, m, env
}

// TestStatusWritePublishesItsEvent: a status transition given an event publishes it to the
// sink once the status is recorded.
func TestStatusWritePublishesItsEvent(t *testing.T) {
	ctx := ctxT(t)
	a, m, env := preparedClinic(t, &Activities{TargetURL: newTarget(t)})
	seen := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev Event
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		e, release, err := a.engine(ctx, m)
		if err != nil {
			t.Error(err)
			return
		}
		defer release()
		var status string
		if err := e.pool.QueryRow(ctx, `SELECT status::text FROM migration_orchestrations WHERE id = $1`,
			e.opt.MigrationID).Scan(&status); err != nil {
			t.Error(err)
		}
		seen <- ev.EventType + " " + status
	}))
	defer srv.Close()
	if _, err := env.ExecuteActivity(a.DBSetStatus, StatusRequest{Migration: m, To: model.OrchRunning, Total: 10,
		Event: &StatusEvent{Sink: dbmigrateapi.EventSink{Webhook: srv.URL}, Event: Event{EventType: "migration_started",
			MigrationID: m.ID}}}); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-seen:
		if got != "migration_started running" {
			t.Fatalf("webhook saw %q, want \"migration_started running\" (the event after the status)", got)
		}
	default:
		t.Fatal("no event published")
	}
}
