package mail

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.temporal.io/sdk/testsuite"

	"github.com/cutover/cutover/activities/mail/mailtest"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// Every run of a mailbox writes its own log (imapsync's per-mailbox log): the preflight, the
// pass and the verification each record its path in migration_runs.log_path, and the file
// says what ran, folder by folder, with the counts, the timings and never a secret.
func TestRunLogs(t *testing.T) {
	e := newEnv(t, nil, nil)
	a := withVault(t, e)
	a.LogDir = t.TempDir()
	mailtest.SeedMaildir(t, e.src, "alice", mailtest.Standard(0))
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	if _, err := env.ExecuteActivity(a.PreflightMailbox, e.spec); err != nil {
		t.Fatal(err)
	}
	if _, err := env.ExecuteActivity(a.SyncMailbox, emailapi.PassRequest{Spec: e.spec, Mode: model.ModeCopy, RunType: model.RunInitial,
		Phase: model.PhaseInitialSync}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.ExecuteActivity(a.VerifyMailbox, e.spec); err != nil {
		t.Fatal(err)
	}
	runs, err := e.db.ListRuns(context.Background(), e.spec.JobID, e.spec.MailboxID)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 3 {
		t.Fatalf("%d runs, want 3", len(runs))
	}
	want := map[model.RunType][]string{
		model.RunPreflight: {"cutover preflight run", `Folder "Sent Items"`, "Destination APPENDLIMIT"},
		model.RunInitial:   {"cutover initial run", "++++ Statistics (copy pass", "Messages transferred", "status success"},
		model.RunVerify:    {"cutover verify run", "Verified                      : ok=true missing=0"},
	}
	for _, r := range runs {
		if r.LogPath == "" || !strings.HasPrefix(r.LogPath, a.LogDir) {
			t.Fatalf("run %d (%s): log_path %q, want a file under %s", r.ID, r.RunType, r.LogPath, a.LogDir)
		}
		b, err := os.ReadFile(r.LogPath)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want[r.RunType] {
			if !strings.Contains(string(b), w) {
				t.Errorf("%s log lacks %q:\n%s", r.RunType, w, b)
			}
		}
		for _, secret := range []string{srcPassword, dstPassword} {
			if strings.Contains(string(b), secret) {
				t.Errorf("%s log holds a password", r.RunType)
			}
		}
		if dir := filepath.Base(filepath.Dir(r.LogPath)); dir != "alice@example.org" {
			t.Errorf("log in %q, want the mailbox's directory", dir)
		}
	}
}
