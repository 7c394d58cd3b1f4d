package emailapi

import (
	"time"

	"github.com/cutover/cutover/internal/model"
)

// LiveProgress is the running pass's progress from its mailboxes' heartbeats (MailboxProgress
// signals): what the UI and the status show during a long initial sync, before any mailbox's
// pass has ended.
type LiveProgress struct {
	SourceMessages int64     `json:"source_messages"` // the preflight's count of the job's messages
	Copied         int64     `json:"copied"`          // copied so far by this pass
	Percent        float64   `json:"percent"`         // Copied of SourceMessages
	MailboxesDone  int64     `json:"mailboxes_done"`
	Updated        time.Time `json:"updated"`
}

// MailboxProgressSignal is the signal earlier workers sent a job while a mailbox's sync pass
// copied (payload PassProgress, one per mailbox report). Still received; workers now send
// MailboxReportsSignal.
const MailboxProgressSignal = "mailbox_progress"

// MailboxReportsSignal is the signal the worker sends a job with what the job's mailbox
// activities reported since the previous one (payload MailboxReports): at most one every few
// seconds per job, so the job's history grows with time, not with its number of mailboxes.
const MailboxReportsSignal = "mailbox_reports"

// MailboxReports are the newest reports of a job's mailbox activities, gathered by the worker.
type MailboxReports struct {
	Progress []PassProgress  `json:"progress,omitempty"` // the newest per mailbox and pass
	Attempts []AttemptFailed `json:"attempts,omitempty"` // failed attempts, oldest first
}

// PassProgress is one mailbox's progress in the running pass.
type PassProgress struct {
	Email   string        `json:"email"`
	RunType model.RunType `json:"run_type"`
	Copied  int64         `json:"copied"` // messages this pass copied so far
	Done    bool          `json:"done,omitempty"`
}

// DNSInfo is what the DNS checks found: the records and their TTLs at preflight (and each
// presync), and after the DNS cutover confirmation where MX points.
type DNSInfo struct {
	Records   []DNSRecord `json:"records,omitempty"`
	CheckedAt *time.Time  `json:"checked_at,omitempty"`
	// MXSeen is the MX answer after the cutover confirmation; MXSwitched whether every MX
	// host is the destination.
	MXSeen     []string `json:"mx_seen,omitempty"`
	MXSwitched bool     `json:"mx_switched,omitempty"`
	// Holding says why the final sync waits (MX not switched), HoldingCheck the check to
	// accept if that is as planned; both empty when nothing holds.
	Holding      string `json:"holding,omitempty"`
	HoldingCheck string `json:"holding_check,omitempty"`
	Error        string `json:"error,omitempty"`
}

// DNSRecord is one looked-up name.
type DNSRecord struct {
	Name   string   `json:"name"`
	Type   string   `json:"type"` // MX | A | AAAA | CNAME
	Values []string `json:"values"`
	TTL    uint32   `json:"ttl"` // seconds
}

// TaskKind is what a pass does to a mailbox.
type TaskKind string

const (
	TaskPreflight TaskKind = "preflight"
	TaskSync      TaskKind = "sync"
	TaskVerify    TaskKind = "verify"
)

// Task is the part of a mailbox pass shared by every mailbox of a wave.
type Task struct {
	Kind    TaskKind       `json:"kind"`
	Mode    model.SyncMode `json:"mode,omitempty"`     // sync only
	RunType model.RunType  `json:"run_type,omitempty"` // sync only: initial | delta | final
	Phase   model.Phase    `json:"phase"`
	// CutOver: DNS already points at the destination (users write there). With it, or with a
	// Phase at or after dns_cutover, a mirror pass is refused before any activity runs.
	CutOver     bool          `json:"cut_over,omitempty"`
	Include     []string      `json:"include,omitempty"` // replaces the mailbox's include list (INBOX post-syncs)
	Parallelism int           `json:"parallelism,omitempty"`
	TriggeredBy string        `json:"triggered_by,omitempty"`
	MaxAttempts int           `json:"max_attempts,omitempty"`
	MaxInterval time.Duration `json:"max_interval,omitempty"`
	// HeartbeatTimeout of the mailbox activities; 0 = the default (Tuning.HeartbeatTimeout).
	HeartbeatTimeout time.Duration `json:"heartbeat_timeout,omitempty"`
	// Presync: a presync before DNS cutover, where a mailbox's own presync_mode (the spec's
	// per-mailbox opt-in) replaces Mode.
	Presync bool `json:"presync,omitempty"`
	// RecheckDest: compare every destination folder's UIDs with the ledger and copy again
	// what is gone (the passes the gate and verification rely on).
	RecheckDest bool `json:"recheck_dest,omitempty"`
	// DryRunOf: with Mode dry_run, the mode whose pass the dry run describes (cutover email
	// dry-run); copy when empty.
	DryRunOf model.SyncMode `json:"dry_run_of,omitempty"`
}

// DefaultKeepResults is how many mailboxes a status lists (Status.MailboxDetails) in full: a
// job with fewer lists every one, a larger job only its failing ones.
const DefaultKeepResults = 100

// WaveProgress is the wave's `status` query answer.
type WaveProgress struct {
	Task     Task     `json:"task"`
	Done     int64    `json:"done"`
	Failed   int64    `json:"failed"`
	InFlight []string `json:"in_flight"`
	Runs     int      `json:"runs"`
}
