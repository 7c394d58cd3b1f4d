package email

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"
)

// failedTimerChange is the GetVersion change id of the timer a failed job waits on: runs
// recorded before it waited without one and replay that way.
const failedTimerChange = "failed-timer-summary"

// failedReminder is how long one timer of a failed job runs before the next takes over: the
// Temporal UI shows the pending timer's summary (what failed, what to send) on the job's page.
const failedReminder = 7 * 24 * time.Hour

// maxTimerSummary keeps a timer's summary well inside the server's limit for user metadata.
const maxTimerSummary = 300

// awaitRetry blocks a failed job until the retry command arrives.
func (w *jobRun) awaitRetry(ctx workflow.Context) error {
	st := w.st
	requested := func() bool { return st.RetryRequested != nil }
	if workflow.GetVersion(ctx, failedTimerChange, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return workflow.Await(ctx, requested)
	}
	for {
		ok, err := workflow.AwaitWithOptions(ctx, workflow.AwaitOptions{
			Timeout:      failedReminder,
			TimerOptions: workflow.TimerOptions{Summary: failedSummary(st.JobID, string(st.FailedPhase), st.LastError)},
		}, requested)
		if err != nil || ok {
			return err
		}
	}
}

// failedSummary is the one line a failed job's timer carries: "failed: <cause>, next: …".
func failedSummary(job int64, phase, cause string) string {
	next := fmt.Sprintf(", next: cutover email retry %d", job)
	head := "failed in " + phase + ": "
	room := maxTimerSummary - len(head) - len(next)
	cause = strings.Join(strings.Fields(cause), " ")
	if len(cause) > room {
		cause = strings.ToValidUTF8(cause[:room-len("…")], "") + "…"
	}
	return head + cause + next
}
