package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	sdk "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/searchattr"
	"github.com/cutover/cutover/internal/silence"
	"github.com/cutover/cutover/workflows/email/emailapi"
	"github.com/cutover/cutover/workflows/email/jobspec"
)

// Job names a started email job.
type Job struct {
	JobID      int64  `json:"job_id"`
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id"`
	Mailboxes  int    `json:"mailboxes"`
}

// EmailStartOptions are the options every email job starts with: id email-job-<job_id> (one
// execution per job at a time; a failed one may be started again to resume), the search
// attributes operators filter on, and the summary and details the Temporal UI shows.
// mailboxes is the job's mailbox count (the spec's, unless they were registered beforehand).
func (c *Client) EmailStartOptions(spec jobspec.Spec, mailboxes int) sdk.StartWorkflowOptions {
	return sdk.StartWorkflowOptions{
		ID:                                       emailapi.WorkflowID(spec.JobID),
		TaskQueue:                                c.taskQueue,
		WorkflowIDReusePolicy:                    enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY,
		WorkflowIDConflictPolicy:                 enums.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		TypedSearchAttributes: temporal.NewSearchAttributes(searchattr.Kind.ValueSet(emailapi.Kind),
			searchattr.Domain.ValueSet(spec.Domain), searchattr.TenantID.ValueSet(spec.TenantID),
			searchattr.Phase.ValueSet(string(model.PhaseDiscovered)), searchattr.Gate.ValueSet(string(model.GateBlocked)),
			searchattr.Status.ValueSet("running"), searchattr.SyncPercent.ValueSet(0)),
		StaticSummary: EmailSummary(spec, mailboxes),
		StaticDetails: EmailDetails(spec, mailboxes),
	}
}

// EmailSummary is the one line the Temporal UI shows for a job.
func EmailSummary(spec jobspec.Spec, mailboxes int) string {
	return fmt.Sprintf("email job %d: %s (%d mailboxes)", spec.JobID, spec.Domain, mailboxes)
}

// EmailDetails is the Markdown the Temporal UI shows under the summary.
func EmailDetails(spec jobspec.Spec, mailboxes int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "**Email migration** of `%s` (tenant %d", spec.Domain, spec.TenantID)
	if spec.TicketID > 0 {
		fmt.Fprintf(&b, ", ticket %d", spec.TicketID)
	}
	fmt.Fprintf(&b, ")\n\n- source: `%s` %s\n- destination: `%s`\n- mailboxes: %d\n- presyncs: ", spec.Source.Host, spec.Source.Label, spec.Destination.Host, mailboxes)
	if spec.Schedule.PresyncAt != "" {
		fmt.Fprintf(&b, "daily at %s %s", spec.Schedule.PresyncAt, spec.Schedule.Timezone)
	} else {
		fmt.Fprintf(&b, "every %s", spec.Schedule.PresyncInterval)
	}
	if at := spec.Schedule.CutoverAt; at != nil {
		fmt.Fprintf(&b, "\n- cutover hour: %s", at.UTC().Format(time.RFC3339))
	}
	return b.String()
}

// StartEmailJob validates spec and starts its job. The spec needs a job_id; its mailboxes
// travel in the workflow input, which registers them in PostgreSQL (for very large jobs the
// cutover CLI registers them first and starts with none, see EmailStartOptions).
func (c *Client) StartEmailJob(ctx context.Context, spec jobspec.Spec) (Job, error) {
	spec = spec.WithDefaults()
	if err := spec.Validate(); err != nil {
		return Job{}, err
	}
	if spec.JobID <= 0 {
		return Job{}, errors.New("job spec needs a job_id (the workflow id is email-job-<job_id>)")
	}
	n := len(spec.Mailboxes)
	if n == 0 {
		n = spec.MailboxCount
	}
	return c.StartEmailJobWith(ctx, spec, c.EmailStartOptions(spec, n))
}

// StartEmailJobWith starts a job with the given options (EmailStartOptions, adjusted).
func (c *Client) StartEmailJobWith(ctx context.Context, spec jobspec.Spec, opts sdk.StartWorkflowOptions) (Job, error) {
	run, err := c.tc.ExecuteWorkflow(ctx, opts, emailapi.WorkflowName, spec)
	if err != nil {
		var started *serviceerror.WorkflowExecutionAlreadyStarted
		if errors.As(err, &started) {
			if st, derr := c.describe(ctx, opts.ID); derr == nil && st == enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
				return Job{}, fmt.Errorf("job %d (workflow %s): %w", spec.JobID, opts.ID, ErrAlreadyRunning)
			}
			return Job{}, fmt.Errorf("job %d already ran to completion (workflow %s); a closed job is not started again", spec.JobID, opts.ID)
		}
		return Job{}, fmt.Errorf("start job %d: %w", spec.JobID, err)
	}
	n := len(spec.Mailboxes)
	if n == 0 {
		n = spec.MailboxCount
	}
	return Job{JobID: spec.JobID, WorkflowID: run.GetID(), RunID: run.GetRunID(), Mailboxes: n}, nil
}

func (c *Client) describe(ctx context.Context, workflowID string) (enums.WorkflowExecutionStatus, error) {
	d, err := c.tc.DescribeWorkflowExecution(ctx, workflowID, "")
	if err != nil {
		return 0, err
	}
	return d.GetWorkflowExecutionInfo().GetStatus(), nil
}

// EmailRunning reports whether a job's workflow runs now (false when it never ran or ended).
func (c *Client) EmailRunning(ctx context.Context, jobID int64) (bool, error) {
	st, err := c.describe(ctx, emailapi.WorkflowID(jobID))
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up job %d: %w", jobID, err)
	}
	return st == enums.WORKFLOW_EXECUTION_STATUS_RUNNING, nil
}

// EmailStatus queries a job: the ticket desk's payload (phase, gate, sync percent), the checks,
// the passes and per-mailbox progress. ErrNotFound when Temporal has no such job.
func (c *Client) EmailStatus(ctx context.Context, jobID int64) (emailapi.Status, error) {
	var st emailapi.Status
	v, err := c.tc.QueryWorkflow(ctx, emailapi.WorkflowID(jobID), "", emailapi.QueryStatus)
	if err != nil {
		return st, notFound(err, fmt.Sprintf("email job %d", jobID))
	}
	return st, v.Get(&st)
}

// WaveProgress queries a running pass (its workflow id is the status's CurrentPass.WorkflowID).
func (c *Client) WaveProgress(ctx context.Context, waveWorkflowID string) (emailapi.WaveProgress, error) {
	var p emailapi.WaveProgress
	v, err := c.tc.QueryWorkflow(ctx, waveWorkflowID, "", emailapi.QueryStatus)
	if err != nil {
		return p, notFound(err, "pass "+waveWorkflowID)
	}
	return p, v.Get(&p)
}

// EmailCommand sends one of the job's commands (emailapi.Approve, DNSCutoverConfirmed, Retry,
// Abort, SetCutoverTime, Close, PresyncNow) as a validated update and waits for the job to
// apply it. A refusal is a *RefusedError carrying the job's reason.
func (c *Client) EmailCommand(ctx context.Context, jobID int64, name string, req emailapi.Request) (emailapi.Ack, error) {
	var ack emailapi.Ack
	h, err := c.tc.UpdateWorkflow(ctx, sdk.UpdateWorkflowOptions{WorkflowID: emailapi.WorkflowID(jobID), UpdateName: name,
		Args: []any{req}, WaitForStage: sdk.WorkflowUpdateStageCompleted})
	if err == nil {
		err = h.Get(ctx, &ack)
	}
	if err == nil {
		return ack, nil
	}
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return ack, fmt.Errorf("job %d has no running workflow (%s): %w", jobID, emailapi.WorkflowID(jobID), ErrNotFound)
	}
	if isRefusal(err) {
		return ack, &RefusedError{Command: name, Reason: ErrMessage(err)}
	}
	return ack, fmt.Errorf("job %d %s: %w", jobID, name, err)
}

// SignalEmail sends a command as a signal: fire and forget (a refused one is listed in the
// status's Refused).
func (c *Client) SignalEmail(ctx context.Context, jobID int64, name string, req emailapi.Request) error {
	if err := c.tc.SignalWorkflow(ctx, emailapi.WorkflowID(jobID), "", name, req); err != nil {
		return notFound(err, fmt.Sprintf("email job %d", jobID))
	}
	return nil
}

// Approve is the ops lead's approval of the go/no-go gate (refused while critical checks fail).
func (c *Client) Approve(ctx context.Context, jobID int64, by, note string) (emailapi.Ack, error) {
	return c.EmailCommand(ctx, jobID, emailapi.Approve, emailapi.Request{By: by, Note: note})
}

// ConfirmDNSCutover says DNS/MX point at the destination now (at nil = now); refused unless the
// gate is ready_for_dns. It answers once no presync runs any more.
func (c *Client) ConfirmDNSCutover(ctx context.Context, jobID int64, by string, at *time.Time) (emailapi.Ack, error) {
	return c.EmailCommand(ctx, jobID, emailapi.DNSCutoverConfirmed, emailapi.Request{By: by, At: at})
}

// WaitEmail polls a job's status until done says so (or ctx ends). A failed job ends the wait
// with an error naming the phase and the reason.
func (c *Client) WaitEmail(ctx context.Context, jobID int64, poll time.Duration, done func(emailapi.Status) bool) (emailapi.Status, error) {
	st, err := wait(ctx, poll, func(ctx context.Context) (emailapi.Status, error) { return c.EmailStatus(ctx, jobID) },
		func(st emailapi.Status) bool { return done(st) || st.Phase == model.PhaseFailed })
	if err == nil && st.Phase == model.PhaseFailed && !done(st) {
		return st, fmt.Errorf("job %d failed in %s: %s", jobID, st.FailedPhase, st.LastError)
	}
	return st, err
}

// EmailResult waits for a job's workflow to end and returns its final status.
func (c *Client) EmailResult(ctx context.Context, jobID int64) (emailapi.Status, error) {
	var st emailapi.Status
	err := c.tc.GetWorkflow(ctx, emailapi.WorkflowID(jobID), "").Get(ctx, &st)
	if err != nil {
		return st, notFound(err, fmt.Sprintf("email job %d", jobID))
	}
	return st, nil
}

// LiveMailbox is a mailbox pass in flight, from its activity's last heartbeat.
type LiveMailbox struct {
	Email    string            `json:"email"`
	Activity string            `json:"activity"` // SyncMailbox, PreflightMailbox, VerifyMailbox
	Attempt  int32             `json:"attempt"`
	Progress emailapi.Progress `json:"progress"` // zero until the first heartbeat (syncs only)
	Heard    *time.Time        `json:"last_heartbeat,omitempty"`
	// WorkerSilent: its worker stopped heartbeating; Temporal waits for the heartbeat timeout
	// before another worker runs it.
	WorkerSilent string `json:"worker_silent,omitempty"`
}

// LiveMailboxes reports the mailboxes a running pass of a job is working on, with the live
// counters their sync activities heartbeat (messages found, copied, skipped so far). A wave runs
// each mailbox's pass as its own activity, the address its id; a wave started before that ran a
// MailboxSyncWorkflow per mailbox, described one by one.
func (c *Client) LiveMailboxes(ctx context.Context, st emailapi.Status) ([]LiveMailbox, error) {
	if st.CurrentPass == nil {
		return nil, nil
	}
	wp, err := c.WaveProgress(ctx, st.CurrentPass.WorkflowID)
	if err != nil {
		return nil, err
	}
	wave, err := c.tc.DescribeWorkflowExecution(ctx, st.CurrentPass.WorkflowID, "")
	if err != nil {
		return nil, err
	}
	own := map[string]*workflowpb.PendingActivityInfo{}
	for _, pa := range wave.GetPendingActivities() {
		own[pa.GetActivityId()] = pa
	}
	var out []LiveMailbox
	for _, addr := range wp.InFlight {
		lm := LiveMailbox{Email: addr}
		if pa, ok := own[addr]; ok {
			c.liveActivity(&lm, pa)
			out = append(out, lm)
			continue
		}
		d, err := c.tc.DescribeWorkflowExecution(ctx, emailapi.MailboxWorkflowID(st.JobID, addr), "")
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			continue // finished between the two calls
		}
		if err != nil {
			return out, err
		}
		for _, pa := range d.GetPendingActivities() {
			c.liveActivity(&lm, pa)
		}
		out = append(out, lm)
	}
	return out, nil
}

// liveActivity fills a live mailbox from its pending activity.
func (c *Client) liveActivity(lm *LiveMailbox, pa *workflowpb.PendingActivityInfo) {
	lm.Activity, lm.Attempt = pa.GetActivityType().GetName(), pa.GetAttempt()
	lm.WorkerSilent = silence.Note(pa, time.Now())
	if t := pa.GetLastHeartbeatTime(); t != nil && t.IsValid() && t.AsTime().Unix() > 0 {
		at := t.AsTime()
		lm.Heard = &at
	}
	if hd := pa.GetHeartbeatDetails(); hd != nil && len(hd.GetPayloads()) > 0 {
		_ = c.dc.FromPayloads(hd, &lm.Progress)
	}
}
