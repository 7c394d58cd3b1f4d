package dbmigrate

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	sdkpb "go.temporal.io/api/sdk/v1"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// TestEntityRetriesShowOnTheMigrationPage: a failed attempt of an entity workflow's activity,
// reported by the worker, shows in the migration's current details (the Temporal UI's page)
// and status with the entity, the activity, the attempt and the error, until the entity's
// workflow ends. The migration's handlers carry their descriptions.
func TestEntityRetriesShowOnTheMigrationPage(t *testing.T) {
	rec := &recorder{copyDelay: time.Hour}
	env := newEnv(t, rec)
	var during string
	var md sdkpb.WorkflowMetadata
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(dbmigrateapi.SignalEntityAttempt, dbmigrateapi.EntityAttempt{Entity: "offices",
			Activity: "DBCopyChunk", Attempt: 3, Type: "TargetUnavailable", Message: "dial tcp 127.0.0.1:5432: connection refused"})
		env.SignalWorkflow(dbmigrateapi.SignalEntityAttempt, dbmigrateapi.EntityAttempt{Entity: "projects",
			Activity: "DBCopyChunk", Attempt: 1, Message: "not running: ignored"})
	}, 10*time.Minute)
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow("__temporal_workflow_metadata")
		if err != nil {
			t.Error(err)
			return
		}
		if err := v.Get(&md); err != nil {
			t.Error(err)
		}
		during = md.GetCurrentDetails()
	}, 20*time.Minute)
	env.ExecuteWorkflow(dbmigrateapi.WorkflowName, testInput(t, model.MigrationFull, dbmigrateapi.Config{}))
	st := result(t, env)
	want := "⚠ retrying entity `offices` (DBCopyChunk, attempt 3): TargetUnavailable: dial tcp 127.0.0.1:5432: connection refused"
	if !strings.Contains(during, want) {
		t.Errorf("details while offices retries lack %q:\n%s", want, during)
	}
	if strings.Contains(during, "projects` (") {
		t.Errorf("an attempt of an entity not running is shown:\n%s", during)
	}
	if len(st.Retrying) != 0 || strings.Contains(Details(&st), "retrying") {
		t.Errorf("attempts kept after the entities ended: %+v", st.Retrying)
	}
	got := map[string]string{}
	for _, defs := range [][]*sdkpb.WorkflowInteractionDefinition{md.GetDefinition().GetSignalDefinitions(),
		md.GetDefinition().GetUpdateDefinitions(), md.GetDefinition().GetQueryDefinitions()} {
		for _, d := range defs {
			if !strings.HasPrefix(d.GetName(), "__") {
				got[d.GetName()] = d.GetDescription()
			}
		}
	}
	wantDesc := map[string]string{}
	for name := range got {
		wantDesc[name] = dbmigrateapi.Descriptions[name]
		if wantDesc[name] == "" {
			t.Errorf("handler %s has no description", name)
		}
	}
	if diff := cmp.Diff(wantDesc, got); diff != "" {
		t.Errorf("handler descriptions (-want +got):\n%s", diff)
	}
	if len(got) < 9 {
		t.Errorf("only %d handlers in the metadata: %v", len(got), got)
	}
}
