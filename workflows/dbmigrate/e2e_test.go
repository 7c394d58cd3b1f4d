package dbmigrate_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
	"github.com/cutover/cutover/examples/mailsystem"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/worker/workerapp"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// inProcessWorker runs the cutover worker in this process on its own task queue, its control
// database apart, migrating into dbURL when a spec names no target.
func inProcessWorker(t *testing.T, srv *testenv.Temporal, dbURL string) string {
	t.Helper()
	queue := fmt.Sprintf("db-e2e-%d", time.Now().UnixNano())
	control := testenv.NewDatabase(t)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan workerapp.Info, 1)
	done := make(chan error, 1)
	go func() {
		done <- workerapp.Run(ctx, workerapp.Config{TemporalAddress: srv.Address(), Namespace: srv.Namespace(),
			TaskQueue: queue, DatabaseURL: control, DBTargetURL: dbURL, ShutdownGrace: 5 * time.Second,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, func(i workerapp.Info) { ready <- i })
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("worker exited: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("worker not ready")
	}
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return queue
}

func startMigration(t *testing.T, c client.Client, queue string, in dbmigrateapi.Input) client.WorkflowRun {
	t.Helper()
	run, err := c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: dbmigrateapi.WorkflowID(in.MigrationID),
		TaskQueue: queue}, dbmigrateapi.WorkflowName, in)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

func query(t *testing.T, c client.Client, id string) dbmigrateapi.State {
	t.Helper()
	v, err := c.QueryWorkflow(context.Background(), id, "", dbmigrateapi.QueryStatus)
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	var st dbmigrateapi.State
	if err := v.Get(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func one(t *testing.T, pool *pgxpool.Pool, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := pool.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// saveHistory records a run's history for the replay test when CUTOVER_RECORD_HISTORY is set;
// scrub (a temp dir) is replaced by /data inside payloads so no machine path is kept.
func saveHistory(t *testing.T, c client.Client, workflowID, name, scrub string) {
	if os.Getenv("CUTOVER_RECORD_HISTORY") == "" {
		return
	}
	iter := c.GetWorkflowHistory(context.Background(), workflowID, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var events []any
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		b, err := protojson.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		var m any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		events = append(events, scrubPayloads(m, scrub))
	}
	b, _ := json.MarshalIndent(map[string]any{"events": events}, "", " ")
	if err := os.WriteFile(filepath.Join("testdata", name+".json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// scrubPayloads rewrites base64 payload data containing dir.
func scrubPayloads(v any, dir string) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if _, ok := e.(string); ok && k == "identity" {
				x[k] = "cutover-worker" // pid@host of the recording machine
				continue
			}
			if s, ok := e.(string); ok && k == "data" {
				if raw, err := base64.StdEncoding.DecodeString(s); err == nil && strings.Contains(string(raw), dir) {
					x[k] = base64.StdEncoding.EncodeToString([]byte(strings.ReplaceAll(string(raw), dir, "/data")))
				}
				continue
			}
			x[k] = scrubPayloads(e, dir)
		}
	case []any:
		for i := range x {
			x[i] = scrubPayloads(x[i], dir)
		}
	}
	return v
}

func clinicInput(t *testing.T, sqlitePath string, typ model.MigrationType, batch int, cfg dbmigrateapi.Config) dbmigrateapi.Input {
	t.Helper()
	sp, err := spec.Parse([]byte(dbcopytest.ClinicSpec("sqlite", sqlitePath, batch)))
	if err != nil {
		t.Fatal(err)
	}
	return dbmigrateapi.Input{MigrationID: uuid.NewString(), MigrationType: typ, CreatedBy: "e2e", Spec: sp, Config: cfg}
}

// assertClinicLoaded checks every entity against what the generator planted, and that no row
// arrived twice.
func assertClinicLoaded(t *testing.T, pool *pgxpool.Pool, clinic *dbcopytest.Clinic, sp *spec.Spec, migrationID string) {
	t.Helper()
	for _, name := range dbcopytest.Entities {
		x := clinic.Expects[name]
		ent, _ := sp.Entity(name)
		if n := one(t, pool, "SELECT count(*) FROM public."+spec.QuoteIdent(ent.TargetTable)); n != int64(x.Loaded) {
			t.Errorf("%s: %d rows, want %d", name, n, x.Loaded)
		}
		if n := one(t, pool, `SELECT count(*) FROM cutover.migration_mappings WHERE migration_id = $1 AND source_table = $2`,
			migrationID, ent.SourceTable); n != int64(x.Loaded) {
			t.Errorf("%s: %d mappings, want %d", name, n, x.Loaded)
		}
		if n := one(t, pool, `SELECT coalesce(`+dbcopytest.QuarantinedRowsSQL+`, 0) FROM cutover.migration_errors e
			JOIN cutover.entity_migration_status s ON s.id = e.entity_status_id
			WHERE s.migration_id = $1 AND s.entity_name = $2 AND NOT e.is_resolved`, migrationID, name); n != int64(x.Failed()) {
			t.Errorf("%s: %d errors, want %d", name, n, x.Failed())
		}
	}
	if t.Failed() {
		rows, err := pool.Query(context.Background(), `SELECT s.entity_name, e.error_code, count(*), min(e.error_message), min(e.occurred_at)::text, max(e.occurred_at)::text
			FROM cutover.migration_errors e JOIN cutover.entity_migration_status s ON s.id = e.entity_status_id
			WHERE s.migration_id = $1 AND NOT e.is_resolved GROUP BY 1, 2 ORDER BY 1, 2`, migrationID)
		if err == nil {
			for rows.Next() {
				var ent, code, msg, first, last string
				var n int64
				_ = rows.Scan(&ent, &code, &n, &msg, &first, &last)
				t.Logf("errors %s %s ×%d (%s … %s): %s", ent, code, n, first, last, msg)
			}
			rows.Close()
		}
		rows, err = pool.Query(context.Background(), `SELECT entity_name, status, started_at::text, completed_at::text FROM cutover.entity_migration_status WHERE migration_id = $1 ORDER BY started_at`, migrationID)
		if err == nil {
			for rows.Next() {
				var ent, st string
				var a, b *string
				_ = rows.Scan(&ent, &st, &a, &b)
				t.Logf("entity %s %s %v … %v", ent, st, deref(a), deref(b))
			}
			rows.Close()
		}
	}
	// Zero duplicates: no legacy id twice in a target (uuid keys are unique by construction, so
	// look at the legacy ids carried along).
	for _, tbl := range []string{"offices", "profiles"} {
		if n := one(t, pool, "SELECT count(*) - count(DISTINCT legacy_id) FROM public."+tbl); n != 0 {
			t.Errorf("%s: %d duplicate rows", tbl, n)
		}
	}
}

// TestClinicSurvivesWorkerSIGKILL migrates dbcopytest's clinic chain (~200K rows from SQLite) with
// the worker as a separate process, SIGKILLs it in the middle of an entity, starts a new one, and
// checks the migration completes, validates and holds every row exactly once.
func TestClinicSurvivesWorkerSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the worker and copies 200K rows")
	}
	srv := testenv.SharedTemporal(t)
	dbURL := testenv.NewDatabase(t)
	dir := t.TempDir()
	ctx := context.Background()
	clinic := dbcopytest.NewClinic(65, false)
	src := filepath.Join(dir, "legacy.db")
	if err := dbcopytest.WriteSQLite(ctx, src, clinic.Tables); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "cutover-worker")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/cutover/cutover/worker").CombinedOutput(); err != nil {
		t.Fatalf("build worker: %v\n%s", err, out)
	}
	queue := fmt.Sprintf("db-sigkill-%d", time.Now().UnixNano())
	control := testenv.NewDatabase(t)
	start := func() (*exec.Cmd, *strings.Builder) {
		port := testenv.FreePort(t)
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(), "TEMPORAL_ADDRESS="+srv.Address(), "DATABASE_URL="+control, dbmigrateapi.EnvTargetURL+"="+dbURL,
			fmt.Sprintf("CUTOVER_METRICS_ADDR=127.0.0.1:%d", port), "CUTOVER_TASK_QUEUE="+queue, "CUTOVER_VAULT_KEYS=")
		logs := &strings.Builder{}
		cmd.Stderr = logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, "worker /healthz", 60*time.Second, func() bool {
			resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", port))
			if err == nil {
				resp.Body.Close()
			}
			return err == nil
		})
		return cmd, logs
	}
	w1, logs1 := start()
	t.Cleanup(func() { _ = w1.Process.Kill() })

	c := srv.Client(t)
	in := clinicInput(t, src, model.MigrationFull, 1000, dbmigrateapi.Config{Parallelism: 2, BatchesPerActivity: 5,
		ActivitiesPerRun: 4, HeartbeatTimeout: 5 * time.Second})
	run := startMigration(t, c, queue, in)

	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	// Kill while profiles (65K rows) is part-way through.
	testenv.WaitFor(t, "profiles mid-load", 3*time.Minute, func() bool {
		var processed int64
		err := pool.QueryRow(ctx, `SELECT records_processed FROM cutover.entity_migration_status
			WHERE migration_id = $1 AND entity_name = 'profiles' AND status = 'running'`, in.MigrationID).Scan(&processed)
		return err == nil && processed >= 5000 && processed < 40000
	})
	if err := w1.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = w1.Wait()
	killedAt := one(t, pool, `SELECT records_processed FROM cutover.entity_migration_status WHERE migration_id = $1 AND entity_name = 'profiles'`, in.MigrationID)
	t.Logf("worker killed with profiles at %d rows", killedAt)

	w2, logs2 := start()
	t.Cleanup(func() { _ = w2.Process.Kill() })
	rctx, cancel := context.WithTimeout(ctx, 6*time.Minute)
	defer cancel()
	var res dbmigrateapi.State
	if err := run.Get(rctx, &res); err != nil {
		t.Fatalf("migration: %v\nworker 1:\n%s\nworker 2:\n%s", err, tail(logs1.String()), tail(logs2.String()))
	}
	if res.Status != model.OrchCompleted {
		t.Fatalf("res.Status = %v, want model.OrchCompleted; result %+v", res.Status, res)
	}
	if res.CompletedEntities != 10 {
		t.Fatalf("res.CompletedEntities = %v, want 10; result %+v", res.CompletedEntities, res)
	}
	if res.ProgressPercent != 100 {
		t.Fatalf("res.ProgressPercent = %v, want 100; result %+v", res.ProgressPercent, res)
	}
	for _, v := range res.Validation {
		if !v.Passed {
			t.Errorf("validation of %s: %+v", v.Entity, v.Checks)
		}
	}
	assertClinicLoaded(t, pool, clinic, in.Spec, in.MigrationID)
	if n := one(t, pool, `SELECT count(*) FROM cutover.data_validation_results WHERE migration_id = $1 AND status = 'failed'`, in.MigrationID); n != 0 {
		t.Errorf("%d failed validation results recorded", n)
	}
	if n := one(t, pool, `SELECT count(*) FROM cutover.migration_orchestrations WHERE id = $1 AND status = 'completed'
		AND completed_entities = total_entities AND progress_percentage = 100`, in.MigrationID); n != 1 {
		t.Error("orchestration row not completed with true counters")
	}
	saveHistory(t, c, dbmigrateapi.WorkflowID(in.MigrationID), "clinic_full_migration", dir)
	saveHistory(t, c, dbmigrateapi.WorkflowID(in.MigrationID)+"/profiles", "clinic_entity_profiles", dir)
}

func tail(s string) string {
	if len(s) > 4000 {
		return "..." + s[len(s)-4000:]
	}
	return s
}

// TestRollbackReturnsTargetToEmpty loads the clinic as an incremental migration, asks for a
// rollback while it catches up, and checks the target is empty and the orchestration pending.
func TestRollbackReturnsTargetToEmpty(t *testing.T) {
	srv := testenv.SharedTemporal(t)
	dbURL := testenv.NewDatabase(t)
	queue := inProcessWorker(t, srv, dbURL)
	ctx := context.Background()
	clinic := dbcopytest.NewClinic(2, false)
	src := filepath.Join(t.TempDir(), "legacy.db")
	if err := dbcopytest.WriteSQLite(ctx, src, clinic.Tables); err != nil {
		t.Fatal(err)
	}
	c := srv.Client(t)
	in := clinicInput(t, src, model.MigrationIncremental, 500, dbmigrateapi.Config{SyncInterval: time.Hour, Parallelism: 3})
	in.Spec.SchemaOps = []spec.SchemaOp{{Name: "drop-city", Type: "drop_column", Table: "offices", Column: "city", After: "offices"}}
	// Key-cursor catch-up, whose first pass waits for the sync interval: the dropped column is one
	// the spec writes, so no catch-up could write it (captured rollbacks: TestCaptured… tests).
	legacy := in.Spec.Sources["legacy"]
	legacy.Capture = spec.CaptureKeyCursor
	in.Spec.Sources["legacy"] = legacy
	run := startMigration(t, c, queue, in)
	id := dbmigrateapi.WorkflowID(in.MigrationID)
	testenv.WaitFor(t, "approval request", 2*time.Minute, func() bool {
		st := query(t, c, id)
		return len(st.Ops) == 1 && st.Ops[0].AwaitingApproval
	})
	if _, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: id, UpdateName: dbmigrateapi.UpdateApprove,
		WaitForStage: client.WorkflowUpdateStageCompleted, Args: []any{dbmigrateapi.Approval{Operation: "drop-city", ApprovedBy: "ops-lead"}}}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "catching up", 3*time.Minute, func() bool { return query(t, c, id).Phase == dbmigrateapi.PhaseCatchingUp })
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if n := one(t, pool, `SELECT count(*) FROM information_schema.columns WHERE table_name = 'offices' AND column_name = 'city'`); n != 0 {
		t.Fatal("approved drop did not run")
	}
	if err := c.SignalWorkflow(ctx, id, "", dbmigrateapi.SignalRollback, dbmigrateapi.RollbackRequest{Reason: "e2e", RequestedBy: "test"}); err != nil {
		t.Fatal(err)
	}
	var res dbmigrateapi.State
	if err := run.Get(ctx, &res); err != nil {
		t.Fatal(err)
	}
	if res.Status != model.OrchPending {
		t.Fatalf("res.Status = %v, want model.OrchPending; result %+v", res.Status, res)
	}
	if !res.RolledBack {
		t.Fatalf("res.RolledBack is false; result %+v", res)
	}
	if fmt.Sprint(res.Transitions) != "[pending running rolling_back pending]" {
		t.Fatalf("fmt.Sprint(res.Transitions) = %v, want \"[pending running rolling_back pending]\"; result %+v",
			fmt.Sprint(res.Transitions), res)
	}
	for _, name := range dbcopytest.Entities {
		ent, _ := in.Spec.Entity(name)
		if n := one(t, pool, "SELECT count(*) FROM public."+spec.QuoteIdent(ent.TargetTable)); n != 0 {
			t.Errorf("%s: %d rows after rollback", name, n)
		}
	}
	if n := one(t, pool, `SELECT count(*) FROM information_schema.columns WHERE table_name = 'offices' AND column_name = 'city'`); n != 1 {
		t.Error("dropped column not restored")
	}
	if n := one(t, pool, `SELECT count(*) FROM cutover.migration_orchestrations WHERE id = $1 AND status = 'pending'`, in.MigrationID); n != 1 {
		t.Error("orchestration not pending")
	}
	if n := one(t, pool, `SELECT count(*) FROM cutover.schema_change_operations WHERE migration_id = $1 AND status = 'rolled_back' AND approved_by = 'ops-lead'`, in.MigrationID); n != 1 {
		t.Error("schema op not recorded as approved and rolled back")
	}
}

// TestMailSystemIncrementalCutover runs the mail-system example (examples/mailsystem) as an
// incremental migration: full load, writes arriving between catch-up passes, cutover, final pass,
// validation.
func TestMailSystemIncrementalCutover(t *testing.T) {
	srv := testenv.SharedTemporal(t)
	dbURL := testenv.NewDatabase(t)
	queue := inProcessWorker(t, srv, dbURL)
	ctx := context.Background()
	dir := t.TempDir()
	data, err := mailsystem.Generate(ctx, dir, 300, 4000)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := spec.Load(mailsystem.SpecPath())
	if err != nil {
		t.Fatal(err)
	}
	sp.Sources["emails"] = spec.Source{Driver: "sqlite", Path: data.EmailsDB}
	sp.Sources["auth"] = spec.Source{Driver: "sqlite", Path: data.AuthDB}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	listen, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer listen.Release()
	if _, err := listen.Exec(ctx, "LISTEN "+dbmigrateapi.DefaultChannel); err != nil {
		t.Fatal(err)
	}
	c := srv.Client(t)
	in := dbmigrateapi.Input{MigrationID: uuid.NewString(), MigrationType: model.MigrationIncremental, CreatedBy: "e2e", Spec: sp,
		Config: dbmigrateapi.Config{SyncInterval: time.Second, Events: dbcopyEvents()}}
	run := startMigration(t, c, queue, in)
	id := dbmigrateapi.WorkflowID(in.MigrationID)
	testenv.WaitFor(t, "catching up", 2*time.Minute, func() bool { return query(t, c, id).Phase == dbmigrateapi.PhaseCatchingUp })
	// The application keeps writing between passes.
	for round := range 2 {
		if err := data.Append(ctx, 5, 100, 20*24*time.Hour); err != nil {
			t.Fatal(err)
		}
		before := query(t, c, id).Passes
		testenv.WaitFor(t, fmt.Sprintf("a pass after write round %d", round), time.Minute, func() bool { return query(t, c, id).Passes > before+1 })
	}
	st := query(t, c, id)
	if st.Status != model.OrchRunning {
		t.Fatalf("st.Status = %v, want model.OrchRunning; status during catch-up: %+v", st.Status, st)
	}
	if len(st.Entities) != 3 {
		t.Fatalf("len(st.Entities) = %v, want 3; status during catch-up: %+v", len(st.Entities), st)
	}
	if st.Entities[2].Name != "emails" {
		t.Fatalf("st.Entities[2].Name = %v, want \"emails\"; status during catch-up: %+v", st.Entities[2].Name, st)
	}
	if err := data.Append(ctx, 2, 30, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := c.SignalWorkflow(ctx, id, "", dbmigrateapi.SignalCutover, dbmigrateapi.CutoverRequest{RequestedBy: "ops",
		Reason: "writes drained"}); err != nil {
		t.Fatal(err)
	}
	var res dbmigrateapi.State
	if err := run.Get(ctx, &res); err != nil {
		t.Fatal(err)
	}
	if res.Status != model.OrchCompleted {
		t.Fatalf("res.Status = %v, want model.OrchCompleted; result %+v", res.Status, res)
	}
	// The cutover's reason, in the ledger before the final pass began.
	if n := one(t, pool, `SELECT count(*) FROM cutover.migration_operator_requests WHERE migration_id = $1
		AND request = 'cutover' AND requested_by = 'ops' AND reason = 'writes drained'`, in.MigrationID); n != 1 {
		t.Errorf("%d ledger records of the cutover request with its reason, want 1", n)
	}
	if res.FinalPassSeconds <= 0 {
		t.Fatalf("res.FinalPassSeconds = %v, want > 0; result %+v", res.FinalPassSeconds, res)
	}
	t.Logf("final pass took %.3f s (downtime budget: 600 s)", res.FinalPassSeconds)
	for _, v := range res.Validation {
		if !v.Passed {
			t.Errorf("validation of %s: %+v", v.Entity, v.Checks)
		}
	}
	if n := one(t, pool, `SELECT count(*) FROM public.emails`); n != int64(data.Emails-data.Duplicates) {
		t.Errorf("%d emails, want %d", n, data.Emails-data.Duplicates)
	}
	if n := one(t, pool, `SELECT count(*) FROM public.sessions`); n != int64(data.Sessions) {
		t.Errorf("%d sessions, want %d", n, data.Sessions)
	}
	// The migration_progress events arrived on the NOTIFY channel.
	nctx, ncancel := context.WithTimeout(ctx, 5*time.Second)
	defer ncancel()
	n, err := listen.Conn().WaitForNotification(nctx)
	if err != nil {
		t.Fatalf("no event notification: %v", err)
	}
	var ev map[string]any
	if err := json.Unmarshal([]byte(n.Payload), &ev); err != nil {
		t.Fatalf("err: want nil; event %s: %v", n.Payload, err)
	} else if ev["migration_id"] != in.MigrationID {
		t.Fatalf("ev[\"migration_id\"] = %v, want %v (in.MigrationID); event %s: %v",
			ev["migration_id"], in.MigrationID, n.Payload, err)
	} else if ev["event_type"] == nil {
		t.Fatalf("ev[\"event_type\"] is nil; event %s: %v", n.Payload, err)
	}
	// Recorded since operators' requests reach the ledger (mailsystem_incremental_capture.json
	// is the shape before).
	saveHistory(t, c, id, "mailsystem_incremental_capture_requests", dir)
}

func dbcopyEvents() dbmigrateapi.EventSink {
	return dbmigrateapi.EventSink{Channel: dbmigrateapi.DefaultChannel}
}

func deref(s *string) string {
	if s == nil {
		return "-"
	}
	return *s
}
