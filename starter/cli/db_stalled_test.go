package cli_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
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

// TestDBStatusShowsAStalledBatch: the application holds a lock on a target table the migration
// writes (SHARE: reads go on, writes wait). Every batch then waits out the spec's lock_timeout
// and its copy activity is retried; once no batch committed for a minute `db status` shows the
// copy as STALLED, with its attempt and the lock timeout as its last failure. (Before, each
// attempt restarted the clock, so a batch failing every attempt showed "running" for ever.)
// Once the lock goes, the same migration completes with every row in the target.
func TestDBStatusShowsAStalledBatch(t *testing.T) {
	srv := testenv.StartTemporal(t)
	queue := cliWorker(t, srv, testenv.NewDatabase(t))
	target := testenv.NewDatabase(t)
	dir := t.TempDir()
	items := &dbcopytest.Table{Name: "item", PK: true, Columns: []string{"id", "n"}, Types: []string{"INTEGER", "INTEGER"}}
	want := map[int64]int64{}
	for id := int64(1); id <= 30; id++ {
		items.Rows = append(items.Rows, []any{id, id * 7})
		want[id] = id * 7
	}
	if err := dbcopytest.WriteSQLite(context.Background(), filepath.Join(dir, "legacy.db"), []*dbcopytest.Table{items}); err != nil {
		t.Fatal(err)
	}
	specPath := filepath.Join(dir, "items.yaml")
	if err := os.WriteFile(specPath, fmt.Appendf(nil, `name: items-stalled
sources: {legacy: {driver: sqlite, path: legacy.db}}
target: {dsn: %q, create_tables: true, lock_timeout: 2s}
batch_size: 10
entities:
  - {name: items, source_table: item, target_table: items, key: {source: id},
     columns: [{source: id, target: legacy_id, type: bigint}, {source: n, type: bigint}]}
`, target), 0o644); err != nil {
		t.Fatal(err)
	}
	// The application's table, and its lock.
	ctx := context.Background()
	app, err := pgx.Connect(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close(context.Background())
	if _, err := app.Exec(ctx, `CREATE TABLE public.items (id uuid NOT NULL PRIMARY KEY DEFAULT gen_random_uuid(),
		legacy_id bigint, n bigint)`); err != nil {
		t.Fatal(err)
	}
	tx, err := app.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := tx.Exec(ctx, `LOCK TABLE public.items IN SHARE MODE`); err != nil {
		t.Fatal(err)
	}

	env := map[string]string{"TEMPORAL_ADDRESS": srv.Address(), "CUTOVER_TASK_QUEUE": queue, "USER": "ops",
		"CUTOVER_REPORT_DIR": filepath.Join(dir, "reports")}
	id := uuid.NewString()
	if r := run(t, env, "", "db", "start", "--id", id, specPath); r.code != cli.ExitOK {
		t.Fatalf("db start: %+v", r)
	}
	// A minute without a committed batch, across the copy's attempts, makes it stalled.
	var shown string
	deadline := time.Now().Add(3 * time.Minute)
	for {
		r := run(t, env, "", "db", "status", id)
		if r.code == cli.ExitOK && strings.Contains(r.stdout, "STALLED: DBCopyChunk of items") &&
			strings.Contains(r.stdout, "lock timeout") {
			shown = r.stdout
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("db status never showed the copy of items stalled behind the lock:\n%s%s", r.stdout, r.stderr)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("db status while the lock is held:\n%s", shown)
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	waitDBStatus(t, env, id, "completed", 2*time.Minute)
	if diff := cmp.Diff(want, targetItems(t, target)); diff != "" {
		t.Errorf("target rows (-want +got):\n%s", diff)
	}
}
