// Package model names the states and enums of the control tables (email and database) once,
// so the schema's CHECK constraints, the store, the workflows and the CLI agree on every spelling.
// It is a leaf: no I/O, safe to import from deterministic workflow code.
package model

// Phase is migration_jobs.phase.
type Phase string

const (
	PhaseDiscovered   Phase = "discovered"
	PhasePreflight    Phase = "preflight"
	PhaseInitialSync  Phase = "initial_sync"
	PhaseDeltaSync    Phase = "delta_sync"
	PhaseCutoverReady Phase = "cutover_ready"
	PhaseDNSCutover   Phase = "dns_cutover"
	PhaseFinalSync    Phase = "final_sync"
	PhaseVerified     Phase = "verified"
	PhaseClosed       Phase = "closed"
	PhaseFailed       Phase = "failed"
)

// Phases lists the forward path in order; failed is reachable from any of them.
var Phases = []Phase{
	PhaseDiscovered, PhasePreflight, PhaseInitialSync, PhaseDeltaSync, PhaseCutoverReady,
	PhaseDNSCutover, PhaseFinalSync, PhaseVerified, PhaseClosed,
}

// Index is the phase's position on the forward path, -1 for failed or unknown.
func (p Phase) Index() int {
	for i, q := range Phases {
		if q == p {
			return i
		}
	}
	return -1
}

// AfterDNSCutover reports whether users may already write to the destination, the point after
// which nothing may delete there.
func (p Phase) AfterDNSCutover() bool { return p.Index() >= PhaseDNSCutover.Index() }

// Gate is migration_jobs.migration_gate.
type Gate string

const (
	GateBlocked     Gate = "blocked"
	GateWarning     Gate = "warning"
	GateReadyForDNS Gate = "ready_for_dns"
)

// SourceType is migration_mailboxes.source_type.
type SourceType string

const (
	SourceIMAP      SourceType = "imap"
	SourceIMAPOAuth SourceType = "imap_oauth"
	SourcePST       SourceType = "pst"
	SourceMbox      SourceType = "mbox"
	SourceEML       SourceType = "eml"
	SourceTgz       SourceType = "tgz"
	SourceZimbra    SourceType = "zimbra"
	SourceDovecot   SourceType = "dovecot"
)

// SourceTypes lists every source type the schema accepts.
var SourceTypes = []SourceType{
	SourceIMAP, SourceIMAPOAuth, SourcePST, SourceMbox, SourceEML, SourceTgz, SourceZimbra, SourceDovecot,
}

// SyncMode selects what a sync pass may change (a job's presync_mode, a pass's mode).
type SyncMode string

const (
	ModeCopy SyncMode = "copy" // default: never deletes anything
	// ModeMirror also deletes on the destination the copies this job placed (ledger state
	// copied) whose source message is gone. It never deletes a message the ledger does not say
	// this job appended: the user's own mail, mail delivered early, another tool's copies (even
	// when adopted) stay. Presyncs only, refused after DNS cutover.
	ModeMirror SyncMode = "mirror"
	// ModeStrictMirror is imapsync --delete2, destructive and explicit: like ModeMirror, and it
	// also deletes in every folder the job syncs each destination message the source lacks,
	// whoever put it there. Presyncs only, refused after DNS cutover.
	ModeStrictMirror SyncMode = "strict_mirror"
	ModeDryRun       SyncMode = "dry_run" // report what would happen, change nothing
)

// Deletes reports whether passes of the mode delete on the destination.
func (m SyncMode) Deletes() bool { return m == ModeMirror || m == ModeStrictMirror }

// MailboxStatus is migration_mailboxes.status.
type MailboxStatus string

const (
	MailboxPending    MailboxStatus = "pending"
	MailboxSyncing    MailboxStatus = "syncing"
	MailboxOK         MailboxStatus = "ok"
	MailboxError      MailboxStatus = "error"
	MailboxQuarantine MailboxStatus = "quarantine"
	// MailboxSkipped: an operator took the mailbox out of the job (email skip, or left it out
	// of the spec on a restart); no pass runs for it and it leaves the gate until un-skipped.
	MailboxSkipped MailboxStatus = "skipped"
)

// RunType is migration_runs.run_type.
type RunType string

const (
	RunPreflight  RunType = "preflight"
	RunInitial    RunType = "initial"
	RunDelta      RunType = "delta"
	RunFinal      RunType = "final"
	RunVerify     RunType = "verify"
	RunPSTExtract RunType = "pst_extract"
	RunPSTUpload  RunType = "pst_upload"
	RunTgzExport  RunType = "tgz_export"
	RunTgzImport  RunType = "tgz_import"
)

// Tool is migration_runs.tool: the names of what did the work.
type Tool string

const (
	ToolIMAPSync   Tool = "imapsync"
	ToolReadPST    Tool = "readpst"
	ToolIMAPUpload Tool = "imap-upload"
	ToolZmmailbox  Tool = "zmmailbox"
	ToolDoveadm    Tool = "doveadm"
	ToolVerify     Tool = "verify"
)

// RunStatus is migration_runs.status.
type RunStatus string

const (
	RunQueued  RunStatus = "queued"
	RunRunning RunStatus = "running"
	RunSuccess RunStatus = "success"
	RunPartial RunStatus = "partial"
	RunFailed  RunStatus = "failed"
)

// CheckID is migration_gate_checks.check_id.
type CheckID string

const (
	CheckCountRatio    CheckID = "count_ratio"
	CheckInboxComplete CheckID = "inbox_complete"
	CheckSentComplete  CheckID = "sent_complete"
	CheckPSTQuarantine CheckID = "pst_quarantine"
	CheckDeltaPending  CheckID = "delta_pending"
	// CheckDestHeld: mail on the destination the job did not place (the user's own, early
	// deliveries, another tool's). Kept by every mode but strict_mirror; a human reviews it.
	CheckDestHeld CheckID = "dest_held"
	// CheckDNSTTL: the MX or the IMAP host name has a TTL above the spec's max_ttl before DNS
	// is switched (the switch would take that long to reach every client). Job-level.
	CheckDNSTTL CheckID = "dns_ttl"
	// CheckMXSwitched: after the DNS cutover confirmation MX does not point at the
	// destination; the final sync waits. Job-level.
	CheckMXSwitched     CheckID = "mx_switched"
	CheckManualApproval CheckID = "manual_approval"
)

// CheckIDs lists the gate checks in the order they are evaluated and shown.
var CheckIDs = []CheckID{
	CheckCountRatio, CheckInboxComplete, CheckSentComplete, CheckPSTQuarantine, CheckDeltaPending,
	CheckDestHeld, CheckManualApproval,
}

// DNSCheckIDs are the job-level checks of a job with DNS checks (its spec's dns section),
// shown before manual_approval.
var DNSCheckIDs = []CheckID{CheckDNSTTL, CheckMXSwitched}

// AllCheckIDs lists every check a job may record, in the order they are shown.
func AllCheckIDs() []CheckID {
	n := len(CheckIDs)
	out := append(append(append([]CheckID{}, CheckIDs[:n-1]...), DNSCheckIDs...), CheckIDs[n-1])
	return out
}

// CheckStatus is migration_gate_checks.status.
type CheckStatus string

const (
	CheckPass CheckStatus = "pass"
	CheckWarn CheckStatus = "warn"
	CheckFail CheckStatus = "fail"
)
