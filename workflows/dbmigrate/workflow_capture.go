package dbmigrate

import (
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/cutover/cutover/activities/dbcopy"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// captureChange is the GetVersion change id of change capture: incremental migrations started
// before it catch up by key cursor, as recorded.
const captureChange = "change-capture"

// captured reports whether catch-up follows the entity's source by change capture.
func captured(sp *spec.Spec, entity string) bool {
	ent, ok := sp.Entity(entity)
	return ok && sp.Sources[ent.Source].CaptureMode() != spec.CaptureKeyCursor
}

// capturedSources are the sources followed by change capture, in spec order.
func capturedSources(sp *spec.Spec) []string {
	var out []string
	for _, e := range sp.Entities {
		if captured(sp, e.Name) && !slices.Contains(out, e.Source) {
			out = append(out, e.Source)
		}
	}
	return out
}

// installCapture starts following the sources' changes before the load (new executions of
// incremental migrations whose spec captures a source).
func (w *orch) installCapture(ctx workflow.Context) error {
	if w.in.MigrationType != model.MigrationIncremental || len(capturedSources(w.in.Spec)) == 0 {
		return nil
	}
	if workflow.GetVersion(ctx, captureChange, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return nil
	}
	var res dbcopy.CaptureResult
	if err := workflow.ExecuteActivity(w.sctx, w.acts.DBInstallCapture, w.migration()).Get(ctx, &res); err != nil {
		return fmt.Errorf("install change capture: %w", err)
	}
	w.state.Capture = &dbmigrateapi.CaptureState{Sources: res.Sources}
	w.emit(ctx, "change_capture_installed", map[string]any{"sources": capturedSources(w.in.Spec)})
	return nil
}

// capturing reports whether this migration catches up by change capture.
func (w *orch) capturing() bool { return w.state.Capture != nil && !w.state.Capture.Removed }

// parallelDrainsChange is the GetVersion change id of draining independent sources at the same
// time (spec.SourceGroups); executions started before it drain one source after another.
const parallelDrainsChange = "parallel-drains"

// drainPass is a catch-up pass of a captured migration: every captured source drained, the
// key-cursor entities (if any) copied as before. Sources whose entities reference each other
// are drained one after another in spec order (a child's drain finds the parent rows the
// parent's drain committed); independent groups of sources are drained at the same time, each
// drain its own target transaction with its own position.
func (w *orch) drainPass(ctx workflow.Context) (int64, error) {
	var changes int64
	var secs float64
	c := w.state.Capture
	sources := capturedSources(w.in.Spec)
	groups := [][]string{sources}
	if workflow.GetVersion(ctx, parallelDrainsChange, workflow.DefaultVersion, 1) >= 1 {
		groups = w.in.Spec.SourceGroups(sources)
	}
	outs := make(map[string]*dbcopy.DrainResult, len(sources))
	errs := make([]error, len(groups))
	wg := workflow.NewWaitGroup(ctx)
	for gi, group := range groups {
		wg.Add(1)
		workflow.Go(ctx, func(ctx workflow.Context) {
			defer wg.Done()
			for _, src := range group {
				var out dbcopy.DrainResult
				if err := workflow.ExecuteActivity(w.cctx, w.acts.DBDrain, dbcopy.DrainRequest{Migration: w.migration(),
					Source: src}).Get(ctx, &out); err != nil {
					errs[gi] = fmt.Errorf("catch-up of source %s: %w", src, err)
					return
				}
				outs[src] = &out
			}
		})
	}
	wg.Wait(ctx)
	// Results are taken in spec order, whatever order the drains ended in.
	for _, src := range sources {
		out := outs[src]
		if out == nil {
			continue
		}
		changes += out.Stats.Changes
		secs += out.Seconds
		for _, ec := range out.Entities {
			if es := w.entity(ec.Entity); es != nil {
				es.Total, es.Processed, es.Failed = ec.Total, ec.Processed, ec.Failed
			}
		}
		for i := range c.Sources {
			if c.Sources[i].Source == src && c.Sources[i].Direction == out.Capture.Direction {
				c.Sources[i] = out.Capture
			}
		}
	}
	for _, err := range errs {
		if err != nil {
			return changes, err
		}
	}
	for _, name := range w.plan.Order {
		if captured(w.in.Spec, name) {
			continue
		}
		if err := w.copyPass(ctx, name); err != nil {
			return changes, err
		}
	}
	c.ChangesPending = changes
	c.ChangesApplied += changes
	if changes > 0 && secs > 0 {
		c.RowsPerSecond = float64(changes) / secs
	}
	if c.RowsPerSecond > 0 {
		c.PredictedFinalSeconds = float64(c.ChangesPending) / c.RowsPerSecond
	}
	return changes, nil
}

// validateBeforeFreeze runs the full content check once, during catch-up, so the freeze only
// validates what changes after it.
func (w *orch) validateBeforeFreeze(ctx workflow.Context) error {
	c := w.state.Capture
	if c.FullValidationDone {
		return nil
	}
	since := int64(-1)
	for _, name := range w.plan.Order {
		if !captured(w.in.Spec, name) {
			continue
		}
		var v dbcopy.FreezeValidation
		if err := workflow.ExecuteActivity(w.sctx, w.acts.DBValidateBeforeFreeze, dbcopy.ValidateRequest{Migration: w.migration(),
			Entity: name, AllowWarnings: w.cfg.AllowWarnings}).Get(ctx, &v); err != nil {
			return fmt.Errorf("validate %s during catch-up: %w", name, err)
		}
		if since < 0 || v.Since < since {
			since = v.Since
		}
		c.Deferred += v.Deferred
	}
	c.ValidatedSince, c.FullValidationDone = max(since, 0), true
	w.emit(ctx, "full_validation_completed", map[string]any{"deferred_to_freeze": c.Deferred})
	return nil
}

// freeze is the cutover of a captured migration: the last changes drained and what changed
// since the full validation validated. The window, from the freeze's start to its end, is
// measured and recorded.
func (w *orch) freeze(ctx workflow.Context) (dbmigrateapi.Result, error) {
	w.setPhase(ctx, dbmigrateapi.PhaseFinalPass)
	start := workflow.Now(ctx)
	if err := w.validateBeforeFreeze(ctx); err != nil { // a cutover asked for before it ran
		return w.failCaptured(ctx, err)
	}
	drained, err := w.drainPass(ctx)
	if err != nil {
		return w.failCaptured(ctx, err)
	}
	w.state.Passes++
	w.state.FinalPassSeconds = workflow.Now(ctx).Sub(start).Seconds()
	w.setPhase(ctx, dbmigrateapi.PhaseValidating)
	var failedEntities []string
	var validated int64
	for _, name := range w.plan.Order {
		var v dbmigrateapi.ValidationSummary
		var err error
		if captured(w.in.Spec, name) {
			err = workflow.ExecuteActivity(w.sctx, w.acts.DBValidateChanged, dbcopy.ChangedRequest{Migration: w.migration(),
				Entity: name, Since: w.state.Capture.ValidatedSince, AllowWarnings: w.cfg.AllowWarnings}).Get(ctx, &v)
		} else {
			err = workflow.ExecuteActivity(w.sctx, w.acts.DBValidate, dbcopy.ValidateRequest{Migration: w.migration(),
				Entity: name, AllowWarnings: w.cfg.AllowWarnings}).Get(ctx, &v)
		}
		if err != nil {
			return w.failCaptured(ctx, fmt.Errorf("validate %s: %w", name, err))
		}
		for _, ch := range v.Checks {
			validated += ch.Rows
		}
		w.state.Validation = append(w.state.Validation, v)
		if !v.Passed {
			failedEntities = append(failedEntities, name)
		}
	}
	end := workflow.Now(ctx)
	w.state.CutoverWindowSeconds = end.Sub(start).Seconds()
	w.recount(ctx)
	_ = workflow.ExecuteActivity(w.bctx, w.acts.DBRecordWindow, dbcopy.WindowRequest{Migration: w.migration(),
		StartedAt: start.UTC().Truncate(time.Microsecond), CompletedAt: end.UTC().Truncate(time.Microsecond),
		DrainedChanges: drained, ValidatedRows: validated, Passed: len(failedEntities) == 0}).Get(ctx, nil)
	w.emit(ctx, "final_pass_completed", map[string]any{"seconds": w.state.FinalPassSeconds,
		"cutover_window_seconds": w.state.CutoverWindowSeconds, "changes": drained})
	if w.rollback != nil {
		return w.compensate(ctx)
	}
	if len(failedEntities) > 0 {
		return w.failCaptured(ctx, fmt.Errorf("validation failed for %v", failedEntities))
	}
	if err := w.removeCapture(ctx); err != nil {
		return w.fail(ctx, err)
	}
	if w.in.Spec.Target.ReverseFlow {
		return w.startReverse(ctx)
	}
	return w.complete(ctx)
}

// removeCapture removes the migration's captures from the sources (nothing of it is left
// there) and records it in the status.
func (w *orch) removeCapture(ctx workflow.Context) error {
	if !w.capturing() {
		return nil
	}
	var res dbcopy.CaptureResult
	if err := workflow.ExecuteActivity(w.sctx, w.acts.DBRemoveCapture, w.migration()).Get(ctx, &res); err != nil {
		return fmt.Errorf("remove change capture: %w", err)
	}
	w.state.Capture.Sources, w.state.Capture.Removed = res.Sources, true
	w.details(ctx)
	return nil
}

// failCaptured fails a captured migration after removing its captures: a change log or a
// replication slot left behind grows without bound (a retried migration installs them anew).
func (w *orch) failCaptured(ctx workflow.Context, cause error) (dbmigrateapi.Result, error) {
	if err := w.removeCapture(ctx); err != nil {
		w.log.Error("removing change capture of a failed migration", "err", err)
	}
	return w.fail(ctx, cause)
}
