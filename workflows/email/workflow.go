package email

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/silence"
	"github.com/cutover/cutover/workflows/email/emailapi"
	"github.com/cutover/cutover/workflows/email/jobspec"
	"github.com/cutover/cutover/workflows/notifysend"
)

// DefaultHistoryLimit is the history length past which a job continues as new at its next
// safe point (between steps), far below the server's limits.
const DefaultHistoryLimit = 4000

// inboxOnly restricts post-syncs during the soak to INBOX.
var inboxOnly = []string{"(?i)^INBOX$"}

// fatalError ends the workflow instead of failing the phase: the spec cannot be registered, so
// there is no job row of ours to record a failure into.
type fatalError struct{ err error }

func (f fatalError) Error() string { return f.err.Error() }
func (f fatalError) Unwrap() error { return f.err }

// jobRun is one execution of the job workflow.
type jobRun struct {
	spec   jobspec.Spec
	st     *State
	tuning Tuning

	dirty, persisted int64 // state versions: changed, written to PostgreSQL
	wake             int64 // bumped by every accepted command, so waits re-check
	progressWaiters  int   // update handlers waiting for the main loop to move on

	cancelWork   workflow.CancelFunc // abort
	cancelMirror workflow.CancelFunc // set while a presync runs

	lastVisibility string
	lastDetails    string
	silent         silence.Report // the activities whose worker stopped heartbeating, as a worker last reported them

	sender *notifysend.Sender // the job's notifications
}

// EmailMigrationWorkflow migrates one email domain (workflow id email-job-<job_id>). It takes
// the job spec; resume is nil unless the workflow continued as new.
func EmailMigrationWorkflow(ctx workflow.Context, spec jobspec.Spec, resume *Resume) (emailapi.Status, error) {
	// First of all: an input `cutover email start` would refuse (a secret, an unknown field)
	// is refused with the same words, before anything runs.
	if err := spec.InputError(); err != nil {
		return emailapi.Status{}, refuseInput(ctx, spec, err)
	}
	spec = spec.WithDefaults()
	if err := spec.Validate(); err != nil {
		// A secret pasted into a credentials_ref is refused by Validate; its run is purged too.
		if _, pasted := spec.RedactedInput(); pasted &&
			workflow.GetVersion(ctx, "purge-pasted-ref", workflow.DefaultVersion, 1) == 1 {
			return emailapi.Status{}, refuseInput(ctx, spec, err)
		}
		return emailapi.Status{}, temporal.NewNonRetryableApplicationError(err.Error(), emailapi.ErrTypeBadSpec, nil)
	}
	if spec.JobID <= 0 {
		return emailapi.Status{}, temporal.NewNonRetryableApplicationError("job spec needs a job_id (the workflow id is email-job-<job_id>)", emailapi.ErrTypeBadSpec, nil)
	}
	if id := workflow.GetInfo(ctx).WorkflowExecution.ID; id != emailapi.WorkflowID(spec.JobID) {
		return emailapi.Status{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("workflow id %q does not match job_id %d: start it as %q", id, spec.JobID, emailapi.WorkflowID(spec.JobID)), emailapi.ErrTypeBadSpec, nil)
	}
	w := &jobRun{spec: spec}
	if resume != nil {
		w.tuning = resume.Tuning
	}
	if w.tuning.HistoryLimit <= 0 {
		w.tuning.HistoryLimit = DefaultHistoryLimit
	}
	if resume != nil && resume.State != nil {
		w.st = resume.State
		w.st.Runs++
		if w.st.Registered {
			w.dirty = 1 // the first write of a continued run settles anything pending
		}
	} else {
		w.st = &State{JobID: spec.JobID, Domain: spec.Domain, TenantID: spec.TenantID,
			Phase: model.PhaseDiscovered, Gate: model.GateBlocked}
	}
	if err := w.install(ctx); err != nil {
		return emailapi.Status{}, err
	}
	w.visibility(ctx)
	return w.run(ctx)
}

// install sets up the query, the command handlers and the state writer.
func (w *jobRun) install(ctx workflow.Context) error {
	if err := workflow.SetQueryHandlerWithOptions(ctx, emailapi.QueryStatus, func() (emailapi.Status, error) { return w.status(), nil },
		workflow.QueryHandlerOptions{Description: emailapi.Descriptions[emailapi.QueryStatus]}); err != nil {
		return err
	}
	for _, name := range emailapi.Commands {
		ch := workflow.GetSignalChannelWithOptions(ctx, name, workflow.SignalChannelOptions{Description: emailapi.Descriptions[name]})
		workflow.Go(ctx, func(gctx workflow.Context) {
			for {
				var r emailapi.Request
				if !ch.Receive(gctx, &r) {
					return
				}
				w.signal(gctx, name, r)
			}
		})
		err := workflow.SetUpdateHandlerWithOptions(ctx, name, func(uctx workflow.Context, r emailapi.Request) (emailapi.Ack, error) {
			msg := w.apply(uctx, name, r)
			if name == emailapi.DNSCutoverConfirmed {
				// Answer once the job is past the cutover, i.e. any presync has stopped. The
				// job must not continue as new meanwhile (progressWaiters holds it back).
				w.progressWaiters++
				err := workflow.Await(uctx, func() bool {
					return w.st.Phase.AfterDNSCutover() || w.st.Phase == model.PhaseFailed || w.st.Aborted != nil
				})
				w.progressWaiters--
				if err != nil {
					return emailapi.Ack{}, err
				}
			}
			// ... and once PostgreSQL says the same.
			v := w.dirty
			if err := workflow.Await(uctx, func() bool { return w.persisted >= v || !w.st.Registered }); err != nil {
				return emailapi.Ack{}, err
			}
			return emailapi.Ack{Phase: w.st.Phase, Gate: w.st.Gate, Message: msg}, nil
		}, workflow.UpdateHandlerOptions{Validator: func(r emailapi.Request) error { return w.validate(name, r) },
			Description: emailapi.Descriptions[name]})
		if err != nil {
			return err
		}
	}
	w.receiveAttempts(ctx)
	w.receiveProgress(ctx)
	w.receiveReports(ctx)
	w.receiveSilence(ctx)
	w.startNotifier(ctx)
	// The state writer: one RecordEmailJob at a time, always of the newest state, on a context
	// an abort does not cancel (the abort itself must be recorded).
	pctx, _ := workflow.NewDisconnectedContext(ctx)
	pctx = workflow.WithActivityOptions(pctx, bookkeepingOptions(time.Minute))
	workflow.Go(pctx, func(gctx workflow.Context) {
		for {
			if err := workflow.Await(gctx, func() bool { return w.st.Registered && w.dirty > w.persisted }); err != nil {
				return
			}
			v := w.dirty
			m := w.record()
			if err := workflow.ExecuteActivity(gctx, emailapi.RecordJobActivity, m).Get(gctx, nil); err != nil {
				workflow.GetLogger(gctx).Error("could not record job state", "job_id", w.st.JobID, "error", err)
			}
			w.persisted = v
		}
	})
	return nil
}

// flush waits until the newest state is in PostgreSQL.
func (w *jobRun) flush(ctx workflow.Context) {
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	_ = workflow.Await(dctx, func() bool { return !w.st.Registered || w.persisted >= w.dirty })
}

func (w *jobRun) run(ctx workflow.Context) (emailapi.Status, error) {
	workCtx, cancel := workflow.WithCancel(ctx)
	w.cancelWork = cancel
	for {
		if w.st.Aborted != nil || ctx.Err() != nil {
			return w.finishAborted(ctx)
		}
		var err error
		switch w.st.Phase {
		case model.PhaseDiscovered:
			err = w.register(workCtx)
		case model.PhasePreflight:
			err = w.preflight(workCtx)
		case model.PhaseInitialSync:
			err = w.initialSync(workCtx)
		case model.PhaseDeltaSync:
			err = w.presyncStep(workCtx)
		case model.PhaseCutoverReady:
			err = w.cutoverReadyStep(workCtx)
		case model.PhaseDNSCutover:
			err = w.dnsCutoverStep(workCtx)
		case model.PhaseFinalSync:
			err = w.finalSyncStep(workCtx)
		case model.PhaseVerified:
			err = w.soakStep(workCtx)
		case model.PhaseClosed:
			return w.finish(ctx)
		case model.PhaseFailed:
			err = w.failedStep(workCtx)
		default:
			err = fatalError{fmt.Errorf("unknown phase %q", w.st.Phase)}
		}
		if err != nil {
			if w.st.Aborted != nil || ctx.Err() != nil {
				continue
			}
			var fe fatalError
			if errors.As(err, &fe) {
				return w.status(), fe.err
			}
			w.fail(ctx, err)
		}
		if w.shouldContinueAsNew(ctx) {
			if st, done, err := w.continueAsNew(ctx); done {
				return st, err
			}
		}
	}
}

// enter moves the job to a phase.
func (w *jobRun) enter(ctx workflow.Context, p model.Phase) {
	workflow.GetLogger(ctx).Info("email job phase", "job_id", w.st.JobID, "from", w.st.Phase, "to", p)
	w.st.Phase = p
	now := workflow.Now(ctx).UTC().Truncate(time.Microsecond)
	if p != model.PhaseDeltaSync {
		w.st.NextPresyncAt = nil
	}
	switch p {
	case model.PhaseVerified:
		w.st.VerifiedAt = &now
	case model.PhaseDNSCutover:
		if w.st.DNSCutoverAt == nil { // resumed from PostgreSQL without the time
			w.st.DNSCutoverAt = &now
		}
	}
	w.mark(ctx)
	// Every phase reaches PostgreSQL before the next begins: a ticket desk sees each one.
	w.flush(ctx)
}

func (w *jobRun) fail(ctx workflow.Context, err error) {
	if w.st.Phase != model.PhaseFailed {
		w.st.FailedPhase = w.st.Phase
	}
	w.st.Phase = model.PhaseFailed
	w.st.LastError = errorText(err)
	workflow.GetLogger(ctx).Warn("email job failed", "job_id", w.st.JobID, "phase", w.st.FailedPhase, "error", w.st.LastError)
	w.note(ctx, fmt.Sprintf("failed in %s: %s", w.st.FailedPhase, w.st.LastError))
	w.mark(ctx)
}

func (w *jobRun) note(ctx workflow.Context, s string) {
	w.st.PendingNotes = append(w.st.PendingNotes, workflow.Now(ctx).UTC().Format(time.RFC3339)+" "+s)
}

// mark records a state change: PostgreSQL (through the writer), search attributes, details.
func (w *jobRun) mark(ctx workflow.Context) {
	w.dirty++
	w.notifyChanges(ctx)
	w.visibility(ctx)
}

func (w *jobRun) finish(ctx workflow.Context) (emailapi.Status, error) {
	w.flush(ctx)
	w.sender.Drain(ctx) // the last events (closed, failed) reach the desk before the workflow ends
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	_ = workflow.Await(dctx, func() bool { return workflow.AllHandlersFinished(dctx) })
	return w.status(), nil
}

func (w *jobRun) finishAborted(ctx workflow.Context) (emailapi.Status, error) {
	st := w.st
	cancelled := st.Aborted == nil
	if cancelled {
		st.Aborted = &emailapi.Request{By: "temporal", Note: "workflow cancelled"}
	}
	w.cancelWork()
	if st.Phase != model.PhaseFailed {
		st.FailedPhase = st.Phase
		st.Phase = model.PhaseFailed
	}
	st.LastError = fmt.Sprintf("aborted by %s", st.Aborted.By)
	if st.Aborted.Note != "" {
		st.LastError += ": " + st.Aborted.Note
	}
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	w.note(dctx, st.LastError)
	w.mark(dctx)
	status, _ := w.finish(dctx)
	if cancelled {
		return status, temporal.NewCanceledError(st.LastError)
	}
	return status, temporal.NewNonRetryableApplicationError(st.LastError, "Aborted", nil)
}

func (w *jobRun) shouldContinueAsNew(ctx workflow.Context) bool {
	if w.st.Phase == model.PhaseClosed || w.st.Aborted != nil {
		return false
	}
	info := workflow.GetInfo(ctx)
	return info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() >= w.tuning.HistoryLimit
}

// continueAsNew hands the state to a fresh run once handlers are done, the state is written
// and every signal already delivered has been applied. It gives up (done false) while an
// update waits for this run to make progress: the job goes on and tries again later.
func (w *jobRun) continueAsNew(ctx workflow.Context) (st emailapi.Status, done bool, err error) {
	for {
		if err := workflow.Await(ctx, func() bool {
			return (workflow.AllHandlersFinished(ctx) || w.progressWaiters > 0) && (!w.st.Registered || w.persisted >= w.dirty)
		}); err != nil {
			st, err := w.finishAborted(ctx)
			return st, true, err
		}
		if w.progressWaiters > 0 {
			return emailapi.Status{}, false, nil
		}
		if !w.drainSignals(ctx) {
			break
		}
	}
	if w.st.Aborted != nil {
		st, err := w.finishAborted(ctx)
		return st, true, err
	}
	workflow.GetLogger(ctx).Info("email job continues as new", "job_id", w.st.JobID, "history", workflow.GetInfo(ctx).GetCurrentHistoryLength())
	return emailapi.Status{}, true, workflow.NewContinueAsNewError(ctx, emailapi.WorkflowName, w.spec, &Resume{State: w.st, Tuning: w.tuning})
}

// drainSignals applies signals delivered but not yet received; it reports whether any was.
func (w *jobRun) drainSignals(ctx workflow.Context) bool {
	got := false
	for _, name := range emailapi.Commands {
		ch := workflow.GetSignalChannel(ctx, name)
		for {
			var r emailapi.Request
			if !ch.ReceiveAsync(&r) {
				break
			}
			got = true
			w.signal(ctx, name, r)
		}
	}
	return got
}
