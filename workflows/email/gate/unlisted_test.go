package gate

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cutover/cutover/internal/model"
)

// More mailboxes fail than the checks list (MaxFindings): skipping one the checks only count
// takes it out of every check at once, skipping every failing one opens the gate, and
// un-skipping brings the mailbox back into every check, all without a new pass. A summary
// merged from parts (a wave's runs) behaves the same as one added mailbox by mailbox.
func TestSkipTakesAnUnlistedMailboxOutOfEveryCheck(t *testing.T) {
	const n = MaxFindings + 20
	failing := make([]string, n)
	var seq, a, b Summary
	add := func(f MailboxFacts, i int) {
		seq.Add(f, Thresholds{})
		if i < n/2 {
			a.Add(f, Thresholds{})
		} else {
			b.Add(f, Thresholds{})
		}
	}
	add(clean("ok@x"), 0)
	for i := range n {
		failing[i] = fmt.Sprintf("u%04d@x", i)
		add(MailboxFacts{Email: failing[i], Error: "connection refused"}, i) // every check fails
	}
	a.Merge(b)
	last := failing[n-1]
	for name, s := range map[string]Summary{"added": seq, "merged": a} {
		for _, id := range mailboxChecks {
			tl := s.Checks[id]
			if !tl.Truncated || tl.Fail != n || slices.ContainsFunc(tl.Findings, func(f MailboxFinding) bool { return f.Email == last }) {
				t.Fatalf("%s %s: truncated %v, fail %d, %s listed", name, id, tl.Truncated, tl.Fail, last)
			}
		}
		if len(s.Unlisted) != n-MaxFindings {
			t.Errorf("%s: %d unlisted kept, want %d", name, len(s.Unlisted), n-MaxFindings)
		}

		one := apply(s, Reviewed{Skipped: []string{last}})
		if one.Mailboxes != n {
			t.Errorf("%s, %s skipped: %d mailboxes, want %d", name, last, one.Mailboxes, n)
		}
		for _, id := range mailboxChecks {
			if tl := one.Checks[id]; tl.Fail != n-1 || slices.ContainsFunc(tl.Examples, func(m string) bool { return strings.HasPrefix(m, last) }) {
				t.Errorf("%s, %s skipped, %s: fail %d examples %q", name, last, id, tl.Fail, tl.Examples)
			}
		}

		all := EvaluateReviewed(s, nil, Reviewed{Skipped: failing})
		if diff := cmp.Diff(gateView{Gate: model.GateWarning, Effective: allPass(map[model.CheckID]model.CheckStatus{
			model.CheckManualApproval: model.CheckWarn})}, viewGate(all)); diff != "" {
			t.Errorf("%s, every failing mailbox skipped (-want +got):\n%s", name, diff)
		}
		if m := all.Checks[0].Message; m != "1/1 mailboxes pass" {
			t.Errorf("%s, every failing mailbox skipped: count_ratio says %q", name, m)
		}

		back := EvaluateReviewed(s, nil, Reviewed{Skipped: failing[:n-1]})
		for _, c := range back.Checks[:len(mailboxChecks)] {
			want := fmt.Sprintf("1/2 mailboxes fail: %s: fails (not listed", last)
			if c.Status != model.CheckFail || !strings.HasPrefix(c.Message, want) {
				t.Errorf("%s, %s un-skipped: %s %s %q, want %q…", name, last, c.ID, c.Status, c.Message, want)
			}
		}
		if back.Gate != model.GateBlocked {
			t.Errorf("%s, %s un-skipped: gate %s", name, last, back.Gate)
		}
	}
}

// An unlisted mailbox skipped before a review of a whole check: the review counts without it.
func TestWholeCheckReviewWithoutAnUnlistedSkippedMailbox(t *testing.T) {
	const n = MaxFindings + 5
	s := manySentless(n, -1, 0)
	skipped := []string{fmt.Sprintf("u%04d@x", n-1)}
	rs, err := Accept(s, skipped, []Acceptance{{Check: model.CheckSentComplete}}, "lead", "why", reviewAt)
	if err != nil {
		t.Fatalf("err: want nil; accept = %+v, %v", rs, err)
	}
	if len(rs) != 1 {
		t.Fatalf("len(rs) = %v, want 1; accept = %+v, %v", len(rs), rs, err)
	}
	if rs[0].Warns != n-1 {
		t.Fatalf("rs[0].Warns = %v, want %v (n-1); accept = %+v, %v", rs[0].Warns, n-1, rs, err)
	}
	if rs[0].Source != (n-1)*1000 {
		t.Fatalf("rs[0].Source = %v, want %v ((n-1)*1000); accept = %+v, %v", rs[0].Source, (n-1)*1000, rs, err)
	}
	if g := EvaluateReviewed(s, &Approval{By: "lead"}, Reviewed{Reviews: rs, Skipped: skipped}).Gate; g != model.GateReadyForDNS {
		t.Errorf("gate %s", g)
	}
}

// The compact form stays bounded: past MaxUnlisted mailboxes it stops and says so.
func TestUnlistedIsBounded(t *testing.T) {
	var s Summary
	for i := range MaxFindings + MaxUnlisted + 3 {
		s.Add(facts(fmt.Sprintf("u%05d@x", i), model.CheckDeltaPending, model.CheckWarn), Thresholds{})
	}
	if len(s.Unlisted) != MaxUnlisted || !s.UnlistedDropped {
		t.Errorf("%d unlisted, dropped %v", len(s.Unlisted), s.UnlistedDropped)
	}
	if u := s.Unlisted[0]; u != "----w- 1000 u00200@x" {
		t.Errorf("first unlisted entry %q", u)
	}
}
