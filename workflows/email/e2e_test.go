package email_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/cutover/cutover/activities/emailjob"
	"github.com/cutover/cutover/activities/mail/mailtest"
	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/activities/vault"
	"github.com/cutover/cutover/internal/codec"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/starter/cli"
	"github.com/cutover/cutover/worker/workerapp"
	"github.com/cutover/cutover/workflows/email/emailapi"
	"github.com/cutover/cutover/workflows/email/jobspec"
)

var e2eUsers = []string{"alice", "bob", "carol"}

// stack is everything an end-to-end job runs on: PostgreSQL, two Dovecots, the Temporal dev
// server and the real worker (workerapp, in-process) with its vault.
type stack struct {
	dbURL    string
	db       *store.DB
	src, dst *testenv.Dovecot
	srv      *testenv.Temporal
	c        client.Client
	queue    string
	srcRefs  map[string]string
	dstRefs  map[string]string
	msgDate  time.Time // dates of delivered messages count up from here (Maildir names use them)
	tcliArgs []string  // the temporal CLI's global flags for this stack (temporalCLI)
}

func newStack(t *testing.T) *stack {
	t.Helper()
	return newStackWith(t, nil)
}

// newStackWith is newStack with extra configuration lines for the destination Dovecot.
func newStackWith(t *testing.T, dstConfig []string) *stack {
	t.Helper()
	ctx := context.Background()
	s := &stack{dbURL: testenv.NewDatabase(t), srcRefs: map[string]string{}, dstRefs: map[string]string{},
		msgDate: time.Date(2024, 1, 1, 9, 0, 0, 0, time.UTC)}
	var err error
	if s.db, err = store.OpenAndMigrate(ctx, s.dbURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.db.Close)
	key, err := vault.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(vault.EnvKeys, key) // the worker's vault (workerapp reads the environment)
	keys, err := vault.ParseKeys(key)
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.New(s.db.Store, keys)
	if err != nil {
		t.Fatal(err)
	}

	var srcUsers, dstUsers []testenv.User
	for _, u := range e2eUsers {
		srcUsers = append(srcUsers, testenv.User{Name: u, Password: "src-" + u})
		dstUsers = append(dstUsers, testenv.User{Name: u, Password: "dst-" + u})
	}
	s.src = testenv.StartDovecot(t, srcUsers)
	var dstOpts []testenv.DovecotOption
	if len(dstConfig) > 0 {
		dstOpts = append(dstOpts, testenv.WithDovecotConfig(dstConfig...))
	}
	s.dst = testenv.StartDovecot(t, dstUsers, dstOpts...)
	for _, u := range e2eUsers {
		if s.srcRefs[u], err = v.Put(ctx, vault.Secret{Password: "src-" + u}, nil); err != nil {
			t.Fatal(err)
		}
		if s.dstRefs[u], err = v.Put(ctx, vault.Secret{Password: "dst-" + u}, nil); err != nil {
			t.Fatal(err)
		}
		var msgs []mailtest.Message
		for folder, n := range map[string]int{"INBOX": 4, "Sent": 2, "Projects": 2} {
			for i := range n {
				msgs = append(msgs, s.message(u, folder, fmt.Sprintf("%s-%s-%d", u, strings.ToLower(folder), i)))
			}
		}
		mailtest.SeedMaildir(t, s.src, u, msgs)
	}

	s.srv = testenv.SharedTemporal(t)
	s.c = s.srv.Client(t)
	s.queue = fmt.Sprintf("email-e2e-%d", time.Now().UnixNano())
	startInProcessWorker(t, s.srv, s.dbURL, s.queue)
	return s
}

// startInProcessWorker runs the real worker (workerapp) in this process on its own task
// queue until the test ends; its vault key comes from the test's environment.
func startInProcessWorker(t *testing.T, srv *testenv.Temporal, dbURL, queue string) {
	t.Helper()
	wctx, stop := context.WithCancel(context.Background())
	ready, done := make(chan workerapp.Info, 1), make(chan error, 1)
	go func() {
		done <- workerapp.Run(wctx, workerapp.Config{TemporalAddress: srv.Address(), Namespace: srv.Namespace(),
			TaskQueue: queue, DatabaseURL: dbURL, ShutdownGrace: 5 * time.Second,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, func(i workerapp.Info) { ready <- i })
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("worker exited before ready: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("worker not ready in 60s")
	}
	t.Cleanup(func() { stop(); <-done })
}

// message builds one test message with a unique date (Maildir file names carry it).
func (s *stack) message(user, folder, id string) mailtest.Message {
	s.msgDate = s.msgDate.Add(time.Hour)
	return mailtest.Message{Folder: folder, Date: s.msgDate,
		Raw: mailtest.Text(id+"@corpus.example", user+" <"+user+"@example.com>", "about "+id, s.msgDate, "Body of "+id+".\n")}
}

// deliver drops a new message into a mailbox as a delivery agent would.
func (s *stack) deliver(t *testing.T, d *testenv.Dovecot, user, folder, id string) {
	t.Helper()
	mailtest.SeedMaildir(t, d, user, []mailtest.Message{s.message(user, folder, id)})
}

// remove deletes a message file from a Maildir folder, as a user expunging it would.
func remove(t *testing.T, d *testenv.Dovecot, user, folder, id string) {
	t.Helper()
	dir := filepath.Join(mailtest.FolderDir(d.Maildir(user), folder), "cur")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("<"+id+"@corpus.example>")) {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("message %s not found in %s", id, dir)
}

func (s *stack) specYAML(jobID int64) string {
	var b strings.Builder
	fmt.Fprintf(&b, `job_id: %d
tenant_id: 7
ticket_id: 99
domain: example.com
source: {label: old Dovecot, host: "%s", security: plain}
destination: {host: "%s", security: plain}
schedule: {presync_interval: 1h, final_sync_delay: 5s, soak: 1h, post_sync_interval: 30m}
concurrency: {mailboxes: 3}
mailboxes:
`, jobID, s.src.Addr(), s.dst.Addr())
	for _, u := range e2eUsers {
		fmt.Fprintf(&b, "  - {email: %s@example.com, user: %s, credentials_ref: %s, dest_user: %s, dest_credentials_ref: %s}\n",
			u, u, s.srcRefs[u], u, s.dstRefs[u])
	}
	return b.String()
}

// cutover runs the operator CLI in-process.
func (s *stack) cutover(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := map[string]string{"DATABASE_URL": s.dbURL, "TEMPORAL_ADDRESS": s.srv.Address(),
		"TEMPORAL_NAMESPACE": s.srv.Namespace(), "CUTOVER_TASK_QUEUE": s.queue,
		codec.EnvKeys: os.Getenv(codec.EnvKeys)} // the operator's CLI shares the worker's payload keys
	code = cli.Main(context.Background(), args, &cli.Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb,
		Getenv: func(k string) string { return env[k] }})
	return code, out.String(), errb.String()
}

func (s *stack) mustCutover(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := s.cutover(t, args...)
	if code != cli.ExitOK {
		t.Fatalf("cutover %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// TestEndToEnd runs a 3-mailbox job on real servers — the Temporal dev server, the worker
// (workerapp, in-process), two Dovecots and PostgreSQL — driven by the cutover CLI as an
// operator would: preflight, initial sync, two presyncs with mail arriving (and one message
// deleted) between them, approval, the cutover hour, DNS confirmation, a final sync that
// copies mail delivered after the cutover and deletes nothing, verify, close.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: Temporal, PostgreSQL, two Dovecots")
	}
	s := newStack(t)
	const jobID = 4242
	id := emailapi.WorkflowID(jobID)
	specPath := filepath.Join(t.TempDir(), "job.yaml")
	if err := os.WriteFile(specPath, []byte(s.specYAML(jobID)), 0o600); err != nil {
		t.Fatal(err)
	}

	// A spec with a problem is refused before anything starts.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte(strings.Replace(s.specYAML(jobID), "security: plain}\nschedule", "security: plian}\nschedule", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := s.cutover(t, "email", "start", bad); code != cli.ExitUsage || !strings.Contains(errs, `destination.security: "plian"`) {
		t.Fatalf("bad spec: exit %d: %s", code, errs)
	}

	// start --wait follows the job to its end in the background.
	waited := make(chan [3]string, 1)
	go func() {
		code, out, errs := s.cutover(t, "email", "start", "--wait", "--poll", "300ms", specPath)
		waited <- [3]string{fmt.Sprint(code), out, errs}
	}()
	st := waitStatus(t, s.c, id, "delta_sync", func(st emailapi.Status) bool { return st.Phase == model.PhaseDeltaSync })
	if code, _, errs := s.cutover(t, "email", "start", specPath); code != cli.ExitFailure || !strings.Contains(errs, "already running") {
		t.Errorf("second start of a running job: exit %d: %s", code, errs)
	}
	if st.Preflight == nil {
		t.Errorf("st.Preflight is nil; after the initial sync: preflight %+v, last pass %+v, %v%%",
			st.Preflight, st.LastPass, st.SyncPercent)
	} else if st.Preflight.Messages != 24 {
		t.Errorf("st.Preflight.Messages = %v, want 24; after the initial sync: preflight %+v, last pass %+v, %v%%",
			st.Preflight.Messages, st.Preflight, st.LastPass, st.SyncPercent)
	} else if st.LastPass.RunType != model.RunInitial {
		t.Errorf("st.LastPass.RunType = %v, want model.RunInitial; after the initial sync: preflight %+v, last pass %+v, %v%%",
			st.LastPass.RunType, st.Preflight, st.LastPass, st.SyncPercent)
	} else if st.SyncPercent != 100 {
		t.Errorf("st.SyncPercent: want 100; after the initial sync: preflight %+v, last pass %+v, %v%%",
			st.Preflight, st.LastPass, st.SyncPercent)
	}

	// Presync 1, then mail arrives and a message is deleted at the source; presync 2 (a mirror
	// pass, before the cutover) brings both over.
	s.mustCutover(t, "email", "presync", fmt.Sprint(jobID), "--by", "ops")
	waitStatus(t, s.c, id, "presync 1", func(st emailapi.Status) bool { return st.Presyncs == 1 && st.CurrentPass == nil })
	s.deliver(t, s.src, "alice", "INBOX", "alice-new-1")
	s.deliver(t, s.src, "alice", "INBOX", "alice-new-2")
	s.deliver(t, s.src, "bob", "Sent", "bob-sent-new")
	remove(t, s.src, "carol", "Projects", "carol-projects-0")
	s.mustCutover(t, "email", "presync", fmt.Sprint(jobID), "--by", "ops")
	st = waitStatus(t, s.c, id, "presync 2", func(st emailapi.Status) bool { return st.Presyncs == 2 && st.CurrentPass == nil })
	if st.Gate != model.GateWarning {
		t.Fatalf("st.Gate: want model.GateWarning; after presync 2: gate %s checks %+v predicted %v",
			st.Gate, st.Checks, st.PredictedFinalSyncSeconds)
	}
	if st.PredictedFinalSyncSeconds <= 0 {
		t.Fatalf("st.PredictedFinalSyncSeconds: want > 0; after presync 2: gate %s checks %+v predicted %v",
			st.Gate, st.Checks, st.PredictedFinalSyncSeconds)
	}
	for _, u := range e2eUsers {
		if src, dst := s.src.MessageIDs(t, u), s.dst.MessageIDs(t, u); !slices.Equal(src, dst) {
			t.Fatalf("%s after the presyncs:\nsource %v\ndest   %v", u, src, dst)
		}
	}

	// DNS before approval is refused with the reason; approval opens the gate.
	if code, _, errs := s.cutover(t, "email", "cutover", fmt.Sprint(jobID), "--by", "ops-lead"); code != cli.ExitFailure ||
		!strings.Contains(errs, "not ready_for_dns") || !strings.Contains(errs, "manual_approval warn") {
		t.Fatalf("cutover before approval: exit %d: %s", code, errs)
	}
	if out := s.mustCutover(t, "email", "approve", fmt.Sprint(jobID), "--by", "ops-lead", "--note", "checks reviewed"); !strings.Contains(out, "gate ready_for_dns") {
		t.Fatalf("approve: %s", out)
	}
	s.mustCutover(t, "email", "schedule", fmt.Sprint(jobID), "--by", "ops", "--cutover-at", time.Now().UTC().Format(time.RFC3339))
	waitStatus(t, s.c, id, "cutover_ready", func(st emailapi.Status) bool { return st.Phase == model.PhaseCutoverReady })
	if out := s.mustCutover(t, "email", "cutover", fmt.Sprint(jobID), "--by", "ops-lead"); !strings.Contains(out, "phase dns_cutover") {
		t.Fatalf("cutover: %s", out)
	}
	// After the cutover (before the final sync, 5s later): a late message reaches the old
	// server, a user deletes a message there, and new mail lands on the destination.
	s.deliver(t, s.src, "alice", "INBOX", "alice-late")
	remove(t, s.src, "bob", "INBOX", "bob-inbox-1")
	s.deliver(t, s.dst, "alice", "INBOX", "alice-new-mx")

	st = waitStatus(t, s.c, id, "verified", func(st emailapi.Status) bool { return st.Phase == model.PhaseVerified })
	if st.Verify == nil {
		t.Fatalf("st.Verify is nil; verify = %+v", st.Verify)
	}
	if !st.Verify.OK {
		t.Fatalf("st.Verify.OK is false; verify = %+v", st.Verify)
	}
	if st.Verify.Missing != 0 {
		t.Fatalf("st.Verify.Missing = %v, want 0; verify = %+v", st.Verify.Missing, st.Verify)
	}
	s.mustCutover(t, "email", "close", fmt.Sprint(jobID), "--by", "ops-lead", "--note", "users happy")
	var res emailapi.Status
	if err := s.c.GetWorkflow(context.Background(), id, "").Get(context.Background(), &res); err != nil {
		t.Fatal(err)
	}
	select {
	case w := <-waited:
		if w[0] != "0" || !strings.Contains(w[1], "started email job 4242") || !strings.Contains(w[1], "phase delta_sync") ||
			!strings.Contains(w[1], "phase dns_cutover") || !strings.Contains(w[1], "closed (completed)") {
			t.Errorf("start --wait: exit %s\n%s%s", w[0], w[1], w[2])
		}
	case <-time.After(30 * time.Second):
		t.Error("start --wait did not return after the job closed")
	}

	s.checkOutcome(t, jobID, res, map[string][]string{
		"alice": {"INBOX <alice-new-mx@corpus.example>"}, // delivered to the destination: kept
		"bob":   {"INBOX <bob-inbox-1@corpus.example>"},  // deleted at the source after DNS: not mirrored
	})
	if out := s.mustCutover(t, "email", "status", fmt.Sprint(jobID)); !strings.Contains(out, "closed (completed)") ||
		!strings.Contains(out, "alice@example.com") {
		t.Errorf("status:\n%s", out)
	}
	s.checkVisibility(t, id)

	// A job PostgreSQL knows but Temporal does not (its history deleted, or registered only):
	// status falls back to the control tables; an unknown job is exit 3.
	other := jobspec.Spec{JobID: 5000, TenantID: 7, Domain: "example.net",
		Source:      jobspec.Endpoint{Host: s.src.Addr(), Security: "plain"},
		Destination: jobspec.Endpoint{Host: s.dst.Addr(), Security: "plain"},
		Mailboxes:   []jobspec.Mailbox{{Email: "dora@example.net", CredentialsRef: s.srcRefs["alice"], DestCredentialsRef: s.dstRefs["alice"]}}}
	if _, err := emailjob.Register(context.Background(), s.db, other.WithDefaults()); err != nil {
		t.Fatal(err)
	}
	if out := s.mustCutover(t, "email", "status", "5000"); !strings.Contains(out, "from PostgreSQL") || !strings.Contains(out, "dora@example.net") {
		t.Errorf("status from PostgreSQL:\n%s", out)
	}
	if code, _, errs := s.cutover(t, "email", "status", "5001"); code != cli.ExitNotFound {
		t.Errorf("status of an unknown job: exit %d %s", code, errs)
	}
	if os.Getenv("EMAIL_RECORD_HISTORIES") != "" {
		for i, r := range runsOf(t, s.c, id) {
			record(t, s.c, fmt.Sprintf("e2e-job-run%d", i+1), id, r)
		}
		record(t, s.c, "e2e-wave-final", emailapi.WaveWorkflowID(jobID, 5), "") // preflight, initial, 2 presyncs, final
	}
}

// checkOutcome compares the end state in PostgreSQL, the status query and both Dovecots.
// destOnly lists per user what the destination may hold beyond the source.
func (s *stack) checkOutcome(t *testing.T, jobID int64, res emailapi.Status, destOnly map[string][]string) {
	t.Helper()
	ctx := context.Background()
	if res.Phase != model.PhaseClosed {
		t.Errorf("res.Phase = %v, want model.PhaseClosed; workflow result: %+v", res.Phase, res)
	} else if res.Gate != model.GateReadyForDNS {
		t.Errorf("res.Gate = %v, want model.GateReadyForDNS; workflow result: %+v", res.Gate, res)
	} else if res.Presyncs != 2 {
		t.Errorf("res.Presyncs = %v, want 2; workflow result: %+v", res.Presyncs, res)
	} else if res.ApprovedBy != "ops-lead" {
		t.Errorf("res.ApprovedBy = %v, want \"ops-lead\"; workflow result: %+v", res.ApprovedBy, res)
	} else if res.DNSCutoverAt == nil {
		t.Errorf("res.DNSCutoverAt is nil; workflow result: %+v", res)
	} else if res.Verify == nil {
		t.Errorf("res.Verify is nil; workflow result: %+v", res)
	} else if !res.Verify.OK {
		t.Errorf("res.Verify.OK is false; workflow result: %+v", res)
	}
	job, err := s.db.GetJobProgress(ctx, jobID)
	if err != nil {
		t.Fatal(err)
	}
	if job.Phase != res.Phase {
		t.Errorf("job.Phase = %v, want %v (res.Phase); migration_jobs row %+v\nvs status %+v",
			job.Phase, res.Phase, job, res)
	} else if job.Gate != res.Gate {
		t.Errorf("job.Gate = %v, want %v (res.Gate); migration_jobs row %+v\nvs status %+v",
			job.Gate, res.Gate, job, res)
	} else if job.ApprovedBy == nil {
		t.Errorf("job.ApprovedBy is nil; migration_jobs row %+v\nvs status %+v", job, res)
	} else if *job.ApprovedBy != res.ApprovedBy {
		t.Errorf("*job.ApprovedBy = %v, want %v (res.ApprovedBy); migration_jobs row %+v\nvs status %+v",
			*job.ApprovedBy, res.ApprovedBy, job, res)
	} else if job.ApprovedAt == nil {
		t.Errorf("job.ApprovedAt is nil; migration_jobs row %+v\nvs status %+v", job, res)
	} else if !job.ApprovedAt.Equal(*res.ApprovedAt) {
		t.Errorf("job.ApprovedAt.Equal(*res.ApprovedAt) is false; migration_jobs row %+v\nvs status %+v", job, res)
	} else if job.DNSCutoverAt == nil {
		t.Errorf("job.DNSCutoverAt is nil; migration_jobs row %+v\nvs status %+v", job, res)
	} else if !job.DNSCutoverAt.Equal(*res.DNSCutoverAt) {
		t.Errorf("job.DNSCutoverAt.Equal(*res.DNSCutoverAt) is false; migration_jobs row %+v\nvs status %+v",
			job, res)
	} else if float64(job.SyncPercent) != res.SyncPercent {
		t.Errorf("float64(job.SyncPercent) = %v, want %v (res.SyncPercent); migration_jobs row %+v\nvs status %+v",
			float64(job.SyncPercent), res.SyncPercent, job, res)
	} else if job.FailedPhase != "" {
		t.Errorf("job.FailedPhase = %v, want \"\"; migration_jobs row %+v\nvs status %+v", job.FailedPhase, job, res)
	} else if job.CutoverPlannedAt == nil {
		t.Errorf("job.CutoverPlannedAt is nil; migration_jobs row %+v\nvs status %+v", job, res)
	} else if job.PredictedFinalSyncSeconds == nil {
		t.Errorf("job.PredictedFinalSyncSeconds is nil; migration_jobs row %+v\nvs status %+v", job, res)
	} else if *job.PredictedFinalSyncSeconds <= 0 {
		t.Errorf("*job.PredictedFinalSyncSeconds = %v, want > 0; migration_jobs row %+v\nvs status %+v",
			*job.PredictedFinalSyncSeconds, job, res)
	} else if job.TenantID != 7 {
		t.Errorf("job.TenantID = %v, want 7; migration_jobs row %+v\nvs status %+v", job.TenantID, job, res)
	} else if job.Domain != "example.com" {
		t.Errorf("job.Domain = %v, want \"example.com\"; migration_jobs row %+v\nvs status %+v",
			job.Domain, job, res)
	}
	checks, err := s.db.LatestGateChecks(ctx, jobID)
	if err != nil {
		t.Fatalf("err: want nil; gate checks: %+v %v", checks, err)
	}
	if len(checks) != len(model.CheckIDs) {
		t.Fatalf("len(checks) = %v, want %v (len(model.CheckIDs)); gate checks: %+v %v",
			len(checks), len(model.CheckIDs), checks, err)
	}
	for _, c := range checks {
		if c.Status != model.CheckPass {
			t.Errorf("gate check %s = %s: %s", c.CheckID, c.Status, c.Message)
		}
	}
	mbs, err := s.db.ListMailboxes(ctx, jobID)
	if err != nil {
		t.Fatalf("err: want nil; mailboxes: %v %v", mbs, err)
	}
	if len(mbs) != len(e2eUsers) {
		t.Fatalf("len(mbs) = %v, want %v (len(e2eUsers)); mailboxes: %v %v", len(mbs), len(e2eUsers), mbs, err)
	}
	for _, m := range mbs {
		if m.Status != model.MailboxOK {
			t.Errorf("m.Status = %v, want model.MailboxOK; mailbox row %s: %+v", m.Status, m.Email, m)
		} else if m.SyncPercent != 100 {
			t.Errorf("m.SyncPercent = %v, want 100; mailbox row %s: %+v", m.SyncPercent, m.Email, m)
		} else if m.MessagesSource == 0 {
			t.Errorf("m.MessagesSource = %v, want != 0; mailbox row %s: %+v", m.MessagesSource, m.Email, m)
		} else if m.MessagesDest < m.MessagesSource {
			t.Errorf("m.MessagesDest = %v, want >= m.MessagesSource; mailbox row %s: %+v", m.MessagesDest, m.Email, m)
		} else if m.LastError != "" {
			t.Errorf("m.LastError = %v, want \"\"; mailbox row %s: %+v", m.LastError, m.Email, m)
		}
		i := slices.IndexFunc(res.MailboxDetails, func(p emailapi.MailboxProgress) bool { return p.Email == m.Email })
		if i < 0 {
			t.Errorf("%s missing from the status", m.Email)
		} else if p := res.MailboxDetails[i]; p.Status != m.Status {
			t.Errorf("p.Status = %v, want %v (m.Status); %s: status query %+v, PostgreSQL %s %d/%d",
				p.Status, m.Status, m.Email, p, m.Status, m.MessagesDest, m.MessagesSource)
		} else if p.MessagesSource != m.MessagesSource {
			t.Errorf("p.MessagesSource = %v, want %v (m.MessagesSource); %s: status query %+v, PostgreSQL %s %d/%d",
				p.MessagesSource, m.MessagesSource, m.Email, p, m.Status, m.MessagesDest, m.MessagesSource)
		}
		runs, err := s.db.ListRuns(ctx, jobID, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		count := map[model.RunType]int{}
		for _, r := range runs {
			count[r.RunType]++
			if r.RunType == model.RunDelta && len(r.Stats) <= len("{}") {
				t.Errorf("%s presync run %d has no stats_json: %s", m.Email, r.ID, r.Stats)
			}
			if r.FinishedAt == nil || (r.Status != model.RunSuccess && r.Status != model.RunPartial) {
				t.Errorf("%s run %d (%s): status %s finished %v", m.Email, r.ID, r.RunType, r.Status, r.FinishedAt)
			}
		}
		if count[model.RunPreflight] != 1 {
			t.Errorf("count[model.RunPreflight] = %v, want 1; %s runs: %v", count[model.RunPreflight], m.Email, count)
		} else if count[model.RunInitial] != 1 {
			t.Errorf("count[model.RunInitial] = %v, want 1; %s runs: %v", count[model.RunInitial], m.Email, count)
		} else if count[model.RunDelta] != 2 {
			t.Errorf("count[model.RunDelta] = %v, want 2; %s runs: %v", count[model.RunDelta], m.Email, count)
		} else if count[model.RunFinal] < 1 {
			t.Errorf("count[model.RunFinal] = %v, want >= 1; %s runs: %v", count[model.RunFinal], m.Email, count)
		} else if count[model.RunVerify] < 1 {
			t.Errorf("count[model.RunVerify] = %v, want >= 1; %s runs: %v", count[model.RunVerify], m.Email, count)
		}
	}
	for _, u := range e2eUsers {
		src, dst := s.src.MessageIDs(t, u), s.dst.MessageIDs(t, u)
		want := slices.Sorted(slices.Values(append(slices.Clone(src), destOnly[u]...)))
		if !slices.Equal(dst, want) {
			t.Errorf("%s: destination differs from the source (+ %v):\nsource %v\ndest   %v", u, destOnly[u], src, dst)
		}
	}
	if ids := s.dst.MessageIDs(t, "alice"); !slices.Contains(ids, "INBOX <alice-late@corpus.example>") {
		t.Errorf("mail delivered to the source after the cutover was not copied: %v", ids)
	}
	if ids := s.dst.MessageIDs(t, "carol"); slices.Contains(ids, "Projects <carol-projects-0@corpus.example>") {
		t.Errorf("message deleted at the source before the cutover still on the destination: %v", ids)
	}
}

// checkVisibility finds the job through the search attributes an operator filters on.
func (s *stack) checkVisibility(t *testing.T, id string) {
	t.Helper()
	q := fmt.Sprintf("WorkflowId = '%s' AND MigrationKind = 'email' AND MigrationPhase = 'closed' AND MigrationGate = 'ready_for_dns' "+
		"AND MigrationDomain = 'example.com' AND TenantID = 7 AND SyncPercent = 100 AND MigrationStatus = 'completed'", id)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := s.c.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{Query: q})
		if err != nil {
			t.Fatalf("visibility query: %v", err)
		}
		if len(resp.Executions) == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no execution matches %s", q)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestEndToEndWithTheTemporalCLI is the same job driven only with the temporal CLI, as an
// operator without the cutover binary would: start with the JSON spec as input, signals and
// updates by name, the status query, the result.
func TestEndToEndWithTheTemporalCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: Temporal, PostgreSQL, two Dovecots")
	}
	s := newStack(t)
	const jobID = 4343
	id := emailapi.WorkflowID(jobID)
	tcli := func(args ...string) (string, string, error) { return s.temporalCLI(t, args...) }
	must := func(args ...string) string {
		t.Helper()
		out, errs, err := tcli(args...)
		if err != nil {
			t.Fatalf("temporal %s: %v\n%s%s", strings.Join(args, " "), err, out, errs)
		}
		return out
	}
	query := func() emailapi.Status {
		t.Helper()
		out := must("workflow", "query", "--workflow-id", id, "--name", emailapi.QueryStatus, "-o", "json")
		var resp struct {
			QueryResult []emailapi.Status `json:"queryResult"`
		}
		if err := json.Unmarshal([]byte(out), &resp); err != nil {
			t.Fatalf("err: want nil; query output %q: %v", out, err)
		} else if len(resp.QueryResult) != 1 {
			t.Fatalf("len(resp.QueryResult) = %v, want 1; query output %q: %v", len(resp.QueryResult), out, err)
		}
		return resp.QueryResult[0]
	}
	waitFor := func(what string, ok func(emailapi.Status) bool) emailapi.Status {
		t.Helper()
		deadline := time.Now().Add(waitLimit)
		for {
			st := query()
			if ok(st) {
				return st
			}
			if time.Now().After(deadline) || st.Phase == model.PhaseFailed {
				t.Fatalf("%s not reached: phase %s gate %s error %q", what, st.Phase, st.Gate, st.LastError)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}

	// The spec as JSON, mailboxes and all: the workflow registers them itself.
	specJSON := yamlToJSON(t, s.specYAML(jobID))
	specPath := filepath.Join(t.TempDir(), "job.json")
	if err := os.WriteFile(specPath, specJSON, 0o600); err != nil {
		t.Fatal(err)
	}
	start := []string{"workflow", "start", "--type", emailapi.WorkflowName, "--task-queue", s.queue, "--workflow-id", id,
		"--input-file", specPath, "--id-reuse-policy", "AllowDuplicateFailedOnly", "--id-conflict-policy", "Fail",
		"--static-summary", "email job 4343"}
	first := must(start...)
	// A job id cannot run twice at once: a second start finds the running execution.
	if second := must(start...); runID(second) == "" {
		t.Errorf("want runID(second) != \"\"; second start of a running job:\n%s\nfirst:\n%s", second, first)
	} else if runID(second) != runID(first) {
		t.Errorf("want runID(second) == runID(first); second start of a running job:\n%s\nfirst:\n%s", second, first)
	}
	waitFor("delta_sync", func(st emailapi.Status) bool { return st.Phase == model.PhaseDeltaSync })

	presync := func(n int) {
		must("workflow", "signal", "--workflow-id", id, "--name", emailapi.PresyncNow, "--input", `{"by":"ops"}`)
		waitFor(fmt.Sprintf("presync %d", n), func(st emailapi.Status) bool { return st.Presyncs == n && st.CurrentPass == nil })
	}
	presync(1)
	s.deliver(t, s.src, "alice", "INBOX", "alice-new-1")
	s.deliver(t, s.src, "alice", "INBOX", "alice-new-2")
	s.deliver(t, s.src, "bob", "Sent", "bob-sent-new")
	remove(t, s.src, "carol", "Projects", "carol-projects-0")
	presync(2)

	_, errs, err := tcli("workflow", "update", "execute", "--workflow-id", id, "--name", emailapi.DNSCutoverConfirmed, "--input", `{"by":"ops-lead"}`)
	if err == nil || !strings.Contains(errs, "not ready_for_dns") {
		t.Fatalf("DNS update before approval: %v\n%s", err, errs)
	}
	if out := must("workflow", "update", "execute", "--workflow-id", id, "--name", emailapi.Approve, "--input", `{"by":"ops-lead","note":"ok"}`); !strings.Contains(out, "ready_for_dns") {
		t.Fatalf("approve: %s", out)
	}
	must("workflow", "signal", "--workflow-id", id, "--name", emailapi.SetCutoverTime,
		"--input", fmt.Sprintf(`{"by":"ops","at":%q}`, time.Now().UTC().Format(time.RFC3339)))
	waitFor("cutover_ready", func(st emailapi.Status) bool { return st.Phase == model.PhaseCutoverReady })
	if out := must("workflow", "update", "execute", "--workflow-id", id, "--name", emailapi.DNSCutoverConfirmed, "--input", `{"by":"ops-lead"}`); !strings.Contains(out, "dns_cutover") {
		t.Fatalf("DNS update: %s", out)
	}
	s.deliver(t, s.src, "alice", "INBOX", "alice-late")
	remove(t, s.src, "bob", "INBOX", "bob-inbox-1")
	s.deliver(t, s.dst, "alice", "INBOX", "alice-new-mx")
	waitFor("verified", func(st emailapi.Status) bool { return st.Phase == model.PhaseVerified })
	must("workflow", "signal", "--workflow-id", id, "--name", emailapi.Close, "--input", `{"by":"ops-lead","note":"done"}`)
	if out := must("workflow", "result", "--workflow-id", id); !strings.Contains(out, "closed") {
		t.Fatalf("result: %s", out)
	}
	s.checkOutcome(t, jobID, query(), map[string][]string{
		"alice": {"INBOX <alice-new-mx@corpus.example>"},
		"bob":   {"INBOX <bob-inbox-1@corpus.example>"},
	})
}

// temporalCLI runs the temporal CLI against the stack's dev server, as an operator without the
// cutover binary would. With the payload codec on, it encodes inputs and decodes results
// through a codec endpoint, as an operator's would (`cutover codec-server`).
func (s *stack) temporalCLI(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	if s.tcliArgs == nil {
		s.tcliArgs = []string{"--address", s.srv.Address(), "--namespace", s.srv.Namespace()}
		if pc, err := codec.FromEnv(os.Getenv); err != nil {
			t.Fatal(err)
		} else if pc != nil {
			token := "e2e-codec-token"
			cs := httptest.NewServer(codec.Handler(pc, token, nil))
			t.Cleanup(cs.Close)
			s.tcliArgs = append(s.tcliArgs, "--codec-endpoint", cs.URL, "--codec-auth", "Bearer "+token)
		}
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(root, "bin", "temporal"), append(args, s.tcliArgs...)...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

// yamlToJSON turns a YAML spec into the JSON an operator passes to `temporal workflow start`.
func yamlToJSON(t *testing.T, y string) []byte {
	t.Helper()
	spec, err := jobspec.Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// runID picks the run id out of `temporal workflow start` output.
func runID(out string) string {
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "RunId" {
			return f[1]
		}
	}
	return ""
}
