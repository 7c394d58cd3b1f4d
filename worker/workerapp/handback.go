package workerapp

import (
	"context"
	"errors"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
)

// ErrTypeWorkerStopping is the error type of an activity a stopping worker handed back.
const ErrTypeWorkerStopping = "WorkerStopping"

// errStopping is the cause of an activity's cancellation when its worker stops.
var errStopping = errors.New("worker stopping")

// handBackRetryDelay is how soon Temporal offers a handed-back activity again: at once, to any
// other worker, instead of after the retry policy's backoff.
const handBackRetryDelay = 100 * time.Millisecond

// handBack makes a stopping worker (SIGTERM: a rolling restart, a scale-in) hand its in-flight
// activities back at once: their context is cancelled when the worker starts to stop, they
// checkpoint as on any cancellation (the mail engine's heartbeat details and ledger, a copy's
// committed batches), and they fail with a retryable WorkerStopping error that another worker
// picks up right away. Without it they ran on through the shutdown grace and were then
// abandoned to their heartbeat timeout.
type handBack struct {
	interceptor.WorkerInterceptorBase
}

func (*handBack) InterceptActivity(ctx context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	i := &handBackActivity{}
	i.Next = next
	return i
}

type handBackActivity struct {
	interceptor.ActivityInboundInterceptorBase
}

func (h *handBackActivity) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	stopping := activity.GetWorkerStopChannel(ctx)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-stopping:
			cancel(errStopping)
		case <-ctx.Done():
		}
	}()
	res, err := h.Next.ExecuteActivity(ctx, in)
	if err != nil && errors.Is(context.Cause(ctx), errStopping) {
		return nil, temporal.NewApplicationErrorWithOptions("worker stopping: handed back to another worker", ErrTypeWorkerStopping,
			temporal.ApplicationErrorOptions{Cause: err, NextRetryDelay: handBackRetryDelay})
	}
	return res, err
}
