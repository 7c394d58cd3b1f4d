package dbmigrate

import (
	"fmt"
	"maps"
	"slices"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cutover/cutover/activities/dbcopy"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

const errTypeRecovery = "dbmigrate.recovery_refused"

// recoverEnded is a recovery run: it takes up the ended migration whose state it carries
// (Input.Resume) over the same ledger, recording the run it follows.
func (w *orch) recoverEnded(ctx workflow.Context) (dbmigrateapi.Result, error) {
	r := *w.in.Recover
	from := w.state.Status
	w.state.Recoveries = append(w.state.Recoveries, dbmigrateapi.RecoveryRecord{Action: r.Action,
		PreviousRunID: r.PreviousRunID, RequestedBy: r.RequestedBy, Reason: r.Reason, From: from})
	if why := dbmigrateapi.RecoveryRefusal(w.state, r.Action); why != "" {
		w.state.Refused = append(w.state.Refused, why)
		return *w.state, temporal.NewNonRetryableApplicationError(why, errTypeRecovery, nil, *w.state)
	}
	w.state.Error, w.state.RolledBack, w.state.Pending, w.state.Validation = "", false, nil, nil
	if w.recordRequests && r.Action != dbmigrateapi.RecoverAccept { // an acceptance has its own record
		w.recordRequest(ctx, dbmigrateapi.RequestRecord{Request: string(r.Action), Subject: r.Entity,
			RequestedBy: r.RequestedBy, Reason: r.Reason, At: workflow.Now(ctx).UTC()})
	}
	if r.Action == dbmigrateapi.RecoverRollback {
		w.rollback = &dbmigrateapi.RollbackRequest{Reason: r.Reason, RequestedBy: r.RequestedBy}
		return w.compensate(ctx)
	}
	if len(w.state.Entities) == 0 && r.Action == dbmigrateapi.RecoverRetry {
		// It failed before it ran (preparing the target): start it again.
		w.state.Ops = nil
		return w.start(ctx)
	}
	unfinished := map[string]bool{} // entities the ended run started and did not complete
	for _, es := range w.state.Entities {
		if es.Status == model.EntityFailed || es.Status == model.EntityRunning {
			unfinished[es.Name] = true
		}
		if es.Status != model.EntityCompleted {
			es.Status, es.Reason = model.EntityPending, ""
		}
	}
	if err := w.transition(ctx, model.OrchRunning); err != nil {
		return w.fail(ctx, err)
	}
	w.emit(ctx, "migration_recovered", map[string]any{"action": r.Action, "previous_run_id": r.PreviousRunID,
		"from": from, "requested_by": r.RequestedBy})
	switch r.Action {
	case dbmigrateapi.RecoverRetryFailed:
		w.retries = append(w.retries, dbmigrateapi.RetryRequest{Entity: r.Entity})
		redrive := w.completedSet()
		if workflow.GetVersion(ctx, redriveUnfinishedChange, workflow.DefaultVersion, 1) >= 1 {
			// An entity stopped mid-load (at its error limit, say) has its quarantined rows
			// re-driven before its load resumes: resuming alone replays its committed batches with
			// the same rows quarantined, and it would stop at the same limit again.
			maps.Copy(redrive, unfinished)
		}
		w.handleRetries(ctx, redrive)
	case dbmigrateapi.RecoverAccept:
		w.accepts = append(w.accepts, dbmigrateapi.AcceptRequest{ID: r.AcceptanceID, RequestedBy: r.RequestedBy, Reason: r.Reason})
		if err := w.recordAccepts(ctx); err != nil {
			return w.fail(ctx, err)
		}
		if workflow.GetVersion(ctx, redriveUnfinishedChange, workflow.DefaultVersion, 1) >= 1 {
			// An entity stopped at its error limit resumes with the accepted rows off its count
			// (else it would stop at the same limit again).
			w.accepted = map[string]int64{}
			for _, es := range w.state.Entities {
				if unfinished[es.Name] {
					w.accepted[es.Name] = es.Failed
				}
			}
		}
	}
	return w.run(ctx)
}

// redriveUnfinishedChange: a recovery run takes up the entities the ended run started and did
// not complete (an entity stopped at its error limit, say): retry_failed re-drives their
// quarantined rows before their load resumes, accept_errors takes the accepted rows off their
// error count. Before, both resumed them as they were, and they stopped at the same limit again.
const redriveUnfinishedChange = "recovery-redrive-unfinished"

// recordAccepts records the acceptances of quarantined rows asked for (the accept_errors
// signal, or a recovery run): the validation then lets the migration complete with them.
func (w *orch) recordAccepts(ctx workflow.Context) error {
	for len(w.accepts) > 0 {
		a := w.accepts[0]
		w.accepts = w.accepts[1:]
		var res dbcopy.AcceptResult
		if err := workflow.ExecuteActivity(w.sctx, w.acts.DBAcceptErrors, dbcopy.AcceptRequest{Migration: w.migration(),
			ID: a.ID, AcceptedBy: a.RequestedBy, Reason: a.Reason}).Get(ctx, &res); err != nil {
			return fmt.Errorf("accept quarantined rows: %w", err)
		}
		w.touch() // the acceptance changes what every entity's completeness check allows
		w.state.Accepted = &dbmigrateapi.AcceptanceRecord{By: a.RequestedBy, Reason: a.Reason, QuarantinedRows: res.QuarantinedRows}
		w.emit(ctx, "quarantine_accepted", map[string]any{"by": a.RequestedBy, "reason": a.Reason,
			"quarantined_rows": res.QuarantinedRows})
	}
	return nil
}

// orphanRedriveChange: rows quarantined for a missing parent are re-driven once the parent
// may have arrived.
const orphanRedriveChange = "orphan-redrive"

// redriveOrphans re-drives the rows of the named entities (those completed and with
// quarantined rows) quarantined for a missing parent: a parent that arrived after its child
// was read (written by the application during the load, copied by a later pass) lets them
// load now. Called when an entity completes (for itself and its completed dependents), at the
// end of the load and after each catch-up pass. An entity's re-drive starts once those of the
// named entities it depends on ended (a re-drive may load its dependents' parents); the
// others run side by side, Parallelism at a time (parallelRedriveChange; before, one after
// another in dependency order).
func (w *orch) redriveOrphans(ctx workflow.Context, names []string) {
	w.redriveOrphansDue(ctx, names, false)
}

// redriveOrphansDue is redriveOrphans; onlyDue skips, as its turn comes, an entity re-driven
// before whose parents gained no row since (redriveDue).
func (w *orch) redriveOrphansDue(ctx workflow.Context, names []string, onlyDue bool) {
	if workflow.GetVersion(ctx, orphanRedriveChange, workflow.DefaultVersion, 1) < 1 {
		return
	}
	if workflow.GetVersion(ctx, parallelRedriveChange, workflow.DefaultVersion, 1) < 1 {
		for _, name := range names {
			if w.hasOrphans(name) {
				var res dbcopy.RetryResult
				w.noteRedrive(name)
				err := w.redrive(ctx, name).Get(ctx, &res)
				w.redriven(name, res, err)
			}
		}
		w.recount(ctx)
		return
	}
	todo := map[string]bool{}
	for _, name := range names {
		todo[name] = w.hasOrphans(name)
	}
	started, done := map[string]bool{}, map[string]bool{}
	sel := workflow.NewSelector(ctx)
	running := 0
	for {
		for _, name := range names {
			if !todo[name] || started[name] || running >= max(1, w.cfg.Parallelism) {
				continue
			}
			if slices.ContainsFunc(w.plan.Deps[name], func(d string) bool { return todo[d] && !done[d] }) {
				continue
			}
			if onlyDue && !w.redriveDue(name) {
				todo[name] = false
				continue
			}
			started[name] = true
			running++
			var res dbcopy.RetryResult
			w.noteRedrive(name)
			sel.AddFuture(w.redrive(ctx, name), func(f workflow.Future) {
				running--
				done[name] = true
				err := f.Get(ctx, &res)
				w.redriven(name, res, err)
			})
		}
		if running == 0 {
			break
		}
		sel.Select(ctx)
	}
	w.recount(ctx)
}

// parallelRedriveChange: the re-drives of entities that do not depend on each other run side by
// side; executions recorded before it re-drive one entity after another.
const parallelRedriveChange = "parallel-redrives"

// hasOrphans says whether an entity is completed with quarantined rows to re-drive.
func (w *orch) hasOrphans(name string) bool {
	es := w.entity(name)
	return es != nil && es.Status == model.EntityCompleted && es.Failed > 0
}

// redrive starts the re-drive of an entity's rows quarantined for a missing parent.
func (w *orch) redrive(ctx workflow.Context, name string) workflow.Future {
	return workflow.ExecuteActivity(w.sctx, w.acts.DBRetryFailed, dbcopy.EntityRequest{Migration: w.migration(),
		Entity: name, OrphansOnly: true})
}

// redriven counts what a re-drive loaded and quarantined again.
func (w *orch) redriven(name string, res dbcopy.RetryResult, err error) {
	es := w.entity(name)
	if err != nil {
		w.touch(name) // it may have loaded some before failing
		w.arrived(name)
		w.log.Warn("re-driving rows without their parent", "entity", name, "err", err)
		return
	}
	if res.Loaded > 0 || res.Failed != res.Retried {
		w.touch(name)
	}
	if res.Loaded > 0 {
		w.arrived(name)
	}
	es.Processed += int64(res.Loaded)
	es.Failed = max(es.Failed-int64(res.Retried)+int64(res.Failed), 0)
}

// dependents are the entities that reference name (and name itself, for self references),
// in dependency order.
func (w *orch) dependents(name string) []string {
	var out []string
	for _, n := range w.plan.Order {
		if n == name {
			out = append(out, n)
			continue
		}
		for _, d := range w.plan.Deps[n] {
			if d == name {
				out = append(out, n)
				break
			}
		}
	}
	return out
}

// redriveArrivalsChange: the end of the load re-drives only the entities whose parents gained
// rows since their last re-drive started (arrivals); before, it re-drove every entity with
// quarantined rows again, though each was re-driven when it completed and its parents' rows
// had all been loaded before its own load began (ten activities at the end of the clinic
// chain, ~0.5 s, for nothing).
const redriveArrivalsChange = "redrive-after-arrivals"

// arrivals count, per entity, the rows that reached it in this run outside its own load: a
// re-drive of its orphans or a retry of its quarantined rows that loaded some (or failed, and
// may have). redriveSaw is, per entity, its parents' arrivals when its last re-drive started.
// Both nil when this run re-drives every entity at the end of the load (redriveArrivalsChange).
type arrivals struct {
	count, redriveSaw map[string]int
}

// arrived records that rows may have reached name outside its load.
func (w *orch) arrived(name string) {
	if w.arrivals.count != nil {
		w.arrivals.count[name]++
	}
}

// noteRedrive records, as name's re-drive starts, what its parents had gained by then.
func (w *orch) noteRedrive(name string) {
	if w.arrivals.redriveSaw != nil {
		w.arrivals.redriveSaw[name] = w.parentArrivals(name)
	}
}

// parentArrivals sums the arrivals of the entities name depends on (itself too when it
// references its own rows).
func (w *orch) parentArrivals(name string) int {
	n := 0
	for _, d := range w.plan.Deps[name] {
		n += w.arrivals.count[d]
	}
	if w.plan.SelfRef[name] {
		n += w.arrivals.count[name]
	}
	return n
}

// toRedriveAtLoadEnd are the entities the end of the load re-drives: every one, or
// (redriveArrivalsChange) those never re-driven in this run and those whose parents gained
// rows since their last re-drive started.
func (w *orch) toRedriveAtLoadEnd() []string {
	if w.arrivals.count == nil {
		return w.plan.Order
	}
	return slices.DeleteFunc(slices.Clone(w.plan.Order), func(n string) bool { return !w.redriveDue(n) })
}

// redriveDue says whether name's rows without a parent may load now: it was never re-driven
// in this run, or its parents gained rows since its last re-drive started (always, when this
// run does not count arrivals: redriveArrivalsChange).
func (w *orch) redriveDue(name string) bool {
	saw, ok := w.arrivals.redriveSaw[name]
	return !ok || saw != w.parentArrivals(name)
}
