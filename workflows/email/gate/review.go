package gate

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cutover/cutover/internal/model"
)

// MaxFindings bounds the mailboxes a Tally lists by name.
const MaxFindings = 200

// AllMailboxes is the Mailbox of a review of a whole check whose mailboxes are too many to
// list (Tally.Truncated): it accepts every mailbox warning on the check, bound to how many warn
// and to their source messages (Review.Warns, Review.Source).
const AllMailboxes = "*"

// MailboxFinding is one mailbox's verdict on one check, when it did not pass.
type MailboxFinding struct {
	Email   string            `json:"email"`
	Status  model.CheckStatus `json:"status"`
	Message string            `json:"message"`
	Source  int64             `json:"source_messages"` // the mailbox's source count: new mail changes it
}

// addFindings lists findings up to MaxFindings and returns those it could not list.
func (t *Tally) addFindings(fs ...MailboxFinding) (unlisted []MailboxFinding) {
	for _, f := range fs {
		if len(t.Findings) >= MaxFindings {
			t.Truncated = true
			unlisted = append(unlisted, f)
			continue
		}
		t.Findings = append(t.Findings, f)
	}
	return unlisted
}

// Review is a warning an ops lead accepted after looking at it: one check of one mailbox,
// bound to the warning's words and the mailbox's source count at that moment. New mail on the
// mailbox or a different warning voids it; a failing check is never accepted.
type Review struct {
	Check   model.CheckID `json:"check_id"`
	Mailbox string        `json:"mailbox"`
	Message string        `json:"message"`         // the warning accepted, verbatim
	Source  int64         `json:"source_messages"` // the mailbox's source messages then
	// Warns: for a review of every mailbox (Mailbox AllMailboxes), how many warned; Source is
	// then the sum of their source messages.
	Warns  int64     `json:"warns,omitempty"`
	By     string    `json:"by"`
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
}

// Acceptance names what an operator accepts: a check, of one mailbox or of every mailbox that
// warns on it ("sent_complete", "sent_complete:bob@example.com").
type Acceptance struct {
	Check   model.CheckID
	Mailbox string // "" = every mailbox warning on Check now
}

// ParseAcceptance reads "CHECK[:MAILBOX]".
func ParseAcceptance(s string) (Acceptance, error) {
	id, mb, _ := strings.Cut(strings.TrimSpace(s), ":")
	a := Acceptance{Check: model.CheckID(id), Mailbox: strings.ToLower(strings.TrimSpace(mb))}
	switch {
	case a.Check == model.CheckManualApproval:
		return a, fmt.Errorf("%q: manual_approval is given by approving, not accepted", s)
	case !slices.Contains(mailboxChecks, a.Check):
		names := make([]string, len(mailboxChecks))
		for i, c := range mailboxChecks {
			names[i] = string(c)
		}
		return a, fmt.Errorf("%q: unknown check; want one of %s, optionally :MAILBOX", s, strings.Join(names, ", "))
	}
	return a, nil
}

// Accept turns acceptances into reviews of the summary's current warnings; skipped mailboxes
// are out of the gate and ignored. It refuses a failing check or mailbox (a fail is never
// accepted) and a mailbox that does not warn. A whole check whose mailboxes are too many to
// list is accepted as one review of every mailbox warning on it (AllMailboxes).
func Accept(s Summary, skipped []string, as []Acceptance, by, reason string, at time.Time) ([]Review, error) {
	var out []Review
	for _, a := range as {
		tl := s.Checks[a.Check]
		if a.Mailbox == "" && tl.Truncated {
			for _, f := range append(slices.Clone(tl.Findings), s.unlisted(a.Check, skipped)...) {
				if slices.Contains(skipped, f.Email) {
					tl.dec(f)
				}
			}
			r, err := acceptAll(a.Check, tl, by, reason, at)
			if err != nil {
				return nil, err
			}
			out = append(out, r)
			continue
		}
		var warns []MailboxFinding
		for _, f := range tl.Findings {
			if slices.Contains(skipped, f.Email) || (a.Mailbox != "" && f.Email != a.Mailbox) {
				continue
			}
			if f.Status == model.CheckFail {
				return nil, fmt.Errorf("%s fails for %s (%s): a failing check is never accepted; fix it, or skip the mailbox",
					a.Check, f.Email, f.Message)
			}
			warns = append(warns, f)
		}
		switch {
		case len(warns) == 0 && a.Mailbox != "" && tl.Truncated:
			return nil, fmt.Errorf("%s: %s is not among the %d mailboxes listed (%d warn, %d fail); once none fails, "+
				"review the check and accept it as a whole (%s)", a.Check, a.Mailbox, MaxFindings, tl.Warn, tl.Fail, a.Check)
		case len(warns) == 0 && a.Mailbox != "":
			return nil, fmt.Errorf("%s does not warn for %s: nothing to accept", a.Check, a.Mailbox)
		case len(warns) == 0:
			return nil, fmt.Errorf("%s does not warn for any mailbox: nothing to accept", a.Check)
		}
		for _, f := range warns {
			out = append(out, Review{Check: a.Check, Mailbox: f.Email, Message: f.Message, Source: f.Source,
				By: by, At: at, Reason: reason})
		}
	}
	return out, nil
}

// acceptAll reviews every mailbox warning on a check too large to list, when none fails.
func acceptAll(id model.CheckID, tl Tally, by, reason string, at time.Time) (Review, error) {
	switch {
	case tl.Fail > 0:
		return Review{}, fmt.Errorf("%s fails for %d mailbox(es) (%s): a failing check is never accepted; fix them, or skip "+
			"the mailboxes", id, tl.Fail, strings.Join(tl.Examples, "; "))
	case tl.Warn == 0:
		return Review{}, fmt.Errorf("%s does not warn for any mailbox: nothing to accept", id)
	}
	return Review{Check: id, Mailbox: AllMailboxes, Message: fmt.Sprintf("%d mailboxes warn", tl.Warn), Source: tl.WarnSource,
		Warns: tl.Warn, By: by, At: at, Reason: reason}, nil
}

// Reviewed is what humans decided beside the facts: accepted warnings and skipped mailboxes.
type Reviewed struct {
	Reviews []Review
	Skipped []string // mailboxes out of the gate
}

// EvaluateReviewed is Evaluate with reviews and skips applied: a skipped mailbox's findings
// leave the gate; a warning matching a review counts as passing; a review whose warning
// changed, turned into a failure or met new mail is returned in Voided and no longer counts.
func EvaluateReviewed(s Summary, approval *Approval, rv Reviewed) Result {
	a := apply(s, rv)
	res := Evaluate(a.Summary, approval)
	res.Voided = a.voided
	for i, c := range res.Checks {
		if acc := a.accepted[c.ID]; len(acc) > 0 {
			res.Checks[i] = withReviews(c, a.Checks[c.ID], acc)
		}
	}
	statuses := make([]model.CheckStatus, len(res.Checks))
	for i, c := range res.Checks {
		statuses[i] = c.Effective()
	}
	res.Gate = Decide(statuses)
	return res
}

type applied struct {
	Summary
	accepted map[model.CheckID][]Review
	voided   []Review
}

// apply removes skipped mailboxes and accepted warnings from a copy of s.
func apply(s Summary, rv Reviewed) applied {
	out := applied{Summary: Summary{Mailboxes: s.Mailboxes, Checks: map[model.CheckID]Tally{}},
		accepted: map[model.CheckID][]Review{}}
	skippedHere := map[string]bool{}
	wholeAccepted := map[model.CheckID]bool{}
	for _, id := range mailboxChecks {
		tl := s.Checks[id]
		nt := Tally{Pass: tl.Pass, Warn: tl.Warn, Fail: tl.Fail, Truncated: tl.Truncated, WarnSource: tl.WarnSource}
		var kept []MailboxFinding
		for _, f := range tl.Findings {
			if slices.Contains(rv.Skipped, f.Email) {
				skippedHere[f.Email] = true
				nt.dec(f)
				continue
			}
			kept = append(kept, f)
		}
		// Skipped mailboxes the tally counts without listing them leave it too.
		for _, f := range s.unlisted(id, rv.Skipped) {
			skippedHere[f.Email] = true
			nt.dec(f)
		}
		// A review of the whole check holds while the same mailboxes warn with the same mail.
		if all, ok := wholeCheck(rv.Reviews, id); ok {
			switch {
			case nt.Fail == 0 && nt.Warn > 0 && nt.Warn == all.Warns && nt.WarnSource == all.Source:
				out.accepted[id] = append(out.accepted[id], all)
				wholeAccepted[id] = true
				kept = slices.DeleteFunc(kept, func(f MailboxFinding) bool { return f.Status == model.CheckWarn })
				nt.Warn = 0
			case nt.Warn+nt.Fail > 0:
				out.voided = append(out.voided, all) // new mail, another mailbox warning, or a failure
			}
		}
		for _, f := range kept {
			if f.Status == model.CheckWarn {
				if r, ok := matching(rv.Reviews, id, f); ok {
					out.accepted[id] = append(out.accepted[id], r)
					nt.Warn--
					continue
				}
			}
			nt.Findings = append(nt.Findings, f)
		}
		nt.Examples = examplesOf(nt, tl, rv.Skipped)
		if w := nt.worst(); len(nt.Examples) < MaxExamples && w != model.CheckPass && tl.Truncated {
			for _, f := range s.unlistedWhere(id, -1, func(e string) bool { return !slices.Contains(rv.Skipped, e) }) {
				named := slices.ContainsFunc(nt.Examples, func(m string) bool { return strings.HasPrefix(m, f.Email+": ") })
				if f.Status == w && len(nt.Examples) < MaxExamples && !named {
					nt.Examples = append(nt.Examples, f.Message)
				}
			}
		}
		out.Checks[id] = nt
	}
	out.Mailboxes -= int64(len(skippedHere))
	for _, r := range rv.Reviews {
		if r.Mailbox == AllMailboxes || wholeAccepted[r.Check] || slices.Contains(rv.Skipped, r.Mailbox) ||
			slices.Contains(out.accepted[r.Check], r) {
			continue
		}
		if i := slices.IndexFunc(s.Checks[r.Check].Findings, func(f MailboxFinding) bool { return f.Email == r.Mailbox }); i >= 0 {
			out.voided = append(out.voided, r) // the mailbox warns differently now, or fails
		}
		// Not listed: the mailbox passes now (nothing left to accept) or the list is truncated.
	}
	return out
}

// wholeCheck finds the review of every mailbox of a check.
func wholeCheck(rs []Review, id model.CheckID) (Review, bool) {
	for _, r := range rs {
		if r.Check == id && r.Mailbox == AllMailboxes {
			return r, true
		}
	}
	return Review{}, false
}

func matching(rs []Review, id model.CheckID, f MailboxFinding) (Review, bool) {
	for _, r := range rs {
		if r.Check == id && r.Mailbox == f.Email && r.Message == f.Message && r.Source == f.Source {
			return r, true
		}
	}
	return Review{}, false
}

// dec takes a mailbox's finding out of the tally.
func (t *Tally) dec(f MailboxFinding) {
	switch f.Status {
	case model.CheckFail:
		t.Fail--
	case model.CheckWarn:
		t.Warn--
		t.WarnSource -= f.Source
	}
}

// examplesOf rebuilds a tally's examples from its remaining findings, worst status first; a
// tally too large to list keeps those of its examples that name no skipped mailbox and are
// still of its worst status.
func examplesOf(nt, orig Tally, skipped []string) []string {
	var out []string
	worst := nt.worst()
	for _, f := range nt.Findings {
		if f.Status == worst && len(out) < MaxExamples {
			out = append(out, f.Message)
		}
	}
	if !orig.Truncated || worst != orig.worst() {
		return out
	}
	for _, m := range orig.Examples {
		email, _, _ := strings.Cut(m, ": ")
		if len(out) < MaxExamples && !slices.Contains(out, m) && !slices.Contains(skipped, email) {
			out = append(out, m)
		}
	}
	return out
}

// withReviews marks a check whose every warning was accepted, and lists the reviews.
func withReviews(c Check, tl Tally, acc []Review) Check {
	c.Reviews = acc
	var parts []string
	n := int64(0)
	for _, r := range acc {
		parts = append(parts, fmt.Sprintf("%s accepted by %s at %s: %s", r.who(), r.By, r.At.UTC().Format(time.RFC3339), r.Reason))
		n += max(1, r.Warns)
	}
	if tl.Warn == 0 && tl.Fail == 0 {
		c.Status, c.Accepted = model.CheckWarn, true
		c.Message = fmt.Sprintf("%d mailbox warning(s) reviewed and accepted: %s", n, strings.Join(parts, "; "))
		return c
	}
	c.Message += "; accepted: " + strings.Join(parts, "; ")
	return c
}

// who names what a review covers: a mailbox, or every mailbox warning on the check.
func (r Review) who() string {
	if r.Mailbox == AllMailboxes {
		return fmt.Sprintf("every mailbox warning (%d)", r.Warns)
	}
	return r.Mailbox
}

// Effective is the status the gate decides on: an accepted warning passes.
func (c Check) Effective() model.CheckStatus {
	if c.Accepted && c.Status == model.CheckWarn {
		return model.CheckPass
	}
	return c.Status
}

// AcceptedBy sums a check's reviews for migration_gate_checks: the reviewers, the latest time
// and the reasons by mailbox ("" when the check is not accepted).
func (c Check) AcceptedBy() (by string, at time.Time, reason string) {
	if !c.Accepted {
		return "", time.Time{}, ""
	}
	var who, why []string
	for _, r := range c.Reviews {
		if !slices.Contains(who, r.By) {
			who = append(who, r.By)
		}
		why = append(why, r.who()+": "+r.Reason)
		if r.At.After(at) {
			at = r.At
		}
	}
	return strings.Join(who, ", "), at, strings.Join(why, "; ")
}
