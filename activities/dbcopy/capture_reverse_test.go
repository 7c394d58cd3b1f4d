package dbcopy

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// TestReverseFlowWritesTargetChangesBackToSQLite migrates the app into a target that logical
// replication can follow, cuts over, then lets the application write on PostgreSQL (updates,
// a new account with its session, a session moved to it, deletions): the reverse flow writes
// every change back into the SQLite file, new rows with new legacy ids, and removing it leaves
// no table of its own in the file and no slot on the target.
func TestReverseFlowWritesTargetChangesBackToSQLite(t *testing.T) {
	ctx := ctxT(t)
	app, err := dbcopytest.CreateApp(ctx, "sqlite", filepath.Join(t.TempDir(), "app.db"), 300, 400)
	if err != nil {
		t.Fatal(err)
	}
	_, err = spec.Parse([]byte(dbcopytest.AppSpec(app.SourceYAML(), 100) + "  reverse_flow: true\n"))
	if err == nil {
		t.Fatal("reverse_flow under entities parsed")
	}
	doc := strings.Replace(dbcopytest.AppSpec(app.SourceYAML(), 100), "  create_tables: true\n", "  create_tables: true\n  reverse_flow: true\n", 1)
	sp, err := spec.Parse([]byte(doc))
	if err != nil || !sp.Target.ReverseFlow {
		t.Fatalf("spec: %v", err)
	}
	target := logicalDatabase(t)
	e, err := Open(ctx, sp, Options{MigrationID: newID(), MigrationType: model.MigrationIncremental, TargetURL: target})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.InstallCapture(ctx); err != nil {
		t.Fatal(err)
	}
	copyAll(t, e)
	if _, err := e.Drain(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	if err := e.RemoveCapture(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.InstallReverse(ctx); err != nil {
		t.Fatal(err)
	}

	// The application now writes on PostgreSQL.
	conn, err := pgx.Connect(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range []string{
		`UPDATE public.accounts SET password_hash = 'pg-rehash', is_read = NOT coalesce(is_read, false) WHERE legacy_id <= 20`,
		`INSERT INTO public.accounts (id, email, password_hash, is_read, created_at)
			VALUES ('6f1c2a1e-0000-4a4a-8a8a-000000000001', 'born-on-pg@mail.example', 'h', true, '2025-02-01 10:00:00+00')`,
		`INSERT INTO public.sessions (id, account_id, token, expires_at)
			VALUES ('6f1c2a1e-0000-4a4a-8a8a-000000000002', '6f1c2a1e-0000-4a4a-8a8a-000000000001', 'tok-pg', 1750000000)`,
		`UPDATE public.sessions SET account_id = '6f1c2a1e-0000-4a4a-8a8a-000000000001' WHERE legacy_id = 7`,
		`DELETE FROM public.sessions WHERE account_id = (SELECT id FROM public.accounts WHERE legacy_id = 30)`,
		`DELETE FROM public.accounts WHERE legacy_id = 30`,
		`UPDATE public.sessions SET expires_at = expires_at + 60 WHERE legacy_id BETWEEN 100 AND 120`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	st, err := e.ReverseDrain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("reverse drain: %+v", st)
	if st.Inserted != 2 {
		t.Fatalf("st.Inserted = %v, want 2; reverse drain %+v: want the 2 rows created on the target inserted and the deletions applied",
			st.Inserted, st)
	}
	if st.Deleted == 0 {
		t.Fatalf("st.Deleted = %v, want != 0; reverse drain %+v: want the 2 rows created on the target inserted and the deletions applied",
			st.Deleted, st)
	}
	if again, err := e.ReverseDrain(ctx); err != nil {
		t.Fatalf("err: want nil; a second reverse drain applied %+v, %v", again, err)
	} else if again.Changes != 0 {
		t.Fatalf("again.Changes = %v, want 0; a second reverse drain applied %+v, %v", again.Changes, again, err)
	}
	want, err := app.ReadSource(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := dbcopytest.ReadTargetMapped(ctx, e.Pool(), e.MigrationID().String())
	if err != nil {
		t.Fatal(err)
	}
	if d := dbcopytest.Diff(want, got, 20); len(d) > 0 {
		t.Fatalf("the SQLite file differs from the target in %d row(s):\n  %s", len(d), strings.Join(d, "\n  "))
	}
	if !strings.Contains(want.Accounts[301], "born-on-pg@mail.example") {
		t.Fatalf("the account created on PostgreSQL is not account 301 in SQLite: %q", want.Accounts[301])
	}
	if err := e.RemoveReverse(ctx); err != nil {
		t.Fatal(err)
	}
	var slots int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_replication_slots`).Scan(&slots); err != nil {
		t.Fatalf("err: want nil; %d slots left on the target (%v)", slots, err)
	} else if slots != 0 {
		t.Fatalf("slots: want 0; %d slots left on the target (%v)", slots, err)
	}
	var left int
	if err := pgxQueryRowSQLite(ctx, app.Location, &left); err != nil {
		t.Fatalf("err: want nil; %d tables or triggers of the migration left in the SQLite file (%v)", left, err)
	} else if left != 0 {
		t.Fatalf("left: want 0; %d tables or triggers of the migration left in the SQLite file (%v)", left, err)
	}
}

// pgxQueryRowSQLite counts what of the migration is left in a SQLite file.
func pgxQueryRowSQLite(ctx context.Context, path string, n *int) error {
	db, err := openReverse(path)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE name LIKE '\_cutover\_%' ESCAPE '\'`).Scan(n)
}
