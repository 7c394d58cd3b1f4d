package dbmigrate

import (
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// RegisterWorkflows registers DBMigrationWorkflow and EntityMigrationWorkflow under their names.
func RegisterWorkflows(r worker.WorkflowRegistry) {
	r.RegisterWorkflowWithOptions(Workflow, workflow.RegisterOptions{Name: WorkflowName})
	r.RegisterWorkflowWithOptions(EntityWorkflow, workflow.RegisterOptions{Name: EntityWorkflowName})
}
