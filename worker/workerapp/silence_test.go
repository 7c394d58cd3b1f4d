package workerapp

import (
	"testing"

	workflowpb "go.temporal.io/api/workflow/v1"
)

// A silent activity's note names its mailbox and wave when the wave gave it the mailbox's
// address as its id, and only its workflow when the SDK numbered it.
func TestSilentActivityNamesItsMailbox(t *testing.T) {
	for _, tc := range []struct {
		activityID, want string
	}{
		{"alice@example.com", "alice@example.com` in `email-wave-7-2"},
		{"12", "email-wave-7-2"},
		{"", "email-wave-7-2"},
	} {
		got := whose("email-wave-7-2", &workflowpb.PendingActivityInfo{ActivityId: tc.activityID})
		if got != tc.want {
			t.Errorf("whose(activity id %q) = %q, want %q", tc.activityID, got, tc.want)
		}
	}
}
