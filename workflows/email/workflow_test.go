package email

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// TestWholePhaseMachine drives one job from discovered to closed: preflight, initial sync, three
// scheduled presyncs until the cutover hour, approval, DNS confirmation, final sync, verify,
// INBOX post-syncs during the soak, and closing when the soak ends.
func TestWholePhaseMachine(t *testing.T) {
	h := newHarness(t, syncDelays{initial: 30 * time.Minute, delta: 7 * time.Minute, final: 10 * time.Minute})
	spec := testSpec(3)
	cutover := t0.Add(20 * time.Hour)
	spec.Schedule.CutoverAt = &cutover

	var atCutoverReady, atDNS emailapi.Status
	h.at(19*time.Hour, func() { h.signal(emailapi.Approve, "lead") })
	h.at(20*time.Hour+30*time.Minute, func() { atCutoverReady = h.status() })
	var dns *updateOutcome
	h.at(21*time.Hour, func() { dns = h.update(emailapi.DNSCutoverConfirmed, emailapi.Request{By: "lead"}) })
	h.at(21*time.Hour+time.Minute, func() { atDNS = h.status() })
	h.env.ExecuteWorkflow(emailapi.WorkflowName, spec, nil)

	res, err := h.result()
	if err != nil {
		t.Fatal(err)
	}
	if res.Phase != model.PhaseClosed {
		t.Fatalf("res.Phase = %v, want model.PhaseClosed; final status = %+v", res.Phase, res)
	}
	if res.Presyncs != 3 {
		t.Fatalf("res.Presyncs = %v, want 3; final status = %+v", res.Presyncs, res)
	}
	if res.Gate != model.GateReadyForDNS {
		t.Fatalf("res.Gate = %v, want model.GateReadyForDNS; final status = %+v", res.Gate, res)
	}
	if res.ApprovedBy != "lead" {
		t.Fatalf("res.ApprovedBy = %v, want \"lead\"; final status = %+v", res.ApprovedBy, res)
	}
	if res.ClosedBy != "soak" {
		t.Fatalf("res.ClosedBy = %v, want \"soak\"; final status = %+v", res.ClosedBy, res)
	}
	if res.PostSyncs != 2 {
		t.Fatalf("res.PostSyncs = %v, want 2; final status = %+v", res.PostSyncs, res)
	}
	if res.FinalRounds != 1 {
		t.Fatalf("res.FinalRounds = %v, want 1; final status = %+v", res.FinalRounds, res)
	}
	if res.Verify == nil {
		t.Fatalf("res.Verify is nil; final status = %+v", res)
	}
	if !res.Verify.OK {
		t.Fatalf("res.Verify.OK is false; final status = %+v", res)
	}
	if res.PredictedFinalSyncSeconds < (7 * time.Minute).Seconds() {
		t.Errorf("res.PredictedFinalSyncSeconds: want >= (7*time.Minute).Seconds(); predicted final sync = %vs, want the last presync's 7m",
			res.PredictedFinalSyncSeconds)
	} else if res.PredictedFinalSyncSeconds > (8 * time.Minute).Seconds() {
		t.Errorf("res.PredictedFinalSyncSeconds: want <= (8*time.Minute).Seconds(); predicted final sync = %vs, want the last presync's 7m",
			res.PredictedFinalSyncSeconds)
	}
	if res.SyncPercent != 100 {
		t.Errorf("res.SyncPercent: want 100; progress = %v%% %v %+v",
			res.SyncPercent, res.MailboxCounts, res.MailboxDetails)
	} else if res.MailboxCounts[model.MailboxOK] != 3 {
		t.Errorf("res.MailboxCounts[model.MailboxOK] = %v, want 3; progress = %v%% %v %+v",
			res.MailboxCounts[model.MailboxOK], res.SyncPercent, res.MailboxCounts, res.MailboxDetails)
	} else if len(res.MailboxDetails) != 3 {
		t.Errorf("len(res.MailboxDetails) = %v, want 3; progress = %v%% %v %+v",
			len(res.MailboxDetails), res.SyncPercent, res.MailboxCounts, res.MailboxDetails)
	}
	want := []model.Phase{model.PhasePreflight, model.PhaseInitialSync, model.PhaseDeltaSync, model.PhaseCutoverReady,
		model.PhaseDNSCutover, model.PhaseFinalSync, model.PhaseVerified, model.PhaseClosed}
	if got := h.recordedPhases(); !slices.Equal(got, want) {
		t.Errorf("phases recorded in PostgreSQL = %v, want %v", got, want)
	}
	if atCutoverReady.Phase != model.PhaseCutoverReady {
		t.Errorf("atCutoverReady.Phase = %v, want model.PhaseCutoverReady; at the cutover hour: %+v",
			atCutoverReady.Phase, atCutoverReady)
	} else if atCutoverReady.State != "waiting" {
		t.Errorf("atCutoverReady.State = %v, want \"waiting\"; at the cutover hour: %+v",
			atCutoverReady.State, atCutoverReady)
	} else if atCutoverReady.Gate != model.GateReadyForDNS {
		t.Errorf("atCutoverReady.Gate = %v, want model.GateReadyForDNS; at the cutover hour: %+v",
			atCutoverReady.Gate, atCutoverReady)
	}
	if dns == nil {
		t.Errorf("dns is nil; dns update = %+v", dns)
	} else if !dns.Done {
		t.Errorf("dns.Done is false; dns update = %+v", dns)
	} else if dns.Rejected != nil {
		t.Errorf("dns.Rejected = %v, want nil; dns update = %+v", dns.Rejected, dns)
	} else if dns.Err != nil {
		t.Errorf("dns.Err = %v, want nil; dns update = %+v", dns.Err, dns)
	} else if !strings.Contains(dns.Ack.Message, "no mirror pass will run again") {
		t.Errorf("strings.Contains(dns.Ack.Message, \"no mirror pass will run again\") is false; dns update = %+v",
			dns)
	}
	if atDNS.Phase != model.PhaseDNSCutover {
		t.Errorf("atDNS.Phase = %v, want model.PhaseDNSCutover; after DNS confirmation: %+v", atDNS.Phase, atDNS)
	} else if atDNS.DNSCutoverBy != "lead" {
		t.Errorf("atDNS.DNSCutoverBy = %v, want \"lead\"; after DNS confirmation: %+v", atDNS.DNSCutoverBy, atDNS)
	} else if atDNS.DNSCutoverAt == nil {
		t.Errorf("atDNS.DNSCutoverAt is nil; after DNS confirmation: %+v", atDNS)
	}

	last := h.lastRecord().State
	if last.Phase != model.PhaseClosed {
		t.Errorf("last.Phase = %v, want model.PhaseClosed; last recorded state = %+v", last.Phase, last)
	} else if last.Gate != model.GateReadyForDNS {
		t.Errorf("last.Gate = %v, want model.GateReadyForDNS; last recorded state = %+v", last.Gate, last)
	} else if last.ApprovedBy != "lead" {
		t.Errorf("last.ApprovedBy = %v, want \"lead\"; last recorded state = %+v", last.ApprovedBy, last)
	} else if last.ApprovedAt == nil {
		t.Errorf("last.ApprovedAt is nil; last recorded state = %+v", last)
	} else if last.DNSCutoverAt == nil {
		t.Errorf("last.DNSCutoverAt is nil; last recorded state = %+v", last)
	} else if !last.DNSCutoverAt.Equal(t0.Add(21 * time.Hour)) {
		t.Errorf("last.DNSCutoverAt.Equal(t0.Add(21*time.Hour)) is false; last recorded state = %+v", last)
	} else if last.CutoverPlannedAt == nil {
		t.Errorf("last.CutoverPlannedAt is nil; last recorded state = %+v", last)
	} else if last.PredictedFinalSyncSeconds == nil {
		t.Errorf("last.PredictedFinalSyncSeconds is nil; last recorded state = %+v", last)
	} else if last.SyncPercent != 100 {
		t.Errorf("last.SyncPercent = %v, want 100; last recorded state = %+v", last.SyncPercent, last)
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
		if c.Req.Mode == model.ModeMirror && (c.Req.Phase.AfterDNSCutover() || !c.At.Before(dnsAt)) {
			t.Errorf("mirror pass after DNS cutover: %+v at %s", c.Req.Phase, c.At)
		}
		if c.Req.Phase.AfterDNSCutover() && c.Req.Mode != model.ModeCopy {
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
	for _, m := range h.records {
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
