package workerapp

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// TestEntityAttemptsReachTheMigration: every failed attempt of an activity run by an entity
// workflow is signalled to its migration (the id before the slash) with the entity, the
// activity, the attempt and the error; the last allowed attempt is marked final. Activities
// of other workflows are not reported.
func TestEntityAttemptsReachTheMigration(t *testing.T) {
	for _, tc := range []struct {
		name       string
		workflowID string
		wfType     string
		want       []dbmigrateapi.EntityAttempt
	}{
		{"entity", "db-migration-m1/patients", dbmigrateapi.EntityWorkflowName, []dbmigrateapi.EntityAttempt{
			{Entity: "patients", Activity: "CopyBatch", Attempt: 1, Type: "TargetUnavailable", Message: "connect: connection refused"},
			{Entity: "patients", Activity: "CopyBatch", Attempt: 2, Type: "TargetUnavailable", Message: "connect: connection refused"},
			{Entity: "patients", Activity: "CopyBatch", Attempt: 3, Type: "TargetUnavailable", Message: "connect: connection refused"},
		}},
		{"entity, not retryable", "db-migration-m1/visits", dbmigrateapi.EntityWorkflowName, []dbmigrateapi.EntityAttempt{
			{Entity: "visits", Activity: "CopyBatch", Attempt: 1, Type: "BadSpec", Message: "no column x", Final: true},
		}},
		{"another workflow", "email-job-7", "EmailMigrationWorkflow", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var got []dbmigrateapi.EntityAttempt
			var to []string
			rec := &entityAttempts{signal: func(_ context.Context, id, name string, arg any) error {
				mu.Lock()
				defer mu.Unlock()
				if name != dbmigrateapi.SignalEntityAttempt {
					t.Errorf("signal %q", name)
				}
				to = append(to, id)
				got = append(got, arg.(dbmigrateapi.EntityAttempt))
				return nil
			}}
			var s testsuite.WorkflowTestSuite
			env := s.NewTestWorkflowEnvironment()
			env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{rec}})
			env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: tc.workflowID})
			copyBatch := func(context.Context) error {
				if len(tc.want) == 1 {
					return temporal.NewNonRetryableApplicationError("no column x", "BadSpec", nil)
				}
				return temporal.NewApplicationError("connect: connection refused", "TargetUnavailable")
			}
			env.RegisterActivityWithOptions(copyBatch, activity.RegisterOptions{Name: "CopyBatch"})
			env.RegisterWorkflowWithOptions(func(ctx workflow.Context) error {
				ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute,
					RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 3}})
				return workflow.ExecuteActivity(ctx, "CopyBatch").Get(ctx, nil)
			}, workflow.RegisterOptions{Name: tc.wfType})
			env.ExecuteWorkflow(tc.wfType)
			var ae *temporal.ApplicationError
			if err := env.GetWorkflowError(); !errors.As(err, &ae) {
				t.Fatalf("workflow error: %v", err)
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.IgnoreFields(dbmigrateapi.EntityAttempt{}, "At")); diff != "" {
				t.Errorf("reported attempts (-want +got):\n%s", diff)
			}
			for _, id := range to {
				if id != "db-migration-m1" {
					t.Errorf("signalled %q, want the migration db-migration-m1", id)
				}
			}
		})
	}
}

// TestEntityAttemptFinal: an attempt is final when the retry policy allows no more attempts,
// or names its error type as not retryable.
func TestEntityAttemptFinal(t *testing.T) {
	policy := &temporal.RetryPolicy{MaximumAttempts: 8, NonRetryableErrorTypes: []string{"BadSpec"}}
	for _, tc := range []struct {
		attempt int32
		err     error
		want    bool
	}{
		{7, temporal.NewApplicationError("refused", "TargetUnavailable"), false},
		{8, temporal.NewApplicationError("refused", "TargetUnavailable"), true},
		{1, temporal.NewApplicationError("no column", "BadSpec"), true},
		{1, errors.New("plain"), false},
	} {
		info := activity.Info{Attempt: tc.attempt, RetryPolicy: policy, ActivityType: activity.Type{Name: "CopyBatch"}}
		if got := entityAttempt(info, "patients", tc.err).Final; got != tc.want {
			t.Errorf("attempt %d, %v: final %v, want %v", tc.attempt, tc.err, got, tc.want)
		}
	}
}
