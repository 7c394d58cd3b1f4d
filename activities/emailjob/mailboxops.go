package emailjob

import (
	"context"
	"time"

	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/workflows/email/emailapi"
	"github.com/cutover/cutover/workflows/email/gate"
)

// applyMailboxOps writes the operations in order; an email the job does not have is logged
// and ignored (the workflow validated what it could without PostgreSQL).
func (a *Activities) applyMailboxOps(ctx context.Context, st *store.Store, jobID int64, ops []emailapi.MailboxOp) error {
	for _, op := range ops {
		var found bool
		var err error
		switch op.Op {
		case emailapi.OpSkip:
			found, err = st.SkipMailbox(ctx, jobID, op.Email, op.By, op.Reason, op.At)
		case emailapi.OpUnskip:
			found, err = st.UnskipMailbox(ctx, jobID, op.Email)
		case emailapi.OpCredentials:
			found, err = st.SetMailboxCredentials(ctx, jobID, op.Email, op.Side, op.Ref)
		default:
			a.logger().WarnContext(ctx, "unknown mailbox operation ignored", "job_id", jobID, "op", op.Op)
			continue
		}
		if err != nil {
			return err
		}
		if !found {
			a.logger().WarnContext(ctx, "mailbox operation for a mailbox the job does not have", "job_id", jobID,
				"op", op.Op, "mailbox", op.Email)
		}
	}
	return nil
}

// checkRows turns a gate evaluation into migration_gate_checks rows, reviews included.
func checkRows(cs []gate.Check, now time.Time) []store.GateCheck {
	rows := make([]store.GateCheck, len(cs))
	for i, c := range cs {
		rows[i] = store.GateCheck{CheckID: c.ID, Status: c.Status, Message: c.Message, CheckedAt: now}
		if by, at, why := c.AcceptedBy(); by != "" {
			rows[i].AcceptedBy, rows[i].AcceptedAt, rows[i].AcceptReason = &by, &at, &why
		}
	}
	return rows
}
