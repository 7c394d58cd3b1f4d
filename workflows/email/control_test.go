package email

import (
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/email/emailapi"
	"github.com/cutover/cutover/workflows/email/gate"
)

// TestCommandsInEveryPhase is the accepted/refused table of every command in every phase (and
// the gate states that matter). Signals and updates share this validator: a refused signal is
// only recorded, a refused update is rejected with the same words.
func TestCommandsInEveryPhase(t *testing.T) {
	ts := t0
	summary := &gate.Summary{Mailboxes: 1}
	approval := &gate.Approval{By: "lead", At: "2026-03-02T08:00:00Z"}
	st := func(p model.Phase, g model.Gate, mod ...func(*State)) *State {
		s := &State{JobID: 1, Phase: p, Gate: g}
		if p.Index() >= model.PhaseDeltaSync.Index() && p != model.PhaseFailed {
			s.Summary = summary
		}
		if g == model.GateReadyForDNS {
			s.Approval = approval
		}
		if p.AfterDNSCutover() {
			s.DNSCutoverAt, s.DNSCutoverBy = &ts, "lead"
		}
		for _, m := range mod {
			m(s)
		}
		return s
	}
	// Columns: approve, dns_cutover_confirmed, retry, abort, set_cutover_time, close, presync_now.
	tests := []struct {
		name  string
		state *State
		want  string // A accepted, R refused
	}{
		{"discovered", st(model.PhaseDiscovered, model.GateBlocked), "RRRAARR"},
		{"preflight", st(model.PhasePreflight, model.GateBlocked), "RRRAARR"},
		{"initial_sync", st(model.PhaseInitialSync, model.GateBlocked), "RRRAARR"},
		{"delta_sync gate not evaluated", st(model.PhaseDeltaSync, model.GateBlocked, func(s *State) { s.Summary = nil }), "RRRAARA"},
		{"delta_sync blocked", st(model.PhaseDeltaSync, model.GateBlocked), "RRRAARA"},
		{"delta_sync warning", st(model.PhaseDeltaSync, model.GateWarning), "ARRAARA"},
		{"delta_sync ready", st(model.PhaseDeltaSync, model.GateReadyForDNS), "AARAARA"},
		{"delta_sync ready, pass running", st(model.PhaseDeltaSync, model.GateReadyForDNS, func(s *State) { s.CurrentPass = &emailapi.PassInfo{} }), "AARAARR"},
		{"cutover_ready blocked", st(model.PhaseCutoverReady, model.GateBlocked), "RRRAARA"},
		{"cutover_ready warning", st(model.PhaseCutoverReady, model.GateWarning), "ARRAARA"},
		{"cutover_ready ready", st(model.PhaseCutoverReady, model.GateReadyForDNS), "AARAARA"},
		{"dns_cutover", st(model.PhaseDNSCutover, model.GateReadyForDNS), "RRRARRR"},
		{"final_sync", st(model.PhaseFinalSync, model.GateReadyForDNS), "RRRARRR"},
		{"verified", st(model.PhaseVerified, model.GateReadyForDNS), "RRRARAR"},
		{"closed", st(model.PhaseClosed, model.GateReadyForDNS), "RRRRRRR"},
		{"failed in delta_sync", st(model.PhaseFailed, model.GateWarning, func(s *State) { s.FailedPhase = model.PhaseDeltaSync }), "RRAAARR"},
		{"failed in final_sync", st(model.PhaseFailed, model.GateReadyForDNS, func(s *State) {
			s.FailedPhase, s.DNSCutoverAt = model.PhaseFinalSync, &ts
		}), "RRAARRR"},
		{"failed, retry pending", st(model.PhaseFailed, model.GateBlocked, func(s *State) {
			s.FailedPhase, s.RetryRequested = model.PhasePreflight, &emailapi.Request{By: "ops"}
		}), "RRRAARR"},
		{"being aborted", st(model.PhaseDeltaSync, model.GateReadyForDNS, func(s *State) { s.Aborted = &emailapi.Request{By: "ops"} }), "RRRRRRR"},
	}
	// The mailbox commands (skip, unskip, set_credentials) are phase-independent: review_test.go.
	phaseCommands := emailapi.Commands[:7]
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := &jobRun{st: tc.state, spec: testSpec(1).WithDefaults()}
			var got strings.Builder
			for _, name := range phaseCommands {
				err := w.validate(name, emailapi.Request{By: "lead"})
				if err == nil {
					got.WriteByte('A')
					continue
				}
				got.WriteByte('R')
				if !strings.Contains(err.Error(), name) || len(err.Error()) < 20 {
					t.Errorf("%s refusal does not explain itself: %q", name, err)
				}
			}
			if got.String() != tc.want {
				t.Errorf("accepted/refused = %s, want %s (order %v)", got.String(), tc.want, phaseCommands)
			}
			for _, name := range emailapi.Commands {
				if err := w.validate(name, emailapi.Request{By: "  "}); err == nil || !strings.Contains(err.Error(), `needs "by"`) {
					t.Errorf("%s without by: %v", name, err)
				}
			}
		})
	}
}

func TestRefusalsNameTheChecks(t *testing.T) {
	w := &jobRun{spec: testSpec(1).WithDefaults(), st: &State{Phase: model.PhaseDeltaSync, Gate: model.GateBlocked, Summary: &gate.Summary{Mailboxes: 2},
		Checks: []gate.Check{
			{ID: model.CheckCountRatio, Status: model.CheckPass, Message: "2/2 mailboxes pass"},
			{ID: model.CheckInboxComplete, Status: model.CheckFail, Message: "1/2 mailboxes fail: b@x: INBOX 5/10, 5 missing"},
			{ID: model.CheckDeltaPending, Status: model.CheckWarn, Message: "1/2 mailboxes warn: a@x: 3 pending"},
			{ID: model.CheckManualApproval, Status: model.CheckWarn, Message: "awaiting ops-lead approval"},
		}}}
	err := w.validate(emailapi.Approve, emailapi.Request{By: "lead"}).Error()
	if !strings.Contains(err, "inbox_complete fail: 1/2 mailboxes fail: b@x: INBOX 5/10, 5 missing") || strings.Contains(err, "delta_pending") {
		t.Errorf("approve refusal = %q, want only the failing checks", err)
	}
	err = w.validate(emailapi.DNSCutoverConfirmed, emailapi.Request{By: "lead"}).Error()
	for _, want := range []string{"the gate is blocked, not ready_for_dns", "inbox_complete fail", "delta_pending warn", "manual_approval warn"} {
		if !strings.Contains(err, want) {
			t.Errorf("dns refusal lacks %q: %q", want, err)
		}
	}
	if strings.Contains(err, "count_ratio") {
		t.Errorf("dns refusal lists a passing check: %q", err)
	}
}

func TestStateCutOver(t *testing.T) {
	ts := time.Now()
	for _, tc := range []struct {
		s    State
		want bool
	}{
		{State{Phase: model.PhaseCutoverReady}, false},
		{State{Phase: model.PhaseDNSCutover}, true},
		{State{Phase: model.PhaseClosed}, true},
		{State{Phase: model.PhaseDeltaSync, DNSCutoverAt: &ts}, true},
		{State{Phase: model.PhaseFailed, FailedPhase: model.PhaseDeltaSync}, false},
		{State{Phase: model.PhaseFailed, FailedPhase: model.PhaseFinalSync}, true},
	} {
		if got := tc.s.CutOver(); got != tc.want {
			t.Errorf("%+v CutOver = %v", tc.s, got)
		}
	}
}
