package client

import (
	"context"
	"errors"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflow/v1"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/silence"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// stallAfter is how long without a committed batch (or an ended attempt) makes an activity
// stalled in the status.
const stallAfter = time.Minute

// addPending lists the activities Temporal is running or retrying for a migration: those of
// its workflow and of its running entity children, with their attempts, last failures and,
// for copy activities, the batch in hand and when the last one committed.
func (c *Client) addPending(ctx context.Context, st *dbmigrateapi.State, now time.Time) error {
	wid := dbmigrateapi.WorkflowID(st.MigrationID)
	ids := []struct{ entity, wid string }{{"", wid}}
	for _, e := range st.Entities {
		if e.Status == model.EntityRunning {
			ids = append(ids, struct{ entity, wid string }{e.Name, wid + "/" + e.Name})
		}
	}
	for _, id := range ids {
		d, err := c.tc.DescribeWorkflowExecution(ctx, id.wid, "")
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			continue
		}
		if err != nil {
			return err
		}
		for _, pa := range d.GetPendingActivities() {
			st.Pending = append(st.Pending, c.pending(id.entity, pa, now))
		}
	}
	return nil
}

func (c *Client) pending(entity string, pa *workflow.PendingActivityInfo, now time.Time) dbmigrateapi.PendingActivity {
	p := dbmigrateapi.PendingActivity{
		Entity:       entity,
		Activity:     pa.GetActivityType().GetName(),
		Attempt:      pa.GetAttempt(),
		WorkerSilent: silence.Note(pa, now),
	}
	if f := pa.GetLastFailure(); f != nil {
		p.LastFailure = f.GetMessage()
		if cause := f.GetCause(); cause != nil && cause.GetMessage() != "" && cause.GetMessage() != p.LastFailure {
			p.LastFailure += ": " + cause.GetMessage()
		}
	}
	var hb dbmigrateapi.ChunkProgress
	if pa.GetHeartbeatDetails() != nil && c.dc.FromPayloads(pa.GetHeartbeatDetails(), &hb) == nil && !hb.LastCommit.IsZero() {
		p.Batch, p.LastCommit = hb.Cursor.BatchNumber, hb.LastCommit
		p.Stalled = now.Sub(hb.LastCommit) > stallAfter
	} else {
		p.Stalled = pa.GetAttempt() > 1
	}
	return p
}
