package testenv

import (
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// RunWithHeartbeatTimeout runs activity fn (a method of acts) once, as a workflow schedules it,
// with the given heartbeat timeout and no retry, and returns its error. The test environment
// fails an activity that stays silent longer than the timeout with a heartbeat TimeoutError
// (temporal.IsTimeoutError), the way the server hands a dead worker's activity to another: an
// activity that keeps a heartbeat while it waits returns its own result instead.
func RunWithHeartbeatTimeout(t testing.TB, acts, fn any, timeout time.Duration, args ...any) error {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	// A loaded machine can hold a workflow task past the SDK's 1 s deadlock detection.
	env.SetWorkerOptions(worker.Options{DeadlockDetectionTimeout: time.Minute})
	env.RegisterActivity(acts)
	env.RegisterWorkflowWithOptions(func(ctx workflow.Context) error {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute,
			HeartbeatTimeout: timeout, RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 1}})
		return workflow.ExecuteActivity(ctx, fn, args...).Get(ctx, nil)
	}, workflow.RegisterOptions{Name: "RunWithHeartbeatTimeout"})
	env.ExecuteWorkflow("RunWithHeartbeatTimeout")
	if !env.IsWorkflowCompleted() {
		t.Fatal("the workflow running the activity did not complete")
	}
	return env.GetWorkflowError()
}
