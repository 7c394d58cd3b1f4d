package dbmigrate

import (
	"errors"
	"testing"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// TestEveryActivityRetryIsBounded: every activity options the db workflows use carries a
// maximum number of attempts.
func TestEveryActivityRetryIsBounded(t *testing.T) {
	for name, o := range map[string]workflow.ActivityOptions{
		"copy":        copyOptions(dbmigrateapi.Config{}.WithDefaults()),
		"short":       shortOptions(dbmigrateapi.Config{}.WithDefaults()),
		"bookkeeping": bookkeepingOptions(),
	} {
		if o.RetryPolicy == nil {
			t.Errorf("o.RetryPolicy is nil; %s activities retry without end: %+v", name, o.RetryPolicy)
		} else if o.RetryPolicy.MaximumAttempts <= 0 {
			t.Errorf("o.RetryPolicy.MaximumAttempts = %v, want > 0; %s activities retry without end: %+v",
				o.RetryPolicy.MaximumAttempts, name, o.RetryPolicy)
		}
	}
}

// TestFailingCopyEndsTheMigration: a copy activity that fails every attempt with a retryable
// error (what a batch failing on its own data used to do) is retried copyAttempts times, then
// the migration fails with the cause, instead of showing "running" for ever. (The test
// environment stops a policy without a bound after 10 attempts; the dev-server test
// TestEndedMigrationsHoldNoTargetConnections reads the policy in real histories.)
func TestFailingCopyEndsTheMigration(t *testing.T) {
	rec := &recorder{copyErr: errors.New("batch offices/0: mappings: duplicate key value (SQLSTATE 23505)")}
	env := newEnv(t, rec)
	env.SetTestTimeout(time.Minute)
	env.ExecuteWorkflow(dbmigrateapi.WorkflowName, testInput(t, model.MigrationFull, dbmigrateapi.Config{}))
	st := result(t, env)
	if st.Status != model.OrchFailed {
		t.Fatalf("status %s, want failed (error %q)", st.Status, st.Error)
	}
	// Two entities copy at once; the first to exhaust its attempts fails the migration and
	// the other is cancelled.
	rec.mu.Lock()
	attempts := 0
	for _, n := range rec.chunks {
		attempts = max(attempts, n)
	}
	rec.mu.Unlock()
	if attempts != copyAttempts {
		t.Errorf("the copy ran %d times, want %d", attempts, copyAttempts)
	}
}
