package capture

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"
)

// appFile is a SQLite file in WAL mode with one table, as an application keeps it, and the
// application's connection (one writer, waiting at most 5 s on a lock).
func appFile(t *testing.T) (string, *sql.DB) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "app.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(wal)&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE accounts (id INTEGER PRIMARY KEY, email TEXT)`); err != nil {
		t.Fatal(err)
	}
	return path, db
}

// holdWriteLock starts an application transaction holding the file's write lock and commits it
// after d; the returned channel reports the commit's error.
func holdWriteLock(t *testing.T, db *sql.DB, d time.Duration, stmt string) <-chan error {
	t.Helper()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, stmt); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		time.Sleep(d)
		_, err := conn.ExecContext(ctx, `COMMIT`)
		conn.Close()
		done <- err
	}()
	return done
}

// TestSQLiteLogWaitsOutTheApplicationsLock holds the application's write lock far longer than
// one busy wait of the migration while it installs the capture, trims the log and removes the
// capture: each gets SQLITE_BUSY, backs off and retries until the application commits, and
// the application's write goes through (and is logged once the triggers are in).
func TestSQLiteLogWaitsOutTheApplicationsLock(t *testing.T) {
	ctx := context.Background()
	path, app := appFile(t)
	l, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	held := 4 * busyWait
	tables := []Table{{Name: "accounts", Key: "id"}}

	// A single attempt fails while the application holds the lock: the retries are what pass.
	committed := holdWriteLock(t, app, held, `INSERT INTO accounts (id, email) VALUES (1, 'a@example.org')`)
	if err := l.writeOnce(ctx, func(tx *sql.Tx) error { return nil }); !busy(err) {
		t.Fatalf("one attempt while the application writes: %v, want SQLITE_BUSY", err)
	}
	if err := l.Install(ctx, tables); err != nil {
		t.Fatalf("install while the application writes: %v", err)
	}
	if err := <-committed; err != nil {
		t.Fatalf("the application's transaction: %v", err)
	}

	committed = holdWriteLock(t, app, held, `INSERT INTO accounts (id, email) VALUES (2, 'b@example.org')`)
	if err := l.Trim(ctx, 0); err != nil {
		t.Fatalf("trim while the application writes: %v", err)
	}
	if err := <-committed; err != nil {
		t.Fatalf("the application's transaction: %v", err)
	}
	var logged int
	if err := app.QueryRow(`SELECT count(*) FROM ` + quote(LogTable) + ` WHERE k = 2`).Scan(&logged); err != nil {
		t.Fatalf("err: want nil; the application's insert after the install logged %d times (%v)", logged, err)
	} else if logged != 1 {
		t.Fatalf("logged: want 1; the application's insert after the install logged %d times (%v)", logged, err)
	}

	committed = holdWriteLock(t, app, held, `UPDATE accounts SET email = 'c@example.org' WHERE id = 1`)
	if err := l.Remove(ctx); err != nil {
		t.Fatalf("remove while the application writes: %v", err)
	}
	if err := <-committed; err != nil {
		t.Fatalf("the application's transaction: %v", err)
	}
	if hasLog, trig, err := l.Installed(ctx); err != nil {
		t.Fatalf("err: want nil; left after removal: log %v, triggers %v (%v)", hasLog, trig, err)
	} else if hasLog {
		t.Fatalf("hasLog is true; left after removal: log %v, triggers %v (%v)", hasLog, trig, err)
	} else if len(trig) != 0 {
		t.Fatalf("len(trig) = %v, want 0; left after removal: log %v, triggers %v (%v)",
			len(trig), hasLog, trig, err)
	}
	var email string
	if err := app.QueryRow(`SELECT email FROM accounts WHERE id = 1`).Scan(&email); err != nil {
		t.Fatalf("err: want nil; the application's update: %q (%v)", email, err)
	} else if email != "c@example.org" {
		t.Fatalf("email: want \"c@example.org\"; the application's update: %q (%v)", email, err)
	}
}
