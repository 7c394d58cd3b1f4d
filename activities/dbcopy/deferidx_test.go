package dbcopy

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// notesDDL is an application's own empty target table: a full-text GIN index, a partial index
// with a comment, and a unique index beside the primary key.
const notesDDL = `CREATE TABLE public.notes (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), legacy_id bigint,
		title text NOT NULL, body text, starred boolean);
	CREATE UNIQUE INDEX notes_title_uniq ON public.notes (title);
	CREATE INDEX notes_search ON public.notes USING gin (to_tsvector('english'::regconfig, coalesce(title, '') || ' ' || coalesce(body, '')));
	CREATE INDEX notes_starred ON public.notes (legacy_id) WHERE starred;
	COMMENT ON INDEX public.notes_starred IS 'starred notes'`

const notesSpec = `name: notes
sources: {legacy: {driver: sqlite, path: %q}}
batch_size: 10
error_budget: {max_rows: 1}
entities:
  - {name: notes, source_table: note, target_table: notes, key: {source: id},
     columns: [{source: id, target: legacy_id, type: bigint}, {source: title, type: text}, {source: body, type: text},
               {source: starred, type: boolean}]}
`

// notesSource is 45 notes, the 20th titled like the 3rd (the unique index refuses it).
func notesSource() *dbcopytest.Table {
	t := &dbcopytest.Table{Name: "note", PK: true, Columns: []string{"id", "title", "body", "starred"},
		Types: []string{"INTEGER", "TEXT", "TEXT", "INTEGER"}}
	for i := 1; i <= 45; i++ {
		title := fmt.Sprintf("note %d", i)
		if i == 20 {
			title = "note 3"
		}
		t.Rows = append(t.Rows, []any{int64(i), title, fmt.Sprintf("words of note %d", i), int64(i % 3 / 2)})
	}
	return t
}

// indexDefs are a table's indexes (name → pg_get_indexdef) and their comments.
func indexDefs(t *testing.T, q querier, table string) map[string]string {
	t.Helper()
	rows, err := q.Query(context.Background(), `SELECT c.relname::text,
		pg_get_indexdef(i.indexrelid) || coalesce(' -- ' || obj_description(i.indexrelid, 'pg_class'), '')
		FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = $1::regclass`, table)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, r := range must(pgx.CollectRows(rows, pgx.RowToStructByPos[struct{ Name, Def string }]))(t) {
		out[r.Name] = r.Def
	}
	return out
}

// assertNotesAfter checks, after the step named when, that public.notes has the indexes before
// lists, the ledger records recorded of them, and the table holds rows rows.
func assertNotesAfter(t *testing.T, e *Engine, when string, before map[string]string, recorded, rows int) {
	t.Helper()
	if diff := cmp.Diff(before, indexDefs(t, e.Pool(), "public.notes")); diff != "" {
		t.Errorf("indexes after %s (-before +after):\n%s", when, diff)
	}
	if n := count(t, e, `SELECT count(*) FROM deferred_indexes`); n != recorded {
		t.Errorf("%d indexes recorded after %s, want %d", n, when, recorded)
	}
	if n := count(t, e, `SELECT count(*) FROM public.notes`); n != rows {
		t.Errorf("%d rows after %s, want %d", n, when, rows)
	}
}

func names(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return sortedCopy(out)
}

// TestIndexesOfAnEmptyTargetBuiltAfterTheFirstLoad: an existing, empty target table's
// secondary indexes (full-text GIN, partial) are absent while its first load writes (the
// unique index stays and still refuses a duplicate row, quarantined), recorded in the ledger
// meanwhile; a finalize killed in a rebuild leaves the index it was building recorded, and the
// next finalize (a restarted worker's engine) builds it: every index ends as it was, comment
// included, nothing left recorded, and the validation passes.
func TestIndexesOfAnEmptyTargetBuiltAfterTheFirstLoad(t *testing.T) {
	ctx := ctxT(t)
	target := newTarget(t)
	e := openEngineAt(t, []*dbcopytest.Table{notesSource()}, target, notesDDL, notesSpec)
	before := indexDefs(t, e.Pool(), "public.notes")
	var during []string
	testHookBeforeCommit = func(ctx context.Context, tx pgx.Tx) error {
		if during == nil {
			during = names(indexDefs(t, tx, "public.notes"))
		}
		return nil
	}
	res, err := e.CopyBatches(ctx, dbmigrateapi.BatchRequest{Entity: "notes"}, 0, nil)
	testHookBeforeCommit = nil
	if err != nil {
		t.Fatal(err)
	}
	if !res.Done {
		t.Fatalf("res.Done is false after %d batches", res.Batches)
	}
	if diff := cmp.Diff([]string{"notes_pkey", "notes_title_uniq"}, during); diff != "" {
		t.Errorf("indexes while the first batch commits (-want +got):\n%s", diff)
	}
	recorded := strings0(t, e, `SELECT index_name FROM deferred_indexes WHERE migration_id = $1 AND entity_name = 'notes'`,
		e.opt.MigrationID)
	if diff := cmp.Diff([]string{"notes_search", "notes_starred"}, recorded); diff != "" {
		t.Errorf("indexes recorded after the load (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int{"23505": 1}, errorCodes(t, e, "notes")); diff != "" {
		t.Errorf("quarantined during the load (-want +got):\n%s", diff)
	}

	// The worker dies while the second index is built again.
	testHookIndexTx = func(ctx context.Context, tx pgx.Tx, step string) error {
		if step != "restore notes_starred" {
			return nil
		}
		var pid int
		if err := tx.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
			return err
		}
		_, err := e.Pool().Exec(context.Background(), `SELECT pg_terminate_backend($1)`, pid)
		return errors.Join(err, errors.New("killed"))
	}
	err = e.Finalize(ctx, "notes")
	testHookIndexTx = nil
	if err == nil {
		t.Fatal("Finalize: want the error of its killed connection")
	}
	// The two are built side by side: the other one may or may not have committed.
	if _, ok := indexDefs(t, e.Pool(), "public.notes")["notes_starred"]; ok {
		t.Error("notes_starred exists after its killed build")
	}
	recorded = strings0(t, e, `SELECT index_name FROM deferred_indexes WHERE migration_id = $1 AND index_name = 'notes_starred'`,
		e.opt.MigrationID)
	if diff := cmp.Diff([]string{"notes_starred"}, recorded); diff != "" {
		t.Errorf("notes_starred recorded after its killed build (-want +got):\n%s", diff)
	}

	sp, err := spec.Parse([]byte(fmt.Sprintf(notesSpec, e.spec.Sources["legacy"].Path)))
	if err != nil {
		t.Fatal(err)
	}
	again, err := Open(ctx, sp, Options{MigrationID: e.opt.MigrationID, TargetURL: target})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(again.Close)
	if err := again.Finalize(ctx, "notes"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, indexDefs(t, e.Pool(), "public.notes")); diff != "" {
		t.Errorf("indexes after the load (-before +after):\n%s", diff)
	}
	if n := count(t, e, `SELECT count(*) FROM deferred_indexes`); n != 0 {
		t.Errorf("%d indexes still recorded, want 0", n)
	}
	assertValidated(t, again, "notes")
}

// TestDeferredIndexesStayOnACrashBeforeTheirRecord: a connection killed before the
// transaction that records and drops the indexes commits leaves them in place and nothing
// recorded; the load that follows defers them.
func TestDeferredIndexesStayOnACrashBeforeTheirRecord(t *testing.T) {
	ctx := ctxT(t)
	e := openEngineAt(t, []*dbcopytest.Table{notesSource()}, newTarget(t), notesDDL, notesSpec)
	before := indexDefs(t, e.Pool(), "public.notes")
	testHookIndexTx = func(ctx context.Context, tx pgx.Tx, step string) error {
		var pid int
		if err := tx.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
			return err
		}
		_, err := e.Pool().Exec(context.Background(), `SELECT pg_terminate_backend($1)`, pid)
		return errors.Join(err, errors.New("killed"))
	}
	_, err := e.CopyBatches(ctx, dbmigrateapi.BatchRequest{Entity: "notes"}, 0, nil)
	testHookIndexTx = nil
	if err == nil {
		t.Fatal("CopyBatches: want the error of its killed connection")
	}
	assertNotesAfter(t, e, "the killed deferral", before, 0, 0)
	copyAll(t, e)
	assertNotesAfter(t, e, "the load", before, 0, 44)
}

// TestRollbackBuildsDeferredIndexes: a migration rolled back before its finalize gives the
// emptied table its indexes back.
func TestRollbackBuildsDeferredIndexes(t *testing.T) {
	ctx := ctxT(t)
	e := openEngineAt(t, []*dbcopytest.Table{notesSource()}, newTarget(t), notesDDL, notesSpec)
	before := indexDefs(t, e.Pool(), "public.notes")
	if _, err := e.CopyBatches(ctx, dbmigrateapi.BatchRequest{Entity: "notes"}, 0, nil); err != nil {
		t.Fatal(err)
	}
	if n := count(t, e, `SELECT count(*) FROM deferred_indexes`); n != 2 {
		t.Fatalf("%d indexes recorded after the load, want 2", n)
	}
	if _, err := e.RollbackEntity(ctx, "notes"); err != nil {
		t.Fatal(err)
	}
	assertNotesAfter(t, e, "the rollback", before, 0, 0)
}

// TestDeferredIndexOfAPartitionedTarget: a partitioned target's index (pg_get_indexdef prints
// it ON ONLY the parent) is built again on the parent and every partition, those the load
// created included.
func TestDeferredIndexOfAPartitionedTarget(t *testing.T) {
	ctx := ctxT(t)
	events := &dbcopytest.Table{Name: "event", PK: true, Columns: []string{"id", "body", "created_at"},
		Types: []string{"INTEGER", "TEXT", "TEXT"}}
	for i := 1; i <= 30; i++ {
		events.Rows = append(events.Rows, []any{int64(i), fmt.Sprintf("event %d", i), fmt.Sprintf("2024-%02d-10T08:00:00Z", 1+i%3)})
	}
	ddl := `CREATE TABLE public.events (id uuid NOT NULL, legacy_id bigint, body text, created_at timestamptz NOT NULL,
			PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at);
		CREATE INDEX events_search ON public.events USING gin (to_tsvector('english'::regconfig, coalesce(body, '')))`
	e := openEngineAt(t, []*dbcopytest.Table{events}, newTarget(t), ddl, `name: events
sources: {legacy: {driver: sqlite, path: %q}}
batch_size: 10
entities:
  - {name: events, source_table: event, target_table: events, key: {source: id},
     partition: {column: created_at, interval: month},
     columns: [{source: id, target: legacy_id, type: bigint}, {source: body, type: text},
               {source: created_at, type: timestamptz}]}
`)
	before := indexDefs(t, e.Pool(), "public.events")
	if _, err := e.CopyBatches(ctx, dbmigrateapi.BatchRequest{Entity: "events"}, 0, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := indexDefs(t, e.Pool(), "public.events")["events_search"]; ok {
		t.Error("events_search exists after the load, want it deferred")
	}
	if err := e.Finalize(ctx, "events"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, indexDefs(t, e.Pool(), "public.events")); diff != "" {
		t.Errorf("indexes after finalize (-before +after):\n%s", diff)
	}
	parts := count(t, e, `SELECT count(*) FROM pg_inherits WHERE inhparent = 'public.events'::regclass`)
	if parts != 3 {
		t.Errorf("%d partitions, want 3", parts)
	}
	attached := count(t, e, `SELECT count(*) FROM pg_inherits h JOIN pg_index i ON i.indexrelid = h.inhrelid
		WHERE h.inhparent = 'public.events_search'::regclass AND i.indisvalid`)
	if attached != parts {
		t.Errorf("%d valid partition indexes under events_search, want %d", attached, parts)
	}
	assertValidated(t, e, "events")
}
