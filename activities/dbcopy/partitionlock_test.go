package dbcopy

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// monthlyDB writes a SQLite table events(id, created_at) of months×perMonth rows: rows
// 1..perMonth fall in January 2024, the next perMonth in February, and so on, so a batch of
// perMonth rows lies in one month of its own.
func monthlyDB(t *testing.T, months, perMonth int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "events.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE events (id INTEGER PRIMARY KEY, created_at TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	id := 0
	for m := range months {
		for i := range perMonth {
			id++
			at := time.Date(2024, time.Month(1+m), 1+i%27, i%24, 0, 0, 0, time.UTC)
			if _, err := tx.Exec(`INSERT INTO events VALUES (?, ?)`, id, at.Format("2006-01-02 15:04:05")); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return path
}

func openMonthly(t *testing.T, path string, batch, writers int) *Engine {
	t.Helper()
	return openSpecWriters(t, newTarget(t), fmt.Sprintf(`name: events
batch_size: %d
sources:
  legacy: {driver: sqlite, path: %q}
target:
  create_tables: true
entities:
  - name: events
    source_table: events
    target_table: events
    key: {source: id}
    partition: {column: created_at, interval: month}
    columns:
      - {source: id, target: legacy_id, type: bigint}
      - {source: created_at, type: timestamptz, not_null: true}
`, batch, path), writers)
}

// TestPartitionCreationNeverWaitsOnALaterBatch: batch 0 (January) needs a partition that batch 1
// (February) does not. The creation of January's partition is held back until batch 1, written
// beside it, holds its lock on the partitioned table (or for 3 s if it never does): the order that
// hung the mail-system example (examples/mailsystem) for ever, since batch 1 then waits for batch 0
// to commit, in Go, where PostgreSQL cannot see it. The copy must finish, every row in its month's
// partition, within the test's deadline.
func TestPartitionCreationNeverWaitsOnALaterBatch(t *testing.T) {
	const months, perMonth = 4, 100
	e := openMonthly(t, monthlyDB(t, months, perMonth), perMonth, 2)
	ctx, cancel := context.WithTimeout(ctxT(t), 90*time.Second)
	defer cancel()

	held := make(chan string, 1)
	testHookBeforePartitionDDL = func(hctx context.Context, partition string) {
		if !strings.HasSuffix(partition, "2024_01") {
			return
		}
		deadline := time.Now().Add(3 * time.Second)
		for time.Now().Before(deadline) {
			var n int
			if err := e.Pool().QueryRow(hctx, `SELECT count(*) FROM pg_locks WHERE granted
				AND relation = 'public.events'::regclass AND mode = 'RowExclusiveLock'`).Scan(&n); err == nil && n > 0 {
				select {
				case held <- "a writer holds the parent table while January's partition waits":
				default:
				}
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	defer func() { testHookBeforePartitionDDL = nil }()

	type result struct {
		res RunResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := e.CopyBatches(ctx, dbmigrateapi.BatchRequest{Entity: "events"}, 0, nil)
		done <- result{res, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("copy hung for a minute; sessions of the target:\n  %s", strings.Join(waits(t, e), "\n  "))
	}
	res, err := r.res, r.err
	select {
	case why := <-held:
		t.Logf("%s (the old order)", why)
	default:
	}
	if err != nil {
		t.Fatalf("err: want nil; copy: %+v, %v", res, err)
	}
	if !res.Done {
		t.Fatalf("res.Done is false; copy: %+v, %v", res, err)
	}
	if res.Loaded != months*perMonth {
		t.Fatalf("res.Loaded = %v, want %v (months*perMonth); copy: %+v, %v", res.Loaded, months*perMonth, res, err)
	}
	p, err := e.plan(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	if p.sequential.Load() {
		t.Fatal("a lock wait timed out and the run fell back to one writer: the creation waited on a batch")
	}
	for m := 1; m <= months; m++ {
		name := fmt.Sprintf("events_2024_%02d", m)
		got := count(t, e, fmt.Sprintf(`SELECT count(*) FROM public.%s`, name))
		if got != perMonth {
			t.Errorf("partition %s holds %d rows, want %d", name, got, perMonth)
		}
	}
}

// waits lists what the target's active sessions wait on.
func waits(t *testing.T, e *Engine) []string {
	rows, err := e.Pool().Query(context.Background(), `SELECT pid, coalesce(wait_event_type, ''), coalesce(wait_event, ''),
		left(query, 100) FROM pg_stat_activity WHERE datname = current_database() AND state <> 'idle'
		AND pid <> pg_backend_pid()`)
	if err != nil {
		return []string{err.Error()}
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var pid int
		var typ, ev, q string
		if err := rows.Scan(&pid, &typ, &ev, &q); err != nil {
			return append(out, err.Error())
		}
		out = append(out, fmt.Sprintf("pid %d waits on %s/%s: %s", pid, typ, ev, q))
	}
	return out
}
