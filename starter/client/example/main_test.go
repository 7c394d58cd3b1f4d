package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/starter/internal/stacktest"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestExampleAgainstADevServer runs the example program as an upstream service would, against
// the real dev server and worker, with the job spec in a file.
func TestExampleAgainstADevServer(t *testing.T) {
	if testing.Short() {
		t.Skip("real servers: Temporal, PostgreSQL, two Dovecots")
	}
	s := stacktest.Start(t, stacktest.Options{Users: 2, Messages: 10})
	spec, err := json.Marshal(s.EmailSpec(601))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "job.json")
	if err := os.WriteFile(path, spec, 0o600); err != nil {
		t.Fatal(err)
	}
	env := s.Env()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	err = run(ctx, []string{"-spec", path, "-by", "ops-lead", "-poll", "200ms"}, func(k string) string { return env[k] }, &out)
	t.Logf("example output:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"started job 601 as email-job-601 (2 mailboxes)",
		"initial sync done: 100.0% synced",
		"presync done: 1 presync(s)",
		"refused as expected:", "not ready_for_dns",
		"approved: approved by ops-lead",
		"listed among",
		`ticket payload: {"migration_gate":"ready_for_dns","migration_job_id":601,"migration_phase":"delta_sync","migration_sync_percent":100}`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// The job waits for the ops team's DNS switch; the test ends it.
	if err := s.Client.Temporal().TerminateWorkflow(ctx, "email-job-601", "", "test done"); err != nil {
		t.Fatal(err)
	}
}
