package mail

import (
	"context"
	"sync"
	"time"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// PassProgressEvery is how often a running sync pass reports its progress to the job.
var PassProgressEvery = 5 * time.Second

// PassProgressReport is one mailbox's progress in a sync pass.
type PassProgressReport struct {
	JobID   int64
	Email   string
	RunType model.RunType
	Copied  int64 // messages copied by this pass so far (its earlier attempts included)
	Done    bool  // the pass ended well
}

// passReporter returns the pass's progress callback: throttled, never blocking the copy for
// long (OnPassProgress runs on its own goroutine, one report at a time, the newest wins).
func (a *Activities) passReporter(ctx context.Context, req emailapi.PassRequest) func(copied int64, done bool) {
	if a.OnPassProgress == nil || req.Mode == model.ModeDryRun {
		return func(int64, bool) {}
	}
	var mu sync.Mutex
	var last time.Time
	busy := false
	return func(copied int64, done bool) {
		mu.Lock()
		if !done && (busy || time.Since(last) < PassProgressEvery) {
			mu.Unlock()
			return
		}
		busy, last = true, time.Now()
		mu.Unlock()
		r := PassProgressReport{JobID: req.Spec.JobID, Email: req.Spec.Email, RunType: req.RunType, Copied: copied, Done: done}
		send := func() {
			a.OnPassProgress(context.WithoutCancel(ctx), r)
			mu.Lock()
			busy = false
			mu.Unlock()
		}
		if done {
			send()
			return
		}
		go send()
	}
}
