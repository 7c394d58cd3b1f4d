package email

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cutover/cutover/activities/emailjob"
	"github.com/cutover/cutover/activities/mail"
	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/searchattr"
	"github.com/cutover/cutover/workflows/email/gate"
	"github.com/cutover/cutover/workflows/email/jobspec"
)

// Kind is the MigrationKind search attribute value of email jobs.
const Kind = "email"

// DefaultHistoryLimit is the history length past which a job continues as new at its next
// safe point (between steps), far below the server's limits.
const DefaultHistoryLimit = 4000

// inboxOnly restricts post-syncs during the soak to INBOX.
var inboxOnly = []string{"(?i)^INBOX$"}

// Resume is the workflow's second argument: empty when an operator starts a job (the temporal
// CLI passes only the spec), the carried state when the job continues as new.
type Resume struct {
	State  *State `json:"state,omitempty"`
	Tuning Tuning `json:"tuning,omitzero"`
}

// Tuning holds knobs tests turn down; zero values take the defaults.
type Tuning struct {
	HistoryLimit  int `json:"history_limit,omitempty"`
	PageSize      int `json:"page_size,omitempty"`
	ContinueAfter int `json:"continue_after,omitempty"`
	KeepResults   int `json:"keep_results,omitempty"`
	// HeartbeatTimeout is the mailbox activities' heartbeat timeout (default 5m): how soon a
	// pass whose worker died is retried elsewhere. Fault tests turn it down to seconds.
	HeartbeatTimeout time.Duration `json:"heartbeat_timeout,omitempty"`
}

// State is everything the job workflow knows, carried across continue-as-new.
type State struct {
	JobID       int64       `json:"job_id"`
	Domain      string      `json:"domain"`
	TenantID    int64       `json:"tenant_id"`
	Phase       model.Phase `json:"phase"`
	FailedPhase model.Phase `json:"failed_phase,omitempty"`
	Gate        model.Gate  `json:"gate"`
	LastError   string      `json:"last_error,omitempty"`
	Mailboxes   int         `json:"mailboxes"`
	Registered  bool        `json:"registered"`

	Summary       *gate.Summary  `json:"summary,omitempty"` // the latest pre-cutover sync, nil until the initial sync
	Checks        []gate.Check   `json:"checks,omitempty"`
	ChecksPending bool           `json:"checks_pending,omitempty"` // Checks not yet written to PostgreSQL
	Approval      *gate.Approval `json:"approval,omitempty"`
	ApprovedAt    *time.Time     `json:"approved_at,omitempty"`

	CutoverAt    *time.Time `json:"cutover_at,omitempty"`
	DNSCutoverAt *time.Time `json:"dns_cutover_at,omitempty"`
	DNSCutoverBy string     `json:"dns_cutover_by,omitempty"`

	Presyncs           int           `json:"presyncs"`
	NextPresyncAt      *time.Time    `json:"next_presync_at,omitempty"`
	PredictedFinalSync time.Duration `json:"predicted_final_sync"`
	LastPass           *PassInfo     `json:"last_pass,omitempty"`
	CurrentPass        *PassInfo     `json:"current_pass,omitempty"`
	WaveSeq            int           `json:"wave_seq"`

	SyncPercent    float64                       `json:"sync_percent"`
	MailboxCounts  map[model.MailboxStatus]int64 `json:"mailbox_counts,omitempty"`
	MailboxDetails []MailboxProgress             `json:"mailbox_details,omitempty"`

	Preflight      *PreflightInfo `json:"preflight,omitempty"`
	Verify         *VerifyInfo    `json:"verify,omitempty"`
	FinalRounds    int            `json:"final_rounds"`
	VerifiedAt     *time.Time     `json:"verified_at,omitempty"`
	LastPostSyncAt *time.Time     `json:"last_post_sync_at,omitempty"`
	PostSyncs      int            `json:"post_syncs"`
	ClosedBy       string         `json:"closed_by,omitempty"`

	PresyncRequested bool     `json:"presync_requested,omitempty"`
	RetryRequested   *Request `json:"retry_requested,omitempty"`
	CloseRequested   *Request `json:"close_requested,omitempty"`
	Aborted          *Request `json:"aborted,omitempty"`

	PendingNotes []string `json:"pending_notes,omitempty"` // lines not yet appended to migration_jobs.notes
	Refused      []string `json:"refused,omitempty"`
	Runs         int      `json:"runs"` // continue-as-new count
}

// CutOver reports whether users may already write to the destination: DNS was confirmed, or
// the phase (the failed phase, for a failed job) is at or after dns_cutover.
func (s *State) CutOver() bool {
	return s.DNSCutoverAt != nil || s.Phase.AfterDNSCutover() ||
		(s.Phase == model.PhaseFailed && s.FailedPhase.AfterDNSCutover())
}

// fatalError ends the workflow instead of failing the phase: the spec cannot be registered, so
// there is no job row of ours to mirror a failure into.
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
}

// EmailMigrationWorkflow migrates one email domain (workflow id email-job-<job_id>). It takes
// the job spec; resume is nil unless the workflow continued as new.
func EmailMigrationWorkflow(ctx workflow.Context, spec jobspec.Spec, resume *Resume) (Status, error) {
	spec = spec.WithDefaults()
	if err := spec.Validate(); err != nil {
		return Status{}, temporal.NewNonRetryableApplicationError(err.Error(), mail.ErrTypeBadSpec, nil)
	}
	if spec.JobID <= 0 {
		return Status{}, temporal.NewNonRetryableApplicationError("job spec needs a job_id (the workflow id is email-job-<job_id>)", mail.ErrTypeBadSpec, nil)
	}
	if id := workflow.GetInfo(ctx).WorkflowExecution.ID; id != WorkflowID(spec.JobID) {
		return Status{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("workflow id %q does not match job_id %d: start it as %q", id, spec.JobID, WorkflowID(spec.JobID)), mail.ErrTypeBadSpec, nil)
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
		return Status{}, err
	}
	w.visibility(ctx)
	return w.run(ctx)
}

// install sets up the query, the command handlers and the state writer.
func (w *jobRun) install(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (Status, error) { return w.status(), nil }); err != nil {
		return err
	}
	for _, name := range Commands {
		ch := workflow.GetSignalChannel(ctx, name)
		workflow.Go(ctx, func(gctx workflow.Context) {
			for {
				var r Request
				if !ch.Receive(gctx, &r) {
					return
				}
				w.signal(gctx, name, r)
			}
		})
		err := workflow.SetUpdateHandlerWithOptions(ctx, name, func(uctx workflow.Context, r Request) (Ack, error) {
			msg := w.apply(uctx, name, r)
			if name == DNSCutoverConfirmed {
				// Answer once the job is past the cutover, i.e. any presync has stopped. The
				// job must not continue as new meanwhile (progressWaiters holds it back).
				w.progressWaiters++
				err := workflow.Await(uctx, func() bool {
					return w.st.Phase.AfterDNSCutover() || w.st.Phase == model.PhaseFailed || w.st.Aborted != nil
				})
				w.progressWaiters--
				if err != nil {
					return Ack{}, err
				}
			}
			// ... and once PostgreSQL says the same.
			v := w.dirty
			if err := workflow.Await(uctx, func() bool { return w.persisted >= v || !w.st.Registered }); err != nil {
				return Ack{}, err
			}
			return Ack{Phase: w.st.Phase, Gate: w.st.Gate, Message: msg}, nil
		}, workflow.UpdateHandlerOptions{Validator: func(r Request) error { return w.validate(name, r) }})
		if err != nil {
			return err
		}
	}
	// The state writer: one MirrorEmailJob at a time, always of the newest state, on a context
	// an abort does not cancel (the abort itself must be recorded).
	pctx, _ := workflow.NewDisconnectedContext(ctx)
	pctx = workflow.WithActivityOptions(pctx, bookkeepingOptions(time.Minute))
	workflow.Go(pctx, func(gctx workflow.Context) {
		var acts *emailjob.Activities
		for {
			if err := workflow.Await(gctx, func() bool { return w.st.Registered && w.dirty > w.persisted }); err != nil {
				return
			}
			v := w.dirty
			m := w.mirror()
			if err := workflow.ExecuteActivity(gctx, acts.MirrorEmailJob, m).Get(gctx, nil); err != nil {
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

func (w *jobRun) run(ctx workflow.Context) (Status, error) {
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
	w.visibility(ctx)
}

func (w *jobRun) visibility(ctx workflow.Context) {
	st := w.st
	pct := st.SyncPercent
	key := fmt.Sprintf("%s|%s|%.2f|%s", st.Phase, st.Gate, pct, w.state())
	if key == w.lastVisibility {
		return
	}
	w.lastVisibility = key
	err := workflow.UpsertTypedSearchAttributes(ctx,
		searchattr.Kind.ValueSet(Kind), searchattr.Domain.ValueSet(st.Domain), searchattr.TenantID.ValueSet(st.TenantID),
		searchattr.Phase.ValueSet(string(st.Phase)), searchattr.Gate.ValueSet(string(st.Gate)),
		searchattr.SyncPercent.ValueSet(pct), searchattr.Status.ValueSet(w.state()))
	if err != nil {
		workflow.GetLogger(ctx).Warn("upsert search attributes", "error", err)
	}
	workflow.SetCurrentDetails(ctx, fmt.Sprintf("**%s** · gate **%s** · %.1f%% synced · %d mailboxes · %s",
		st.Phase, st.Gate, pct, st.Mailboxes, w.state()))
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

// mirror takes a snapshot for PostgreSQL, handing over the pending notes and checks.
func (w *jobRun) mirror() emailjob.Mirror {
	st := w.st
	js := store.JobState{ID: st.JobID, Phase: st.Phase, Gate: st.Gate, FailedPhase: st.FailedPhase, LastError: st.LastError,
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
	m := emailjob.Mirror{State: js, Notes: st.PendingNotes}
	if st.ChecksPending {
		m.Checks = st.Checks
		st.ChecksPending = false
	}
	st.PendingNotes = nil
	return m
}

func (w *jobRun) status() Status {
	st := w.st
	s := Status{JobID: st.JobID, Phase: st.Phase, Gate: st.Gate, SyncPercent: st.SyncPercent, Domain: st.Domain,
		TenantID: st.TenantID, State: w.state(), FailedPhase: st.FailedPhase, LastError: st.LastError,
		Mailboxes: st.Mailboxes, MailboxCounts: st.MailboxCounts, MailboxDetails: st.MailboxDetails, Checks: st.Checks,
		CutoverAt: st.CutoverAt, DNSCutoverAt: st.DNSCutoverAt, DNSCutoverBy: st.DNSCutoverBy, Presyncs: st.Presyncs,
		NextPresyncAt: st.NextPresyncAt, LastPass: st.LastPass, CurrentPass: st.CurrentPass,
		PredictedFinalSyncSeconds: st.PredictedFinalSync.Seconds(), Preflight: st.Preflight, Verify: st.Verify,
		FinalRounds: st.FinalRounds, VerifiedAt: st.VerifiedAt, PostSyncs: st.PostSyncs, ClosedBy: st.ClosedBy,
		Refused: st.Refused, ContinuedRuns: st.Runs}
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
	return s
}

// ---- phases ----

func (w *jobRun) register(ctx workflow.Context) error {
	actx := workflow.WithActivityOptions(ctx, bookkeepingOptions(10*time.Minute))
	var acts *emailjob.Activities
	var reg emailjob.Registration
	if err := workflow.ExecuteActivity(actx, acts.RegisterEmailJob, w.spec).Get(ctx, &reg); err != nil {
		var ae *temporal.ApplicationError
		if errors.As(err, &ae) && ae.Type() == mail.ErrTypeBadSpec {
			return fatalError{err}
		}
		return err
	}
	st := w.st
	st.Mailboxes, st.Registered = reg.Mailboxes, true
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
func (w *jobRun) resumeFrom(ctx workflow.Context, p store.JobProgress) error {
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

func (w *jobRun) task(kind TaskKind, runType model.RunType, mode mail.Mode) Task {
	t := waveTask(w.spec, kind, runType, mode, w.st.Phase, w.st.CutOver())
	t.HeartbeatTimeout = w.tuning.HeartbeatTimeout
	return t
}

// wave runs one pass over every mailbox as a MailboxWaveWorkflow child.
func (w *jobRun) wave(ctx workflow.Context, t Task) (WaveResult, error) {
	st := w.st
	if t.Kind == TaskSync && MirrorRefused(t) {
		return WaveResult{}, errMirrorRefused("job "+st.Domain, t)
	}
	st.WaveSeq++
	id := WaveWorkflowID(st.JobID, st.WaveSeq)
	start := workflow.Now(ctx)
	st.CurrentPass = &PassInfo{RunType: t.RunType, Mode: string(t.Mode), WorkflowID: id, Started: start}
	if t.Kind != TaskSync {
		st.CurrentPass.RunType = model.RunType(t.Kind)
	}
	w.mark(ctx)
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:            id,
		WorkflowIDReusePolicy: enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WaitForCancellation:   true,
		ParentClosePolicy:     enums.PARENT_CLOSE_POLICY_REQUEST_CANCEL,
		TypedSearchAttributes: temporal.NewSearchAttributes(searchattr.Domain.ValueSet(st.Domain)),
		StaticSummary:         fmt.Sprintf("%s pass over %d mailboxes of %s (job %d)", st.CurrentPass.RunType, st.Mailboxes, st.Domain, st.JobID),
	})
	in := WaveInput{Spec: w.spec, Task: t, Concurrency: w.spec.Concurrency.Mailboxes,
		PageSize: w.tuning.PageSize, ContinueAfter: w.tuning.ContinueAfter, KeepResults: w.tuning.KeepResults}
	var res WaveResult
	err := workflow.ExecuteChildWorkflow(cctx, WaveWorkflowName, in).Get(ctx, &res)
	pass := *st.CurrentPass
	st.CurrentPass = nil
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
	res, err := w.wave(ctx, w.task(TaskPreflight, model.RunPreflight, ""))
	if err != nil {
		return err
	}
	w.st.Preflight = &PreflightInfo{Messages: res.SourceMessages, Bytes: res.SourceBytes, Warnings: res.Warnings}
	w.absorbMailboxes(res, model.RunPreflight)
	if res.Failed > 0 {
		return waveFailed("preflight", res)
	}
	w.enter(ctx, model.PhaseInitialSync)
	return nil
}

func (w *jobRun) initialSync(ctx workflow.Context) error {
	res, err := w.wave(ctx, w.task(TaskSync, model.RunInitial, mail.ModeCopy))
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

// presyncStep is one turn of seed 003's loop: wait for the next scheduled presync (or the
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
	t := w.task(TaskSync, model.RunDelta, w.spec.Schedule.PresyncMode)
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

// dnsCutoverStep waits for DNS/MX to settle (seed 003: "wait 5 minutes") before the final sync.
func (w *jobRun) dnsCutoverStep(ctx workflow.Context) error {
	if _, err := w.sleepUntil(ctx, w.st.DNSCutoverAt.Add(w.spec.Schedule.FinalSyncDelay.D()), func() bool { return false }); err != nil {
		return err
	}
	w.enter(ctx, model.PhaseFinalSync)
	return nil
}

// finalSyncStep is one round: a copy pass, then verification; verified only with nothing
// missing outside quarantine.
func (w *jobRun) finalSyncStep(ctx workflow.Context) error {
	st := w.st
	res, err := w.wave(ctx, w.task(TaskSync, model.RunFinal, mail.ModeCopy))
	if err != nil {
		return err
	}
	w.absorbSync(ctx, res, model.RunFinal)
	if res.Failed > 0 {
		return waveFailed("final sync", res)
	}
	vres, err := w.wave(ctx, w.task(TaskVerify, model.RunVerify, ""))
	if err != nil {
		return err
	}
	st.FinalRounds++
	st.Verify = &VerifyInfo{Missing: vres.Missing, Extra: vres.Extra, Quarantined: vres.Quarantined,
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
	t := w.task(TaskSync, model.RunDelta, mail.ModeCopy)
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
	if err := workflow.Await(ctx, func() bool { return st.RetryRequested != nil }); err != nil {
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

func (w *jobRun) finish(ctx workflow.Context) (Status, error) {
	w.flush(ctx)
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	_ = workflow.Await(dctx, func() bool { return workflow.AllHandlersFinished(dctx) })
	return w.status(), nil
}

func (w *jobRun) finishAborted(ctx workflow.Context) (Status, error) {
	st := w.st
	cancelled := st.Aborted == nil
	if cancelled {
		st.Aborted = &Request{By: "temporal", Note: "workflow cancelled"}
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
func (w *jobRun) continueAsNew(ctx workflow.Context) (st Status, done bool, err error) {
	for {
		if err := workflow.Await(ctx, func() bool {
			return (workflow.AllHandlersFinished(ctx) || w.progressWaiters > 0) && (!w.st.Registered || w.persisted >= w.dirty)
		}); err != nil {
			st, err := w.finishAborted(ctx)
			return st, true, err
		}
		if w.progressWaiters > 0 {
			return Status{}, false, nil
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
	return Status{}, true, workflow.NewContinueAsNewError(ctx, WorkflowName, w.spec, &Resume{State: w.st, Tuning: w.tuning})
}

// drainSignals applies signals delivered but not yet received; it reports whether any was.
func (w *jobRun) drainSignals(ctx workflow.Context) bool {
	got := false
	for _, name := range Commands {
		ch := workflow.GetSignalChannel(ctx, name)
		for {
			var r Request
			if !ch.ReceiveAsync(&r) {
				break
			}
			got = true
			w.signal(ctx, name, r)
		}
	}
	return got
}

// ---- results into state ----

func percent(source, dest, quarantined int64) float64 {
	p := 100 * gate.Ratio(source, dest, quarantined)
	return math.Round(min(100, p)*100) / 100
}

// absorbSync takes a sync pass's results: progress, and before DNS cutover the gate.
func (w *jobRun) absorbSync(ctx workflow.Context, res WaveResult, rt model.RunType) {
	st := w.st
	st.SyncPercent = percent(res.SourceMessages, res.DestMessages, res.Quarantined)
	w.absorbMailboxes(res, rt)
	if !st.CutOver() {
		s := res.Summary
		st.Summary = &s
		w.evaluate(ctx)
	}
	w.mark(ctx)
}

// evaluate re-runs the gate on the latest facts and the approval.
func (w *jobRun) evaluate(ctx workflow.Context) {
	st := w.st
	if st.Summary == nil || st.CutOver() {
		return
	}
	res := gate.Evaluate(*st.Summary, st.Approval)
	if res.VoidApproval {
		w.note(ctx, fmt.Sprintf("approval by %s voided: critical checks fail", st.Approval.By))
		st.Approval, st.ApprovedAt = nil, nil
	}
	st.Gate, st.Checks, st.ChecksPending = res.Gate, res.Checks, true
}

func (w *jobRun) absorbMailboxes(res WaveResult, rt model.RunType) {
	st := w.st
	counts := map[model.MailboxStatus]int64{}
	details := make([]MailboxProgress, 0, len(res.Results))
	for _, r := range res.Results {
		details = append(details, progressOf(r, rt))
	}
	// From the totals, not the kept results: large jobs keep only failures.
	counts[model.MailboxError] = res.Failed
	counts[model.MailboxQuarantine] = res.QuarantinedMailboxes
	counts[model.MailboxOK] = res.OK - res.QuarantinedMailboxes
	st.MailboxCounts, st.MailboxDetails = counts, details
}

func progressOf(r MailboxResult, rt model.RunType) MailboxProgress {
	f := r.Facts
	p := MailboxProgress{Email: r.Email, MessagesSource: f.SourceMessages, MessagesDest: f.DestMessages,
		Quarantined: f.Quarantined, Pending: f.Pending, LastError: r.Error, LastRun: rt,
		SyncPercent: percent(f.SourceMessages, f.DestMessages, f.Quarantined)}
	switch {
	case !r.OK:
		p.Status = model.MailboxError
	case f.Quarantined > 0:
		p.Status = model.MailboxQuarantine
	default:
		p.Status = model.MailboxOK
	}
	if rt == model.RunPreflight {
		p.SyncPercent = percent(f.SourceMessages, f.DestMessages, 0)
	}
	return p
}
