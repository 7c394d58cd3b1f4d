package dbcopy

import "testing"

// TestRerunReportsReplays asks again for batches already committed (what a retry after a
// crash or a workflow reset does): nothing is written twice, and the run says how many batches
// and rows it replayed, so throughput is not computed over lookups.
func TestRerunReportsReplays(t *testing.T) {
	e, clinic, _ := openClinic(t, "sqlite", 1, 100)
	ctx := ctxT(t)
	first, err := e.CopyBatches(ctx, BatchRequest{Entity: "offices"}, 0, nil)
	if err != nil || !first.Done || first.Replayed != 0 || first.ReplayedRows != 0 {
		t.Fatalf("first run: %+v, %v", first, err)
	}
	again, err := e.CopyBatches(ctx, BatchRequest{Entity: "offices"}, 0, nil)
	if err != nil || !again.Done {
		t.Fatalf("re-run: %+v, %v", again, err)
	}
	if again.Replayed != first.Batches || again.ReplayedRows != first.Rows || again.Next != first.Next {
		t.Fatalf("re-run %+v, want every one of the first run's %d batches (%d rows) replayed and the same cursor %+v",
			again, first.Batches, first.Rows, first.Next)
	}
	want := clinic.Expects["offices"].Loaded
	if n := count(t, e, `SELECT count(*) FROM public.offices`); n != want {
		t.Fatalf("%d offices after the re-run, want %d", n, want)
	}
	if n := count(t, e, `SELECT records_processed FROM entity_migration_status WHERE entity_name = 'offices'`); n != want {
		t.Fatalf("records_processed %d after the re-run, want %d", n, want)
	}
}
