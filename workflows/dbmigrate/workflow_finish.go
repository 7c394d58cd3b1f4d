package dbmigrate

import (
	"fmt"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cutover/cutover/activities/dbcopy"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// catchUp repeats catch-up passes every SyncInterval until cutover, then runs the timed final pass
// and the validation (an incremental migration's cutover).
func (w *orch) catchUp(ctx workflow.Context) (dbmigrateapi.Result, error) {
	if w.state.Reverse != nil && !w.state.Reverse.Removed {
		return w.reverseSync(ctx) // continued as new after cutover
	}
	w.setPhase(ctx, dbmigrateapi.PhaseCatchingUp)
	if w.capturing() && !w.state.Capture.FullValidationDone && w.rollback == nil {
		// What the application wrote during the load first, then the full validation, so the
		// freeze validates only what changes after it.
		if err := w.pass(ctx); err != nil {
			return w.failCaptured(ctx, err)
		}
		if err := w.validateBeforeFreeze(ctx); err != nil {
			return w.failCaptured(ctx, err)
		}
	}
	for runPasses := 0; w.cutover == nil; {
		if w.rollback != nil {
			return w.compensate(ctx)
		}
		if runPasses >= w.cfg.PassesPerRun {
			next := w.in
			next.Resume = w.state
			return *w.state, workflow.NewContinueAsNewError(ctx, dbmigrateapi.WorkflowName, next)
		}
		// Until the interval passes or a request arrives.
		interrupted, _ := workflow.AwaitWithTimeout(ctx, w.cfg.SyncInterval, func() bool {
			return w.cutover != nil || w.rollback != nil || len(w.retries) > 0
		})
		fired := !interrupted
		w.handleRetries(ctx, w.completedSet())
		if fired && w.cutover == nil && w.rollback == nil {
			if err := w.pass(ctx); err != nil {
				return w.failCaptured(ctx, err)
			}
			runPasses++
		}
	}
	if w.rollback != nil {
		return w.compensate(ctx)
	}
	if w.capturing() {
		return w.freeze(ctx)
	}
	w.setPhase(ctx, dbmigrateapi.PhaseFinalPass)
	start := workflow.Now(ctx)
	if err := w.pass(ctx); err != nil {
		return w.fail(ctx, err)
	}
	w.state.FinalPassSeconds = workflow.Now(ctx).Sub(start).Seconds()
	w.emit(ctx, "final_pass_completed", map[string]any{"seconds": w.state.FinalPassSeconds})
	return w.validateAndFinish(ctx)
}

// validateAndFinish records every entity's checks; completed only when they pass.
func (w *orch) validateAndFinish(ctx workflow.Context) (dbmigrateapi.Result, error) {
	w.setPhase(ctx, dbmigrateapi.PhaseValidating)
	if err := w.recordAccepts(ctx); err != nil {
		return w.fail(ctx, err)
	}
	if err := w.awaitEarly(ctx); err != nil {
		return w.fail(ctx, err)
	}
	var failedEntities []string
	vs, err := w.validateEntities(ctx)
	if err != nil {
		return w.fail(ctx, err)
	}
	for i, v := range vs {
		w.state.Validation = append(w.state.Validation, v)
		if !v.Passed {
			failedEntities = append(failedEntities, w.plan.Order[i])
		}
	}
	if w.rollback != nil {
		return w.compensate(ctx)
	}
	if len(failedEntities) > 0 {
		return w.fail(ctx, fmt.Errorf("validation failed for %v", failedEntities))
	}
	return w.complete(ctx)
}

// parallelValidationChange is the GetVersion change id of validating entities Parallelism at a
// time (validation only reads); executions started before it validate one entity at a time.
const parallelValidationChange = "parallel-validation"

// validateEntities validates every entity (Parallelism at a time) and returns their summaries
// in plan order; the first error stops starting more and is returned once the others ended.
// An entity whose validation during the load still stands (earlyResult) is not validated again.
func (w *orch) validateEntities(ctx workflow.Context) ([]dbmigrateapi.ValidationSummary, error) {
	names := w.plan.Order
	out := make([]dbmigrateapi.ValidationSummary, len(names))
	var todo []int
	for i, name := range names {
		if sum, ok := w.earlyResult(name); ok {
			out[i] = sum
			continue
		}
		todo = append(todo, i)
	}
	validate := func(i int) workflow.Future {
		return workflow.ExecuteActivity(w.sctx, w.acts.DBValidate, dbcopy.ValidateRequest{Migration: w.migration(),
			Entity: names[i], AllowWarnings: w.cfg.AllowWarnings})
	}
	if workflow.GetVersion(ctx, parallelValidationChange, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		for _, i := range todo {
			name := names[i]
			if err := validate(i).Get(ctx, &out[i]); err != nil {
				return out, fmt.Errorf("validate %s: %w", name, err)
			}
		}
		return out, nil
	}
	sel := workflow.NewSelector(ctx)
	var firstErr error
	next, running := 0, 0
	for {
		for firstErr == nil && next < len(todo) && running < max(1, w.cfg.Parallelism) {
			i := todo[next]
			next++
			running++
			sel.AddFuture(validate(i), func(f workflow.Future) {
				running--
				if err := f.Get(ctx, &out[i]); err != nil && firstErr == nil {
					firstErr = fmt.Errorf("validate %s: %w", names[i], err)
				}
			})
		}
		if running == 0 {
			return out, firstErr
		}
		sel.Select(ctx)
	}
}

// compensate undoes the migration: running → rolling_back, schema operations reverted from
// their backups (last first), entities' rows deleted in reverse dependency order, → pending.
func (w *orch) compensate(ctx workflow.Context) (dbmigrateapi.Result, error) {
	if err := w.transition(ctx, model.OrchRollingBack); err != nil {
		return w.fail(ctx, err)
	}
	w.setPhase(ctx, dbmigrateapi.PhaseRollingBck)
	w.emit(ctx, "rollback_started", map[string]any{"reason": w.rollback.Reason, "requested_by": w.rollback.RequestedBy})
	if err := w.removeCapture(ctx); err != nil {
		w.state.Error = err.Error()
		return *w.state, temporal.NewNonRetryableApplicationError(w.state.Error, "dbmigrate.rollback_failed", err, *w.state)
	}
	for i := len(w.state.Ops) - 1; i >= 0; i-- {
		op := w.state.Ops[i]
		var res dbcopy.SchemaOpResult
		if err := workflow.ExecuteActivity(w.sctx, w.acts.DBRollbackSchemaOp, dbcopy.SchemaOpRequest{Migration: w.migration(), Name: op.Name}).Get(ctx, &res); err != nil {
			w.state.Error = fmt.Sprintf("rollback of schema op %s: %v", op.Name, err)
			return *w.state, temporal.NewNonRetryableApplicationError(w.state.Error, "dbmigrate.rollback_failed", err, *w.state)
		}
		if res.Status != "" {
			op.Status = res.Status
		}
	}
	for _, name := range w.plan.Reverse() {
		if err := workflow.ExecuteActivity(w.sctx, w.acts.DBRollbackEntity, dbcopy.EntityRequest{Migration: w.migration(), Entity: name}).Get(ctx, nil); err != nil {
			w.state.Error = fmt.Sprintf("rollback of %s: %v", name, err)
			return *w.state, temporal.NewNonRetryableApplicationError(w.state.Error, "dbmigrate.rollback_failed", err, *w.state)
		}
		es := w.entity(name)
		es.Status, es.Processed, es.Failed, es.LastKey = model.EntityPending, 0, 0, ""
	}
	w.recount(ctx)
	if err := w.transition(ctx, model.OrchPending); err != nil {
		return w.fail(ctx, err)
	}
	w.state.RolledBack = true
	w.setPhase(ctx, dbmigrateapi.PhaseDone)
	w.emit(ctx, "rollback_completed", map[string]any{})
	return *w.state, nil
}
