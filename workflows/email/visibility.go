package email

import (
	"fmt"

	"go.temporal.io/sdk/workflow"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/searchattr"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

func (w *jobRun) visibility(ctx workflow.Context) {
	st := w.st
	pct := st.SyncPercent
	details := w.details()
	if details != w.lastDetails {
		w.lastDetails = details
		workflow.SetCurrentDetails(ctx, details) // no history event
	}
	key := fmt.Sprintf("%s|%s|%.2f|%s", st.Phase, st.Gate, pct, w.state())
	if key == w.lastVisibility {
		return
	}
	w.lastVisibility = key
	err := workflow.UpsertTypedSearchAttributes(ctx,
		searchattr.Kind.ValueSet(emailapi.Kind), searchattr.Domain.ValueSet(st.Domain), searchattr.TenantID.ValueSet(st.TenantID),
		searchattr.Phase.ValueSet(string(st.Phase)), searchattr.Gate.ValueSet(string(st.Gate)),
		searchattr.SyncPercent.ValueSet(pct), searchattr.Status.ValueSet(w.state()))
	if err != nil {
		workflow.GetLogger(ctx).Warn("upsert search attributes", "error", err)
	}
}

// details is the job's current details in the Temporal UI (markdown): the phase line, what it
// waits for, what a human should do next, reviews, skips and failing attempts.
func (w *jobRun) details() string {
	st := w.st
	s := w.status()
	pct := st.SyncPercent
	if s.Progress != nil && s.Progress.SourceMessages > 0 && st.CurrentPass != nil && st.CurrentPass.RunType == model.RunInitial {
		pct = s.Progress.Percent
	}
	var d string
	if st.Phase == model.PhaseFailed {
		// A failed job's workflow stays open (it waits for the retry command), so the UI shows
		// it Running: the details say failed first, with the cause and the command to send.
		d = FailedLine(st.JobID, st.FailedPhase, st.LastError) +
			fmt.Sprintf("\n\ngate **%s** · %.1f%% synced · %d mailboxes", st.Gate, pct, st.Mailboxes)
		if s.Waiting != "" {
			d += "\n\n⏳ " + s.Waiting
		}
		return d + w.reviewDetails() + w.retryingDetails()
	}
	d = fmt.Sprintf("**%s** · gate **%s** · %.1f%% synced · %d mailboxes · %s",
		st.Phase, st.Gate, pct, st.Mailboxes, w.state())
	if s.Waiting != "" {
		d += "\n\n⏳ " + s.Waiting
	}
	if s.Next != "" {
		d += "\n\n➡ next: " + truncate(s.Next, 700)
	}
	return d + w.silent.Details() + w.reviewDetails() + w.retryingDetails()
}

// FailedLine is what the Temporal UI shows of a failed job: in its current details and as the
// summary of the timer it waits on for the retry command.
func FailedLine(job int64, phase model.Phase, cause string) string {
	return fmt.Sprintf("❌ **failed** in **%s**: %s\n\n➡ next: fix the cause, then `cutover email retry %d`",
		phase, truncate(cause, 600), job)
}

// state is the MigrationStatus search attribute.
func (w *jobRun) state() string {
	switch {
	case w.st.Aborted != nil:
		return "aborted"
	case w.st.Phase == model.PhaseClosed:
		return "completed"
	case w.st.Phase == model.PhaseFailed:
		return "failed"
	case w.st.Phase == model.PhaseCutoverReady:
		return "waiting"
	}
	return "running"
}

// record takes a snapshot for PostgreSQL, handing over the pending notes and checks.
func (w *jobRun) record() emailapi.JobRecord {
	st := w.st
	js := emailapi.JobState{ID: st.JobID, Phase: st.Phase, Gate: st.Gate, FailedPhase: st.FailedPhase, LastError: st.LastError,
		DNSCutoverAt: st.DNSCutoverAt, CutoverPlannedAt: st.CutoverAt, SyncPercent: st.SyncPercent}
	if st.Phase != model.PhaseFailed {
		js.FailedPhase = ""
	}
	if st.Approval != nil {
		js.ApprovedBy, js.ApprovedAt = st.Approval.By, st.ApprovedAt
	}
	if st.PredictedFinalSync > 0 {
		s := st.PredictedFinalSync.Seconds()
		js.PredictedFinalSyncSeconds = &s
	}
	m := emailapi.JobRecord{State: js, Notes: st.PendingNotes, Mailboxes: st.PendingMailboxOps}
	st.PendingMailboxOps = nil
	if st.ChecksPending {
		m.Checks = st.Checks
		st.ChecksPending = false
	}
	st.PendingNotes = nil
	return m
}

func (w *jobRun) status() emailapi.Status {
	st := w.st
	s := emailapi.Status{JobID: st.JobID, Phase: st.Phase, Gate: st.Gate, SyncPercent: st.SyncPercent, Domain: st.Domain,
		TenantID: st.TenantID, State: w.state(), FailedPhase: st.FailedPhase, LastError: st.LastError,
		Mailboxes: st.Mailboxes, MailboxCounts: st.MailboxCounts, MailboxDetails: st.MailboxDetails, Checks: st.Checks,
		CutoverAt: st.CutoverAt, DNSCutoverAt: st.DNSCutoverAt, DNSCutoverBy: st.DNSCutoverBy, Presyncs: st.Presyncs,
		NextPresyncAt: st.NextPresyncAt, LastPass: st.LastPass, CurrentPass: st.CurrentPass,
		PredictedFinalSyncSeconds: st.PredictedFinalSync.Seconds(), Preflight: st.Preflight, Verify: st.Verify,
		FinalRounds: st.FinalRounds, VerifiedAt: st.VerifiedAt, PostSyncs: st.PostSyncs, ClosedBy: st.ClosedBy,
		Refused: st.Refused, ContinuedRuns: st.Runs, Retrying: st.Retrying, Reviews: st.Reviews, Skipped: st.Skipped,
		Progress: st.Progress, DNS: st.DNS, Notifications: st.Notify.Summary(len(w.spec.Webhooks))}
	if st.Phase != model.PhaseFailed {
		s.FailedPhase = ""
	}
	if st.Approval != nil {
		s.ApprovedBy, s.ApprovedAt = st.Approval.By, st.ApprovedAt
	}
	if st.VerifiedAt != nil && st.Phase == model.PhaseVerified {
		end := st.VerifiedAt.Add(w.spec.Schedule.Soak.D())
		s.SoakEndsAt = &end
	}
	if st.CurrentPass == nil {
		s.Progress = nil
	}
	s.Waiting, s.Next = emailapi.Waiting(s), emailapi.NextAction(s)
	return s
}
