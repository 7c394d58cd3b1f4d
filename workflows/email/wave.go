package email

import (
	"fmt"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cutover/cutover/activities/emailjob"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/searchattr"
	"github.com/cutover/cutover/workflows/email/emailapi"
	"github.com/cutover/cutover/workflows/email/gate"
	"github.com/cutover/cutover/workflows/email/jobspec"
)

// Wave defaults. A wave run starts at most ContinueAfter mailboxes (about three events each in
// its history, six with a child per mailbox) before it continues as new, so no history grows with the job's size.
const (
	DefaultPageSize      = 100
	DefaultContinueAfter = 200
	maxListed            = 10
)

// The wave's contract lives in emailapi (a client starts a wave for a dry run).
type (
	WaveInput  = emailapi.WaveInput
	WaveResult = emailapi.WaveResult
)

func addResult(r *WaveResult, res MailboxResult, th gate.Thresholds, keep int) {
	r.Mailboxes++
	if res.OK {
		r.OK++
		if res.Facts.Quarantined > 0 {
			r.QuarantinedMailboxes++
		}
	} else {
		r.Failed++
		if len(r.Failures) < maxListed {
			r.Failures = append(r.Failures, res.Email+": "+res.Error)
		}
	}
	for _, w := range res.Warnings {
		if len(r.Warnings) < maxListed {
			r.Warnings = append(r.Warnings, w)
		}
	}
	for _, s := range res.Samples {
		if len(r.Samples) < maxListed {
			r.Samples = append(r.Samples, s)
		}
	}
	if r.Task.Kind == emailapi.TaskSync {
		r.Summary.Add(res.Facts, th)
	}
	f := res.Facts
	r.SourceMessages += f.SourceMessages
	r.DestMessages += f.DestMessages
	r.SourceBytes += res.SourceBytes
	r.DestBytes += res.DestBytes
	r.Transferred += res.Transferred
	r.Deleted += res.Deleted
	r.Quarantined += f.Quarantined
	r.Pending += f.Pending
	r.Missing += res.Missing
	r.Extra += res.Extra
	r.Rewritten += res.Rewritten
	if r.Mailboxes <= int64(keep) || (!res.OK && len(r.Results) < keep) {
		res.Samples, res.Warnings = nil, nil // summed above; keep the result small
		r.Results = append(r.Results, res)
	}
}

// MailboxWaveWorkflow runs one task over every mailbox of a job, at most Concurrency at a time,
// each as the wave's own activities (startMailbox), reading the mailboxes from PostgreSQL page by page and
// continuing as new every ContinueAfter mailboxes. Cancelling it cancels the running children
// and waits for them to stop.
func MailboxWaveWorkflow(ctx workflow.Context, in WaveInput) (WaveResult, error) {
	if in.PageSize <= 0 {
		in.PageSize = DefaultPageSize
	}
	if in.ContinueAfter <= 0 {
		in.ContinueAfter = DefaultContinueAfter
	}
	if in.KeepResults <= 0 {
		in.KeepResults = emailapi.DefaultKeepResults
	}
	in.Concurrency = max(1, in.Concurrency)
	spec := in.Spec.WithDefaults()
	acc := in.Acc
	if acc.Runs == 0 {
		acc.Task, acc.Started = in.Task, workflow.Now(ctx)
	}
	acc.Runs++
	if in.Task.Kind == emailapi.TaskSync && MirrorRefused(in.Task) {
		return acc, errMirrorRefused("every mailbox", in.Task)
	}

	// Waves started before this change run a MailboxSyncWorkflow child per mailbox; later
	// ones run each mailbox's activities themselves (startMailbox), and from version 2 read
	// their pages of mailboxes as local activities (loadPage).
	shape := workflow.GetVersion(ctx, mailboxActivitiesChange, workflow.DefaultVersion, 2)
	inline := shape >= 1
	inFlight := map[string]bool{} // read only by the query; workflow logic never ranges over it
	if err := workflow.SetQueryHandler(ctx, emailapi.QueryStatus, func() (emailapi.WaveProgress, error) {
		p := emailapi.WaveProgress{Task: in.Task, Done: acc.Mailboxes, Failed: acc.Failed, Runs: acc.Runs}
		p.InFlight = append(p.InFlight, workflow.DeterministicKeys(inFlight)...)
		return p, nil
	}); err != nil {
		return acc, err
	}

	jobOnly := spec
	jobOnly.Mailboxes = nil

	sel := workflow.NewSelector(ctx)
	running := 0
	waveDetails(ctx, in.Task, acc, 0)
	var firstErr error
	collect := func(email string) func(workflow.Future) {
		return func(f workflow.Future) {
			running--
			delete(inFlight, email)
			var res MailboxResult
			if err := f.Get(ctx, &res); err != nil {
				if temporal.IsCanceledError(err) {
					if firstErr == nil {
						firstErr = err
					}
					return
				}
				res = MailboxResult{Email: email, Error: errorText(err), ErrorType: errorType(err)}
				res.Facts = gate.MailboxFacts{Email: email, Error: res.Error}
			}
			addResult(&acc, res, spec.Gate, in.KeepResults)
			waveDetails(ctx, in.Task, acc, running)
		}
	}

	started := 0
	exhausted, more := false, false
	var queue []emailapi.MailboxSpec
	for {
		if ctx.Err() != nil || firstErr != nil {
			break // cancelled: start nothing more, wait for the running ones below
		}
		if len(queue) == 0 && !exhausted {
			page, err := loadPage(ctx, shape >= 2, emailapi.LoadRequest{Spec: jobOnly, AfterID: in.AfterID, Limit: in.PageSize})
			if err != nil {
				if temporal.IsCanceledError(err) {
					break
				}
				for running > 0 {
					sel.Select(ctx)
				}
				return acc, fmt.Errorf("load mailboxes after %d: %w", in.AfterID, err)
			}
			if len(page) == 0 {
				exhausted = true
				continue
			}
			// Continue-as-new only between pages, so the cursor is simply the last mailbox
			// started; the page just read is read again by the next run.
			if started >= in.ContinueAfter || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
				more = true
				break
			}
			queue = page
			exhausted = len(page) < in.PageSize
			continue
		}
		if len(queue) == 0 {
			break // every mailbox started
		}
		if running >= in.Concurrency {
			sel.Select(ctx)
			continue
		}
		m := queue[0]
		queue = queue[1:]
		in.AfterID = m.MailboxID
		started++
		running++
		inFlight[m.Email] = true
		sel.AddFuture(startMailbox(ctx, inline, in.Task, spec.Domain, m), collect(m.Email))
	}
	for running > 0 {
		sel.Select(ctx)
	}
	if ctx.Err() != nil || firstErr != nil {
		acc.Finished = workflow.Now(ctx)
		return acc, temporal.NewCanceledError(fmt.Sprintf("%s wave cancelled after %d mailboxes", in.Task.Kind, acc.Mailboxes))
	}
	if more {
		in.Acc = acc
		return acc, workflow.NewContinueAsNewError(ctx, emailapi.WaveWorkflowName, in)
	}
	acc.Finished = workflow.Now(ctx)
	return acc, nil
}

// mailboxActivitiesChange is the GetVersion change id of waves that run their mailboxes' passes
// as their own activities, not as a MailboxSyncWorkflow child each. A child cost the wave two
// workflow tasks (started, completed) and itself two more, plus the start of an execution;
// that per-mailbox overhead, not the IMAP work, set the pace of a large or a no-change pass.
const mailboxActivitiesChange = "wave-mailbox-activities"

// loadPage reads the next page of the job's mailboxes from PostgreSQL. As a local activity (the
// workflows' own worker registers the bookkeeping activities) it costs the wave no activity task
// and no second workflow task: a no-change presync of a few mailboxes waits for it before any
// mailbox starts.
func loadPage(ctx workflow.Context, local bool, req emailapi.LoadRequest) ([]emailapi.MailboxSpec, error) {
	var jobActs *emailjob.Activities
	var page []emailapi.MailboxSpec
	bo := bookkeepingOptions(time.Minute)
	if !local {
		return page, workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, bo), jobActs.LoadEmailMailboxes, req).Get(ctx, &page)
	}
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: bo.StartToCloseTimeout,
		RetryPolicy:         bo.RetryPolicy,
	})
	return page, workflow.ExecuteLocalActivity(lctx, jobActs.LoadEmailMailboxes, req).Get(ctx, &page)
}

// startMailbox starts one mailbox's pass: inline, as the wave's own activities in a coroutine;
// otherwise as a MailboxSyncWorkflow child (waves recorded before mailboxActivitiesChange).
// The future settles with the mailbox's result.
func startMailbox(ctx workflow.Context, inline bool, t emailapi.Task, domain string, m emailapi.MailboxSpec) workflow.Future {
	in := MailboxInput{Task: t, Spec: m}
	if inline {
		f, set := workflow.NewFuture(ctx)
		workflow.Go(ctx, func(gctx workflow.Context) {
			res, err := passMailbox(gctx, in, mailboxPass{activity: true})
			set.Set(res, err)
		})
		return f
	}
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:            emailapi.MailboxWorkflowID(m.JobID, m.Email),
		WorkflowIDReusePolicy: enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WaitForCancellation:   true,
		ParentClosePolicy:     enums.PARENT_CLOSE_POLICY_REQUEST_CANCEL,
		TypedSearchAttributes: temporal.NewSearchAttributes(searchattr.Domain.ValueSet(domain)),
		// The parent is named so an operator who reaches a mailbox in the list knows whose it is.
		StaticSummary: fmt.Sprintf("%s %s of %s · mailbox of email job %d, child of %s",
			t.Kind, t.RunType, m.Email, m.JobID, workflow.GetInfo(ctx).WorkflowExecution.ID),
	})
	return workflow.ExecuteChildWorkflow(cctx, emailapi.MailboxWorkflowName, in)
}

// waveTask fills a Task from the job's spec.
func waveTask(spec jobspec.Spec, kind emailapi.TaskKind, runType model.RunType, mode model.SyncMode, phase model.Phase, cutOver bool) emailapi.Task {
	return emailapi.Task{Kind: kind, RunType: runType, Mode: mode, Phase: phase, CutOver: cutOver,
		Parallelism: spec.Concurrency.Folders, TriggeredBy: "worker",
		MaxAttempts: spec.Retry.MaxAttempts, MaxInterval: spec.Retry.MaxInterval.D()}
}

// waveDetails is the Temporal UI's current details of a wave (no history event).
func waveDetails(ctx workflow.Context, t emailapi.Task, acc WaveResult, running int) {
	what := string(t.Kind)
	if t.Kind == emailapi.TaskSync {
		what = fmt.Sprintf("%s %s", t.RunType, t.Mode)
	}
	d := fmt.Sprintf("**%s** pass · %d mailboxes done · %d failed · %d running", what, acc.Mailboxes, acc.Failed, running)
	if acc.Transferred > 0 {
		d += fmt.Sprintf(" · %d messages copied", acc.Transferred)
	}
	if acc.Runs > 1 {
		d += fmt.Sprintf(" · run %d (continue-as-new)", acc.Runs)
	}
	workflow.SetCurrentDetails(ctx, d)
}
