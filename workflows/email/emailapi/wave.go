package emailapi

import (
	"time"

	"github.com/cutover/cutover/workflows/email/gate"
	"github.com/cutover/cutover/workflows/email/jobspec"
)

// WaveInput is MailboxWaveWorkflow's input; the Cursor fields carry a wave across
// continue-as-new.
type WaveInput struct {
	Spec        jobspec.Spec `json:"spec"` // job-level settings; Mailboxes unused (read page by page)
	Task        Task         `json:"task"`
	Concurrency int          `json:"concurrency"`
	// Tuning, defaulted when zero.
	PageSize      int `json:"page_size,omitempty"`
	ContinueAfter int `json:"continue_after,omitempty"`
	KeepResults   int `json:"keep_results,omitempty"`

	AfterID int64      `json:"after_id,omitempty"` // last mailbox id handled by earlier runs
	Acc     WaveResult `json:"acc"`                // what earlier runs found
}

// WaveResult is a whole pass over a job's mailboxes, summed.
type WaveResult struct {
	Task      Task      `json:"task"`
	Started   time.Time `json:"started"`
	Finished  time.Time `json:"finished"`
	Runs      int       `json:"runs"` // executions of the wave (1 + continue-as-new count)
	Mailboxes int64     `json:"mailboxes"`
	OK        int64     `json:"ok"`
	// QuarantinedMailboxes: mailboxes that passed with messages the destination refused.
	QuarantinedMailboxes int64    `json:"quarantined_mailboxes"`
	Failed               int64    `json:"failed"`
	Failures             []string `json:"failures,omitempty"` // first few "email: error"
	Warnings             []string `json:"warnings,omitempty"` // first few preflight warnings
	Samples              []string `json:"samples,omitempty"`  // first few differing messages (verify)

	Summary gate.Summary `json:"summary"` // sync: the gate's accumulated checks

	SourceMessages int64 `json:"source_messages"`
	DestMessages   int64 `json:"dest_messages"`
	SourceBytes    int64 `json:"source_bytes"`
	DestBytes      int64 `json:"dest_bytes"`
	Transferred    int64 `json:"transferred"`
	Deleted        int64 `json:"deleted"`
	Quarantined    int64 `json:"quarantined"`
	Pending        int64 `json:"pending"`
	Missing        int64 `json:"missing"`
	Extra          int64 `json:"extra"`
	Rewritten      int64 `json:"rewritten,omitempty"`

	// Results: every mailbox's result while there are at most KeepResults, then only failures.
	Results []MailboxResult `json:"results,omitempty"`
}

// Duration is how long the whole wave took, continue-as-new included.
func (r WaveResult) Duration() time.Duration { return r.Finished.Sub(r.Started) }

// MailboxResult is one mailbox's outcome of a pass, small enough for thousands to fold into a
// wave result.
type MailboxResult struct {
	MailboxID int64  `json:"mailbox_id"`
	Email     string `json:"email"`
	OK        bool   `json:"ok"`
	Error     string `json:"error,omitempty"`
	ErrorType string `json:"error_type,omitempty"`
	RunID     int64  `json:"run_id,omitempty"`

	Facts       gate.MailboxFacts `json:"facts"` // sync: the gate's inputs
	SourceBytes int64             `json:"source_bytes,omitempty"`
	DestBytes   int64             `json:"dest_bytes,omitempty"`
	Transferred int64             `json:"transferred,omitempty"`
	Deleted     int64             `json:"deleted,omitempty"`
	Duration    time.Duration     `json:"duration,omitempty"`

	Missing int64 `json:"missing,omitempty"` // verify
	Extra   int64 `json:"extra,omitempty"`   // verify
	// Rewritten: verify found these present with identifying headers the destination server
	// rewrote when storing them (e.g. Cyrus's 8-bit munging); not missing.
	Rewritten int64    `json:"rewritten,omitempty"`
	Samples   []string `json:"samples,omitempty"`  // verify: a few differing messages
	Warnings  []string `json:"warnings,omitempty"` // preflight
}
