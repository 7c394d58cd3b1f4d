package dbmigrate

import (
	"errors"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// childStartRetry is the GetVersion change id of startEntity's retry.
const childStartRetry = "entity-child-start-retry"

// How often startEntity retries while an entity child of an earlier run is open: from
// childStartWait, doubling, to childStartMaxWait (a long entity costs a timer a minute).
const (
	childStartWait    = time.Second
	childStartMaxWait = time.Minute
)

// startEntity starts an entity's child workflow. After an operator resets the orchestration
// (`temporal workflow reset`) while an entity loads, the reset run starts that entity's child
// again under the same id, but the previous run's child keeps running (a reset does not close
// it): the start failed with ChildWorkflowExecutionAlreadyStarted and the whole migration
// failed with it. The start is now retried with durable timers until the old child has closed
// — it finishes the entity meanwhile, and its progress signals reach this run, which has the
// same workflow id — and the new child then finds every batch committed (replays).
func (w *orch) startEntity(ctx, cctx workflow.Context, in EntityInput) workflow.Future {
	if workflow.GetVersion(ctx, childStartRetry, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return workflow.ExecuteChildWorkflow(cctx, dbmigrateapi.EntityWorkflowName, in)
	}
	f, set := workflow.NewFuture(ctx)
	workflow.Go(cctx, func(gctx workflow.Context) { // cctx: a rollback's cancel also ends the waiting
		wait := childStartWait
		for attempt := 1; ; attempt++ {
			child := workflow.ExecuteChildWorkflow(gctx, dbmigrateapi.EntityWorkflowName, in)
			err := child.GetChildWorkflowExecution().Get(gctx, nil)
			if errors.As(err, new(*temporal.ChildWorkflowExecutionAlreadyStartedError)) {
				w.log.Warn("the entity's child of an earlier run is still open; waiting for it", "entity", in.Entity,
					"attempt", attempt, "wait", wait)
				if err := workflow.Sleep(gctx, wait); err != nil {
					set.Set(EntityResult{}, err) // cancelled: a rollback or a failure elsewhere
					return
				}
				wait = min(2*wait, childStartMaxWait)
				continue
			}
			var r EntityResult
			err = child.Get(gctx, &r)
			set.Set(r, err)
			return
		}
	})
	return f
}
