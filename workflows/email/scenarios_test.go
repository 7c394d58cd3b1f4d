package email

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cutover/cutover/activities/emailjob"
	"github.com/cutover/cutover/activities/mail"
	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/email/jobspec"
)

// shortInbox returns stats where the INBOX is missing n messages on the destination.
func shortInbox(req mail.PassRequest, n int64) mail.PassStats {
	fs := folders()
	fs[0].DestMessages -= n
	return mail.PassStats{Mode: req.Mode, Folders: fs}
}

func permanent(typ, msg string) error {
	return temporal.NewNonRetryableApplicationError(msg, typ, nil)
}

func wantPhases(t *testing.T, h *harness, want ...model.Phase) {
	t.Helper()
	if got := h.mirroredPhases(); !slices.Equal(got, want) {
		t.Errorf("phases mirrored = %v\nwant %v", got, want)
	}
}

// TestUpdatesRefuseUntilTheGateAllows: approving a blocked gate and confirming DNS before
// ready_for_dns are rejected with the failing checks; once presyncs fix the facts, approval
// opens the gate and the DNS confirmation is accepted.
func TestUpdatesRefuseUntilTheGateAllows(t *testing.T) {
	h := newHarness(t, syncDelays{initial: 30 * time.Minute, delta: 10 * time.Minute})
	deltas := 0
	h.syncStats = func(req mail.PassRequest) (mail.PassStats, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		if req.RunType == model.RunDelta {
			deltas++
			if deltas <= 2 && req.Spec.Email == "u1@example.com" {
				return shortInbox(req, 5), nil
			}
		}
		return mail.PassStats{Mode: req.Mode, Folders: folders()}, nil
	}
	var blockedApprove, blockedDNS, warnDNS, approve, dns, early, closeU *updateOutcome
	var atBlocked, atWarning Status
	h.at(10*time.Minute, func() { early = h.update(Approve, Request{By: "lead"}) }) // still in preflight/initial
	h.at(7*time.Hour, func() {
		atBlocked = h.status()
		blockedApprove = h.update(Approve, Request{By: "lead", Note: "looks fine"})
		blockedDNS = h.update(DNSCutoverConfirmed, Request{By: "lead"})
		h.signal(Approve, "lead-by-signal")
	})
	h.at(13*time.Hour, func() {
		atWarning = h.status()
		warnDNS = h.update(DNSCutoverConfirmed, Request{By: "lead"})
		approve = h.update(Approve, Request{By: "lead", Note: "reviewed"})
	})
	h.at(14*time.Hour, func() { dns = h.update(DNSCutoverConfirmed, Request{By: "lead"}) })
	h.at(15*time.Hour, func() { closeU = h.update(Close, Request{By: "lead", Note: "users happy"}) })
	h.env.ExecuteWorkflow(WorkflowName, testSpec(2), nil)

	res, err := h.result()
	if err != nil {
		t.Fatal(err)
	}
	if early.Rejected == nil || !strings.Contains(early.Rejected.Error(), "approve refused in phase") {
		t.Errorf("approve before the gate exists: %+v", early)
	}
	if atBlocked.Gate != model.GateBlocked || atBlocked.Presyncs != 1 {
		t.Errorf("after presync 1: gate %s presyncs %d", atBlocked.Gate, atBlocked.Presyncs)
	}
	if e := blockedApprove.Rejected; e == nil || !strings.Contains(e.Error(), "gate is blocked") ||
		!strings.Contains(e.Error(), "inbox_complete fail: 1/2 mailboxes fail: u1@example.com: INBOX 5/10, 5 missing") {
		t.Errorf("approve of a blocked gate: %+v", blockedApprove)
	}
	if e := blockedDNS.Rejected; e == nil || !strings.Contains(e.Error(), "the gate is blocked, not ready_for_dns") {
		t.Errorf("DNS on a blocked gate: %+v", blockedDNS)
	}
	if atWarning.Gate != model.GateWarning || len(atWarning.Refused) != 1 || !strings.Contains(atWarning.Refused[0], `approve by "lead-by-signal" refused: approve refused: the gate is blocked`) {
		t.Errorf("at 13h: gate %s, refused %q", atWarning.Gate, atWarning.Refused)
	}
	if e := warnDNS.Rejected; e == nil || !strings.Contains(e.Error(), "the gate is warning") || !strings.Contains(e.Error(), "manual_approval warn: awaiting ops-lead approval") {
		t.Errorf("DNS on a warning gate: %+v", warnDNS)
	}
	if approve.Rejected != nil || approve.Err != nil || approve.Ack.Gate != model.GateReadyForDNS || !strings.Contains(approve.Ack.Message, "approved by lead") {
		t.Errorf("approve of a warning gate: %+v", approve)
	}
	if dns.Rejected != nil || dns.Err != nil || dns.Ack.Phase != model.PhaseDNSCutover {
		t.Errorf("DNS confirmation on ready_for_dns: %+v", dns)
	}
	if closeU.Rejected != nil || res.Phase != model.PhaseClosed || res.ClosedBy != "lead" {
		t.Errorf("close: %+v; status %+v", closeU, res)
	}
	// Confirmed from delta_sync: cutover_ready is passed through, never skipped.
	wantPhases(t, h, model.PhasePreflight, model.PhaseInitialSync, model.PhaseDeltaSync, model.PhaseCutoverReady,
		model.PhaseDNSCutover, model.PhaseFinalSync, model.PhaseVerified, model.PhaseClosed)
	if n := h.notes(); !strings.Contains(n, "approved by lead: reviewed") || !strings.Contains(n, "closed by lead: users happy") {
		t.Errorf("notes:\n%s", n)
	}
}

func TestAbortDuringInitialSync(t *testing.T) {
	h := newHarness(t, syncDelays{initial: 2 * time.Hour})
	var ack *updateOutcome
	h.at(time.Hour, func() { ack = h.update(Abort, Request{By: "ops", Note: "wrong domain"}) })
	h.env.ExecuteWorkflow(WorkflowName, testSpec(3), nil)
	res, err := h.result()
	if appType(err) != "Aborted" || !strings.Contains(err.Error(), "aborted by ops: wrong domain") {
		t.Fatalf("result error = %v", err)
	}
	_ = res
	if ack == nil || ack.Rejected != nil || ack.Err != nil {
		t.Errorf("abort update = %+v", ack)
	}
	if d := h.env.Now().Sub(t0); d >= 2*time.Hour {
		t.Errorf("abort waited for the running passes to finish on their own (%s)", d)
	}
	last := h.lastMirror().State
	if last.Phase != model.PhaseFailed || last.FailedPhase != model.PhaseInitialSync || last.LastError != "aborted by ops: wrong domain" {
		t.Errorf("last mirrored state = %+v", last)
	}
	for _, c := range h.syncCalls() {
		if c.Req.RunType != model.RunInitial {
			t.Errorf("pass after abort: %+v", c.Req)
		}
	}
}

// TestRetryResumesFromTheFailedPhase: bad credentials fail the preflight without retries; the
// retry command re-runs the preflight (not the registration), and the job goes on.
func TestRetryResumesFromTheFailedPhase(t *testing.T) {
	h := newHarness(t, syncDelays{})
	h.preflightErr["u1@example.com"] = permanent(mail.ErrTypeAuthFailed, "LOGIN refused for u1@example.com")
	var failed Status
	var early, retry *updateOutcome
	h.at(30*time.Minute, func() {
		failed = h.status()
		early = h.update(Approve, Request{By: "lead"})
		h.mu.Lock()
		delete(h.preflightErr, "u1@example.com") // the operator fixed the credentials
		h.mu.Unlock()
		retry = h.update(Retry, Request{By: "ops"})
	})
	h.at(2*time.Hour, func() { h.signal(Abort, "ops") })
	h.env.ExecuteWorkflow(WorkflowName, testSpec(3), nil)
	_, err := h.result()
	if appType(err) != "Aborted" {
		t.Fatalf("result: %v", err)
	}
	if failed.Phase != model.PhaseFailed || failed.FailedPhase != model.PhasePreflight || failed.State != "failed" ||
		!strings.Contains(failed.LastError, "u1@example.com: AuthFailed") || failed.MailboxCounts[model.MailboxError] != 1 {
		t.Errorf("failed status = %+v", failed)
	}
	if early.Rejected == nil || retry.Rejected != nil || retry.Err != nil || !strings.Contains(retry.Ack.Message, "retrying from preflight") {
		t.Errorf("approve %+v retry %+v", early, retry)
	}
	h.mu.Lock()
	attempts := h.preflight["u1@example.com"]
	marks := slices.Clone(h.marks)
	h.mu.Unlock()
	if attempts != 2 { // one (non-retryable) before the retry, one after
		t.Errorf("preflight attempts of u1 = %d, want 2", attempts)
	}
	if len(marks) != 1 || marks[0].Status != model.MailboxError || !strings.Contains(marks[0].LastError, "AuthFailed") {
		t.Errorf("mailbox marks = %+v", marks)
	}
	wantPhases(t, h, model.PhasePreflight, model.PhaseFailed, model.PhasePreflight, model.PhaseInitialSync, model.PhaseDeltaSync, model.PhaseFailed)
}

// TestTransientFailuresRetryThenFailThePhase: a connection error is retried up to the spec's
// max_attempts; the other mailboxes still finish; the phase then fails naming the mailbox.
func TestTransientFailuresRetryThenFailThePhase(t *testing.T) {
	h := newHarness(t, syncDelays{})
	attempts := 0
	broken := true
	h.syncStats = func(req mail.PassRequest) (mail.PassStats, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		if req.Spec.Email == "u0@example.com" && broken {
			attempts++
			return mail.PassStats{}, temporal.NewApplicationError("dial old.example:143: connection refused", mail.ErrTypeConnect)
		}
		return mail.PassStats{Mode: req.Mode, Folders: folders()}, nil
	}
	spec := testSpec(3)
	spec.Retry = jobspec.Retry{MaxAttempts: 3, MaxInterval: jobspec.Duration(time.Minute)}
	var failed Status
	h.at(time.Hour, func() {
		failed = h.status()
		h.mu.Lock()
		broken = false
		h.mu.Unlock()
		h.signal(Retry, "ops")
	})
	h.at(3*time.Hour, func() { h.signal(Abort, "ops") })
	h.env.ExecuteWorkflow(WorkflowName, spec, nil)
	if _, err := h.result(); appType(err) != "Aborted" {
		t.Fatalf("result: %v", err)
	}
	if attempts != 3 {
		t.Errorf("attempts = %d, want max_attempts 3", attempts)
	}
	if failed.FailedPhase != model.PhaseInitialSync || !strings.Contains(failed.LastError, "initial sync: 1 of 3 mailboxes failed: u0@example.com: Connect") {
		t.Errorf("failed status = %+v", failed)
	}
	wantPhases(t, h, model.PhasePreflight, model.PhaseInitialSync, model.PhaseFailed, model.PhaseInitialSync, model.PhaseDeltaSync, model.PhaseFailed)
}

// TestWaveContinuesAsNewAndBoundsConcurrency: 5 mailboxes, 2 at a time, pages of 2, a new
// wave run every 2 mailboxes: every mailbox is passed exactly once per wave, over 3 runs.
func TestWaveContinuesAsNewAndBoundsConcurrency(t *testing.T) {
	h := newHarness(t, syncDelays{initial: time.Hour})
	spec := testSpec(5)
	spec.Concurrency.Mailboxes = 2
	var after Status
	h.at(5*time.Hour, func() { after = h.status(); h.signal(Abort, "ops") })
	h.env.ExecuteWorkflow(WorkflowName, spec, &Resume{Tuning: Tuning{PageSize: 2, ContinueAfter: 2}})
	if _, err := h.result(); appType(err) != "Aborted" {
		t.Fatalf("result: %v", err)
	}
	lp := after.LastPass
	if lp == nil || lp.RunType != model.RunInitial || lp.Mailboxes != 5 || lp.Runs != 3 || lp.Failed != 0 {
		t.Fatalf("initial pass = %+v", lp)
	}
	// 2 at a time for 1h each, pages drained before each new run: 2 + 2 + 1 → 3 hours.
	if lp.Seconds != (3 * time.Hour).Seconds() {
		t.Errorf("initial pass took %vs, want 3h with 2 mailboxes at a time", lp.Seconds)
	}
	seen := map[string]int{}
	for _, c := range h.syncCalls() {
		seen[c.Req.Spec.Email]++
	}
	if len(seen) != 5 {
		t.Errorf("mailboxes synced: %v", seen)
	}
	for e, n := range seen {
		if n != 1 {
			t.Errorf("%s synced %d times in one wave", e, n)
		}
	}
}

// TestContinueAsNewCarriesTheJob: past the history limit the job continues as new with its
// state (phase, presync count, approval, planned hour) and a spec without mailboxes; the next
// run picks up where it left off and finishes the job.
func TestContinueAsNewCarriesTheJob(t *testing.T) {
	h := newHarness(t, syncDelays{initial: 30 * time.Minute, delta: 7 * time.Minute})
	h.at(8*time.Hour, func() { h.signal(Approve, "lead") })
	h.at(9*time.Hour, func() { h.env.SetCurrentHistoryLength(DefaultHistoryLimit + 1) })
	h.env.ExecuteWorkflow(WorkflowName, testSpec(3), nil)
	err := h.env.GetWorkflowError()
	var can *workflow.ContinueAsNewError
	if !errors.As(err, &can) {
		t.Fatalf("want continue-as-new, got %v", err)
	}
	var spec jobspec.Spec
	var resume *Resume
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &spec, &resume); err != nil {
		t.Fatal(err)
	}
	st := resume.State
	// The limit was passed at 9h, during the wait for presync 2; the run continues as new at
	// the next safe point, right after it.
	if len(spec.Mailboxes) != 0 || spec.MailboxCount != 3 || st == nil || st.Phase != model.PhaseDeltaSync || st.Presyncs != 2 ||
		st.Approval == nil || st.Gate != model.GateReadyForDNS || !st.Registered || st.WaveSeq != 4 {
		t.Fatalf("carried spec %+v state %+v", spec, st)
	}
	mirrorsBefore := len(h.mirrors)

	// The next run, on a fresh environment sharing the fakes.
	h2 := newHarness(t, syncDelays{delta: 7 * time.Minute, final: 10 * time.Minute})
	h2.mailboxes = h.mailboxes
	h2.env.SetStartTime(h.env.Now())
	h2.at(time.Hour, func() { h2.signal(DNSCutoverConfirmed, "lead") })
	h2.at(2*time.Hour, func() { h2.signal(Close, "lead") })
	h2.env.ExecuteWorkflow(WorkflowName, spec, resume)
	res, err := h2.result()
	if err != nil {
		t.Fatal(err)
	}
	if res.Phase != model.PhaseClosed || res.ContinuedRuns != 1 || res.Presyncs != 2 || res.ApprovedBy != "lead" {
		t.Errorf("after continue-as-new: %+v", res)
	}
	if mirrorsBefore == 0 || h2.mirroredPhases()[0] != model.PhaseDeltaSync {
		t.Errorf("second run's first write = %v", h2.mirroredPhases())
	}
	h2.mu.Lock()
	defer h2.mu.Unlock()
	for _, c := range h2.syncs {
		if c.Req.RunType == model.RunInitial {
			t.Errorf("initial sync re-run after continue-as-new")
		}
	}
}

// TestDNSConfirmationStopsARunningMirrorPresync: DNS confirmed while a mirror presync runs
// cancels it at once; the update answers only after it stopped; no mirror pass starts after.
func TestDNSConfirmationStopsARunningMirrorPresync(t *testing.T) {
	h := newHarness(t, syncDelays{initial: 30 * time.Minute, delta: 2 * time.Hour, final: 10 * time.Minute})
	h.at(9*time.Hour, func() { h.signal(Approve, "lead") })
	dnsAt := 15 * time.Hour // presync 2 runs from 14:30 to 16:30
	var during Status
	var dns *updateOutcome
	h.at(dnsAt-time.Minute, func() { during = h.status() })
	var after Status
	h.at(dnsAt, func() { dns = h.update(DNSCutoverConfirmed, Request{By: "lead"}) })
	h.at(dnsAt+time.Second, func() { after = h.status() })
	h.at(dnsAt+3*time.Hour, func() { h.signal(Close, "lead") })
	h.env.ExecuteWorkflow(WorkflowName, testSpec(2), nil)
	res, err := h.result()
	if err != nil {
		t.Fatal(err)
	}
	if during.CurrentPass == nil || during.CurrentPass.Mode != "mirror" {
		t.Fatalf("no mirror presync running at the confirmation: %+v", during.CurrentPass)
	}
	if dns == nil || !dns.Done || dns.Rejected != nil || dns.Err != nil {
		t.Fatalf("dns update = %+v", dns)
	}
	// The answer comes once the job is past the cutover, i.e. after the presync stopped.
	if dns.Ack.Phase != model.PhaseDNSCutover || after.LastPass == nil || !after.LastPass.Canceled || after.LastPass.Mode != "mirror" {
		t.Errorf("DNS answer %+v; pass after it %+v", dns.Ack, after.LastPass)
	}
	if res.Phase != model.PhaseClosed || res.Presyncs != 1 {
		t.Errorf("status = phase %s presyncs %d", res.Phase, res.Presyncs)
	}
	mirrors := 0
	for _, c := range h.syncCalls() {
		if c.Req.Mode == mail.ModeMirror {
			mirrors++
			if !c.At.Before(t0.Add(dnsAt)) {
				t.Errorf("mirror pass started at %s, after the DNS confirmation", c.At)
			}
		} else if c.At.After(t0.Add(dnsAt)) && c.Req.RunType != model.RunFinal && len(c.Req.Spec.Include) == 0 {
			t.Errorf("unexpected pass after DNS: %+v", c.Req)
		}
	}
	if mirrors != 4 { // 2 presyncs x 2 mailboxes started; the second cancelled
		t.Errorf("mirror passes = %d", mirrors)
	}
	if !strings.Contains(h.notes(), "presync stopped: DNS cutover confirmed") {
		t.Errorf("notes:\n%s", h.notes())
	}
}

// TestCraftedMirrorAfterCutoverIsRefused: a mirror pass asked for once DNS is cut over never
// reaches the engine, whoever asks (a mailbox workflow or a wave started by hand).
func TestCraftedMirrorAfterCutoverIsRefused(t *testing.T) {
	spec := testSpec(1).WithDefaults()
	ms := spec.MailboxSpec(testJob, 10, spec.Mailboxes[0])
	for _, tc := range []struct {
		name    string
		task    Task
		refused bool
	}{
		{"mirror in final_sync", Task{Kind: TaskSync, Mode: mail.ModeMirror, RunType: model.RunFinal, Phase: model.PhaseFinalSync}, true},
		{"mirror in verified", Task{Kind: TaskSync, Mode: mail.ModeMirror, RunType: model.RunDelta, Phase: model.PhaseVerified}, true},
		{"mirror in delta_sync after DNS", Task{Kind: TaskSync, Mode: mail.ModeMirror, RunType: model.RunDelta, Phase: model.PhaseDeltaSync, CutOver: true}, true},
		{"mirror in a failed job", Task{Kind: TaskSync, Mode: mail.ModeMirror, RunType: model.RunDelta, Phase: model.PhaseFailed}, true},
		{"mirror in delta_sync", Task{Kind: TaskSync, Mode: mail.ModeMirror, RunType: model.RunDelta, Phase: model.PhaseDeltaSync}, false},
		{"copy in final_sync", Task{Kind: TaskSync, Mode: mail.ModeCopy, RunType: model.RunFinal, Phase: model.PhaseFinalSync}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, wf := range []string{MailboxWorkflowName, WaveWorkflowName} {
				h := newHarness(t, syncDelays{})
				h.mailboxes = []mail.MailboxSpec{ms}
				if wf == MailboxWorkflowName {
					h.env.ExecuteWorkflow(wf, MailboxInput{Task: tc.task, Spec: ms})
				} else {
					h.env.ExecuteWorkflow(wf, WaveInput{Spec: spec, Task: tc.task, Concurrency: 1})
				}
				err := h.env.GetWorkflowError()
				calls := len(h.syncCalls())
				if tc.refused {
					if appType(err) != ErrTypeMirrorAfterCutover || calls != 0 {
						t.Errorf("%s: err %v, %d engine calls; want refusal before the engine", wf, err, calls)
					}
				} else if err != nil || calls != 1 {
					t.Errorf("%s: err %v, %d engine calls", wf, err, calls)
				}
			}
		})
	}
}

// TestResumeAfterRecordedCutoverNeverMirrors: a job restarted after an abort whose row says
// DNS was cut over resumes at dns_cutover and only copies.
func TestResumeAfterRecordedCutoverNeverMirrors(t *testing.T) {
	h := newHarness(t, syncDelays{})
	dnsAt := t0.Add(-time.Hour)
	by := "lead"
	h.existing = &emailjob.Registration{JobID: testJob, Existing: &store.JobProgress{
		Job: store.Job{ID: testJob, Phase: model.PhaseFailed, Gate: model.GateReadyForDNS, ApprovedBy: &by, ApprovedAt: &dnsAt,
			DNSCutoverAt: &dnsAt}, FailedPhase: model.PhaseDeltaSync}}
	h.at(time.Hour, func() { h.signal(Close, "lead") })
	h.env.ExecuteWorkflow(WorkflowName, testSpec(2), nil)
	res, err := h.result()
	if err != nil {
		t.Fatal(err)
	}
	if res.Phase != model.PhaseClosed || res.DNSCutoverAt == nil || !res.DNSCutoverAt.Equal(dnsAt) || res.ApprovedBy != "lead" {
		t.Errorf("status = %+v", res)
	}
	wantPhases(t, h, model.PhaseDNSCutover, model.PhaseFinalSync, model.PhaseVerified, model.PhaseClosed)
	for _, c := range h.syncCalls() {
		if c.Req.Mode != mail.ModeCopy {
			t.Errorf("pass %+v after a recorded cutover", c.Req)
		}
	}

	h = newHarness(t, syncDelays{})
	h.existing = &emailjob.Registration{JobID: testJob, Existing: &store.JobProgress{Job: store.Job{ID: testJob, Phase: model.PhaseClosed}}}
	h.env.ExecuteWorkflow(WorkflowName, testSpec(2), nil)
	if _, err := h.result(); appType(err) != "JobClosed" || len(h.mirrors) != 0 {
		t.Errorf("restart of a closed job: %v, %d writes", err, len(h.mirrors))
	}
}

// TestVerifyMissingRunsMoreRoundsThenFails: verified only with nothing missing; after the
// configured rounds the job fails in final_sync, and a retry resumes there.
func TestVerifyMissingRunsMoreRoundsThenFails(t *testing.T) {
	h := newHarness(t, syncDelays{})
	missing := true
	h.verifyReport = func(spec mail.MailboxSpec) (mail.VerifyReport, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		if missing && spec.Email == "u0@example.com" {
			return mail.VerifyReport{Missing: 2, Folders: []mail.FolderDiff{{Source: "INBOX", SourceMessages: 10, DestMessages: 8, Missing: 2,
				Samples: []string{"<m1@x> 2026-01-01", "<m2@x> 2026-01-02"}}}}, nil
		}
		return mail.VerifyReport{OK: true}, nil
	}
	spec := testSpec(2)
	spec.Schedule.FinalSyncRounds = 2
	h.at(7*time.Hour, func() { h.signal(Approve, "lead") })
	h.at(8*time.Hour, func() { h.signal(DNSCutoverConfirmed, "lead") })
	var failed Status
	var presync *updateOutcome
	h.at(10*time.Hour, func() {
		failed = h.status()
		presync = h.update(PresyncNow, Request{By: "ops"})
		h.mu.Lock()
		missing = false
		h.mu.Unlock()
		h.signal(Retry, "ops")
	})
	h.at(11*time.Hour, func() { h.signal(Close, "lead") })
	h.env.ExecuteWorkflow(WorkflowName, spec, nil)
	res, err := h.result()
	if err != nil {
		t.Fatal(err)
	}
	if failed.Phase != model.PhaseFailed || failed.FailedPhase != model.PhaseFinalSync || failed.FinalRounds != 2 ||
		!strings.Contains(failed.LastError, "verify: 2 message(s) missing outside quarantine after 2 final-sync round(s): u0@example.com INBOX: <m1@x>") {
		t.Errorf("failed = %+v", failed)
	}
	if presync.Rejected == nil || !strings.Contains(presync.Rejected.Error(), "no presync after DNS cutover") {
		t.Errorf("presync after cutover: %+v", presync)
	}
	if res.Phase != model.PhaseClosed || res.Verify == nil || !res.Verify.OK {
		t.Errorf("status = %+v", res)
	}
	finals := 0
	for _, c := range h.syncCalls() {
		if c.Req.RunType == model.RunFinal {
			finals++
		}
	}
	if finals != 6 { // 2 rounds before the failure, 1 after the retry, 2 mailboxes each
		t.Errorf("final passes = %d, want 6", finals)
	}
}

// TestPresyncFailureBlocksTheGateNotTheJob: one mailbox failing a presync keeps the job in
// delta_sync with the gate blocked and the error named; the next clean presync clears it.
func TestPresyncFailureBlocksTheGateNotTheJob(t *testing.T) {
	h := newHarness(t, syncDelays{})
	deltas := 0
	h.syncStats = func(req mail.PassRequest) (mail.PassStats, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		if req.RunType == model.RunDelta && req.Spec.Email == "u1@example.com" {
			deltas++
			if deltas == 1 {
				return mail.PassStats{}, permanent(mail.ErrTypeCredentialsUnavailable, "credentials_ref unknown")
			}
		}
		return mail.PassStats{Mode: req.Mode, Folders: folders()}, nil
	}
	var blocked, clean Status
	h.at(7*time.Hour, func() { blocked = h.status() })
	h.at(13*time.Hour, func() { clean = h.status(); h.signal(Abort, "ops") })
	h.env.ExecuteWorkflow(WorkflowName, testSpec(2), nil)
	if _, err := h.result(); appType(err) != "Aborted" {
		t.Fatalf("result: %v", err)
	}
	if blocked.Phase != model.PhaseDeltaSync || blocked.Gate != model.GateBlocked || blocked.MailboxCounts[model.MailboxError] != 1 {
		t.Fatalf("after the failing presync: %+v", blocked)
	}
	msg := ""
	for _, c := range blocked.Checks {
		if c.ID == model.CheckCountRatio {
			msg = c.Message
		}
	}
	if !strings.Contains(msg, "u1@example.com: last pass failed: CredentialsUnavailable") {
		t.Errorf("count_ratio message = %q", msg)
	}
	if clean.Gate != model.GateWarning || clean.Presyncs != 2 {
		t.Errorf("after a clean presync: gate %s presyncs %d", clean.Gate, clean.Presyncs)
	}
}

// TestApprovalVoidedWhenChecksFail: an approval stands only while no check fails.
func TestApprovalVoidedWhenChecksFail(t *testing.T) {
	h := newHarness(t, syncDelays{})
	deltas := 0
	h.syncStats = func(req mail.PassRequest) (mail.PassStats, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		if req.RunType == model.RunDelta {
			deltas++
			if deltas == 3 { // presync 2, first mailbox
				return shortInbox(req, 4), nil
			}
		}
		return mail.PassStats{Mode: req.Mode, Folders: folders()}, nil
	}
	var ready, voided Status
	h.at(7*time.Hour, func() { h.signal(Approve, "lead") })
	h.at(8*time.Hour, func() { ready = h.status() })
	var dns *updateOutcome
	h.at(13*time.Hour, func() {
		voided = h.status()
		dns = h.update(DNSCutoverConfirmed, Request{By: "lead"})
		h.signal(Abort, "ops")
	})
	h.env.ExecuteWorkflow(WorkflowName, testSpec(2), nil)
	if _, err := h.result(); appType(err) != "Aborted" {
		t.Fatalf("result: %v", err)
	}
	if ready.Gate != model.GateReadyForDNS || ready.ApprovedBy != "lead" {
		t.Fatalf("after approval: %+v", ready)
	}
	if voided.Gate != model.GateBlocked || voided.ApprovedBy != "" {
		t.Fatalf("after a failing presync: gate %s approved by %q", voided.Gate, voided.ApprovedBy)
	}
	last := voided.Checks[len(voided.Checks)-1]
	if last.ID != model.CheckManualApproval || last.Status != model.CheckFail || !strings.Contains(last.Message, "voided") {
		t.Errorf("manual_approval = %+v", last)
	}
	if dns.Rejected == nil {
		t.Errorf("DNS accepted after the approval was voided")
	}
	if !strings.Contains(h.notes(), "approval by lead voided") {
		t.Errorf("notes:\n%s", h.notes())
	}
}

func TestPresyncScheduleAndCutoverTime(t *testing.T) {
	h := newHarness(t, syncDelays{})
	spec := testSpec(1)
	spec.Schedule.PresyncInterval = 0
	spec.Schedule.PresyncAt = "02:30"
	spec.Schedule.Timezone = "UTC"
	later := t0.Add(70 * time.Hour)
	var ready, back, cleared Status
	// t0 is 08:00: presyncs at 02:30 on the next days, the hour moved back and forth.
	h.at(40*time.Hour, func() {
		at := t0.Add(41 * time.Hour)
		h.env.SignalWorkflow(SetCutoverTime, Request{By: "ops", At: &at})
	})
	h.at(42*time.Hour, func() {
		ready = h.status()
		h.env.SignalWorkflow(SetCutoverTime, Request{By: "ops", At: &later})
	})
	h.at(43*time.Hour, func() { back = h.status(); h.env.SignalWorkflow(SetCutoverTime, Request{By: "ops"}) })
	h.at(44*time.Hour, func() { cleared = h.status() })
	h.at(67*time.Hour, func() { h.signal(Abort, "ops") })
	h.env.ExecuteWorkflow(WorkflowName, spec, nil)
	if _, err := h.result(); appType(err) != "Aborted" {
		t.Fatalf("result: %v", err)
	}
	var deltas []time.Time
	for _, c := range h.syncCalls() {
		if c.Req.RunType == model.RunDelta {
			deltas = append(deltas, c.At.UTC())
		}
	}
	want := []time.Time{time.Date(2026, 3, 3, 2, 30, 0, 0, time.UTC), time.Date(2026, 3, 4, 2, 30, 0, 0, time.UTC),
		time.Date(2026, 3, 5, 2, 30, 0, 0, time.UTC)}
	if !slices.EqualFunc(deltas, want, time.Time.Equal) {
		t.Errorf("presyncs at %v, want %v", deltas, want)
	}
	if ready.Phase != model.PhaseCutoverReady || ready.CutoverAt == nil || back.Phase != model.PhaseDeltaSync || !back.CutoverAt.Equal(later) ||
		cleared.CutoverAt != nil || cleared.NextPresyncAt == nil || !cleared.NextPresyncAt.Equal(want[2]) {
		t.Errorf("ready %s %v, back %s %v, cleared %v next %v", ready.Phase, ready.CutoverAt, back.Phase, back.CutoverAt, cleared.CutoverAt, cleared.NextPresyncAt)
	}
}

func TestBadSpecsFailBeforeAnythingStarts(t *testing.T) {
	spec := testSpec(1)
	spec.TenantID = 0
	h := newHarness(t, syncDelays{})
	h.env.ExecuteWorkflow(WorkflowName, spec, nil)
	if _, err := h.result(); appType(err) != mail.ErrTypeBadSpec || !strings.Contains(err.Error(), "tenant_id: required") {
		t.Errorf("invalid spec: %v", err)
	}

	h = newHarness(t, syncDelays{})
	spec = testSpec(1)
	spec.JobID = 7
	h.env.ExecuteWorkflow(WorkflowName, spec, nil)
	if _, err := h.result(); appType(err) != mail.ErrTypeBadSpec || !strings.Contains(err.Error(), `start it as "email-job-7"`) {
		t.Errorf("id mismatch: %v", err)
	}

	h = newHarness(t, syncDelays{})
	h.registerErr = permanent(mail.ErrTypeBadSpec, "job 42 (tenant 9, other.example) vs spec: job id already used")
	h.env.ExecuteWorkflow(WorkflowName, testSpec(1), nil)
	if _, err := h.result(); appType(err) != mail.ErrTypeBadSpec || len(h.mirrors) != 0 {
		t.Errorf("registration refused: %v, %d writes (must not touch a row that is not ours)", err, len(h.mirrors))
	}
}

func TestPreflightQuotaTooSmallFails(t *testing.T) {
	h2 := newHarness(t, syncDelays{})
	h2.preflightReport = func(spec mail.MailboxSpec) (mail.PreflightReport, error) {
		fs := folders()
		for i := range fs {
			fs[i].DestMessages, fs[i].DestBytes = 0, 0
		}
		return mail.PreflightReport{Folders: fs, DestQuotaLimit: 20000, DestQuotaUsed: 19000,
			Warnings: []string{"APPENDLIMIT 10 MB"}}, nil
	}
	var failed Status
	h2.at(time.Hour, func() { failed = h2.status(); h2.signal(Abort, "ops") })
	h2.env.ExecuteWorkflow(WorkflowName, testSpec(1), nil)
	if failed.FailedPhase != model.PhasePreflight || !strings.Contains(failed.LastError, "QuotaTooSmall") ||
		failed.Preflight == nil || failed.Preflight.Messages != 15 || len(failed.Preflight.Warnings) != 1 {
		t.Errorf("status = %+v", failed)
	}
}

// TestContinueAsNewWaitsForAnUpdateThatNeedsProgress: the DNS update answers once the job is
// past the cutover; a continue-as-new due meanwhile waits for it instead of deadlocking.
func TestContinueAsNewWaitsForAnUpdateThatNeedsProgress(t *testing.T) {
	h := newHarness(t, syncDelays{})
	h.at(7*time.Hour, func() { h.signal(Approve, "lead") })
	h.at(8*time.Hour, func() {
		now := h.env.Now()
		h.env.SignalWorkflow(SetCutoverTime, Request{By: "ops", At: &now})
	})
	var dns *updateOutcome
	h.at(9*time.Hour, func() {
		h.env.SetCurrentHistoryLength(DefaultHistoryLimit + 1) // due while waiting in cutover_ready
		dns = h.update(DNSCutoverConfirmed, Request{By: "lead"})
	})
	h.env.ExecuteWorkflow(WorkflowName, testSpec(1), nil)
	var can *workflow.ContinueAsNewError
	if err := h.env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("want continue-as-new, got %v", err)
	}
	if dns == nil || !dns.Done || dns.Err != nil || dns.Rejected != nil || dns.Ack.Phase != model.PhaseDNSCutover {
		t.Fatalf("DNS update = %+v", dns)
	}
	var spec jobspec.Spec
	var resume *Resume
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &spec, &resume); err != nil {
		t.Fatal(err)
	}
	if resume.State.Phase != model.PhaseDNSCutover || resume.State.DNSCutoverAt == nil {
		t.Errorf("carried state: phase %s dns %v", resume.State.Phase, resume.State.DNSCutoverAt)
	}
}
