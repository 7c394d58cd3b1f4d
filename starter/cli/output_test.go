package cli

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/activities/dbcopy"
	"github.com/cutover/cutover/activities/mail"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/starter/client"
	"github.com/cutover/cutover/workflows/dbmigrate"
	email "github.com/cutover/cutover/workflows/email"
	"github.com/cutover/cutover/workflows/email/gate"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// golden compares got with testdata/name (rewritten with -update).
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run 'go test ./starter/cli -run %s -update' to create it)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (rerun with -update if the change is intended)\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

var t0 = time.Date(2026, 6, 1, 21, 30, 0, 0, time.UTC)

func tp(t time.Time) *time.Time { return &t }

func emailFixture() email.Status {
	return email.Status{JobID: 42, Phase: model.PhaseDeltaSync, Gate: model.GateWarning, SyncPercent: 99.5, Domain: "example.com",
		TenantID: 7, State: "running", Mailboxes: 3, Presyncs: 2, PredictedFinalSyncSeconds: 74.4,
		NextPresyncAt: tp(t0.Add(6 * time.Hour)),
		MailboxCounts: map[model.MailboxStatus]int64{model.MailboxOK: 2, model.MailboxQuarantine: 1},
		MailboxDetails: []email.MailboxProgress{
			{Email: "alice@example.com", Status: model.MailboxOK, MessagesSource: 1200, MessagesDest: 1200, SyncPercent: 100, LastRun: model.RunDelta},
			{Email: "bob@example.com", Status: model.MailboxQuarantine, MessagesSource: 800, MessagesDest: 798, Quarantined: 2, SyncPercent: 100,
				LastRun: model.RunDelta, LastError: "2 message(s) quarantined"},
			{Email: "carol@example.com", Status: model.MailboxOK, MessagesSource: 310, MessagesDest: 300, SyncPercent: 96.8, LastRun: model.RunDelta},
		},
		Checks: []gate.Check{
			{ID: model.CheckCountRatio, Status: model.CheckWarn, Message: "2/3 mailboxes pass, 1 at 96.8%"},
			{ID: model.CheckManualApproval, Status: model.CheckWarn, Message: "awaiting ops-lead approval"},
		},
		LastPass: &email.PassInfo{RunType: model.RunDelta, Mode: "mirror", WorkflowID: "email-wave-42-4", Started: t0.Add(-2 * time.Minute),
			Finished: tp(t0.Add(-time.Minute)), Seconds: 74.4, Mailboxes: 3, Transferred: 31},
		Refused: []string{"dns_cutover_confirmed by ops: gate is warning, not ready_for_dns"},
	}
}

func dbFixture() dbmigrate.State {
	return dbmigrate.State{MigrationID: "8f8f2a36-4c2e-4b51-9d6b-3c8c1f1b2a10", MigrationType: model.MigrationIncremental,
		Status: model.OrchRunning, Phase: dbmigrate.PhaseLoading, ProgressPercent: 61.25, TotalEntities: 3, CompletedEntities: 1, ErrorCount: 1,
		Entities: []*dbmigrate.EntityState{
			{Name: "accounts", Status: model.EntityCompleted, Total: 300, Processed: 300, Throughput: 2900},
			{Name: "sessions", Status: model.EntityRunning, Total: 600, Processed: 250, LastKey: "250", Throughput: 1800},
			{Name: "emails", Status: model.EntityPending, Total: 4000},
		},
		Ops:        []*dbmigrate.OpState{{Name: "drop_legacy_html", After: "emails", Risk: model.RiskCritical, Status: model.OpPending, AwaitingApproval: true}},
		Validation: []dbcopy.ValidationSummary{{Entity: "accounts", Passed: true, Status: model.ValidationPassed}},
	}
}

func TestEmailStatusGolden(t *testing.T) {
	var b bytes.Buffer
	printStatus(&b, emailFixture())
	golden(t, "email_status.golden", b.String())
	b.Reset()
	if err := writeJSON(&b, emailFixture()); err != nil {
		t.Fatal(err)
	}
	golden(t, "email_status.json.golden", b.String())
}

func TestDBStatusGolden(t *testing.T) {
	var b bytes.Buffer
	printDBState(&Env{Stdout: &b}, dbFixture())
	golden(t, "db_status.golden", b.String())
	b.Reset()
	if err := writeJSON(&b, dbFixture()); err != nil {
		t.Fatal(err)
	}
	golden(t, "db_status.json.golden", b.String())
}

func TestListGolden(t *testing.T) {
	closed := t0.Add(-time.Hour)
	list := []client.Summary{
		{Kind: "email", ID: "42", WorkflowID: "email-job-42", RunID: "r1", Execution: "Running", Phase: "delta_sync", Gate: "warning",
			Status: "running", Domain: "example.com", TenantID: 7, SyncPercent: 99.5, Started: t0.Add(-26 * time.Hour)},
		{Kind: "database", ID: "8f8f2a36-4c2e-4b51-9d6b-3c8c1f1b2a10", WorkflowID: "db-migration-8f8f2a36-4c2e-4b51-9d6b-3c8c1f1b2a10",
			RunID: "r2", Execution: "Running", Phase: "loading", Status: "running", SyncPercent: 61.25, Started: t0.Add(-90 * time.Second)},
		{Kind: "email", ID: "41", WorkflowID: "email-job-41", RunID: "r3", Execution: "Completed", Phase: "closed", Gate: "ready_for_dns",
			Status: "completed", Domain: "example.org", TenantID: 7, SyncPercent: 100, Started: t0.Add(-72 * time.Hour), Closed: &closed},
	}
	var b bytes.Buffer
	printList(&b, list, t0)
	golden(t, "list.golden", b.String())
	b.Reset()
	if err := writeJSON(&b, list); err != nil {
		t.Fatal(err)
	}
	golden(t, "list.json.golden", b.String())
	b.Reset()
	printList(&b, nil, t0)
	if !strings.Contains(b.String(), "no migrations match") {
		t.Errorf("empty list: %q", b.String())
	}
}

// watchFrames is an email job's pass seen three times a second apart: alice copying, bob done,
// carol not started; then alice's heartbeat moves on.
func watchFrames() []progressFrame {
	st := emailFixture()
	st.Phase, st.SyncPercent = model.PhaseInitialSync, 40
	st.CurrentPass = &email.PassInfo{RunType: model.RunInitial, Mode: "copy", WorkflowID: "email-wave-42-2", Started: t0.Add(-10 * time.Second)}
	st.Refused = nil
	for i := range st.MailboxDetails {
		st.MailboxDetails[i].MessagesDest = 0
		st.MailboxDetails[i].Status = model.MailboxPending
		st.MailboxDetails[i].LastError = ""
		st.MailboxDetails[i].Quarantined = 0
	}
	st.MailboxDetails[1].MessagesDest, st.MailboxDetails[1].Status = 800, model.MailboxOK
	rt := newRates()
	var frames []progressFrame
	for i, copied := range []int64{100, 160, 260} {
		live := []client.LiveMailbox{{Email: "alice@example.com", Activity: "SyncMailbox", Attempt: 1,
			Progress: mail.Progress{Folder: "INBOX", Counters: mail.Counters{Found: copied + 40, Transferred: copied}}}}
		frames = append(frames, emailFrame(st, live, nil, t0.Add(time.Duration(i)*time.Second), rt))
	}
	return frames
}

func TestWatchPlainGolden(t *testing.T) {
	var b bytes.Buffer
	r := newRenderer(&b, false, false)
	for _, f := range watchFrames() {
		r.draw(f)
	}
	out := b.String()
	if strings.Contains(out, "\x1b[") {
		t.Error("plain output carries terminal escapes")
	}
	// Unchanged mailboxes are not repeated: bob and carol appear once.
	if n := strings.Count(out, "bob@example.com"); n != 1 {
		t.Errorf("bob printed %d times", n)
	}
	golden(t, "watch_plain.golden", out)
}

func TestWatchTerminalGolden(t *testing.T) {
	var b bytes.Buffer
	r := newRenderer(&b, true, false)
	for _, f := range watchFrames() {
		r.draw(f)
	}
	out := b.String()
	// Frames after the first move the cursor back up over the previous one and redraw it.
	if n := strings.Count(out, "\x1b[4A"); n != 2 {
		t.Errorf("%d redraws, want 2:\n%q", n, out)
	}
	golden(t, "watch_tty.golden", out)
}

func TestWatchJSONAndDBFrame(t *testing.T) {
	rt := newRates()
	st := dbFixture()
	f1 := dbFrame(st, t0, rt)
	st.Entities[1].Processed = 430
	f2 := dbFrame(st, t0.Add(2*time.Second), rt)
	var b bytes.Buffer
	r := newRenderer(&b, true, true) // JSON wins over the terminal
	r.draw(f1)
	r.draw(f2)
	golden(t, "watch_db.jsonl.golden", b.String())
	// sessions: 180 rows in 2 s, smoothed with the workflow's 1800 rows/s → 945 rows/s, 170 left.
	s := f2.Items[1]
	if s.Name != "sessions" || s.Rate != 945 || s.ETA < 0.179 || s.ETA > 0.18 {
		t.Errorf("sessions item %+v", s)
	}
	b.Reset()
	newRenderer(&b, false, false).draw(f2)
	golden(t, "watch_db_plain.golden", b.String())
}

func TestReportOutput(t *testing.T) {
	var b bytes.Buffer
	out := &output{format: outputTable}
	if err := printReport(&Env{Stdout: &b}, out, "job 42", "messages", reportResult{Path: "/srv/reports/email-job-42.html",
		Complete: true, MissingKnown: true, Quarantined: 2, Source: 2310, Destination: 2308}); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.golden", b.String())
	b.Reset()
	out.format = outputJSON
	if err := printReport(&Env{Stdout: &b}, out, "job 42", "messages", reportResult{Path: "/srv/reports/email-job-42.html",
		Complete: true, MissingKnown: true, Quarantined: 2, Source: 2310, Destination: 2308}); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.json.golden", b.String())
}
