package dbcopy

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// TestKeysInTwoConcurrentBatchesLoadOnce: two first-load batches hold the same legacy keys
// (keys 15..20, as a key the source holds twice would be when a page boundary splits it) and
// are written at once, as two writers write them, into a target whose key column has no
// unique constraint. Each batch waits a second before its commit, so the later batch checks
// its keys while the earlier batch's mappings are not committed yet. Every key is loaded once,
// by the earlier batch; the later batch quarantines its rows as duplicate_key.
func TestKeysInTwoConcurrentBatchesLoadOnce(t *testing.T) {
	tbl := &dbcopytest.Table{Name: "item", Columns: []string{"id", "v"}, Types: []string{"INTEGER", "TEXT"}}
	for i := int64(1); i <= 20; i++ {
		tbl.Rows = append(tbl.Rows, []any{i, fmt.Sprintf("v%d", i)})
	}
	e := openEngineAt(t, []*dbcopytest.Table{tbl}, newTarget(t), `CREATE TABLE public.items (id bigint NOT NULL, v text)`,
		`name: split-key
batch_size: 10
sources: {legacy: {driver: sqlite, path: %q}}
entities:
  - {name: items, source_table: item, target_table: items, key: {source: id, target: id, mode: keep, type: bigint},
     columns: [{source: v, type: text}]}
`)
	ctx := ctxT(t)
	p, err := e.plan(ctx, "items")
	if err != nil {
		t.Fatal(err)
	}
	earlier := dbmigrateapi.BatchRequest{Entity: "items", After: "10", BatchNumber: 1}
	later := dbmigrateapi.BatchRequest{Entity: "items", After: "14", BatchNumber: 2}
	pages := make([]page, 2)
	for i, req := range []dbmigrateapi.BatchRequest{earlier, later} {
		if pages[i], err = e.readPage(ctx, p, req); err != nil {
			t.Fatal(err)
		}
	}
	testHookBeforeCommit = func(ctx context.Context, _ pgx.Tx) error {
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
		}
		return nil
	}
	t.Cleanup(func() { testHookBeforeCommit = nil })
	type outcome struct {
		res BatchResult
		err error
	}
	first, second := make(chan outcome, 1), make(chan outcome, 1)
	go func() {
		res, err := e.writeBatch(ctx, p, earlier, pages[0], nil)
		first <- outcome{res, err}
	}()
	var firstDone outcome
	waited := make(chan struct{})
	go func() {
		firstDone = <-first
		close(waited)
	}()
	turn := func() error { // as the writers' turn: returns once the earlier batch ended, every time
		<-waited
		return firstDone.err
	}
	go func() {
		res, err := e.writeBatch(ctx, p, later, pages[1], turn)
		second <- outcome{res, err}
	}()
	got := <-second
	if firstDone.err != nil {
		t.Fatalf("earlier batch: %v", firstDone.err)
	}
	if got.err != nil {
		t.Fatalf("later batch: %v", got.err)
	}
	counts := func(r BatchResult) string {
		return fmt.Sprintf("%d rows, %d loaded, %d failed", r.Rows, r.Loaded, r.Failed)
	}
	if diff := cmp.Diff([]string{"10 rows, 10 loaded, 0 failed", "6 rows, 0 loaded, 6 failed"},
		[]string{counts(firstDone.res), counts(got.res)}); diff != "" {
		t.Errorf("batches (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"11", "12", "13", "14", "15", "16", "17", "18", "19", "20"},
		strings0(t, e, `SELECT id::text FROM public.items`)); diff != "" {
		t.Errorf("target keys (-want +got):\n%s", diff)
	}
	if got := count(t, e, `SELECT count(*) FROM migration_mappings WHERE source_table = 'item'`); got != 10 {
		t.Errorf("%d mappings, want 10", got)
	}
	if diff := cmp.Diff([]string{"15", "16", "17", "18", "19", "20"}, strings0(t, e, `SELECT source_record_id FROM migration_errors
		WHERE entity_status_id = $1 AND NOT is_resolved AND error_code = 'duplicate_key'`, e.EntityStatusID("items"))); diff != "" {
		t.Errorf("duplicate_key errors (-want +got):\n%s", diff)
	}
}
