// Package email holds the email migration workflows: EmailMigrationWorkflow (one per job,
// its phases, the go/no-go gate and the migration plan), MailboxWaveWorkflow (one pass
// over all of a job's mailboxes, bounded concurrency, continue-as-new) and MailboxSyncWorkflow
// (one pass of one mailbox). Deterministic code only: the IMAP work is activities/mail's, the
// bookkeeping activities/emailjob's.
//
// Clients need only the contract, emailapi: names, ids and payloads. This file is what a
// worker needs.
package email

import (
	"go.temporal.io/sdk/workflow"

	"github.com/cutover/cutover/workflows/email/emailapi"
)

// WorkflowRegistry is where RegisterWorkflows adds the workflows (a worker, a replayer, a test
// environment).
type WorkflowRegistry interface {
	RegisterWorkflowWithOptions(w any, options workflow.RegisterOptions)
}

// RegisterWorkflows registers the three email workflows under their names. Their activities
// are activities/mail's and activities/emailjob's, registered beside them.
func RegisterWorkflows(r WorkflowRegistry) {
	r.RegisterWorkflowWithOptions(EmailMigrationWorkflow, workflow.RegisterOptions{Name: emailapi.WorkflowName})
	r.RegisterWorkflowWithOptions(MailboxWaveWorkflow, workflow.RegisterOptions{Name: emailapi.WaveWorkflowName})
	r.RegisterWorkflowWithOptions(MailboxSyncWorkflow, workflow.RegisterOptions{Name: emailapi.MailboxWorkflowName})
}
