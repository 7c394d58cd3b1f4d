// This file is the contract with the email workflows (workflows/email): the activity types,
// their inputs and results. Names, types and semantics here are fixed; fields may be added.

package mail

import (
	"context"
	"log/slog"
	"time"

	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/activities/vault"
	"github.com/cutover/cutover/internal/model"
)

// Endpoint is one side's IMAP account. No secrets: CredentialsRef is resolved with the vault inside activities.
type Endpoint struct {
	Addr               string // host:port
	Security           string // "tls" (default), "starttls", "plain" (loopback/tests)
	CAFile             string // optional PEM bundle to trust in addition to the system roots
	InsecureSkipVerify bool   // tests only; never set by the spec parser unless explicitly asked
	User               string // mailbox to open
	AuthUser           string // admin/proxy login (imapsync --authuser1): authenticate as AuthUser, act as User; Dovecot master user "user*master" also supported via User
	Auth               string // "login" (default), "plain", "xoauth2", "oauthbearer"
	CredentialsRef     string // vault reference
}

// MailboxSpec is one mailbox of a job (a migration_mailboxes row plus its endpoints).
type MailboxSpec struct {
	JobID      int64
	MailboxID  int64 // migration_mailboxes.id
	Email      string
	SourceType model.SourceType // imap here; pst, mbox, eml, tgz, zimbra, dovecot come later through the same engine
	Source     Endpoint         // for IMAP-like sources
	SourcePath string           // for file sources (pst_path, mbox/eml/tgz path) — later issue
	Dest       Endpoint
	FolderMap  map[string]string // folder_map_json, source name → destination name; wins over automap
	Include    []string          // regexes on source folder names; empty = all
	Exclude    []string
	Since      *time.Time // age window on INTERNALDATE, optional
	Before     *time.Time
	// MaxMessageSize quarantines larger messages without trying them (bytes; 0 = only the
	// destination's advertised APPENDLIMIT applies). An addition to the contract.
	MaxMessageSize int64
}

// Mode selects what a pass may change.
type Mode string

const (
	ModeCopy   Mode = "copy"    // default
	ModeMirror Mode = "mirror"  // also delete on the destination what the source no longer has (presyncs only)
	ModeDryRun Mode = "dry_run" // report what would happen, change nothing
)

// PassRequest asks for one sync pass of one mailbox.
type PassRequest struct {
	Spec        MailboxSpec
	Mode        Mode
	RunType     model.RunType // initial | delta | final (recorded in migration_runs)
	Phase       model.Phase   // the job's phase; the engine REFUSES ModeMirror when Phase.AfterDNSCutover() (non-retryable, error type "MirrorAfterCutover") — defence in depth beside the workflow's own rule
	Parallelism int           // concurrent folders/connections per side; 0 = engine default
	TriggeredBy string        // migration_runs.triggered_by ("worker" or a user id)
}

// FolderStats is one folder's result.
type FolderStats struct {
	Source, Dest                                             string // names as on each server
	SpecialUse                                               string // "\\Inbox" pseudo for INBOX, "\\Sent", "\\Drafts", "\\Trash", "\\Junk", "\\Archive", or ""
	SourceMessages, DestMessages                             int64  // counts after the pass (dest counts only messages the ledger maps from this folder plus adopted duplicates)
	SourceBytes, DestBytes                                   int64
	Transferred, Skipped, Quarantined, Deleted, FlagsUpdated int64
}

// PassStats is the imapsync-like closing block of a pass; also stored as migration_runs.stats_json.
type PassStats struct {
	RunID                                                           int64 // migration_runs.id of this pass
	Mode                                                            Mode
	Folders                                                         []FolderStats
	Found, Transferred, Skipped, Quarantined, Deleted, FlagsUpdated int64
	BytesTransferred                                                int64
	Duration                                                        time.Duration
	MsgsPerSec, MBPerSec                                            float64
	ErrorsByClass                                                   map[string]int64 // e.g. "append_rejected": 2
	Pending                                                         int64            // messages seen on the source but not on the destination when the pass ended (0 after a clean pass)
}

// PreflightReport: login to both sides, folders with counts/bytes, quota and APPENDLIMIT, special folders.
type PreflightReport struct {
	RunID                         int64
	Folders                       []FolderStats // SourceMessages/SourceBytes filled; Dest = mapped destination name; DestMessages = what is already there
	DestQuotaUsed, DestQuotaLimit int64         // bytes; 0 limit = unknown/unlimited
	AppendLimit                   int64         // bytes; 0 = none advertised
	Warnings                      []string
}

// VerifyReport compares source and destination per folder under the folder map.
type VerifyReport struct {
	RunID                                             int64
	Folders                                           []FolderDiff
	Missing, Extra, Quarantined, FlagDiffs, DateDiffs int64 // totals; Missing excludes quarantined messages
	OK                                                bool  // Missing == 0 (quarantined messages are reported separately, not counted missing)
	// LateCopiesRemoved counts second copies of our own interrupted APPENDs that landed after
	// the message was copied again, removed from the destination by this verification.
	LateCopiesRemoved int64
}

// FolderDiff is one folder's verification result.
type FolderDiff struct {
	Source, Dest                                      string
	SpecialUse                                        string
	SourceMessages, DestMessages                      int64
	Missing, Extra, Quarantined, FlagDiffs, DateDiffs int64
	LateCopiesRemoved                                 int64
	Samples                                           []string // up to 10 identities/descriptions of differing messages, for humans
}

// Activities is registered on the worker (worker/workerapp Register). Method names are the activity type names.
type Activities struct {
	DB     *store.DB
	Vault  *vault.Vault
	Logger *slog.Logger
	// Tune, when set, adjusts the engine before each call (batch sizes, reconnect and settle
	// delays, progress interval): for operators and tests. An addition to the contract.
	Tune func(*Engine)
}

// PreflightMailbox records a migration_runs row (run_type preflight, tool imapsync) and updates
// migration_mailboxes (messages_source, bytes_source, status).
func (a *Activities) PreflightMailbox(ctx context.Context, spec MailboxSpec) (PreflightReport, error) {
	return a.preflightMailbox(ctx, spec)
}

// SyncMailbox runs one pass, heartbeating progress (folder, uid, counts) and resuming from its
// last heartbeat details on retry; records a migration_runs row (run_type from the request,
// idempotent per activity via an idempotency key derived from workflow id + activity id) with
// stats_json, and updates migration_mailboxes (counts, bytes, sync_percent, status
// syncing/ok/error/quarantine, last_error).
func (a *Activities) SyncMailbox(ctx context.Context, req PassRequest) (PassStats, error) {
	return a.syncMailbox(ctx, req)
}

// VerifyMailbox records a run (run_type verify, tool verify).
func (a *Activities) VerifyMailbox(ctx context.Context, spec MailboxSpec) (VerifyReport, error) {
	return a.verifyMailbox(ctx, spec)
}

// Error types of non-retryable application errors (temporal.ApplicationError.Type()). Workflows
// classify failures by these strings.
const (
	ErrTypeAuthFailed             = "AuthFailed"             // bad credentials
	ErrTypeBadSpec                = "BadSpec"                // invalid spec: unknown source type, bad regex, missing endpoint
	ErrTypeMirrorAfterCutover     = "MirrorAfterCutover"     // mirror refused once users may write to the destination
	ErrTypeCredentialsUnavailable = "CredentialsUnavailable" // vault has no key / unknown ref / undecryptable
)

// Error types of retryable application errors.
const (
	ErrTypeConnect   = "Connect"   // dial, TLS handshake, dropped connection, timeout, BYE
	ErrTypeThrottled = "Throttled" // the server asked us to slow down
)
