// Package heartbeat keeps Temporal activities visibly alive while they do work that reports no
// progress of its own.
package heartbeat

import (
	"context"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
)

// KeepAlive heartbeats details until stopped, for activities whose work reports no progress of
// its own (preflight, verify, validation, index builds): without heartbeats Temporal notices a
// dead worker only at the start-to-close timeout, which may be hours. It does nothing outside
// an activity or when the activity has no heartbeat timeout. The SDK batches heartbeats to its
// own interval, so ticking at a quarter of the timeout costs little.
func KeepAlive(ctx context.Context, details any) (stop func()) {
	return Start(ctx, details).Stop
}

// Beat heartbeats the latest details it was given: at once on Set, and every quarter of the
// heartbeat timeout in between, so the heartbeat timeout measures whether the worker lives,
// not how long one step of the work takes (a large message over a slow link).
type Beat struct {
	ctx     context.Context
	mu      sync.Mutex
	details any
	done    chan struct{}
	stopped chan struct{}
	once    sync.Once
}

// Start begins heartbeating details. Outside an activity, or without a heartbeat timeout, Set
// and Stop do nothing.
func Start(ctx context.Context, details any) *Beat {
	b := &Beat{ctx: ctx, details: details}
	if !activity.IsActivity(ctx) || activity.GetInfo(ctx).HeartbeatTimeout <= 0 {
		return b
	}
	every := max(activity.GetInfo(ctx).HeartbeatTimeout/4, 100*time.Millisecond)
	b.done, b.stopped = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(b.stopped)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				b.mu.Lock()
				d := b.details
				b.mu.Unlock()
				activity.RecordHeartbeat(ctx, d)
			case <-b.done:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return b
}

// Set records new details and heartbeats them.
func (b *Beat) Set(details any) {
	b.mu.Lock()
	b.details = details
	b.mu.Unlock()
	Record(b.ctx, details)
}

// Stop ends the heartbeats; calling it again does nothing.
func (b *Beat) Stop() {
	if b.done == nil {
		return
	}
	b.once.Do(func() { close(b.done); <-b.stopped })
}

// Record heartbeats details once; outside an activity (a test calling the code directly) it
// does nothing.
func Record(ctx context.Context, details any) {
	if activity.IsActivity(ctx) {
		activity.RecordHeartbeat(ctx, details)
	}
}
