// Package heartbeat keeps Temporal activities visibly alive while they do work that reports no
// progress of its own.
package heartbeat

import (
	"context"
	"time"

	"go.temporal.io/sdk/activity"
)

// KeepAlive heartbeats details until stopped, for activities whose work reports no progress of
// its own (preflight, verify, validation, index builds): without heartbeats Temporal notices a
// dead worker only at the start-to-close timeout, which may be hours. It does nothing outside
// an activity or when the activity has no heartbeat timeout. The SDK batches heartbeats to its
// own interval, so ticking at a quarter of the timeout costs little.
func KeepAlive(ctx context.Context, details any) (stop func()) {
	if !activity.IsActivity(ctx) || activity.GetInfo(ctx).HeartbeatTimeout <= 0 {
		return func() {}
	}
	every := max(activity.GetInfo(ctx).HeartbeatTimeout/4, 100*time.Millisecond)
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				activity.RecordHeartbeat(ctx, details)
			case <-done:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() { close(done); <-stopped }
}

// Record heartbeats details once; outside an activity (a test calling the code directly) it
// does nothing.
func Record(ctx context.Context, details any) {
	if activity.IsActivity(ctx) {
		activity.RecordHeartbeat(ctx, details)
	}
}
