package dbmigrate

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.temporal.io/sdk/testsuite"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// TestOperatorRequestsRecordTheirReason: every request an operator sends a running migration
// with a reason (a schema change's approval, as the update, a re-drive of quarantined rows, the
// cutover, the close) is in its state, oldest first, and written to its ledger once each under
// its own id; a refused one (a close before the reverse flow) is recorded nowhere.
func TestOperatorRequestsRecordTheirReason(t *testing.T) {
	rec := &recorder{}
	env := newEnv(t, rec)
	mockReverse(env, rec)
	in := capturedInput(t, dbmigrateapi.Config{SyncInterval: time.Hour})
	in.Spec.Target.ReverseFlow = true
	in.Spec.SchemaOps = []spec.SchemaOp{{Name: "drop-name", Type: string(model.OpDropColumn), Table: "offices", Column: "name"}}
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(dbmigrateapi.UpdateApprove, "approve", &testsuite.TestUpdateCallback{
			OnReject: func(err error) { t.Errorf("approval refused: %v", err) },
			OnAccept: func() {}, OnComplete: func(any, error) {},
		}, dbmigrateapi.Approval{Operation: "drop-name", ApprovedBy: "dba", Reason: "column unused since v3"})
	}, 20*time.Minute)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(dbmigrateapi.SignalRetry, dbmigrateapi.RetryRequest{Entity: "profiles", RequestedBy: "ops",
			Reason: "email column widened"})
		env.SignalWorkflow(dbmigrateapi.SignalClose, dbmigrateapi.CloseRequest{RequestedBy: "early", Reason: "too soon"})
	}, 90*time.Minute)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(dbmigrateapi.SignalCutover, dbmigrateapi.CutoverRequest{RequestedBy: "ops",
			Reason: "maintenance window 02:00"})
	}, 2*time.Hour+30*time.Minute)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(dbmigrateapi.SignalClose, dbmigrateapi.CloseRequest{RequestedBy: "ops", Reason: "app stable on PostgreSQL"})
	}, 6*time.Hour)
	env.ExecuteWorkflow(dbmigrateapi.WorkflowName, in)
	st := result(t, env)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	want := []dbmigrateapi.RequestRecord{
		{Request: dbmigrateapi.SignalApprove, Subject: "drop-name", RequestedBy: "dba", Reason: "column unused since v3"},
		{Request: dbmigrateapi.SignalRetry, Subject: "profiles", RequestedBy: "ops", Reason: "email column widened"},
		{Request: dbmigrateapi.SignalCutover, RequestedBy: "ops", Reason: "maintenance window 02:00"},
		{Request: dbmigrateapi.SignalClose, RequestedBy: "ops", Reason: "app stable on PostgreSQL"},
	}
	noTime := cmpopts.IgnoreFields(dbmigrateapi.RequestRecord{}, "At")
	if d := cmp.Diff(want, st.Requests, noTime); d != "" {
		t.Errorf("the state's requests (-want +got):\n%s", d)
	}
	var ledger []dbmigrateapi.RequestRecord
	ids := map[string]bool{}
	for _, r := range rec.requests {
		ledger = append(ledger, r.Request)
		ids[r.ID] = true
		if r.Migration.ID != in.MigrationID {
			t.Errorf("request %s recorded for migration %q, want %q", r.Request.Request, r.Migration.ID, in.MigrationID)
		}
	}
	if d := cmp.Diff(want, ledger, noTime); d != "" {
		t.Errorf("the requests written to the ledger (-want +got):\n%s", d)
	}
	if len(ids) != len(rec.requests) {
		t.Errorf("%d requests recorded under %d ids: %+v", len(rec.requests), len(ids), rec.requests)
	}
	for i, r := range st.Requests {
		if r.At.IsZero() || (i > 0 && r.At.Before(st.Requests[i-1].At)) {
			t.Errorf("request %d at %v (after %v): want when it was accepted, oldest first", i, r.At, st.Requests)
		}
	}
	if d := Details(&st); !strings.Contains(d, "last request: close by ops at ") ||
		!strings.Contains(d, ": app stable on PostgreSQL") {
		t.Errorf("the current details do not show the last request:\n%s", d)
	}
}
