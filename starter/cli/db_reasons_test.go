package cli_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cutover/cutover/starter/cli"
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
