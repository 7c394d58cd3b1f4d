package emailjob_test

import (
	"context"
	"testing"
	"time"

	"github.com/cutover/cutover/activities/emailjob"
	"github.com/cutover/cutover/internal/testing/testenv"
)

// TestPurgeKeepsAHeartbeat: the refused-start purge heartbeats while it deletes (here a delete
// slower than three heartbeat timeouts), so a workflow can give it a heartbeat timeout of
// seconds and a worker killed inside it holds the job that long, not the one-minute timeout.
func TestPurgeKeepsAHeartbeat(t *testing.T) {
	t.Parallel()
	a := &emailjob.Activities{Purge: func(ctx context.Context, _ emailjob.RefusedStart) error {
		select {
		case <-time.After(1500 * time.Millisecond):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}}
	err := testenv.RunWithHeartbeatTimeout(t, a, a.PurgeRefusedStart, 400*time.Millisecond,
		emailjob.RefusedStart{WorkflowID: "email-job-1", RunID: "r"})
	if err != nil {
		t.Fatalf("a live purge slower than its heartbeat timeout: %v", err)
	}
}
