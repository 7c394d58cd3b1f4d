// Package email holds the email migration workflows: EmailMigrationWorkflow (one per job,
// seed 000's phases and gate, seed 003's plan), MailboxWaveWorkflow (one pass over all of a
// job's mailboxes, bounded concurrency, continue-as-new) and MailboxSyncWorkflow (one pass of
// one mailbox). Deterministic code only: the IMAP work is activities/mail's, the bookkeeping
// activities/emailjob's.
//
// This file is what clients (the cutover CLI, the temporal CLI, upstream services) need:
// names, ids and the payloads of signals, updates and the status query.
package email

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/email/gate"
)

// Workflow type names.
const (
	WorkflowName        = "EmailMigrationWorkflow"
	WaveWorkflowName    = "MailboxWaveWorkflow"
	MailboxWorkflowName = "MailboxSyncWorkflow"
)

// Signal and update names; each is both a signal (fire and forget; a refused one is logged and
// listed in the status) and an update of the same name whose validator rejects it with the
// reason before anything is recorded.
const (
	Approve             = "approve"               // Request{By, Note}: the ops lead's approval
	DNSCutoverConfirmed = "dns_cutover_confirmed" // Request{By, At}: DNS/MX now point at the destination
	Retry               = "retry"                 // Request{By}: resume a failed job from its failed phase
	Abort               = "abort"                 // Request{By, Note}: stop the job (phase failed, restartable)
	SetCutoverTime      = "set_cutover_time"      // Request{By, At}: the migration hour; At null clears it
	Close               = "close"                 // Request{By, Note}: close a verified job before the soak ends
	PresyncNow          = "presync_now"           // Request{By}: run a presync now instead of waiting
)

// Commands lists every signal/update name.
var Commands = []string{Approve, DNSCutoverConfirmed, Retry, Abort, SetCutoverTime, Close, PresyncNow}

// QueryStatus is the query returning Status.
const QueryStatus = "status"

// WorkflowID is the job workflow's id: one running execution per job.
func WorkflowID(jobID int64) string { return fmt.Sprintf("email-job-%d", jobID) }

// MailboxWorkflowID is a mailbox pass's id; passes of one mailbox never overlap.
func MailboxWorkflowID(jobID int64, email string) string {
	return fmt.Sprintf("email-mailbox-%d-%s", jobID, email)
}

// WaveWorkflowID is the id of the seq-th pass over a job's mailboxes.
func WaveWorkflowID(jobID int64, seq int) string { return fmt.Sprintf("email-wave-%d-%d", jobID, seq) }

// Request is the payload of every signal and update, e.g. {"by": "ops-lead-7", "note": "ok"}.
type Request struct {
	By   string     `json:"by"`
	Note string     `json:"note,omitempty"`
	At   *time.Time `json:"at,omitempty"` // dns_cutover_confirmed: when DNS was switched (default now); set_cutover_time: the hour
}

// Ack is an update's result.
type Ack struct {
	Phase   model.Phase `json:"migration_phase"`
	Gate    model.Gate  `json:"migration_gate"`
	Message string      `json:"message"`
}

// Status is the `status` query's answer: the seed's ticket payload first, then detail.
type Status struct {
	JobID       int64       `json:"migration_job_id"`
	Phase       model.Phase `json:"migration_phase"`
	Gate        model.Gate  `json:"migration_gate"`
	SyncPercent float64     `json:"migration_sync_percent"`

	Domain      string      `json:"domain"`
	TenantID    int64       `json:"tenant_id"`
	State       string      `json:"state"` // running | waiting | failed | aborted | completed
	FailedPhase model.Phase `json:"failed_phase,omitempty"`
	LastError   string      `json:"last_error,omitempty"`

	Mailboxes      int                           `json:"mailboxes"`
	MailboxCounts  map[model.MailboxStatus]int64 `json:"mailbox_counts,omitempty"`
	MailboxDetails []MailboxProgress             `json:"mailbox_progress,omitempty"` // every mailbox of small jobs; failing ones of large jobs

	Checks     []gate.Check `json:"checks,omitempty"`
	ApprovedBy string       `json:"approved_by,omitempty"`
	ApprovedAt *time.Time   `json:"approved_at,omitempty"`

	CutoverAt    *time.Time `json:"cutover_at,omitempty"` // the planned migration hour
	DNSCutoverAt *time.Time `json:"dns_cutover_at,omitempty"`
	DNSCutoverBy string     `json:"dns_cutover_by,omitempty"`

	Presyncs                  int        `json:"presyncs"`
	NextPresyncAt             *time.Time `json:"next_presync_at,omitempty"`
	LastPass                  *PassInfo  `json:"last_pass,omitempty"`
	CurrentPass               *PassInfo  `json:"current_pass,omitempty"`
	PredictedFinalSyncSeconds float64    `json:"predicted_final_sync_seconds"`

	Preflight     *PreflightInfo `json:"preflight,omitempty"`
	Verify        *VerifyInfo    `json:"verify,omitempty"`
	FinalRounds   int            `json:"final_sync_rounds"`
	VerifiedAt    *time.Time     `json:"verified_at,omitempty"`
	SoakEndsAt    *time.Time     `json:"soak_ends_at,omitempty"`
	PostSyncs     int            `json:"post_syncs"`
	ClosedBy      string         `json:"closed_by,omitempty"`
	Refused       []string       `json:"refused,omitempty"` // the latest refused signals, with the reason
	ContinuedRuns int            `json:"continued_runs"`    // continue-as-new count
}

// MailboxProgress is one mailbox in the status.
type MailboxProgress struct {
	Email          string              `json:"email"`
	Status         model.MailboxStatus `json:"status"`
	MessagesSource int64               `json:"messages_source"`
	MessagesDest   int64               `json:"messages_dest"`
	SyncPercent    float64             `json:"sync_percent"`
	Quarantined    int64               `json:"quarantined,omitempty"`
	Pending        int64               `json:"pending,omitempty"`
	LastError      string              `json:"last_error,omitempty"`
	LastRun        model.RunType       `json:"last_run"`
}

// PassInfo describes one pass over the job's mailboxes.
type PassInfo struct {
	RunType     model.RunType `json:"run_type"`
	Mode        string        `json:"mode,omitempty"`
	WorkflowID  string        `json:"workflow_id"`
	Started     time.Time     `json:"started"`
	Finished    *time.Time    `json:"finished,omitempty"`
	Seconds     float64       `json:"seconds,omitempty"`
	Mailboxes   int64         `json:"mailboxes,omitempty"`
	Failed      int64         `json:"failed,omitempty"`
	Transferred int64         `json:"transferred,omitempty"`
	Deleted     int64         `json:"deleted,omitempty"`
	Pending     int64         `json:"pending,omitempty"`
	Canceled    bool          `json:"canceled,omitempty"`
	Runs        int           `json:"runs,omitempty"` // wave executions (continue-as-new keeps each history small)
}

// PreflightInfo sums the preflight of every mailbox.
type PreflightInfo struct {
	Messages int64    `json:"messages"`
	Bytes    int64    `json:"bytes"`
	Warnings []string `json:"warnings,omitempty"`
}

// VerifyInfo sums the last verification.
type VerifyInfo struct {
	Missing     int64    `json:"missing"`
	Extra       int64    `json:"extra"`
	Quarantined int64    `json:"quarantined"`
	OK          bool     `json:"ok"`
	Samples     []string `json:"samples,omitempty"`
}

// WorkflowRegistry is where RegisterWorkflows adds the workflows (a worker, a replayer, a test
// environment).
type WorkflowRegistry interface {
	RegisterWorkflowWithOptions(w any, options workflow.RegisterOptions)
}

// RegisterWorkflows registers the three email workflows under their names. Their activities
// are activities/mail's and activities/emailjob's, registered beside them.
func RegisterWorkflows(r WorkflowRegistry) {
	r.RegisterWorkflowWithOptions(EmailMigrationWorkflow, workflow.RegisterOptions{Name: WorkflowName})
	r.RegisterWorkflowWithOptions(MailboxWaveWorkflow, workflow.RegisterOptions{Name: WaveWorkflowName})
	r.RegisterWorkflowWithOptions(MailboxSyncWorkflow, workflow.RegisterOptions{Name: MailboxWorkflowName})
}
