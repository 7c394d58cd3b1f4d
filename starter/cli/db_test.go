package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/starter/cli"
	"github.com/cutover/cutover/worker/workerapp"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

func TestDBCommandsUsage(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "cycle.yaml")
	doc := strings.Replace(dbcopytest.ClinicSpec("sqlite", filepath.Join(dir, "x.db"), 100),
		"    key: {source: id}\n    columns:\n      - {source: id, target: legacy_id, type: bigint}\n      - {source: name",
		"    key: {source: id}\n    depends_on: [orders]\n    columns:\n      - {source: id, target: legacy_id, type: bigint}\n      - {source: name", 1)
	if err := os.WriteFile(bad, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	r := run(t, nil, "", "db", "start", bad)
	if r.code != cli.ExitUsage || !strings.Contains(r.stderr, "dependency cycle: offices → orders") {
		t.Fatalf("cyclic spec: %+v", r)
	}
	r = run(t, nil, "", "db", "status", "not-a-uuid")
	if r.code != cli.ExitUsage {
		t.Fatalf("bad id: %+v", r)
	}
	r = run(t, nil, "", "db", "start", "--type", "sideways", bad)
	if r.code != cli.ExitUsage || !strings.Contains(r.stderr, "want full_migration, incremental or schema_cleanup") {
		t.Fatalf("bad type: %+v", r)
	}
}

// TestDBStartStatusCutover drives an incremental clinic migration through the CLI against a
// dev server and an in-process worker.
func TestDBStartStatusCutover(t *testing.T) {
	srv := testenv.StartTemporal(t)
	dbURL := testenv.NewDatabase(t)
	queue := fmt.Sprintf("cli-db-%d", time.Now().UnixNano())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan workerapp.Info, 1)
	control := testenv.NewDatabase(t)
	go func() {
		done <- workerapp.Run(ctx, workerapp.Config{TemporalAddress: srv.Address(), Namespace: srv.Namespace(), TaskQueue: queue,
			DatabaseURL: control, DBTargetURL: dbURL, ShutdownGrace: time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
			func(i workerapp.Info) { ready <- i })
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("worker: %v", err)
	}
	dir := t.TempDir()
	clinic := dbcopytest.NewClinic(1, false)
	if err := dbcopytest.WriteSQLite(context.Background(), filepath.Join(dir, "legacy.db"), clinic.Tables); err != nil {
		t.Fatal(err)
	}
	specPath := filepath.Join(dir, "clinic.yaml")
	// A relative sqlite path resolves against the spec file.
	if err := os.WriteFile(specPath, []byte(dbcopytest.ClinicSpec("sqlite", "legacy.db", 400)), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"TEMPORAL_ADDRESS": srv.Address(), "CUTOVER_TASK_QUEUE": queue, "USER": "ops",
		"CUTOVER_DB_TARGET_URL": dbURL, "CUTOVER_REPORT_DIR": filepath.Join(dir, "reports")}
	id := uuid.NewString()
	r := run(t, env, "", "db", "start", "--type", "incremental", "--sync-interval", "1h", "--id", id, specPath)
	if r.code != cli.ExitOK || !strings.Contains(r.stdout, "started "+dbmigrateapi.WorkflowID(id)) || !strings.Contains(r.stdout, "wave 1: [offices profiles projects]") {
		t.Fatalf("db start: %+v", r)
	}
	status := func() dbmigrateapi.State {
		r := run(t, env, "", "db", "status", "--json", id)
		if r.code != cli.ExitOK {
			t.Fatalf("db status: %+v", r)
		}
		var st dbmigrateapi.State
		if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	deadline := time.Now().Add(2 * time.Minute)
	for status().Phase != dbmigrateapi.PhaseCatchingUp {
		if time.Now().After(deadline) {
			t.Fatalf("never caught up: %+v", status())
		}
		time.Sleep(300 * time.Millisecond)
	}
	r = run(t, env, "", "db", "approve-op", "--by", "ops", id, "no-such-op")
	if r.code != cli.ExitFailure || !strings.Contains(r.stderr, `no schema operation "no-such-op"`) {
		t.Fatalf("approve unknown op: %+v", r)
	}
	r = run(t, env, "", "db", "status", id)
	if r.code != cli.ExitOK || !regexp.MustCompile(`(?m)^profiles\s+completed\s+995\s+5\s+1000`).MatchString(r.stdout) {
		t.Fatalf("db status table:\n%s", r.stdout)
	}
	r = run(t, env, "", "db", "retry-failed", id, "--entity", "profiles", "--reason", "profiles' emails fixed at the source")
	if r.code != cli.ExitOK {
		t.Fatalf("db retry-failed: %+v", r)
	}
	r = run(t, env, "", "db", "cutover", dbmigrateapi.WorkflowID(id), "--reason", "maintenance window, ticket 4711")
	if r.code != cli.ExitOK {
		t.Fatalf("db cutover: %+v", r)
	}
	for status().Status != "completed" {
		if time.Now().After(deadline) {
			t.Fatalf("not completed: %+v", status())
		}
		time.Sleep(300 * time.Millisecond)
	}
	requested := []string{`requested: retry_failed profiles by ops at \S+: profiles' emails fixed at the source`,
		`requested: cutover by ops at \S+: maintenance window, ticket 4711`}
	checkRequests(t, env, id, requested, requested)
	// A completed migration's workflow is closed: recovery commands start a new run of it over
	// the same ledger (retry only resumes a failed one; a rollback empties the target).
	wctx, wcancel := context.WithTimeout(context.Background(), time.Minute)
	defer wcancel()
	if err := srv.Client(t).GetWorkflow(wctx, dbmigrateapi.WorkflowID(id), "").Get(wctx, nil); err != nil {
		t.Fatalf("the completed migration's workflow: %v", err)
	}
	r = run(t, env, "", "db", "retry", id)
	if r.code != cli.ExitFailure || !strings.Contains(r.stderr, "retry refused: the migration is completed") {
		t.Fatalf("retry of a completed migration: %+v", r)
	}
	r = run(t, env, "", "db", "rollback", id, "--reason", "back out")
	if r.code != cli.ExitOK || !strings.Contains(r.stdout, "rollback started as run") {
		t.Fatalf("rollback after completion: %+v", r)
	}
	for st := status(); st.Status != "pending" || !st.RolledBack; st = status() {
		if time.Now().After(deadline.Add(time.Minute)) {
			t.Fatalf("not rolled back: %+v", st)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if st := status(); len(st.Recoveries) != 1 {
		t.Fatalf("len(st.Recoveries) = %v, want 1; the rollback run does not link the completed one: %+v",
			len(st.Recoveries), st.Recoveries)
	} else if st.Recoveries[0].From != "completed" {
		t.Fatalf("st.Recoveries[0].From = %v, want \"completed\"; the rollback run does not link the completed one: %+v",
			st.Recoveries[0].From, st.Recoveries)
	} else if st.Recoveries[0].Reason != "back out" {
		t.Fatalf("st.Recoveries[0].Reason = %v, want \"back out\"; the rollback run does not link the completed one: %+v",
			st.Recoveries[0].Reason, st.Recoveries)
	}
	target, err := pgx.Connect(wctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close(context.Background())
	for _, table := range []string{"offices", "profiles", "orders"} {
		var n int
		if err := target.QueryRow(wctx, "SELECT count(*) FROM public."+table).Scan(&n); err != nil {
			t.Errorf("err: want nil; %s after the rollback: %d rows (%v), want 0", table, n, err)
		} else if n != 0 {
			t.Errorf("n: want 0; %s after the rollback: %d rows (%v), want 0", table, n, err)
		}
	}
	if err := srv.Client(t).GetWorkflow(wctx, dbmigrateapi.WorkflowID(id), "").Get(wctx, nil); err != nil {
		t.Fatalf("the rollback run: %v", err)
	}
	r = run(t, env, "", "db", "rollback", id)
	if r.code != cli.ExitFailure || !strings.Contains(r.stderr, "rollback refused: the migration is pending") {
		t.Fatalf("rollback of a rolled back migration: %+v", r)
	}
	// The ledger keeps the recovery run's reason too (the status lists it as the run taken up).
	checkRequests(t, env, id, requested, append(requested, `requested: rollback by ops at \S+: back out`))
	approveWithReason(t, env, dir, specPath)
	r = run(t, env, "", "db", "status", uuid.NewString())
	if r.code != cli.ExitNotFound {
		t.Fatalf("unknown migration: %+v", r)
	}
}
