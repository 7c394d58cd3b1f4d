package dbmigrate

import (
	"fmt"

	"go.temporal.io/sdk/workflow"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/silence"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/dbmigrate/plan"
)

// approve records who approved a schema operation and why, then approves it.
func (w *orch) approve(ctx workflow.Context, a dbmigrateapi.Approval) {
	op := w.op(a.Operation)
	if op == nil || a.ApprovedBy == "" {
		w.state.Refused = append(w.state.Refused, fmt.Sprintf("approval of unknown operation %q or without approved_by", a.Operation))
		return
	}
	if op.ApprovedBy == "" {
		w.request(ctx, dbmigrateapi.RequestRecord{Request: dbmigrateapi.SignalApprove, Subject: a.Operation,
			RequestedBy: a.ApprovedBy, Reason: a.Reason})
	}
	op.ApprovedBy = a.ApprovedBy
}

// listen handles every signal in its own coroutine, so requests are judged when they arrive
// (even while the main loop waits for an activity) and wake the main loop.
func (w *orch) listen(ctx workflow.Context) {
	on := func(name string, handle func(workflow.Context, workflow.ReceiveChannel)) {
		ch := workflow.GetSignalChannelWithOptions(ctx, name,
			workflow.SignalChannelOptions{Description: dbmigrateapi.Descriptions[name]})
		workflow.Go(ctx, func(gctx workflow.Context) {
			for {
				handle(gctx, ch)
				w.wake++
			}
		})
	}
	on(silence.Signal, func(ctx workflow.Context, c workflow.ReceiveChannel) {
		var r silence.Report
		c.Receive(ctx, &r)
		w.state.WorkerSilent = r.Notes
		w.details(ctx)
	})
	on(dbmigrateapi.SignalApprove, func(ctx workflow.Context, c workflow.ReceiveChannel) {
		var a dbmigrateapi.Approval
		c.Receive(ctx, &a)
		w.approve(ctx, a)
	})
	on(dbmigrateapi.SignalRollback, func(ctx workflow.Context, c workflow.ReceiveChannel) {
		var r dbmigrateapi.RollbackRequest
		c.Receive(ctx, &r)
		if w.state.Status != model.OrchRunning || !w.state.Status.CanTransition(model.OrchRollingBack) {
			w.state.Refused = append(w.state.Refused, fmt.Sprintf("rollback refused: status is %s (allowed only while running)", w.state.Status))
			return
		}
		if w.rollback == nil {
			w.request(ctx, dbmigrateapi.RequestRecord{Request: dbmigrateapi.SignalRollback, RequestedBy: r.RequestedBy,
				Reason: r.Reason})
			w.rollback = &r
		}
	})
	on(dbmigrateapi.SignalCutover, func(ctx workflow.Context, c workflow.ReceiveChannel) {
		var r dbmigrateapi.CutoverRequest
		c.Receive(ctx, &r)
		if w.in.MigrationType != model.MigrationIncremental {
			w.state.Refused = append(w.state.Refused, "cutover refused: not an incremental migration")
			return
		}
		w.request(ctx, dbmigrateapi.RequestRecord{Request: dbmigrateapi.SignalCutover, RequestedBy: r.RequestedBy,
			Reason: r.Reason})
		w.cutover = &r
	})
	on(dbmigrateapi.SignalClose, func(ctx workflow.Context, c workflow.ReceiveChannel) {
		var r dbmigrateapi.CloseRequest
		c.Receive(ctx, &r)
		if w.state.Phase != dbmigrateapi.PhaseReverseSync {
			w.state.Refused = append(w.state.Refused, fmt.Sprintf("close refused: phase is %s (close ends the reverse flow after cutover)", w.state.Phase))
			return
		}
		w.request(ctx, dbmigrateapi.RequestRecord{Request: dbmigrateapi.SignalClose, RequestedBy: r.RequestedBy,
			Reason: r.Reason})
		w.closeReq = &r
	})
	on(dbmigrateapi.SignalRetry, func(ctx workflow.Context, c workflow.ReceiveChannel) {
		var r dbmigrateapi.RetryRequest
		c.Receive(ctx, &r)
		if r.Spec != nil {
			if _, err := plan.New(r.Spec); err != nil {
				w.state.Refused = append(w.state.Refused, "retry_failed refused: "+err.Error())
				return
			}
		}
		w.request(ctx, dbmigrateapi.RequestRecord{Request: dbmigrateapi.SignalRetry, Subject: r.Entity,
			RequestedBy: r.RequestedBy, Reason: r.Reason})
		w.retries = append(w.retries, r)
	})
	on(dbmigrateapi.SignalAccept, func(ctx workflow.Context, c workflow.ReceiveChannel) {
		var r dbmigrateapi.AcceptRequest
		c.Receive(ctx, &r)
		if r.ID == "" || r.RequestedBy == "" || r.Reason == "" {
			w.state.Refused = append(w.state.Refused, "accept_errors refused: it needs an id, who accepts and a reason")
			return
		}
		w.accepts = append(w.accepts, r)
	})
	on(dbmigrateapi.SignalEntityAttempt, func(ctx workflow.Context, c workflow.ReceiveChannel) {
		var a dbmigrateapi.EntityAttempt
		c.Receive(ctx, &a)
		if e := w.entity(a.Entity); e != nil && e.Status == model.EntityRunning {
			w.noteAttempt(a)
			w.details(ctx)
		}
	})
	on(dbmigrateapi.SignalProgress, func(ctx workflow.Context, c workflow.ReceiveChannel) {
		var p dbmigrateapi.Progress
		c.Receive(ctx, &p)
		if e := w.entity(p.Entity); e != nil && e.Status == model.EntityRunning {
			if p.Loaded && w.loaded != nil {
				w.loaded[p.Entity] = true
			}
			e.Total, e.Processed, e.Failed, e.LastKey, e.Throughput = p.Total, p.Processed, p.Failed, p.LastKey, p.Throughput
			if p.Changes != nil {
				e.Changes = p.Changes
			}
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
