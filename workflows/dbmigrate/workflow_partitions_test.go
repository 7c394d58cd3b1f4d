package dbmigrate

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"

	"github.com/cutover/cutover/activities/dbcopy"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// TestOpenMigrationKeepsMakingPartitions: a cut-over migration that stays open (the reverse
// flow, until `db close`) makes its partitioned tables' coming months once a day, so the
// application's rows keep finding their partition however long the operator waits to close.
// Three days open: three upkeeps, the months they made in the status; none after the close.
func TestOpenMigrationKeepsMakingPartitions(t *testing.T) {
	rec := &recorder{}
	env := newEnv(t, rec)
	mockReverse(env, rec)
	var a *dbcopy.Activities
	month := 0
	env.OnActivity(a.DBKeepPartitions, mock.Anything, mock.Anything).Return(func(context.Context, dbcopy.Migration) (dbcopy.PartitionsResult, error) {
		rec.log("keep-partitions")
		month++
		if month == 2 { // a new month begins on the second day
			return dbcopy.PartitionsResult{Created: []string{"projects_2026_04"}}, nil
		}
		return dbcopy.PartitionsResult{}, nil
	})
	in := capturedInput(t, dbmigrateapi.Config{SyncInterval: 6 * time.Hour})
	in.Spec.Target.ReverseFlow = true
	projects := &in.Spec.Entities[3]
	projects.Columns = append(projects.Columns, spec.Column{Source: "created_at", Target: "created_at", Type: "timestamptz"})
	projects.Partition = &spec.Partition{Column: "created_at", Interval: "month"}
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(dbmigrateapi.SignalCutover, dbmigrateapi.CutoverRequest{RequestedBy: "ops"})
	}, 2*time.Hour+30*time.Minute)
	env.RegisterDelayedCallback(func() {
		rec.log("close")
		env.SignalWorkflow(dbmigrateapi.SignalClose, dbmigrateapi.CloseRequest{RequestedBy: "ops"})
	}, 3*24*time.Hour+4*time.Hour)
	env.ExecuteWorkflow(dbmigrateapi.WorkflowName, in)
	st := result(t, env)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if st.Status != model.OrchCompleted {
		t.Fatalf("status %s", st.Status)
	}
	upkeeps := 0
	for _, ev := range rec.events {
		if ev == "keep-partitions" {
			upkeeps++
		}
	}
	if upkeeps != 3 {
		t.Errorf("%d partition upkeeps in three days open, want 3: %v", upkeeps, rec.events)
	}
	if i := rec.index("keep-partitions"); i >= 0 && i < rec.index("install-reverse") {
		t.Errorf("an upkeep ran before the cutover: %v", rec.events)
	}
	if st.Partitions == nil {
		t.Errorf("st.Partitions is nil; the status does not show what the upkeep made: %+v", st.Partitions)
	} else if len(st.Partitions.Created) != 1 {
		t.Errorf("len(st.Partitions.Created) = %v, want 1; the status does not show what the upkeep made: %+v",
			len(st.Partitions.Created), st.Partitions)
	} else if st.Partitions.Created[0] != "projects_2026_04" {
		t.Errorf("st.Partitions.Created[0] = %v, want \"projects_2026_04\"; the status does not show what the upkeep made: %+v",
			st.Partitions.Created[0], st.Partitions)
	}
}

// TestUnpartitionedMigrationHasNoUpkeep: without a partitioned entity nothing is scheduled.
func TestUnpartitionedMigrationHasNoUpkeep(t *testing.T) {
	rec := &recorder{}
	env := newEnv(t, rec)
	mockReverse(env, rec)
	in := capturedInput(t, dbmigrateapi.Config{SyncInterval: 6 * time.Hour})
	in.Spec.Target.ReverseFlow = true
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(dbmigrateapi.SignalCutover, dbmigrateapi.CutoverRequest{RequestedBy: "ops"})
	}, 2*time.Hour+30*time.Minute)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(dbmigrateapi.SignalClose, dbmigrateapi.CloseRequest{RequestedBy: "ops"})
	}, 2*24*time.Hour)
	env.ExecuteWorkflow(dbmigrateapi.WorkflowName, in)
	st := result(t, env)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if st.Status != model.OrchCompleted {
		t.Errorf("st.Status: want model.OrchCompleted; status %s, partition upkeep %+v; want completed without upkeep",
			st.Status, st.Partitions)
	} else if st.Partitions != nil {
		t.Errorf("st.Partitions: want nil; status %s, partition upkeep %+v; want completed without upkeep",
			st.Status, st.Partitions)
	}
}
