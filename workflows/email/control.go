package email

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/email/emailapi"
	"github.com/cutover/cutover/workflows/email/gate"
)

// maxRefused bounds the refused commands kept for the status.
const maxRefused = 5

// signal applies a command that came as a signal, or records why it was refused.
func (w *jobRun) signal(ctx workflow.Context, name string, r emailapi.Request) {
	if err := w.validate(name, r); err != nil {
		workflow.GetLogger(ctx).Warn("signal refused", "signal", name, "by", r.By, "reason", err)
		line := fmt.Sprintf("%s %s by %q refused: %v", workflow.Now(ctx).UTC().Format(time.RFC3339), name, r.By, err)
		w.st.Refused = append(w.st.Refused, line)
		if n := len(w.st.Refused); n > maxRefused {
			w.st.Refused = w.st.Refused[n-maxRefused:]
		}
		return
	}
	w.apply(ctx, name, r)
}

// inAny reports whether the job is in one of phases.
func (w *jobRun) inAny(phases ...model.Phase) bool {
	for _, p := range phases {
		if w.st.Phase == p {
			return true
		}
	}
	return false
}

// validate decides whether a command is accepted now. It reads the state only (update validators
// must not change it) and says why in words an operator can act on.
func (w *jobRun) validate(name string, r emailapi.Request) error {
	st := w.st
	if strings.TrimSpace(r.By) == "" {
		return fmt.Errorf(`%s needs "by": who is asking (a user id)`, name)
	}
	if st.Phase == model.PhaseClosed {
		return fmt.Errorf("%s refused: job %d is closed", name, st.JobID)
	}
	if st.Aborted != nil && name != emailapi.Abort {
		return fmt.Errorf("%s refused: job %d is being aborted", name, st.JobID)
	}
	switch name {
	case emailapi.Approve:
		switch {
		case st.CutOver():
			return w.validateLateAccept(r)
		case !w.inAny(model.PhaseDeltaSync, model.PhaseCutoverReady):
			return fmt.Errorf("approve refused in phase %s: approval is given in delta_sync or cutover_ready, once the gate has been evaluated", st.Phase)
		case st.Summary == nil:
			return errors.New("approve refused: the gate has not been evaluated yet (a presync is pending)")
		case st.Gate == model.GateBlocked:
			return fmt.Errorf("approve refused: the gate is blocked by failing checks:\n%s", w.notPassing(true))
		}
		return w.validateAccept(r)
	case emailapi.Skip, emailapi.Unskip, emailapi.SetCredentials:
		return w.validateMailboxCommand(name, r)
	case emailapi.DNSCutoverConfirmed:
		switch {
		case st.DNSCutoverAt != nil:
			return fmt.Errorf("dns_cutover_confirmed refused: already confirmed by %s at %s", st.DNSCutoverBy, st.DNSCutoverAt.UTC().Format(time.RFC3339))
		case !w.inAny(model.PhaseDeltaSync, model.PhaseCutoverReady):
			return fmt.Errorf("dns_cutover_confirmed refused in phase %s: DNS may only be switched from delta_sync or cutover_ready with the gate at ready_for_dns", st.Phase)
		case st.Gate != model.GateReadyForDNS:
			return fmt.Errorf("dns_cutover_confirmed refused: the gate is %s, not ready_for_dns; do not switch DNS/MX yet. Not passing:\n%s", st.Gate, w.notPassing(false))
		}
	case emailapi.Retry:
		switch {
		case st.Phase != model.PhaseFailed:
			return fmt.Errorf("retry refused in phase %s: only a failed job is retried", st.Phase)
		case st.RetryRequested != nil:
			return fmt.Errorf("retry refused: already requested by %s", st.RetryRequested.By)
		}
	case emailapi.Abort:
		if st.Aborted != nil {
			return fmt.Errorf("abort refused: already aborted by %s", st.Aborted.By)
		}
	case emailapi.SetCutoverTime:
		if st.CutOver() {
			return fmt.Errorf("set_cutover_time refused in phase %s: DNS was already cut over", st.Phase)
		}
	case emailapi.Close:
		if st.Phase != model.PhaseVerified {
			return fmt.Errorf("close refused in phase %s: only a verified job is closed (abort stops any other)", st.Phase)
		}
	case emailapi.PresyncNow:
		switch {
		case st.CutOver():
			return fmt.Errorf("presync_now refused in phase %s: no presync after DNS cutover", st.Phase)
		case !w.inAny(model.PhaseDeltaSync, model.PhaseCutoverReady):
			return fmt.Errorf("presync_now refused in phase %s: presyncs run in delta_sync and cutover_ready", st.Phase)
		case st.CurrentPass != nil:
			return errors.New("presync_now refused: a pass is running")
		}
	default:
		return fmt.Errorf("unknown command %q", name)
	}
	return nil
}

// notPassing lists the checks that do not pass (only failing ones when failOnly).
func (w *jobRun) notPassing(failOnly bool) string {
	var lines []string
	for _, c := range w.st.Checks {
		if c.Effective() == model.CheckPass || (failOnly && c.Status != model.CheckFail) {
			continue
		}
		lines = append(lines, fmt.Sprintf("  - %s %s: %s", c.ID, c.Status, c.Message))
	}
	if len(lines) == 0 {
		return "  (no checks recorded yet)"
	}
	return strings.Join(lines, "\n")
}

// because is a command's reason as a note ends with it: ": reason", or "" without one. The
// reason rides in Note (Reason is the reviewed warnings' reason of approve and skip's own).
func because(r emailapi.Request) string {
	if why := strings.TrimSpace(r.Note); why != "" {
		return ": " + why
	}
	return ""
}

// apply carries out an accepted command and returns what happened, for the update's answer.
func (w *jobRun) apply(ctx workflow.Context, name string, r emailapi.Request) string {
	st := w.st
	// Microseconds, as PostgreSQL keeps them: the status and the job row show the same times.
	now := workflow.Now(ctx).UTC().Truncate(time.Microsecond)
	var msg string
	switch name {
	case emailapi.Approve:
		if st.CutOver() {
			msg = w.applyLateAccept(ctx, r, now)
			break
		}
		st.Approval = &gate.Approval{By: r.By, At: now.UTC().Format(time.RFC3339), Note: r.Note}
		st.ApprovedAt = &now
		w.note(ctx, strings.TrimSuffix(fmt.Sprintf("approved by %s: %s", r.By, r.Note), ": "))
		accepted := w.applyAccept(ctx, r, now)
		w.evaluate(ctx)
		msg = fmt.Sprintf("approved by %s; gate is %s", r.By, st.Gate)
		if accepted != "" {
			msg = fmt.Sprintf("approved by %s, accepted %s; gate is %s", r.By, accepted, st.Gate)
		}
		if st.Gate != model.GateReadyForDNS {
			msg += "; still not passing (accept a reviewed warning with accept CHECK[:MAILBOX] and a reason):\n" +
				w.notPassing(false)
		}
	case emailapi.Skip, emailapi.Unskip, emailapi.SetCredentials:
		msg = w.applyMailboxCommand(ctx, name, r, now)
	case emailapi.DNSCutoverConfirmed:
		at := now
		if r.At != nil {
			at = r.At.UTC().Truncate(time.Microsecond)
		}
		st.DNSCutoverAt, st.DNSCutoverBy = &at, r.By
		w.note(ctx, fmt.Sprintf("DNS cutover confirmed by %s (switched at %s)%s", r.By, at.UTC().Format(time.RFC3339), because(r)))
		if w.cancelMirror != nil {
			w.cancelMirror() // users write to the destination now: stop any presync at once
		}
		msg = fmt.Sprintf("DNS cutover recorded; no mirror pass will run again; final sync (copy) starts %s after the switch",
			w.spec.Schedule.FinalSyncDelay.D())
	case emailapi.Retry:
		req := r
		st.RetryRequested = &req
		w.note(ctx, fmt.Sprintf("retry from %s requested by %s%s", st.FailedPhase, r.By, because(r)))
		msg = fmt.Sprintf("retrying from %s", st.FailedPhase)
	case emailapi.Abort:
		req := r
		st.Aborted = &req
		w.note(ctx, fmt.Sprintf("abort requested by %s%s", r.By, because(r)))
		if w.cancelWork != nil {
			w.cancelWork()
		}
		msg = "aborting: running passes are cancelled; the job is left failed and can be restarted"
	case emailapi.SetCutoverTime:
		if r.At == nil {
			st.CutoverAt = nil
			w.note(ctx, fmt.Sprintf("cutover time cleared by %s%s", r.By, because(r)))
			msg = "cutover time cleared: presyncs go on until one is set"
		} else {
			at := r.At.UTC().Truncate(time.Microsecond)
			st.CutoverAt = &at
			w.note(ctx, fmt.Sprintf("cutover time set to %s by %s%s", at.UTC().Format(time.RFC3339), r.By, because(r)))
			msg = "cutover time set to " + at.UTC().Format(time.RFC3339)
		}
	case emailapi.Close:
		req := r
		st.CloseRequested = &req
		msg = "closing"
	case emailapi.PresyncNow:
		st.PresyncRequested = true
		w.note(ctx, fmt.Sprintf("presync requested by %s%s", r.By, because(r)))
		msg = "presync requested"
	}
	workflow.GetLogger(ctx).Info("email job command", "command", name, "by", r.By, "job_id", st.JobID)
	w.wake++
	w.mark(ctx)
	return msg
}
