package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"

	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/dbmigrate/plan"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// endingWait bounds how long a recovery waits for a run whose state says it ended to close.
var endingWait = 2 * time.Minute

// Recovered says how a recovery request was delivered: to the running workflow as a signal,
// or as a new run of an ended migration's workflow (RunID), linked to PreviousRunID.
type Recovered struct {
	WorkflowID    string `json:"workflow_id"`
	Signalled     bool   `json:"signalled,omitempty"`
	RunID         string `json:"run_id,omitempty"`
	PreviousRunID string `json:"previous_run_id,omitempty"`
}

// Recover takes a migration up: a running one gets rec as its signal (rollback, retry_failed,
// accept_errors; retry is refused, nothing ended), an ended one (failed or completed) a new run
// of its workflow over the same ledger that starts from the ended run's state. fixed, when set,
// is the spec the retry uses from now on. A request the migration's state does not allow is a
// RefusedError saying why.
func (c *Client) Recover(ctx context.Context, id string, rec dbmigrateapi.Recovery, fixed *spec.Spec) (Recovered, error) {
	wid, err := DBWorkflowID(id)
	if err != nil {
		return Recovered{}, err
	}
	out := Recovered{WorkflowID: wid}
	d, err := c.tc.DescribeWorkflowExecution(ctx, wid, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return out, fmt.Errorf("database migration %s: %w", wid, ErrNotFound)
	}
	if err != nil {
		return out, fmt.Errorf("database migration %s: %w", wid, err)
	}
	info := d.GetWorkflowExecutionInfo()
	if info.GetStatus() == enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
		// A migration whose state says it ended (failed, completed) still runs for its last
		// steps (the event, the failure's record): a signal then would be lost with the run.
		// Wait for the run to close and take it up as an ended one.
		if st, err := c.DBStatus(ctx, wid); err != nil || st.Phase != dbmigrateapi.PhaseDone {
			out.Signalled = true
			return out, c.signalRecovery(ctx, wid, rec, fixed)
		}
		wctx, cancel := context.WithTimeout(ctx, endingWait)
		err := c.tc.GetWorkflow(wctx, wid, info.GetExecution().GetRunId()).Get(wctx, nil)
		timedOut := wctx.Err() != nil // read before cancel, which sets it whatever happened
		cancel()
		if timedOut && ctx.Err() == nil {
			return out, fmt.Errorf("database migration %s: its state says it ended but its run is still open after %s: %w",
				wid, endingWait, err)
		}
		if d, err = c.tc.DescribeWorkflowExecution(ctx, wid, ""); err != nil {
			return out, fmt.Errorf("database migration %s: %w", wid, err)
		}
		info = d.GetWorkflowExecutionInfo()
	}
	st, _ := c.DBResult(ctx, wid)
	if st.MigrationID == "" {
		return out, &RefusedError{Command: string(rec.Action), Reason: fmt.Sprintf("the last run of %s ended %s "+
			"without a migration state to take up", wid, info.GetStatus())}
	}
	if why := dbmigrateapi.RecoveryRefusal(&st, rec.Action); why != "" {
		return out, &RefusedError{Command: string(rec.Action), Reason: why}
	}
	in, err := c.DBInput(ctx, wid)
	if err != nil {
		return out, err
	}
	if fixed != nil {
		in.Spec = fixed
	}
	p, err := plan.New(in.Spec)
	if err != nil {
		return out, err
	}
	out.PreviousRunID = info.GetExecution().GetRunId()
	rec.PreviousRunID = out.PreviousRunID
	if rec.Action == dbmigrateapi.RecoverAccept && rec.AcceptanceID == "" {
		rec.AcceptanceID = uuid.NewString()
	}
	in.Resume, in.Recover = &st, &rec
	opts := c.DBStartOptions(in, p)
	opts.WorkflowIDReusePolicy = enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE
	opts.WorkflowIDConflictPolicy = enums.WORKFLOW_ID_CONFLICT_POLICY_FAIL
	opts.StaticSummary = fmt.Sprintf("%s of database migration %s (after run %s)", rec.Action, in.MigrationID, out.PreviousRunID)
	run, err := c.tc.ExecuteWorkflow(ctx, opts, dbmigrateapi.WorkflowName, in)
	if err != nil {
		return out, fmt.Errorf("%s of database migration %s: %w", rec.Action, in.MigrationID, err)
	}
	out.RunID = run.GetRunID()
	return out, nil
}

// signalRecovery asks a running migration for what a recovery run would do.
func (c *Client) signalRecovery(ctx context.Context, wid string, rec dbmigrateapi.Recovery, fixed *spec.Spec) error {
	switch rec.Action {
	case dbmigrateapi.RecoverRollback:
		return c.RequestRollback(ctx, wid, rec.RequestedBy, rec.Reason)
	case dbmigrateapi.RecoverRetryFailed:
		return c.RetryFailed(ctx, wid, dbmigrateapi.RetryRequest{Entity: rec.Entity, Spec: fixed,
			RequestedBy: rec.RequestedBy, Reason: rec.Reason})
	case dbmigrateapi.RecoverAccept:
		id := rec.AcceptanceID
		if id == "" {
			id = uuid.NewString()
		}
		return c.SignalDB(ctx, wid, dbmigrateapi.SignalAccept, dbmigrateapi.AcceptRequest{ID: id,
			RequestedBy: rec.RequestedBy, Reason: rec.Reason})
	}
	return &RefusedError{Command: string(rec.Action), Reason: "the migration is running (retry resumes one that failed)"}
}
