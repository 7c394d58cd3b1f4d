package faults_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// TestCaptureRollbackAfterCutoverKeepsTargetWrites migrates a SQLite application into a target
// logical replication can follow (target.reverse_flow), cuts over, lets the application write
// on PostgreSQL (updates, a new account and session, a session moved, deletions), and rolls
// back: the SQLite file then holds every one of those writes (read by the test and compared
// with the target as it was before the rollback), the migration is pending again, and neither
// the file nor the target keeps anything of the migration.
func TestCaptureRollbackAfterCutoverKeepsTargetWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the worker and runs a migration")
	}
	ctx := context.Background()
	testenv.WorkerBinary(t)
	cluster := testenv.StartPostgresWith(t, "wal_level=logical", "max_replication_slots=4", "max_wal_senders=4")
	app, err := dbcopytest.CreateApp(ctx, "sqlite", filepath.Join(t.TempDir(), "app.db"), 2000, 3000)
	if err != nil {
		t.Fatal(err)
	}
	target := cluster.DatabaseURL("target")
	doc := strings.Replace(dbcopytest.AppSpec(app.SourceYAML(), 250), "  create_tables: true\n",
		fmt.Sprintf("  create_tables: true\n  reverse_flow: true\n  dsn: %q\n", target), 1)
	m := startCapturedMigration(t, "reverse", doc, time.Second)
	status := m.status
	testenv.WaitFor(t, "catch-up validated", 4*time.Minute, func() bool {
		st := status()
		return st.Capture != nil && st.Capture.FullValidationDone
	})
	m.signal(t, dbmigrateapi.SignalCutover, dbmigrateapi.CutoverRequest{RequestedBy: "ops"})
	testenv.WaitFor(t, "reverse flow after cutover", 3*time.Minute, func() bool { return status().Phase == dbmigrateapi.PhaseReverseSync })

	// The application now runs on PostgreSQL.
	pg, err := pgx.Connect(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close(ctx)
	for _, q := range []string{
		`UPDATE public.accounts SET password_hash = 'set-on-pg', is_read = NOT coalesce(is_read, false) WHERE legacy_id % 10 = 3`,
		`INSERT INTO public.accounts (id, email, password_hash, is_read, created_at)
			VALUES ('6f1c2a1e-0000-4a4a-8a8a-0000000000a1', 'born-on-pg@mail.example', 'h', true, now())`,
		`INSERT INTO public.sessions (id, account_id, token, expires_at)
			VALUES ('6f1c2a1e-0000-4a4a-8a8a-0000000000a2', '6f1c2a1e-0000-4a4a-8a8a-0000000000a1', 'tok-pg', 1750000000)`,
		`UPDATE public.sessions SET account_id = '6f1c2a1e-0000-4a4a-8a8a-0000000000a1' WHERE legacy_id IN (11, 12)`,
		`DELETE FROM public.sessions WHERE account_id IN (SELECT id FROM public.accounts WHERE legacy_id IN (40, 41))`,
		`DELETE FROM public.accounts WHERE legacy_id IN (40, 41)`,
	} {
		if _, err := pg.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	testenv.WaitFor(t, "a reverse pass", 2*time.Minute, func() bool {
		st := status()
		return st.Reverse != nil && st.Reverse.ChangesApplied > 0
	})
	// The target as the application left it, by legacy id through the mappings.
	onPG, err := dbcopytest.ReadTargetMapped(ctx, newPool(t, target), m.in.MigrationID)
	if err != nil {
		t.Fatal(err)
	}
	m.signal(t, dbmigrateapi.SignalRollback, dbmigrateapi.RollbackRequest{RequestedBy: "ops", Reason: "back to SQLite"})
	res := m.result(t, 3*time.Minute)
	if res.Status != model.OrchPending {
		t.Fatalf("res.Status = %v, want model.OrchPending; result %+v", res.Status, res)
	}
	if !res.RolledBack {
		t.Fatalf("res.RolledBack is false; result %+v", res)
	}
	if res.Reverse == nil {
		t.Fatalf("res.Reverse is nil; result %+v", res)
	}
	if !res.Reverse.Removed {
		t.Fatalf("res.Reverse.Removed is false; result %+v", res)
	}
	inSQLite, err := app.ReadSource(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := dbcopytest.Diff(onPG, inSQLite, 20); len(d) > 0 {
		t.Fatalf("the SQLite file misses writes made on PostgreSQL after cutover (%d rows):\n  %s", len(d), strings.Join(d, "\n  "))
	}
	if !strings.Contains(inSQLite.Accounts[2001], "born-on-pg@mail.example") || inSQLite.Accounts[40] != "" {
		t.Fatalf("account created on PostgreSQL %q, account deleted there %q", inSQLite.Accounts[2001], inSQLite.Accounts[40])
	}
	t.Logf("after rollback the SQLite file holds the %d accounts and %d sessions the application left on PostgreSQL "+
		"(%d changes flowed back)", len(inSQLite.Accounts), len(inSQLite.Sessions), res.Reverse.ChangesApplied)
	var slots int
	if err := pg.QueryRow(ctx, `SELECT count(*) FROM pg_replication_slots`).Scan(&slots); err != nil {
		t.Errorf("err: want nil; %d replication slots left on the target (%v)", slots, err)
	} else if slots != 0 {
		t.Errorf("slots: want 0; %d replication slots left on the target (%v)", slots, err)
	}
	assertNothingLeft(t, "sqlite", app.Location, nil)
}
