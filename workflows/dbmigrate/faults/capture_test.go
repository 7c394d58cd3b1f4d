package faults_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/cutover/cutover/activities/dbcopy/capture"
	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
	"github.com/cutover/cutover/activities/report"
	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// TestCaptureCarriesEveryWriteSQLite runs an incremental migration of a live SQLite
// application through the worker process: the application inserts, updates rows in place (no
// watermark column) and deletes during the full load and during catch-up; after `cutover` the
// target equals the source row for row (read on both sides by the test), validation passed,
// and nothing of the capture is left in the source.
func TestCaptureCarriesEveryWriteSQLite(t *testing.T) { runCaptureMigration(t, "sqlite", false) }

// TestCaptureCarriesEveryWritePostgres is the same with a PostgreSQL source followed by
// logical replication (a private cluster with wal_level=logical); the slot is dropped at the end.
func TestCaptureCarriesEveryWritePostgres(t *testing.T) { runCaptureMigration(t, "postgres", false) }

// TestFaultWorkerSIGKILLDuringDrainSQLite SIGKILLs the worker inside a drain's transaction (held
// there on a lock of the target table) and restarts it: the changes are applied once, from the
// position the target committed.
func TestFaultWorkerSIGKILLDuringDrainSQLite(t *testing.T) { runCaptureMigration(t, "sqlite", true) }

// TestFaultWorkerSIGKILLDuringDrainPostgres is the same with a PostgreSQL source.
func TestFaultWorkerSIGKILLDuringDrainPostgres(t *testing.T) {
	runCaptureMigration(t, "postgres", true)
}

func runCaptureMigration(t *testing.T, driver string, kill bool) {
	if testing.Short() {
		t.Skip("builds the worker and runs a migration")
	}
	ctx := context.Background()
	testenv.WorkerBinary(t)
	loc := filepath.Join(t.TempDir(), "app.db")
	var cluster *testenv.Postgres
	if driver == "postgres" {
		cluster = testenv.StartPostgresWith(t, "wal_level=logical", "max_replication_slots=4", "max_wal_senders=4")
		conn, err := pgx.Connect(ctx, cluster.URL())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, `CREATE DATABASE app`); err != nil {
			t.Fatal(err)
		}
		conn.Close(ctx)
		loc = cluster.DatabaseURL("app")
	}
	app, err := dbcopytest.CreateApp(ctx, driver, loc, 4000, 6000)
	if err != nil {
		t.Fatal(err)
	}
	writer, err := dbcopytest.NewWriter(app, uint64(time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	writer.Pause = 2 * time.Millisecond
	wctx, stopWriter := context.WithCancel(ctx)
	defer stopWriter()
	writer.Start(wctx) // the application writes from before the load to the freeze

	m := startCapturedMigration(t, "capture-"+driver, dbcopytest.AppSpec(app.SourceYAML(), 250), 2*time.Second)
	pool := newPool(t, m.dbURL)
	status := m.status
	testenv.WaitFor(t, "full validation during catch-up", 4*time.Minute, func() bool {
		st := status()
		return st.Capture != nil && st.Capture.FullValidationDone && st.Passes >= 2
	})
	loadWrites := writer.Stats.Inserts.Load() + writer.Stats.Updates.Load() + writer.Stats.Deletes.Load()
	if kill {
		killInsideDrain(t, pool, m.w)
	}
	before := status().Passes
	testenv.WaitFor(t, "two more passes", 3*time.Minute, func() bool { return status().Passes >= before+2 })
	if err := writer.Stop(); err != nil {
		t.Fatalf("application writer: %v", err)
	}
	st := status()
	t.Logf("catch-up: %d passes, %d changes pending at the last one, %.0f changes/s, predicted final pass %.2f s",
		st.Passes, st.Capture.ChangesPending, st.Capture.RowsPerSecond, st.Capture.PredictedFinalSeconds)
	m.signal(t, dbmigrateapi.SignalCutover, dbmigrateapi.CutoverRequest{RequestedBy: "ops"})
	res := m.result(t, 4*time.Minute)
	if res.Status != model.OrchCompleted {
		t.Fatalf("res.Status = %v, want model.OrchCompleted; result %+v", res.Status, res)
	}
	if res.CutoverWindowSeconds <= 0 {
		t.Fatalf("res.CutoverWindowSeconds = %v, want > 0; result %+v", res.CutoverWindowSeconds, res)
	}
	if res.Capture == nil {
		t.Fatalf("res.Capture is nil; result %+v", res)
	}
	if !res.Capture.Removed {
		t.Fatalf("res.Capture.Removed is false; result %+v", res)
	}
	for _, v := range res.Validation {
		if !v.Passed {
			t.Errorf("validation of %s: %+v", v.Entity, v.Checks)
		}
	}
	t.Logf("application: %d inserts, %d updates, %d deletes (%d before catch-up began); cutover window %.2f s (final drain %.2f s)",
		writer.Stats.Inserts.Load(), writer.Stats.Updates.Load(), writer.Stats.Deletes.Load(), loadWrites,
		res.CutoverWindowSeconds, res.FinalPassSeconds)
	if writer.Stats.Updates.Load() == 0 {
		t.Fatalf("writer.Stats.Updates.Load() = %v, want != 0; the application did not update and delete, or not during the load",
			writer.Stats.Updates.Load())
	}
	if writer.Stats.Deletes.Load() == 0 {
		t.Fatalf("writer.Stats.Deletes.Load() = %v, want != 0; the application did not update and delete, or not during the load",
			writer.Stats.Deletes.Load())
	}
	if loadWrites == 0 {
		t.Fatalf("loadWrites = %v, want != 0; the application did not update and delete, or not during the load",
			loadWrites)
	}

	// The proof, read on both sides by the test: every row of the source, by legacy id, with
	// its values and its account, and nothing else.
	want, err := app.ReadSource(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := dbcopytest.ReadTarget(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if d := dbcopytest.Diff(want, got, 20); len(d) > 0 {
		t.Fatalf("target differs from the source in %d row(s):\n  %s", len(d), strings.Join(d, "\n  "))
	}
	t.Logf("source and target hold the same %d accounts and %d sessions", len(want.Accounts), len(want.Sessions))
	var windows int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM cutover.cutover_windows WHERE migration_id = $1 AND passed`,
		m.in.MigrationID).Scan(&windows); err != nil {
		t.Errorf("err: want nil; %d cutover windows recorded (%v)", windows, err)
	} else if windows != 1 {
		t.Errorf("windows: want 1; %d cutover windows recorded (%v)", windows, err)
	}
	assertNothingLeft(t, driver, app.Location, cluster)

	// The report shows the capture (removed) and the window.
	sep := "?"
	if strings.Contains(m.dbURL, "?") {
		sep = "&"
	}
	ledger := newPool(t, m.dbURL+sep+"search_path=cutover")
	rep, err := report.CollectDB(ctx, store.New(ledger), uuid.MustParse(m.in.MigrationID), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var html strings.Builder
	if err := report.RenderDB(&html, rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Windows) != 1 {
		t.Errorf("len(rep.Windows) = %v, want 1; report: windows %+v captures %+v",
			len(rep.Windows), rep.Windows, rep.Captures)
	} else if len(rep.Captures) != 1 {
		t.Errorf("len(rep.Captures) = %v, want 1; report: windows %+v captures %+v",
			len(rep.Captures), rep.Windows, rep.Captures)
	} else if rep.Captures[0].RemovedAt == nil {
		t.Errorf("rep.Captures[0].RemovedAt is nil; report: windows %+v captures %+v", rep.Windows, rep.Captures)
	} else if !strings.Contains(html.String(), "Cutover window") {
		t.Errorf("strings.Contains(html.String(), \"Cutover window\") is false; report: windows %+v captures %+v",
			rep.Windows, rep.Captures)
	} else if !strings.Contains(html.String(), "nothing of it is left in the source") {
		t.Errorf("strings.Contains(html.String(), \"nothing of it is left in the source\") is false; report: windows %+v captures %+v",
			rep.Windows, rep.Captures)
	}
}

// killInsideDrain holds the target's accounts table so the next drain waits inside its
// transaction, SIGKILLs the worker there and restarts it.
func killInsideDrain(t *testing.T, pool interface {
	Begin(context.Context) (pgx.Tx, error)
	QueryRow(context.Context, string, ...any) pgx.Row
}, w *testenv.WorkerProcess) {
	t.Helper()
	ctx := context.Background()
	lock, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lock.Rollback(ctx) }()
	if _, err := lock.Exec(ctx, `LOCK TABLE public.accounts IN EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "a drain waiting inside its transaction", 2*time.Minute, func() bool {
		var n int64
		err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
			WHERE NOT l.granted AND l.relation = 'public.accounts'::regclass AND a.application_name = 'cutover-dbcopy'`).Scan(&n)
		return err == nil && n > 0
	})
	var pos string
	_ = pool.QueryRow(ctx, `SELECT position FROM cutover.change_capture`).Scan(&pos)
	w.KillAndRestart()
	t.Logf("SIGKILL inside a drain (committed position %s); worker restarted", pos)
	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
}

// assertNothingLeft checks the source holds nothing of the migration: no trigger or change log
// (SQLite), no slot or publication (PostgreSQL).
func assertNothingLeft(t *testing.T, driver, loc string, cluster *testenv.Postgres) {
	t.Helper()
	ctx := context.Background()
	if driver == "sqlite" {
		l, err := capture.OpenSQLite(ctx, loc)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if hasLog, trig, err := l.Installed(ctx); err != nil {
			t.Errorf("err: want nil; left in the SQLite source: log %v, triggers %v (%v)", hasLog, trig, err)
		} else if hasLog {
			t.Errorf("hasLog is true; left in the SQLite source: log %v, triggers %v (%v)", hasLog, trig, err)
		} else if len(trig) > 0 {
			t.Errorf("len(trig) = %v, want <= 0; left in the SQLite source: log %v, triggers %v (%v)",
				len(trig), hasLog, trig, err)
		}
		return
	}
	conn, err := pgx.Connect(ctx, cluster.DatabaseURL("app"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var slots, pubs int64
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_replication_slots), (SELECT count(*) FROM pg_publication)`).
		Scan(&slots, &pubs); err != nil {
		t.Errorf("err: want nil; left in the PostgreSQL source: %d slots, %d publications (%v)", slots, pubs, err)
	} else if slots != 0 {
		t.Errorf("slots: want 0; left in the PostgreSQL source: %d slots, %d publications (%v)", slots, pubs, err)
	} else if pubs != 0 {
		t.Errorf("pubs: want 0; left in the PostgreSQL source: %d slots, %d publications (%v)", slots, pubs, err)
	}
}
