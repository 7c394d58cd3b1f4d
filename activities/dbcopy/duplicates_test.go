package dbcopy

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/datasets"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// duplicateErrors reads the entity's duplicate_key errors: key → (rows it carries, their
// snapshots).
func duplicateErrors(t *testing.T, e *Engine, entity string) map[string]int {
	t.Helper()
	rows, err := e.Pool().Query(context.Background(), `SELECT source_record_id, (context->>'duplicate_rows')::int,
		jsonb_array_length(source_data->'rows') FROM migration_errors
		WHERE entity_status_id = $1 AND NOT is_resolved AND error_code = 'duplicate_key'`, e.EntityStatusID(entity))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var k string
		var n, carried int
		if err := rows.Scan(&k, &n, &carried); err != nil {
			t.Fatal(err)
		}
		if carried != min(n, 20) {
			t.Errorf("key %s: %d rows, %d carried in source_data", k, n, carried)
		}
		out[k] = n
	}
	return out
}

// TestDuplicateKeysFoundInTheFirstBatch keys Chinook's PlaylistTrack (as shipped) by one column
// of its composite key: the first batch finds the repeated PlaylistIds, quarantines every row
// of them (one error per key, naming its rows), loads the playlists with a single track, and
// the copy ends: no retried batch.
func TestDuplicateKeysFoundInTheFirstBatch(t *testing.T) {
	src := datasets.Chinook(t)
	e := openSpec(t, newTarget(t), fmt.Sprintf(`name: chinook-dup
sources: {chinook: {driver: sqlite, path: %q}}
target: {create_tables: true}
ignore: [{table: Album}, {table: Artist}, {table: Customer}, {table: Employee}, {table: Genre}, {table: Invoice},
  {table: InvoiceLine}, {table: MediaType}, {table: Playlist}, {table: Track}]
entities:
  - {name: playlist_track, source_table: PlaylistTrack, target_table: playlist_track, key: {source: PlaylistId},
     batch_size: 5000, columns: [{source: PlaylistId, target: playlist_id, type: bigint}, {source: TrackId, target: track_id, type: bigint}]}
`, src))
	// What the source says, read from the file itself.
	db, err := sql.Open("sqlite", "file:"+src+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	want := map[string]int{}
	single := 0
	rs, err := db.Query(`SELECT PlaylistId, count(*) FROM PlaylistTrack GROUP BY PlaylistId`)
	if err != nil {
		t.Fatal(err)
	}
	for rs.Next() {
		var id int64
		var n int
		if err := rs.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			single++
		} else {
			want[fmt.Sprint(id)] = n
		}
	}
	rs.Close()
	if len(want) == 0 {
		t.Fatalf("len(want): want != 0; Chinook changed: %d repeated playlists, %d single", len(want), single)
	}
	if single == 0 {
		t.Fatalf("single: want != 0; Chinook changed: %d repeated playlists, %d single", len(want), single)
	}
	var batches []BatchResult
	res, err := e.CopyBatches(ctxT(t), dbmigrateapi.BatchRequest{Entity: "playlist_track"}, 0, func(b BatchResult) error {
		batches = append(batches, b)
		return nil
	})
	if err != nil || !res.Done {
		t.Fatalf("copy: %+v, %v", res, err)
	}
	if batches[0].Failed == 0 {
		t.Fatalf("first batch %+v reported no duplicate", batches[0])
	}
	if diff := cmp.Diff(want, duplicateErrors(t, e, "playlist_track")); diff != "" {
		t.Errorf("duplicate keys (-source +errors):\n%s", diff)
	}
	if n := count(t, e, `SELECT count(*) FROM public.playlist_track`); n != single {
		t.Errorf("%d rows loaded, want the %d playlists with one track", n, single)
	}
	failed := 0
	for _, n := range want {
		failed += n
	}
	if n := count(t, e, `SELECT records_failed FROM entity_migration_status WHERE id = $1`, e.EntityStatusID("playlist_track")); n != failed {
		t.Errorf("records_failed %d, want %d", n, failed)
	}
	// The counts add up: every source row is loaded or quarantined.
	vs, err := e.Validate(ctxT(t), "playlist_track")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		var d map[string]any
		_ = json.Unmarshal(v.IssueDetails, &d)
		if v.ValidationType == model.ValidationCompleteness && d["unaccounted"] != nil && d["unaccounted"] != float64(0) {
			t.Errorf("completeness: %s", v.IssueDetails)
		}
	}
}

// TestDuplicateKeysNeverFailTheBatch: a kept text key repeated inside one batch, into a target
// table without a primary key (which accepts both rows), used to fail the mapping COPY on
// every retry; and a batch writing keys an earlier batch already mapped (a re-run under a new
// batch number) used to fail the same way. Both quarantine the rows instead.
func TestDuplicateKeysNeverFailTheBatch(t *testing.T) {
	tbl := &dbcopytest.Table{Name: "item", Columns: []string{"id", "v"}, Types: []string{"TEXT", "TEXT"}}
	tbl.Rows = [][]any{{"A", "a"}, {"A ", "a space"}, {"B", "b"}, {"B", "b again"}, {"C", "c"}}
	ctx := ctxT(t)
	target := newTarget(t)
	e := openEngineAt(t, []*dbcopytest.Table{tbl}, target, `CREATE TABLE public.items (id text NOT NULL, v text)`, `name: dup-keys
sources: {legacy: {driver: sqlite, path: %q}}
entities:
  - {name: items, source_table: item, target_table: items, key: {source: id, target: id, mode: keep, type: text},
     columns: [{source: v, type: text}]}
`)
	res, err := e.CopyBatches(ctx, dbmigrateapi.BatchRequest{Entity: "items"}, 0, nil)
	if err != nil {
		t.Fatalf("err: want nil; copy: %+v, %v", res, err)
	}
	if !res.Done {
		t.Fatalf("res.Done is false; copy: %+v, %v", res, err)
	}
	if res.Failed != 2 {
		t.Fatalf("res.Failed = %v, want 2; copy: %+v, %v", res.Failed, res, err)
	}
	if diff := cmp.Diff([]string{"A =a space", "A=a", "C=c"}, strings0(t, e, `SELECT id || '=' || v FROM public.items`)); diff != "" {
		t.Errorf("target rows (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int{"B": 2}, duplicateErrors(t, e, "items")); diff != "" {
		t.Errorf("duplicate_key errors (-want +got):\n%s", diff)
	}
	again, err := e.CopyBatch(ctx, dbmigrateapi.BatchRequest{Entity: "items", BatchNumber: 7})
	if err != nil {
		t.Fatalf("err: want nil; a batch over mapped keys: %+v, %v", again, err)
	}
	if again.Replayed {
		t.Fatalf("again.Replayed is true; a batch over mapped keys: %+v, %v", again, err)
	}
	if again.Loaded != 0 {
		t.Fatalf("again.Loaded = %v, want 0; a batch over mapped keys: %+v, %v", again.Loaded, again, err)
	}
	if again.Failed != 5 {
		t.Fatalf("again.Failed = %v, want 5; a batch over mapped keys: %+v, %v", again.Failed, again, err)
	}
	if diff := cmp.Diff(map[string]int{"A": 1, "A ": 1, "B": 2, "C": 1}, duplicateErrors(t, e, "items")); diff != "" {
		t.Errorf("duplicate_key errors after the second batch (-want +got):\n%s", diff)
	}
}

// openSpec opens and prepares an engine for a complete spec on target.
func openSpec(t *testing.T, target, specYAML string) *Engine {
	t.Helper()
	return openSpecWriters(t, target, specYAML, 0)
}

// openSpecWriters is openSpec with writers concurrent batch writers (0: the engine's default).
func openSpecWriters(t *testing.T, target, specYAML string, writers int) *Engine {
	t.Helper()
	ctx := ctxT(t)
	sp, err := spec.Parse([]byte(specYAML))
	if err != nil {
		t.Fatal(err)
	}
	e, err := Open(ctx, sp, Options{MigrationID: newID(), TargetURL: target, Writers: writers})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	if err := e.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	return e
}

// openEngineAt is openEngine on a given target, prepared by ddl first.
func openEngineAt(t *testing.T, tables []*dbcopytest.Table, target, ddl, specYAML string) *Engine {
	t.Helper()
	ctx := ctxT(t)
	if ddl != "" {
		conn, err := pgx.Connect(ctx, target)
		if err == nil {
			_, err = conn.Exec(ctx, ddl)
			conn.Close(ctx)
		}
		if err != nil {
			t.Fatalf("%s: %v", ddl, err)
		}
	}
	src := filepath.Join(t.TempDir(), "legacy.db")
	if err := dbcopytest.WriteSQLite(ctx, src, tables); err != nil {
		t.Fatal(err)
	}
	return openSpec(t, target, fmt.Sprintf(specYAML, src))
}
