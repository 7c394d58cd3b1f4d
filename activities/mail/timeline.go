package mail

import (
	"log/slog"
	"sync"
	"time"
)

// timeline marks the steps of a pass for its debug log ("pass timeline"): where a pass's time
// went, each step as an offset from the pass's start, so a slow pass shows whether it waited
// on a server, on PostgreSQL or on itself.
type timeline struct {
	mu    sync.Mutex
	start time.Time
	attrs []any
}

func newTimeline(start time.Time) *timeline { return &timeline{start: start} }

// at records that what happened at t (nothing for a zero t).
func (tl *timeline) at(what string, t time.Time) {
	if tl == nil || t.IsZero() {
		return
	}
	tl.mu.Lock()
	tl.attrs = append(tl.attrs, slog.Duration(what, t.Sub(tl.start).Round(100*time.Microsecond)))
	tl.mu.Unlock()
}

// mark records that what happened now.
func (tl *timeline) mark(what string) { tl.at(what, time.Now()) }

// log writes the timeline at debug level.
func (tl *timeline) log(l *slog.Logger) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	l.Debug("pass timeline", append([]any{slog.Time("began", tl.start)}, tl.attrs...)...)
}
