package faults_test

import (
	"context"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// TestFaultWorkerSIGKILLDuringValidation kills the worker while a whole-table activity (here
// DBValidate, which shares its options with prepare, finalize, schema ops, rollback and
// retry) is running, and requires the new worker to take it over within seconds. Such an
// activity reports no batches, so only its keep-alive heartbeat tells Temporal that a worker
// still holds it: without one a dead worker's attempt would hold the migration until the
// half-hour start-to-close timeout.
//
// The test holds the validation table locked so DBValidate is reliably mid-flight (blocked on
// its insert) when the worker dies. Before the kill it also checks the other half: a live
// worker blocked for several heartbeat timeouts keeps its attempt.
func TestFaultWorkerSIGKILLDuringValidation(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the worker and runs a migration")
	}
	t.Parallel()
	srv := testenv.SharedTemporal(t)
	src := sqliteWorkload(t, t.TempDir(), 200, 8_000, 100)
	dbURL := testenv.NewDatabase(t)
	prepareTarget(t, dbURL)
	pool := newPool(t, dbURL)
	c := srv.Client(t)
	queue := "dbfault-stuck-" + time.Now().Format("150405.000000000")
	w := startWorker(t, srv.Address(), dbURL, queue)
	ctx := context.Background()

	cfg := fastConfig()
	in := src.input(t, cfg)
	run := startMigration(t, c, queue, in)
	// The ledger tables appear in the target when the migration prepares; validation comes
	// only after the 8,200 rows are loaded, in batches of 100.
	testenv.WaitFor(t, "ledger schema", time.Minute, func() bool {
		var ok bool
		return pool.QueryRow(ctx, `SELECT to_regclass('cutover.data_validation_results') IS NOT NULL`).Scan(&ok) == nil && ok
	})
	lock, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lock.Rollback(ctx) }()
	// EXCLUSIVE lets readers through and blocks every insert.
	if _, err := lock.Exec(ctx, `LOCK TABLE cutover.data_validation_results IN EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	var early int64
	if err := lock.QueryRow(ctx, `SELECT count(*) FROM cutover.data_validation_results`).Scan(&early); err != nil {
		t.Fatalf("err: want nil; validation began before the lock (%d results, %v)", early, err)
	} else if early != 0 {
		t.Fatalf("early: want 0; validation began before the lock (%d results, %v)", early, err)
	}
	var attempt int32
	testenv.WaitFor(t, "DBValidate started", 3*time.Minute, func() bool {
		attempt = validateAttempt(ctx, t, c, in.MigrationID)
		return attempt > 0
	})
	if attempt != 1 {
		t.Fatalf("DBValidate on attempt %d before any fault", attempt)
	}
	time.Sleep(3 * cfg.HeartbeatTimeout)
	if attempt = validateAttempt(ctx, t, c, in.MigrationID); attempt != 1 {
		t.Fatalf("a live worker's DBValidate, blocked for 3 heartbeat timeouts, is on attempt %d, want 1", attempt)
	}

	w.KillAndRestart()
	killed := time.Now()
	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	// Two minutes is far above heartbeat timeout + backoff + a loaded machine, and far below
	// the thirty minutes a silent attempt would cost.
	awaitResult(t, run, 2*time.Minute)
	t.Logf("migration completed %s after the worker was killed inside DBValidate", time.Since(killed).Round(time.Millisecond))
	assertExactlyOnce(t, pool, src, in.MigrationID)
}

// validateAttempt is the attempt number of the migration's started DBValidate activity, or 0
// while none is started.
func validateAttempt(ctx context.Context, t *testing.T, c client.Client, migrationID string) int32 {
	t.Helper()
	d, err := c.DescribeWorkflowExecution(ctx, dbmigrateapi.WorkflowID(migrationID), "")
	if err != nil {
		t.Fatalf("describe: %v", err)
	}
	for _, a := range d.GetPendingActivities() {
		if a.GetActivityType().GetName() == "DBValidate" && a.GetState() == enumspb.PENDING_ACTIVITY_STATE_STARTED {
			return a.GetAttempt()
		}
	}
	return 0
}
