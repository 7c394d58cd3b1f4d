package email

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/cutover/cutover/activities/mail"
	"github.com/cutover/cutover/internal/model"
)

// TestWholePhaseMachine drives one job from discovered to closed: preflight, initial sync, three
// scheduled presyncs until the cutover hour, approval, DNS confirmation, final sync, verify,
// INBOX post-syncs during the soak, and closing when the soak ends.
func TestWholePhaseMachine(t *testing.T) {
	h := newHarness(t, syncDelays{initial: 30 * time.Minute, delta: 7 * time.Minute, final: 10 * time.Minute})
	spec := testSpec(3)
	cutover := t0.Add(20 * time.Hour)
	spec.Schedule.CutoverAt = &cutover

	var atCutoverReady, atDNS Status
	h.at(19*time.Hour, func() { h.signal(Approve, "lead") })
	h.at(20*time.Hour+30*time.Minute, func() { atCutoverReady = h.status() })
	var dns *updateOutcome
	h.at(21*time.Hour, func() { dns = h.update(DNSCutoverConfirmed, Request{By: "lead"}) })
	h.at(21*time.Hour+time.Minute, func() { atDNS = h.status() })
	h.env.ExecuteWorkflow(WorkflowName, spec, nil)

	res, err := h.result()
	if err != nil {
		t.Fatal(err)
	}
	if res.Phase != model.PhaseClosed || res.Presyncs != 3 || res.Gate != model.GateReadyForDNS || res.ApprovedBy != "lead" ||
		res.ClosedBy != "soak" || res.PostSyncs != 2 || res.FinalRounds != 1 || res.Verify == nil || !res.Verify.OK {
		t.Fatalf("final status = %+v", res)
	}
	if res.PredictedFinalSyncSeconds < (7*time.Minute).Seconds() || res.PredictedFinalSyncSeconds > (8*time.Minute).Seconds() {
		t.Errorf("predicted final sync = %vs, want the last presync's 7m", res.PredictedFinalSyncSeconds)
	}
	if res.SyncPercent != 100 || res.MailboxCounts[model.MailboxOK] != 3 || len(res.MailboxDetails) != 3 {
		t.Errorf("progress = %v%% %v %+v", res.SyncPercent, res.MailboxCounts, res.MailboxDetails)
	}
	want := []model.Phase{model.PhasePreflight, model.PhaseInitialSync, model.PhaseDeltaSync, model.PhaseCutoverReady,
		model.PhaseDNSCutover, model.PhaseFinalSync, model.PhaseVerified, model.PhaseClosed}
	if got := h.mirroredPhases(); !slices.Equal(got, want) {
		t.Errorf("phases mirrored to PostgreSQL = %v, want %v", got, want)
	}
	if atCutoverReady.Phase != model.PhaseCutoverReady || atCutoverReady.State != "waiting" || atCutoverReady.Gate != model.GateReadyForDNS {
		t.Errorf("at the cutover hour: %+v", atCutoverReady)
	}
	if dns == nil || !dns.Done || dns.Rejected != nil || dns.Err != nil || !strings.Contains(dns.Ack.Message, "no mirror pass will run again") {
		t.Errorf("dns update = %+v", dns)
	}
	if atDNS.Phase != model.PhaseDNSCutover || atDNS.DNSCutoverBy != "lead" || atDNS.DNSCutoverAt == nil {
		t.Errorf("after DNS confirmation: %+v", atDNS)
	}

	last := h.lastMirror().State
	if last.Phase != model.PhaseClosed || last.Gate != model.GateReadyForDNS || last.ApprovedBy != "lead" || last.ApprovedAt == nil ||
		last.DNSCutoverAt == nil || !last.DNSCutoverAt.Equal(t0.Add(21*time.Hour)) || last.CutoverPlannedAt == nil ||
		last.PredictedFinalSyncSeconds == nil || last.SyncPercent != 100 {
		t.Errorf("last mirrored state = %+v", last)
	}
	notes := h.notes()
	for _, n := range []string{"registered 3 mailboxes", "approved by lead", "DNS cutover confirmed by lead", "verified: nothing missing", "closed: soak period ended"} {
		if !strings.Contains(notes, n) {
			t.Errorf("notes lack %q:\n%s", n, notes)
		}
	}

	// Every pass, in order: the modes and the rule "no mirror after DNS cutover".
	counts := map[string]int{}
	dnsAt := t0.Add(21 * time.Hour)
	for _, c := range h.syncCalls() {
		key := string(c.Req.RunType) + "/" + string(c.Req.Mode)
		if len(c.Req.Spec.Include) > 0 {
			key += "/" + strings.Join(c.Req.Spec.Include, ",")
		}
		counts[key]++
		if c.Req.Mode == mail.ModeMirror && (c.Req.Phase.AfterDNSCutover() || !c.At.Before(dnsAt)) {
			t.Errorf("mirror pass after DNS cutover: %+v at %s", c.Req.Phase, c.At)
		}
		if c.Req.Phase.AfterDNSCutover() && c.Req.Mode != mail.ModeCopy {
			t.Errorf("pass in %s with mode %s", c.Req.Phase, c.Req.Mode)
		}
	}
	wantCounts := map[string]int{"initial/copy": 3, "delta/mirror": 9, "final/copy": 3, "delta/copy/(?i)^INBOX$": 6}
	for k, n := range wantCounts {
		if counts[k] != n {
			t.Errorf("%s passes = %d, want %d (all: %v)", k, counts[k], n, counts)
		}
	}
	if len(counts) != len(wantCounts) {
		t.Errorf("unexpected passes: %v", counts)
	}
	// The gate was written with every check each time it was evaluated.
	h.mu.Lock()
	evaluations := 0
	for _, m := range h.mirrors {
		if len(m.Checks) > 0 {
			evaluations++
			if len(m.Checks) != len(model.CheckIDs) {
				t.Errorf("gate written with %d checks", len(m.Checks))
			}
		}
	}
	h.mu.Unlock()
	if evaluations != 5 { // initial + 3 presyncs + approval
		t.Errorf("gate evaluations written = %d, want 5", evaluations)
	}
}

func appType(err error) string {
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		return ae.Type()
	}
	return ""
}
