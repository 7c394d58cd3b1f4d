package email

import (
	"time"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/notify"
	"github.com/cutover/cutover/workflows/email/emailapi"
	"github.com/cutover/cutover/workflows/email/gate"
	"github.com/cutover/cutover/workflows/notifysend"
)

// Resume is the workflow's second argument: empty when an operator starts a job (the temporal
// CLI passes only the spec), the carried state when the job continues as new.
type Resume struct {
	State  *State `json:"state,omitempty"`
	Tuning Tuning `json:"tuning,omitzero"`
}

// Tuning holds knobs tests turn down; zero values take the defaults.
type Tuning struct {
	HistoryLimit  int `json:"history_limit,omitempty"`
	PageSize      int `json:"page_size,omitempty"`
	ContinueAfter int `json:"continue_after,omitempty"`
	KeepResults   int `json:"keep_results,omitempty"`
	// HeartbeatTimeout is the mailbox activities' heartbeat timeout (default 15s): how soon a
	// pass whose worker died is retried elsewhere. Fault tests turn it down to seconds.
	HeartbeatTimeout time.Duration `json:"heartbeat_timeout,omitempty"`
	// Notify tunes webhook delivery (tests give up sooner).
	Notify notifysend.Options `json:"notify,omitzero"`
}

// State is everything the job workflow knows, carried across continue-as-new.
type State struct {
	JobID       int64       `json:"job_id"`
	Domain      string      `json:"domain"`
	TenantID    int64       `json:"tenant_id"`
	Phase       model.Phase `json:"phase"`
	FailedPhase model.Phase `json:"failed_phase,omitempty"`
	Gate        model.Gate  `json:"gate"`
	LastError   string      `json:"last_error,omitempty"`
	Mailboxes   int         `json:"mailboxes"`
	Registered  bool        `json:"registered"`

	Summary       *gate.Summary             `json:"summary,omitempty"` // the latest pre-cutover sync, nil until the initial sync
	Checks        []gate.Check              `json:"checks,omitempty"`
	ChecksPending bool                      `json:"checks_pending,omitempty"` // Checks not yet written to PostgreSQL
	Approval      *gate.Approval            `json:"approval,omitempty"`
	Reviews       []gate.Review             `json:"reviews,omitempty"` // accepted warnings in force
	Skipped       []emailapi.SkippedMailbox `json:"skipped,omitempty"`
	// Unskipped: mailboxes brought back whose next pass the gate waits for.
	Unskipped []string `json:"unskipped,omitempty"`
	// PendingMailboxOps: operators' mailbox changes not yet written to PostgreSQL.
	PendingMailboxOps []emailapi.MailboxOp `json:"pending_mailbox_ops,omitempty"`
	ApprovedAt        *time.Time           `json:"approved_at,omitempty"`

	CutoverAt    *time.Time `json:"cutover_at,omitempty"`
	DNSCutoverAt *time.Time `json:"dns_cutover_at,omitempty"`
	DNSCutoverBy string     `json:"dns_cutover_by,omitempty"`

	Presyncs           int                `json:"presyncs"`
	NextPresyncAt      *time.Time         `json:"next_presync_at,omitempty"`
	PredictedFinalSync time.Duration      `json:"predicted_final_sync"`
	LastPass           *emailapi.PassInfo `json:"last_pass,omitempty"`
	CurrentPass        *emailapi.PassInfo `json:"current_pass,omitempty"`
	WaveSeq            int                `json:"wave_seq"`

	SyncPercent    float64                       `json:"sync_percent"`
	MailboxCounts  map[model.MailboxStatus]int64 `json:"mailbox_counts,omitempty"`
	MailboxDetails []emailapi.MailboxProgress    `json:"mailbox_details,omitempty"`

	Preflight      *emailapi.PreflightInfo `json:"preflight,omitempty"`
	Verify         *emailapi.VerifyInfo    `json:"verify,omitempty"`
	FinalRounds    int                     `json:"final_rounds"`
	VerifiedAt     *time.Time              `json:"verified_at,omitempty"`
	LastPostSyncAt *time.Time              `json:"last_post_sync_at,omitempty"`
	PostSyncs      int                     `json:"post_syncs"`
	ClosedBy       string                  `json:"closed_by,omitempty"`

	PresyncRequested bool              `json:"presync_requested,omitempty"`
	RetryRequested   *emailapi.Request `json:"retry_requested,omitempty"`
	CloseRequested   *emailapi.Request `json:"close_requested,omitempty"`
	Aborted          *emailapi.Request `json:"aborted,omitempty"`

	Retrying     []emailapi.AttemptFailed `json:"retrying,omitempty"`      // failed attempts of the running pass
	PendingNotes []string                 `json:"pending_notes,omitempty"` // lines not yet appended to migration_jobs.notes
	Refused      []string                 `json:"refused,omitempty"`
	Runs         int                      `json:"runs"` // continue-as-new count

	// Notify holds the notifications not yet delivered and the delivery log; NotifiedPhase and
	// NotifiedGate what the last notifications said.
	Notify        notify.Outbox `json:"notify,omitzero"`
	NotifiedPhase model.Phase   `json:"notified_phase,omitempty"`
	NotifiedGate  model.Gate    `json:"notified_gate,omitempty"`
	// Progress of the running pass from MailboxProgress signals; LiveCopied per mailbox.
	Progress   *emailapi.LiveProgress `json:"progress,omitempty"`
	LiveCopied map[string]int64       `json:"live_copied,omitempty"`
	DNS        *emailapi.DNSInfo      `json:"dns,omitempty"`
}

// CutOver reports whether users may already write to the destination: DNS was confirmed, or
// the phase (the failed phase, for a failed job) is at or after dns_cutover.
func (s *State) CutOver() bool {
	return s.DNSCutoverAt != nil || s.Phase.AfterDNSCutover() ||
		(s.Phase == model.PhaseFailed && s.FailedPhase.AfterDNSCutover())
}
