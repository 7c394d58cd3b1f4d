package silence

import (
	"strings"
	"testing"
	"time"

	activitypb "go.temporal.io/api/activity/v1"
	enumspb "go.temporal.io/api/enums/v1"
	failurepb "go.temporal.io/api/failure/v1"
	"go.temporal.io/api/workflow/v1"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestNoteNamesAWorkerPastItsHeartbeats(t *testing.T) {
	now := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	pa := func(state enumspb.PendingActivityState, heard time.Duration) *workflow.PendingActivityInfo {
		return &workflow.PendingActivityInfo{
			State:              state,
			LastStartedTime:    timestamppb.New(now.Add(-time.Minute)),
			LastHeartbeatTime:  timestamppb.New(now.Add(-heard)),
			LastWorkerIdentity: "4242@host@",
			ActivityOptions:    &activitypb.ActivityOptions{HeartbeatTimeout: durationpb.New(15 * time.Second)},
		}
	}
	for _, c := range []struct {
		name string
		info *workflow.PendingActivityInfo
		want string
	}{
		{"heartbeating", pa(enumspb.PENDING_ACTIVITY_STATE_STARTED, 10*time.Second), ""},
		{"silent", pa(enumspb.PENDING_ACTIVITY_STATE_STARTED, 14*time.Second), "no heartbeat from worker 4242 for 14s (heartbeat timeout 15s)"},
		{"waiting for a retry", pa(enumspb.PENDING_ACTIVITY_STATE_SCHEDULED, 30*time.Second), ""},
		{"retry after a heartbeat timeout", timedOut(pa(enumspb.PENDING_ACTIVITY_STATE_SCHEDULED, 30*time.Second), enumspb.TIMEOUT_TYPE_HEARTBEAT),
			"worker 4242 stopped heartbeating (heartbeat timeout 15s): attempt 2 waits for another worker"},
		{"retry after another timeout", timedOut(pa(enumspb.PENDING_ACTIVITY_STATE_SCHEDULED, 30*time.Second), enumspb.TIMEOUT_TYPE_START_TO_CLOSE), ""},
	} {
		got := Note(c.info, now)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

// timedOut is pa after its attempt 1 timed out with t.
func timedOut(pa *workflow.PendingActivityInfo, t enumspb.TimeoutType) *workflow.PendingActivityInfo {
	pa.Attempt = 2
	pa.LastFailure = &failurepb.Failure{Message: "activity timeout", FailureInfo: &failurepb.Failure_TimeoutFailureInfo{
		TimeoutFailureInfo: &failurepb.TimeoutFailureInfo{TimeoutType: t}}}
	return pa
}
