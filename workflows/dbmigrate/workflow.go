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
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/dbmigrate/plan"
)

// failBeforeStartChange: a migration failing before it runs ends failed, not pending.
const failBeforeStartChange = "fail-before-start"

// Error types the orchestration fails with.
const (
	errTypeThreshold = "dbmigrate.error_threshold"
	errTypeInvalid   = "dbmigrate.invalid_spec"
)

// orch is one run of the orchestration.
type orch struct {
	in    dbmigrateapi.Input
	cfg   dbmigrateapi.Config
	plan  *plan.Plan
	state *dbmigrateapi.State
	log   log.Logger
	wake  int // bumped by every coroutine that changes what the main loop waits on
	acts  *dbcopy.Activities
	sctx  workflow.Context // short activities
	bctx  workflow.Context // bookkeeping activities (status, events)
	cctx  workflow.Context // copy activities

	rollback *dbmigrateapi.RollbackRequest
	cutover  *dbmigrateapi.CutoverRequest
	closeReq *dbmigrateapi.CloseRequest
	retries  []dbmigrateapi.RetryRequest
	accepts  []dbmigrateapi.AcceptRequest
	// accepted are the quarantined rows of an entity an operator accepted while it was stopped
	// mid-load: they no longer count against its error limit when its load resumes.
	accepted map[string]int64
	lastPct  float64

	// visible: this execution upserts MigrationPhase on every phase change (executions
	// started before that change keep their recorded shape; see GetVersion in Workflow).
	visible    bool
	shownPhase dbmigrateapi.Phase
	// recordRequests: operators' requests go into the ledger too (requestRecordChange);
	// requestN counts this run's, naming each.
	recordRequests bool
	requestN       int

	// early are the entities' validations started while the load went on (nil: this run
	// validates after the load); gens count the changes to each entity since the run began.
	early        map[string]*early
	gens         map[string]int
	earlyRunning int
	earlyQueue   []string // completed entities waiting for room to be validated early
	earlyCtx     workflow.Context
	cancelEarly  workflow.CancelFunc

	// loaded are the running entities whose load ended (SignalProgress's Loaded), their
	// Finalize still to come; nil when this run starts dependents at completion only
	// (loadedDependentsChange).
	loaded map[string]bool
	// arrivals decide which entities the end of the load re-drives (redriveArrivalsChange).
	arrivals arrivals
	// eventsWithStatus: a status write publishes the milestone that follows it in the same
	// activity (eventsWithStatusChange).
	eventsWithStatus bool
}

// eventsWithStatusChange: the started, progress and completed events are published by the
// status write they follow, not by an activity of their own after it (one workflow task and
// one activity dispatch less before the first entity starts, after each entity and at the
// end of the run).
const eventsWithStatusChange = "events-with-status"

// Workflow is DBMigrationWorkflow.
func Workflow(ctx workflow.Context, in dbmigrateapi.Input) (dbmigrateapi.Result, error) {
	w := &orch{in: in, cfg: in.Config.WithDefaults(), log: workflow.GetLogger(ctx)}
	w.sctx, w.bctx, w.cctx = activityContexts(ctx, w.cfg)
	if in.Resume != nil {
		w.state = in.Resume
	} else {
		w.state = &dbmigrateapi.State{
			MigrationID:   in.MigrationID,
			MigrationType: in.MigrationType,
			Status:        model.OrchPending,
			Phase:         dbmigrateapi.PhasePlanning,
			Transitions:   []model.OrchestrationStatus{model.OrchPending},
		}
	}
	status := func() (*dbmigrateapi.State, error) { return w.state, nil }
	if err := workflow.SetQueryHandlerWithOptions(ctx, dbmigrateapi.QueryStatus, status,
		workflow.QueryHandlerOptions{Description: dbmigrateapi.Descriptions[dbmigrateapi.QueryStatus]}); err != nil {
		return *w.state, err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, dbmigrateapi.UpdateApprove, func(ctx workflow.Context, a dbmigrateapi.Approval) (string, error) {
		w.approve(ctx, a)
		return "approved " + a.Operation, nil
	}, workflow.UpdateHandlerOptions{Description: dbmigrateapi.Descriptions[dbmigrateapi.UpdateApprove],
		Validator: func(ctx workflow.Context, a dbmigrateapi.Approval) error {
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
	w.recordRequests = workflow.GetVersion(ctx, requestRecordChange, workflow.DefaultVersion, 1) >= 1
	w.eventsWithStatus = workflow.GetVersion(ctx, eventsWithStatusChange, workflow.DefaultVersion, 1) >= 1
	sas := []temporal.SearchAttributeUpdate{searchattr.Kind.ValueSet(dbmigrateapi.Kind), searchattr.Status.ValueSet(string(w.state.Status))}
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
	if in.Recover != nil {
		return w.recoverEnded(ctx)
	}
	if in.Resume != nil {
		return w.catchUp(ctx)
	}
	return w.start(ctx)
}

// start prepares the migration (ledger rows, target tables), registers its entities and
// operations, and runs it.
func (w *orch) start(ctx workflow.Context) (dbmigrateapi.Result, error) {
	in, p := w.in, w.plan
	for _, op := range in.Spec.SchemaOps {
		st := &dbmigrateapi.OpState{Name: op.Name, After: op.After, Status: model.OpPending}
		w.state.Ops = append(w.state.Ops, st)
	}
	var prep dbcopy.PrepareResult
	if err := workflow.ExecuteActivity(w.sctx, w.acts.DBPrepare, w.migration()).Get(ctx, &prep); err != nil {
		return w.fail(ctx, fmt.Errorf("prepare: %w", err))
	}
	for _, name := range p.Order {
		w.state.Entities = append(w.state.Entities, &dbmigrateapi.EntityState{Name: name, Status: model.EntityPending, Total: prep.Totals[name]})
	}
	w.state.TotalEntities = int32(len(p.Order))
	if err := w.transitionEmitting(ctx, model.OrchRunning, "migration_started", func() map[string]any {
		return map[string]any{"entities": p.Order, "migration_type": in.MigrationType}
	}); err != nil {
		return w.fail(ctx, err)
	}
	if err := w.installCapture(ctx); err != nil {
		return w.fail(ctx, err)
	}
	return w.run(ctx)
}

// run loads the entities not completed yet, runs the schema operations, and finishes: the
// validation, or the catch-up passes of an incremental migration.
func (w *orch) run(ctx workflow.Context) (dbmigrateapi.Result, error) {
	in := w.in
	if in.MigrationType != model.MigrationSchemaCleanup {
		if w.earlyOn(ctx) {
			w.early, w.gens = map[string]*early{}, map[string]int{}
			w.earlyCtx, w.cancelEarly = workflow.WithCancel(w.sctx)
		}
		w.setPhase(ctx, dbmigrateapi.PhaseLoading)
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
	return dbcopy.Migration{ID: w.in.MigrationID, Type: w.in.MigrationType, CreatedBy: w.in.CreatedBy, Spec: w.in.Spec,
		Parallelism: w.cfg.Parallelism}
}

// invalid fails a migration whose spec cannot be planned, before any activity runs.
func (w *orch) invalid(err error) (dbmigrateapi.Result, error) {
	w.state.Error = "invalid spec: " + err.Error()
	w.state.Phase = dbmigrateapi.PhaseDone
	return *w.state, temporal.NewNonRetryableApplicationError(w.state.Error, errTypeInvalid, err)
}

func (w *orch) entity(name string) *dbmigrateapi.EntityState {
	for _, e := range w.state.Entities {
		if e.Name == name {
			return e
		}
	}
	return nil
}

func (w *orch) op(name string) *dbmigrateapi.OpState {
	for _, o := range w.state.Ops {
		if o.Name == name {
			return o
		}
	}
	return nil
}

// recount keeps the orchestration's counters (entities done, errors, percentage) true and the
// progress attribute current.
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

// transition moves along the orchestration's state diagram (internal/model); anything else is
// refused here, before the ledger (which refuses it too).
func (w *orch) transition(ctx workflow.Context, to model.OrchestrationStatus) error {
	return w.move(ctx, to, "", nil)
}

// transitionEmitting is transition, then the event typ with data (computed once the counters
// are): published by the status write itself (eventsWithStatusChange), or by emit after it.
func (w *orch) transitionEmitting(ctx workflow.Context, to model.OrchestrationStatus, typ string,
	data func() map[string]any) error {
	if !w.eventsWithStatus {
		if err := w.transition(ctx, to); err != nil {
			return err
		}
		w.emit(ctx, typ, data())
		return nil
	}
	return w.move(ctx, to, typ, data)
}

// countersEmitting records the counters, then publishes the event typ: in one activity
// (eventsWithStatusChange) or two.
func (w *orch) countersEmitting(ctx workflow.Context, typ string, data map[string]any) {
	req := w.statusRequest("")
	if !w.eventsWithStatus {
		_ = workflow.ExecuteActivity(w.bctx, w.acts.DBSetStatus, req).Get(ctx, nil)
		w.emit(ctx, typ, data)
		return
	}
	req.Event = &dbcopy.StatusEvent{Sink: w.cfg.Events, Event: w.event(ctx, typ, data)}
	_ = workflow.ExecuteActivity(w.bctx, w.acts.DBSetStatus, req).Get(ctx, nil)
}

// move is transition; with typ set, the status write publishes that event too.
func (w *orch) move(ctx workflow.Context, to model.OrchestrationStatus, typ string, data func() map[string]any) error {
	if !w.state.Status.CanTransition(to) {
		msg := fmt.Sprintf("transition %s → %s refused", w.state.Status, to)
		w.state.Refused = append(w.state.Refused, msg)
		return errors.New(msg)
	}
	w.recount(ctx)
	req := w.statusRequest(to)
	if typ != "" {
		req.Event = &dbcopy.StatusEvent{Sink: w.cfg.Events, Event: w.event(ctx, typ, data())}
	}
	if err := workflow.ExecuteActivity(w.bctx, w.acts.DBSetStatus, req).Get(ctx, nil); err != nil {
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
	_ = workflow.ExecuteActivity(w.bctx, w.acts.DBEmitEvent, dbcopy.EmitRequest{Migration: w.migration(), Sink: w.cfg.Events,
		Event: w.event(ctx, typ, data)}).Get(ctx, nil)
}

func (w *orch) event(ctx workflow.Context, typ string, data map[string]any) dbcopy.Event {
	return dbcopy.Event{EventType: typ, MigrationID: w.in.MigrationID,
		Timestamp: workflow.Now(ctx).UTC().Format("2006-01-02T15:04:05.000Z07:00"), Data: data}
}

// fail records the failure (running → failed) and fails the workflow with the state attached.
// A migration that fails before it runs (its preparation: the target refused, unreachable) is
// failed too, in its state and search attributes: the ledger, on the database that failed, is
// left alone.
func (w *orch) fail(ctx workflow.Context, cause error) (dbmigrateapi.Result, error) {
	w.state.Error = cause.Error()
	w.setPhase(ctx, dbmigrateapi.PhaseDone)
	if w.state.Status == model.OrchRunning {
		if err := w.transition(ctx, model.OrchFailed); err != nil {
			w.log.Error("recording failure", "err", err)
		}
	} else if w.state.Status == model.OrchPending && workflow.GetVersion(ctx, failBeforeStartChange, workflow.DefaultVersion, 1) >= 1 {
		w.state.Status = model.OrchFailed
		w.state.Transitions = append(w.state.Transitions, model.OrchFailed)
		_ = workflow.UpsertTypedSearchAttributes(ctx, searchattr.Status.ValueSet(string(model.OrchFailed)))
		w.details(ctx)
	}
	w.emit(ctx, "migration_failed", map[string]any{"error": w.state.Error, "progress_percentage": w.state.ProgressPercent})
	typ := "dbmigrate.failed"
	var ae *temporal.ApplicationError
	if errors.As(cause, &ae) && ae.Type() != "" {
		typ = ae.Type()
	}
	return *w.state, temporal.NewNonRetryableApplicationError(w.state.Error, typ, cause, *w.state)
}

func (w *orch) complete(ctx workflow.Context) (dbmigrateapi.Result, error) {
	data := func() map[string]any {
		return map[string]any{"progress_percentage": w.state.ProgressPercent,
			"error_count": w.state.ErrorCount, "final_pass_seconds": w.state.FinalPassSeconds}
	}
	if w.eventsWithStatus {
		w.setPhase(ctx, dbmigrateapi.PhaseDone)
		if err := w.move(ctx, model.OrchCompleted, "migration_completed", data); err != nil {
			return w.fail(ctx, err)
		}
		return *w.state, nil
	}
	if err := w.transition(ctx, model.OrchCompleted); err != nil {
		return w.fail(ctx, err)
	}
	w.setPhase(ctx, dbmigrateapi.PhaseDone)
	w.emit(ctx, "migration_completed", data())
	return *w.state, nil
}
