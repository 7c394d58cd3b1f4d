package faults_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cutover/cutover/internal/testing/testenv"
)

// TestFaultTemporalRestartMidMigration restarts a private Temporal dev server (same state
// file) twice while an entity loads, at seeded random points: the worker reconnects, the
// workflows resume from their histories, and every row arrives exactly once.
func TestFaultTemporalRestartMidMigration(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the worker, runs a private Temporal server and restarts it")
	}
	t.Parallel()
	seed := testenv.Seeds(t, 1)[0]
	r := rand.New(rand.NewPCG(seed, 0x7e4d))
	srv := testenv.StartTemporal(t)
	testenv.WorkerBinary(t) // compiled before anything is measured
	src := sqliteWorkload(t, t.TempDir(), 300, 12_000, 150)
	dbURL := testenv.NewDatabase(t)
	prepareTarget(t, dbURL)
	pool := newPool(t, dbURL)
	queue := fmt.Sprintf("dbfault-temporal-%d", time.Now().UnixNano())
	startWorker(t, srv.Address(), dbURL, queue)
	c := srv.Client(t)
	in := src.input(t, fastConfig())
	run := startMigration(t, c, queue, in)

	restarts := 0
	for _, at := range []float64{0.1 + 0.3*r.Float64(), 0.5 + 0.35*r.Float64()} {
		threshold := int64(at * float64(src.rows()))
		testenv.WaitFor(t, fmt.Sprintf("%d rows committed", threshold), 3*time.Minute, func() bool {
			return processed(context.Background(), pool, in.MigrationID) >= threshold
		})
		got := processed(context.Background(), pool, in.MigrationID)
		start := time.Now()
		srv.Restart(t)
		restarts++
		t.Logf("seed %d: Temporal restarted at %d/%d committed rows (down %s)", seed, got, src.rows(), time.Since(start).Round(time.Millisecond))
	}
	awaitResult(t, run, 4*time.Minute)
	found := assertExactlyOnce(t, pool, src, in.MigrationID)
	t.Logf("Temporal restart faults: %d restarts over 1 migration; rows missing %d, duplicated %d", restarts, found.missing, found.duplicated)
}

// TestFaultPostgresRestartMidBatch runs the migration on a private PostgreSQL cluster holding
// the worker's control database, the target (with the migration's ledger) and the source, and
// takes the cluster down while a batch transaction is open — once with a fast shutdown, once
// by SIGKILLing every PostgreSQL process (crash recovery from the WAL) — at seeded random
// points. The copy activities fail, are retried from their checkpoints, and every row arrives
// exactly once.
func TestFaultPostgresRestartMidBatch(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the worker, runs a private PostgreSQL cluster and restarts it")
	}
	t.Parallel()
	seed := testenv.Seeds(t, 1)[0]
	r := rand.New(rand.NewPCG(seed, 0x9057))
	pg := testenv.StartPostgres(t)
	srv := testenv.SharedTemporal(t)
	testenv.WorkerBinary(t) // compiled before anything is measured
	src := postgresWorkload(t, pg.DatabaseURL("postgres"), 300, 12_000, 150)
	dbURL := pg.DatabaseURL("cutover")
	createDatabase(t, pg.URL(), "cutover")
	prepareTarget(t, dbURL)
	pool := newPool(t, dbURL)
	queue := fmt.Sprintf("dbfault-pg-%d", time.Now().UnixNano())
	startWorker(t, srv.Address(), dbURL, queue)
	c := srv.Client(t)
	in := src.input(t, fastConfig())
	run := startMigration(t, c, queue, in)

	faults := []struct {
		name string
		do   func(testing.TB)
	}{{"fast shutdown", pg.Restart}, {"crash (SIGKILL of every backend)", pg.Crash}}
	at := 0.0
	for i, f := range faults {
		at += (0.85 - at) * (0.15 + 0.7*r.Float64()) / float64(len(faults)-i)
		threshold := int64(at * float64(src.rows()))
		testenv.WaitFor(t, fmt.Sprintf("%d rows committed", threshold), 3*time.Minute, func() bool {
			return processed(context.Background(), pool, in.MigrationID) >= threshold
		})
		// Mid-batch: a copy transaction has written and not committed.
		var open []string
		testenv.WaitFor(t, "an open batch transaction", time.Minute, func() bool {
			open = openBatchTransactions(pool)
			return len(open) > 0
		})
		got := processed(context.Background(), pool, in.MigrationID)
		pool.Reset() // its connections are about to die
		f.do(t)
		t.Logf("seed %d: PostgreSQL %s at %d/%d committed rows with %d batch transaction(s) open: %s", seed, f.name, got, src.rows(),
			len(open), strings.Join(open, " | "))
	}
	awaitResult(t, run, 4*time.Minute)
	found := assertExactlyOnce(t, pool, src, in.MigrationID)
	t.Logf("PostgreSQL restart faults: %d (mid-batch) over 1 migration; rows missing %d, duplicated %d", len(faults), found.missing, found.duplicated)
}

// openBatchTransactions lists the engine's sessions inside a transaction that has written
// (it holds a transaction id): a batch between its first write and its commit.
func openBatchTransactions(pool *pgxpool.Pool) []string {
	rows, err := pool.Query(context.Background(), `SELECT state || ': ' || left(regexp_replace(query, '\s+', ' ', 'g'), 60)
		FROM pg_stat_activity WHERE application_name = 'cutover-dbcopy' AND backend_xid IS NOT NULL
		AND state IN ('active', 'idle in transaction')`)
	if err != nil {
		return nil
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if rows.Scan(&s) == nil {
			out = append(out, s)
		}
	}
	return out
}

func createDatabase(t testing.TB, adminURL, name string) {
	t.Helper()
	pool := newPool(t, adminURL)
	if _, err := pool.Exec(context.Background(), "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
}
