package dbmigrate

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cutover/cutover/activities/dbcopy"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/taskqueue"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// EntityInput starts (or continues) one entity's copy.
type EntityInput struct {
	Migration dbcopy.Migration          `json:"migration"`
	Entity    string                    `json:"entity"`
	Config    dbmigrateapi.Config       `json:"config"`
	Cursor    dbmigrateapi.BatchRequest `json:"cursor"`
	MarkStart string                    `json:"mark_start,omitempty"`
	// MarkStartType is MarkStart's storage class (BatchRequest.MarkType).
	MarkStartType string `json:"mark_start_type,omitempty"`
	// Continued is set on runs after a continue-as-new.
	Continued bool `json:"continued,omitempty"`
	// Accepted are quarantined rows of the entity an operator accepted (db accept-errors) after
	// it stopped at its error limit: the limit counts the rows quarantined beyond them.
	Accepted int64 `json:"accepted,omitempty"`
}

// EntityResult is an entity's outcome.
type EntityResult struct {
	Entity    string                    `json:"entity"`
	Status    model.EntityStatus        `json:"status"`
	Total     int64                     `json:"records_total"`
	Processed int64                     `json:"records_processed"`
	Failed    int64                     `json:"records_failed"`
	Next      dbmigrateapi.BatchRequest `json:"next"`
	MarkStart string                    `json:"mark_start,omitempty"`
	// MarkStartType is MarkStart's storage class (BatchRequest.MarkType).
	MarkStartType string                      `json:"mark_start_type,omitempty"`
	Throughput    float64                     `json:"throughput"`
	Reason        string                      `json:"reason,omitempty"`
	Changes       []dbmigrateapi.ColumnChange `json:"changes,omitempty"`
}

var nonRetryable = []string{dbcopy.ErrTypeSpec, dbcopy.ErrTypeApproval, dbcopy.ErrTypeTransition}

// copyAttempts bounds the attempts of a copy activity. A batch that fails for a reason of its
// rows quarantines them and commits, so what is left to retry is the world (a lost connection,
// a lock timeout, a killed worker): eight attempts ride out a minute and a half of it (the
// backoff reaches 30 s), and an error that outlasts them fails the entity with its cause
// instead of retrying for ever. Not a change of the workflow's shape: the policy travels with
// each newly scheduled activity and replay does not compare it.
const copyAttempts = 8

func copyOptions(c dbmigrateapi.Config) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: 6 * time.Hour,
		HeartbeatTimeout:    c.HeartbeatTimeout,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second,
			MaximumAttempts: copyAttempts, NonRetryableErrorTypes: nonRetryable},
	}
}

// shortOptions are for the activities that run once per entity or migration (prepare,
// finalize, validate, schema ops, rollback, retry): they may take minutes on a large table, so
// they keep a heartbeat and a dead worker is noticed within HeartbeatTimeout, not at the end
// of the half hour.
func shortOptions(c dbmigrateapi.Config) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Minute,
		HeartbeatTimeout:    c.HeartbeatTimeout,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second,
			MaximumAttempts: 20, NonRetryableErrorTypes: nonRetryable},
	}
}

// bookkeepingOptions are for the small ledger writes (status rows, events, planning one
// schema op): a minute at most (seen: a SIGKILL during a status write stalled a migration past
// the test's six minutes with shortOptions' half hour), and a keep-alive heartbeat so a worker
// killed in the middle of one holds the migration up for the heartbeat timeout, not the minute.
func bookkeepingOptions() workflow.ActivityOptions {
	o := shortOptions(dbmigrateapi.Config{}.WithDefaults())
	o.StartToCloseTimeout = time.Minute
	return o
}

// activityContexts are the contexts of the short, bookkeeping and copy activities, all on the
// database engine's task queue (taskqueue.For: the workflow's own queue in runs started before
// the pools split).
func activityContexts(ctx workflow.Context, c dbmigrateapi.Config) (short, bookkeeping, copying workflow.Context) {
	queue := taskqueue.For(ctx, taskqueue.DB)
	on := func(o workflow.ActivityOptions) workflow.Context {
		o.TaskQueue = queue
		return workflow.WithActivityOptions(ctx, o)
	}
	return on(shortOptions(c)), on(bookkeepingOptions()), on(copyOptions(c))
}

// breached reports whether an entity's errors exceed the configured count or ratio.
func breached(c dbmigrateapi.Config, processed, failed int64) (bool, string) {
	if c.MaxErrors > 0 && failed > c.MaxErrors {
		return true, fmt.Sprintf("%d failed records exceed the limit of %d", failed, c.MaxErrors)
	}
	if c.MaxErrorRatio > 0 && processed+failed > 0 {
		if r := float64(failed) / float64(processed+failed); r > c.MaxErrorRatio {
			return true, fmt.Sprintf("failed ratio %.4f exceeds %.4f", r, c.MaxErrorRatio)
		}
	}
	return false, ""
}

// EntityWorkflow copies one entity in chunks of batches, each an activity that heartbeats its
// cursor. It reports progress to the parent, stops at the error threshold, builds indexes and
// foreign keys once loaded, and continues as new every ActivitiesPerRun chunks.
func EntityWorkflow(ctx workflow.Context, in EntityInput) (EntityResult, error) {
	cfg := in.Config.WithDefaults()
	var a *dbcopy.Activities
	sctx, bctx, cctx := activityContexts(ctx, cfg)
	res := EntityResult{Entity: in.Entity, Next: in.Cursor, MarkStart: in.MarkStart, MarkStartType: in.MarkStartType}
	lean := workflow.GetVersion(ctx, leanEntityChange, workflow.DefaultVersion, 1) >= 1
	if !in.Continued && !lean {
		if err := workflow.ExecuteActivity(bctx, a.DBSetEntityStatus, dbcopy.EntityRequest{Migration: in.Migration,
			Entity: in.Entity, Status: model.EntityRunning}).Get(ctx, nil); err != nil {
			return res, err
		}
	}
	// signals are the progress signals sent and not waited for yet (leanEntityChange): all are
	// waited for before the workflow ends or continues as new.
	var signals []workflow.Future
	settle := func() {
		for _, f := range signals {
			_ = f.Get(ctx, nil)
		}
		signals = nil
	}
	parent := workflow.GetInfo(ctx).ParentWorkflowExecution
	for chunk := 0; ; chunk++ {
		if chunk >= cfg.ActivitiesPerRun {
			settle()
			next := in
			next.Cursor, next.MarkStart, next.MarkStartType, next.Continued = res.Next, res.MarkStart, res.MarkStartType, true
			return res, workflow.NewContinueAsNewError(ctx, dbmigrateapi.EntityWorkflowName, next)
		}
		var out dbcopy.ChunkResult
		if err := workflow.ExecuteActivity(cctx, a.DBCopyChunk, dbcopy.ChunkRequest{Migration: in.Migration,
			Cursor: res.Next, MaxBatches: cfg.BatchesPerActivity, Events: cfg.Events,
			Running: lean && !in.Continued && chunk == 0}).Get(ctx, &out); err != nil {
			settle()
			return res, err
		}
		res.Next = out.Run.Next
		if out.Run.MarkStart != "" {
			res.MarkStart, res.MarkStartType = out.Run.MarkStart, out.Run.MarkStartType
		}
		res.Total, res.Processed, res.Failed, res.Throughput = out.RecordsTotal, out.RecordsProcessed, out.RecordsFailed, out.Throughput
		if out.Changes != nil {
			res.Changes = out.Changes
		}
		workflow.SetCurrentDetails(ctx, fmt.Sprintf("**%s** · %d/%d rows · %d quarantined · %.0f rows/s", in.Entity,
			res.Processed+res.Failed, res.Total, res.Failed, res.Throughput))
		bad, why := breached(cfg, res.Processed, max(res.Failed-in.Accepted, 0))
		if parent != nil {
			p := dbmigrateapi.Progress{
				Entity:     in.Entity,
				Total:      res.Total,
				Processed:  res.Processed,
				Failed:     res.Failed,
				LastKey:    res.Next.After,
				Throughput: res.Throughput,
				Changes:    res.Changes,
				Loaded:     out.Run.Done && !bad,
			}
			sig := workflow.SignalExternalWorkflow(ctx, parent.ID, "", dbmigrateapi.SignalProgress, p)
			if lean {
				signals = append(signals, sig)
			} else {
				_ = sig.Get(ctx, nil)
			}
		}
		if bad {
			res.Status, res.Reason = model.EntityFailed, "error threshold: "+why
			_ = workflow.ExecuteActivity(bctx, a.DBSetEntityStatus, dbcopy.EntityRequest{Migration: in.Migration,
				Entity: in.Entity, Status: model.EntityFailed}).Get(ctx, nil)
			settle()
			return res, temporal.NewNonRetryableApplicationError(res.Reason, errTypeThreshold, nil, res)
		}
		if out.Run.Done {
			break
		}
	}
	if !lean {
		if err := workflow.ExecuteActivity(sctx, a.DBFinalize, dbcopy.EntityRequest{Migration: in.Migration, Entity: in.Entity}).Get(ctx, nil); err != nil {
			return res, err
		}
		if err := workflow.ExecuteActivity(bctx, a.DBSetEntityStatus, dbcopy.EntityRequest{Migration: in.Migration,
			Entity: in.Entity, Status: model.EntityCompleted}).Get(ctx, nil); err != nil {
			return res, err
		}
		res.Status = model.EntityCompleted
		return res, nil
	}
	err := workflow.ExecuteActivity(sctx, a.DBFinalize, dbcopy.EntityRequest{Migration: in.Migration, Entity: in.Entity,
		Status: model.EntityCompleted}).Get(ctx, nil)
	settle()
	if err != nil {
		return res, err
	}
	res.Status = model.EntityCompleted
	return res, nil
}

// leanEntityChange: an entity's workflow records the entity running in its first chunk and
// completed in its Finalize, not in activities of their own before and after (each a
// workflow task and an activity dispatch, ~0.1 s on every link of a chain of entities), and
// schedules its next chunk or its Finalize beside the progress signal instead of after the
// parent acknowledged it (the parent lets dependents start on that signal; nothing the entity
// does next needs the acknowledgement).
const leanEntityChange = "lean-entity-bookkeeping"
