package emailapi

import (
	"time"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/email/gate"
	"github.com/cutover/cutover/workflows/email/jobspec"
)

// The inputs and outputs of the job's bookkeeping activities (activities/emailjob). Recorded
// histories hold them with the Go field names as JSON names, spelled out here.

// Registration is what RegisterEmailJob found and did.
type Registration struct {
	JobID     int64 `json:"JobID"`
	Mailboxes int   `json:"Mailboxes"`
	Created   bool  `json:"Created"` // the job row is new
	// Existing is the job's recorded state when the row already existed and had progressed past
	// discovered: a job restarted after an abort resumes from it instead of starting over (and
	// never mirrors again if DNS was already cut over).
	Existing *JobProgress `json:"Existing"`
	// Removed: mailboxes of the job a restart's spec no longer lists, now skipped.
	Removed []string `json:"Removed,omitempty"`
	// Skipped: every skipped mailbox of the job, for the workflow's status.
	Skipped []MailboxSkip `json:"Skipped,omitempty"`
}

// LoadRequest asks LoadEmailMailboxes for one page of a job's mailboxes.
type LoadRequest struct {
	Spec    jobspec.Spec `json:"Spec"`    // job-level settings (endpoints); its Mailboxes are ignored
	AfterID int64        `json:"AfterID"` // last migration_mailboxes.id of the previous page
	Limit   int          `json:"Limit"`
}

// JobRecord is one write of the job's state (RecordEmailJob).
type JobRecord struct {
	State  JobState     `json:"State"`
	Checks []gate.Check `json:"Checks"` // a new gate evaluation to append; nil = none
	Notes  []string     `json:"Notes"`  // lines appended to migration_jobs.notes (approval note, abort reason, ...)
	// Mailboxes: operators' changes to mailboxes (skip, un-skip, new credentials), in order.
	Mailboxes []MailboxOp `json:"Mailboxes,omitempty"`
}

// Operations on one mailbox an operator asked the job for (MailboxOp.Op).
const (
	OpSkip        = "skip"        // take it out of the job: no pass, out of the gate
	OpUnskip      = "unskip"      // bring it back
	OpCredentials = "credentials" // give one side a new credentials_ref
)

// MailboxOp is one operator change to a mailbox, carried to PostgreSQL with the job's state.
type MailboxOp struct {
	Op     string    `json:"op"`
	Email  string    `json:"email"`
	By     string    `json:"by"`
	At     time.Time `json:"at"`
	Reason string    `json:"reason,omitempty"`
	Side   string    `json:"side,omitempty"`            // credentials: source or dest
	Ref    string    `json:"credentials_ref,omitempty"` // credentials: the vault reference (never a secret)
}

// MailboxMark records a mailbox failure the engine may not have recorded (MarkEmailMailbox).
type MailboxMark struct {
	MailboxID int64               `json:"MailboxID"`
	Status    model.MailboxStatus `json:"Status"`
	LastError string              `json:"LastError"`
}
