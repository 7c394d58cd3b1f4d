// Package emailapi is the contract of the email migration workflows (workflows/email) with their
// clients (the cutover CLI, the temporal CLI, upstream services) and with the engine's
// activities (activities/mail): workflow type names and ids, the names and payloads of signals,
// updates and the status query, and the payloads activities heartbeat and signal. It is a leaf:
// it imports no I/O package, so a client links no IMAP engine, database driver or store.
package emailapi

import (
	"fmt"
	"time"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/notify"
	"github.com/cutover/cutover/workflows/email/gate"
)

// Kind is the MigrationKind search attribute value of email jobs.
const Kind = "email"

// Workflow type names.
const (
	WorkflowName        = "EmailMigrationWorkflow"
	WaveWorkflowName    = "MailboxWaveWorkflow"
	MailboxWorkflowName = "MailboxSyncWorkflow"
)

// RecordJobActivity is the activity type name of emailjob's RecordEmailJob, which writes the
// job's state to PostgreSQL. Recorded histories carry the method's first name, so the worker
// registers it under this name and the workflow schedules it by this name.
const RecordJobActivity = "MirrorEmailJob"

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
	// Skip takes a mailbox out of the job: Request{By, Mailbox, Reason}. No pass runs for it,
	// it leaves the gate, and the rest of the domain goes on.
	Skip = "skip"
	// Unskip brings a skipped mailbox back: Request{By, Mailbox}; the gate waits for its next pass.
	Unskip = "unskip"
	// SetCredentials gives one side of a mailbox a new vault reference: Request{By, Mailbox,
	// Side ("source" or "dest"), CredentialsRef}; the next pass (or retry) uses it.
	SetCredentials = "set_credentials"
)

// Commands lists every signal/update name.
var Commands = []string{Approve, DNSCutoverConfirmed, Retry, Abort, SetCutoverTime, Close, PresyncNow, Skip, Unskip,
	SetCredentials}

// MailboxAttemptFailed is the signal the worker sends the job when an attempt of a mailbox
// activity fails (payload AttemptFailed): the job shows the cause in its status and the
// Temporal UI while Temporal retries, not only once the mailbox has failed.
const MailboxAttemptFailed = "mailbox_attempt_failed"

// AttemptFailed is one failed attempt of a mailbox activity.
type AttemptFailed struct {
	Email     string    `json:"email"`
	Type      string    `json:"type"`    // the error type (AuthFailed, Connect, Unreachable, ...)
	Message   string    `json:"message"` // the cause once, and for permanent failures what to do
	Attempt   int32     `json:"attempt"`
	Permanent bool      `json:"permanent,omitempty"` // no further attempt: the mailbox fails
	At        time.Time `json:"at"`
}

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
	// Accept (approve): warnings reviewed and accepted, "CHECK" or "CHECK:MAILBOX"
	// (e.g. "sent_complete:bob@example.com"), with Reason. A failing check is never accepted.
	Accept []string `json:"accept,omitempty"`
	Reason string   `json:"reason,omitempty"` // approve --accept, skip: why
	// Mailbox: the mailbox a skip, unskip or set_credentials is about.
	Mailbox        string `json:"mailbox,omitempty"`
	Side           string `json:"side,omitempty"`            // set_credentials: source or dest
	CredentialsRef string `json:"credentials_ref,omitempty"` // set_credentials: the vault reference
}

// SkippedMailbox is a mailbox taken out of the job.
type SkippedMailbox struct {
	Email  string    `json:"email"`
	By     string    `json:"by"`
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
}

// Ack is an update's result.
type Ack struct {
	Phase   model.Phase `json:"migration_phase"`
	Gate    model.Gate  `json:"migration_gate"`
	Message string      `json:"message"`
}

// Status is the `status` query's answer: the ticket desk's payload first, then detail.
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
	// Retrying lists the latest failed attempts of the running pass, one per mailbox, while
	// Temporal retries them (cleared when the pass ends).
	Retrying []AttemptFailed `json:"retrying,omitempty"`

	Mailboxes      int                           `json:"mailboxes"`
	MailboxCounts  map[model.MailboxStatus]int64 `json:"mailbox_counts,omitempty"`
	MailboxDetails []MailboxProgress             `json:"mailbox_progress,omitempty"` // every mailbox of small jobs; failing ones of large jobs

	Checks     []gate.Check     `json:"checks,omitempty"`
	Reviews    []gate.Review    `json:"reviews,omitempty"` // accepted warnings in force
	Skipped    []SkippedMailbox `json:"skipped,omitempty"`
	ApprovedBy string           `json:"approved_by,omitempty"`
	ApprovedAt *time.Time       `json:"approved_at,omitempty"`

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

	// Waiting: what the job does or waits for; Next: what it needs from a human (NextAction).
	Waiting  string        `json:"waiting,omitempty"`
	Next     string        `json:"next_action,omitempty"`
	Progress *LiveProgress `json:"progress,omitempty"` // the running pass, from heartbeats
	DNS      *DNSInfo      `json:"dns,omitempty"`
	// Notifications is the webhooks' delivery log (the deliveries' attempts are in
	// PostgreSQL's notification_deliveries).
	Notifications *notify.Summary `json:"notifications,omitempty"`
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
	Missing     int64 `json:"missing"`
	Extra       int64 `json:"extra"`
	Quarantined int64 `json:"quarantined"`
	// Rewritten: present, with identifying headers the destination rewrote (samples say which).
	Rewritten int64    `json:"rewritten,omitempty"`
	OK        bool     `json:"ok"`
	Samples   []string `json:"samples,omitempty"`
}
