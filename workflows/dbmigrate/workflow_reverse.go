package dbmigrate

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/cutover/cutover/activities/dbcopy"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// startReverse begins the reverse flow once the cutover validated: from now on the application
// writes on the target, and those writes flow back into the sources until close.
func (w *orch) startReverse(ctx workflow.Context) (dbmigrateapi.Result, error) {
	var res dbcopy.CaptureResult
	if err := workflow.ExecuteActivity(w.sctx, w.acts.DBInstallReverse, w.migration()).Get(ctx, &res); err != nil {
		return w.fail(ctx, fmt.Errorf("start the reverse flow: %w", err))
	}
	w.state.Reverse = &dbmigrateapi.CaptureState{Sources: res.Sources}
	w.emit(ctx, "reverse_flow_started", map[string]any{})
	return w.reverseSync(ctx)
}

// reverseSync drains the target's writes back into the sources every SyncInterval until the
// operator closes the migration (completed: the flow stops, its slot is dropped) or rolls it
// back (a last drain, so the sources hold every write made on the target, then the rollback).
func (w *orch) reverseSync(ctx workflow.Context) (dbmigrateapi.Result, error) {
	w.setPhase(ctx, dbmigrateapi.PhaseReverseSync)
	upkeep := w.partitioned() && workflow.GetVersion(ctx, partitionUpkeepChange, workflow.DefaultVersion, 1) >= 1
	if upkeep && w.state.Partitions == nil {
		// The cutover's validation made the coming months a moment ago.
		w.state.Partitions = &dbmigrateapi.PartitionUpkeep{LastRun: workflow.Now(ctx).UTC()}
	}
	for runPasses := 0; ; {
		if upkeep {
			w.keepPartitions(ctx)
		}
		if w.rollback != nil || w.closeReq != nil {
			if err := w.reverseDrain(ctx); err != nil {
				return w.fail(ctx, err)
			}
			if err := w.stopReverse(ctx); err != nil {
				return w.fail(ctx, err)
			}
			if w.rollback != nil {
				return w.compensate(ctx)
			}
			w.emit(ctx, "migration_closed", map[string]any{"requested_by": w.closeReq.RequestedBy})
			return w.complete(ctx)
		}
		if runPasses >= w.cfg.PassesPerRun {
			next := w.in
			next.Resume = w.state
			return *w.state, workflow.NewContinueAsNewError(ctx, dbmigrateapi.WorkflowName, next)
		}
		interrupted, _ := workflow.AwaitWithTimeout(ctx, w.cfg.SyncInterval, func() bool {
			return w.rollback != nil || w.closeReq != nil
		})
		if !interrupted {
			if err := w.reverseDrain(ctx); err != nil {
				return w.fail(ctx, err)
			}
			runPasses++
		}
	}
}

// reverseDrain writes the target's changes since the last drain back into the sources.
func (w *orch) reverseDrain(ctx workflow.Context) error {
	var out dbcopy.DrainResult
	if err := workflow.ExecuteActivity(w.cctx, w.acts.DBReverseDrain, w.migration()).Get(ctx, &out); err != nil {
		return fmt.Errorf("reverse flow: %w", err)
	}
	r := w.state.Reverse
	r.ChangesPending = out.Stats.Changes
	r.ChangesApplied += out.Stats.Changes
	if out.Stats.Changes > 0 && out.Seconds > 0 {
		r.RowsPerSecond = float64(out.Stats.Changes) / out.Seconds
	}
	r.Sources = []dbmigrateapi.CaptureStatus{out.Capture}
	w.details(ctx)
	return nil
}

// stopReverse drops the reverse flow's slot and its tables in the sources.
func (w *orch) stopReverse(ctx workflow.Context) error {
	var res dbcopy.CaptureResult
	if err := workflow.ExecuteActivity(w.sctx, w.acts.DBRemoveReverse, w.migration()).Get(ctx, &res); err != nil {
		return fmt.Errorf("stop the reverse flow: %w", err)
	}
	w.state.Reverse.Removed = true
	w.details(ctx)
	return nil
}

// partitionUpkeepChange: a cut-over migration that stays open (the reverse flow, until close)
// makes its partitioned tables' coming months on a timer.
const partitionUpkeepChange = "partition-upkeep"

// partitionUpkeepEvery is how often an open migration makes the coming months.
const partitionUpkeepEvery = 24 * time.Hour

// partitioned reports whether an entity of the migration is partitioned.
func (w *orch) partitioned() bool {
	for _, e := range w.in.Spec.Entities {
		if e.Partition != nil {
			return true
		}
	}
	return false
}

// keepPartitions makes the coming months' partitions (and the DEFAULT one) of every
// partitioned table once partitionUpkeepEvery has passed since the last time: the target keeps
// taking the application's rows however long the migration stays open. A failure is logged
// and tried again at the next tick; it does not end the migration.
func (w *orch) keepPartitions(ctx workflow.Context) {
	now := workflow.Now(ctx).UTC()
	if now.Sub(w.state.Partitions.LastRun) < partitionUpkeepEvery {
		return
	}
	var res dbcopy.PartitionsResult
	if err := workflow.ExecuteActivity(w.sctx, w.acts.DBKeepPartitions, w.migration()).Get(ctx, &res); err != nil {
		w.log.Warn("making the coming months' partitions", "err", err)
		return
	}
	w.state.Partitions.LastRun = now
	w.state.Partitions.Created = append(w.state.Partitions.Created, res.Created...)
	if len(res.Created) > 0 {
		w.emit(ctx, "partitions_created", map[string]any{"partitions": res.Created})
	}
}
