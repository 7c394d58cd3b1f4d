package gate

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cutover/cutover/internal/model"
)

var reviewAt = time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)

// noSent warns on sent_complete; quarantined warns on pst_quarantine; broken fails inbox_complete.
func reviewSummary(extraMail int64) Summary {
	var s Summary
	s.Add(clean("ok@x"), Thresholds{})
	ns := facts("nosent@x", model.CheckSentComplete, model.CheckWarn)
	ns.SourceMessages += extraMail
	ns.DestMessages += extraMail
	s.Add(ns, Thresholds{})
	s.Add(facts("quar@x", model.CheckPSTQuarantine, model.CheckWarn), Thresholds{})
	return s
}

type gateView struct {
	Gate      model.Gate
	Effective map[model.CheckID]model.CheckStatus
	Voided    int
}

func viewGate(r Result) gateView {
	v := gateView{Gate: r.Gate, Effective: map[model.CheckID]model.CheckStatus{}, Voided: len(r.Voided)}
	for _, c := range r.Checks {
		v.Effective[c.ID] = c.Effective()
	}
	return v
}

func allPass(over map[model.CheckID]model.CheckStatus) map[model.CheckID]model.CheckStatus {
	m := map[model.CheckID]model.CheckStatus{}
	for _, id := range model.CheckIDs {
		m[id] = model.CheckPass
	}
	for k, v := range over {
		m[k] = v
	}
	return m
}

// A warning is cleared by a recorded review (and only a warning); new mail or a new warning
// voids the review; a skipped mailbox leaves the gate, failing or not.
func TestReviewsClearWarningsOnly(t *testing.T) {
	approval := &Approval{By: "lead", At: "2026-03-02T12:00:00Z"}
	s := reviewSummary(0)
	if got := viewGate(EvaluateReviewed(s, approval, Reviewed{})); got.Gate != model.GateWarning {
		t.Fatalf("before reviews: %+v", got)
	}
	// One mailbox accepted: still warning for the other.
	as := []Acceptance{{Check: model.CheckSentComplete, Mailbox: "nosent@x"}}
	rs, err := Accept(s, nil, as, "lead", "nosent never used Sent", reviewAt)
	if err != nil {
		t.Fatalf("err: want nil; accept sent_complete:nosent@x = %+v, %v", rs, err)
	}
	if len(rs) != 1 {
		t.Fatalf("len(rs) = %v, want 1; accept sent_complete:nosent@x = %+v, %v", len(rs), rs, err)
	}
	if !strings.Contains(rs[0].Message, "no Sent folder") {
		t.Fatalf("strings.Contains(rs[0].Message, \"no Sent folder\") is false; accept sent_complete:nosent@x = %+v, %v",
			rs, err)
	}
	want := gateView{Gate: model.GateWarning, Effective: allPass(map[model.CheckID]model.CheckStatus{
		model.CheckPSTQuarantine: model.CheckWarn})}
	if diff := cmp.Diff(want, viewGate(EvaluateReviewed(s, approval, Reviewed{Reviews: rs}))); diff != "" {
		t.Errorf("one review (-want +got):\n%s", diff)
	}
	// The whole check: every mailbox warning on it now.
	more, err := Accept(s, nil, []Acceptance{{Check: model.CheckPSTQuarantine}}, "lead", "one spam message", reviewAt)
	if err != nil {
		t.Fatalf("err: want nil; accept pst_quarantine = %+v, %v", more, err)
	}
	if len(more) != 1 {
		t.Fatalf("len(more) = %v, want 1; accept pst_quarantine = %+v, %v", len(more), more, err)
	}
	if more[0].Mailbox != "quar@x" {
		t.Fatalf("more[0].Mailbox = %v, want \"quar@x\"; accept pst_quarantine = %+v, %v",
			more[0].Mailbox, more, err)
	}
	rs = append(rs, more...)
	res := EvaluateReviewed(s, approval, Reviewed{Reviews: rs})
	if diff := cmp.Diff(gateView{Gate: model.GateReadyForDNS, Effective: allPass(nil)}, viewGate(res)); diff != "" {
		t.Errorf("all reviewed (-want +got):\n%s", diff)
	}
	for _, c := range res.Checks {
		if c.ID == model.CheckSentComplete {
			by, at, why := c.AcceptedBy()
			if c.Status != model.CheckWarn {
				t.Errorf("c.Status = %v, want model.CheckWarn; sent_complete row: %+v (%s %s %s)",
					c.Status, c, by, at, why)
			} else if !c.Accepted {
				t.Errorf("c.Accepted is false; sent_complete row: %+v (%s %s %s)", c, by, at, why)
			} else if by != "lead" {
				t.Errorf("by: want \"lead\"; sent_complete row: %+v (%s %s %s)", c, by, at, why)
			} else if !at.Equal(reviewAt) {
				t.Errorf("at.Equal(reviewAt) is false; sent_complete row: %+v (%s %s %s)", c, by, at, why)
			} else if why != "nosent@x: nosent never used Sent" {
				t.Errorf("why: want \"nosent@x: nosent never used Sent\"; sent_complete row: %+v (%s %s %s)",
					c, by, at, why)
			}
		}
	}
	// Without the approval the gate still waits for the ops lead.
	if g := EvaluateReviewed(s, nil, Reviewed{Reviews: rs}).Gate; g != model.GateWarning {
		t.Errorf("reviews without approval: gate %s", g)
	}

	// New mail on the reviewed mailbox voids its review.
	s2 := reviewSummary(3)
	res = EvaluateReviewed(s2, approval, Reviewed{Reviews: rs})
	want = gateView{Gate: model.GateWarning, Voided: 1, Effective: allPass(map[model.CheckID]model.CheckStatus{
		model.CheckSentComplete: model.CheckWarn})}
	if diff := cmp.Diff(want, viewGate(res)); diff != "" {
		t.Errorf("diff: want \"\"; after new mail (-want +got):\n%s\nvoided %+v", diff, res.Voided)
	} else if res.Voided[0].Mailbox != "nosent@x" {
		t.Errorf("res.Voided[0].Mailbox = %v, want \"nosent@x\"; after new mail (-want +got):\n%s\nvoided %+v",
			res.Voided[0].Mailbox, diff, res.Voided)
	}

	// A failing check is never accepted, neither by mailbox nor as a whole.
	var sf Summary
	sf.Add(facts("broken@x", model.CheckInboxComplete, model.CheckFail), Thresholds{})
	sf.Add(facts("nosent@x", model.CheckSentComplete, model.CheckWarn), Thresholds{})
	for _, a := range []Acceptance{{Check: model.CheckInboxComplete, Mailbox: "broken@x"}, {Check: model.CheckInboxComplete}} {
		if _, err := Accept(sf, nil, []Acceptance{a}, "lead", "why not", reviewAt); err == nil || !strings.Contains(err.Error(), "never accepted") {
			t.Errorf("accept %+v of a failing check: %v", a, err)
		}
	}
	if _, err := Accept(sf, nil, []Acceptance{{Check: model.CheckCountRatio, Mailbox: "nosent@x"}}, "lead", "x", reviewAt); err == nil {
		t.Error("accepting a check that passes was not refused")
	}
	// Skipping the failing mailbox takes it out of the gate.
	res = EvaluateReviewed(sf, approval, Reviewed{Skipped: []string{"broken@x"}})
	if res.Gate != model.GateWarning {
		t.Errorf("failing mailbox skipped: gate %s, checks %+v", res.Gate, res.Checks)
	}
	if _, err := ParseAcceptance("manual_approval"); err == nil {
		t.Error("manual_approval accepted as a review")
	}
	if a, err := ParseAcceptance("sent_complete:Bob@X"); err != nil {
		t.Errorf("err: want nil; parse: %+v %v", a, err)
	} else if a != (Acceptance{model.CheckSentComplete, "bob@x"}) {
		t.Errorf("a: want (Acceptance{model.CheckSentComplete, \"bob@x\"}); parse: %+v %v", a, err)
	}
}

// manySentless is a job of n mailboxes without a Sent folder (more than MaxFindings: the
// findings list only the first) and one clean mailbox; mail adds messages to the k-th.
func manySentless(n, k int, mail int64) Summary {
	var s Summary
	s.Add(clean("ok@x"), Thresholds{})
	for i := range n {
		f := facts(fmt.Sprintf("u%04d@x", i), model.CheckSentComplete, model.CheckWarn)
		if i == k {
			f.SourceMessages += mail
			f.DestMessages += mail
		}
		s.Add(f, Thresholds{})
	}
	return s
}

// More mailboxes warn on a check than the gate lists by name: a mailbox beyond the list cannot
// be accepted alone (the refusal says what to do), the whole check can, and that review is
// voided by new mail on any of them (listed or not), by one more warning mailbox and never
// covers a failure.
func TestWholeCheckReviewBeyondTheListedMailboxes(t *testing.T) {
	approval := &Approval{By: "lead", At: "2026-03-02T12:00:00Z"}
	const n = MaxFindings + 50
	s := manySentless(n, -1, 0)
	if tl := s.Checks[model.CheckSentComplete]; !tl.Truncated {
		t.Fatalf("tl.Truncated is false; tally: truncated %v, %d findings, %d warn",
			tl.Truncated, len(tl.Findings), tl.Warn)
	} else if len(tl.Findings) != MaxFindings {
		t.Fatalf("len(tl.Findings): want MaxFindings; tally: truncated %v, %d findings, %d warn",
			tl.Truncated, len(tl.Findings), tl.Warn)
	} else if tl.Warn != n {
		t.Fatalf("tl.Warn: want n; tally: truncated %v, %d findings, %d warn",
			tl.Truncated, len(tl.Findings), tl.Warn)
	}
	unlisted := fmt.Sprintf("u%04d@x", n-1)
	_, err := Accept(s, nil, []Acceptance{{Check: model.CheckSentComplete, Mailbox: unlisted}}, "lead", "x", reviewAt)
	if err == nil || !strings.Contains(err.Error(), "not among the 200 mailboxes listed") ||
		!strings.Contains(err.Error(), "accept it as a whole (sent_complete)") {
		t.Errorf("accepting an unlisted mailbox: %v", err)
	}
	rs, err := Accept(s, nil, []Acceptance{{Check: model.CheckSentComplete}}, "lead", "the old server had no Sent folders", reviewAt)
	if err != nil {
		t.Fatalf("err: want nil; accept sent_complete = %+v, %v", rs, err)
	}
	if len(rs) != 1 {
		t.Fatalf("len(rs) = %v, want 1; accept sent_complete = %+v, %v", len(rs), rs, err)
	}
	if rs[0].Mailbox != AllMailboxes {
		t.Fatalf("rs[0].Mailbox = %v, want %v (AllMailboxes); accept sent_complete = %+v, %v",
			rs[0].Mailbox, AllMailboxes, rs, err)
	}
	if rs[0].Warns != n {
		t.Fatalf("rs[0].Warns = %v, want %v (n); accept sent_complete = %+v, %v", rs[0].Warns, n, rs, err)
	}
	if rs[0].Source != n*1000 {
		t.Fatalf("rs[0].Source = %v, want %v (n*1000); accept sent_complete = %+v, %v",
			rs[0].Source, n*1000, rs, err)
	}
	res := EvaluateReviewed(s, approval, Reviewed{Reviews: rs})
	if diff := cmp.Diff(gateView{Gate: model.GateReadyForDNS, Effective: allPass(nil)}, viewGate(res)); diff != "" {
		t.Errorf("whole check reviewed (-want +got):\n%s", diff)
	}
	for _, c := range res.Checks {
		if c.ID != model.CheckSentComplete {
			continue
		}
		by, _, why := c.AcceptedBy()
		if !c.Accepted {
			t.Errorf("c.Accepted is false; sent_complete: %+v (%s: %s)", c, by, why)
		} else if by != "lead" {
			t.Errorf("by: want \"lead\"; sent_complete: %+v (%s: %s)", c, by, why)
		} else if why != "every mailbox warning (250): the old server had no Sent folders" {
			t.Errorf("why: want \"every mailbox warning (250): the old server had no Sent folders\"; sent_complete: %+v (%s: %s)",
				c, by, why)
		} else if !strings.HasPrefix(c.Message, "250 mailbox warning(s) reviewed and accepted") {
			t.Errorf("strings.HasPrefix(c.Message, \"250 mailbox warning(s) reviewed and accepted\") is false; sent_complete: %+v (%s: %s)",
				c, by, why)
		}
	}
	// The next pass finds the same: the review holds.
	if g := EvaluateReviewed(manySentless(n, -1, 0), approval, Reviewed{Reviews: rs}).Gate; g != model.GateReadyForDNS {
		t.Errorf("same facts again: gate %s", g)
	}

	for what, later := range map[string]Summary{
		"new mail on an unlisted mailbox": manySentless(n, n-1, 2),
		"new mail on a listed mailbox":    manySentless(n, 0, 1),
		"one more mailbox warns":          manySentless(n+1, -1, 0),
	} {
		res := EvaluateReviewed(later, approval, Reviewed{Reviews: rs})
		if res.Gate != model.GateWarning {
			t.Errorf("res.Gate: want model.GateWarning; %s: gate %s, voided %+v", what, res.Gate, res.Voided)
		} else if len(res.Voided) != 1 {
			t.Errorf("len(res.Voided) = %v, want 1; %s: gate %s, voided %+v",
				len(res.Voided), what, res.Gate, res.Voided)
		} else if res.Voided[0].Mailbox != AllMailboxes {
			t.Errorf("res.Voided[0].Mailbox = %v, want %v (AllMailboxes); %s: gate %s, voided %+v",
				res.Voided[0].Mailbox, AllMailboxes, what, res.Gate, res.Voided)
		}
	}

	// A listed mailbox skipped before the review: the review counts without it, and still
	// holds once the next pass leaves it out.
	skipped := []string{"u0000@x"}
	rs, err = Accept(s, skipped, []Acceptance{{Check: model.CheckSentComplete}}, "lead", "why", reviewAt)
	if err != nil {
		t.Fatalf("err: want nil; accept with a skipped mailbox = %+v, %v", rs, err)
	}
	if rs[0].Warns != n-1 {
		t.Fatalf("rs[0].Warns = %v, want %v (n-1); accept with a skipped mailbox = %+v, %v",
			rs[0].Warns, n-1, rs, err)
	}
	if g := EvaluateReviewed(s, approval, Reviewed{Reviews: rs, Skipped: skipped}).Gate; g != model.GateReadyForDNS {
		t.Errorf("with the skip: gate %s", g)
	}
	var without Summary
	without.Add(clean("ok@x"), Thresholds{})
	for i := 1; i < n; i++ {
		without.Add(facts(fmt.Sprintf("u%04d@x", i), model.CheckSentComplete, model.CheckWarn), Thresholds{})
	}
	if g := EvaluateReviewed(without, approval, Reviewed{Reviews: rs, Skipped: skipped}).Gate; g != model.GateReadyForDNS {
		t.Errorf("after the pass without the skipped mailbox: gate %s", g)
	}

	// A failure among them: the whole check is refused, and a review given before is voided.
	failing := manySentless(n, -1, 0)
	failing.Add(facts("broken@x", model.CheckSentComplete, model.CheckFail), Thresholds{})
	if _, err := Accept(failing, nil, []Acceptance{{Check: model.CheckSentComplete}}, "lead", "x", reviewAt); err == nil ||
		!strings.Contains(err.Error(), "never accepted") {
		t.Errorf("accepting a check with a failure: %v", err)
	}
	if res := EvaluateReviewed(failing, approval, Reviewed{Reviews: rs}); res.Gate != model.GateBlocked {
		t.Errorf("res.Gate: want model.GateBlocked; failure after the review: gate %s, voided %+v",
			res.Gate, res.Voided)
	} else if len(res.Voided) != 1 {
		t.Errorf("len(res.Voided) = %v, want 1; failure after the review: gate %s, voided %+v",
			len(res.Voided), res.Gate, res.Voided)
	}
}
