// Package silence says when a running activity's worker has stopped heartbeating: the note an
// operator sees in `cutover db status`, the email watch and (through the worker's watcher, which
// signals it to the migration) the Temporal UI's current details of the migration.
package silence

import (
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflow/v1"
)

// Note says, for a running activity whose worker has not heartbeated for longer than a live
// worker's heartbeats are apart (the SDK sends one every 80% of the timeout at most), that
// Temporal is waiting for the heartbeat timeout before running it on another worker; and, for
// an activity whose last attempt ended in a heartbeat timeout, that its retry waits for a
// worker. "" otherwise. A worker that was SIGKILLed or lost its host shows here until another
// worker runs the activity.
func Note(pa *workflow.PendingActivityInfo, now time.Time) string {
	timeout := pa.GetActivityOptions().GetHeartbeatTimeout().AsDuration()
	if timeout <= 0 {
		return ""
	}
	worker, _, _ := strings.Cut(pa.GetLastWorkerIdentity(), "@")
	switch pa.GetState() {
	case enumspb.PENDING_ACTIVITY_STATE_SCHEDULED:
		f := pa.GetLastFailure().GetTimeoutFailureInfo()
		if f == nil || f.GetTimeoutType() != enumspb.TIMEOUT_TYPE_HEARTBEAT || worker == "" {
			return ""
		}
		return fmt.Sprintf("worker %s stopped heartbeating (heartbeat timeout %s): attempt %d waits for another worker",
			worker, timeout, pa.GetAttempt())
	case enumspb.PENDING_ACTIVITY_STATE_STARTED:
	default:
		return ""
	}
	last := pa.GetLastHeartbeatTime()
	if last == nil || !last.IsValid() || last.AsTime().Unix() <= 0 || pa.GetLastStartedTime().AsTime().After(last.AsTime()) {
		last = pa.GetLastStartedTime()
	}
	if last == nil || !last.IsValid() || last.AsTime().Unix() <= 0 {
		return ""
	}
	silent := now.Sub(last.AsTime())
	if silent <= timeout*4/5+time.Second {
		return ""
	}
	return fmt.Sprintf("no heartbeat from worker %s for %s (heartbeat timeout %s): waiting for the timeout, then another worker runs it",
		worker, silent.Round(time.Second), timeout)
}

// Signal is the signal a worker sends a migration (the email job, the database orchestration)
// whose activities, or its children's, have a silent worker, and again when none has.
const Signal = "worker_silent"

// SignalDescription is the signal's description in the Temporal UI.
const SignalDescription = "Sent by a cutover worker: activities of this migration whose worker stopped heartbeating " +
	"(empty when none); shown in the current details."

// Report is Signal's payload: one line per silent activity, "" for none.
type Report struct {
	Notes []string `json:"notes"`
}

// Details is the current details' paragraph of a report ("" without notes).
func (r Report) Details() string {
	if len(r.Notes) == 0 {
		return ""
	}
	return "\n\n⏳ " + strings.Join(r.Notes, "\n\n⏳ ")
}
