package email

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cutover/cutover/activities/emailjob"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/searchattr"
	"github.com/cutover/cutover/workflows/email/emailapi"
	"github.com/cutover/cutover/workflows/email/gate"
)

// ---- phases ----

func (w *jobRun) register(ctx workflow.Context) error {
	actx := workflow.WithActivityOptions(ctx, bookkeepingOptions(10*time.Minute))
	var acts *emailjob.Activities
	var reg emailapi.Registration
	if err := workflow.ExecuteActivity(actx, acts.RegisterEmailJob, w.spec).Get(ctx, &reg); err != nil {
		var ae *temporal.ApplicationError
		if errors.As(err, &ae) && ae.Type() == emailapi.ErrTypeBadSpec {
			return fatalError{err}
		}
		return err
	}
	st := w.st
	st.Mailboxes, st.Registered = reg.Mailboxes, true
	st.Skipped = nil
	for _, sk := range reg.Skipped {
		st.Skipped = append(st.Skipped, emailapi.SkippedMailbox{Email: sk.Email, By: sk.By, At: sk.At, Reason: sk.Reason})
	}
	if len(reg.Removed) > 0 {
		w.note(ctx, fmt.Sprintf("skipped (left out of the restarted job's spec): %s", strings.Join(reg.Removed, ", ")))
	}
	// The mailboxes live in PostgreSQL now; later runs carry only the job-level spec.
	w.spec.Mailboxes, w.spec.MailboxCount = nil, reg.Mailboxes
	if st.CutoverAt == nil && w.spec.Schedule.CutoverAt != nil {
		at := *w.spec.Schedule.CutoverAt
		st.CutoverAt = &at
	}
	if reg.Existing != nil {
		return w.resumeFrom(ctx, *reg.Existing)
	}
	w.note(ctx, fmt.Sprintf("registered %d mailboxes", reg.Mailboxes))
	w.enter(ctx, model.PhasePreflight)
	return nil
}

// resumeFrom continues a job an earlier execution left (aborted, terminated or failed): from
// its recorded phase, keeping its approval, planned hour and, above all, its DNS cutover.
func (w *jobRun) resumeFrom(ctx workflow.Context, p emailapi.JobProgress) error {
	st := w.st
	phase := p.Phase
	if phase == model.PhaseFailed {
		phase = p.FailedPhase
	}
	switch phase {
	case model.PhaseClosed:
		return fatalError{temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("job %d is closed; migrate again under a new job id", st.JobID), "JobClosed", nil)}
	case "", model.PhaseDiscovered:
		phase = model.PhasePreflight
	}
	if p.ApprovedBy != nil && p.ApprovedAt != nil {
		at := *p.ApprovedAt
		st.Approval = &gate.Approval{By: *p.ApprovedBy, At: at.UTC().Format(time.RFC3339)}
		st.ApprovedAt = &at
	}
	if p.CutoverPlannedAt != nil {
		at := *p.CutoverPlannedAt
		st.CutoverAt = &at
	}
	if p.DNSCutoverAt != nil {
		at := *p.DNSCutoverAt
		st.DNSCutoverAt = &at
		if !phase.AfterDNSCutover() {
			phase = model.PhaseDNSCutover
		}
	}
	if phase.AfterDNSCutover() {
		st.Gate = p.Gate
	} else {
		// No facts in memory: the gate stays blocked until a presync re-evaluates it.
		st.Gate = model.GateBlocked
		st.PresyncRequested = phase == model.PhaseDeltaSync || phase == model.PhaseCutoverReady
	}
	w.note(ctx, fmt.Sprintf("resumed from phase %s recorded by an earlier run", phase))
	w.enter(ctx, phase)
	return nil
}

func (w *jobRun) task(kind emailapi.TaskKind, runType model.RunType, mode model.SyncMode) emailapi.Task {
	t := waveTask(w.spec, kind, runType, mode, w.st.Phase, w.st.CutOver())
	t.HeartbeatTimeout = w.tuning.HeartbeatTimeout
	return t
}

// wave runs one pass over every mailbox as a MailboxWaveWorkflow child.
func (w *jobRun) wave(ctx workflow.Context, t emailapi.Task) (WaveResult, error) {
	st := w.st
	if t.Kind == emailapi.TaskSync && MirrorRefused(t) {
		return WaveResult{}, errMirrorRefused("job "+st.Domain, t)
	}
	st.WaveSeq++
	id := emailapi.WaveWorkflowID(st.JobID, st.WaveSeq)
	start := workflow.Now(ctx)
	st.CurrentPass = &emailapi.PassInfo{RunType: t.RunType, Mode: string(t.Mode), WorkflowID: id, Started: start}
	if t.Kind != emailapi.TaskSync {
		st.CurrentPass.RunType = model.RunType(t.Kind)
	}
	w.startProgress(st.CurrentPass.RunType)
	w.mark(ctx)
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:            id,
		WorkflowIDReusePolicy: enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WaitForCancellation:   true,
		ParentClosePolicy:     enums.PARENT_CLOSE_POLICY_REQUEST_CANCEL,
		TypedSearchAttributes: temporal.NewSearchAttributes(searchattr.Domain.ValueSet(st.Domain)),
		StaticSummary: fmt.Sprintf("%s pass over %d mailboxes of %s · child of %s (job %d)",
			st.CurrentPass.RunType, st.Mailboxes, st.Domain, emailapi.WorkflowID(st.JobID), st.JobID),
	})
	in := WaveInput{Spec: w.spec, Task: t, Concurrency: w.spec.Concurrency.Mailboxes,
		PageSize: w.tuning.PageSize, ContinueAfter: w.tuning.ContinueAfter, KeepResults: w.tuning.KeepResults}
	var res WaveResult
	err := workflow.ExecuteChildWorkflow(cctx, emailapi.WaveWorkflowName, in).Get(ctx, &res)
	pass := *st.CurrentPass
	st.CurrentPass, st.Retrying = nil, nil
	st.Progress, st.LiveCopied = nil, nil
	end := workflow.Now(ctx)
	pass.Finished, pass.Seconds = &end, end.Sub(start).Seconds()
	if err != nil {
		pass.Canceled = temporal.IsCanceledError(err)
		st.LastPass = &pass
		w.mark(ctx)
		return res, err
	}
	pass.Mailboxes, pass.Failed, pass.Transferred, pass.Deleted, pass.Pending, pass.Runs =
		res.Mailboxes, res.Failed, res.Transferred, res.Deleted, res.Pending, res.Runs
	st.LastPass = &pass
	return res, nil
}

// waveFailed is a phase failure naming the mailboxes that failed.
func waveFailed(what string, res WaveResult) error {
	return temporal.NewApplicationError(fmt.Sprintf("%s: %d of %d mailboxes failed: %s", what, res.Failed, res.Mailboxes,
		strings.Join(res.Failures, "; ")), "MailboxesFailed")
}

func (w *jobRun) preflight(ctx workflow.Context) error {
	res, err := w.wave(ctx, w.task(emailapi.TaskPreflight, model.RunPreflight, ""))
	if err != nil {
		return err
	}
	w.st.Preflight = &emailapi.PreflightInfo{Messages: res.SourceMessages, Bytes: res.SourceBytes, Warnings: res.Warnings}
	w.absorbMailboxes(res, model.RunPreflight)
	if res.Failed > 0 {
		return waveFailed("preflight", res)
	}
	w.refreshDNS(ctx)
	w.enter(ctx, model.PhaseInitialSync)
	return nil
}

func (w *jobRun) initialSync(ctx workflow.Context) error {
	res, err := w.wave(ctx, w.task(emailapi.TaskSync, model.RunInitial, model.ModeCopy))
	if err != nil {
		return err
	}
	w.absorbSync(ctx, res, model.RunInitial)
	if res.Failed > 0 {
		return waveFailed("initial sync", res)
	}
	w.enter(ctx, model.PhaseDeltaSync)
	return nil
}

// presyncStep is one turn of the migration plan's presync loop: wait for the next scheduled presync (or the
// cutover hour, or a command), then run it.
func (w *jobRun) presyncStep(ctx workflow.Context) error {
	st := w.st
	if st.DNSCutoverAt != nil {
		w.enter(ctx, model.PhaseCutoverReady)
		w.enter(ctx, model.PhaseDNSCutover)
		return nil
	}
	if st.CutoverAt != nil && !workflow.Now(ctx).Before(*st.CutoverAt) {
		w.enter(ctx, model.PhaseCutoverReady)
		return nil
	}
	if !st.PresyncRequested {
		next := w.nextPresync(ctx)
		if st.NextPresyncAt == nil || !st.NextPresyncAt.Equal(next) {
			st.NextPresyncAt = &next
			w.mark(ctx)
		}
		deadline := next
		if st.CutoverAt != nil && st.CutoverAt.Before(deadline) {
			deadline = *st.CutoverAt
		}
		wake := w.wake
		reached, err := w.sleepUntil(ctx, deadline, func() bool { return w.wake != wake })
		if err != nil || !reached {
			return err // a command changed something: decide again
		}
		if st.CutoverAt != nil && !workflow.Now(ctx).Before(*st.CutoverAt) {
			return nil // the cutover hour, not a presync
		}
	}
	return w.presync(ctx)
}

// presync runs one delta pass in the job's presync mode. DNS confirmed meanwhile cancels it.
func (w *jobRun) presync(ctx workflow.Context) error {
	st := w.st
	st.PresyncRequested, st.NextPresyncAt = false, nil
	w.refreshDNS(ctx) // the gate decides on TTLs as they are now
	t := w.task(emailapi.TaskSync, model.RunDelta, w.spec.Schedule.PresyncMode)
	// The gate decides on what these passes find: they compare the destination as it is.
	t.Presync, t.RecheckDest = true, true
	mctx, cancel := workflow.WithCancel(ctx)
	w.cancelMirror = cancel
	res, err := w.wave(mctx, t)
	w.cancelMirror = nil
	if err != nil {
		if temporal.IsCanceledError(err) && st.DNSCutoverAt != nil && ctx.Err() == nil {
			w.note(ctx, "presync stopped: DNS cutover confirmed")
			w.mark(ctx)
			return nil
		}
		return err
	}
	st.Presyncs++
	st.PredictedFinalSync = res.Duration()
	// A mailbox failing a presync does not fail the job: it blocks the gate, naming the error.
	w.absorbSync(ctx, res, model.RunDelta)
	return nil
}

func (w *jobRun) nextPresync(ctx workflow.Context) time.Time {
	last := workflow.Now(ctx)
	if w.st.LastPass != nil && w.st.LastPass.Finished != nil {
		last = *w.st.LastPass.Finished
	}
	sc := w.spec.Schedule
	if sc.PresyncAt == "" {
		return sc.NextPresync(last, time.UTC)
	}
	// Loading a time zone reads files: a side effect, so replays see the recorded answer.
	var next time.Time
	_ = workflow.SideEffect(ctx, func(workflow.Context) any {
		loc, err := time.LoadLocation(sc.Timezone)
		if err != nil {
			loc = time.UTC
		}
		return sc.NextPresync(last, loc)
	}).Get(&next)
	return next
}

// sleepUntil waits for deadline or cond; reached is true when the deadline came first.
func (w *jobRun) sleepUntil(ctx workflow.Context, deadline time.Time, cond func() bool) (reached bool, err error) {
	d := deadline.Sub(workflow.Now(ctx))
	if d <= 0 {
		return !cond(), nil
	}
	ok, err := workflow.AwaitWithTimeout(ctx, d, cond)
	return !ok, err
}

func (w *jobRun) cutoverReadyStep(ctx workflow.Context) error {
	st := w.st
	switch {
	case st.DNSCutoverAt != nil:
		w.enter(ctx, model.PhaseDNSCutover)
		return nil
	case st.CutoverAt == nil || workflow.Now(ctx).Before(*st.CutoverAt):
		w.enter(ctx, model.PhaseDeltaSync) // the hour was moved or cleared: presyncs go on
		return nil
	case st.PresyncRequested:
		return w.presync(ctx)
	}
	wake := w.wake
	return workflow.Await(ctx, func() bool { return w.wake != wake })
}

// dnsCutoverStep waits for DNS/MX to settle (Schedule.FinalSyncDelay, 5 minutes by default) before the final sync.
func (w *jobRun) dnsCutoverStep(ctx workflow.Context) error {
	if _, err := w.sleepUntil(ctx, w.st.DNSCutoverAt.Add(w.spec.Schedule.FinalSyncDelay.D()), func() bool { return false }); err != nil {
		return err
	}
	if err := w.checkMX(ctx); err != nil {
		return err
	}
	w.enter(ctx, model.PhaseFinalSync)
	return nil
}

// finalSyncStep is one round: a copy pass, then verification; verified only with nothing
// missing outside quarantine.
func (w *jobRun) finalSyncStep(ctx workflow.Context) error {
	st := w.st
	ft := w.task(emailapi.TaskSync, model.RunFinal, model.ModeCopy)
	ft.RecheckDest = true // copies again what users or the server lost before verification
	res, err := w.wave(ctx, ft)
	if err != nil {
		return err
	}
	w.absorbSync(ctx, res, model.RunFinal)
	if res.Failed > 0 {
		return waveFailed("final sync", res)
	}
	vres, err := w.wave(ctx, w.task(emailapi.TaskVerify, model.RunVerify, ""))
	if err != nil {
		return err
	}
	st.FinalRounds++
	st.Verify = &emailapi.VerifyInfo{Missing: vres.Missing, Extra: vres.Extra, Quarantined: vres.Quarantined, Rewritten: vres.Rewritten,
		OK: vres.Failed == 0 && vres.Missing == 0, Samples: vres.Samples}
	if vres.Failed > 0 {
		w.absorbMailboxes(vres, model.RunVerify)
		return waveFailed("verify", vres)
	}
	if vres.Missing == 0 {
		w.note(ctx, fmt.Sprintf("verified: nothing missing (%d quarantined) after %d final round(s)", vres.Quarantined, st.FinalRounds))
		w.enter(ctx, model.PhaseVerified)
		return nil
	}
	if st.FinalRounds >= w.spec.Schedule.FinalSyncRounds {
		return temporal.NewApplicationError(fmt.Sprintf("verify: %d message(s) missing outside quarantine after %d final-sync round(s): %s",
			vres.Missing, st.FinalRounds, strings.Join(vres.Samples, "; ")), "VerifyMissing")
	}
	w.mark(ctx)
	return nil // another round
}

// soakStep: after verification, INBOX post-syncs (copy only) until the soak ends or close.
func (w *jobRun) soakStep(ctx workflow.Context) error {
	st := w.st
	if st.VerifiedAt == nil {
		now := workflow.Now(ctx)
		st.VerifiedAt = &now
	}
	end := st.VerifiedAt.Add(w.spec.Schedule.Soak.D())
	if st.CloseRequested != nil {
		st.ClosedBy = st.CloseRequested.By
		w.note(ctx, fmt.Sprintf("closed by %s: %s", st.CloseRequested.By, st.CloseRequested.Note))
		w.enter(ctx, model.PhaseClosed)
		return nil
	}
	if !workflow.Now(ctx).Before(end) {
		st.ClosedBy = "soak"
		w.note(ctx, "closed: soak period ended")
		w.enter(ctx, model.PhaseClosed)
		return nil
	}
	last := *st.VerifiedAt
	if st.LastPostSyncAt != nil {
		last = *st.LastPostSyncAt
	}
	deadline := last.Add(w.spec.Schedule.PostSyncInterval.D())
	if end.Before(deadline) {
		deadline = end
	}
	wake := w.wake
	reached, err := w.sleepUntil(ctx, deadline, func() bool { return w.wake != wake })
	if err != nil || !reached || !workflow.Now(ctx).Before(end) {
		return err
	}
	t := w.task(emailapi.TaskSync, model.RunDelta, model.ModeCopy)
	t.Include = inboxOnly
	res, err := w.wave(ctx, t)
	now := workflow.Now(ctx)
	st.LastPostSyncAt = &now
	st.PostSyncs++
	if err != nil {
		return err
	}
	if res.Failed > 0 {
		w.note(ctx, fmt.Sprintf("INBOX post-sync: %d mailbox(es) failed: %s", res.Failed, strings.Join(res.Failures, "; ")))
	}
	w.mark(ctx)
	return nil
}

func (w *jobRun) failedStep(ctx workflow.Context) error {
	st := w.st
	if err := w.awaitRetry(ctx); err != nil {
		return err
	}
	r := st.RetryRequested
	st.RetryRequested = nil
	phase := st.FailedPhase
	if phase == "" {
		phase = model.PhaseDiscovered
	}
	st.FailedPhase, st.LastError, st.FinalRounds = "", "", 0
	w.note(ctx, fmt.Sprintf("retry by %s from %s", r.By, phase))
	w.enter(ctx, phase)
	return nil
}
