package workerapp

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/cutover/cutover/internal/silence"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// SilenceEvery is how often the workflows pool looks for activities whose worker stopped
// heartbeating. A scan is one list and one describe per running workflow of the queue (every
// mailbox or entity child in flight), so it is not frequent: a SIGKILLed worker's activity is
// silent from about 13 s after its last heartbeat until its 15 s timeout, then waits for its
// retry (at once for another worker, for ever when none polls), which a 5 s look always catches.
var SilenceEvery = 5 * time.Second

// silenceWatcher tells each running migration (the email job, the database orchestration)
// which of its activities, or its children's, have a silent worker (silence.Note), by
// silence.Signal: the migration shows it in its current details, the Temporal UI's view of it.
// A migration is signalled when its notes change, so a healthy one gets no signal at all. Every
// worker of the workflows pool runs one: a second watcher sends the same notes (the migration
// keeps the last), and one watcher is enough when any worker died.
type silenceWatcher struct {
	c      client.Client
	ns     string
	queue  string // the workflows' queue: every migration and its children run there
	logger *slog.Logger
	shown  map[string]string // root workflow id/run id → the notes last signalled, joined
}

func (s *silenceWatcher) run(ctx context.Context) {
	t := time.NewTicker(SilenceEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.scan(ctx); err != nil && ctx.Err() == nil {
				s.logger.Debug("looking for silent workers", "err", err)
			}
		}
	}
}

// migrations are the workflow types that show silent workers: the roots of every other.
var migrations = []string{emailapi.WorkflowName, dbmigrateapi.WorkflowName}

// scan describes the running workflows of the queue and signals each migration whose notes
// changed since the last scan.
func (s *silenceWatcher) scan(ctx context.Context) error {
	now := time.Now()
	notes := map[string][]string{}  // root key → notes
	roots := map[string][2]string{} // root key → workflow id, type
	var token []byte
	for {
		resp, err := s.c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: s.ns,
			Query: fmt.Sprintf(`TaskQueue=%q AND ExecutionStatus="Running"`, s.queue), NextPageToken: token})
		if err != nil {
			return err
		}
		for _, e := range resp.GetExecutions() {
			id := e.GetExecution().GetWorkflowId()
			root, rootType := e.GetRootExecution(), e.GetType().GetName()
			if root.GetWorkflowId() == "" || root.GetWorkflowId() == id {
				root = e.GetExecution()
			}
			key := root.GetWorkflowId() + "/" + root.GetRunId()
			if root.GetWorkflowId() == id {
				roots[key] = [2]string{id, rootType}
			}
			d, err := s.c.DescribeWorkflowExecution(ctx, id, e.GetExecution().GetRunId())
			if err != nil {
				continue // closed meanwhile
			}
			for _, pa := range d.GetPendingActivities() {
				if n := silence.Note(pa, now); n != "" {
					notes[key] = append(notes[key], fmt.Sprintf("`%s` of `%s`: %s", pa.GetActivityType().GetName(), whose(id, pa), n))
				}
			}
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	for key, r := range roots {
		if !slices.Contains(migrations, r[1]) {
			continue
		}
		slices.Sort(notes[key])
		joined := strings.Join(notes[key], "\n")
		if joined == s.shown[key] {
			continue
		}
		if err := s.c.SignalWorkflow(ctx, r[0], "", silence.Signal, silence.Report{Notes: notes[key]}); err != nil {
			s.logger.Debug("signal silent workers", "workflow_id", r[0], "err", err)
			continue
		}
		s.logger.Info("silent workers", "workflow_id", r[0], "activities", len(notes[key]))
		s.shown[key] = joined
	}
	for key := range s.shown {
		if _, ok := roots[key]; !ok {
			delete(s.shown, key) // ended
		}
	}
	return nil
}

// whose names what a silent activity works on: a wave's mailbox pass carries the mailbox's
// address as its activity id (the SDK numbers every other activity), so the note names the
// mailbox and its wave.
func whose(workflowID string, pa *workflowpb.PendingActivityInfo) string {
	aid := pa.GetActivityId()
	if aid == "" || strings.Trim(aid, "0123456789") == "" {
		return workflowID
	}
	return aid + "` in `" + workflowID
}
