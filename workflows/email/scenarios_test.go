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
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/email/emailapi"
	"github.com/cutover/cutover/workflows/email/jobspec"
)

// shortInbox returns stats where the INBOX is missing n messages on the destination.
func shortInbox(req emailapi.PassRequest, n int64) emailapi.PassStats {
	fs := folders()
	fs[0].DestMessages -= n
	return emailapi.PassStats{Mode: req.Mode, Folders: fs}
}

func permanent(typ, msg string) error {
	return temporal.NewNonRetryableApplicationError(msg, typ, nil)
}

func wantPhases(t *testing.T, h *harness, want ...model.Phase) {
	t.Helper()
	if got := h.recordedPhases(); !slices.Equal(got, want) {
		t.Errorf("phases recorded = %v\nwant %v", got, want)
	}
}

// TestUpdatesRefuseUntilTheGateAllows: approving a blocked gate and confirming DNS before
// ready_for_dns are rejected with the failing checks; once presyncs fix the facts, approval
// opens the gate and the DNS confirmation is accepted.
func TestUpdatesRefuseUntilTheGateAllows(t *testing.T) {
	h := newHarness(t, syncDelays{initial: 30 * time.Minute, delta: 10 * time.Minute})
	deltas := 0
	h.syncStats = func(req emailapi.PassRequest) (emailapi.PassStats, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		if req.RunType == model.RunDelta {
			deltas++
			if deltas <= 2 && req.Spec.Email == "u1@example.com" {
				return shortInbox(req, 5), nil
			}
		}
		return emailapi.PassStats{Mode: req.Mode, Folders: folders()}, nil
	}
	var blockedApprove, blockedDNS, warnDNS, approve, dns, early, closeU *updateOutcome
	var atBlocked, atWarning emailapi.Status
	h.at(10*time.Minute, func() { early = h.update(emailapi.Approve, emailapi.Request{By: "lead"}) }) // still in preflight/initial
	h.at(7*time.Hour, func() {
		atBlocked = h.status()
		blockedApprove = h.update(emailapi.Approve, emailapi.Request{By: "lead", Note: "looks fine"})
		blockedDNS = h.update(emailapi.DNSCutoverConfirmed, emailapi.Request{By: "lead"})
		h.signal(emailapi.Approve, "lead-by-signal")
	})
	h.at(13*time.Hour, func() {
		atWarning = h.status()
		warnDNS = h.update(emailapi.DNSCutoverConfirmed, emailapi.Request{By: "lead"})
		approve = h.update(emailapi.Approve, emailapi.Request{By: "lead", Note: "reviewed"})
	})
	h.at(14*time.Hour, func() { dns = h.update(emailapi.DNSCutoverConfirmed, emailapi.Request{By: "lead"}) })
	h.at(15*time.Hour, func() { closeU = h.update(emailapi.Close, emailapi.Request{By: "lead", Note: "users happy"}) })
	h.env.ExecuteWorkflow(emailapi.WorkflowName, testSpec(2), nil)

	res, err := h.result()
	if err != nil {
		t.Fatal(err)
	}
	if early.Rejected == nil || !strings.Contains(early.Rejected.Error(), "approve refused in phase") {
		t.Errorf("approve before the gate exists: %+v", early)
	}
	if atBlocked.Gate != model.GateBlocked {
		t.Errorf("atBlocked.Gate: want model.GateBlocked; after presync 1: gate %s presyncs %d",
			atBlocked.Gate, atBlocked.Presyncs)
	} else if atBlocked.Presyncs != 1 {
		t.Errorf("atBlocked.Presyncs: want 1; after presync 1: gate %s presyncs %d",
			atBlocked.Gate, atBlocked.Presyncs)
	}
	if e := blockedApprove.Rejected; e == nil || !strings.Contains(e.Error(), "gate is blocked") ||
		!strings.Contains(e.Error(), "inbox_complete fail: 1/2 mailboxes fail: u1@example.com: INBOX 5/10, 5 missing") {
		t.Errorf("approve of a blocked gate: %+v", blockedApprove)
	}
	if e := blockedDNS.Rejected; e == nil || !strings.Contains(e.Error(), "the gate is blocked, not ready_for_dns") {
		t.Errorf("DNS on a blocked gate: %+v", blockedDNS)
	}
	if atWarning.Gate != model.GateWarning {
		t.Errorf("atWarning.Gate: want model.GateWarning; at 13h: gate %s, refused %q",
			atWarning.Gate, atWarning.Refused)
	} else if len(atWarning.Refused) != 1 {
		t.Errorf("len(atWarning.Refused) = %v, want 1; at 13h: gate %s, refused %q",
			len(atWarning.Refused), atWarning.Gate, atWarning.Refused)
	} else if !strings.Contains(atWarning.Refused[0], `approve by "lead-by-signal" refused: approve refused: the gate is blocked`) {
		t.Errorf("strings.Contains(atWarning.Refused[0], `approve by \"lead-by-signal\" refused: approve refused: the gate is blocked`) is false; at 13h: gate %s, refused %q",
			atWarning.Gate, atWarning.Refused)
	}
	if e := warnDNS.Rejected; e == nil || !strings.Contains(e.Error(), "the gate is warning") || !strings.Contains(e.Error(), "manual_approval warn: awaiting ops-lead approval") {
		t.Errorf("DNS on a warning gate: %+v", warnDNS)
	}
	if approve.Rejected != nil {
		t.Errorf("approve.Rejected = %v, want nil; approve of a warning gate: %+v", approve.Rejected, approve)
	} else if approve.Err != nil {
		t.Errorf("approve.Err = %v, want nil; approve of a warning gate: %+v", approve.Err, approve)
	} else if approve.Ack.Gate != model.GateReadyForDNS {
		t.Errorf("approve.Ack.Gate = %v, want model.GateReadyForDNS; approve of a warning gate: %+v",
			approve.Ack.Gate, approve)
	} else if !strings.Contains(approve.Ack.Message, "approved by lead") {
		t.Errorf("strings.Contains(approve.Ack.Message, \"approved by lead\") is false; approve of a warning gate: %+v",
			approve)
	}
	if dns.Rejected != nil {
		t.Errorf("dns.Rejected = %v, want nil; DNS confirmation on ready_for_dns: %+v", dns.Rejected, dns)
	} else if dns.Err != nil {
		t.Errorf("dns.Err = %v, want nil; DNS confirmation on ready_for_dns: %+v", dns.Err, dns)
	} else if dns.Ack.Phase != model.PhaseDNSCutover {
		t.Errorf("dns.Ack.Phase = %v, want model.PhaseDNSCutover; DNS confirmation on ready_for_dns: %+v",
			dns.Ack.Phase, dns)
	}
	if closeU.Rejected != nil {
		t.Errorf("closeU.Rejected = %v, want nil; close: %+v; status %+v", closeU.Rejected, closeU, res)
	} else if res.Phase != model.PhaseClosed {
		t.Errorf("res.Phase = %v, want model.PhaseClosed; close: %+v; status %+v", res.Phase, closeU, res)
	} else if res.ClosedBy != "lead" {
		t.Errorf("res.ClosedBy = %v, want \"lead\"; close: %+v; status %+v", res.ClosedBy, closeU, res)
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
	h.at(time.Hour, func() { ack = h.update(emailapi.Abort, emailapi.Request{By: "ops", Note: "wrong domain"}) })
	h.env.ExecuteWorkflow(emailapi.WorkflowName, testSpec(3), nil)
	res, err := h.result()
	if appType(err) != "Aborted" || !strings.Contains(err.Error(), "aborted by ops: wrong domain") {
		t.Fatalf("result error = %v", err)
	}
	_ = res
	if ack == nil {
		t.Errorf("ack is nil; abort update = %+v", ack)
	} else if ack.Rejected != nil {
		t.Errorf("ack.Rejected = %v, want nil; abort update = %+v", ack.Rejected, ack)
	} else if ack.Err != nil {
		t.Errorf("ack.Err = %v, want nil; abort update = %+v", ack.Err, ack)
	}
	if d := h.env.Now().Sub(t0); d >= 2*time.Hour {
		t.Errorf("abort waited for the running passes to finish on their own (%s)", d)
	}
	last := h.lastRecord().State
	if last.Phase != model.PhaseFailed {
		t.Errorf("last.Phase = %v, want model.PhaseFailed; last recorded state = %+v", last.Phase, last)
	} else if last.FailedPhase != model.PhaseInitialSync {
		t.Errorf("last.FailedPhase = %v, want model.PhaseInitialSync; last recorded state = %+v",
			last.FailedPhase, last)
	} else if last.LastError != "aborted by ops: wrong domain" {
		t.Errorf("last.LastError = %v, want \"aborted by ops: wrong domain\"; last recorded state = %+v",
			last.LastError, last)
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
	h.preflightErr["u1@example.com"] = permanent(emailapi.ErrTypeAuthFailed, "LOGIN refused for u1@example.com")
	var failed emailapi.Status
	var early, retry *updateOutcome
	h.at(30*time.Minute, func() {
		failed = h.status()
		early = h.update(emailapi.Approve, emailapi.Request{By: "lead"})
		h.mu.Lock()
		delete(h.preflightErr, "u1@example.com") // the operator fixed the credentials
		h.mu.Unlock()
		retry = h.update(emailapi.Retry, emailapi.Request{By: "ops"})
	})
	h.at(2*time.Hour, func() { h.signal(emailapi.Abort, "ops") })
	h.env.ExecuteWorkflow(emailapi.WorkflowName, testSpec(3), nil)
	_, err := h.result()
	if appType(err) != "Aborted" {
		t.Fatalf("result: %v", err)
	}
	if failed.Phase != model.PhaseFailed {
		t.Errorf("failed.Phase = %v, want model.PhaseFailed; failed status = %+v", failed.Phase, failed)
	} else if failed.FailedPhase != model.PhasePreflight {
		t.Errorf("failed.FailedPhase = %v, want model.PhasePreflight; failed status = %+v",
			failed.FailedPhase, failed)
	} else if failed.State != "failed" {
		t.Errorf("failed.State = %v, want \"failed\"; failed status = %+v", failed.State, failed)
	} else if !strings.Contains(failed.LastError, "u1@example.com: AuthFailed") {
		t.Errorf("strings.Contains(failed.LastError, \"u1@example.com: AuthFailed\") is false; failed status = %+v",
			failed)
	} else if failed.MailboxCounts[model.MailboxError] != 1 {
		t.Errorf("failed.MailboxCounts[model.MailboxError] = %v, want 1; failed status = %+v",
			failed.MailboxCounts[model.MailboxError], failed)
	}
	if early.Rejected == nil {
		t.Errorf("early.Rejected is nil; approve %+v retry %+v", early, retry)
	} else if retry.Rejected != nil {
		t.Errorf("retry.Rejected = %v, want nil; approve %+v retry %+v", retry.Rejected, early, retry)
	} else if retry.Err != nil {
		t.Errorf("retry.Err = %v, want nil; approve %+v retry %+v", retry.Err, early, retry)
	} else if !strings.Contains(retry.Ack.Message, "retrying from preflight") {
		t.Errorf("strings.Contains(retry.Ack.Message, \"retrying from preflight\") is false; approve %+v retry %+v",
			early, retry)
	}
	h.mu.Lock()
	attempts := h.preflight["u1@example.com"]
	marks := slices.Clone(h.marks)
	h.mu.Unlock()
	if attempts != 2 { // one (non-retryable) before the retry, one after
		t.Errorf("preflight attempts of u1 = %d, want 2", attempts)
	}
	if len(marks) != 1 {
		t.Errorf("len(marks) = %v, want 1; mailbox marks = %+v", len(marks), marks)
	} else if marks[0].Status != model.MailboxError {
		t.Errorf("marks[0].Status = %v, want model.MailboxError; mailbox marks = %+v", marks[0].Status, marks)
	} else if !strings.Contains(marks[0].LastError, "AuthFailed") {
		t.Errorf("strings.Contains(marks[0].LastError, \"AuthFailed\") is false; mailbox marks = %+v", marks)
	}
	wantPhases(t, h, model.PhasePreflight, model.PhaseFailed, model.PhasePreflight, model.PhaseInitialSync, model.PhaseDeltaSync, model.PhaseFailed)
}

// TestTransientFailuresRetryThenFailThePhase: a connection error is retried up to the spec's
// max_attempts; the other mailboxes still finish; the phase then fails naming the mailbox.
func TestTransientFailuresRetryThenFailThePhase(t *testing.T) {
	h := newHarness(t, syncDelays{})
	attempts := 0
	broken := true
	h.syncStats = func(req emailapi.PassRequest) (emailapi.PassStats, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		if req.Spec.Email == "u0@example.com" && broken {
			attempts++
			return emailapi.PassStats{}, temporal.NewApplicationError("dial old.example:143: connection refused", emailapi.ErrTypeConnect)
		}
		return emailapi.PassStats{Mode: req.Mode, Folders: folders()}, nil
	}
	spec := testSpec(3)
	spec.Retry = jobspec.Retry{MaxAttempts: 3, MaxInterval: jobspec.Duration(time.Minute)}
	var failed emailapi.Status
	h.at(time.Hour, func() {
		failed = h.status()
		h.mu.Lock()
		broken = false
		h.mu.Unlock()
		h.signal(emailapi.Retry, "ops")
	})
	h.at(3*time.Hour, func() { h.signal(emailapi.Abort, "ops") })
	h.env.ExecuteWorkflow(emailapi.WorkflowName, spec, nil)
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
	var after emailapi.Status
	h.at(5*time.Hour, func() { after = h.status(); h.signal(emailapi.Abort, "ops") })
	h.env.ExecuteWorkflow(emailapi.WorkflowName, spec, &Resume{Tuning: Tuning{PageSize: 2, ContinueAfter: 2}})
	if _, err := h.result(); appType(err) != "Aborted" {
		t.Fatalf("result: %v", err)
	}
	lp := after.LastPass
	if lp == nil {
		t.Fatalf("lp is nil; initial pass = %+v", lp)
	}
	if lp.RunType != model.RunInitial {
		t.Fatalf("lp.RunType = %v, want model.RunInitial; initial pass = %+v", lp.RunType, lp)
	}
	if lp.Mailboxes != 5 {
		t.Fatalf("lp.Mailboxes = %v, want 5; initial pass = %+v", lp.Mailboxes, lp)
	}
	if lp.Runs != 3 {
		t.Fatalf("lp.Runs = %v, want 3; initial pass = %+v", lp.Runs, lp)
	}
	if lp.Failed != 0 {
		t.Fatalf("lp.Failed = %v, want 0; initial pass = %+v", lp.Failed, lp)
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
	h.at(8*time.Hour, func() { h.signal(emailapi.Approve, "lead") })
	h.at(9*time.Hour, func() { h.env.SetCurrentHistoryLength(DefaultHistoryLimit + 1) })
	h.env.ExecuteWorkflow(emailapi.WorkflowName, testSpec(3), nil)
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
	if len(spec.Mailboxes) != 0 {
		t.Fatalf("len(spec.Mailboxes) = %v, want 0; carried spec %+v state %+v", len(spec.Mailboxes), spec, st)
	}
	if spec.MailboxCount != 3 {
		t.Fatalf("spec.MailboxCount = %v, want 3; carried spec %+v state %+v", spec.MailboxCount, spec, st)
	}
	if st == nil {
		t.Fatalf("st is nil; carried spec %+v state %+v", spec, st)
	}
	if st.Phase != model.PhaseDeltaSync {
		t.Fatalf("st.Phase = %v, want model.PhaseDeltaSync; carried spec %+v state %+v", st.Phase, spec, st)
	}
	if st.Presyncs != 2 {
		t.Fatalf("st.Presyncs = %v, want 2; carried spec %+v state %+v", st.Presyncs, spec, st)
	}
	if st.Approval == nil {
		t.Fatalf("st.Approval is nil; carried spec %+v state %+v", spec, st)
	}
	if st.Gate != model.GateReadyForDNS {
		t.Fatalf("st.Gate = %v, want model.GateReadyForDNS; carried spec %+v state %+v", st.Gate, spec, st)
	}
	if !st.Registered {
		t.Fatalf("st.Registered is false; carried spec %+v state %+v", spec, st)
	}
	if st.WaveSeq != 4 {
		t.Fatalf("st.WaveSeq = %v, want 4; carried spec %+v state %+v", st.WaveSeq, spec, st)
	}
	mirrorsBefore := len(h.records)

	// The next run, on a fresh environment sharing the fakes.
	h2 := newHarness(t, syncDelays{delta: 7 * time.Minute, final: 10 * time.Minute})
	h2.mailboxes = h.mailboxes
	h2.env.SetStartTime(h.env.Now())
	h2.at(time.Hour, func() { h2.signal(emailapi.DNSCutoverConfirmed, "lead") })
	h2.at(2*time.Hour, func() { h2.signal(emailapi.Close, "lead") })
	h2.env.ExecuteWorkflow(emailapi.WorkflowName, spec, resume)
	res, err := h2.result()
	if err != nil {
		t.Fatal(err)
	}
	if res.Phase != model.PhaseClosed {
		t.Errorf("res.Phase = %v, want model.PhaseClosed; after continue-as-new: %+v", res.Phase, res)
	} else if res.ContinuedRuns != 1 {
		t.Errorf("res.ContinuedRuns = %v, want 1; after continue-as-new: %+v", res.ContinuedRuns, res)
	} else if res.Presyncs != 2 {
		t.Errorf("res.Presyncs = %v, want 2; after continue-as-new: %+v", res.Presyncs, res)
	} else if res.ApprovedBy != "lead" {
		t.Errorf("res.ApprovedBy = %v, want \"lead\"; after continue-as-new: %+v", res.ApprovedBy, res)
	}
	if mirrorsBefore == 0 {
		t.Errorf("mirrorsBefore = %v, want != 0; second run's first write = %v", mirrorsBefore, h2.recordedPhases())
	} else if h2.recordedPhases()[0] != model.PhaseDeltaSync {
		t.Errorf("want h2.recordedPhases()[0] == model.PhaseDeltaSync; second run's first write = %v",
			h2.recordedPhases())
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
	h.at(9*time.Hour, func() { h.signal(emailapi.Approve, "lead") })
	dnsAt := 15 * time.Hour // presync 2 runs from 14:30 to 16:30
	var during emailapi.Status
	var dns *updateOutcome
	h.at(dnsAt-time.Minute, func() { during = h.status() })
	var after emailapi.Status
	h.at(dnsAt, func() { dns = h.update(emailapi.DNSCutoverConfirmed, emailapi.Request{By: "lead"}) })
	h.at(dnsAt+time.Second, func() { after = h.status() })
	h.at(dnsAt+3*time.Hour, func() { h.signal(emailapi.Close, "lead") })
	h.env.ExecuteWorkflow(emailapi.WorkflowName, testSpec(2), nil)
	res, err := h.result()
	if err != nil {
		t.Fatal(err)
	}
	if during.CurrentPass == nil {
		t.Fatalf("during.CurrentPass is nil; no mirror presync running at the confirmation: %+v", during.CurrentPass)
	}
	if during.CurrentPass.Mode != "mirror" {
		t.Fatalf("during.CurrentPass.Mode = %v, want \"mirror\"; no mirror presync running at the confirmation: %+v",
			during.CurrentPass.Mode, during.CurrentPass)
	}
	if dns == nil {
		t.Fatalf("dns is nil; dns update = %+v", dns)
	}
	if !dns.Done {
		t.Fatalf("dns.Done is false; dns update = %+v", dns)
	}
	if dns.Rejected != nil {
		t.Fatalf("dns.Rejected = %v, want nil; dns update = %+v", dns.Rejected, dns)
	}
	if dns.Err != nil {
		t.Fatalf("dns.Err = %v, want nil; dns update = %+v", dns.Err, dns)
	}
	// The answer comes once the job is past the cutover, i.e. after the presync stopped.
	if dns.Ack.Phase != model.PhaseDNSCutover {
		t.Errorf("dns.Ack.Phase = %v, want model.PhaseDNSCutover; DNS answer %+v; pass after it %+v",
			dns.Ack.Phase, dns.Ack, after.LastPass)
	} else if after.LastPass == nil {
		t.Errorf("after.LastPass is nil; DNS answer %+v; pass after it %+v", dns.Ack, after.LastPass)
	} else if !after.LastPass.Canceled {
		t.Errorf("after.LastPass.Canceled is false; DNS answer %+v; pass after it %+v", dns.Ack, after.LastPass)
	} else if after.LastPass.Mode != "mirror" {
		t.Errorf("after.LastPass.Mode = %v, want \"mirror\"; DNS answer %+v; pass after it %+v",
			after.LastPass.Mode, dns.Ack, after.LastPass)
	}
	if res.Phase != model.PhaseClosed {
		t.Errorf("res.Phase: want model.PhaseClosed; status = phase %s presyncs %d", res.Phase, res.Presyncs)
	} else if res.Presyncs != 1 {
		t.Errorf("res.Presyncs: want 1; status = phase %s presyncs %d", res.Phase, res.Presyncs)
	}
	mirrors := 0
	for _, c := range h.syncCalls() {
		if c.Req.Mode == model.ModeMirror {
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
	ms := emailjob.MailboxSpec(spec, testJob, 10, spec.Mailboxes[0])
	for _, tc := range []struct {
		name    string
		task    emailapi.Task
		refused bool
	}{
		{"mirror in final_sync", emailapi.Task{Kind: emailapi.TaskSync, Mode: model.ModeMirror, RunType: model.RunFinal, Phase: model.PhaseFinalSync}, true},
		{"mirror in verified", emailapi.Task{Kind: emailapi.TaskSync, Mode: model.ModeMirror, RunType: model.RunDelta, Phase: model.PhaseVerified}, true},
		{"mirror in delta_sync after DNS", emailapi.Task{Kind: emailapi.TaskSync, Mode: model.ModeMirror, RunType: model.RunDelta, Phase: model.PhaseDeltaSync, CutOver: true}, true},
		{"mirror in a failed job", emailapi.Task{Kind: emailapi.TaskSync, Mode: model.ModeMirror, RunType: model.RunDelta, Phase: model.PhaseFailed}, true},
		{"mirror in delta_sync", emailapi.Task{Kind: emailapi.TaskSync, Mode: model.ModeMirror, RunType: model.RunDelta, Phase: model.PhaseDeltaSync}, false},
		{"copy in final_sync", emailapi.Task{Kind: emailapi.TaskSync, Mode: model.ModeCopy, RunType: model.RunFinal, Phase: model.PhaseFinalSync}, false},
		{"strict mirror in final_sync", emailapi.Task{Kind: emailapi.TaskSync, Mode: model.ModeStrictMirror, RunType: model.RunFinal, Phase: model.PhaseFinalSync}, true},
		{"strict mirror after DNS", emailapi.Task{Kind: emailapi.TaskSync, Mode: model.ModeStrictMirror, RunType: model.RunDelta, Phase: model.PhaseDeltaSync, CutOver: true}, true},
		{"strict mirror in delta_sync", emailapi.Task{Kind: emailapi.TaskSync, Mode: model.ModeStrictMirror, RunType: model.RunDelta, Phase: model.PhaseDeltaSync}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, wf := range []string{emailapi.MailboxWorkflowName, emailapi.WaveWorkflowName} {
				h := newHarness(t, syncDelays{})
				h.mailboxes = []emailapi.MailboxSpec{ms}
				if wf == emailapi.MailboxWorkflowName {
					h.env.ExecuteWorkflow(wf, MailboxInput{Task: tc.task, Spec: ms})
				} else {
					h.env.ExecuteWorkflow(wf, WaveInput{Spec: spec, Task: tc.task, Concurrency: 1})
				}
				err := h.env.GetWorkflowError()
				calls := len(h.syncCalls())
				if tc.refused {
					if appType(err) != emailapi.ErrTypeMirrorAfterCutover {
						t.Errorf("want appType(err) == emailapi.ErrTypeMirrorAfterCutover; %s: err %v, %d engine calls; want refusal before the engine",
							wf, err, calls)
					} else if calls != 0 {
						t.Errorf("calls: want 0; %s: err %v, %d engine calls; want refusal before the engine", wf, err, calls)
					}
				} else if err != nil {
					t.Errorf("err: want nil; %s: err %v, %d engine calls", wf, err, calls)
				} else if calls != 1 {
					t.Errorf("calls: want 1; %s: err %v, %d engine calls", wf, err, calls)
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
	h.existing = &emailapi.Registration{JobID: testJob, Existing: &emailapi.JobProgress{
		ID: testJob, Phase: model.PhaseFailed, Gate: model.GateReadyForDNS, ApprovedBy: &by, ApprovedAt: &dnsAt,
		DNSCutoverAt: &dnsAt, FailedPhase: model.PhaseDeltaSync}}
	h.at(time.Hour, func() { h.signal(emailapi.Close, "lead") })
	h.env.ExecuteWorkflow(emailapi.WorkflowName, testSpec(2), nil)
	res, err := h.result()
	if err != nil {
		t.Fatal(err)
	}
	if res.Phase != model.PhaseClosed {
		t.Errorf("res.Phase = %v, want model.PhaseClosed; status = %+v", res.Phase, res)
	} else if res.DNSCutoverAt == nil {
		t.Errorf("res.DNSCutoverAt is nil; status = %+v", res)
	} else if !res.DNSCutoverAt.Equal(dnsAt) {
		t.Errorf("res.DNSCutoverAt.Equal(dnsAt) is false; status = %+v", res)
	} else if res.ApprovedBy != "lead" {
		t.Errorf("res.ApprovedBy = %v, want \"lead\"; status = %+v", res.ApprovedBy, res)
	}
	wantPhases(t, h, model.PhaseDNSCutover, model.PhaseFinalSync, model.PhaseVerified, model.PhaseClosed)
	for _, c := range h.syncCalls() {
		if c.Req.Mode != model.ModeCopy {
			t.Errorf("pass %+v after a recorded cutover", c.Req)
		}
	}

	h = newHarness(t, syncDelays{})
	h.existing = &emailapi.Registration{JobID: testJob, Existing: &emailapi.JobProgress{ID: testJob, Phase: model.PhaseClosed}}
	h.env.ExecuteWorkflow(emailapi.WorkflowName, testSpec(2), nil)
	if _, err := h.result(); appType(err) != "JobClosed" {
		t.Errorf("want appType(err) == \"JobClosed\"; restart of a closed job: %v, %d writes", err, len(h.records))
	} else if len(h.records) != 0 {
		t.Errorf("len(h.records): want 0; restart of a closed job: %v, %d writes", err, len(h.records))
	}
}

// TestVerifyMissingRunsMoreRoundsThenFails: verified only with nothing missing; after the
// configured rounds the job fails in final_sync, and a retry resumes there.
func TestVerifyMissingRunsMoreRoundsThenFails(t *testing.T) {
	h := newHarness(t, syncDelays{})
	missing := true
	h.verifyReport = func(spec emailapi.MailboxSpec) (emailapi.VerifyReport, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		if missing && spec.Email == "u0@example.com" {
			return emailapi.VerifyReport{Missing: 2, Folders: []emailapi.FolderDiff{{Source: "INBOX", SourceMessages: 10, DestMessages: 8, Missing: 2,
				Samples: []string{"<m1@x> 2026-01-01", "<m2@x> 2026-01-02"}}}}, nil
		}
		return emailapi.VerifyReport{OK: true}, nil
	}
	spec := testSpec(2)
	spec.Schedule.FinalSyncRounds = 2
	h.at(7*time.Hour, func() { h.signal(emailapi.Approve, "lead") })
	h.at(8*time.Hour, func() { h.signal(emailapi.DNSCutoverConfirmed, "lead") })
	var failed emailapi.Status
	var presync *updateOutcome
	h.at(10*time.Hour, func() {
		failed = h.status()
		presync = h.update(emailapi.PresyncNow, emailapi.Request{By: "ops"})
		h.mu.Lock()
		missing = false
		h.mu.Unlock()
		h.signal(emailapi.Retry, "ops")
	})
	h.at(11*time.Hour, func() { h.signal(emailapi.Close, "lead") })
	h.env.ExecuteWorkflow(emailapi.WorkflowName, spec, nil)
	res, err := h.result()
	if err != nil {
		t.Fatal(err)
	}
	if failed.Phase != model.PhaseFailed {
		t.Errorf("failed.Phase = %v, want model.PhaseFailed; failed = %+v", failed.Phase, failed)
	} else if failed.FailedPhase != model.PhaseFinalSync {
		t.Errorf("failed.FailedPhase = %v, want model.PhaseFinalSync; failed = %+v", failed.FailedPhase, failed)
	} else if failed.FinalRounds != 2 {
		t.Errorf("failed.FinalRounds = %v, want 2; failed = %+v", failed.FinalRounds, failed)
	} else if !strings.Contains(failed.LastError, "verify: 2 message(s) missing outside quarantine after 2 final-sync round(s): u0@example.com INBOX: <m1@x>") {
		t.Errorf("strings.Contains(failed.LastError, \"verify: 2 message(s) missing outside quarantine after 2 final-sync round(s): u0@example.com INBOX: <m1@x>\") is false; failed = %+v",
			failed)
	}
	if presync.Rejected == nil || !strings.Contains(presync.Rejected.Error(), "no presync after DNS cutover") {
		t.Errorf("presync after cutover: %+v", presync)
	}
	if res.Phase != model.PhaseClosed {
		t.Errorf("res.Phase = %v, want model.PhaseClosed; status = %+v", res.Phase, res)
	} else if res.Verify == nil {
		t.Errorf("res.Verify is nil; status = %+v", res)
	} else if !res.Verify.OK {
		t.Errorf("res.Verify.OK is false; status = %+v", res)
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
	h.syncStats = func(req emailapi.PassRequest) (emailapi.PassStats, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		if req.RunType == model.RunDelta && req.Spec.Email == "u1@example.com" {
			deltas++
			if deltas == 1 {
				return emailapi.PassStats{}, permanent(emailapi.ErrTypeCredentialsUnavailable, "credentials_ref unknown")
			}
		}
		return emailapi.PassStats{Mode: req.Mode, Folders: folders()}, nil
	}
	var blocked, clean emailapi.Status
	h.at(7*time.Hour, func() { blocked = h.status() })
	h.at(13*time.Hour, func() { clean = h.status(); h.signal(emailapi.Abort, "ops") })
	h.env.ExecuteWorkflow(emailapi.WorkflowName, testSpec(2), nil)
	if _, err := h.result(); appType(err) != "Aborted" {
		t.Fatalf("result: %v", err)
	}
	if blocked.Phase != model.PhaseDeltaSync {
		t.Fatalf("blocked.Phase = %v, want model.PhaseDeltaSync; after the failing presync: %+v",
			blocked.Phase, blocked)
	}
	if blocked.Gate != model.GateBlocked {
		t.Fatalf("blocked.Gate = %v, want model.GateBlocked; after the failing presync: %+v", blocked.Gate, blocked)
	}
	if blocked.MailboxCounts[model.MailboxError] != 1 {
		t.Fatalf("blocked.MailboxCounts[model.MailboxError] = %v, want 1; after the failing presync: %+v",
			blocked.MailboxCounts[model.MailboxError], blocked)
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
	if clean.Gate != model.GateWarning {
		t.Errorf("clean.Gate: want model.GateWarning; after a clean presync: gate %s presyncs %d",
			clean.Gate, clean.Presyncs)
	} else if clean.Presyncs != 2 {
		t.Errorf("clean.Presyncs: want 2; after a clean presync: gate %s presyncs %d", clean.Gate, clean.Presyncs)
	}
}

// TestApprovalVoidedWhenChecksFail: an approval stands only while no check fails.
func TestApprovalVoidedWhenChecksFail(t *testing.T) {
	h := newHarness(t, syncDelays{})
	deltas := 0
	h.syncStats = func(req emailapi.PassRequest) (emailapi.PassStats, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		if req.RunType == model.RunDelta {
			deltas++
			if deltas == 3 { // presync 2, first mailbox
				return shortInbox(req, 4), nil
			}
		}
		return emailapi.PassStats{Mode: req.Mode, Folders: folders()}, nil
	}
	var ready, voided emailapi.Status
	h.at(7*time.Hour, func() { h.signal(emailapi.Approve, "lead") })
	h.at(8*time.Hour, func() { ready = h.status() })
	var dns *updateOutcome
	h.at(13*time.Hour, func() {
		voided = h.status()
		dns = h.update(emailapi.DNSCutoverConfirmed, emailapi.Request{By: "lead"})
		h.signal(emailapi.Abort, "ops")
	})
	h.env.ExecuteWorkflow(emailapi.WorkflowName, testSpec(2), nil)
	if _, err := h.result(); appType(err) != "Aborted" {
		t.Fatalf("result: %v", err)
	}
	if ready.Gate != model.GateReadyForDNS {
		t.Fatalf("ready.Gate = %v, want model.GateReadyForDNS; after approval: %+v", ready.Gate, ready)
	}
	if ready.ApprovedBy != "lead" {
		t.Fatalf("ready.ApprovedBy = %v, want \"lead\"; after approval: %+v", ready.ApprovedBy, ready)
	}
	if voided.Gate != model.GateBlocked {
		t.Fatalf("voided.Gate: want model.GateBlocked; after a failing presync: gate %s approved by %q",
			voided.Gate, voided.ApprovedBy)
	}
	if voided.ApprovedBy != "" {
		t.Fatalf("voided.ApprovedBy: want \"\"; after a failing presync: gate %s approved by %q",
			voided.Gate, voided.ApprovedBy)
	}
	last := voided.Checks[len(voided.Checks)-1]
	if last.ID != model.CheckManualApproval {
		t.Errorf("last.ID = %v, want model.CheckManualApproval; manual_approval = %+v", last.ID, last)
	} else if last.Status != model.CheckFail {
		t.Errorf("last.Status = %v, want model.CheckFail; manual_approval = %+v", last.Status, last)
	} else if !strings.Contains(last.Message, "voided") {
		t.Errorf("strings.Contains(last.Message, \"voided\") is false; manual_approval = %+v", last)
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
	var ready, back, cleared emailapi.Status
	// t0 is 08:00: presyncs at 02:30 on the next days, the hour moved back and forth.
	h.at(40*time.Hour, func() {
		at := t0.Add(41 * time.Hour)
		h.env.SignalWorkflow(emailapi.SetCutoverTime, emailapi.Request{By: "ops", At: &at})
	})
	h.at(42*time.Hour, func() {
		ready = h.status()
		h.env.SignalWorkflow(emailapi.SetCutoverTime, emailapi.Request{By: "ops", At: &later})
	})
	h.at(43*time.Hour, func() { back = h.status(); h.env.SignalWorkflow(emailapi.SetCutoverTime, emailapi.Request{By: "ops"}) })
	h.at(44*time.Hour, func() { cleared = h.status() })
	h.at(67*time.Hour, func() { h.signal(emailapi.Abort, "ops") })
	h.env.ExecuteWorkflow(emailapi.WorkflowName, spec, nil)
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
	if ready.Phase != model.PhaseCutoverReady {
		t.Errorf("ready.Phase: want model.PhaseCutoverReady; ready %s %v, back %s %v, cleared %v next %v",
			ready.Phase, ready.CutoverAt, back.Phase, back.CutoverAt, cleared.CutoverAt, cleared.NextPresyncAt)
	} else if ready.CutoverAt == nil {
		t.Errorf("ready.CutoverAt is nil; ready %s %v, back %s %v, cleared %v next %v",
			ready.Phase, ready.CutoverAt, back.Phase, back.CutoverAt, cleared.CutoverAt, cleared.NextPresyncAt)
	} else if back.Phase != model.PhaseDeltaSync {
		t.Errorf("back.Phase: want model.PhaseDeltaSync; ready %s %v, back %s %v, cleared %v next %v",
			ready.Phase, ready.CutoverAt, back.Phase, back.CutoverAt, cleared.CutoverAt, cleared.NextPresyncAt)
	} else if !back.CutoverAt.Equal(later) {
		t.Errorf("back.CutoverAt.Equal(later) is false; ready %s %v, back %s %v, cleared %v next %v",
			ready.Phase, ready.CutoverAt, back.Phase, back.CutoverAt, cleared.CutoverAt, cleared.NextPresyncAt)
	} else if cleared.CutoverAt != nil {
		t.Errorf("cleared.CutoverAt: want nil; ready %s %v, back %s %v, cleared %v next %v",
			ready.Phase, ready.CutoverAt, back.Phase, back.CutoverAt, cleared.CutoverAt, cleared.NextPresyncAt)
	} else if cleared.NextPresyncAt == nil {
		t.Errorf("cleared.NextPresyncAt is nil; ready %s %v, back %s %v, cleared %v next %v",
			ready.Phase, ready.CutoverAt, back.Phase, back.CutoverAt, cleared.CutoverAt, cleared.NextPresyncAt)
	} else if !cleared.NextPresyncAt.Equal(want[2]) {
		t.Errorf("cleared.NextPresyncAt.Equal(want[2]) is false; ready %s %v, back %s %v, cleared %v next %v",
			ready.Phase, ready.CutoverAt, back.Phase, back.CutoverAt, cleared.CutoverAt, cleared.NextPresyncAt)
	}
}

func TestBadSpecsFailBeforeAnythingStarts(t *testing.T) {
	spec := testSpec(1)
	spec.TenantID = 0
	h := newHarness(t, syncDelays{})
	h.env.ExecuteWorkflow(emailapi.WorkflowName, spec, nil)
	if _, err := h.result(); appType(err) != emailapi.ErrTypeBadSpec || !strings.Contains(err.Error(), "tenant_id: required") {
		t.Errorf("invalid spec: %v", err)
	}

	h = newHarness(t, syncDelays{})
	spec = testSpec(1)
	spec.JobID = 7
	h.env.ExecuteWorkflow(emailapi.WorkflowName, spec, nil)
	if _, err := h.result(); appType(err) != emailapi.ErrTypeBadSpec || !strings.Contains(err.Error(), `start it as "email-job-7"`) {
		t.Errorf("id mismatch: %v", err)
	}

	h = newHarness(t, syncDelays{})
	h.registerErr = permanent(emailapi.ErrTypeBadSpec, "job 42 (tenant 9, other.example) vs spec: job id already used")
	h.env.ExecuteWorkflow(emailapi.WorkflowName, testSpec(1), nil)
	if _, err := h.result(); appType(err) != emailapi.ErrTypeBadSpec {
		t.Errorf("want appType(err) == emailapi.ErrTypeBadSpec; registration refused: %v, %d writes (must not touch a row that is not ours)",
			err, len(h.records))
	} else if len(h.records) != 0 {
		t.Errorf("len(h.records): want 0; registration refused: %v, %d writes (must not touch a row that is not ours)",
			err, len(h.records))
	}
}

func TestPreflightQuotaTooSmallFails(t *testing.T) {
	h2 := newHarness(t, syncDelays{})
	h2.preflightReport = func(spec emailapi.MailboxSpec) (emailapi.PreflightReport, error) {
		fs := folders()
		for i := range fs {
			fs[i].DestMessages, fs[i].DestBytes = 0, 0
		}
		return emailapi.PreflightReport{Folders: fs, DestQuotaLimit: 20000, DestQuotaUsed: 19000,
			Warnings: []string{"APPENDLIMIT 10 MB"}}, nil
	}
	var failed emailapi.Status
	h2.at(time.Hour, func() { failed = h2.status(); h2.signal(emailapi.Abort, "ops") })
	h2.env.ExecuteWorkflow(emailapi.WorkflowName, testSpec(1), nil)
	if failed.FailedPhase != model.PhasePreflight {
		t.Errorf("failed.FailedPhase = %v, want model.PhasePreflight; status = %+v", failed.FailedPhase, failed)
	} else if !strings.Contains(failed.LastError, "QuotaTooSmall") {
		t.Errorf("strings.Contains(failed.LastError, \"QuotaTooSmall\") is false; status = %+v", failed)
	} else if failed.Preflight == nil {
		t.Errorf("failed.Preflight is nil; status = %+v", failed)
	} else if failed.Preflight.Messages != 15 {
		t.Errorf("failed.Preflight.Messages = %v, want 15; status = %+v", failed.Preflight.Messages, failed)
	} else if len(failed.Preflight.Warnings) != 1 {
		t.Errorf("len(failed.Preflight.Warnings) = %v, want 1; status = %+v", len(failed.Preflight.Warnings), failed)
	}
}

// TestContinueAsNewWaitsForAnUpdateThatNeedsProgress: the DNS update answers once the job is
// past the cutover; a continue-as-new due meanwhile waits for it instead of deadlocking.
func TestContinueAsNewWaitsForAnUpdateThatNeedsProgress(t *testing.T) {
	h := newHarness(t, syncDelays{})
	h.at(7*time.Hour, func() { h.signal(emailapi.Approve, "lead") })
	h.at(8*time.Hour, func() {
		now := h.env.Now()
		h.env.SignalWorkflow(emailapi.SetCutoverTime, emailapi.Request{By: "ops", At: &now})
	})
	var dns *updateOutcome
	h.at(9*time.Hour, func() {
		h.env.SetCurrentHistoryLength(DefaultHistoryLimit + 1) // due while waiting in cutover_ready
		dns = h.update(emailapi.DNSCutoverConfirmed, emailapi.Request{By: "lead"})
	})
	h.env.ExecuteWorkflow(emailapi.WorkflowName, testSpec(1), nil)
	var can *workflow.ContinueAsNewError
	if err := h.env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("want continue-as-new, got %v", err)
	}
	if dns == nil {
		t.Fatalf("dns is nil; DNS update = %+v", dns)
	}
	if !dns.Done {
		t.Fatalf("dns.Done is false; DNS update = %+v", dns)
	}
	if dns.Err != nil {
		t.Fatalf("dns.Err = %v, want nil; DNS update = %+v", dns.Err, dns)
	}
	if dns.Rejected != nil {
		t.Fatalf("dns.Rejected = %v, want nil; DNS update = %+v", dns.Rejected, dns)
	}
	if dns.Ack.Phase != model.PhaseDNSCutover {
		t.Fatalf("dns.Ack.Phase = %v, want model.PhaseDNSCutover; DNS update = %+v", dns.Ack.Phase, dns)
	}
	var spec jobspec.Spec
	var resume *Resume
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &spec, &resume); err != nil {
		t.Fatal(err)
	}
	if resume.State.Phase != model.PhaseDNSCutover {
		t.Errorf("resume.State.Phase: want model.PhaseDNSCutover; carried state: phase %s dns %v",
			resume.State.Phase, resume.State.DNSCutoverAt)
	} else if resume.State.DNSCutoverAt == nil {
		t.Errorf("resume.State.DNSCutoverAt is nil; carried state: phase %s dns %v",
			resume.State.Phase, resume.State.DNSCutoverAt)
	}
}
