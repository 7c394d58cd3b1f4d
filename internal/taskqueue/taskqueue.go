// Package taskqueue names cutover's worker pools and the task queue each one polls, so an
// operator scales the IMAP engine apart from the database engine:
//
//   - workflows: every workflow and the light activities beside them (the email job's
//     bookkeeping, notifications, DNS checks, the health check), on the base queue
//     (CUTOVER_TASK_QUEUE, "cutover" by default);
//   - mail: the IMAP engine's activities (preflight, sync, verify of a mailbox), on "<base>-mail";
//   - db: the database engine's activities (schema, copy, catch-up, validation, rollback), on
//     "<base>-db".
//
// Workflows derive the mail and db queues from their own queue, so they need no configuration;
// a worker polls the queues of the pools it is started for (all three by default).
package taskqueue

import (
	"fmt"
	"slices"
	"strings"

	"go.temporal.io/sdk/workflow"
)

// Pool is a kind of work a worker process may be started for.
type Pool string

const (
	Workflows Pool = "workflows"
	Mail      Pool = "mail"
	DB        Pool = "db"
)

// All is every pool, the default of a worker: one process polls every queue.
var All = []Pool{Workflows, Mail, DB}

// Name is the task queue of pool p when the workflows' queue is base.
func Name(base string, p Pool) string {
	if p == Workflows {
		return base
	}
	return base + "-" + string(p)
}

// ParsePools reads a comma-separated list of pools (CUTOVER_TASK_QUEUES): "" is all of them,
// "all" too; an unknown name is an error naming the known ones. The result is in All's order,
// without repeats.
func ParsePools(s string) ([]Pool, error) {
	if strings.TrimSpace(s) == "" || strings.TrimSpace(s) == "all" {
		return slices.Clone(All), nil
	}
	seen := map[Pool]bool{}
	for _, f := range strings.Split(s, ",") {
		p := Pool(strings.TrimSpace(f))
		if !slices.Contains(All, p) {
			return nil, fmt.Errorf("unknown worker pool %q: want a comma-separated list of workflows, mail, db (or all)", f)
		}
		seen[p] = true
	}
	var out []Pool
	for _, p := range All {
		if seen[p] {
			out = append(out, p)
		}
	}
	return out, nil
}

// VersionChange names the workflow.GetVersion change that moved the mail and database
// activities off the workflows' queue onto their pools' queues.
const VersionChange = "task-queue-pools"

// For is the task queue a workflow schedules pool p's activities on: the pool's own queue, or
// "" (the workflow's own queue, as before the pools existed) in a run whose history predates
// the change. The version is recorded once per run, at its first call, so a run keeps one
// answer for its whole life: a run started before the change keeps every activity on the
// workflows' queue, which is why the workflows pool also runs mail and db activities there.
func For(ctx workflow.Context, p Pool) string {
	if p == Workflows || workflow.GetVersion(ctx, VersionChange, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return ""
	}
	return Name(workflow.GetInfo(ctx).TaskQueueName, p)
}
