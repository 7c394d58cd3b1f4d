package datasets

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cutover/cutover/internal/testing/testenv"
)

// TestDiffSeesARowHeldTwice: a target holding one source row twice (a table without a unique
// key) differs from the source by that second copy; before, the second copy replaced the first
// under its key and the comparison passed.
func TestDiffSeesARowHeldTwice(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "src.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT);
		INSERT INTO item VALUES (1, 'a'), (2, 'b')`); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, testenv.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, `CREATE TABLE item (id bigint, name text);
		INSERT INTO item VALUES (1, 'a'), (2, 'b'), (2, 'b')`); err != nil {
		t.Fatal(err)
	}
	tgt, types := TargetTable(t, pool, "public", "item", []string{"id"})
	got := Diff(SourceTable(t, path, "item", []string{"id"}, types), tgt, 10)
	if diff := cmp.Diff([]string{`key "2 (again)": in the target only`}, got); diff != "" {
		t.Errorf("differences (-want +got):\n%s", diff)
	}
}
