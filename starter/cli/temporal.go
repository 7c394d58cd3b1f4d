package cli

import (
	"context"
	"flag"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/cutover/cutover/activities/dbping"
	"github.com/cutover/cutover/internal/taskqueue"
	"github.com/cutover/cutover/internal/temporalconn"
	"github.com/cutover/cutover/worker/workerapp"
	healthwf "github.com/cutover/cutover/workflows/health"
)

func init() {
	register("health", "run the HealthCheck workflow through a worker and wait for it", runHealth)
}

// temporalFlags are shared by every command that talks to Temporal: the connection (the
// temporal CLI's flags and variables, temporalconn) and the task queue.
type temporalFlags struct {
	conn      temporalconn.Options
	taskQueue string
	getenv    func(string) string
}

func (t *temporalFlags) bind(e *Env, fs *flag.FlagSet) {
	t.getenv = e.Getenv
	t.conn = temporalconn.FromEnv(e.Getenv)
	t.conn.Bind(fs)
	fs.StringVar(&t.taskQueue, "task-queue", orDefault(e.Getenv("CUTOVER_TASK_QUEUE"), workerapp.DefaultTaskQueue), "task queue the workers poll (CUTOVER_TASK_QUEUE)")
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func runHealth(ctx context.Context, e *Env, args []string) error {
	fs, tf, out := commandFlags(e, "health")
	timeout := fs.Duration("timeout", time.Minute, "how long to wait for a worker to answer")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	c, err := tf.client(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := diagnose(ctx, c.Temporal(), tf, false); err != nil {
		return err
	}
	run, err := c.Temporal().ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       fmt.Sprintf("health-%d", time.Now().UnixNano()),
		TaskQueue:                tf.taskQueue,
		WorkflowExecutionTimeout: *timeout,
		StaticSummary:            "health check: a worker answers on task queue " + tf.taskQueue + " and reaches PostgreSQL",
	}, healthwf.Name)
	if err != nil {
		return fmt.Errorf("start health check: %w", err)
	}
	var res dbping.PingResult
	if err := run.Get(ctx, &res); err != nil {
		dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer dcancel()
		if derr := diagnose(dctx, c.Temporal(), tf, true); derr != nil {
			return fmt.Errorf("health check %s: %w", run.GetID(), derr)
		}
		return fmt.Errorf("health check %s: a worker polls task queue %q but did not answer (its log says why): %w",
			run.GetID(), tf.taskQueue, err)
	}
	pools, err := poolPollers(ctx, c.Temporal(), tf.taskQueue)
	if err != nil {
		return fmt.Errorf("health check %s: %w", run.GetID(), err)
	}
	if out.json() {
		return writeJSON(e.Stdout, map[string]any{"healthy": true, "worker": res.Worker, "task_queue": tf.taskQueue,
			"schema_version": res.SchemaVersion, "pools": pools})
	}
	fmt.Fprintf(e.Stdout, "healthy: worker %s answered on task queue %q, schema version %d\n", res.Worker, tf.taskQueue, res.SchemaVersion)
	for _, p := range []taskqueue.Pool{taskqueue.Mail, taskqueue.DB} {
		fmt.Fprintf(e.Stdout, "%s pool: %d worker(s) poll %q\n", p, pools[string(p)], taskqueue.Name(tf.taskQueue, p))
	}
	return nil
}

// poolPollers counts the workers polling the mail and db pools' queues. A pool nobody polls is
// an error naming it: its activities would wait there without a word (a mailbox pass stands in
// "running" for ever). A worker that has just started may not be listed yet, so an empty queue
// is asked again for a few seconds.
func poolPollers(ctx context.Context, tc client.Client, base string) (map[string]int, error) {
	out := map[string]int{}
	for _, p := range []taskqueue.Pool{taskqueue.Mail, taskqueue.DB} {
		q := taskqueue.Name(base, p)
		for wait := 10 * time.Second; ; wait -= time.Second {
			d, err := tc.DescribeTaskQueue(ctx, q, enumspb.TASK_QUEUE_TYPE_ACTIVITY)
			if err != nil {
				return nil, fmt.Errorf("describe task queue %s: %w", q, err)
			}
			if out[string(p)] = len(d.GetPollers()); out[string(p)] > 0 {
				break
			}
			if wait <= 0 || ctx.Err() != nil {
				return nil, fmt.Errorf("no worker polls task queue %q, the %s pool's: its activities would wait there; "+
					"start cutover-worker with CUTOVER_TASK_QUEUE=%s and CUTOVER_TASK_QUEUES including %s (or all)", q, p, base, p)
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
	return out, nil
}
