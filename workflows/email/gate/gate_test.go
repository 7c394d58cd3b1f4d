package gate

import (
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/cutover/cutover/internal/model"
)

var statuses = []model.CheckStatus{model.CheckPass, model.CheckWarn, model.CheckFail}

// clean is a mailbox on which every per-mailbox check passes.
func clean(email string) MailboxFacts {
	return MailboxFacts{Email: email, Synced: true, SourceMessages: 1000, DestMessages: 1000,
		HasInbox: true, InboxSource: 400, InboxDest: 400, HasSent: true, SentSource: 100, SentDest: 100}
}

// facts returns a mailbox on which check id has status s and every other check passes.
func facts(email string, id model.CheckID, s model.CheckStatus) MailboxFacts {
	f := clean(email)
	if s == model.CheckPass {
		return f
	}
	warn := s == model.CheckWarn
	switch id {
	case model.CheckCountRatio:
		f.DestMessages = map[bool]int64{true: 990, false: 500}[warn]
	case model.CheckInboxComplete:
		if warn {
			f.HasInbox = false
		} else {
			f.InboxDest = 390
		}
	case model.CheckSentComplete:
		if warn {
			f.HasSent = false
		} else {
			f.SentDest = 0
		}
	case model.CheckPSTQuarantine:
		f.Quarantined = map[bool]int64{true: 2, false: 200}[warn]
		f.DestMessages = f.SourceMessages - f.Quarantined
	case model.CheckDeltaPending:
		f.Pending = map[bool]int64{true: 3, false: 500}[warn]
	case model.CheckDestHeld:
		f.DestHeld = 12 // never fails: mail the job did not place is kept and reviewed
	}
	return f
}

// statusesOf lists what a check can report: dest_held only passes or warns.
func statusesOf(id model.CheckID) []model.CheckStatus {
	if id == model.CheckDestHeld {
		return statuses[:2]
	}
	return statuses
}

func TestFactsHelperIsolatesOneCheck(t *testing.T) {
	for _, id := range mailboxChecks {
		for _, s := range statusesOf(id) {
			got := Assess(facts("a@x", id, s), Thresholds{})
			for _, other := range mailboxChecks {
				want := model.CheckPass
				if other == id {
					want = s
				}
				if got[other].Status != want {
					t.Errorf("facts(%s=%s): %s is %s (%q), want %s", id, s, other, got[other].Status, got[other].Message, want)
				}
			}
		}
	}
}

// TestEveryCombination drives the gate through every pass/warn/fail combination of the six
// per-mailbox checks (dest_held only passes or warns), with and without approval: 3^5 x 2 x 2
// evaluations. Each check's status comes
// from its own mailbox, so the test also proves a summary reports the worst mailbox per check.
func TestEveryCombination(t *testing.T) {
	n := 0
	var combo func(i int, picked []model.CheckStatus)
	combo = func(i int, picked []model.CheckStatus) {
		if i == len(mailboxChecks) {
			for _, approved := range []bool{false, true} {
				evaluateCombination(t, picked, approved)
				n++
			}
			return
		}
		for _, s := range statusesOf(mailboxChecks[i]) {
			combo(i+1, append(picked, s))
		}
	}
	combo(0, nil)
	if n != 972 {
		t.Fatalf("evaluated %d combinations, want 972", n)
	}
}

func evaluateCombination(t *testing.T, picked []model.CheckStatus, approved bool) {
	t.Helper()
	var sum Summary
	sum.Add(clean("ok@x"), Thresholds{})
	for i, id := range mailboxChecks {
		sum.Add(facts(fmt.Sprintf("m%d@x", i), id, picked[i]), Thresholds{})
	}
	var ap *Approval
	if approved {
		ap = &Approval{By: "lead", At: "2026-01-01T00:00:00Z"}
	}
	res := Evaluate(sum, ap)
	name := fmt.Sprintf("%v approved=%v", picked, approved)
	if len(res.Checks) != len(model.CheckIDs) {
		t.Fatalf("%s: %d checks, want %d", name, len(res.Checks), len(model.CheckIDs))
	}
	anyFail, anyWarn := false, false
	for i, id := range mailboxChecks {
		c := res.Checks[i]
		if c.ID != id {
			t.Fatalf("c.ID: want id; %s: check %d = %s %s, want %s %s", name, i, c.ID, c.Status, id, picked[i])
		}
		if c.Status != picked[i] {
			t.Fatalf("c.Status: want picked[i]; %s: check %d = %s %s, want %s %s",
				name, i, c.ID, c.Status, id, picked[i])
		}
		anyFail = anyFail || picked[i] == model.CheckFail
		anyWarn = anyWarn || picked[i] == model.CheckWarn
		if c.Status != model.CheckPass && !strings.Contains(c.Message, fmt.Sprintf("m%d@x", i)) {
			t.Fatalf("%s: %s message %q does not name the mailbox", name, id, c.Message)
		}
	}
	manual := res.Checks[len(res.Checks)-1]
	var wantManual model.CheckStatus
	switch {
	case !approved:
		wantManual = model.CheckWarn
	case anyFail:
		wantManual = model.CheckFail
	default:
		wantManual = model.CheckPass
	}
	if manual.ID != model.CheckManualApproval {
		t.Fatalf("manual.ID = %v, want model.CheckManualApproval; %s: manual_approval = %s, want %s",
			manual.ID, name, manual.Status, wantManual)
	}
	if manual.Status != wantManual {
		t.Fatalf("manual.Status: want wantManual; %s: manual_approval = %s, want %s",
			name, manual.Status, wantManual)
	}
	if res.VoidApproval != (approved && anyFail) {
		t.Fatalf("%s: VoidApproval = %v", name, res.VoidApproval)
	}
	var want model.Gate
	switch {
	case anyFail:
		want = model.GateBlocked
	case anyWarn || !approved:
		want = model.GateWarning
	default:
		want = model.GateReadyForDNS
	}
	if res.Gate != want {
		t.Fatalf("%s: gate = %s, want %s; checks %+v", name, res.Gate, want, res.Checks)
	}
	if res.Gate == model.GateReadyForDNS && len(res.Failing()) != 0 {
		t.Fatalf("%s: ready_for_dns with failing checks %v", name, res.Failing())
	}
}

// TestDecideTable enumerates all 3^6 status vectors of the six checks against the rule
// written out independently: ready only when all pass, blocked on any fail.
func TestDecideTable(t *testing.T) {
	for code := range 729 {
		v := make([]model.CheckStatus, 6)
		c := code
		pass, fail := 0, 0
		for i := range v {
			v[i] = statuses[c%3]
			c /= 3
			switch v[i] {
			case model.CheckPass:
				pass++
			case model.CheckFail:
				fail++
			}
		}
		want := model.GateWarning
		if fail > 0 {
			want = model.GateBlocked
		} else if pass == 6 {
			want = model.GateReadyForDNS
		}
		if got := Decide(v); got != want {
			t.Fatalf("Decide(%v) = %s, want %s", v, got, want)
		}
	}
	for _, tc := range []struct {
		in   []model.CheckStatus
		want model.Gate
	}{
		{nil, model.GateBlocked},
		{[]model.CheckStatus{"maybe"}, model.GateBlocked},
		{[]model.CheckStatus{model.CheckPass, "maybe"}, model.GateBlocked},
	} {
		if got := Decide(tc.in); got != tc.want {
			t.Errorf("Decide(%v) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestAssessMessages(t *testing.T) {
	th := Thresholds{}
	tests := []struct {
		name string
		f    MailboxFacts
		id   model.CheckID
		want model.CheckStatus
		msg  string
	}{
		{"never synced", MailboxFacts{Email: "a@x"}, model.CheckCountRatio, model.CheckFail, "a@x: no completed pass"},
		{"ratio exact", clean("a@x"), model.CheckCountRatio, model.CheckPass, ""},
		{"more on dest", func() MailboxFacts { f := clean("a@x"); f.DestMessages = 1200; return f }(), model.CheckCountRatio, model.CheckPass, ""},
		{"ratio warn", facts("a@x", model.CheckCountRatio, model.CheckWarn), model.CheckCountRatio, model.CheckWarn, "a@x: 990/1000 messages (ratio 0.9900)"},
		{"quarantine excluded from ratio", func() MailboxFacts {
			f := clean("a@x")
			f.Quarantined, f.DestMessages = 5, 995
			return f
		}(), model.CheckCountRatio, model.CheckPass, ""},
		{"empty mailbox", MailboxFacts{Email: "a@x", Synced: true, HasInbox: true, HasSent: true}, model.CheckCountRatio, model.CheckPass, ""},
		{"inbox missing", facts("a@x", model.CheckInboxComplete, model.CheckFail), model.CheckInboxComplete, model.CheckFail, "a@x: INBOX 390/400, 10 missing"},
		{"inbox arrived during pass", func() MailboxFacts {
			f := clean("a@x")
			f.InboxDest, f.Pending = 398, 2
			return f
		}(), model.CheckInboxComplete, model.CheckWarn, "a@x: INBOX 398/400, 2 arrived during the pass"},
		{"no sent folder", facts("a@x", model.CheckSentComplete, model.CheckWarn), model.CheckSentComplete, model.CheckWarn, "a@x: no Sent folder detected on the source (check the folder map)"},
		{"quarantine small", facts("a@x", model.CheckPSTQuarantine, model.CheckWarn), model.CheckPSTQuarantine, model.CheckWarn, "a@x: 2 message(s) quarantined (refused by the destination)"},
		{"quarantine large", facts("a@x", model.CheckPSTQuarantine, model.CheckFail), model.CheckPSTQuarantine, model.CheckFail, "a@x: 200 message(s) quarantined (refused by the destination)"},
		{"stale folders", func() MailboxFacts {
			f := clean("a@x")
			f.StaleFolders = 1
			return f
		}(), model.CheckDestHeld, model.CheckWarn, "a@x: 1 destination folder(s) hold copies of source folders renamed or deleted on the source (kept)"},
		{"keywords dropped", func() MailboxFacts {
			f := clean("a@x")
			f.KeywordsDropped, f.DroppedKeywords = 12, []string{"kw130", "kw131"}
			return f
		}(), model.CheckPSTQuarantine, model.CheckWarn, "a@x: 12 message(s) stored without keywords the destination refused (kw130 kw131)"},
		{"pending at threshold fails", func() MailboxFacts { f := clean("a@x"); f.Pending = 100; return f }(), model.CheckDeltaPending, model.CheckFail, "a@x: 100 message(s) pending after the last pass"},
		{"pending below threshold warns", func() MailboxFacts { f := clean("a@x"); f.Pending = 99; return f }(), model.CheckDeltaPending, model.CheckWarn, "a@x: 99 message(s) pending after the last pass"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Assess(tc.f, th)[tc.id]
			if got.Status != tc.want {
				t.Errorf("got.Status: want tc.want; %s = %s %q, want %s %q",
					tc.id, got.Status, got.Message, tc.want, tc.msg)
			} else if got.Message != tc.msg {
				t.Errorf("got.Message: want tc.msg; %s = %s %q, want %s %q",
					tc.id, got.Status, got.Message, tc.want, tc.msg)
			}
		})
	}
}

func TestThresholdsPerJob(t *testing.T) {
	f := facts("a@x", model.CheckCountRatio, model.CheckWarn) // ratio 0.99
	if got := Assess(f, Thresholds{CountRatioPass: 0.99})[model.CheckCountRatio].Status; got != model.CheckPass {
		t.Errorf("ratio 0.99 with pass threshold 0.99 = %s", got)
	}
	if got := Assess(f, Thresholds{CountRatioPass: 1, CountRatioWarn: 0.995})[model.CheckCountRatio].Status; got != model.CheckFail {
		t.Errorf("ratio 0.99 with warn threshold 0.995 = %s", got)
	}
	f = clean("a@x")
	f.Pending = 5
	if got := Assess(f, Thresholds{DeltaPendingFail: 5})[model.CheckDeltaPending].Status; got != model.CheckFail {
		t.Errorf("pending 5 with fail threshold 5 = %s", got)
	}
	for _, bad := range []Thresholds{
		{CountRatioPass: 1.5}, {CountRatioPass: 0.9, CountRatioWarn: 0.95}, {CountRatioWarn: -1},
		{QuarantineFailRatio: 2}, {DeltaPendingFail: -3},
		// NaN (YAML .nan) fails every comparison; found by jobspec's FuzzParse.
		{CountRatioPass: math.NaN()}, {CountRatioWarn: math.NaN()}, {QuarantineFailRatio: math.NaN()},
		{CountRatioPass: math.Inf(1)}, {QuarantineFailRatio: math.Inf(-1)},
	} {
		if bad.Validate() == nil {
			t.Errorf("Validate(%+v) = nil", bad)
		}
	}
	if err := (Thresholds{}).Validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
	if err := (Thresholds{CountRatioPass: 0.9}).Validate(); err != nil {
		t.Errorf("pass 0.9 with default warn: %v", err)
	}
}

func TestSummaryMergeEqualsSequentialAddAndStaysSmall(t *testing.T) {
	var all, a, b Summary
	for i := range 40 {
		f := clean(fmt.Sprintf("u%02d@x", i))
		switch i % 4 {
		case 1:
			f = facts(f.Email, model.CheckCountRatio, model.CheckWarn)
		case 2:
			f = facts(f.Email, model.CheckCountRatio, model.CheckFail)
		}
		all.Add(f, Thresholds{})
		if i < 17 {
			a.Add(f, Thresholds{})
		} else {
			b.Add(f, Thresholds{})
		}
	}
	a.Merge(b)
	if !reflect.DeepEqual(a, all) {
		t.Fatalf("merge differs from sequential add:\n%+v\n%+v", a, all)
	}
	tl := all.Checks[model.CheckCountRatio]
	if tl.Pass != 20 {
		t.Fatalf("tl.Pass = %v, want 20; tally = %+v", tl.Pass, tl)
	}
	if tl.Warn != 10 {
		t.Fatalf("tl.Warn = %v, want 10; tally = %+v", tl.Warn, tl)
	}
	if tl.Fail != 10 {
		t.Fatalf("tl.Fail = %v, want 10; tally = %+v", tl.Fail, tl)
	}
	if len(tl.Examples) != MaxExamples {
		t.Fatalf("len(tl.Examples) = %v, want %v (MaxExamples); tally = %+v", len(tl.Examples), MaxExamples, tl)
	}
	for _, e := range tl.Examples {
		if !strings.Contains(e, "500/1000") {
			t.Errorf("example %q is not a failing mailbox", e)
		}
	}
	c := Evaluate(all, nil).Checks[0]
	if c.Status != model.CheckFail || !strings.HasPrefix(c.Message, "10/40 mailboxes fail: u02@x") || !strings.HasSuffix(c.Message, "; and 5 more") {
		t.Errorf("count_ratio = %+v", c)
	}
	// A warn-only half merged after a fail-only half keeps only fail examples, and vice versa.
	var warnOnly, failOnly Summary
	warnOnly.Add(facts("w@x", model.CheckDeltaPending, model.CheckWarn), Thresholds{})
	failOnly.Add(facts("f@x", model.CheckDeltaPending, model.CheckFail), Thresholds{})
	x := warnOnly
	x.Checks = map[model.CheckID]Tally{}
	for k, v := range warnOnly.Checks {
		x.Checks[k] = v
	}
	x.Merge(failOnly)
	if ex := x.Checks[model.CheckDeltaPending].Examples; len(ex) != 1 || !strings.HasPrefix(ex[0], "f@x") {
		t.Errorf("warn then fail examples = %q", ex)
	}
	failOnly.Merge(warnOnly)
	if ex := failOnly.Checks[model.CheckDeltaPending].Examples; len(ex) != 1 || !strings.HasPrefix(ex[0], "f@x") {
		t.Errorf("fail then warn examples = %q", ex)
	}
}

func TestEvaluateNoMailboxesBlocks(t *testing.T) {
	res := Evaluate(Summary{}, &Approval{By: "lead", At: "now"})
	if res.Gate != model.GateBlocked {
		t.Fatalf("empty summary gate = %s", res.Gate)
	}
	if !strings.Contains(strings.Join(res.Failing(), "\n"), "count_ratio fail: no mailbox results") {
		t.Fatalf("failing = %q", res.Failing())
	}
}
