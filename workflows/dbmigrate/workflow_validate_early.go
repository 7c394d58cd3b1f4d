package dbmigrate

import (
	"go.temporal.io/sdk/workflow"

	"github.com/cutover/cutover/activities/dbcopy"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// earlyValidationChange is the GetVersion change id of validating each entity of a full load
// as soon as it completed, while the later entities load; executions recorded before it
// validate every entity after the whole load.
const earlyValidationChange = "early-validation"

// early is an entity's validation started while the load went on. Its summary stands only if
// nothing changed the entity after it started: gen is the entity's generation then (see
// touch), and a stale or failed early validation is simply run again at the end.
type early struct {
	gen  int
	done bool
	ok   bool
	sum  dbmigrateapi.ValidationSummary
}

// earlyOn says whether this run validates entities while loading: full migrations without
// schema operations only (an operation may change any table after its entity's validation,
// and catch-up passes change every entity until the cutover).
func (w *orch) earlyOn(ctx workflow.Context) bool {
	if w.in.MigrationType != model.MigrationFull || len(w.in.Spec.SchemaOps) > 0 {
		return false
	}
	return workflow.GetVersion(ctx, earlyValidationChange, workflow.DefaultVersion, 1) >= 1
}

// touch marks an entity changed (rows re-driven, retried, an acceptance, a new spec): a
// validation that started before is no longer its proof. No names: every entity.
func (w *orch) touch(names ...string) {
	if w.early == nil {
		return
	}
	if len(names) == 0 {
		names = w.plan.Order
	}
	for _, n := range names {
		w.gens[n]++
	}
}

// validateEarly queues the validation of a completed entity; at most Parallelism of them run
// at once beside the load (each holds a page of rows of both sides), the main loop is woken
// when one ends. Later changes to the entity make its result stale (touch).
func (w *orch) validateEarly(ctx workflow.Context, name string) {
	if w.early == nil || w.rollback != nil {
		return
	}
	w.earlyQueue = append(w.earlyQueue, name)
	w.startEarly(ctx)
}

// startEarly starts the queued early validations there is room for.
func (w *orch) startEarly(ctx workflow.Context) {
	for len(w.earlyQueue) > 0 && w.earlyRunning < max(1, w.cfg.Parallelism) && w.rollback == nil {
		name := w.earlyQueue[0]
		w.earlyQueue = w.earlyQueue[1:]
		ev := &early{gen: w.gens[name]}
		w.early[name] = ev
		w.earlyRunning++
		f := workflow.ExecuteActivity(w.earlyCtx, w.acts.DBValidate, dbcopy.ValidateRequest{Migration: w.migration(),
			Entity: name, AllowWarnings: w.cfg.AllowWarnings})
		w.watch(ctx, f, func(ctx workflow.Context, f workflow.Future) {
			w.earlyRunning--
			ev.done = true
			if err := f.Get(ctx, &ev.sum); err != nil {
				w.log.Warn("validating an entity while loading; it is validated again at the end", "entity", name, "err", err)
			} else {
				ev.ok = true
			}
			w.startEarly(ctx)
		})
	}
}

// stopEarly cancels the validations still running and drops the queued ones (a failed load, a
// rollback): their results would be of no use.
func (w *orch) stopEarly() {
	w.earlyQueue = nil
	if w.cancelEarly != nil {
		w.cancelEarly()
	}
}

// earlyResult is the summary of an entity's early validation when it still stands: it ended
// without error and nothing changed the entity since it started.
func (w *orch) earlyResult(name string) (dbmigrateapi.ValidationSummary, bool) {
	if w.early == nil {
		return dbmigrateapi.ValidationSummary{}, false
	}
	ev := w.early[name]
	if ev == nil || !ev.done || !ev.ok || ev.gen != w.gens[name] {
		return dbmigrateapi.ValidationSummary{}, false
	}
	return ev.sum, true
}

// awaitEarly waits for the early validations still running; the queued ones are left to the
// validation that follows (it runs them Parallelism at a time as well).
func (w *orch) awaitEarly(ctx workflow.Context) error {
	if w.early == nil {
		return nil
	}
	w.earlyQueue = nil
	return workflow.Await(ctx, func() bool { return w.earlyRunning == 0 })
}
