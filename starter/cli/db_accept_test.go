package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/url"
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

// cliWorker runs the cutover worker in this process on its own task queue, its control
// database apart, migrating into dbURL when a spec names no target.
func cliWorker(t *testing.T, srv *testenv.Temporal, dbURL string) string {
	t.Helper()
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
	return queue
}

// waitDBStatus polls `db status --json` until the migration's status is want.
func waitDBStatus(t *testing.T, env map[string]string, id, want string, within time.Duration) dbmigrateapi.State {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		r := run(t, env, "", "db", "status", id, "--json")
		var st dbmigrateapi.State
		if r.code == cli.ExitOK && json.Unmarshal([]byte(r.stdout), &st) == nil && string(st.Status) == want {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("migration %s not %s within %s: %+v", id, want, within, r)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestDBAcceptErrorsCompletesAFailedMigration: the clinic without an error budget quarantines
// its bad rows, so its migration fails validation instead of completing; `db report` on the
// failed migration says so (its status and the cause). `cutover db accept-errors ID --reason`
// then takes it up again (a new run over the same ledger): the acceptance is recorded with
// who, why and how many rows, the migration completes, and the status and the report show the
// acceptance. A second migration whose target role may not create the ledger fails before any
// ledger exists: its report is written from the workflow's state, naming the cause, instead of
// PostgreSQL's "relation … does not exist".
func TestDBAcceptErrorsCompletesAFailedMigration(t *testing.T) {
	srv := testenv.StartTemporal(t)
	dbURL := testenv.NewDatabase(t)
	queue := cliWorker(t, srv, dbURL)
	dir := t.TempDir()
	clinic := dbcopytest.NewClinic(1, false)
	if err := dbcopytest.WriteSQLite(context.Background(), filepath.Join(dir, "legacy.db"), clinic.Tables); err != nil {
		t.Fatal(err)
	}
	specPath := filepath.Join(dir, "clinic.yaml")
	noBudget := strings.Replace(dbcopytest.ClinicSpec("sqlite", "legacy.db", 400), dbcopytest.ClinicBudget, "", 1)
	if err := os.WriteFile(specPath, []byte(noBudget), 0o644); err != nil {
		t.Fatal(err)
	}
	reports := filepath.Join(dir, "reports")
	env := map[string]string{"TEMPORAL_ADDRESS": srv.Address(), "CUTOVER_TASK_QUEUE": queue, "USER": "ops",
		"CUTOVER_DB_TARGET_URL": dbURL, "CUTOVER_REPORT_DIR": reports}
	id := uuid.NewString()
	if r := run(t, env, "", "db", "start", "--id", id, specPath); r.code != cli.ExitOK {
		t.Fatalf("db start: %+v", r)
	}
	st := waitDBStatus(t, env, id, "failed", 3*time.Minute)
	if !strings.Contains(st.Error, "validation failed") || st.ErrorCount == 0 {
		t.Fatalf("the failed migration: error %q, %d errors", st.Error, st.ErrorCount)
	}
	quarantined := st.ErrorCount
	r := run(t, env, "", "db", "report", id)
	if r.code != cli.ExitOK || !strings.Contains(r.stdout, "failed: validation failed for") {
		t.Fatalf("db report of the failed migration: %+v", r)
	}

	r = run(t, env, "", "db", "accept-errors", id)
	if r.code != cli.ExitUsage || !strings.Contains(r.stderr, "--reason is required") {
		t.Fatalf("accept-errors without a reason: %+v", r)
	}
	reason := "the 2019 import rows, fixed by hand after cutover"
	r = run(t, env, "", "db", "accept-errors", id, "--reason", reason)
	if r.code != cli.ExitOK || !strings.Contains(r.stdout, "accept_errors started as run") {
		t.Fatalf("accept-errors: %+v", r)
	}
	st = waitDBStatus(t, env, id, "completed", 3*time.Minute)
	if st.Accepted == nil {
		t.Fatalf("st.Accepted is nil; the acceptance in the status: %+v, want by ops, %d rows, %q",
			st.Accepted, quarantined, reason)
	}
	if st.Accepted.By != "ops" {
		t.Fatalf("st.Accepted.By = %v, want \"ops\"; the acceptance in the status: %+v, want by ops, %d rows, %q",
			st.Accepted.By, st.Accepted, quarantined, reason)
	}
	if st.Accepted.Reason != reason {
		t.Fatalf("st.Accepted.Reason = %v, want %v (reason); the acceptance in the status: %+v, want by ops, %d rows, %q",
			st.Accepted.Reason, reason, st.Accepted, quarantined, reason)
	}
	if st.Accepted.QuarantinedRows != quarantined {
		t.Fatalf("st.Accepted.QuarantinedRows = %v, want %v (quarantined); the acceptance in the status: %+v, want by ops, %d rows, %q",
			st.Accepted.QuarantinedRows, quarantined, st.Accepted, quarantined, reason)
	}
	if len(st.Recoveries) != 1 {
		t.Fatalf("len(st.Recoveries) = %v, want 1; the accepting run does not link the failed one: %+v",
			len(st.Recoveries), st.Recoveries)
	}
	if st.Recoveries[0].From != "failed" {
		t.Fatalf("st.Recoveries[0].From = %v, want \"failed\"; the accepting run does not link the failed one: %+v",
			st.Recoveries[0].From, st.Recoveries)
	}
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var by, why string
	var rows int64
	if err := conn.QueryRow(context.Background(), `SELECT accepted_by, reason, quarantined_rows
		FROM cutover.migration_error_acceptances WHERE migration_id = $1`, id).Scan(&by, &why, &rows); err != nil {
		t.Fatalf("the recorded acceptance: %v", err)
	}
	if by != "ops" {
		t.Errorf("by: want \"ops\"; recorded acceptance: %s, %q, %d rows; want ops, %q, %d",
			by, why, rows, reason, quarantined)
	} else if why != reason {
		t.Errorf("why: want reason; recorded acceptance: %s, %q, %d rows; want ops, %q, %d",
			by, why, rows, reason, quarantined)
	} else if rows != quarantined {
		t.Errorf("rows: want quarantined; recorded acceptance: %s, %q, %d rows; want ops, %q, %d",
			by, why, rows, reason, quarantined)
	}
	r = run(t, env, "", "db", "report", id)
	accepted := fmt.Sprintf("quarantine accepted: %d rows by ops: %s", quarantined, reason)
	if r.code != cli.ExitOK || !strings.Contains(r.stdout, accepted) {
		t.Fatalf("db report after the acceptance: %+v, want %q", r, accepted)
	}
	html, err := os.ReadFile(regexp.MustCompile(`report: (\S+)`).FindStringSubmatch(r.stdout)[1])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(html), "Quarantine accepted") || !strings.Contains(string(html), reason) {
		t.Errorf("the HTML report does not show the acceptance")
	}

	// A target whose role may not create the ledger: the migration fails before its ledger exists.
	role := "cutover_report_" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	if _, err := conn.Exec(context.Background(), "CREATE ROLE "+role+" LOGIN"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = conn.Exec(context.Background(), "DROP ROLE IF EXISTS "+role) })
	u, _ := url.Parse(dbURL)
	u.User = url.User(role)
	bare := filepath.Join(dir, "bare.yaml")
	doc := strings.Replace(noBudget, "target:\n", fmt.Sprintf("target:\n  dsn: %q\n", u.String()), 1)
	if err := os.WriteFile(bare, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	id2 := uuid.NewString()
	if r := run(t, env, "", "db", "start", "--id", id2, bare); r.code != cli.ExitOK {
		t.Fatalf("db start: %+v", r)
	}
	st = waitDBStatus(t, env, id2, "failed", 2*time.Minute)
	r = run(t, env, "", "db", "report", id2)
	if r.code != cli.ExitOK || strings.Contains(r.stdout+r.stderr, "does not exist") ||
		!strings.Contains(r.stdout, "migration "+id2+": failed; its target holds no ledger of it") ||
		!strings.Contains(r.stdout, "failed: "+st.Error) {
		t.Fatalf("db report of a migration that failed before its ledger existed: %+v", r)
	}
}
