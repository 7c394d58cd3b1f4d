package dbcopy

import (
	"database/sql"
	"testing"

	"github.com/cutover/cutover/activities/dbcopy/capture"
	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
)

// TestCaptureLeavesCompositeKeyTablesAlone: a SQLite source with a captured table and a table
// keyed by two columns (caught up by key cursor: the change log records one key column). The
// capture installs no trigger on the second table — a trigger naming its (absent) single key
// would make every application write to it fail — and the application keeps writing to both.
func TestCaptureLeavesCompositeKeyTablesAlone(t *testing.T) {
	ctx := ctxT(t)
	accounts := &dbcopytest.Table{Name: "accounts", PK: true, Columns: []string{"id", "email"}, Types: []string{"INTEGER", "TEXT"},
		Rows: [][]any{{int64(1), "a@x"}}}
	links := &dbcopytest.Table{Name: "links", Columns: []string{"a", "b"}, Types: []string{"INTEGER", "INTEGER"},
		Rows: [][]any{{int64(1), int64(1)}}}
	e := openEngineAt(t, []*dbcopytest.Table{accounts, links}, newTarget(t), "", `name: composite
sources: {legacy: {driver: sqlite, path: %q}}
target: {create_tables: true}
entities:
  - {name: accounts, source_table: accounts, target_table: accounts, key: {source: id},
     columns: [{source: id, target: legacy_id, type: bigint}, {source: email, type: text}]}
  - {name: links, source_table: links, target_table: links, key: {columns: [a, b]},
     columns: [{source: a, type: bigint}, {source: b, type: bigint}]}
`)
	if err := e.InstallCapture(ctx); err != nil {
		t.Fatal(err)
	}
	path := e.Spec().Sources["legacy"].Path
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, stmt := range []string{
		`INSERT INTO links (a, b) VALUES (1, 2)`,
		`UPDATE links SET b = 3 WHERE b = 2`,
		`DELETE FROM links WHERE b = 3`,
		`INSERT INTO accounts (id, email) VALUES (2, 'b@x')`,
	} {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			t.Errorf("the application's %s after the capture was installed: %v", stmt, err)
		}
	}
	l, err := capture.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, trig, err := l.Installed(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(trig) != 3 {
		t.Errorf("triggers installed: %v, want the three of accounts", trig)
	}
}
