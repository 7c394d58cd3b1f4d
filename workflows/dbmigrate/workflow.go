package dbmigrate

import (
	"errors"
	"fmt"
	"math"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cutover/cutover/activities/dbcopy"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/searchattr"
	"github.com/cutover/cutover/workflows/dbmigrate/plan"
)

// orch is one run of the orchestration.
type orch struct {
	in    Input
	cfg   Config
	plan  *plan.Plan
	state *State
	log   log.Logger
	wake  int // bumped by every coroutine that changes what the main loop waits on
	acts  *dbcopy.Activities
	sctx  workflow.Context // short activities
	bctx  workflow.Context // bookkeeping activities (status, events)
	cctx  workflow.Context // copy activities

	rollback *RollbackRequest
	cutover  *CutoverRequest
	retries  []RetryRequest
	lastPct  float64

	// visible: this execution upserts MigrationPhase on every phase change (executions
	// started before that change keep their recorded shape; see GetVersion in Workflow).
	visible    bool
	shownPhase Phase
}

// Workflow is DBMigrationWorkflow.
func Workflow(ctx workflow.Context, in Input) (Result, error) {
	w := &orch{in: in, cfg: in.Config.withDefaults(), log: workflow.GetLogger(ctx)}
	w.sctx = workflow.WithActivityOptions(ctx, shortOptions(w.cfg))
	w.bctx = workflow.WithActivityOptions(ctx, bookkeepingOptions())
	w.cctx = workflow.WithActivityOptions(ctx, copyOptions(w.cfg))
	if in.Resume != nil {
		w.state = in.Resume
	} else {
		w.state = &State{MigrationID: in.MigrationID, MigrationType: in.MigrationType, Status: model.OrchPending,
			Phase: PhasePlanning, Transitions: []model.OrchestrationStatus{model.OrchPending}}
	}
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (*State, error) { return w.state, nil }); err != nil {
		return *w.state, err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateApprove, func(ctx workflow.Context, a Approval) (string, error) {
		w.approve(a)
		return "approved " + a.Operation, nil
	}, workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, a Approval) error {
		op := w.op(a.Operation)
		switch {
		case a.ApprovedBy == "":
			return errors.New("approved_by is required")
		case op == nil:
			return fmt.Errorf("no schema operation %q in this migration", a.Operation)
		case op.Status != model.OpPending:
			return fmt.Errorf("schema operation %q is %s", a.Operation, op.Status)
		}
		return nil
	}}); err != nil {
		return *w.state, err
	}
	w.listen(ctx)
	w.visible = workflow.GetVersion(ctx, visibilityChange, workflow.DefaultVersion, 1) >= 1
	sas := []temporal.SearchAttributeUpdate{searchattr.Kind.ValueSet(Kind), searchattr.Status.ValueSet(string(w.state.Status))}
	if w.visible {
		sas = append(sas, searchattr.Phase.ValueSet(string(w.state.Phase)))
		w.shownPhase = w.state.Phase
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx, sas...)
	w.details(ctx)

	if in.Spec == nil {
		return w.invalid(errors.New("no spec"))
	}
	p, err := plan.New(in.Spec)
	if err != nil {
		return w.invalid(err)
	}
	w.plan = p
	if in.Resume != nil {
		return w.catchUp(ctx)
	}
	for _, op := range in.Spec.SchemaOps {
		w.state.Ops = append(w.state.Ops, &OpState{Name: op.Name, After: op.After, Status: model.OpPending})
	}
	var prep dbcopy.PrepareResult
	if err := workflow.ExecuteActivity(w.sctx, w.acts.DBPrepare, w.migration()).Get(ctx, &prep); err != nil {
		return w.fail(ctx, fmt.Errorf("prepare: %w", err))
	}
	for _, name := range p.Order {
		w.state.Entities = append(w.state.Entities, &EntityState{Name: name, Status: model.EntityPending, Total: prep.Totals[name]})
	}
	w.state.TotalEntities = int32(len(p.Order))
	if err := w.transition(ctx, model.OrchRunning); err != nil {
		return w.fail(ctx, err)
	}
	w.emit(ctx, "migration_started", map[string]any{"entities": p.Order, "migration_type": in.MigrationType})

	if in.MigrationType != model.MigrationSchemaCleanup {
		w.setPhase(ctx, PhaseLoading)
		if err := w.load(ctx); err != nil {
			return w.fail(ctx, err)
		}
		if w.rollback != nil {
			return w.compensate(ctx)
		}
	}
	if err := w.runOps(ctx, w.plan.OpsAfter[""]); err != nil {
		return w.fail(ctx, err)
	}
	if in.MigrationType == model.MigrationSchemaCleanup {
		for _, op := range in.Spec.SchemaOps {
			if op.After != "" {
				if err := w.runOps(ctx, []string{op.Name}); err != nil {
					return w.fail(ctx, err)
				}
			}
		}
		return w.complete(ctx)
	}
	if w.rollback != nil {
		return w.compensate(ctx)
	}
	if in.MigrationType == model.MigrationIncremental {
		return w.catchUp(ctx)
	}
	return w.validateAndFinish(ctx)
}

func (w *orch) migration() dbcopy.Migration {
	return dbcopy.Migration{ID: w.in.MigrationID, Type: w.in.MigrationType, CreatedBy: w.in.CreatedBy, Spec: w.in.Spec}
}

// invalid fails a migration whose spec cannot be planned, before any activity runs.
func (w *orch) invalid(err error) (Result, error) {
	w.state.Error = "invalid spec: " + err.Error()
	w.state.Phase = PhaseDone
	return *w.state, temporal.NewNonRetryableApplicationError(w.state.Error, errTypeInvalid, err)
}

func (w *orch) entity(name string) *EntityState {
	for _, e := range w.state.Entities {
		if e.Name == name {
			return e
		}
	}
	return nil
}

func (w *orch) op(name string) *OpState {
	for _, o := range w.state.Ops {
		if o.Name == name {
			return o
		}
	}
	return nil
}

func (w *orch) approve(a Approval) {
	op := w.op(a.Operation)
	if op == nil || a.ApprovedBy == "" {
		w.state.Refused = append(w.state.Refused, fmt.Sprintf("approval of unknown operation %q or without approved_by", a.Operation))
		return
	}
	op.ApprovedBy = a.ApprovedBy
}

// listen handles every signal in its own coroutine, so requests are judged when they arrive
// (even while the main loop waits for an activity) and wake the main loop.
func (w *orch) listen(ctx workflow.Context) {
	on := func(name string, handle func(workflow.Context, workflow.ReceiveChannel)) {
		ch := workflow.GetSignalChannel(ctx, name)
		workflow.Go(ctx, func(gctx workflow.Context) {
			for {
				handle(gctx, ch)
				w.wake++
			}
		})
	}
	on(SignalApprove, func(ctx workflow.Context, c workflow.ReceiveChannel) {
		var a Approval
		c.Receive(ctx, &a)
		w.approve(a)
	})
	on(SignalRollback, func(ctx workflow.Context, c workflow.ReceiveChannel) {
		var r RollbackRequest
		c.Receive(ctx, &r)
		if w.state.Status != model.OrchRunning || !w.state.Status.CanTransition(model.OrchRollingBack) {
			w.state.Refused = append(w.state.Refused, fmt.Sprintf("rollback refused: status is %s (allowed only while running)", w.state.Status))
			return
		}
		if w.rollback == nil {
			w.rollback = &r
		}
	})
	on(SignalCutover, func(ctx workflow.Context, c workflow.ReceiveChannel) {
		var r CutoverRequest
		c.Receive(ctx, &r)
		if w.in.MigrationType != model.MigrationIncremental {
			w.state.Refused = append(w.state.Refused, "cutover refused: not an incremental migration")
			return
		}
		w.cutover = &r
	})
	on(SignalRetry, func(ctx workflow.Context, c workflow.ReceiveChannel) {
		var r RetryRequest
		c.Receive(ctx, &r)
		if r.Spec != nil {
			if _, err := plan.New(r.Spec); err != nil {
				w.state.Refused = append(w.state.Refused, "retry_failed refused: "+err.Error())
				return
			}
		}
		w.retries = append(w.retries, r)
	})
	on(SignalProgress, func(ctx workflow.Context, c workflow.ReceiveChannel) {
		var p Progress
		c.Receive(ctx, &p)
		if e := w.entity(p.Entity); e != nil && e.Status == model.EntityRunning {
			e.Total, e.Processed, e.Failed, e.LastKey, e.Throughput = p.Total, p.Processed, p.Failed, p.LastKey, p.Throughput
			w.recount(ctx)
		}
	})
}

// waitChange blocks until a coroutine reports a change (a signal, a child or an operation
// finishing).
func (w *orch) waitChange(ctx workflow.Context) {
	seen := w.wake
	_ = workflow.Await(ctx, func() bool { return w.wake != seen })
}

// watch runs fn when f resolves and wakes the main loop.
func (w *orch) watch(ctx workflow.Context, f workflow.Future, fn func(workflow.Context, workflow.Future)) {
	workflow.Go(ctx, func(gctx workflow.Context) {
		_ = f.Get(gctx, nil)
		fn(gctx, f)
		w.wake++
	})
}

// recount keeps the seed's counters true and the progress attribute current.
func (w *orch) recount(ctx workflow.Context) {
	var done int32
	var errs, rows, total int64
	for _, e := range w.state.Entities {
		if e.Status == model.EntityCompleted {
			done++
		}
		errs += e.Failed
		rows += e.Processed + e.Failed
		total += max(e.Total, e.Processed+e.Failed)
	}
	w.state.CompletedEntities, w.state.ErrorCount = done, errs
	pct := 0.0
	switch {
	case total > 0:
		pct = 100 * float64(rows) / float64(total)
	case w.state.TotalEntities > 0:
		pct = 100 * float64(done) / float64(w.state.TotalEntities)
	}
	w.state.ProgressPercent = math.Round(math.Min(pct, 100)*100) / 100
	w.details(ctx)
	if w.state.ProgressPercent-w.lastPct >= 5 || (w.state.ProgressPercent == 100 && w.lastPct != 100) {
		w.lastPct = w.state.ProgressPercent
		_ = workflow.UpsertTypedSearchAttributes(ctx, searchattr.SyncPercent.ValueSet(w.state.ProgressPercent))
	}
}

func (w *orch) statusRequest(to model.OrchestrationStatus) dbcopy.StatusRequest {
	return dbcopy.StatusRequest{Migration: w.migration(), To: to, Total: w.state.TotalEntities,
		Completed: w.state.CompletedEntities, Errors: w.state.ErrorCount}
}

// transition moves along the seed's diagram; anything else is refused here, before the
// ledger (which refuses it too).
func (w *orch) transition(ctx workflow.Context, to model.OrchestrationStatus) error {
	if !w.state.Status.CanTransition(to) {
		msg := fmt.Sprintf("transition %s → %s refused", w.state.Status, to)
		w.state.Refused = append(w.state.Refused, msg)
		return errors.New(msg)
	}
	w.recount(ctx)
	if err := workflow.ExecuteActivity(w.bctx, w.acts.DBSetStatus, w.statusRequest(to)).Get(ctx, nil); err != nil {
		return err
	}
	w.state.Status = to
	w.state.Transitions = append(w.state.Transitions, to)
	sas := []temporal.SearchAttributeUpdate{searchattr.Status.ValueSet(string(to)), searchattr.SyncPercent.ValueSet(w.state.ProgressPercent)}
	if w.visible {
		sas = append(sas, searchattr.Phase.ValueSet(string(w.state.Phase)))
		w.shownPhase = w.state.Phase
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx, sas...)
	w.details(ctx)
	return nil
}

func (w *orch) emit(ctx workflow.Context, typ string, data map[string]any) {
	ev := dbcopy.Event{EventType: typ, MigrationID: w.in.MigrationID, Timestamp: workflow.Now(ctx).UTC().Format("2006-01-02T15:04:05.000Z07:00"), Data: data}
	_ = workflow.ExecuteActivity(w.bctx, w.acts.DBEmitEvent, dbcopy.EmitRequest{Migration: w.migration(), Sink: w.cfg.Events, Event: ev}).Get(ctx, nil)
}

// fail records the failure (running → failed) and fails the workflow with the state attached.
func (w *orch) fail(ctx workflow.Context, cause error) (Result, error) {
	w.state.Error = cause.Error()
	w.setPhase(ctx, PhaseDone)
	if w.state.Status == model.OrchRunning {
		if err := w.transition(ctx, model.OrchFailed); err != nil {
			w.log.Error("recording failure", "err", err)
		}
	}
	w.emit(ctx, "migration_failed", map[string]any{"error": w.state.Error, "progress_percentage": w.state.ProgressPercent})
	typ := "dbmigrate.failed"
	var ae *temporal.ApplicationError
	if errors.As(cause, &ae) && ae.Type() != "" {
		typ = ae.Type()
	}
	return *w.state, temporal.NewNonRetryableApplicationError(w.state.Error, typ, cause, *w.state)
}

func (w *orch) complete(ctx workflow.Context) (Result, error) {
	if err := w.transition(ctx, model.OrchCompleted); err != nil {
		return w.fail(ctx, err)
	}
	w.setPhase(ctx, PhaseDone)
	w.emit(ctx, "migration_completed", map[string]any{"progress_percentage": w.state.ProgressPercent,
		"error_count": w.state.ErrorCount, "final_pass_seconds": w.state.FinalPassSeconds})
	return *w.state, nil
}

// load runs the entity children in dependency order, Parallelism at a time, schema operations
// after their entity, until every entity completed, one failed, or a rollback was asked for.
func (w *orch) load(ctx workflow.Context) error {
	completed, started, failed := map[string]bool{}, map[string]bool{}, map[string]bool{}
	running := 0
	childCtx, cancelChildren := workflow.WithCancel(ctx)
	var firstErr error
	opsRunning := 0
	for {
		if w.rollback != nil || firstErr != nil {
			cancelChildren()
			if running == 0 && opsRunning == 0 {
				return firstErr
			}
		} else {
			if len(completed) == len(w.plan.Order) && opsRunning == 0 {
				return nil
			}
			for _, name := range w.plan.Ready(completed, started, running, w.cfg.Parallelism) {
				started[name] = true
				running++
				es := w.entity(name)
				es.Status = model.EntityRunning
				cctx := workflow.WithChildOptions(childCtx, workflow.ChildWorkflowOptions{
					WorkflowID:    WorkflowID(w.in.MigrationID) + "/" + name,
					StaticSummary: fmt.Sprintf("entity %s of database migration %s", name, w.in.MigrationID),
					TypedSearchAttributes: temporal.NewSearchAttributes(searchattr.Kind.ValueSet(Kind),
						searchattr.Status.ValueSet(string(model.EntityRunning))),
				})
				f := w.startEntity(ctx, cctx, EntityInput{Migration: w.migration(), Entity: name,
					Config: w.cfg, Cursor: dbcopy.BatchRequest{Entity: name}})
				w.watch(ctx, f, func(ctx workflow.Context, f workflow.Future) {
					running--
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
					es.Cursor = dbcopy.BatchRequest{Entity: name, Sync: true, After: r.Next.After, BatchNumber: r.Next.BatchNumber, Mark: r.MarkStart}
					if r.MarkStart != "" {
						es.Cursor.After = "" // watermark passes start at the high-water mark, any key
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
					_ = workflow.ExecuteActivity(w.bctx, w.acts.DBSetStatus, w.statusRequest("")).Get(ctx, nil)
					w.emit(ctx, "migration_progress", map[string]any{"entity": name, "progress_percentage": w.state.ProgressPercent,
						"throughput": es.Throughput})
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
		w.handleRetries(ctx, completed)
	}
}

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
			if err := workflow.ExecuteActivity(w.sctx, w.acts.DBRetryFailed, dbcopy.EntityRequest{Migration: w.migration(), Entity: name}).Get(ctx, &res); err != nil {
				w.state.Refused = append(w.state.Refused, fmt.Sprintf("retry_failed %s: %v", name, err))
				continue
			}
			es.Processed += int64(res.Loaded)
			es.Failed = max(es.Failed-int64(res.Retried)+int64(res.Failed), 0)
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

// pass runs one catch-up pass over every entity (upserts of rows after each cursor).
func (w *orch) pass(ctx workflow.Context) error {
	for _, name := range w.plan.Order {
		es := w.entity(name)
		var out dbcopy.ChunkResult
		if err := workflow.ExecuteActivity(w.cctx, w.acts.DBCopyChunk, dbcopy.ChunkRequest{Migration: w.migration(),
			Cursor: es.Cursor, Events: w.cfg.Events}).Get(ctx, &out); err != nil {
			return fmt.Errorf("catch-up %s: %w", name, err)
		}
		es.Cursor = out.Run.Next
		es.Total, es.Processed, es.Failed, es.Throughput = out.RecordsTotal, out.RecordsProcessed, out.RecordsFailed, out.Throughput
		if out.Run.Next.After != "" {
			es.LastKey = out.Run.Next.After
		}
	}
	w.state.Passes++
	w.recount(ctx)
	return workflow.ExecuteActivity(w.bctx, w.acts.DBSetStatus, w.statusRequest("")).Get(ctx, nil)
}

// catchUp repeats catch-up passes every SyncInterval until cutover, then runs the timed final
// pass and the validation (seed 002, days 1–4).
func (w *orch) catchUp(ctx workflow.Context) (Result, error) {
	w.setPhase(ctx, PhaseCatchingUp)
	for runPasses := 0; w.cutover == nil; {
		if w.rollback != nil {
			return w.compensate(ctx)
		}
		if runPasses >= w.cfg.PassesPerRun {
			next := w.in
			next.Resume = w.state
			return *w.state, workflow.NewContinueAsNewError(ctx, WorkflowName, next)
		}
		// Until the interval passes or a request arrives.
		interrupted, _ := workflow.AwaitWithTimeout(ctx, w.cfg.SyncInterval, func() bool {
			return w.cutover != nil || w.rollback != nil || len(w.retries) > 0
		})
		fired := !interrupted
		w.handleRetries(ctx, w.completedSet())
		if fired && w.cutover == nil && w.rollback == nil {
			if err := w.pass(ctx); err != nil {
				return w.fail(ctx, err)
			}
			runPasses++
		}
	}
	if w.rollback != nil {
		return w.compensate(ctx)
	}
	w.setPhase(ctx, PhaseFinalPass)
	start := workflow.Now(ctx)
	if err := w.pass(ctx); err != nil {
		return w.fail(ctx, err)
	}
	w.state.FinalPassSeconds = workflow.Now(ctx).Sub(start).Seconds()
	w.emit(ctx, "final_pass_completed", map[string]any{"seconds": w.state.FinalPassSeconds})
	return w.validateAndFinish(ctx)
}

// validateAndFinish records every entity's checks; completed only when they pass.
func (w *orch) validateAndFinish(ctx workflow.Context) (Result, error) {
	w.setPhase(ctx, PhaseValidating)
	var failedEntities []string
	for _, name := range w.plan.Order {
		var v dbcopy.ValidationSummary
		if err := workflow.ExecuteActivity(w.sctx, w.acts.DBValidate, dbcopy.ValidateRequest{Migration: w.migration(),
			Entity: name, AllowWarnings: w.cfg.AllowWarnings}).Get(ctx, &v); err != nil {
			return w.fail(ctx, fmt.Errorf("validate %s: %w", name, err))
		}
		w.state.Validation = append(w.state.Validation, v)
		if !v.Passed {
			failedEntities = append(failedEntities, name)
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

// compensate undoes the migration: running → rolling_back, schema operations reverted from
// their backups (last first), entities' rows deleted in reverse dependency order, → pending.
func (w *orch) compensate(ctx workflow.Context) (Result, error) {
	if err := w.transition(ctx, model.OrchRollingBack); err != nil {
		return w.fail(ctx, err)
	}
	w.setPhase(ctx, PhaseRollingBck)
	w.emit(ctx, "rollback_started", map[string]any{"reason": w.rollback.Reason, "requested_by": w.rollback.RequestedBy})
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
	w.setPhase(ctx, PhaseDone)
	w.emit(ctx, "rollback_completed", map[string]any{})
	return *w.state, nil
}
