package dbcopy

import (
	"database/sql"
	"strings"
	"testing"

	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
	"github.com/cutover/cutover/internal/model"
)

// TestCapturedCutoverMovesSequencesPastTheLastDrain: in a captured migration the application
// keeps inserting into the source after the full validation; the freeze's last drain brings
// those rows (kept integer keys above everything copied before). The validation inside the
// freeze runs the application-insert check after that drain: the identity is moved past the
// drained maximum, and the application's own INSERT on the target then gets a fresh key.
func TestCapturedCutoverMovesSequencesPastTheLastDrain(t *testing.T) {
	ctx := ctxT(t)
	notes := &dbcopytest.Table{Name: "notes", PK: true, Columns: []string{"id", "body"}, Types: []string{"INTEGER", "TEXT"},
		Rows: [][]any{{int64(1), "a"}, {int64(2), "b"}, {int64(3), "c"}}}
	src := t.TempDir() + "/legacy.db"
	if err := dbcopytest.WriteSQLite(ctx, src, []*dbcopytest.Table{notes}); err != nil {
		t.Fatal(err)
	}
	e := openSpec(t, newTarget(t), `name: captured
sources: {legacy: {driver: sqlite, path: "`+src+`", capture: triggers}}
target: {create_tables: true}
entities:
  - {name: notes, source_table: notes, target_table: notes, key: {source: id, mode: keep, type: bigint},
     columns: [{source: body, type: text}]}
`)
	if err := e.InstallCapture(ctx); err != nil {
		t.Fatal(err)
	}
	copyAll(t, e)
	dv, err := e.ValidateBeforeFreeze(ctx, "notes")
	if err != nil {
		t.Fatal(err)
	}
	// The application's last writes before the freeze.
	db, err := sql.Open("sqlite", "file:"+src+"?_pragma=busy_timeout(2000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, id := range []int64{4, 5, 100} {
		if _, err := db.ExecContext(ctx, `INSERT INTO notes (id, body) VALUES (?, 'late')`, id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.Drain(ctx, "legacy"); err != nil {
		t.Fatal(err)
	}
	vs, err := e.ValidateChanged(ctx, "notes", dv.Since)
	if err != nil {
		t.Fatal(err)
	}
	var app string
	for _, v := range vs {
		if strings.Contains(string(v.ValidationCriteria), "application insert") {
			app = string(v.Status)
		}
	}
	if app != string(model.ValidationPassed) {
		t.Fatalf("application insert check inside the freeze: %q, want passed (%d checks recorded)", app, len(vs))
	}
	var id int64
	if err := e.Pool().QueryRow(ctx, `INSERT INTO public.notes (body) VALUES ('after cutover') RETURNING id`).Scan(&id); err != nil {
		t.Fatalf("the application's insert after cutover: %v", err)
	}
	if id <= 100 {
		t.Errorf("new note id %d, want past the drained maximum 100", id)
	}
}
