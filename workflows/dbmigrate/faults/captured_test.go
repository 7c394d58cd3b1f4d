package faults_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/client"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// capturedMigration is an incremental migration (change capture) run through the worker
// process on its own task queue and ledger database.
type capturedMigration struct {
	c     client.Client
	w     *testenv.WorkerProcess
	run   client.WorkflowRun
	in    dbmigrateapi.Input
	id    string // the workflow id
	dbURL string // the ledger database
}

// startCapturedMigration starts a worker and an incremental migration of the spec doc that
// syncs every syncInterval; name prefixes the task queue and is the migration's creator.
func startCapturedMigration(t *testing.T, name, doc string, syncInterval time.Duration) *capturedMigration {
	t.Helper()
	sp, err := spec.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	srv := testenv.SharedTemporal(t)
	m := &capturedMigration{c: srv.Client(t), dbURL: testenv.NewDatabase(t)}
	queue := fmt.Sprintf("%s-%d", name, time.Now().UnixNano())
	m.w = startWorker(t, srv.Address(), m.dbURL, queue)
	m.in = dbmigrateapi.Input{
		MigrationID:   uuid.NewString(),
		MigrationType: model.MigrationIncremental,
		CreatedBy:     name,
		Spec:          sp,
		Config:        dbmigrateapi.Config{SyncInterval: syncInterval, HeartbeatTimeout: 3 * time.Second},
	}
	m.run = startMigration(t, m.c, queue, m.in)
	m.id = dbmigrateapi.WorkflowID(m.in.MigrationID)
	return m
}

// status is the migration's status; a query that fails (a worker restarting) reads as the
// zero State.
func (m *capturedMigration) status() dbmigrateapi.State {
	v, err := m.c.QueryWorkflow(context.Background(), m.id, "", dbmigrateapi.QueryStatus)
	if err != nil {
		return dbmigrateapi.State{}
	}
	var st dbmigrateapi.State
	_ = v.Get(&st)
	return st
}

// signal sends the migration a signal.
func (m *capturedMigration) signal(t *testing.T, name string, arg any) {
	t.Helper()
	if err := m.c.SignalWorkflow(context.Background(), m.id, "", name, arg); err != nil {
		t.Fatal(err)
	}
}

// result waits up to timeout for the migration's end.
func (m *capturedMigration) result(t *testing.T, timeout time.Duration) dbmigrateapi.State {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var res dbmigrateapi.State
	if err := m.run.Get(ctx, &res); err != nil {
		t.Fatalf("migration: %v\nworker log:\n%s", err, m.w.LogTail(60))
	}
	return res
}
