package dbcopy

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// TestOrphanLoadsAfterItsParent: the application writes a team and a member of it after the
// teams were copied; the member, read before its parent reached the target, is quarantined
// as orphan_fk, stays so when re-driven while the parent is still missing, and loads when
// re-driven after the catch-up that copied its parent, referencing it (read in the target).
// Rows quarantined for other reasons are not re-driven with it.
func TestOrphanLoadsAfterItsParent(t *testing.T) {
	ctx := ctxT(t)
	teams := &dbcopytest.Table{Name: "team", PK: true, Columns: []string{"id", "name"}, Types: []string{"INTEGER", "TEXT"},
		Rows: [][]any{{int64(1), "red"}, {int64(2), "blue"}}}
	members := &dbcopytest.Table{Name: "member", PK: true, Columns: []string{"id", "team_id", "joined"},
		Types: []string{"INTEGER", "INTEGER", "TEXT"},
		Rows:  [][]any{{int64(1), int64(1), "2024-01-01"}, {int64(2), int64(2), "not a date"}}}
	src := filepath.Join(t.TempDir(), "legacy.db")
	if err := dbcopytest.WriteSQLite(ctx, src, []*dbcopytest.Table{teams, members}); err != nil {
		t.Fatal(err)
	}
	e := openSpec(t, newTarget(t), fmt.Sprintf(`name: orphans
sources: {legacy: {driver: sqlite, path: %q}}
target: {create_tables: true}
entities:
  - {name: teams, source_table: team, target_table: teams, key: {source: id},
     columns: [{source: id, target: legacy_id, type: bigint}, {source: name, type: text}]}
  - {name: members, source_table: member, target_table: members, key: {source: id},
     columns: [{source: id, target: legacy_id, type: bigint}, {source: team_id, references: teams}, {source: joined, type: date}]}
`, src))
	full, err := e.CopyBatches(ctx, dbmigrateapi.BatchRequest{Entity: "teams"}, 0, nil)
	if err != nil || !full.Done {
		t.Fatalf("teams: %+v, %v", full, err)
	}
	db, err := sql.Open("sqlite", "file:"+src)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{`INSERT INTO team VALUES (3, 'green')`, `INSERT INTO member VALUES (3, 3, '2024-02-02')`} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if res, err := e.CopyBatches(ctx, dbmigrateapi.BatchRequest{Entity: "members"}, 0, nil); err != nil || !res.Done {
		t.Fatalf("members: %+v, %v", res, err)
	}
	if diff := cmp.Diff(map[string]int{"orphan_fk": 1, "bad_timestamp": 1}, errorCodes(t, e, "members")); diff != "" {
		t.Fatalf("member errors (-want +got):\n%s", diff)
	}
	if r, err := e.RetryOrphans(ctx, "members"); err != nil {
		t.Fatalf("err: want nil; re-driven before its parent arrived: %+v, %v; want 1 retried, still failing",
			r, err)
	} else if r.Retried != 1 {
		t.Fatalf("r.Retried = %v, want 1; re-driven before its parent arrived: %+v, %v; want 1 retried, still failing",
			r.Retried, r, err)
	} else if r.Loaded != 0 {
		t.Fatalf("r.Loaded = %v, want 0; re-driven before its parent arrived: %+v, %v; want 1 retried, still failing",
			r.Loaded, r, err)
	} else if r.Failed != 1 {
		t.Fatalf("r.Failed = %v, want 1; re-driven before its parent arrived: %+v, %v; want 1 retried, still failing",
			r.Failed, r, err)
	}
	catchUp, err := e.CopyBatches(ctx, dbmigrateapi.BatchRequest{Entity: "teams", Sync: true, After: full.Next.After,
		BatchNumber: full.Next.BatchNumber, Mark: full.MarkStart}, 0, nil)
	if err != nil {
		t.Fatalf("err: want nil; teams catch-up: %+v, %v; want the new team", catchUp, err)
	}
	if catchUp.Loaded != 1 {
		t.Fatalf("catchUp.Loaded = %v, want 1; teams catch-up: %+v, %v; want the new team",
			catchUp.Loaded, catchUp, err)
	}
	if r, err := e.RetryOrphans(ctx, "members"); err != nil {
		t.Fatalf("err: want nil; re-driven after its parent arrived: %+v, %v; want it loaded", r, err)
	} else if r.Retried != 1 {
		t.Fatalf("r.Retried = %v, want 1; re-driven after its parent arrived: %+v, %v; want it loaded",
			r.Retried, r, err)
	} else if r.Loaded != 1 {
		t.Fatalf("r.Loaded = %v, want 1; re-driven after its parent arrived: %+v, %v; want it loaded",
			r.Loaded, r, err)
	} else if r.Failed != 0 {
		t.Fatalf("r.Failed = %v, want 0; re-driven after its parent arrived: %+v, %v; want it loaded",
			r.Failed, r, err)
	}
	got := strings0(t, e, `SELECT m.legacy_id || '→' || t.name FROM public.members m JOIN public.teams t ON t.id = m.team_id`)
	if diff := cmp.Diff([]string{"1→red", "3→green"}, got); diff != "" {
		t.Errorf("members in the target (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int{"bad_timestamp": 1}, errorCodes(t, e, "members")); diff != "" {
		t.Errorf("member errors left (-want +got):\n%s", diff)
	}
}
