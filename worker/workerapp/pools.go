package workerapp

import (
	"fmt"
	"os"
	"strings"
	"sync"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"

	"github.com/cutover/cutover/internal/taskqueue"
)

// startPools starts one SDK worker per pool cfg names (all by default), each polling its pool's
// task queue with its own concurrency limit, and returns them with their queues. A mail or db
// pool polls activities only; the workflows pool polls workflow tasks and the light
// activities beside them.
func startPools(c client.Client, cfg Config, d Deps) ([]worker.Worker, []string, error) {
	pools := cfg.Pools
	if len(pools) == 0 {
		pools = taskqueue.All
	}
	if d.Signal != nil {
		d.toJobs = newJobReports(ReportsEvery, d.Signal, d.Logger)
	}
	var ws []worker.Worker
	var queues []string
	for _, p := range pools {
		q := taskqueue.Name(cfg.TaskQueue, p)
		o := poolOptions(cfg, p)
		// An entity workflow's failed attempts reach its migration's page (entityattempts.go).
		o.Interceptors = append(o.Interceptors, &entityAttempts{signal: d.Signal, logger: d.Logger})
		w := worker.New(c, q, o)
		registerPool(w, p, d)
		if err := w.Start(); err != nil {
			stopPools(ws)
			return nil, nil, fmt.Errorf("pool %s (task queue %s): %w", p, q, err)
		}
		ws, queues = append(ws, w), append(queues, q)
	}
	return ws, queues, nil
}

// poolOptions are the SDK worker options of pool p.
func poolOptions(cfg Config, p taskqueue.Pool) worker.Options {
	o := worker.Options{
		WorkerStopTimeout:                  cfg.ShutdownGrace,
		MaxConcurrentActivityExecutionSize: cfg.MaxActivities,
		// A job fans out to a child workflow per mailbox and pass, each a few short workflow
		// and activity tasks: the SDK's two pollers per kind left tasks waiting in the queue
		// (a wave of mailboxes went 25% faster with eight).
		MaxConcurrentWorkflowTaskPollers: 8,
		MaxConcurrentActivityTaskPollers: 8,
		Interceptors:                     []interceptor.WorkerInterceptor{&handBack{}},
	}
	switch p {
	case taskqueue.Mail:
		o.DisableWorkflowWorker = true
		if cfg.MaxMailActivities > 0 {
			o.MaxConcurrentActivityExecutionSize = cfg.MaxMailActivities
		}
	case taskqueue.DB:
		o.DisableWorkflowWorker = true
		if cfg.MaxDBActivities > 0 {
			o.MaxConcurrentActivityExecutionSize = cfg.MaxDBActivities
		}
	}
	return o
}

// stopPools stops the workers together: each hands its in-flight activities back (handBack)
// and waits up to the shutdown grace, so a process serving three pools stops in one grace.
func stopPools(ws []worker.Worker) {
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Go(w.Stop)
	}
	wg.Wait()
}

// identity is the worker's identity in histories and the Temporal UI: the SDK's "pid@host@"
// followed by the pools it serves, so an operator sees which pool ran an activity.
func identity(pools []taskqueue.Pool) string {
	if len(pools) == 0 {
		pools = taskqueue.All
	}
	host, _ := os.Hostname()
	names := make([]string, len(pools))
	for i, p := range pools {
		names[i] = string(p)
	}
	return fmt.Sprintf("%d@%s@%s", os.Getpid(), host, strings.Join(names, "+"))
}
