package testenv

import (
	"testing"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/cutover/cutover/internal/taskqueue"
)

// StartPoolWorkers starts, for a test's own workflows and activities (fakes included), a worker
// on each pool's task queue of queue (taskqueue: the workflows', "-mail" and "-db"), each
// registered by register, as one cutover worker serving every pool polls them. It returns the
// stop function (also called when the test ends).
func StartPoolWorkers(t testing.TB, c client.Client, queue string, o worker.Options, register func(worker.Registry)) (stop func()) {
	t.Helper()
	var ws []worker.Worker
	stop = func() {
		for _, w := range ws {
			w.Stop()
		}
		ws = nil
	}
	for _, p := range taskqueue.All {
		po := o
		po.DisableWorkflowWorker = p != taskqueue.Workflows
		w := worker.New(c, taskqueue.Name(queue, p), po)
		if po.DisableWorkflowWorker {
			register(activitiesOnly{w})
		} else {
			register(w)
		}
		if err := w.Start(); err != nil {
			stop()
			t.Fatalf("worker on %s: %v", taskqueue.Name(queue, p), err)
		}
		ws = append(ws, w)
	}
	t.Cleanup(stop)
	return stop
}

// activitiesOnly is the registry of a pool that polls activities only: workflows registered on
// it are left out, as the SDK refuses them on a worker whose workflow poller is disabled.
type activitiesOnly struct{ worker.Registry }

func (activitiesOnly) RegisterWorkflow(any)                                      {}
func (activitiesOnly) RegisterWorkflowWithOptions(any, workflow.RegisterOptions) {}
