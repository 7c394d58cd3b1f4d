package cli

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/starter/client"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/email/emailapi"
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

func emailFixture() emailapi.Status {
	return emailapi.Status{JobID: 42, Phase: model.PhaseDeltaSync, Gate: model.GateWarning, SyncPercent: 99.5, Domain: "example.com",
		TenantID: 7, State: "running", Mailboxes: 3, Presyncs: 2, PredictedFinalSyncSeconds: 74.4,
		NextPresyncAt: tp(t0.Add(6 * time.Hour)),
		MailboxCounts: map[model.MailboxStatus]int64{model.MailboxOK: 2, model.MailboxQuarantine: 1},
		MailboxDetails: []emailapi.MailboxProgress{
			{Email: "alice@example.com", Status: model.MailboxOK, MessagesSource: 1200, MessagesDest: 1200, SyncPercent: 100, LastRun: model.RunDelta},
			{Email: "bob@example.com", Status: model.MailboxQuarantine, MessagesSource: 800, MessagesDest: 798, Quarantined: 2, SyncPercent: 100,
				LastRun: model.RunDelta, LastError: "2 message(s) quarantined"},
			{Email: "carol@example.com", Status: model.MailboxOK, MessagesSource: 310, MessagesDest: 300, SyncPercent: 96.8, LastRun: model.RunDelta},
		},
		Checks: []gate.Check{
			{ID: model.CheckCountRatio, Status: model.CheckWarn, Message: "2/3 mailboxes pass, 1 at 96.8%"},
			{ID: model.CheckManualApproval, Status: model.CheckWarn, Message: "awaiting ops-lead approval"},
		},
		LastPass: &emailapi.PassInfo{RunType: model.RunDelta, Mode: "mirror", WorkflowID: "email-wave-42-4", Started: t0.Add(-2 * time.Minute),
			Finished: tp(t0.Add(-time.Minute)), Seconds: 74.4, Mailboxes: 3, Transferred: 31},
		Refused: []string{"dns_cutover_confirmed by ops: gate is warning, not ready_for_dns"},
	}
}

func dbFixture() dbmigrateapi.State {
	return dbmigrateapi.State{MigrationID: "8f8f2a36-4c2e-4b51-9d6b-3c8c1f1b2a10", MigrationType: model.MigrationIncremental,
		Status: model.OrchRunning, Phase: dbmigrateapi.PhaseLoading, ProgressPercent: 61.25, TotalEntities: 3, CompletedEntities: 1, ErrorCount: 1,
		Entities: []*dbmigrateapi.EntityState{
			{Name: "accounts", Status: model.EntityCompleted, Total: 300, Processed: 300, Throughput: 2900},
			{Name: "sessions", Status: model.EntityRunning, Total: 600, Processed: 250, LastKey: "250", Throughput: 1800},
			{Name: "emails", Status: model.EntityPending, Total: 4000},
		},
		Ops:        []*dbmigrateapi.OpState{{Name: "drop_legacy_html", After: "emails", Risk: model.RiskCritical, Status: model.OpPending, AwaitingApproval: true}},
		Validation: []dbmigrateapi.ValidationSummary{{Entity: "accounts", Passed: true, Status: model.ValidationPassed}},
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
	st.CurrentPass = &emailapi.PassInfo{RunType: model.RunInitial, Mode: "copy", WorkflowID: "email-wave-42-2", Started: t0.Add(-10 * time.Second)}
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
			Progress: emailapi.Progress{Folder: "INBOX", Counters: emailapi.Counters{Found: copied + 40, Transferred: copied}}}}
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
	if s.Name != "sessions" {
		t.Errorf("s.Name = %v, want \"sessions\"; sessions item %+v", s.Name, s)
	} else if s.Rate != 945 {
		t.Errorf("s.Rate = %v, want 945; sessions item %+v", s.Rate, s)
	} else if s.ETA < 0.179 {
		t.Errorf("s.ETA = %v, want >= 0.179; sessions item %+v", s.ETA, s)
	} else if s.ETA > 0.18 {
		t.Errorf("s.ETA = %v, want <= 0.18; sessions item %+v", s.ETA, s)
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

// TestDBCaptureLagSlotAndWindowShown: `db watch` and `db status` show a captured migration's
// lag (changes at the last pass, rate, predicted final pass) and its replication slot while it
// exists, then the measured cutover window and the reverse flow with the command that ends it.
func TestDBCaptureLagSlotAndWindowShown(t *testing.T) {
	st := dbFixture()
	st.Phase, st.Passes = dbmigrateapi.PhaseCatchingUp, 3
	st.Capture = &dbmigrateapi.CaptureState{ChangesPending: 6463, RowsPerSecond: 2642, PredictedFinalSeconds: 2.45, ChangesApplied: 90000,
		Sources: []dbmigrateapi.CaptureStatus{{Source: "app", Direction: "forward", Method: "pg_logical", Slot: "cutover_fwd_8f8f",
			PendingWALBytes: 4096, RetainedWALBytes: 1 << 20}}}
	catchingUp := []string{
		"change capture: 6463 changes at the last pass, 2642 changes/s, final pass ≈ 2.5 s",
		"replication slot cutover_fwd_8f8f on app: 1048576 WAL bytes retained",
	}
	notes := strings.Join(dbFrame(st, t0, newRates()).Notes, "\n")
	var status bytes.Buffer
	printCapture(&Env{Stdout: &status}, st)
	for _, want := range catchingUp {
		if !strings.Contains(notes, want) {
			t.Errorf("db watch during catch-up lacks %q:\n%s", want, notes)
		}
	}
	for _, want := range []string{"change capture: 6463 changes at the last pass, 2642 changes/s, final pass ≈ 2.5 s, 90000 applied",
		"replication slot cutover_fwd_8f8f (app, forward): 4096 WAL bytes pending, 1048576 retained"} {
		if !strings.Contains(status.String(), want) {
			t.Errorf("db status during catch-up lacks %q:\n%s", want, status.String())
		}
	}

	st.Phase, st.CutoverWindowSeconds = dbmigrateapi.PhaseReverseSync, 4.218
	st.Capture.Removed, st.Capture.Sources = true, nil
	st.Reverse = &dbmigrateapi.CaptureState{ChangesApplied: 12}
	notes = strings.Join(dbFrame(st, t0, newRates()).Notes, "\n")
	status.Reset()
	printCapture(&Env{Stdout: &status}, st)
	for _, want := range []string{"cutover window 4.22 s", "reverse flow: 12 changes written back; 'cutover db close " + st.MigrationID + "' ends it"} {
		if !strings.Contains(notes, want) {
			t.Errorf("db watch after cutover lacks %q:\n%s", want, notes)
		}
	}
	if strings.Contains(notes, "change capture:") || strings.Contains(notes, "replication slot") {
		t.Errorf("db watch shows a removed capture:\n%s", notes)
	}
	for _, want := range []string{"change capture: removed from the sources (90000 changes applied)",
		"cutover window: 4.22 s (freeze start → completed)", "reverse flow: 0 changes at the last pass"} {
		if !strings.Contains(status.String(), want) {
			t.Errorf("db status after cutover lacks %q:\n%s", want, status.String())
		}
	}
}
