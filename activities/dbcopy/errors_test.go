package dbcopy

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.temporal.io/sdk/temporal"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// errShape is what a workflow and an operator see of an activity's error.
type errShape struct {
	Type         string
	NonRetryable bool
	Says         bool // the message names the cause and what to do
}

func shapeOf(err error, says string) errShape {
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) {
		return errShape{Type: fmt.Sprintf("untyped %T", err)}
	}
	return errShape{Type: ae.Type(), NonRetryable: ae.NonRetryable(), Says: strings.Contains(ae.Error(), says)}
}

func peopleSpec(t *testing.T, target string) *spec.Spec {
	t.Helper()
	sp, err := spec.Parse(fmt.Appendf(nil, `name: people
sources:
  legacy: {driver: sqlite, path: %q}
target:
  dsn: %q
  create_tables: true
entities:
  - name: people
    source_table: people
    target_table: people
    key: {source: id}
    columns:
      - {source: email, type: text}
`, peopleDB(t, 10, nil), target))
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

// TestPermanentErrorsFailFast: a target role without CREATE on its database fails the first
// attempt, non-retryably, saying which privilege to grant; a refused connection is retried
// while it may be a restart and fails for good once the database has been unreachable for
// the grace (shortened here), saying what to check. Both tell the operator to resume with
// `cutover db retry`.
func TestPermanentErrorsFailFast(t *testing.T) {
	ctx := ctxT(t)
	admin := newTarget(t)
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	role := "cutover_nocreate_" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	if _, err := conn.Exec(ctx, "CREATE ROLE "+role+" LOGIN"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = conn.Exec(context.Background(), "DROP ROLE IF EXISTS "+role) })
	u, _ := url.Parse(admin)
	u.User = url.User(role)

	a := &Activities{}
	m := Migration{ID: uuid.NewString(), Type: model.MigrationFull, Spec: peopleSpec(t, u.String())}
	_, err = a.DBPrepare(ctx, m)
	if diff := cmp.Diff(errShape{Type: ErrTypePermanent, NonRetryable: true, Says: true},
		shapeOf(err, "lacks a privilege")); diff != "" {
		t.Errorf("no CREATE privilege (-want +got):\n%s\n%v", diff, err)
	}
	if err != nil && !strings.Contains(err.Error(), "cutover db retry") {
		t.Errorf("the error does not say how to resume: %v", err)
	}

	defer func(g time.Duration) { unreachableGrace = g }(unreachableGrace)
	unreachableGrace = 0
	m = Migration{ID: uuid.NewString(), Type: model.MigrationFull, Spec: peopleSpec(t, "postgres://postgres@127.0.0.1:1/nowhere")}
	_, err = a.DBPrepare(ctx, m)
	if diff := cmp.Diff(errShape{Type: ErrTypeConnection, Says: true}, shapeOf(err, "connection refused")); diff != "" {
		t.Errorf("first refused connection (-want +got):\n%s\n%v", diff, err)
	}
	time.Sleep(10 * time.Millisecond)
	_, err = a.DBPrepare(ctx, m)
	if diff := cmp.Diff(errShape{Type: ErrTypePermanent, NonRetryable: true, Says: true},
		shapeOf(err, "unreachable for")); diff != "" {
		t.Errorf("refused past the grace (-want +got):\n%s\n%v", diff, err)
	}
}

// TestLockWaitIsBoundedAndRetryable: the application holds the target table (ACCESS
// EXCLUSIVE) while a batch wants to write: the batch gives up after the lock timeout with a
// typed, retryable error instead of waiting without end, and the copy resumes from the same
// cursor once the lock is gone.
func TestLockWaitIsBoundedAndRetryable(t *testing.T) {
	defer func(d time.Duration) { lockTimeout = d }(lockTimeout)
	lockTimeout = time.Second
	e := openPeople(t, peopleDB(t, 300, nil), 100, 1)
	ctx := ctxT(t)
	app := lockPeople(t, e)
	_, err := e.CopyBatches(ctx, dbmigrateapi.BatchRequest{Entity: "people"}, 0, nil)
	if diff := cmp.Diff(errShape{Type: ErrTypeTimeout, Says: true}, shapeOf(classify(err), "lock timeout")); diff != "" {
		t.Fatalf("batch behind the application's lock (-want +got):\n%s\n%v", diff, err)
	}
	read := func() batchLedger { return readBatchLedger(t, e, "timeout", "55P03") }
	if diff := cmp.Diff(batchLedger{Batch: "retrying", Retries: 1, Errors: 1, Unresolved: 1}, read()); diff != "" {
		t.Errorf("ledger after the timeout (-want +got):\n%s", diff)
	}
	if err := app.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := e.CopyBatches(ctx, dbmigrateapi.BatchRequest{Entity: "people"}, 0, nil)
	if err != nil {
		t.Fatalf("err: want nil; copy after the lock went: %+v, %v", res, err)
	}
	if !res.Done {
		t.Fatalf("res.Done is false; copy after the lock went: %+v, %v", res, err)
	}
	if res.Loaded != 300 {
		t.Fatalf("res.Loaded = %v, want 300; copy after the lock went: %+v, %v", res.Loaded, res, err)
	}
	if diff := cmp.Diff(batchLedger{Batch: "completed", Retries: 1, Errors: 1}, read()); diff != "" {
		t.Errorf("ledger once the batch committed (-want +got):\n%s", diff)
	}
}

// TestDroppedConnectionIsRecordedAndRetried: the target drops a batch's connection in the
// middle of its write (an administrator's pg_terminate_backend, a failover). The batch's error
// is a typed, retryable connection error; the ledger shows the batch retrying with a
// connection_error row beside it; the next copy resumes and resolves it.
func TestDroppedConnectionIsRecordedAndRetried(t *testing.T) {
	defer func(d time.Duration) { lockTimeout = d }(lockTimeout)
	lockTimeout = time.Minute
	e := openPeople(t, peopleDB(t, 300, nil), 100, 1)
	ctx := ctxT(t)
	app := lockPeople(t, e) // holds the batch inside its write, where its connection is cut
	done := make(chan error, 1)
	go func() {
		_, err := e.CopyBatches(ctx, dbmigrateapi.BatchRequest{Entity: "people"}, 0, nil)
		done <- err
	}()
	terminated := false
	for deadline := time.Now().Add(time.Minute); !terminated && time.Now().Before(deadline); {
		select {
		case err := <-done:
			t.Fatalf("the copy ended before its connection was cut: %v", err)
		default:
		}
		// Outside the application's transaction, which sees one snapshot of pg_stat_activity.
		if err := e.Pool().QueryRow(ctx, `SELECT coalesce(bool_or(pg_terminate_backend(pid)), false) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&terminated); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !terminated {
		t.Fatal("the batch never waited on the application's lock")
	}
	err := <-done
	if diff := cmp.Diff(errShape{Type: ErrTypeConnection, Says: true}, shapeOf(classify(err), "terminat")); diff != "" {
		t.Fatalf("batch whose connection was cut (-want +got):\n%s\n%v", diff, err)
	}
	if err := app.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	read := func() batchLedger { return readBatchLedger(t, e, "connection_error", "57P01") }
	if diff := cmp.Diff(batchLedger{Batch: "retrying", Retries: 1, Errors: 1, Unresolved: 1}, read()); diff != "" {
		t.Errorf("ledger after the cut (-want +got):\n%s", diff)
	}
	res, err := e.CopyBatches(ctx, dbmigrateapi.BatchRequest{Entity: "people"}, 0, nil)
	if err != nil {
		t.Fatalf("copy after the cut: %v", err)
	}
	if res.Loaded != 300 {
		t.Fatalf("res.Loaded = %d after the cut, want 300", res.Loaded)
	}
	if diff := cmp.Diff(batchLedger{Batch: "completed", Retries: 1, Errors: 1}, read()); diff != "" {
		t.Errorf("ledger once the batch committed (-want +got):\n%s", diff)
	}
}

// batchLedger is what the ledger says of batch 0 after a failed write: its status and retry
// count, the error rows of one type and SQLSTATE, and the batch-level errors not yet resolved.
type batchLedger struct {
	Batch      string
	Retries    int
	Errors     int
	Unresolved int
}

func readBatchLedger(t *testing.T, e *Engine, errType, code string) batchLedger {
	t.Helper()
	var l batchLedger
	if err := e.Pool().QueryRow(ctxT(t), `SELECT coalesce((SELECT status || ' ' || retry_count FROM batch_processing_status
		WHERE batch_number = 0), ''),
		(SELECT count(*) FROM migration_errors WHERE error_type = $1 AND error_code = $2),
		(SELECT count(*) FROM migration_errors WHERE source_record_id IS NULL AND NOT is_resolved)`, errType, code).
		Scan(&l.Batch, &l.Errors, &l.Unresolved); err != nil {
		t.Fatal(err)
	}
	_, _ = fmt.Sscanf(l.Batch, "%s %d", &l.Batch, &l.Retries)
	return l
}

// lockPeople is the application holding the target table (ACCESS EXCLUSIVE) in a transaction
// the test ends (rolled back at its end if it did not).
func lockPeople(t *testing.T, e *Engine) pgx.Tx {
	t.Helper()
	app, err := e.Pool().Begin(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = app.Rollback(context.Background()) })
	if _, err := app.Exec(ctxT(t), `LOCK TABLE public.people IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	return app
}
