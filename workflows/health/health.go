// Package health is the smallest real workflow: it runs one activity on a worker and marks
// itself with our search attributes, so `make demo` and the tests can prove the whole stack
// (Temporal, worker, PostgreSQL, visibility) works end to end.
package health

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cutover/cutover/activities/dbping"
	"github.com/cutover/cutover/internal/searchattr"
)

// Name is the workflow type operators and clients start.
const Name = "HealthCheck"

// Kind is the MigrationKind value health checks carry.
const Kind = "health"

// Workflow pings the database through a worker activity.
func Workflow(ctx workflow.Context) (dbping.PingResult, error) {
	if err := workflow.UpsertTypedSearchAttributes(ctx,
		searchattr.Kind.ValueSet(Kind), searchattr.Status.ValueSet("running")); err != nil {
		return dbping.PingResult{}, err
	}
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 3, InitialInterval: time.Second},
	})
	var a *dbping.Activities
	var res dbping.PingResult
	if err := workflow.ExecuteActivity(ctx, a.PingDatabase).Get(ctx, &res); err != nil {
		_ = workflow.UpsertTypedSearchAttributes(ctx, searchattr.Status.ValueSet("failed"))
		return res, err
	}
	return res, workflow.UpsertTypedSearchAttributes(ctx, searchattr.Status.ValueSet("ok"))
}
