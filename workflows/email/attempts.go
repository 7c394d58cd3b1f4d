package email

import (
	"fmt"

	"go.temporal.io/sdk/workflow"

	"github.com/cutover/cutover/workflows/email/emailapi"
)

// maxRetrying bounds the failed attempts a job keeps for its status (one per mailbox).
const maxRetrying = 20

// receiveAttempts keeps the latest failed attempt of each mailbox of the running pass, as the
// worker reports them (MailboxAttemptFailed), for the status and the UI's current details.
// Receiving a signal records no command, so histories without it replay unchanged.
func (w *jobRun) receiveAttempts(ctx workflow.Context) {
	ch := workflow.GetSignalChannelWithOptions(ctx, emailapi.MailboxAttemptFailed,
		workflow.SignalChannelOptions{Description: emailapi.Descriptions[emailapi.MailboxAttemptFailed]})
	workflow.Go(ctx, func(gctx workflow.Context) {
		for {
			var a emailapi.AttemptFailed
			if !ch.Receive(gctx, &a) {
				return
			}
			w.noteAttempt(gctx, a)
		}
	})
}

func (w *jobRun) noteAttempt(ctx workflow.Context, a emailapi.AttemptFailed) {
	if w.applyAttempt(ctx, a) {
		w.visibility(ctx)
	}
}

// applyAttempt keeps a failed attempt for the status (false when its pass is already over).
func (w *jobRun) applyAttempt(ctx workflow.Context, a emailapi.AttemptFailed) bool {
	st := w.st
	if st.CurrentPass == nil {
		return false // late: the pass is over and its outcome recorded
	}
	for i, r := range st.Retrying {
		if r.Email == a.Email {
			st.Retrying = append(st.Retrying[:i], st.Retrying[i+1:]...)
			break
		}
	}
	st.Retrying = append(st.Retrying, a)
	if n := len(st.Retrying); n > maxRetrying {
		st.Retrying = st.Retrying[n-maxRetrying:]
	}
	workflow.GetLogger(ctx).Warn("mailbox attempt failed", "job_id", st.JobID, "mailbox", a.Email, "type", a.Type,
		"attempt", a.Attempt, "permanent", a.Permanent)
	return true
}

// retryingDetails is the current details' line about failing attempts ("" when none).
func (w *jobRun) retryingDetails() string {
	rs := w.st.Retrying
	if len(rs) == 0 {
		return ""
	}
	last := rs[len(rs)-1]
	what := "retrying"
	if last.Permanent {
		what = "failed"
	}
	d := fmt.Sprintf("\n\n⚠ %s `%s` (attempt %d): %s: %s", what, last.Email, last.Attempt, last.Type, last.Message)
	if len(rs) > 1 {
		d += fmt.Sprintf(" (and %d more mailbox(es))", len(rs)-1)
	}
	return d
}
