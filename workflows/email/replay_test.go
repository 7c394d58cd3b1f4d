package email_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	email "github.com/cutover/cutover/workflows/email"
)

// TestReplayRecordedHistories replays the histories checked into testdata (recorded from real
// runs on a dev server: `EMAIL_RECORD_HISTORIES=1 go test -run 'TestCommandsOverARealServer|TestEndToEnd'`)
// against today's workflow code. A change that would break running jobs fails here: guard it
// with workflow.GetVersion, then record again, keeping the older shape's history under another
// label (the "-children" waves ran a MailboxSyncWorkflow child per mailbox, as the mailbox
// histories did; the "-activities-v1" waves ran each mailbox's pass as their own activity and
// read their pages of mailboxes as activities; today's read them as local activities).
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("recorded histories: %v; want the job, a wave and a mailbox workflow", files)
	}
	logger := log.NewStructuredLogger(slog.New(slog.DiscardHandler))
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			// <label>__<workflow id>.json: the job workflow checks its id against the spec.
			_, id, ok := strings.Cut(strings.TrimSuffix(filepath.Base(f), ".json"), "__")
			if !ok {
				t.Fatalf("%s: want <label>__<workflow id>.json", f)
			}
			fh, err := os.Open(f)
			if err != nil {
				t.Fatal(err)
			}
			defer fh.Close()
			h, err := client.HistoryFromJSON(fh, client.HistoryJSONOptions{})
			if err != nil {
				t.Fatal(err)
			}
			r := worker.NewWorkflowReplayer()
			email.RegisterWorkflows(r)
			err = r.ReplayWorkflowHistoryWithOptions(logger, h, worker.ReplayWorkflowHistoryOptions{
				OriginalExecution: workflow.Execution{ID: id, RunID: "recorded"}})
			if err != nil {
				t.Fatalf("replay %s: %v", f, err)
			}
		})
	}
}
