package dbmigrate

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cutover/cutover/activities/dbcopy"
	"github.com/cutover/cutover/internal/model"
)

// EntityInput starts (or continues) one entity's copy.
type EntityInput struct {
	Migration dbcopy.Migration    `json:"migration"`
	Entity    string              `json:"entity"`
	Config    Config              `json:"config"`
	Cursor    dbcopy.BatchRequest `json:"cursor"`
	MarkStart string              `json:"mark_start,omitempty"`
	// Continued is set on runs after a continue-as-new.
	Continued bool `json:"continued,omitempty"`
}

// EntityResult is an entity's outcome.
type EntityResult struct {
	Entity     string              `json:"entity"`
	Status     model.EntityStatus  `json:"status"`
	Total      int64               `json:"records_total"`
	Processed  int64               `json:"records_processed"`
	Failed     int64               `json:"records_failed"`
	Next       dbcopy.BatchRequest `json:"next"`
	MarkStart  string              `json:"mark_start,omitempty"`
	Throughput float64             `json:"throughput"`
	Reason     string              `json:"reason,omitempty"`
}

var nonRetryable = []string{dbcopy.ErrTypeSpec, dbcopy.ErrTypeApproval, dbcopy.ErrTypeTransition}

func copyOptions(c Config) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: 6 * time.Hour,
		HeartbeatTimeout:    c.HeartbeatTimeout,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second,
			NonRetryableErrorTypes: nonRetryable},
	}
}

// shortOptions are for the activities that run once per entity or migration (prepare,
// finalize, validate, schema ops, rollback, retry): they may take minutes on a large table, so
// they keep a heartbeat and a dead worker is noticed within HeartbeatTimeout, not at the end
// of the half hour.
func shortOptions(c Config) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Minute,
		HeartbeatTimeout:    c.HeartbeatTimeout,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second,
			MaximumAttempts: 20, NonRetryableErrorTypes: nonRetryable},
	}
}

// bookkeepingOptions are for the small ledger writes (status rows, events, planning one
// schema op). They have no heartbeat, so their start-to-close timeout is how long a worker
// killed in the middle of one holds the migration up: a minute, not shortOptions' half hour
// (seen: a SIGKILL during a status write stalled a migration past the test's six minutes).
func bookkeepingOptions() workflow.ActivityOptions {
	o := shortOptions(Config{})
	o.StartToCloseTimeout = time.Minute
	return o
}

// breached reports whether an entity's errors exceed the configured count or ratio.
func breached(c Config, processed, failed int64) (bool, string) {
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
	cfg := in.Config.withDefaults()
	var a *dbcopy.Activities
	sctx := workflow.WithActivityOptions(ctx, shortOptions(cfg))
	bctx := workflow.WithActivityOptions(ctx, bookkeepingOptions())
	cctx := workflow.WithActivityOptions(ctx, copyOptions(cfg))
	res := EntityResult{Entity: in.Entity, Next: in.Cursor, MarkStart: in.MarkStart}
	if !in.Continued {
		if err := workflow.ExecuteActivity(bctx, a.DBSetEntityStatus, dbcopy.EntityRequest{Migration: in.Migration,
			Entity: in.Entity, Status: model.EntityRunning}).Get(ctx, nil); err != nil {
			return res, err
		}
	}
	parent := workflow.GetInfo(ctx).ParentWorkflowExecution
	for chunk := 0; ; chunk++ {
		if chunk >= cfg.ActivitiesPerRun {
			next := in
			next.Cursor, next.MarkStart, next.Continued = res.Next, res.MarkStart, true
			return res, workflow.NewContinueAsNewError(ctx, EntityWorkflowName, next)
		}
		var out dbcopy.ChunkResult
		if err := workflow.ExecuteActivity(cctx, a.DBCopyChunk, dbcopy.ChunkRequest{Migration: in.Migration,
			Cursor: res.Next, MaxBatches: cfg.BatchesPerActivity, Events: cfg.Events}).Get(ctx, &out); err != nil {
			return res, err
		}
		res.Next = out.Run.Next
		if out.Run.MarkStart != "" {
			res.MarkStart = out.Run.MarkStart
		}
		res.Total, res.Processed, res.Failed, res.Throughput = out.RecordsTotal, out.RecordsProcessed, out.RecordsFailed, out.Throughput
		workflow.SetCurrentDetails(ctx, fmt.Sprintf("**%s** · %d/%d rows · %d quarantined · %.0f rows/s", in.Entity,
			res.Processed+res.Failed, res.Total, res.Failed, res.Throughput))
		if parent != nil {
			_ = workflow.SignalExternalWorkflow(ctx, parent.ID, "", SignalProgress, Progress{Entity: in.Entity,
				Total: res.Total, Processed: res.Processed, Failed: res.Failed, LastKey: res.Next.After, Throughput: res.Throughput}).Get(ctx, nil)
		}
		if bad, why := breached(cfg, res.Processed, res.Failed); bad {
			res.Status, res.Reason = model.EntityFailed, "error threshold: "+why
			_ = workflow.ExecuteActivity(bctx, a.DBSetEntityStatus, dbcopy.EntityRequest{Migration: in.Migration,
				Entity: in.Entity, Status: model.EntityFailed}).Get(ctx, nil)
			return res, temporal.NewNonRetryableApplicationError(res.Reason, errTypeThreshold, nil, res)
		}
		if out.Run.Done {
			break
		}
	}
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
