package dbmigrate

import (
	"fmt"

	"github.com/google/uuid"
	"go.temporal.io/sdk/workflow"

	"github.com/cutover/cutover/activities/dbcopy"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// requestRecordChange is the GetVersion change id of recording operators' requests (who, why)
// in the ledger: executions started before it keep their recorded commands and show the
// requests in their state only.
const requestRecordChange = "operator-request-record"

// requestIDSpace names the ledger ids of a migration's requests: one per (run, request).
var requestIDSpace = uuid.MustParse("6d2b4c1e-58a4-4f0e-9a57-3c9e0d6f7a21")

// request notes an operator's request the migration accepts, before it acts on it: in its
// state (the status query) and, for executions that record them, in its ledger and events.
// A request that arrives before the migration's ledger exists is recorded once it runs.
func (w *orch) request(ctx workflow.Context, r dbmigrateapi.RequestRecord) {
	r.At = workflow.Now(ctx).UTC()
	w.state.Requests = append(w.state.Requests, r)
	w.details(ctx)
	if !w.recordRequests {
		return
	}
	_ = workflow.Await(ctx, func() bool { return w.state.Status != model.OrchPending })
	w.recordRequest(ctx, r)
}

// recordRequest writes a request into the ledger (a failure is logged: the request itself
// stands, the state keeps it).
func (w *orch) recordRequest(ctx workflow.Context, r dbmigrateapi.RequestRecord) {
	w.requestN++
	id := uuid.NewSHA1(requestIDSpace, fmt.Appendf(nil, "%s/%d", workflow.GetInfo(ctx).WorkflowExecution.RunID, w.requestN))
	if err := workflow.ExecuteActivity(w.bctx, w.acts.DBRecordRequest, dbcopy.RecordRequest{Migration: w.migration(),
		Sink: w.cfg.Events, ID: id.String(), Request: r}).Get(ctx, nil); err != nil {
		w.log.Warn("recording an operator's request", "request", r.Request, "err", err)
	}
}
