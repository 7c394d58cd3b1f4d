package dbcopy

import (
	"database/sql"
	"fmt"
	"testing"

	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
	"github.com/cutover/cutover/internal/model"
)

// TestFreezeCountFindsARowTheLogMissed: INSERT OR REPLACE deletes the row it conflicts with on
// another unique column without firing its DELETE trigger (SQLite fires delete triggers of
// REPLACE only with recursive_triggers), so the change log never names the deleted row and the
// target keeps it. The freeze's count of the whole source table is what finds it (README: why
// the freeze still counts the source itself); the check fails instead of passing.
func TestFreezeCountFindsARowTheLogMissed(t *testing.T) {
	ctx := ctxT(t)
	accounts := &dbcopytest.Table{Name: "accounts", PK: true, Columns: []string{"id", "email"}, Types: []string{"INTEGER", "TEXT"}}
	for i := 1; i <= 20; i++ {
		accounts.Rows = append(accounts.Rows, []any{int64(i), fmt.Sprintf("u%d@x", i)})
	}
	e := openEngineAt(t, []*dbcopytest.Table{accounts}, newTarget(t), "", `name: replaced
sources: {legacy: {driver: sqlite, path: %q}}
target: {create_tables: true}
entities:
  - {name: accounts, source_table: accounts, target_table: accounts, key: {source: id},
     columns: [{source: id, target: legacy_id, type: bigint}, {source: email, type: text, unique: true, not_null: true}]}
`)
	if err := e.InstallCapture(ctx); err != nil {
		t.Fatal(err)
	}
	copyAll(t, e)
	db, err := sql.Open("sqlite", e.Spec().Sources["legacy"].Path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `CREATE UNIQUE INDEX accounts_email ON accounts (email)`); err != nil {
		t.Fatal(err)
	}
	// Row 7 goes (its email taken by a new row 21); the log names 21 only.
	if _, err := db.ExecContext(ctx, `INSERT OR REPLACE INTO accounts (id, email) VALUES (21, 'u7@x')`); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Drain(ctx, "legacy"); err != nil {
		t.Fatal(err)
	}
	vs, err := e.ValidateChanged(ctx, "accounts", 0)
	if err != nil {
		t.Fatal(err)
	}
	if vs[0].Status != model.ValidationFailed || vs[0].IssuesFound != 1 {
		t.Fatalf("count check %s with %d issues (%s), want failed with 1: the row REPLACE deleted is still in the target",
			vs[0].Status, vs[0].IssuesFound, vs[0].IssueDetails)
	}
	if Passed(vs, false) {
		t.Fatal("the freeze validation passed with a row the source no longer has")
	}
}
