package dbcopy

import (
	"testing"

	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// TestRerunReportsReplays asks again for batches already committed (what a retry after a
// crash or a workflow reset does): nothing is written twice, and the run says how many batches
// and rows it replayed, so throughput is not computed over lookups.
func TestRerunReportsReplays(t *testing.T) {
	e, clinic, _ := openClinic(t, "sqlite", 1, 100)
	ctx := ctxT(t)
	first, err := e.CopyBatches(ctx, dbmigrateapi.BatchRequest{Entity: "offices"}, 0, nil)
	if err != nil {
		t.Fatalf("err: want nil; first run: %+v, %v", first, err)
	}
	if !first.Done {
		t.Fatalf("first.Done is false; first run: %+v, %v", first, err)
	}
	if first.Replayed != 0 {
		t.Fatalf("first.Replayed = %v, want 0; first run: %+v, %v", first.Replayed, first, err)
	}
	if first.ReplayedRows != 0 {
		t.Fatalf("first.ReplayedRows = %v, want 0; first run: %+v, %v", first.ReplayedRows, first, err)
	}
	again, err := e.CopyBatches(ctx, dbmigrateapi.BatchRequest{Entity: "offices"}, 0, nil)
	if err != nil || !again.Done {
		t.Fatalf("re-run: %+v, %v", again, err)
	}
	if again.Replayed != first.Batches {
		t.Fatalf("again.Replayed = %v, want %v (first.Batches); re-run %+v, want every one of the first run's %d batches (%d rows) replayed and the same cursor %+v",
			again.Replayed, first.Batches, again, first.Batches, first.Rows, first.Next)
	}
	if again.ReplayedRows != first.Rows {
		t.Fatalf("again.ReplayedRows = %v, want %v (first.Rows); re-run %+v, want every one of the first run's %d batches (%d rows) replayed and the same cursor %+v",
			again.ReplayedRows, first.Rows, again, first.Batches, first.Rows, first.Next)
	}
	if again.Next != first.Next {
		t.Fatalf("again.Next = %v, want %v (first.Next); re-run %+v, want every one of the first run's %d batches (%d rows) replayed and the same cursor %+v",
			again.Next, first.Next, again, first.Batches, first.Rows, first.Next)
	}
	want := clinic.Expects["offices"].Loaded
	if n := count(t, e, `SELECT count(*) FROM public.offices`); n != want {
		t.Fatalf("%d offices after the re-run, want %d", n, want)
	}
	if n := count(t, e, `SELECT records_processed FROM entity_migration_status WHERE entity_name = 'offices'`); n != want {
		t.Fatalf("records_processed %d after the re-run, want %d", n, want)
	}
}
