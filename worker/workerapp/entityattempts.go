package workerapp

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"

	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// entityAttempts tells a database migration about every failed attempt of an activity of one
// of its entity workflows (dbmigrateapi.SignalEntityAttempt), so the migration's page in the
// Temporal UI shows what Temporal is retrying. Best effort: the attempt's own error is what
// Temporal acts on, and a lost report only leaves the page behind.
type entityAttempts struct {
	interceptor.WorkerInterceptorBase
	signal func(ctx context.Context, workflowID, name string, arg any) error
	logger *slog.Logger
}

func (e *entityAttempts) InterceptActivity(_ context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	i := &entityAttemptsActivity{e: e}
	i.Next = next
	return i
}

type entityAttemptsActivity struct {
	interceptor.ActivityInboundInterceptorBase
	e *entityAttempts
}

func (i *entityAttemptsActivity) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	res, err := i.Next.ExecuteActivity(ctx, in)
	if err == nil || i.e.signal == nil {
		return res, err
	}
	info := activity.GetInfo(ctx)
	if info.WorkflowType == nil || info.WorkflowType.Name != dbmigrateapi.EntityWorkflowName {
		return res, err
	}
	parent, entity, ok := dbmigrateapi.SplitEntityWorkflowID(info.WorkflowExecution.ID)
	if !ok {
		return res, err
	}
	a := entityAttempt(info, entity, err)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if serr := i.e.signal(sctx, parent, dbmigrateapi.SignalEntityAttempt, a); serr != nil && i.e.logger != nil {
		i.e.logger.Warn("could not report a failed attempt to its migration", "workflow_id", parent,
			"entity", entity, "activity", a.Activity, "error", serr)
	}
	return res, err
}

// entityAttempt describes a failed attempt: the error's type and message (an application
// error's own message, without the SDK's decoration), and whether another attempt follows.
func entityAttempt(info activity.Info, entity string, err error) dbmigrateapi.EntityAttempt {
	a := dbmigrateapi.EntityAttempt{Entity: entity, Activity: info.ActivityType.Name, Attempt: info.Attempt,
		Message: err.Error(), At: time.Now().UTC()}
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		a.Type, a.Message = ae.Type(), ae.Message()
		a.Final = ae.NonRetryable()
	}
	if rp := info.RetryPolicy; rp != nil {
		if rp.MaximumAttempts > 0 && info.Attempt >= rp.MaximumAttempts {
			a.Final = true
		}
		for _, t := range rp.NonRetryableErrorTypes {
			if t == a.Type {
				a.Final = true
			}
		}
	}
	return a
}
