package dbcopy

import (
	"context"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// chunkBeat heartbeats the latest ChunkProgress: at once when a batch commits, and every
// quarter heartbeat timeout in between, so a batch that takes longer than the heartbeat
// timeout (a wait bounded by lock_timeout, a big page) does not make Temporal start a second
// attempt beside the first. A dead worker still stops heartbeating.
type chunkBeat struct {
	ctx  context.Context
	mu   sync.Mutex
	last dbmigrateapi.ChunkProgress
	stop func()
}

// since is when the chunk's last batch committed: the previous attempt's, so a batch that fails
// every attempt shows as stalled in the status; zero for a chunk's first attempt (now: the
// chunk has committed nothing since it started).
func newChunkBeat(ctx context.Context, cursor dbmigrateapi.BatchRequest, done int, since time.Time) *chunkBeat {
	if since.IsZero() {
		since = time.Now().UTC()
	}
	b := &chunkBeat{ctx: ctx, last: dbmigrateapi.ChunkProgress{Cursor: cursor, Done: done, LastCommit: since}, stop: func() {}}
	if !activity.IsActivity(ctx) || activity.GetInfo(ctx).HeartbeatTimeout <= 0 {
		return b
	}
	every := max(activity.GetInfo(ctx).HeartbeatTimeout/4, 100*time.Millisecond)
	quit, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				b.mu.Lock()
				p := b.last
				b.mu.Unlock()
				activity.RecordHeartbeat(ctx, p)
			case <-quit:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	b.stop = func() { close(quit); <-stopped }
	return b
}

// committed records a committed batch and heartbeats it.
func (b *chunkBeat) committed(next dbmigrateapi.BatchRequest, done int) {
	b.mu.Lock()
	b.last = dbmigrateapi.ChunkProgress{Cursor: next, Done: done, LastCommit: time.Now().UTC()}
	p := b.last
	b.mu.Unlock()
	if activity.IsActivity(b.ctx) {
		activity.RecordHeartbeat(b.ctx, p)
	}
}
