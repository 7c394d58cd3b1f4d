package dbcopy

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cutover/cutover/activities/dbcopy/capture"
	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// openApp creates the app schema in a SQLite file (or a PostgreSQL database on a private
// cluster with wal_level=logical) and an engine on a fresh target.
func openApp(t *testing.T, driver string, accounts, sessions, batch int) (*Engine, *dbcopytest.App) {
	t.Helper()
	ctx := ctxT(t)
	loc := filepath.Join(t.TempDir(), "app.db")
	if driver == "postgres" {
		loc = logicalDatabase(t)
	}
	app, err := dbcopytest.CreateApp(ctx, driver, loc, accounts, sessions)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := spec.Parse([]byte(dbcopytest.AppSpec(app.SourceYAML(), batch)))
	if err != nil {
		t.Fatal(err)
	}
	e, err := Open(ctx, sp, Options{MigrationID: newID(), MigrationType: model.MigrationIncremental, TargetURL: newTarget(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	if err := e.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	return e, app
}

// assertSame compares the source and the target row by row, reading both sides.
func assertSame(t *testing.T, e *Engine, app *dbcopytest.App) {
	t.Helper()
	ctx := ctxT(t)
	want, err := app.ReadSource(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := dbcopytest.ReadTarget(ctx, e.Pool())
	if err != nil {
		t.Fatal(err)
	}
	if d := dbcopytest.Diff(want, got, 20); len(d) > 0 {
		t.Errorf("target differs from the source in %d row(s):\n  %s", len(d), strings.Join(d, "\n  "))
	}
	t.Logf("source and target hold the same %d accounts and %d sessions", len(want.Accounts), len(want.Sessions))
}

// logicalDatabase is a fresh database on a private cluster that logical replication can follow.
func logicalDatabase(t *testing.T) string {
	t.Helper()
	pg := testenv.StartPostgresWith(t, "wal_level=logical", "max_replication_slots=4", "max_wal_senders=4")
	conn, err := pgx.Connect(ctxT(t), pg.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctxT(t), `CREATE DATABASE app`); err != nil {
		t.Fatal(err)
	}
	return pg.DatabaseURL("app")
}

// TestSQLiteCaptureCarriesEveryChange installs the capture, then lets the application insert,
// update in place (no watermark) and delete while the full load runs and while catch-up drains
// run; after a last drain the target equals the source row for row, validation passes, and the
// source file holds nothing of the migration once the capture is removed.
func TestSQLiteCaptureCarriesEveryChange(t *testing.T) { testCaptureCarriesEveryChange(t, "sqlite") }

// TestPostgresCaptureCarriesEveryChange is the same with a PostgreSQL source followed by
// logical replication: the full load reads under the slot's exported snapshot, drains stream
// the slot, and the slot and publication are dropped at the end.
func TestPostgresCaptureCarriesEveryChange(t *testing.T) {
	testCaptureCarriesEveryChange(t, "postgres")
}

func testCaptureCarriesEveryChange(t *testing.T, driver string) {
	e, app := openApp(t, driver, 3000, 4000, 200)
	ctx := ctxT(t)
	if err := e.InstallCapture(ctx); err != nil {
		t.Fatal(err)
	}
	w, err := dbcopytest.NewWriter(app, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Pause = time.Millisecond // a busy application, not a benchmark of its writes
	w.Start(ctx)
	copyAll(t, e) // the full load, with the application writing
	loadWrites := w.Stats.Inserts.Load() + w.Stats.Updates.Load() + w.Stats.Deletes.Load()
	var drained DrainStats
	since := map[string]int64{}
	for i := range 5 { // catch-up, the application still writing
		st, err := e.Drain(ctx, "app")
		if err != nil {
			t.Fatal(err)
		}
		drained.add(st)
		if i == 1 { // the full validation, before the freeze
			for _, name := range []string{"accounts", "sessions"} {
				dv, err := e.ValidateBeforeFreeze(ctx, name)
				if err != nil {
					t.Fatal(err)
				}
				since[name] = dv.Since
				t.Logf("%s: full check during catch-up: %d rows, %d deferred to the freeze", name, dv.Results[0].RecordsValidated, dv.Deferred)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := w.Stop(); err != nil {
		t.Fatalf("application writer: %v", err)
	}
	st, err := e.Drain(ctx, "app") // the freeze: the last changes
	if err != nil {
		t.Fatal(err)
	}
	drained.add(st)
	t.Logf("application: %d inserts, %d updates, %d deletes (%d during the load), %d busy retries; drains: %+v",
		w.Stats.Inserts.Load(), w.Stats.Updates.Load(), w.Stats.Deletes.Load(), loadWrites, w.Stats.Busy.Load(), drained)
	if loadWrites == 0 {
		t.Fatalf("loadWrites = %v, want != 0; the application did not write during the load or did not update and delete",
			loadWrites)
	}
	if w.Stats.Deletes.Load() == 0 {
		t.Fatalf("w.Stats.Deletes.Load() = %v, want != 0; the application did not write during the load or did not update and delete",
			w.Stats.Deletes.Load())
	}
	if w.Stats.Updates.Load() == 0 {
		t.Fatalf("w.Stats.Updates.Load() = %v, want != 0; the application did not write during the load or did not update and delete",
			w.Stats.Updates.Load())
	}
	if st, err := e.Drain(ctx, "app"); err != nil {
		t.Fatalf("err: want nil; a drain with nothing new applied %+v, %v", st, err)
	} else if st.Changes != 0 {
		t.Fatalf("st.Changes = %v, want 0; a drain with nothing new applied %+v, %v", st.Changes, st, err)
	}
	assertSame(t, e, app)
	for _, name := range []string{"accounts", "sessions"} { // inside the freeze: what changed since
		vs, err := e.ValidateChanged(ctx, name, since[name])
		if err != nil {
			t.Fatal(err)
		}
		if !Passed(vs, false) {
			for _, v := range vs {
				t.Errorf("freeze validation of %s %s: %s issues=%d %s", name, v.ValidationType, v.Status, v.IssuesFound, v.IssueDetails)
			}
		}
		t.Logf("%s: freeze validation checked %d changed rows", name, vs[1].RecordsValidated)
	}
	for name, vs := range validateAll2(t, e, "accounts", "sessions") {
		if !Passed(vs, false) {
			for _, v := range vs {
				t.Errorf("%s %s: %s issues=%d %s", name, v.ValidationType, v.Status, v.IssuesFound, v.IssueDetails)
			}
		}
	}
	caps, err := e.CaptureStatus(ctx)
	left := 11 // SQLite: the log table, six triggers and four clash triggers (unique email, token)
	if driver == "postgres" {
		left = 2 // the slot and the publication
	}
	if err != nil {
		t.Fatalf("err: want nil; capture status %+v, %v", caps, err)
	}
	if len(caps) != 1 {
		t.Fatalf("len(caps) = %v, want 1; capture status %+v, %v", len(caps), caps, err)
	}
	if caps[0].Pending != 0 {
		t.Fatalf("caps[0].Pending = %v, want 0; capture status %+v, %v", caps[0].Pending, caps, err)
	}
	if caps[0].ChangesApplied == 0 {
		t.Fatalf("caps[0].ChangesApplied = %v, want != 0; capture status %+v, %v", caps[0].ChangesApplied, caps, err)
	}
	if len(caps[0].WhatIsLeft) != left {
		t.Fatalf("len(caps[0].WhatIsLeft) = %v, want %v (left); capture status %+v, %v",
			len(caps[0].WhatIsLeft), left, caps, err)
	}
	if err := e.RemoveCapture(ctx); err != nil {
		t.Fatal(err)
	}
	if caps, err = e.CaptureStatus(ctx); err != nil {
		t.Fatalf("err: want nil; capture status after removal %+v, %v", caps, err)
	} else if len(caps) != 1 {
		t.Fatalf("len(caps) = %v, want 1; capture status after removal %+v, %v", len(caps), caps, err)
	} else if !caps[0].Removed {
		t.Fatalf("caps[0].Removed is false; capture status after removal %+v, %v", caps, err)
	} else if len(caps[0].WhatIsLeft) != 0 {
		t.Fatalf("len(caps[0].WhatIsLeft) = %v, want 0; capture status after removal %+v, %v",
			len(caps[0].WhatIsLeft), caps, err)
	} else if caps[0].Slot != "" {
		t.Fatalf("caps[0].Slot = %v, want \"\"; capture status after removal %+v, %v", caps[0].Slot, caps, err)
	}
	if driver == "postgres" {
		return
	}
	l, err := capture.OpenSQLite(ctx, app.Location)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if hasLog, trig, err := l.Installed(ctx); err != nil {
		t.Fatalf("err: want nil; left in the source after removal: log %v, triggers %v, %v", hasLog, trig, err)
	} else if hasLog {
		t.Fatalf("hasLog is true; left in the source after removal: log %v, triggers %v, %v", hasLog, trig, err)
	} else if len(trig) != 0 {
		t.Fatalf("len(trig) = %v, want 0; left in the source after removal: log %v, triggers %v, %v",
			len(trig), hasLog, trig, err)
	}
}

func validateAll2(t *testing.T, e *Engine, names ...string) map[string][]store.ValidationResult {
	t.Helper()
	out := map[string][]store.ValidationResult{}
	for _, name := range names {
		vs, err := e.Validate(ctxT(t), name)
		if err != nil {
			t.Fatalf("validate %s: %v", name, err)
		}
		out[name] = vs
	}
	return out
}

// TestSQLiteDrainExactlyOnceAcrossCrash fails a drain after its writes and before its commit
// (a worker dying there), then drains again: the changes land once, the position moves once,
// and a drain racing on a stale position applies nothing.
func TestSQLiteDrainExactlyOnceAcrossCrash(t *testing.T) {
	e, app := openApp(t, "sqlite", 500, 500, 100)
	ctx := ctxT(t)
	if err := e.InstallCapture(ctx); err != nil {
		t.Fatal(err)
	}
	copyAll(t, e)
	w, err := dbcopytest.NewWriter(app, 7)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for range 300 {
		if err := w.Step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var crashed atomic.Bool
	testHookBeforeDrainCommit = func(ctx context.Context, tx pgx.Tx) error {
		if crashed.CompareAndSwap(false, true) {
			return errors.New("worker killed before the commit")
		}
		return nil
	}
	t.Cleanup(func() { testHookBeforeDrainCommit = nil })
	if _, err := e.Drain(ctx, "app"); err == nil || !strings.Contains(err.Error(), "worker killed") {
		t.Fatalf("first drain: %v", err)
	}
	if pos, _ := e.position(ctx, e.Pool(), "app", DirForward, false); pos != "0" {
		t.Fatalf("position moved to %s by a drain that did not commit", pos)
	}
	st, err := e.Drain(ctx, "app")
	if err != nil {
		t.Fatalf("err: want nil; second drain: %+v, %v", st, err)
	}
	if st.Changes == 0 {
		t.Fatalf("st.Changes = %v, want != 0; second drain: %+v, %v", st.Changes, st, err)
	}
	// A drain computed from the old position (an attempt that outlived its heartbeat) commits nothing.
	stale, err := e.commitDrain(ctx, "app", "0", "999999", 5, time.Now(), func(pgx.Tx, int64) (DrainStats, error) {
		t.Error("a stale drain ran its writes")
		return DrainStats{}, nil
	})
	if err != nil {
		t.Fatalf("err: want nil; stale drain: %+v, %v", stale, err)
	}
	if stale.Changes != 0 {
		t.Fatalf("stale.Changes = %v, want 0; stale drain: %+v, %v", stale.Changes, stale, err)
	}
	assertSame(t, e, app)
	var drains int64
	if err := e.Pool().QueryRow(ctx, `SELECT drains FROM change_capture WHERE migration_id = $1`, e.MigrationID()).Scan(&drains); err != nil {
		t.Fatalf("err: want nil; %d drains recorded, want 1 (%v)", drains, err)
	} else if drains != 1 {
		t.Fatalf("drains: want 1; %d drains recorded, want 1 (%v)", drains, err)
	}

	// A target row nobody changed in the source is tampered with: the full check during
	// catch-up defers it, and the freeze's check of what changed still finds it.
	if _, err := e.Pool().Exec(ctx, `UPDATE public.accounts SET password_hash = 'tampered' WHERE legacy_id = 2`); err != nil {
		t.Fatal(err)
	}
	dv, err := e.ValidateBeforeFreeze(ctx, "accounts")
	if err != nil {
		t.Fatalf("err: want nil; full check during catch-up: %+v, %v", dv, err)
	}
	if dv.Deferred != 1 {
		t.Fatalf("dv.Deferred = %v, want 1; full check during catch-up: %+v, %v", dv.Deferred, dv, err)
	}
	vs, err := e.ValidateChanged(ctx, "accounts", dv.Since)
	if err != nil {
		t.Fatal(err)
	}
	if Passed(vs, false) || !strings.Contains(string(vs[1].IssueDetails), "key 2: password_hash not what the source says") {
		t.Fatalf("the freeze's check passed a tampered row: %+v", vs)
	}
}

// TestSQLiteDrainLeavesTheFileToTheApplication drains a SQLite source in rollback-journal mode
// (where a reader keeps writers from committing) and has the application write while the
// drain's target transaction is open: its write commits within a 200 ms busy timeout, because
// the drain read the file and ended its read transaction before writing PostgreSQL; the next
// drain carries that write.
func TestSQLiteDrainLeavesTheFileToTheApplication(t *testing.T) {
	ctx := ctxT(t)
	path := filepath.Join(t.TempDir(), "app.db")
	app, err := dbcopytest.CreateApp(ctx, "sqlite", path, 300, 300)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(200)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	var mode string
	if err := db.QueryRowContext(ctx, `PRAGMA journal_mode=DELETE`).Scan(&mode); err != nil {
		t.Fatalf("err: want nil; journal mode %q (%v)", mode, err)
	} else if mode != "delete" {
		t.Fatalf("mode: want \"delete\"; journal mode %q (%v)", mode, err)
	}
	sp, err := spec.Parse([]byte(dbcopytest.AppSpec(app.SourceYAML(), 100)))
	if err != nil {
		t.Fatal(err)
	}
	e, err := Open(ctx, sp, Options{MigrationID: newID(), MigrationType: model.MigrationIncremental, TargetURL: newTarget(t)})
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
	for _, q := range []string{`UPDATE accounts SET password_hash = 'changed' WHERE id <= 50`, `DELETE FROM sessions WHERE id <= 20`} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	var during error
	writes := 0
	testHookBeforeDrainCommit = func(ctx context.Context, tx pgx.Tx) error {
		writes++
		_, during = db.ExecContext(ctx, `UPDATE accounts SET password_hash = 'while draining' WHERE id = 60`)
		return nil
	}
	t.Cleanup(func() { testHookBeforeDrainCommit = nil })
	st, err := e.Drain(ctx, "app")
	if err != nil {
		t.Fatalf("err: want nil; drain: %+v, %v (hook ran %d times)", st, err, writes)
	}
	if st.Changes != 70 {
		t.Fatalf("st.Changes = %v, want 70; drain: %+v, %v (hook ran %d times)", st.Changes, st, err, writes)
	}
	if writes != 1 {
		t.Fatalf("writes: want 1; drain: %+v, %v (hook ran %d times)", st, err, writes)
	}
	if during != nil {
		t.Fatalf("the application could not write while the drain wrote PostgreSQL: %v", during)
	}
	testHookBeforeDrainCommit = nil
	if st, err = e.Drain(ctx, "app"); err != nil {
		t.Fatalf("err: want nil; the next drain: %+v, %v", st, err)
	} else if st.Changes != 1 {
		t.Fatalf("st.Changes = %v, want 1; the next drain: %+v, %v", st.Changes, st, err)
	}
	assertSame(t, e, app)

	// A backlog over the in-memory bound waits on disk: the file is free while PostgreSQL is
	// written all the same.
	preReadRows = 10
	t.Cleanup(func() { preReadRows = 200_000 })
	for _, q := range []string{`UPDATE accounts SET password_hash = 'again' WHERE id BETWEEN 100 AND 139`, `DELETE FROM sessions WHERE id BETWEEN 21 AND 30`} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	writes = 0
	testHookBeforeDrainCommit = func(ctx context.Context, tx pgx.Tx) error {
		writes++
		_, during = db.ExecContext(ctx, `UPDATE accounts SET password_hash = 'while draining a backlog' WHERE id = 61`)
		return nil
	}
	if st, err = e.Drain(ctx, "app"); err != nil {
		t.Fatalf("err: want nil; a drain over the bound: %+v, %v", st, err)
	} else if st.Changes != 50 {
		t.Fatalf("st.Changes = %v, want 50; a drain over the bound: %+v", st.Changes, st)
	} else if st.Upserted != 40 {
		t.Fatalf("st.Upserted = %v, want 40; a drain over the bound: %+v", st.Upserted, st)
	} else if writes != 1 {
		t.Fatalf("the hook before the drain's commit ran %d times, want 1", writes)
	}
	if during != nil {
		t.Fatalf("the application could not write while a drain over the bound wrote PostgreSQL: %v", during)
	}
	testHookBeforeDrainCommit = nil
	if st, err = e.Drain(ctx, "app"); err != nil {
		t.Fatalf("err: want nil; the drain after the one over the bound: %+v, %v", st, err)
	} else if st.Changes != 1 {
		t.Fatalf("st.Changes = %v, want 1; the drain after the one over the bound: %+v", st.Changes, st)
	}
	assertSame(t, e, app)
}

// TestPostgresCapturePreflightSaysWhatToSet installs capture on a PostgreSQL source whose
// server runs with wal_level=replica (a private cluster, so the test does not depend on how the
// shared server is configured): refused, non-retryable, with the setting to change.
func TestPostgresCapturePreflightSaysWhatToSet(t *testing.T) {
	ctx := ctxT(t)
	pg := testenv.StartPostgresWith(t, "wal_level=replica")
	if err := pgxExec(ctx, pg.URL(), `CREATE DATABASE app`); err != nil {
		t.Fatal(err)
	}
	app, err := dbcopytest.CreateApp(ctx, "postgres", pg.DatabaseURL("app"), 10, 10)
	if err != nil {
		t.Fatal(err)
	}
	var level string
	if err := pgxQueryRow(ctx, app.Location, `SHOW wal_level`, &level); err != nil {
		t.Fatalf("err: want nil; the private cluster's wal_level is %q (%v), want replica", level, err)
	} else if level != "replica" {
		t.Fatalf("level: want \"replica\"; the private cluster's wal_level is %q (%v), want replica", level, err)
	}
	sp, err := spec.Parse([]byte(dbcopytest.AppSpec(app.SourceYAML(), 100)))
	if err != nil {
		t.Fatal(err)
	}
	e, err := Open(ctx, sp, Options{MigrationID: newID(), MigrationType: model.MigrationIncremental, TargetURL: newTarget(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	err = e.InstallCapture(ctx)
	if !errors.Is(err, ErrSpec) || !strings.Contains(err.Error(), "set wal_level = logical") ||
		!strings.Contains(err.Error(), "capture: key_cursor") {
		t.Fatalf("install on a wal_level=%s server: %v", level, err)
	}
	t.Logf("refused: %v", err)
}

func pgxQueryRow(ctx context.Context, url, q string, dst ...any) error {
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	return c.QueryRow(ctx, q).Scan(dst...)
}

func pgxExec(ctx context.Context, url, q string) error {
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	_, err = c.Exec(ctx, q)
	return err
}
