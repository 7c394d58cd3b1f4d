package cli_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/starter/cli"
)

// TestDBRecoveryTakesUpAnEntityStoppedAtItsLimit: a migration started with --max-errors 2 meets
// three rows its spec cannot load in one entity; the entity stops at its error limit and the
// migration fails. Before, every recovery but a rollback resumed the entity as it was and it
// stopped at the same limit again. Now:
//   - the operator fixes the rows at the source and runs `db retry-failed`: the new run
//     re-drives the stopped entity's quarantined rows before its load resumes, and the
//     migration completes with every source row in the target;
//   - or the operator accepts the rows (`db accept-errors`): the entity resumes with them off
//     its error count and the migration completes without them.
//
// The target is read here, row for row, not through the ledger.
func TestDBRecoveryTakesUpAnEntityStoppedAtItsLimit(t *testing.T) {
	srv := testenv.StartTemporal(t)
	queue := cliWorker(t, srv, testenv.NewDatabase(t))
	for _, tc := range []struct {
		name string
		fix  bool // fix the rows at the source
		cmd  []string
	}{
		{"retry-failed after a fix at the source", true, []string{"retry-failed", "--reason", "three rows fixed at the source"}},
		{"accept-errors", false, []string{"accept-errors", "--reason", "three legacy rows, re-entered by hand"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := testenv.NewDatabase(t)
			dir := t.TempDir()
			src := filepath.Join(dir, "legacy.db")
			items := &dbcopytest.Table{Name: "item", PK: true, Columns: []string{"id", "n"}, Types: []string{"INTEGER", "TEXT"}}
			want := map[int64]int64{}
			for id := int64(1); id <= 40; id++ {
				var n any = fmt.Sprint(id * 7)
				if id >= 12 && id <= 14 {
					n = "not a number"
				}
				if tc.fix || n != "not a number" {
					want[id] = id * 7
				}
				items.Rows = append(items.Rows, []any{id, n})
			}
			if err := dbcopytest.WriteSQLite(context.Background(), src, []*dbcopytest.Table{items}); err != nil {
				t.Fatal(err)
			}
			specPath := filepath.Join(dir, "items.yaml")
			if err := os.WriteFile(specPath, fmt.Appendf(nil, `name: items-limit
sources: {legacy: {driver: sqlite, path: legacy.db}}
target: {dsn: %q, create_tables: true}
batch_size: 10
entities:
  - {name: items, source_table: item, target_table: items, key: {source: id},
     columns: [{source: id, target: legacy_id, type: bigint}, {source: n, type: bigint}]}
`, target), 0o644); err != nil {
				t.Fatal(err)
			}
			env := map[string]string{"TEMPORAL_ADDRESS": srv.Address(), "CUTOVER_TASK_QUEUE": queue, "USER": "ops",
				"CUTOVER_REPORT_DIR": filepath.Join(dir, "reports")}
			id := uuid.NewString()
			if r := run(t, env, "", "db", "start", "--id", id, "--max-errors", "2", specPath); r.code != cli.ExitOK {
				t.Fatalf("db start: %+v", r)
			}
			st := waitDBStatus(t, env, id, "failed", 2*time.Minute)
			if !strings.Contains(st.Error, "exceed the limit of 2") {
				t.Fatalf("st.Error = %q, want the entity's error limit", st.Error)
			}
			if tc.fix {
				db, err := sql.Open("sqlite", "file:"+src)
				if err != nil {
					t.Fatal(err)
				}
				_, err = db.Exec(`UPDATE item SET n = CAST(id * 7 AS TEXT) WHERE n = 'not a number'`)
				db.Close()
				if err != nil {
					t.Fatal(err)
				}
			}
			r := run(t, env, "", slices.Concat([]string{"db"}, tc.cmd[:1], []string{id}, tc.cmd[1:])...)
			if r.code != cli.ExitOK {
				t.Fatalf("db %s: %+v", tc.cmd[0], r)
			}
			if !strings.Contains(r.stdout, "started as run") {
				t.Fatalf("db %s: %+v, want a new run of the failed migration", tc.cmd[0], r)
			}
			st = waitDBStatus(t, env, id, "completed", 2*time.Minute)
			if len(st.Recoveries) != 1 {
				t.Fatalf("len(st.Recoveries) = %d, want 1: %+v", len(st.Recoveries), st.Recoveries)
			}
			if st.Recoveries[0].From != "failed" {
				t.Errorf("st.Recoveries[0].From = %q, want \"failed\"", st.Recoveries[0].From)
			}
			if diff := cmp.Diff(want, targetItems(t, target)); diff != "" {
				t.Errorf("target rows (-want +got):\n%s", diff)
			}
		})
	}
}

// targetItems reads public.items (legacy_id → n) from the target, failing on a key read twice.
func targetItems(t *testing.T, target string) map[int64]int64 {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), target)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(context.Background(), `SELECT legacy_id, n FROM public.items`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[int64]int64{}
	for rows.Next() {
		var k, n int64
		if err := rows.Scan(&k, &n); err != nil {
			t.Fatal(err)
		}
		if _, dup := got[k]; dup {
			t.Errorf("legacy_id %d in the target twice", k)
		}
		got[k] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}
