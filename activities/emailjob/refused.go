package emailjob

import (
	"context"
	"encoding/json"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/cutover/cutover/internal/heartbeat"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// RefusedStart is a job workflow started with a secret in its input (with the temporal CLI or
// an SDK client, bypassing `cutover email start`): its history must not keep the secret.
type RefusedStart struct {
	WorkflowID   string          `json:"workflow_id"`
	RunID        string          `json:"run_id"`
	WorkflowType string          `json:"workflow_type"`
	TaskQueue    string          `json:"task_queue"`
	Input        json.RawMessage `json:"input"` // the input with every secret's value replaced
}

// PurgeRefusedStart deletes the refused run, whose start event holds the secret, and starts
// in its place a run of the same id with the redacted input, which refuses it with the same
// words: the operator still sees why, and no history holds the secret.
func (a *Activities) PurgeRefusedStart(ctx context.Context, r RefusedStart) error {
	defer heartbeat.KeepAlive(ctx, nil)() // a worker killed while it deletes is noticed within the heartbeat timeout
	if a.Purge == nil {
		return temporal.NewNonRetryableApplicationError("this worker cannot delete workflow histories", emailapi.ErrTypeNoPurge, nil)
	}
	if activity.IsActivity(ctx) {
		a.logger().WarnContext(ctx, "job started with a secret in its input: deleting that run's history",
			"workflow_id", r.WorkflowID, "run_id", r.RunID)
	}
	return a.Purge(ctx, r)
}
