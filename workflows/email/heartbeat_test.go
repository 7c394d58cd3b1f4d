package email

import (
	"testing"
	"time"

	"github.com/cutover/cutover/workflows/email/emailapi"
)

// Every mailbox activity has a heartbeat timeout: a preflight or verify lost with its worker
// used to wait for its start-to-close timeout (1 h, 12 h) before Temporal retried it; found by
// workflows/email/faults (SIGKILL during the final sync's verification).
func TestEveryMailboxActivityHasAHeartbeatTimeout(t *testing.T) {
	for _, kind := range []emailapi.TaskKind{emailapi.TaskPreflight, emailapi.TaskSync, emailapi.TaskVerify} {
		if got := mailboxActivityOptions(emailapi.Task{Kind: kind}).HeartbeatTimeout; got != defaultHeartbeatTimeout {
			t.Errorf("%s: heartbeat timeout %v, want %v", kind, got, defaultHeartbeatTimeout)
		}
		if got := mailboxActivityOptions(emailapi.Task{Kind: kind, HeartbeatTimeout: 3 * time.Second}).HeartbeatTimeout; got != 3*time.Second {
			t.Errorf("%s: tuned heartbeat timeout %v, want 3s", kind, got)
		}
	}
	// The job's tuning reaches every task it builds.
	w := &jobRun{spec: testSpec(1).WithDefaults(), st: &State{}, tuning: Tuning{HeartbeatTimeout: 4 * time.Second}}
	if got := w.task(emailapi.TaskVerify, "", "").HeartbeatTimeout; got != 4*time.Second {
		t.Errorf("task heartbeat timeout %v, want the tuning's 4s", got)
	}
}
