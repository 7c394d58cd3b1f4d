package dbcopy

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// TestCompositeKeysAndSelfReferences copies a composite-key table and a self-referencing one,
// two rows per batch so keys and references cross batches: every composite key pages without
// a gap (row-value comparison) and is mapped as its JSON array; a report whose manager comes
// in a later batch is loaded, one whose manager does not exist is quarantined at once, and one
// whose manager was quarantined is quarantined when the table is finalized, before its
// foreign key is added.
func TestCompositeKeysAndSelfReferences(t *testing.T) {
	emp := &dbcopytest.Table{Name: "employee", PK: true, Columns: []string{"id", "name", "reports_to"},
		Types: []string{"INTEGER", "TEXT", "INTEGER"}}
	emp.Rows = [][]any{{int64(1), "Ada", int64(3)}, {int64(2), "Bob", int64(1)}, {int64(3), "Cy", nil},
		{int64(4), "Dee", int64(99)}, {int64(5), "Eve", int64(4)}, {int64(6), "Fay", int64(2)}}
	pt := &dbcopytest.Table{Name: "playlist_track", Columns: []string{"playlist_id", "track_id", "pos"},
		Types: []string{"INTEGER", "INTEGER", "INTEGER"}}
	for _, k := range [][2]int64{{1, 2}, {1, 10}, {1, 3}, {2, 1}, {10, 1}, {2, 2}, {3, 1}} {
		pt.Rows = append(pt.Rows, []any{k[0], k[1], k[0]*100 + k[1]})
	}
	e := openEngine(t, []*dbcopytest.Table{emp, pt}, `name: real-keys
sources: {legacy: {driver: sqlite, path: %q}}
target: {create_tables: true}
batch_size: 2
error_budget: {max_rows: 2}
entities:
  - {name: employees, source_table: employee, target_table: employees, key: {source: id},
     columns: [{source: id, target: legacy_id, type: bigint}, {source: name, type: text}, {source: reports_to, references: employees}]}
  - {name: playlist_tracks, source_table: playlist_track, target_table: playlist_tracks, key: {columns: [playlist_id, track_id]},
     columns: [{source: playlist_id, type: bigint}, {source: track_id, type: bigint}, {source: pos, type: bigint}],
     indexes: [{columns: [playlist_id, track_id], unique: true}]}
`)
	copyAll(t, e)
	ctx := context.Background()

	// Employees: who reports to whom, read in the target through the references.
	got := strings0(t, e, `SELECT c.legacy_id || '→' || coalesce(m.legacy_id::text, '-') FROM public.employees c
		LEFT JOIN public.employees m ON m.id = c.reports_to`)
	if diff := cmp.Diff([]string{"1→3", "2→1", "3→-", "6→2"}, got); diff != "" {
		t.Errorf("employees (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int{"orphan_fk": 2}, errorCodes(t, e, "employees")); diff != "" {
		t.Errorf("employee errors (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"4", "5"}, strings0(t, e, `SELECT source_record_id FROM migration_errors
		WHERE entity_status_id = $1 AND source_data->>'name' IS NOT NULL`, e.EntityStatusID("employees"))); diff != "" {
		t.Errorf("quarantined employees with their source rows (-want +got):\n%s", diff)
	}
	var processed, failed int
	if err := e.Pool().QueryRow(ctx, `SELECT records_processed, records_failed FROM entity_migration_status WHERE id = $1`,
		e.EntityStatusID("employees")).Scan(&processed, &failed); err != nil {
		t.Errorf("err: want nil; employee counters %d processed, %d failed (%v); want 4, 2", processed, failed, err)
	} else if processed != 4 {
		t.Errorf("processed: want 4; employee counters %d processed, %d failed (%v); want 4, 2",
			processed, failed, err)
	} else if failed != 2 {
		t.Errorf("failed: want 2; employee counters %d processed, %d failed (%v); want 4, 2", processed, failed, err)
	}
	if n := count(t, e, `SELECT count(*) FROM pg_constraint WHERE conrelid = 'public.employees'::regclass AND contype = 'f'`); n != 1 {
		t.Errorf("%d foreign keys on employees, want the self reference's", n)
	}

	// Playlist tracks: every composite key once, under the UUID of its JSON array.
	var want []string
	for _, r := range pt.Rows {
		k := fmt.Sprintf("[%d,%d]", r[0], r[1])
		want = append(want, fmt.Sprintf("%s %d %s", k, r[2], spec.RowUUID(e.Spec().NamespaceUUID(), "playlist_track", k)))
	}
	got = strings0(t, e, `SELECT m.source_id || ' ' || t.pos || ' ' || t.id FROM public.playlist_tracks t
		JOIN migration_mappings m ON m.destination_id = t.id AND m.source_table = 'playlist_track'
		WHERE t.pos = t.playlist_id * 100 + t.track_id`)
	if diff := cmp.Diff(sortedCopy(want), got); diff != "" {
		t.Errorf("playlist tracks (-want +got):\n%s", diff)
	}
	assertValidated(t, e, "employees")
	assertValidated(t, e, "playlist_tracks")
}

func sortedCopy(s []string) []string { return slices.Sorted(slices.Values(s)) }
