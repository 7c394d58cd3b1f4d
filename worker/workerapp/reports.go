package workerapp

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"go.temporal.io/api/serviceerror"

	"github.com/cutover/cutover/workflows/email/emailapi"
)

// ReportsEvery is how often, at most, the worker signals a job with its mailboxes' reports:
// often enough for a live view, rarely enough that a day-long sync adds a few thousand events.
var ReportsEvery = 15 * time.Second

// maxAttemptsKept bounds the failed attempts gathered for one job between two signals (the job
// keeps about as many for its status).
const maxAttemptsKept = 20

// jobReports gathers what the mailbox activities of each job report (pass progress, failed
// attempts) and signals each job at most once per interval with all of it: a 1,000-mailbox
// job would otherwise take a signal, and a workflow task, per mailbox report. Best effort: a
// lost report only delays what the job shows.
type jobReports struct {
	every  time.Duration
	signal func(ctx context.Context, workflowID, name string, arg any) error
	logger *slog.Logger

	mu      sync.Mutex
	pending map[int64]*gathered // by job id; present while a send is scheduled
}

type progressKey struct {
	email   string
	runType string
}

type gathered struct {
	progress map[progressKey]emailapi.PassProgress
	order    []progressKey // first report first, so a signal lists mailboxes in a stable order
	attempts []emailapi.AttemptFailed
}

func newJobReports(every time.Duration, signal func(context.Context, string, string, any) error, logger *slog.Logger) *jobReports {
	return &jobReports{every: every, signal: signal, logger: logger, pending: map[int64]*gathered{}}
}

// progress keeps a mailbox's newest report of a pass.
func (r *jobReports) progress(jobID int64, p emailapi.PassProgress) {
	r.add(jobID, func(g *gathered) {
		k := progressKey{p.Email, string(p.RunType)}
		if _, ok := g.progress[k]; !ok {
			g.order = append(g.order, k)
		}
		g.progress[k] = p
	})
}

// attempt keeps a failed attempt (the newest maxAttemptsKept).
func (r *jobReports) attempt(jobID int64, a emailapi.AttemptFailed) {
	r.add(jobID, func(g *gathered) {
		g.attempts = append(g.attempts, a)
		if n := len(g.attempts); n > maxAttemptsKept {
			g.attempts = g.attempts[n-maxAttemptsKept:]
		}
	})
}

func (r *jobReports) add(jobID int64, f func(*gathered)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	g, ok := r.pending[jobID]
	if !ok {
		g = &gathered{progress: map[progressKey]emailapi.PassProgress{}}
		r.pending[jobID] = g
		time.AfterFunc(r.every, func() { r.send(jobID) })
	}
	f(g)
}

// send signals the job with what was gathered for it since the previous signal.
func (r *jobReports) send(jobID int64) {
	r.mu.Lock()
	g := r.pending[jobID]
	delete(r.pending, jobID)
	r.mu.Unlock()
	if g == nil {
		return
	}
	var m emailapi.MailboxReports
	for _, k := range g.order {
		m.Progress = append(m.Progress, g.progress[k])
	}
	m.Attempts = g.attempts
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := r.signal(ctx, emailapi.WorkflowID(jobID), emailapi.MailboxReportsSignal, m)
	var ended *serviceerror.NotFound
	switch {
	case err == nil || r.logger == nil:
	case errors.As(err, &ended): // the job ended (or was aborted) since: nothing to show
		r.logger.Debug("a job's mailboxes' reports after it ended", "job_id", jobID, "err", err)
	default:
		r.logger.Warn("could not send a job its mailboxes' reports", "job_id", jobID,
			"progress", len(m.Progress), "attempts", len(m.Attempts), "err", err)
	}
}
