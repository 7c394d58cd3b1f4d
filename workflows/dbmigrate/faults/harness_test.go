package faults_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"
	_ "modernc.org/sqlite" // registers "sqlite"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// startWorker runs the worker binary against a Temporal server on its own task queue,
// migrating into dbURL when a spec names no target (its control database a fresh one: never a
// target), without a vault key (a database migration needs none), and stops it when the test
// ends.
func startWorker(t *testing.T, temporalAddr, dbURL, queue string) *testenv.WorkerProcess {
	t.Helper()
	return testenv.StartWorkerProcess(t, "TEMPORAL_ADDRESS="+temporalAddr, "DATABASE_URL="+testenv.NewDatabase(t),
		dbmigrateapi.EnvTargetURL+"="+dbURL, "CUTOVER_TASK_QUEUE="+queue, "CUTOVER_VAULT_KEYS=", "CUTOVER_REPORT_DIR="+t.TempDir())
}

// workload is a narrow legacy schema: owners (parent) and events (child referencing owners).
// Ids run 1..n, so "every id exactly once" is count = distinct = n, min 1, max n.
type workload struct {
	owners, events int
	batch          int
	source         string // spec source: {driver: sqlite, path: …} or {driver: postgres, dsn: …}
}

func (w workload) rows() int64 { return int64(w.owners + w.events) }

const genSQLite = `
CREATE TABLE owners (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE events (id INTEGER PRIMARY KEY, owner_id INTEGER NOT NULL, kind TEXT NOT NULL, amount INTEGER NOT NULL);
WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < %[1]d)
  INSERT INTO owners SELECT i, 'owner ' || i FROM s;
WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < %[2]d)
  INSERT INTO events SELECT i, 1 + i %% %[1]d, 'k' || (i %% 7), i * 37 %% 1000 FROM s;`

const genPostgres = `
CREATE TABLE owners (id bigint PRIMARY KEY, name text NOT NULL);
CREATE TABLE events (id bigint PRIMARY KEY, owner_id bigint NOT NULL, kind text NOT NULL, amount bigint NOT NULL);
INSERT INTO owners SELECT i, 'owner ' || i FROM generate_series(1, %[1]d) i;
INSERT INTO events SELECT i, 1 + i %% %[1]d, 'k' || (i %% 7), i * 37 %% 1000 FROM generate_series(1, %[2]d) i;`

// sqliteWorkload writes the legacy database as a SQLite file.
func sqliteWorkload(t testing.TB, dir string, owners, events, batch int) workload {
	t.Helper()
	path := filepath.Join(dir, "legacy.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(off)&_pragma=synchronous(off)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(fmt.Sprintf(genSQLite, owners, events)); err != nil {
		t.Fatalf("generate sqlite source: %v", err)
	}
	return workload{owners: owners, events: events, batch: batch, source: fmt.Sprintf("{driver: sqlite, path: %q}", path)}
}

// postgresWorkload writes the legacy database into a PostgreSQL database.
func postgresWorkload(t testing.TB, url string, owners, events, batch int) workload {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, fmt.Sprintf(genPostgres, owners, events)); err != nil {
		t.Fatalf("generate postgres source: %v", err)
	}
	return workload{owners: owners, events: events, batch: batch, source: fmt.Sprintf("{driver: postgres, dsn: %q}", url)}
}

// The target tables exist before the migration and events has NO key constraint (a plain
// index only, for the validation's lookups): a batch copied twice would leave duplicate rows
// instead of failing on a primary key.
const targetDDL = `
CREATE SCHEMA IF NOT EXISTS app;
CREATE TABLE app.owners (id uuid PRIMARY KEY, legacy_id bigint, name text);
CREATE TABLE app.events (id uuid, legacy_id bigint, owner_id uuid, kind text, amount bigint);
CREATE INDEX events_id ON app.events (id);`

const specYAML = `name: faults
version: "1"
batch_size: %d
sources:
  legacy: %s
target:
  schema: app
entities:
  - name: owners
    source_table: owners
    target_table: owners
    key: {source: id}
    columns:
      - {source: id, target: legacy_id, type: bigint}
      - {source: name, type: text}
  - name: events
    source_table: events
    target_table: events
    key: {source: id}
    columns:
      - {source: id, target: legacy_id, type: bigint}
      - {source: owner_id, references: owners}
      - {source: kind, type: text}
      - {source: amount, type: bigint}
    validation:
      - {column: amount, op: ge, value: "0"}
`

// prepareTarget creates the target tables in the database the worker writes to.
func prepareTarget(t testing.TB, dbURL string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, targetDDL); err != nil {
		t.Fatalf("target tables: %v", err)
	}
}

func (w workload) input(t testing.TB, cfg dbmigrateapi.Config) dbmigrateapi.Input {
	t.Helper()
	sp, err := spec.Parse(fmt.Appendf(nil, specYAML, w.batch, w.source))
	if err != nil {
		t.Fatal(err)
	}
	return dbmigrateapi.Input{MigrationID: uuid.NewString(), MigrationType: model.MigrationFull, CreatedBy: "fault-test",
		Spec: sp, Config: cfg}
}

// startMigration starts DBMigrationWorkflow. A short workflow task timeout keeps a task lost
// with a killed worker from stalling the run for the default 10 s.
func startMigration(t testing.TB, c client.Client, queue string, in dbmigrateapi.Input) client.WorkflowRun {
	t.Helper()
	run, err := c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: dbmigrateapi.WorkflowID(in.MigrationID),
		TaskQueue: queue, WorkflowTaskTimeout: 3 * time.Second}, dbmigrateapi.WorkflowName, in)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

// processed is how many rows of the migration are committed (ledger counters, which commit
// with the rows).
func processed(ctx context.Context, pool *pgxpool.Pool, migrationID string) int64 {
	var n *int64
	if err := pool.QueryRow(ctx, `SELECT sum(records_processed + records_failed) FROM cutover.entity_migration_status
		WHERE migration_id = $1`, migrationID).Scan(&n); err != nil || n == nil {
		return 0
	}
	return *n
}

// awaitResult waits for the migration and requires it completed with every validation passed.
func awaitResult(t *testing.T, run client.WorkflowRun, timeout time.Duration) dbmigrateapi.State {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var res dbmigrateapi.State
	if err := run.Get(ctx, &res); err != nil {
		t.Fatalf("migration: %v", err)
	}
	if res.Status != model.OrchCompleted {
		t.Fatalf("res.Status: want model.OrchCompleted; migration ended %s with %d/2 entities at %.2f%%: %+v",
			res.Status, res.CompletedEntities, res.ProgressPercent, res)
	}
	if res.CompletedEntities != 2 {
		t.Fatalf("res.CompletedEntities: want 2; migration ended %s with %d/2 entities at %.2f%%: %+v",
			res.Status, res.CompletedEntities, res.ProgressPercent, res)
	}
	if res.ProgressPercent != 100 {
		t.Fatalf("res.ProgressPercent: want 100; migration ended %s with %d/2 entities at %.2f%%: %+v",
			res.Status, res.CompletedEntities, res.ProgressPercent, res)
	}
	for _, v := range res.Validation {
		if !v.Passed {
			t.Errorf("validation of %s failed: %+v", v.Entity, v.Checks)
		}
	}
	return res
}

// tally is what a check found: rows missing from the target and rows present more than once.
type tally struct{ missing, duplicated int64 }

func (a *tally) add(b tally) { a.missing += b.missing; a.duplicated += b.duplicated }

// assertExactlyOnce checks the target by key against the source: every legacy id of both
// tables present exactly once with its values and its parent reference, one mapping per row,
// one committed batch record per batch (summing to the table), no quarantined row.
func assertExactlyOnce(t testing.TB, pool *pgxpool.Pool, w workload, migrationID string) tally {
	t.Helper()
	ctx := context.Background()
	var found tally
	for _, tbl := range []struct {
		name, source string
		n            int
	}{{"owners", "owners", w.owners}, {"events", "events", w.events}} {
		var count, distinct, lo, hi int64
		if err := pool.QueryRow(ctx, fmt.Sprintf(`SELECT count(*), count(DISTINCT legacy_id), coalesce(min(legacy_id), 0), coalesce(max(legacy_id), 0)
			FROM app.%s`, tbl.name)).Scan(&count, &distinct, &lo, &hi); err != nil {
			t.Fatal(err)
		}
		missing, dup := int64(tbl.n)-distinct, count-distinct
		if count > 0 && lo != 1 {
			t.Errorf("%s: legacy ids start at %d, want 1", tbl.name, lo)
		}
		if count > 0 && hi != int64(tbl.n) {
			t.Errorf("%s: legacy ids end at %d, want %d", tbl.name, hi, tbl.n)
		}
		if missing != 0 {
			t.Errorf("missing: want 0; %s: %d rows for %d distinct legacy ids of %d: %d missing, %d duplicated",
				tbl.name, count, distinct, tbl.n, missing, dup)
		} else if dup != 0 {
			t.Errorf("dup: want 0; %s: %d rows for %d distinct legacy ids of %d: %d missing, %d duplicated",
				tbl.name, count, distinct, tbl.n, missing, dup)
		}
		found.add(tally{missing: max(missing, 0), duplicated: dup})

		var maps, mapsDistinct int64
		if err := pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT source_id) FROM cutover.migration_mappings
			WHERE migration_id = $1 AND source_table = $2`, migrationID, tbl.source).Scan(&maps, &mapsDistinct); err != nil {
			t.Fatal(err)
		}
		if maps != int64(tbl.n) {
			t.Errorf("maps: want int64(tbl.n); %s: %d mappings (%d distinct), want %d",
				tbl.name, maps, mapsDistinct, tbl.n)
		} else if mapsDistinct != int64(tbl.n) {
			t.Errorf("mapsDistinct: want int64(tbl.n); %s: %d mappings (%d distinct), want %d",
				tbl.name, maps, mapsDistinct, tbl.n)
		}
		var batches, batchesDistinct, successful, notCompleted, checkpoints, completions int64
		if err := pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT b.batch_number), coalesce(sum(b.records_successful), 0),
			count(*) FILTER (WHERE b.status <> 'completed'),
			(SELECT count(*) FROM cutover.migration_checkpoints c WHERE c.migration_id = s.migration_id AND c.entity_name = s.entity_name
				AND c.checkpoint_type = 'batch_completion'),
			(SELECT count(*) FROM cutover.migration_checkpoints c WHERE c.migration_id = s.migration_id AND c.entity_name = s.entity_name
				AND c.checkpoint_type = 'entity_completion')
			FROM cutover.entity_migration_status s JOIN cutover.batch_processing_status b ON b.entity_status_id = s.id
			WHERE s.migration_id = $1 AND s.entity_name = $2 GROUP BY s.migration_id, s.entity_name`, migrationID, tbl.name).
			Scan(&batches, &batchesDistinct, &successful, &notCompleted, &checkpoints, &completions); err != nil {
			t.Fatal(err)
		}
		if batches != batchesDistinct {
			t.Errorf("batches: want batchesDistinct; %s: %d batch records (%d distinct numbers, %d not completed, %d checkpoints) totalling %d rows, want %d",
				tbl.name, batches, batchesDistinct, notCompleted, checkpoints, successful, tbl.n)
		} else if successful != int64(tbl.n) {
			t.Errorf("successful: want int64(tbl.n); %s: %d batch records (%d distinct numbers, %d not completed, %d checkpoints) totalling %d rows, want %d",
				tbl.name, batches, batchesDistinct, notCompleted, checkpoints, successful, tbl.n)
		} else if notCompleted != 0 {
			t.Errorf("notCompleted: want 0; %s: %d batch records (%d distinct numbers, %d not completed, %d checkpoints) totalling %d rows, want %d",
				tbl.name, batches, batchesDistinct, notCompleted, checkpoints, successful, tbl.n)
		} else if checkpoints != batches {
			t.Errorf("checkpoints: want batches; %s: %d batch records (%d distinct numbers, %d not completed, %d checkpoints) totalling %d rows, want %d",
				tbl.name, batches, batchesDistinct, notCompleted, checkpoints, successful, tbl.n)
		}
		if completions != 1 {
			t.Errorf("%s: %d entity_completion checkpoints, want 1", tbl.name, completions)
		}
		var proc, failed int64
		if err := pool.QueryRow(ctx, `SELECT records_processed, records_failed FROM cutover.entity_migration_status
			WHERE migration_id = $1 AND entity_name = $2`, migrationID, tbl.name).Scan(&proc, &failed); err != nil {
			t.Fatal(err)
		}
		if proc != int64(tbl.n) {
			t.Errorf("proc: want int64(tbl.n); %s: ledger says %d processed, %d failed; want %d, 0",
				tbl.name, proc, failed, tbl.n)
		} else if failed != 0 {
			t.Errorf("failed: want 0; %s: ledger says %d processed, %d failed; want %d, 0",
				tbl.name, proc, failed, tbl.n)
		}
	}
	// Values and references: each event carries its own amount and kind and points at the
	// owner the source names (through the owner's UUID).
	var good int64
	if err := pool.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM app.events e JOIN app.owners o ON o.id = e.owner_id
		WHERE o.legacy_id = 1 + e.legacy_id %% %d AND e.amount = e.legacy_id * 37 %% 1000 AND e.kind = 'k' || (e.legacy_id %% 7)
		AND o.name = 'owner ' || o.legacy_id`, w.owners)).Scan(&good); err != nil {
		t.Fatal(err)
	}
	if good != int64(w.events) {
		t.Errorf("%d of %d events carry their source values and owner", good, w.events)
	}
	var errs int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM cutover.migration_errors WHERE migration_id = $1`, migrationID).Scan(&errs); err != nil {
		t.Fatal(err)
	}
	if errs != 0 {
		t.Errorf("%d rows quarantined; none were bad", errs)
	}
	return found
}

func newPool(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// fastConfig makes a dead worker's copy activity retried within seconds and gives the kill
// points many activity and batch boundaries to fall between.
func fastConfig() dbmigrateapi.Config {
	return dbmigrateapi.Config{Parallelism: 2, BatchesPerActivity: 4, ActivitiesPerRun: 8, HeartbeatTimeout: 2 * time.Second}
}
