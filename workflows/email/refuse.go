package email

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cutover/cutover/activities/emailjob"
	"github.com/cutover/cutover/workflows/email/emailapi"
	"github.com/cutover/cutover/workflows/email/jobspec"
)

// refuseInput fails a job started with a spec the CLI would refuse. When the input held a
// secret, the run's own start event holds it: the worker deletes this run and starts one of
// the same id with the secret's value redacted, which refuses the spec with the same words.
func refuseInput(ctx workflow.Context, spec jobspec.Spec, err error) error {
	refusal := temporal.NewNonRetryableApplicationError(err.Error(), emailapi.ErrTypeBadSpec, nil)
	redacted, hadSecret := spec.RedactedInput()
	if !hadSecret {
		return refusal
	}
	info := workflow.GetInfo(ctx)
	workflow.GetLogger(ctx).Warn("job spec with a secret refused; its history is deleted", "workflow_id", info.WorkflowExecution.ID)
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		HeartbeatTimeout:    defaultHeartbeatTimeout, // the purge keeps a heartbeat: a killed worker holds it 15 s, not the minute
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 5, NonRetryableErrorTypes: []string{emailapi.ErrTypeNoPurge}},
	})
	var a *emailjob.Activities
	r := emailjob.RefusedStart{WorkflowID: info.WorkflowExecution.ID, RunID: info.WorkflowExecution.RunID,
		WorkflowType: info.WorkflowType.Name, TaskQueue: info.TaskQueueName, Input: redacted}
	if perr := workflow.ExecuteActivity(actx, a.PurgeRefusedStart, r).Get(ctx, nil); perr != nil {
		workflow.GetLogger(ctx).Error("could not delete the refused run's history", "error", perr)
	}
	return refusal
}
