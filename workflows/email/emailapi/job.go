package emailapi

import (
	"time"

	"github.com/cutover/cutover/internal/model"
)

// The payloads of the job's bookkeeping activities (activities/emailjob) that describe the job
// row. They are contracts, mapped to and from the store's rows inside the activities; recorded
// histories hold them with the Go field names as JSON names, spelled out here.

// JobState is one write of the job's state to PostgreSQL (the job row's columns the workflow
// owns).
type JobState struct {
	ID                        int64       `json:"ID"`
	Phase                     model.Phase `json:"Phase"`
	Gate                      model.Gate  `json:"Gate"`
	FailedPhase               model.Phase `json:"FailedPhase"` // "" unless Phase is failed
	LastError                 string      `json:"LastError"`
	ApprovedBy                string      `json:"ApprovedBy"` // "" clears the approval
	ApprovedAt                *time.Time  `json:"ApprovedAt"`
	DNSCutoverAt              *time.Time  `json:"DNSCutoverAt"`
	CutoverPlannedAt          *time.Time  `json:"CutoverPlannedAt"`
	SyncPercent               float64     `json:"SyncPercent"`
	PredictedFinalSyncSeconds *float64    `json:"PredictedFinalSyncSeconds"`
}

// JobProgress is a job's recorded state, read when a job restarts so it resumes where an
// earlier execution left it.
type JobProgress struct {
	ID                        int64       `json:"ID"`
	TenantID                  int64       `json:"TenantID"`
	TicketID                  *int64      `json:"TicketID"`
	Domain                    string      `json:"Domain"`
	Phase                     model.Phase `json:"Phase"`
	Gate                      model.Gate  `json:"Gate"`
	SourceServerLabel         string      `json:"SourceServerLabel"`
	DestIMAPHost              string      `json:"DestIMAPHost"`
	Notes                     string      `json:"Notes"`
	ApprovedBy                *string     `json:"ApprovedBy"`
	ApprovedAt                *time.Time  `json:"ApprovedAt"`
	DNSCutoverAt              *time.Time  `json:"DNSCutoverAt"`
	CreatedAt                 time.Time   `json:"CreatedAt"`
	UpdatedAt                 time.Time   `json:"UpdatedAt"`
	FailedPhase               model.Phase `json:"FailedPhase"`
	LastError                 string      `json:"LastError"`
	CutoverPlannedAt          *time.Time  `json:"CutoverPlannedAt"`
	SyncPercent               float32     `json:"SyncPercent"`
	PredictedFinalSyncSeconds *float64    `json:"PredictedFinalSyncSeconds"`
}

// MailboxSkip is a skipped mailbox of a job as registration reads it.
type MailboxSkip struct {
	MailboxID int64     `json:"MailboxID"`
	Email     string    `json:"Email"`
	By        string    `json:"By"`
	At        time.Time `json:"At"`
	Reason    string    `json:"Reason"`
}
