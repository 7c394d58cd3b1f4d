package client

import (
	"context"
	"fmt"
	"time"

	sdk "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/searchattr"
	"github.com/cutover/cutover/workflows/email/emailapi"
	"github.com/cutover/cutover/workflows/email/jobspec"
)

// maxDryRunResults bounds the per-mailbox results a dry run keeps (failures beyond it are
// still counted).
const maxDryRunResults = 2000

// DryRunEmail runs a dry pass over a job's registered mailboxes (spec.MailboxCount of them,
// registered under spec.JobID) while the job itself does not run: per mailbox, what a pass of
// mode (copy, mirror or strict_mirror) would copy, delete and refuse, changing nothing on
// either server. It waits for the pass and returns it, every mailbox's result included.
func (c *Client) DryRunEmail(ctx context.Context, spec jobspec.Spec, mode model.SyncMode) (emailapi.WaveResult, error) {
	var res emailapi.WaveResult
	switch mode {
	case "":
		mode = model.ModeCopy
	case model.ModeCopy, model.ModeMirror, model.ModeStrictMirror:
	default:
		return res, fmt.Errorf("dry run of %q: want copy, mirror or strict_mirror", mode)
	}
	spec = spec.WithDefaults()
	running, err := c.EmailRunning(ctx, spec.JobID)
	if err != nil {
		return res, err
	}
	if running {
		return res, fmt.Errorf("job %d (workflow %s) runs: a dry run would meet its mailbox passes: %w", spec.JobID,
			emailapi.WorkflowID(spec.JobID), ErrAlreadyRunning)
	}
	n := spec.MailboxCount
	if n == 0 {
		n = len(spec.Mailboxes)
	}
	spec.Mailboxes = nil
	in := emailapi.WaveInput{Spec: spec, Concurrency: spec.Concurrency.Mailboxes, KeepResults: min(max(n, 1), maxDryRunResults),
		Task: emailapi.Task{Kind: emailapi.TaskSync, Mode: model.ModeDryRun, DryRunOf: mode, RunType: model.RunPreflight,
			Phase: model.PhasePreflight, TriggeredBy: "dry-run", MaxAttempts: 3, MaxInterval: 10 * time.Second}}
	run, err := c.tc.ExecuteWorkflow(ctx, sdk.StartWorkflowOptions{
		ID:                    fmt.Sprintf("email-dryrun-%d-%d", spec.JobID, time.Now().UnixNano()),
		TaskQueue:             c.taskQueue,
		TypedSearchAttributes: temporal.NewSearchAttributes(searchattr.Domain.ValueSet(spec.Domain)),
		StaticSummary:         fmt.Sprintf("dry run (%s) of email job %d: %s, %d mailboxes", mode, spec.JobID, spec.Domain, n),
	}, emailapi.WaveWorkflowName, in)
	if err != nil {
		return res, fmt.Errorf("start the dry run of job %d: %w", spec.JobID, err)
	}
	if err := run.Get(ctx, &res); err != nil {
		return res, fmt.Errorf("dry run of job %d (workflow %s): %w", spec.JobID, run.GetID(), err)
	}
	return res, nil
}
