package email

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/email/emailapi"
	"github.com/cutover/cutover/workflows/email/gate"
)

// Human decisions beside the facts: warnings an ops lead reviewed and accepted (approve
// --accept), mailboxes taken out of the job (skip, unskip), new credentials for a mailbox
// (set_credentials). Each is validated without changing anything, recorded in the state, in
// migration_jobs.notes and, through the state writer, in PostgreSQL.

// acceptances parses an approve's Accept list (the mailbox checks; job-level ones apart).
func acceptances(r emailapi.Request) ([]gate.Acceptance, error) {
	var out []gate.Acceptance
	job, rest := jobAcceptances(r.Accept)
	if len(job) > 0 && strings.TrimSpace(r.Reason) == "" {
		return nil, errors.New(`accepting a warning needs "reason": why it is acceptable`)
	}
	for _, s := range rest {
		a, err := gate.ParseAcceptance(s)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	if len(out) > 0 && strings.TrimSpace(r.Reason) == "" {
		return nil, errors.New(`accepting a warning needs "reason": why it is acceptable`)
	}
	return out, nil
}

// validateAccept checks an approve's acceptances against the current warnings.
func (w *jobRun) validateAccept(r emailapi.Request) error {
	as, err := acceptances(r)
	if err != nil {
		return err
	}
	job, _ := jobAcceptances(r.Accept)
	if err := w.validateJobAccept(job); err != nil {
		return err
	}
	if len(as) == 0 {
		return nil
	}
	if w.st.Summary == nil {
		return errors.New("nothing to accept yet: the gate has not been evaluated")
	}
	if _, err := gate.Accept(*w.st.Summary, w.skippedEmails(), as, r.By, r.Reason, time.Time{}); err != nil {
		return fmt.Errorf("approve refused: %w", err)
	}
	return nil
}

// applyAccept records the reviews of an accepted approve; it returns what was accepted.
func (w *jobRun) applyAccept(ctx workflow.Context, r emailapi.Request, now time.Time) string {
	as, _ := acceptances(r)
	job, _ := jobAcceptances(r.Accept)
	jobNames := w.acceptJobChecks(job, r.By, strings.TrimSpace(r.Reason), now)
	if len(jobNames) > 0 {
		w.note(ctx, fmt.Sprintf("accepted by %s (%s): %s", r.By, strings.Join(jobNames, ", "), strings.TrimSpace(r.Reason)))
	}
	if len(as) == 0 || w.st.Summary == nil {
		return strings.Join(jobNames, ", ")
	}
	rs, err := gate.Accept(*w.st.Summary, w.skippedEmails(), as, r.By, strings.TrimSpace(r.Reason), now)
	if err != nil { // validated; the facts cannot have changed in between
		return ""
	}
	var names []string
	for _, nr := range rs {
		w.st.Reviews = slices.DeleteFunc(w.st.Reviews, func(o gate.Review) bool {
			return o.Check == nr.Check && o.Mailbox == nr.Mailbox
		})
		w.st.Reviews = append(w.st.Reviews, nr)
		if nr.Mailbox == gate.AllMailboxes {
			names = append(names, fmt.Sprintf("%s (all %d mailboxes warning)", nr.Check, nr.Warns))
			continue
		}
		names = append(names, string(nr.Check)+":"+nr.Mailbox)
	}
	w.note(ctx, fmt.Sprintf("accepted by %s (%s): %s", r.By, strings.Join(names, ", "), nr0(rs).Reason))
	return strings.Join(append(jobNames, names...), ", ")
}

func nr0(rs []gate.Review) gate.Review {
	if len(rs) == 0 {
		return gate.Review{}
	}
	return rs[0]
}

func (w *jobRun) skippedEmails() []string {
	out := make([]string, len(w.st.Skipped))
	for i, s := range w.st.Skipped {
		out[i] = s.Email
	}
	return out
}

// knownMailbox reports whether the job is known to have the mailbox; true when the workflow
// cannot tell (the list of mailboxes lives in PostgreSQL, and the state writer ignores an
// email the job does not have).
func (w *jobRun) knownMailbox(email string) bool {
	st := w.st
	if len(st.MailboxDetails) < st.Mailboxes {
		return true
	}
	return slices.ContainsFunc(st.MailboxDetails, func(p emailapi.MailboxProgress) bool { return p.Email == email }) ||
		slices.Contains(w.skippedEmails(), email)
}

// validateMailboxCommand checks skip, unskip and set_credentials.
func (w *jobRun) validateMailboxCommand(name string, r emailapi.Request) error {
	st := w.st
	email := strings.ToLower(strings.TrimSpace(r.Mailbox))
	if email == "" || !strings.Contains(email, "@") {
		return fmt.Errorf(`%s needs "mailbox": the mailbox's email address`, name)
	}
	if !w.knownMailbox(email) {
		return fmt.Errorf("%s refused: job %d has no mailbox %s", name, st.JobID, email)
	}
	skipped := slices.Contains(w.skippedEmails(), email)
	switch name {
	case emailapi.Skip:
		switch {
		case strings.TrimSpace(r.Reason) == "":
			return errors.New(`skip needs "reason": why the mailbox leaves the job`)
		case skipped:
			return fmt.Errorf("skip refused: %s is already skipped", email)
		}
	case emailapi.Unskip:
		if !skipped {
			return fmt.Errorf("unskip refused: %s is not skipped", email)
		}
	case emailapi.SetCredentials:
		if r.Side != "source" && r.Side != "dest" {
			return fmt.Errorf(`set_credentials needs "side": source or dest, not %q`, r.Side)
		}
		if !model.IsCredentialsRef(r.CredentialsRef) {
			return errors.New("set_credentials refused: credentials_ref " + model.NotACredentialsRef)
		}
	}
	return nil
}

// applyMailboxCommand carries out skip, unskip and set_credentials.
func (w *jobRun) applyMailboxCommand(ctx workflow.Context, name string, r emailapi.Request, now time.Time) string {
	st := w.st
	email := strings.ToLower(strings.TrimSpace(r.Mailbox))
	op := emailapi.MailboxOp{Email: email, By: r.By, At: now}
	var msg string
	switch name {
	case emailapi.Skip:
		op.Op, op.Reason = emailapi.OpSkip, strings.TrimSpace(r.Reason)
		st.Skipped = append(st.Skipped, emailapi.SkippedMailbox{Email: email, By: r.By, At: now, Reason: op.Reason})
		st.Unskipped = slices.DeleteFunc(st.Unskipped, func(e string) bool { return e == email })
		msg = fmt.Sprintf("skipped %s by %s: %s", email, r.By, op.Reason)
	case emailapi.Unskip:
		op.Op = emailapi.OpUnskip
		st.Skipped = slices.DeleteFunc(st.Skipped, func(s emailapi.SkippedMailbox) bool { return s.Email == email })
		st.Unskipped = append(st.Unskipped, email)
		if w.inAny(model.PhaseDeltaSync, model.PhaseCutoverReady) && !st.CutOver() {
			st.PresyncRequested = true // the gate waits for this mailbox's next pass
		}
		msg = fmt.Sprintf("un-skipped %s by %s%s; synced again from the next pass", email, r.By, because(r))
	case emailapi.SetCredentials:
		op.Op, op.Side, op.Ref = emailapi.OpCredentials, r.Side, r.CredentialsRef
		msg = fmt.Sprintf("new %s credentials for %s set by %s (ref %s)%s; used from the next pass; a failed job needs retry",
			r.Side, email, r.By, r.CredentialsRef, because(r))
	}
	st.PendingMailboxOps = append(st.PendingMailboxOps, op)
	w.note(ctx, msg)
	w.evaluate(ctx)
	return msg
}

// evaluateReviewed runs the gate with the reviews and skips, drops the reviews the facts
// voided (noting why), and holds the gate while an un-skipped mailbox waits for its pass.
func (w *jobRun) evaluateReviewed(ctx workflow.Context) gate.Result {
	st := w.st
	res := gate.EvaluateReviewed(*st.Summary, st.Approval, gate.Reviewed{Reviews: st.Reviews, Skipped: w.skippedEmails()})
	for _, v := range res.Voided {
		w.note(ctx, fmt.Sprintf("review of %s:%s by %s voided: the warning changed or new mail arrived (was: %s)",
			v.Check, v.Mailbox, v.By, v.Message))
		st.Reviews = slices.DeleteFunc(st.Reviews, func(o gate.Review) bool { return o == v })
	}
	res = w.withJobChecks(res)
	if len(st.Unskipped) > 0 {
		for i, c := range res.Checks {
			if c.ID == model.CheckCountRatio {
				res.Checks[i] = gate.Check{ID: c.ID, Status: model.CheckFail,
					Message: fmt.Sprintf("un-skipped, no pass since: %s (the next presync syncs them)", strings.Join(st.Unskipped, ", "))}
			}
		}
		res.Gate = model.GateBlocked
	}
	return res
}

// reviewDetails is the current details' part about reviews and skips ("" when none).
func (w *jobRun) reviewDetails() string {
	st := w.st
	d := ""
	if n := len(st.Reviews); n > 0 {
		var names []string
		for _, r := range st.Reviews {
			names = append(names, fmt.Sprintf("%s:%s by %s (%s)", r.Check, r.Mailbox, r.By, r.Reason))
		}
		d += fmt.Sprintf(" · %d warning(s) accepted: %s", n, truncate(strings.Join(names, "; "), 300))
	}
	if n := len(st.Skipped); n > 0 {
		d += fmt.Sprintf(" · %d mailbox(es) skipped: %s", n, truncate(strings.Join(w.skippedEmails(), ", "), 200))
	}
	return d
}

// validateLateAccept: after DNS cutover an approve only accepts a job-level warning that holds
// the job (mx_switched), with a reason.
func (w *jobRun) validateLateAccept(r emailapi.Request) error {
	job, rest := jobAcceptances(r.Accept)
	if len(job) == 0 || len(rest) > 0 {
		return fmt.Errorf("approve refused: DNS was already cut over (phase %s); only a DNS warning that holds "+
			"the final sync is accepted now (--accept %s)", w.st.Phase, model.CheckMXSwitched)
	}
	if strings.TrimSpace(r.Reason) == "" {
		return errors.New(`accepting a warning needs "reason": why it is acceptable`)
	}
	return w.validateJobAccept(job)
}

func (w *jobRun) applyLateAccept(ctx workflow.Context, r emailapi.Request, now time.Time) string {
	job, _ := jobAcceptances(r.Accept)
	names := w.acceptJobChecks(job, r.By, strings.TrimSpace(r.Reason), now)
	w.note(ctx, fmt.Sprintf("accepted by %s (%s): %s", r.By, strings.Join(names, ", "), strings.TrimSpace(r.Reason)))
	return fmt.Sprintf("accepted %s by %s: the final sync goes on", strings.Join(names, ", "), r.By)
}
