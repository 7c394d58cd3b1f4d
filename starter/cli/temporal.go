package cli

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"

	"github.com/cutover/cutover/activities/health"
	"github.com/cutover/cutover/internal/codec"
	"github.com/cutover/cutover/worker/workerapp"
	healthwf "github.com/cutover/cutover/workflows/health"
)

func init() {
	register("health", "run the HealthCheck workflow through a worker and wait for it", runHealth)
}

// temporalFlags are shared by every command that talks to Temporal.
type temporalFlags struct {
	address, namespace, taskQueue string
	getenv                        func(string) string
}

func (t *temporalFlags) bind(e *Env, fs interface {
	StringVar(*string, string, string, string)
}) {
	t.getenv = e.Getenv
	fs.StringVar(&t.address, "address", orDefault(e.Getenv("TEMPORAL_ADDRESS"), "127.0.0.1:7233"), "Temporal frontend host:port (TEMPORAL_ADDRESS)")
	fs.StringVar(&t.namespace, "namespace", orDefault(e.Getenv("TEMPORAL_NAMESPACE"), "default"), "Temporal namespace (TEMPORAL_NAMESPACE)")
	fs.StringVar(&t.taskQueue, "task-queue", orDefault(e.Getenv("CUTOVER_TASK_QUEUE"), workerapp.DefaultTaskQueue), "task queue the workers poll (CUTOVER_TASK_QUEUE)")
}

func (t *temporalFlags) dial(ctx context.Context) (client.Client, error) {
	// The SDK logs at info on connect; an operator's terminal only wants warnings.
	logger := slog.New(slog.DiscardHandler)
	pc, err := codec.FromEnv(t.getenv)
	if err != nil {
		return nil, usageError{err.Error()}
	}
	c, err := client.DialContext(ctx, client.Options{HostPort: t.address, Namespace: t.namespace,
		Logger: log.NewStructuredLogger(logger), DataConverter: codec.DataConverter(pc)})
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s (is it running? try 'make dev'): %w", t.address, err)
	}
	return c, nil
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func runHealth(ctx context.Context, e *Env, args []string) error {
	fs := newFlags(e, "health")
	var tf temporalFlags
	tf.bind(e, fs)
	timeout := fs.Duration("timeout", time.Minute, "how long to wait for a worker to answer")
	out := bindOutput(fs)
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	c, err := tf.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       fmt.Sprintf("health-%d", time.Now().UnixNano()),
		TaskQueue:                tf.taskQueue,
		WorkflowExecutionTimeout: *timeout,
		StaticSummary:            "health check: a worker answers on task queue " + tf.taskQueue + " and reaches PostgreSQL",
	}, healthwf.Name)
	if err != nil {
		return fmt.Errorf("start health check: %w", err)
	}
	var res health.PingResult
	if err := run.Get(ctx, &res); err != nil {
		return fmt.Errorf("health check %s (is a worker polling task queue %q?): %w", run.GetID(), tf.taskQueue, err)
	}
	if out.json() {
		return writeJSON(e.Stdout, map[string]any{"healthy": true, "worker": res.Worker, "task_queue": tf.taskQueue, "schema_version": res.SchemaVersion})
	}
	fmt.Fprintf(e.Stdout, "healthy: worker %s answered on task queue %q, schema version %d\n", res.Worker, tf.taskQueue, res.SchemaVersion)
	return nil
}
