package dbmigrate

import (
	"errors"
	"fmt"
	"slices"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cutover/cutover/activities/dbcopy"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/searchattr"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// load runs the entity children in dependency order, Parallelism at a time, schema operations
// after their entity, until every entity completed, one failed, or a rollback was asked for.
// Entities a previous run completed (a recovery run) are not loaded again.
func (w *orch) load(ctx workflow.Context) error {
	completed, started, failed := w.completedSet(), w.completedSet(), map[string]bool{}
	running := 0
	// settling counts completed entities whose bookkeeping (re-drives, status, event) still
	// runs after their dependents were let start (promptStartChange).
	prompt := workflow.GetVersion(ctx, promptStartChange, workflow.DefaultVersion, 1) >= 1
	onlyDue := workflow.GetVersion(ctx, completionRedrivesDueChange, workflow.DefaultVersion, 1) >= 1
	if workflow.GetVersion(ctx, loadedDependentsChange, workflow.DefaultVersion, 1) >= 1 {
		w.loaded = map[string]bool{}
	}
	if workflow.GetVersion(ctx, redriveArrivalsChange, workflow.DefaultVersion, 1) >= 1 {
		w.arrivals = arrivals{count: map[string]int{}, redriveSaw: map[string]int{}}
	}
	settling := 0
	childCtx, cancelChildren := workflow.WithCancel(ctx)
	var firstErr error
	opsRunning := 0
	for {
		if w.rollback != nil || firstErr != nil {
			cancelChildren()
			if running == 0 && opsRunning == 0 && settling == 0 {
				w.stopEarly()
				return firstErr
			}
		} else {
			if len(completed) == len(w.plan.Order) && opsRunning == 0 && settling == 0 {
				w.redriveOrphans(ctx, w.toRedriveAtLoadEnd()) // once more at the end of the load
				return nil
			}
			for _, name := range w.ready(completed, failed, started, running) {
				started[name] = true
				running++
				es := w.entity(name)
				es.Status = model.EntityRunning
				cctx := workflow.WithChildOptions(childCtx, workflow.ChildWorkflowOptions{
					WorkflowID: dbmigrateapi.EntityWorkflowID(w.in.MigrationID, name),
					StaticSummary: fmt.Sprintf("entity %s of database migration %s · child of %s",
						name, w.in.MigrationID, dbmigrateapi.WorkflowID(w.in.MigrationID)),
					TypedSearchAttributes: temporal.NewSearchAttributes(searchattr.Kind.ValueSet(dbmigrateapi.Kind),
						searchattr.Status.ValueSet(string(model.EntityRunning))),
				})
				f := w.startEntity(ctx, cctx, EntityInput{Migration: w.migration(), Entity: name,
					Config: w.cfg, Cursor: dbmigrateapi.BatchRequest{Entity: name}, Accepted: w.accepted[name]})
				w.watch(ctx, f, func(ctx workflow.Context, f workflow.Future) {
					running--
					w.clearAttempts(name)
					var r EntityResult
					err := f.Get(ctx, &r)
					if err != nil {
						var ae *temporal.ApplicationError
						if errors.As(err, &ae) && ae.HasDetails() {
							_ = ae.Details(&r)
						}
					}
					es.Total, es.Processed, es.Failed = max(r.Total, es.Total), max(r.Processed, es.Processed), max(r.Failed, es.Failed)
					es.Throughput, es.MarkStart, es.Reason = r.Throughput, r.MarkStart, r.Reason
					es.MarkStartType = r.MarkStartType
					if r.Changes != nil {
						es.Changes = r.Changes
					}
					es.Cursor = dbmigrateapi.BatchRequest{Entity: name, Sync: true, After: r.Next.After,
						AfterType: r.Next.AfterType, BatchNumber: r.Next.BatchNumber, Mark: r.MarkStart,
						MarkType: r.MarkStartType}
					if r.MarkStart != "" {
						es.Cursor.After, es.Cursor.AfterType = "", "" // watermark passes start at the high-water mark, any key
					}
					if err != nil {
						es.Status = model.EntityFailed
						failed[name] = true
						if es.Reason == "" {
							es.Reason = err.Error()
						}
						if firstErr == nil && w.rollback == nil {
							firstErr = &entityFailure{entity: name, reason: es.Reason, err: err}
						}
						w.recount(ctx)
						return
					}
					es.Status = model.EntityCompleted
					completed[name] = true
					w.recount(ctx)
					redrive := w.dependents(name)
					if prompt && len(w.plan.OpsAfter[name]) == 0 {
						// Only those completed now: a dependent let start below is re-driven by
						// its own completion, never by two at once.
						redrive = slices.DeleteFunc(redrive, func(n string) bool { return !completed[n] })
						settling++
						w.wake++ // its dependents start now, not after the bookkeeping below
						defer func() { settling-- }()
					}
					w.redriveOrphansDue(ctx, redrive, onlyDue)
					w.validateEarly(ctx, name)
					w.countersEmitting(ctx, "migration_progress", map[string]any{"entity": name,
						"progress_percentage": w.state.ProgressPercent, "throughput": es.Throughput})
					if ops := w.plan.OpsAfter[name]; len(ops) > 0 {
						opsRunning++
						of := w.goOps(ctx, ops)
						w.watch(ctx, of, func(ctx workflow.Context, f workflow.Future) {
							opsRunning--
							if err := f.Get(ctx, nil); err != nil && firstErr == nil && w.rollback == nil {
								firstErr = err
							}
						})
					}
				})
			}
		}
		w.waitChange(ctx)
		if settling == 0 { // a retry waits for the re-drives of a completing entity
			w.handleRetries(ctx, completed)
		}
	}
}

// ready are the entities to start now. With loadedDependentsChange, an entity whose load ended
// lets the entities that only reference it start while its Finalize runs (they need its rows
// and mappings, all written by then), unless schema operations follow it; and it no longer
// counts against Parallelism, which bounds the entities loading at once.
func (w *orch) ready(completed, failed, started map[string]bool, running int) []string {
	if w.loaded == nil {
		return w.plan.Ready(completed, started, running, w.cfg.Parallelism)
	}
	loaded := map[string]bool{}
	loading := running
	for _, name := range w.plan.Order {
		if !w.loaded[name] || completed[name] || failed[name] {
			continue
		}
		loading--
		if len(w.plan.OpsAfter[name]) == 0 {
			loaded[name] = true
		}
	}
	return w.plan.ReadyLoaded(completed, loaded, started, loading, w.cfg.Parallelism)
}

// loadedDependentsChange: an entity's dependents start as soon as its load ended, while its
// indexes, foreign keys and ANALYZE are built; before, they waited for its completion, and
// the builds (0.3–0.7 s per entity of the clinic chain) were on the critical path of each link.
const loadedDependentsChange = "dependents-at-load-end"

// promptStartChange: the entities waiting for one start as soon as it completed, while its
// bookkeeping (the re-drive of its orphans, its status and event) goes on; before, they waited
// for that bookkeeping, a few activities on the critical path of every link of a chain.
const promptStartChange = "prompt-dependents"

// completionRedrivesDueChange: an entity's completion re-drives a dependent completed before
// it (let start at its load's end) only when the dependent's parents gained rows since the
// dependent's own re-drive; before, it re-drove it again, for nothing.
const completionRedrivesDueChange = "completion-redrives-due"

// entityFailure names the entity that stopped a migration and keeps the child's error (and
// its type) underneath.
type entityFailure struct {
	entity, reason string
	err            error
}

func (e *entityFailure) Error() string { return "entity " + e.entity + ": " + e.reason }
func (e *entityFailure) Unwrap() error { return e.err }

// goOps runs schema operations in a coroutine (they may wait for approval while loading goes on).
func (w *orch) goOps(ctx workflow.Context, names []string) workflow.Future {
	f, s := workflow.NewFuture(ctx)
	workflow.Go(ctx, func(gctx workflow.Context) {
		s.Set(nil, w.doOps(gctx, names))
	})
	return f
}

// runOps runs operations and waits for them, serving signals meanwhile.
func (w *orch) runOps(ctx workflow.Context, names []string) error {
	if len(names) == 0 {
		return nil
	}
	f := w.goOps(ctx, names)
	var err error
	done := false
	w.watch(ctx, f, func(ctx workflow.Context, f workflow.Future) { done, err = true, f.Get(ctx, nil) })
	for !done {
		w.waitChange(ctx)
	}
	return err
}

// doOps plans each operation (recording its SQL, rollback SQL and risk), waits for an approval
// when it is critical, and executes it.
func (w *orch) doOps(ctx workflow.Context, names []string) error {
	for _, name := range names {
		op := w.op(name)
		var res dbcopy.SchemaOpResult
		if err := workflow.ExecuteActivity(w.bctx, w.acts.DBPlanSchemaOp, dbcopy.SchemaOpRequest{Migration: w.migration(), Name: name}).Get(ctx, &res); err != nil {
			op.Status, op.Error = model.OpFailed, err.Error()
			return fmt.Errorf("schema op %s: %w", name, err)
		}
		op.Risk = res.Risk
		if res.Status == model.OpCompleted {
			op.Status = res.Status
			continue
		}
		if res.Risk == model.RiskCritical && op.ApprovedBy == "" {
			op.AwaitingApproval = true
			w.details(ctx)
			w.emit(ctx, "approval_required", map[string]any{"operation": name, "risk": res.Risk, "table": res.Table})
			if err := workflow.Await(ctx, func() bool { return op.ApprovedBy != "" || w.rollback != nil }); err != nil {
				return err
			}
			op.AwaitingApproval = false
			if op.ApprovedBy == "" {
				return nil // rolling back instead
			}
		}
		if err := workflow.ExecuteActivity(w.sctx, w.acts.DBExecuteSchemaOp, dbcopy.SchemaOpRequest{Migration: w.migration(),
			Name: name, ApprovedBy: op.ApprovedBy}).Get(ctx, &res); err != nil {
			op.Status, op.Error = model.OpFailed, err.Error()
			return fmt.Errorf("schema op %s: %w", name, err)
		}
		op.Status = res.Status
	}
	return nil
}

// handleRetries re-drives recorded errors of completed entities (running ones are refused).
func (w *orch) handleRetries(ctx workflow.Context, completed map[string]bool) {
	for len(w.retries) > 0 {
		r := w.retries[0]
		w.retries = w.retries[1:]
		if r.Spec != nil {
			w.in.Spec = r.Spec
			w.touch()
		}
		for _, name := range w.plan.Order {
			if r.Entity != "" && r.Entity != name {
				continue
			}
			es := w.entity(name)
			if !completed[name] {
				if r.Entity != "" {
					w.state.Refused = append(w.state.Refused, fmt.Sprintf("retry_failed %s refused: entity is %s", name, es.Status))
				}
				continue
			}
			var res dbcopy.RetryResult
			w.touch(name)
			if err := workflow.ExecuteActivity(w.sctx, w.acts.DBRetryFailed, dbcopy.EntityRequest{Migration: w.migration(), Entity: name}).Get(ctx, &res); err != nil {
				w.arrived(name) // it may have loaded some before failing
				w.state.Refused = append(w.state.Refused, fmt.Sprintf("retry_failed %s: %v", name, err))
				continue
			}
			es.Processed += int64(res.Loaded)
			es.Failed = max(es.Failed-int64(res.Retried)+int64(res.Failed), 0)
			if res.Loaded > 0 {
				w.arrived(name)
			}
		}
		w.recount(ctx)
	}
}

func (w *orch) completedSet() map[string]bool {
	m := map[string]bool{}
	for _, e := range w.state.Entities {
		if e.Status == model.EntityCompleted {
			m[e.Name] = true
		}
	}
	return m
}

// pass runs one catch-up pass: the captured sources drained (workflow_capture.go), and every
// other entity copied after its cursor (upserts of rows after the last key or watermark).
func (w *orch) pass(ctx workflow.Context) error {
	if w.capturing() {
		if _, err := w.drainPass(ctx); err != nil {
			return err
		}
	} else {
		for _, name := range w.plan.Order {
			if err := w.copyPass(ctx, name); err != nil {
				return err
			}
		}
	}
	w.state.Passes++
	w.recount(ctx)
	w.redriveOrphans(ctx, w.plan.Order) // the pass may have brought the parents of quarantined rows
	return workflow.ExecuteActivity(w.bctx, w.acts.DBSetStatus, w.statusRequest("")).Get(ctx, nil)
}

// copyPass copies an entity's rows after its cursor (catch-up by key cursor).
func (w *orch) copyPass(ctx workflow.Context, name string) error {
	es := w.entity(name)
	var out dbcopy.ChunkResult
	if err := workflow.ExecuteActivity(w.cctx, w.acts.DBCopyChunk, dbcopy.ChunkRequest{Migration: w.migration(),
		Cursor: es.Cursor, Events: w.cfg.Events}).Get(ctx, &out); err != nil {
		return fmt.Errorf("catch-up %s: %w", name, err)
	}
	es.Cursor = out.Run.Next
	es.Total, es.Processed, es.Failed, es.Throughput = out.RecordsTotal, out.RecordsProcessed, out.RecordsFailed, out.Throughput
	if out.Changes != nil {
		es.Changes = out.Changes
	}
	if out.Run.Next.After != "" {
		es.LastKey = out.Run.Next.After
	}
	return nil
}
