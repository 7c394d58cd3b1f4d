package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
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
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// checkRequests: `db status` lists the requests the migration accepted with their reasons
// (status, regular expressions), and `db report` and its HTML report the ones its ledger
// recorded (report).
func checkRequests(t *testing.T, env map[string]string, id string, status, report []string) {
	t.Helper()
	r := run(t, env, "", "db", "status", id)
	for _, want := range status {
		if r.code != cli.ExitOK || !regexp.MustCompile(`(?m)^`+want+`$`).MatchString(r.stdout) {
			t.Errorf("db status lacks %q:\n%s%s", want, r.stdout, r.stderr)
		}
	}
	r = run(t, env, "", "db", "report", id)
	for _, want := range report {
		if r.code != cli.ExitOK || !regexp.MustCompile(`(?m)^`+want+`$`).MatchString(r.stdout) {
			t.Errorf("db report lacks %q:\n%s%s", want, r.stdout, r.stderr)
		}
	}
	m := regexp.MustCompile(`report: (\S+)`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("db report names no file:\n%s", r.stdout)
	}
	html, err := os.ReadFile(m[1])
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(html), "&#39;", "'")
	if !strings.Contains(text, "Operator requests") {
		t.Errorf("the HTML report %s has no Operator requests section", m[1])
	}
	for _, want := range report {
		reason := want[strings.LastIndex(want, ": ")+2:]
		if !strings.Contains(text, reason) {
			t.Errorf("the HTML report %s lacks the reason %q", m[1], reason)
		}
	}
}

// approveWithReason runs a schema cleanup over the target the clinic was migrated into: its
// critical operation (dropping offices.city) waits for `db approve-op … --reason`, whose
// reason the status and the report then show.
func approveWithReason(t *testing.T, env map[string]string, dir, clinicSpec string) {
	t.Helper()
	raw, err := os.ReadFile(clinicSpec)
	if err != nil {
		t.Fatal(err)
	}
	ops := "schema_ops: [{name: drop-city, type: drop_column, table: offices, column: city, after: offices}]\nentities:"
	specPath := filepath.Join(dir, "cleanup.yaml")
	if err := os.WriteFile(specPath, []byte(strings.Replace(string(raw), "entities:", ops, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	id := uuid.NewString()
	if r := run(t, env, "", "db", "start", "--type", "schema_cleanup", "--id", id, specPath); r.code != cli.ExitOK {
		t.Fatalf("db start --type schema_cleanup: %+v", r)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		r := run(t, env, "", "db", "status", id)
		if strings.Contains(r.stdout, "awaiting approval") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("drop-city never waited for approval: %+v", r)
		}
		time.Sleep(300 * time.Millisecond)
	}
	r := run(t, env, "", "db", "approve-op", id, "drop-city", "--reason", "city moved to addresses in v3")
	if r.code != cli.ExitOK {
		t.Fatalf("db approve-op: %+v", r)
	}
	waitDBStatus(t, env, id, "completed", 2*time.Minute)
	want := []string{`requested: approve_schema_change drop-city by ops at \S+: city moved to addresses in v3`}
	checkRequests(t, env, id, want, want)
}

// TestDBCloseRecordsItsReason: a migration whose target keeps a reverse flow after cutover
// (target.reverse_flow: the target's writes go back to the SQLite source) stays open until
// `db close --reason`; the status and the report show why it was cut over and why closed.
func TestDBCloseRecordsItsReason(t *testing.T) {
	if testing.Short() {
		t.Skip("real servers: Temporal, a PostgreSQL logical replication can follow")
	}
	ctx := context.Background()
	srv := testenv.StartTemporal(t)
	cluster := testenv.StartPostgresWith(t, "wal_level=logical", "max_replication_slots=4", "max_wal_senders=4")
	admin, err := pgx.Connect(ctx, cluster.DatabaseURL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = admin.Exec(ctx, `CREATE DATABASE target`)
	_ = admin.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	target := cluster.DatabaseURL("target")
	queue := cliWorker(t, srv, target)
	dir := t.TempDir()
	app, err := dbcopytest.CreateApp(ctx, "sqlite", filepath.Join(dir, "app.db"), 200, 300)
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.Replace(dbcopytest.AppSpec(app.SourceYAML(), 250), "  create_tables: true\n",
		fmt.Sprintf("  create_tables: true\n  reverse_flow: true\n  dsn: %q\n", target), 1)
	specPath := filepath.Join(dir, "app.yaml")
	if err := os.WriteFile(specPath, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"TEMPORAL_ADDRESS": srv.Address(), "CUTOVER_TASK_QUEUE": queue, "USER": "ops",
		"CUTOVER_REPORT_DIR": filepath.Join(dir, "reports")}
	id := uuid.NewString()
	if r := run(t, env, "", "db", "start", "--type", "incremental", "--sync-interval", "1s", "--id", id, specPath); r.code != cli.ExitOK {
		t.Fatalf("db start: %+v", r)
	}
	waitState := func(what string, within time.Duration, ok func(dbmigrateapi.State) bool) {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			r := run(t, env, "", "db", "status", id, "--json")
			var st dbmigrateapi.State
			if r.code == cli.ExitOK && json.Unmarshal([]byte(r.stdout), &st) == nil && ok(st) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %s: %+v", what, within, r)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	waitState("catch-up validated", 4*time.Minute, func(st dbmigrateapi.State) bool {
		return st.Capture != nil && st.Capture.FullValidationDone
	})
	if r := run(t, env, "", "db", "cutover", id, "--reason", "validated, the application stops at 02:00"); r.code != cli.ExitOK {
		t.Fatalf("db cutover: %+v", r)
	}
	waitState("the reverse flow after cutover", 3*time.Minute, func(st dbmigrateapi.State) bool {
		return st.Phase == dbmigrateapi.PhaseReverseSync
	})
	if r := run(t, env, "", "db", "close", id, "--reason", "a week on PostgreSQL without a rollback"); r.code != cli.ExitOK {
		t.Fatalf("db close: %+v", r)
	}
	waitDBStatus(t, env, id, "completed", 3*time.Minute)
	want := []string{`requested: cutover by ops at \S+: validated, the application stops at 02:00`,
		`requested: close by ops at \S+: a week on PostgreSQL without a rollback`}
	checkRequests(t, env, id, want, want)
}
