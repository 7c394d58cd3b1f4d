// Package dbmigrate holds the database migration workflows: DBMigrationWorkflow, the migration
// orchestration (status pending → running → completed | failed, running → rolling_back →
// pending), and EntityMigrationWorkflow, one child per entity copying batches through the
// dbcopy activities and continuing as new every few activities so a 100M-row table keeps a
// bounded history. Deterministic code only: every effect is an activity.
//
// Clients need only the contract, dbmigrateapi: names, ids and payloads. This file is what a
// worker needs.
package dbmigrate

import (
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// RegisterWorkflows registers DBMigrationWorkflow and EntityMigrationWorkflow under their names.
func RegisterWorkflows(r worker.WorkflowRegistry) {
	r.RegisterWorkflowWithOptions(Workflow, workflow.RegisterOptions{Name: dbmigrateapi.WorkflowName})
	r.RegisterWorkflowWithOptions(EntityWorkflow, workflow.RegisterOptions{Name: dbmigrateapi.EntityWorkflowName})
}
