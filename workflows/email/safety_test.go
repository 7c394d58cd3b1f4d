package email

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/mock"

	"github.com/cutover/cutover/activities/emailjob"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/email/emailapi"
	"github.com/cutover/cutover/workflows/email/gate"
	"github.com/cutover/cutover/workflows/email/jobspec"
)

// noSentFolders is a mailbox without a Sent folder, everything on the destination.
func noSentFolders() []emailapi.FolderStats {
	return []emailapi.FolderStats{{Source: "INBOX", Dest: "INBOX", SpecialUse: `\Inbox`, SourceMessages: 10, DestMessages: 10}}
}

// oneQuarantined is a clean mailbox but for one message the destination refused.
func oneQuarantined() []emailapi.FolderStats {
	fs := folders()
	fs[0].SourceMessages, fs[0].Quarantined = 400, 1
	fs[0].DestMessages = 399
	return fs
}

func checkStatus(cs []gate.Check, id model.CheckID) (model.CheckStatus, bool) {
	for _, c := range cs {
		if c.ID == id {
			return c.Status, c.Accepted
		}
	}
	return "", false
}

// A mailbox that never synced shows 0 %, not 100 %: at preflight (even when its destination
// already holds as many messages as the source) and when its pass failed; the job's percent
// counts the failed mailbox as 0 %.
func TestNeverSyncedMailboxShowsZeroPercent(t *testing.T) {
	h := newHarness(t, syncDelays{initial: time.Hour})
	h.preflightReport = func(spec emailapi.MailboxSpec) (emailapi.PreflightReport, error) {
		return emailapi.PreflightReport{Folders: folders()}, nil // the destination already holds 15/15
	}
	h.syncStats = func(req emailapi.PassRequest) (emailapi.PassStats, error) {
		if req.Spec.Email == "u1@example.com" {
			return emailapi.PassStats{}, permanent(emailapi.ErrTypeAuthFailed, "destination: login u1: auth [AUTHENTICATIONFAILED]")
		}
		return emailapi.PassStats{Mode: req.Mode, Folders: folders()}, nil
	}
	var afterPreflight, failed emailapi.Status
	h.at(30*time.Minute, func() { afterPreflight = h.status() })
	h.at(3*time.Hour, func() { failed = h.status(); h.signal(emailapi.Abort, "ops") })
	h.env.ExecuteWorkflow(emailapi.WorkflowName, testSpec(2), nil)
	if _, err := h.result(); appType(err) != "Aborted" {
		t.Fatalf("result: %v", err)
	}
	type pct struct {
		Email   string
		Percent float64
	}
	view := func(st emailapi.Status) []pct {
		var out []pct
		for _, m := range st.MailboxDetails {
			out = append(out, pct{m.Email, m.SyncPercent})
		}
		slices.SortFunc(out, func(a, b pct) int { return strings.Compare(a.Email, b.Email) }) // results come as passes end
		return out
	}
	if diff := cmp.Diff([]pct{{"u0@example.com", 0}, {"u1@example.com", 0}}, view(afterPreflight)); diff != "" {
		t.Errorf("diff: want \"\"; after preflight (-want +got):\n%s job %v%%", diff, afterPreflight.SyncPercent)
	} else if afterPreflight.SyncPercent != 0 {
		t.Errorf("afterPreflight.SyncPercent: want 0; after preflight (-want +got):\n%s job %v%%",
			diff, afterPreflight.SyncPercent)
	}
	if diff := cmp.Diff([]pct{{"u0@example.com", 100}, {"u1@example.com", 0}}, view(failed)); diff != "" {
		t.Errorf("after a failed initial sync (-want +got):\n%s", diff)
	}
	if failed.SyncPercent != 50 {
		t.Errorf("job percent with one of two mailboxes failed: %v, want 50", failed.SyncPercent)
	}
}

// Presyncs (the gate's facts) and the final sync compare the destination as it is with the
// ledger; a mailbox's own presync_mode applies to presyncs only.
func TestPresyncsAndFinalSyncRecheckTheDestination(t *testing.T) {
	h := newHarness(t, syncDelays{initial: 30 * time.Minute, delta: 10 * time.Minute, final: 10 * time.Minute})
	spec := testSpec(2)
	spec.Mailboxes[1].PresyncMode = model.ModeStrictMirror
	h.at(7*time.Hour, func() { h.update(emailapi.Approve, emailapi.Request{By: "lead"}) })
	h.at(8*time.Hour, func() { h.update(emailapi.DNSCutoverConfirmed, emailapi.Request{By: "lead"}) })
	h.at(12*time.Hour, func() { h.signal(emailapi.Close, "lead") })
	h.env.ExecuteWorkflow(emailapi.WorkflowName, spec, nil)
	if _, err := h.result(); err != nil {
		t.Fatal(err)
	}
	type call struct {
		Email   string
		RunType model.RunType
		Mode    model.SyncMode
		Recheck bool
	}
	var got []call
	for _, c := range h.syncCalls() {
		got = append(got, call{c.Req.Spec.Email, c.Req.RunType, c.Req.Mode, c.Req.RecheckDest})
	}
	slices.SortStableFunc(got, func(a, b call) int {
		return strings.Compare(string(a.RunType)+a.Email, string(b.RunType)+b.Email)
	})
	// Sorted by run type and mailbox; within them in time order. The INBOX post-syncs of the
	// soak after DNS are copy passes, whatever the mailbox's presync mode.
	want := []call{
		{"u0@example.com", model.RunDelta, model.ModeMirror, true},
		{"u0@example.com", model.RunDelta, model.ModeCopy, false},
		{"u0@example.com", model.RunDelta, model.ModeCopy, false},
		{"u1@example.com", model.RunDelta, model.ModeStrictMirror, true},
		{"u1@example.com", model.RunDelta, model.ModeCopy, false},
		{"u1@example.com", model.RunDelta, model.ModeCopy, false},
		{"u0@example.com", model.RunFinal, model.ModeCopy, true},
		{"u1@example.com", model.RunFinal, model.ModeCopy, true},
		{"u0@example.com", model.RunInitial, model.ModeCopy, false},
		{"u1@example.com", model.RunInitial, model.ModeCopy, false},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("passes (-want +got):\n%s", diff)
	}
}

// More mailboxes warn on one check than the gate names (gate.MaxFindings): the approve update
// refuses one beyond the list, saying what to do, and takes the whole check (gate's
// TestWholeCheckReviewBeyondTheListedMailboxes shows the review clearing the gate).
func TestApproveAcceptsAWholeCheckOfMoreMailboxesThanListed(t *testing.T) {
	const n = gate.MaxFindings + 10
	var sum gate.Summary
	for i := range n {
		sum.Add(gate.MailboxFacts{Email: fmt.Sprintf("u%d@example.com", i), Synced: true, SourceMessages: 10, DestMessages: 10,
			HasInbox: true, InboxSource: 10, InboxDest: 10}, gate.Thresholds{})
	}
	w := &jobRun{spec: testSpec(n).WithDefaults(), st: &State{Phase: model.PhaseDeltaSync, Gate: model.GateWarning, Summary: &sum}}
	err := w.validate(emailapi.Approve, emailapi.Request{By: "lead", Accept: []string{fmt.Sprintf("sent_complete:u%d@example.com", n-1)}, Reason: "x"})
	if err == nil || !strings.Contains(err.Error(), "accept it as a whole (sent_complete)") {
		t.Errorf("accepting a mailbox beyond the list: %v", err)
	}
	if err := w.validate(emailapi.Approve, emailapi.Request{By: "lead", Accept: []string{"sent_complete"}, Reason: "no Sent folders"}); err != nil {
		t.Errorf("accepting the whole check: %v", err)
	}
}

// A job whose only warnings are a mailbox without Sent and one quarantined message reaches
// closed once the ops lead accepts both with a reason: recorded (who, when, why) in the gate
// checks written to PostgreSQL and in the status. A failing check is never accepted, and new
// mail on a reviewed mailbox voids its review.
func TestReviewedWarningsLetTheJobClose(t *testing.T) {
	h := newHarness(t, syncDelays{initial: 30 * time.Minute, delta: 10 * time.Minute})
	extra := int64(0)
	h.syncStats = func(req emailapi.PassRequest) (emailapi.PassStats, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		switch req.Spec.Email {
		case "u0@example.com":
			fs := noSentFolders()
			fs[0].SourceMessages += extra
			fs[0].DestMessages += extra
			return emailapi.PassStats{Mode: req.Mode, Folders: fs}, nil
		case "u1@example.com":
			return emailapi.PassStats{Mode: req.Mode, Folders: oneQuarantined(), Quarantined: 1}, nil
		}
		return emailapi.PassStats{Mode: req.Mode, Folders: folders()}, nil
	}
	var plain, badAccept, noReason, accept, dns *updateOutcome
	var reviewed, voided emailapi.Status
	var reviewedUI string
	h.at(7*time.Hour, func() {
		plain = h.update(emailapi.Approve, emailapi.Request{By: "lead"})
		badAccept = h.update(emailapi.Approve, emailapi.Request{By: "lead", Accept: []string{"count_ratio:u0@example.com"}, Reason: "x"})
		noReason = h.update(emailapi.Approve, emailapi.Request{By: "lead", Accept: []string{"sent_complete"}})
	})
	h.at(8*time.Hour, func() {
		accept = h.update(emailapi.Approve, emailapi.Request{By: "lead", Accept: []string{"sent_complete:u0@example.com", "pst_quarantine"},
			Reason: "u0 never used Sent; u1's one refused message is spam"})
	})
	h.at(9*time.Hour, func() { reviewed = h.status(); reviewedUI = h.metadata().GetCurrentDetails() })
	// New mail on u0, then a presync: its review no longer holds.
	h.at(10*time.Hour, func() {
		h.mu.Lock()
		extra = 2
		h.mu.Unlock()
		h.signal(emailapi.PresyncNow, "ops")
	})
	h.at(11*time.Hour, func() {
		voided = h.status()
		h.update(emailapi.Approve, emailapi.Request{By: "lead", Accept: []string{"sent_complete:u0@example.com"}, Reason: "still no Sent"})
	})
	h.at(12*time.Hour, func() { dns = h.update(emailapi.DNSCutoverConfirmed, emailapi.Request{By: "lead"}) })
	h.at(16*time.Hour, func() { h.signal(emailapi.Close, "lead") })
	h.env.ExecuteWorkflow(emailapi.WorkflowName, testSpec(3), nil)
	res, err := h.result()
	if err != nil {
		t.Fatal(err)
	}
	if plain.Err != nil {
		t.Errorf("plain.Err = %v, want nil; approve without reviews: %+v", plain.Err, plain)
	} else if plain.Ack.Gate != model.GateWarning {
		t.Errorf("plain.Ack.Gate = %v, want model.GateWarning; approve without reviews: %+v", plain.Ack.Gate, plain)
	} else if !strings.Contains(plain.Ack.Message, "accept") {
		t.Errorf("strings.Contains(plain.Ack.Message, \"accept\") is false; approve without reviews: %+v", plain)
	}
	if badAccept.Rejected == nil || !strings.Contains(badAccept.Rejected.Error(), "does not warn") {
		t.Errorf("accepting a passing check: %+v", badAccept)
	}
	if noReason.Rejected == nil || !strings.Contains(noReason.Rejected.Error(), "reason") {
		t.Errorf("accept without a reason: %+v", noReason)
	}
	if accept.Rejected != nil {
		t.Fatalf("accept.Rejected = %v, want nil; approve with reviews: %+v", accept.Rejected, accept)
	}
	if accept.Err != nil {
		t.Fatalf("accept.Err = %v, want nil; approve with reviews: %+v", accept.Err, accept)
	}
	if accept.Ack.Gate != model.GateReadyForDNS {
		t.Fatalf("accept.Ack.Gate = %v, want model.GateReadyForDNS; approve with reviews: %+v",
			accept.Ack.Gate, accept)
	}
	if len(reviewed.Reviews) != 2 {
		t.Errorf("len(reviewed.Reviews) = %v, want 2; status reviews: %+v", len(reviewed.Reviews), reviewed.Reviews)
	} else if reviewed.Reviews[0].Reason == "" {
		t.Errorf("reviewed.Reviews[0].Reason = %v, want != \"\"; status reviews: %+v",
			reviewed.Reviews[0].Reason, reviewed.Reviews)
	} else if reviewed.Reviews[0].By != "lead" {
		t.Errorf("reviewed.Reviews[0].By = %v, want \"lead\"; status reviews: %+v",
			reviewed.Reviews[0].By, reviewed.Reviews)
	}
	if s, acc := checkStatus(reviewed.Checks, model.CheckSentComplete); s != model.CheckWarn || !acc {
		t.Errorf("status sent_complete: %s accepted %v", s, acc)
	}
	// The Temporal UI's current details name each review: check, mailbox, who and why.
	if want := "2 warning(s) accepted: sent_complete:u0@example.com by lead (u0 never used Sent"; !strings.Contains(reviewedUI, want) {
		t.Errorf("the job's details in the Temporal UI lack %q:\n%s", want, reviewedUI)
	}
	if voided.Gate != model.GateWarning {
		t.Errorf("voided.Gate: want model.GateWarning; after new mail: gate %s reviews %+v",
			voided.Gate, voided.Reviews)
	} else if len(voided.Reviews) != 1 {
		t.Errorf("len(voided.Reviews) = %v, want 1; after new mail: gate %s reviews %+v",
			len(voided.Reviews), voided.Gate, voided.Reviews)
	} else if voided.Reviews[0].Check != model.CheckPSTQuarantine {
		t.Errorf("voided.Reviews[0].Check = %v, want model.CheckPSTQuarantine; after new mail: gate %s reviews %+v",
			voided.Reviews[0].Check, voided.Gate, voided.Reviews)
	}
	if !strings.Contains(h.notes(), "review of sent_complete:u0@example.com by lead voided") {
		t.Errorf("notes do not say the review was voided:\n%s", h.notes())
	}
	if dns.Rejected != nil {
		t.Errorf("dns.Rejected = %v, want nil; DNS after the reviews: %+v", dns.Rejected, dns)
	} else if dns.Ack.Phase != model.PhaseDNSCutover {
		t.Errorf("dns.Ack.Phase = %v, want model.PhaseDNSCutover; DNS after the reviews: %+v", dns.Ack.Phase, dns)
	}
	if res.Phase != model.PhaseClosed {
		t.Errorf("job ended in %s", res.Phase)
	}
	// PostgreSQL gets the accepted checks with who, when and why.
	var accepted []emailapi.JobRecord
	h.mu.Lock()
	for _, m := range h.records {
		if s, acc := checkStatus(m.Checks, model.CheckPSTQuarantine); s == model.CheckWarn && acc {
			accepted = append(accepted, m)
		}
	}
	h.mu.Unlock()
	if len(accepted) == 0 {
		t.Fatal("no accepted pst_quarantine check was written")
	}
	for _, c := range accepted[len(accepted)-1].Checks {
		if c.ID == model.CheckPSTQuarantine {
			by, at, why := c.AcceptedBy()
			if by != "lead" || at.IsZero() || !strings.Contains(why, "u1@example.com: u0 never used Sent") {
				t.Errorf("pst_quarantine row: by %q at %v why %q", by, at, why)
			}
		}
	}
}

// One bad mailbox does not hold the domain: skipped, it leaves the gate and the passes;
// un-skipped, the gate waits for its next pass.
func TestSkippedMailboxDoesNotHoldTheGate(t *testing.T) {
	h := newHarness(t, syncDelays{initial: 30 * time.Minute, delta: 10 * time.Minute})
	h.syncStats = func(req emailapi.PassRequest) (emailapi.PassStats, error) {
		if req.Spec.Email == "u1@example.com" && req.RunType == model.RunDelta {
			return shortInbox(req, 8), nil
		}
		return emailapi.PassStats{Mode: req.Mode, Folders: folders()}, nil
	}
	var blocked, skipped, unskipped, again emailapi.Status
	var skip, skipAgain, noReason *updateOutcome
	var skippedUI, unskippedUI string
	h.at(7*time.Hour, func() {
		blocked = h.status()
		noReason = h.update(emailapi.Skip, emailapi.Request{By: "ops", Mailbox: "u1@example.com"})
		skip = h.update(emailapi.Skip, emailapi.Request{By: "ops", Mailbox: "U1@example.com", Reason: "account closed by the customer"})
	})
	h.at(8*time.Hour, func() {
		skipped = h.status()
		skippedUI = h.metadata().GetCurrentDetails()
		skipAgain = h.update(emailapi.Skip, emailapi.Request{By: "ops", Mailbox: "u1@example.com", Reason: "again"})
		h.signal(emailapi.PresyncNow, "ops")
	})
	h.at(9*time.Hour, func() { h.update(emailapi.Unskip, emailapi.Request{By: "ops", Mailbox: "u1@example.com"}) })
	h.at(9*time.Hour+time.Minute, func() { unskipped = h.status(); unskippedUI = h.metadata().GetCurrentDetails() })
	h.at(10*time.Hour, func() { again = h.status(); h.signal(emailapi.Abort, "ops") })
	h.env.ExecuteWorkflow(emailapi.WorkflowName, testSpec(2), nil)
	if _, err := h.result(); appType(err) != "Aborted" {
		t.Fatalf("result: %v", err)
	}
	if blocked.Gate != model.GateBlocked {
		t.Fatalf("before the skip: gate %s", blocked.Gate)
	}
	if noReason.Rejected == nil {
		t.Errorf("noReason.Rejected is nil; skip updates: without reason %+v, skip %+v, again %+v",
			noReason, skip, skipAgain)
	} else if skip.Rejected != nil {
		t.Errorf("skip.Rejected = %v, want nil; skip updates: without reason %+v, skip %+v, again %+v",
			skip.Rejected, noReason, skip, skipAgain)
	} else if skip.Err != nil {
		t.Errorf("skip.Err = %v, want nil; skip updates: without reason %+v, skip %+v, again %+v",
			skip.Err, noReason, skip, skipAgain)
	} else if skipAgain.Rejected == nil {
		t.Errorf("skipAgain.Rejected is nil; skip updates: without reason %+v, skip %+v, again %+v",
			noReason, skip, skipAgain)
	}
	if skipped.Gate != model.GateWarning {
		t.Errorf("skipped.Gate: want model.GateWarning; after the skip: gate %s skipped %+v checks %+v",
			skipped.Gate, skipped.Skipped, skipped.Checks)
	} else if len(skipped.Skipped) != 1 {
		t.Errorf("len(skipped.Skipped) = %v, want 1; after the skip: gate %s skipped %+v checks %+v",
			len(skipped.Skipped), skipped.Gate, skipped.Skipped, skipped.Checks)
	} else if skipped.Skipped[0].Email != "u1@example.com" {
		t.Errorf("skipped.Skipped[0].Email = %v, want \"u1@example.com\"; after the skip: gate %s skipped %+v checks %+v",
			skipped.Skipped[0].Email, skipped.Gate, skipped.Skipped, skipped.Checks)
	}
	// The Temporal UI's current details say which mailbox is skipped, until it is un-skipped.
	if want := "1 mailbox(es) skipped: u1@example.com"; !strings.Contains(skippedUI, want) {
		t.Errorf("the job's details in the Temporal UI lack %q:\n%s", want, skippedUI)
	}
	if strings.Contains(unskippedUI, "skipped") {
		t.Errorf("the job's details still say skipped after the un-skip:\n%s", unskippedUI)
	}
	var deltas []string
	for _, c := range h.syncCalls() {
		if c.Req.RunType == model.RunDelta && !c.At.Before(t0.Add(8*time.Hour)) && c.At.Before(t0.Add(9*time.Hour)) {
			deltas = append(deltas, c.Req.Spec.Email)
		}
	}
	if !slices.Equal(deltas, []string{"u0@example.com"}) {
		for _, c := range h.syncCalls() {
			t.Logf("%s %s %s", c.At.Sub(t0), c.Req.RunType, c.Req.Spec.Email)
		}
		t.Errorf("presync after the skip ran for %v, want only u0", deltas)
	}
	if unskipped.Gate != model.GateBlocked {
		t.Errorf("right after un-skip: gate %s, want blocked until its pass", unskipped.Gate)
	}
	if again.Presyncs <= skipped.Presyncs+1 {
		t.Errorf("again.Presyncs: want > skipped.Presyncs+1; un-skip did not lead to a presync: presyncs %d → %d, skipped %+v",
			skipped.Presyncs, again.Presyncs, again.Skipped)
	} else if len(again.Skipped) != 0 {
		t.Errorf("len(again.Skipped) = %v, want 0; un-skip did not lead to a presync: presyncs %d → %d, skipped %+v",
			len(again.Skipped), skipped.Presyncs, again.Presyncs, again.Skipped)
	}
	var ops []string
	h.mu.Lock()
	for _, m := range h.records {
		for _, op := range m.Mailboxes {
			ops = append(ops, op.Op+" "+op.Email+" "+op.Reason)
		}
	}
	h.mu.Unlock()
	if diff := cmp.Diff([]string{"skip u1@example.com account closed by the customer", "unskip u1@example.com "}, ops); diff != "" {
		t.Errorf("mailbox operations written (-want +got):\n%s", diff)
	}
}

// More mailboxes fail than the gate lists by name (gate.MaxFindings): each skip takes its
// mailbox out of the checks at once, listed or only counted, so skipping every failing one lets
// the gate move on with no presync in between; un-skipping brings them back into every check.
func TestSkipsBeyondTheListedMailboxesFreeTheGate(t *testing.T) {
	const n = gate.MaxFindings + 5 // u0 clean, the others fail
	h := newHarness(t, syncDelays{initial: time.Minute, delta: time.Minute})
	h.syncStats = func(req emailapi.PassRequest) (emailapi.PassStats, error) {
		if req.Spec.Email != "u0@example.com" {
			return shortInbox(req, 8), nil
		}
		return emailapi.PassStats{Mode: req.Mode, Folders: folders()}, nil
	}
	check := func(st emailapi.Status, id model.CheckID) gate.Check {
		for _, c := range st.Checks {
			if c.ID == id {
				return c
			}
		}
		return gate.Check{}
	}
	var blocked, freed, back emailapi.Status
	var counts []string
	skipsAt := 2 * time.Hour
	h.at(skipsAt-time.Second, func() { blocked = h.status() })
	for i := 1; i < n; i++ { // one skip a second, the status half a second after each of the last
		at := skipsAt + time.Duration(i)*time.Second
		h.at(at, func() {
			out := h.update(emailapi.Skip, emailapi.Request{By: "ops", Mailbox: fmt.Sprintf("u%d@example.com", i), Reason: "closed"})
			if out.Err != nil {
				t.Errorf("out.Err = %v, want nil; skip u%d: %+v", out.Err, i, out)
			} else if out.Rejected != nil {
				t.Errorf("out.Rejected = %v, want nil; skip u%d: %+v", out.Rejected, i, out)
			}
		})
		if i >= n-gate.MaxExamples*2 {
			h.at(at+500*time.Millisecond, func() {
				msg := check(h.status(), model.CheckInboxComplete).Message
				counts = append(counts, msg[:strings.Index(msg+":", ":")])
			})
		}
	}
	freedAt := skipsAt + time.Duration(n+1)*time.Second
	h.at(freedAt, func() {
		freed = h.status()
		for i := 1; i < n; i++ {
			h.update(emailapi.Unskip, emailapi.Request{By: "ops", Mailbox: fmt.Sprintf("u%d@example.com", i)})
		}
	})
	h.at(freedAt+time.Second, func() { back = h.status(); h.signal(emailapi.Abort, "ops") })
	h.env.ExecuteWorkflow(emailapi.WorkflowName, testSpec(n), nil)
	if _, err := h.result(); appType(err) != "Aborted" {
		t.Fatalf("result: %v", err)
	}
	if c := check(blocked, model.CheckInboxComplete); blocked.Gate != model.GateBlocked || !strings.HasPrefix(c.Message, fmt.Sprintf("%d/%d mailboxes fail", n-1, n)) {
		t.Fatalf("before the skips: gate %s, inbox_complete %q; %+v phase %s", blocked.Gate, c.Message, blocked.Checks, blocked.Phase)
	}
	var want []string
	for i := n - gate.MaxExamples*2; i < n; i++ {
		if left := n - 1 - i; left > 0 {
			want = append(want, fmt.Sprintf("%d/%d mailboxes fail", left, n-i))
		} else {
			want = append(want, "1/1 mailboxes pass")
		}
	}
	if diff := cmp.Diff(want, counts); diff != "" {
		t.Errorf("inbox_complete after each of the last skips (-want +got):\n%s", diff)
	}
	if freed.Gate != model.GateWarning {
		t.Errorf("freed.Gate: want model.GateWarning; every failing mailbox skipped: gate %s, %d skipped, checks %+v",
			freed.Gate, len(freed.Skipped), freed.Checks)
	} else if len(freed.Skipped) != n-1 {
		t.Errorf("len(freed.Skipped): want n-1; every failing mailbox skipped: gate %s, %d skipped, checks %+v",
			freed.Gate, len(freed.Skipped), freed.Checks)
	}
	for _, c := range h.syncCalls() {
		if !c.At.Before(t0.Add(skipsAt)) && c.At.Before(t0.Add(freedAt)) {
			t.Errorf("a pass ran between the skips and the gate moving on: %s at %s", c.Req.Spec.Email, c.At.Sub(t0))
		}
	}
	for _, id := range []model.CheckID{model.CheckInboxComplete} {
		if c := check(back, id); back.Gate != model.GateBlocked {
			t.Errorf("back.Gate: want model.GateBlocked; every mailbox un-skipped: gate %s, %s %s %q",
				back.Gate, id, c.Status, c.Message)
		} else if c.Status != model.CheckFail {
			t.Errorf("c.Status: want model.CheckFail; every mailbox un-skipped: gate %s, %s %s %q",
				back.Gate, id, c.Status, c.Message)
		} else if !strings.HasPrefix(c.Message, fmt.Sprintf("%d/%d mailboxes fail", n-1, n)) {
			t.Errorf("strings.HasPrefix(c.Message, fmt.Sprintf(\"%%d/%%d mailboxes fail\", n-1, n)) is false; every mailbox un-skipped: gate %s, %s %s %q",
				back.Gate, id, c.Status, c.Message)
		}
	}
}

// While Temporal retries a mailbox's pass, the job's status and current details show the last
// failed attempt; the pass's end clears it. New credentials reach the next attempt's spec.
func TestFailedAttemptsShowWhileRetrying(t *testing.T) {
	h := newHarness(t, syncDelays{initial: 2 * time.Hour})
	var during, after emailapi.Status
	var creds *updateOutcome
	h.at(time.Hour, func() {
		h.env.SignalWorkflow(emailapi.MailboxAttemptFailed, emailapi.AttemptFailed{Email: "u0@example.com", Type: emailapi.ErrTypeConnect,
			Message: "source: dial tcp 127.0.0.1:1: connection refused (attempt 2 of 3 before the mailbox fails)", Attempt: 2})
	})
	h.at(90*time.Minute, func() {
		during = h.status()
		creds = h.update(emailapi.SetCredentials, emailapi.Request{By: "ops", Mailbox: "u0@example.com", Side: "source",
			CredentialsRef: "3f2504e0-4f89-11d3-9a0c-0305e82c3301"})
	})
	h.at(4*time.Hour, func() { after = h.status(); h.signal(emailapi.Abort, "ops") })
	h.env.ExecuteWorkflow(emailapi.WorkflowName, testSpec(1), nil)
	if _, err := h.result(); appType(err) != "Aborted" {
		t.Fatalf("result: %v", err)
	}
	if len(during.Retrying) != 1 {
		t.Errorf("len(during.Retrying) = %v, want 1; status while retrying: %+v",
			len(during.Retrying), during.Retrying)
	} else if during.Retrying[0].Attempt != 2 {
		t.Errorf("during.Retrying[0].Attempt = %v, want 2; status while retrying: %+v",
			during.Retrying[0].Attempt, during.Retrying)
	} else if !strings.Contains(during.Retrying[0].Message, "connection refused") {
		t.Errorf("strings.Contains(during.Retrying[0].Message, \"connection refused\") is false; status while retrying: %+v",
			during.Retrying)
	}
	if len(after.Retrying) != 0 {
		t.Errorf("status after the pass: %+v", after.Retrying)
	}
	if creds.Rejected != nil {
		t.Fatalf("creds.Rejected = %v, want nil; set_credentials: %+v", creds.Rejected, creds)
	}
	if creds.Err != nil {
		t.Fatalf("creds.Err = %v, want nil; set_credentials: %+v", creds.Err, creds)
	}
	h.mu.Lock()
	ref := h.mailboxes[0].Source.CredentialsRef
	h.mu.Unlock()
	if ref != "3f2504e0-4f89-11d3-9a0c-0305e82c3301" {
		t.Errorf("the new reference did not reach the mailbox spec: %q", ref)
	}
}

// A spec the CLI would refuse is refused by the workflow itself, first thing and with the same
// words, whoever started it: a secret (then the worker is asked to delete the run, handing it
// only the redacted input) or an unknown field.
func TestWorkflowRefusesWhatTheCLIRefuses(t *testing.T) {
	base, err := json.Marshal(testSpec(1).WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	withKey := func(k string, v any) []byte {
		var m map[string]any
		if err := json.Unmarshal(base, &m); err != nil {
			t.Fatal(err)
		}
		m["source"].(map[string]any)[k] = v
		b, _ := json.Marshal(m)
		return b
	}
	for _, tc := range []struct {
		name   string
		input  []byte
		purged bool
	}{
		{"password", withKey("password", "hunter2-secret"), true},
		{"unknown field", withKey("hostname", "x"), false},
		{"redacted password", withKey("password", jobspec.Redacted), false},
		{"password pasted as credentials_ref", withKey("credentials_ref", "hunter2-secret"), true},
		{"redacted credentials_ref", withKey("credentials_ref", jobspec.Redacted), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, parseErr := jobspec.Parse(tc.input)
			if parseErr == nil {
				t.Fatal("Parse accepted it")
			}
			h := newHarness(t, syncDelays{})
			var purges []emailjob.RefusedStart
			h.env.OnActivity(jobActs.PurgeRefusedStart, mock.Anything, mock.Anything).Return(
				func(_ context.Context, r emailjob.RefusedStart) error { purges = append(purges, r); return nil })
			h.env.ExecuteWorkflow(emailapi.WorkflowName, json.RawMessage(tc.input), nil)
			_, err := h.result()
			if appType(err) != emailapi.ErrTypeBadSpec || !strings.Contains(err.Error(), parseErr.Error()) {
				t.Errorf("workflow: %v\nwant the CLI's words: %v", err, parseErr)
			}
			if len(h.records) != 0 {
				t.Errorf("len(h.records): want 0; something ran: %d mirrors, %d passes",
					len(h.records), len(h.syncCalls()))
			} else if len(h.syncCalls()) != 0 {
				t.Errorf("want len(h.syncCalls()) == 0; something ran: %d mirrors, %d passes",
					len(h.records), len(h.syncCalls()))
			} else if len(h.preflight) != 0 {
				t.Errorf("len(h.preflight) = %v, want 0; something ran: %d mirrors, %d passes",
					len(h.preflight), len(h.records), len(h.syncCalls()))
			}
			if got := len(purges) > 0; got != tc.purged {
				t.Fatalf("purged %v, want %v", got, tc.purged)
			}
			if tc.purged {
				h.requireHeartbeatTimeout("PurgeRefusedStart", defaultHeartbeatTimeout)
			}
			for _, p := range purges {
				if strings.Contains(string(p.Input), "hunter2") {
					t.Errorf("strings.Contains(string(p.Input), \"hunter2\") is true; purge request: %+v %s", p, p.Input)
				} else if !strings.Contains(string(p.Input), jobspec.Redacted) {
					t.Errorf("strings.Contains(string(p.Input), jobspec.Redacted) is false; purge request: %+v %s",
						p, p.Input)
				} else if p.WorkflowID != emailapi.WorkflowID(testJob) {
					t.Errorf("p.WorkflowID = %v, want emailapi.WorkflowID(testJob); purge request: %+v %s",
						p.WorkflowID, p, p.Input)
				} else if p.WorkflowType != emailapi.WorkflowName {
					t.Errorf("p.WorkflowType = %v, want emailapi.WorkflowName; purge request: %+v %s",
						p.WorkflowType, p, p.Input)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Error("the refusal quotes the secret")
			}
		})
	}
}

// The worker's gathered reports (one signal for many mailboxes) move the live progress and
// show failed attempts as the per-report signals of earlier workers do.
func TestGatheredReportsShowProgressAndAttempts(t *testing.T) {
	h := newHarness(t, syncDelays{initial: 2 * time.Hour})
	var during emailapi.Status
	h.at(time.Hour, func() {
		h.env.SignalWorkflow(emailapi.MailboxReportsSignal, emailapi.MailboxReports{
			Progress: []emailapi.PassProgress{
				{Email: "u0@example.com", RunType: model.RunInitial, Copied: 7},
				{Email: "u1@example.com", RunType: model.RunInitial, Copied: 5, Done: true},
				{Email: "u2@example.com", RunType: model.RunDelta, Copied: 100}, // another pass: ignored
			},
			Attempts: []emailapi.AttemptFailed{{Email: "u0@example.com", Type: emailapi.ErrTypeConnect, Message: "connection refused", Attempt: 3}},
		})
	})
	h.at(90*time.Minute, func() { during = h.status(); h.signal(emailapi.Abort, "ops") })
	h.env.ExecuteWorkflow(emailapi.WorkflowName, testSpec(3), nil)
	if _, err := h.result(); appType(err) != "Aborted" {
		t.Fatalf("result: %v", err)
	}
	if during.Progress == nil {
		t.Fatal("no live progress in the status")
	}
	if during.Progress.Copied != 12 {
		t.Errorf("during.Progress.Copied: want 12; live progress: copied %d (want 12), mailboxes done %d (want 1)",
			during.Progress.Copied, during.Progress.MailboxesDone)
	} else if during.Progress.MailboxesDone != 1 {
		t.Errorf("during.Progress.MailboxesDone: want 1; live progress: copied %d (want 12), mailboxes done %d (want 1)",
			during.Progress.Copied, during.Progress.MailboxesDone)
	}
	if len(during.Retrying) != 1 {
		t.Errorf("len(during.Retrying) = %v, want 1; status while retrying: %+v",
			len(during.Retrying), during.Retrying)
	} else if during.Retrying[0].Attempt != 3 {
		t.Errorf("during.Retrying[0].Attempt = %v, want 3; status while retrying: %+v",
			during.Retrying[0].Attempt, during.Retrying)
	} else if during.Retrying[0].Email != "u0@example.com" {
		t.Errorf("during.Retrying[0].Email = %v, want \"u0@example.com\"; status while retrying: %+v",
			during.Retrying[0].Email, during.Retrying)
	}
}
