package emailapi

// The payloads of the engine's activities (activities/mail: PreflightMailbox, SyncMailbox,
// VerifyMailbox) and their heartbeat details. Recorded histories hold them with the Go field
// names as JSON names; the tags spell those names out so a rename in Go cannot change them.

import (
	"time"

	"github.com/cutover/cutover/internal/model"
)

// Endpoint is one side's IMAP account. No secrets: CredentialsRef is resolved with the vault inside activities.
type Endpoint struct {
	Addr               string `json:"Addr"`               // host:port
	Security           string `json:"Security"`           // "tls" (default), "starttls", "plain" (loopback/tests)
	CAFile             string `json:"CAFile"`             // optional PEM bundle to trust in addition to the system roots
	InsecureSkipVerify bool   `json:"InsecureSkipVerify"` // tests only; never set by the spec parser unless explicitly asked
	User               string `json:"User"`               // mailbox to open
	AuthUser           string `json:"AuthUser"`           // admin/proxy login (imapsync --authuser1): authenticate as AuthUser, act as User; Dovecot master user "user*master" also supported via User
	Auth               string `json:"Auth"`               // "login" (default), "plain", "xoauth2", "oauthbearer"
	CredentialsRef     string `json:"CredentialsRef"`     // vault reference
}

// MailboxSpec is one mailbox of a job (a migration_mailboxes row plus its endpoints).
type MailboxSpec struct {
	JobID      int64             `json:"JobID"`
	MailboxID  int64             `json:"MailboxID"` // migration_mailboxes.id
	Email      string            `json:"Email"`
	SourceType model.SourceType  `json:"SourceType"` // imap here; pst, mbox, eml, tgz, zimbra, dovecot come later through the same engine
	Source     Endpoint          `json:"Source"`     // for IMAP-like sources
	SourcePath string            `json:"SourcePath"` // for file sources (pst_path, mbox/eml/tgz path) — later issue
	Dest       Endpoint          `json:"Dest"`
	FolderMap  map[string]string `json:"FolderMap"` // folder_map_json, source name → destination name; wins over automap
	Include    []string          `json:"Include"`   // regexes on source folder names; empty = all
	Exclude    []string          `json:"Exclude"`
	Since      *time.Time        `json:"Since"` // age window on INTERNALDATE, optional
	Before     *time.Time        `json:"Before"`
	// MaxMessageSize quarantines larger messages without trying them (bytes; 0 = only the
	// destination's advertised APPENDLIMIT applies). An addition to the contract.
	MaxMessageSize int64 `json:"MaxMessageSize"`
	// Renames are regex renames of source folder paths, after FolderMap and before the
	// special-use automap; SkipSpecialUse leaves out folders of these special uses ("trash",
	// "junk", ...). Additions to the contract.
	Renames        []model.FolderRename `json:"Renames,omitempty"`
	SkipSpecialUse []string             `json:"SkipSpecialUse,omitempty"`
	// Namespaces also migrates folders outside the source's personal namespace: "other"
	// (other users' folders the account may read) and "shared". Without it they are left out
	// and reported (namespaces.go).
	Namespaces []string `json:"Namespaces,omitempty"`
	// PresyncMode, when set, replaces the job's presync mode for this mailbox (the spec's
	// per-mailbox opt-in, e.g. strict_mirror for one account). Presyncs only.
	PresyncMode model.SyncMode `json:"PresyncMode,omitempty"`
	// Merge: the spec's entry merges into a destination account other entries merge into too
	// (merge: true); their writing passes take turns on that account, so each finds the others'
	// copies and adopts them instead of copying a message several sources hold again.
	Merge bool `json:"Merge,omitempty"`
}

// PassRequest asks for one sync pass of one mailbox.
type PassRequest struct {
	Spec        MailboxSpec    `json:"Spec"`
	Mode        model.SyncMode `json:"Mode"`
	RunType     model.RunType  `json:"RunType"`     // initial | delta | final (recorded in migration_runs)
	Phase       model.Phase    `json:"Phase"`       // the job's phase; the engine REFUSES model.ModeMirror when Phase.AfterDNSCutover() (non-retryable, error type "MirrorAfterCutover") — defence in depth beside the workflow's own rule
	Parallelism int            `json:"Parallelism"` // concurrent folders/connections per side; 0 = engine default
	TriggeredBy string         `json:"TriggeredBy"` // migration_runs.triggered_by ("worker" or a user id)
	// RecheckDest compares every destination folder's UIDs with the ledger, even where the
	// counts match (a user deleted one of our copies and added a message): what is gone is
	// copied again. Without it a pass compares UIDs only where the counts differ. The gate's
	// last presync and the final sync ask for it.
	RecheckDest bool `json:"RecheckDest,omitempty"`
	// DryRunOf, with Mode dry_run, is the mode whose pass the dry run describes: what a copy
	// (default), mirror or strict_mirror pass would copy, delete and refuse. An addition to
	// the contract.
	DryRunOf model.SyncMode `json:"DryRunOf,omitempty"`
}

// FolderStats is one folder's result.
type FolderStats struct {
	Source         string `json:"Source"` // names as on each server
	Dest           string `json:"Dest"`
	SpecialUse     string `json:"SpecialUse"`     // "\\Inbox" pseudo for INBOX, "\\Sent", "\\Drafts", "\\Trash", "\\Junk", "\\Archive", or ""
	SourceMessages int64  `json:"SourceMessages"` // counts after the pass (dest counts only messages the ledger maps from this folder plus adopted duplicates)
	DestMessages   int64  `json:"DestMessages"`
	SourceBytes    int64  `json:"SourceBytes"`
	DestBytes      int64  `json:"DestBytes"`
	Transferred    int64  `json:"Transferred"`
	Skipped        int64  `json:"Skipped"`
	Quarantined    int64  `json:"Quarantined"`
	Deleted        int64  `json:"Deleted"`
	FlagsUpdated   int64  `json:"FlagsUpdated"`
	// Recopied: ledger copies found gone from the destination and copied again (in Transferred).
	Recopied int64 `json:"Recopied,omitempty"`
	// DestExtra: messages in the destination folder that no ledger row of the mailbox claims
	// (the user's own, early deliveries, another tool's), counted once per destination folder.
	DestExtra int64 `json:"DestExtra,omitempty"`
}

// PassStats is the imapsync-like closing block of a pass; also stored as migration_runs.stats_json.
type PassStats struct {
	RunID            int64            `json:"RunID"` // migration_runs.id of this pass
	Mode             model.SyncMode   `json:"Mode"`
	Folders          []FolderStats    `json:"Folders"`
	Found            int64            `json:"Found"`
	Transferred      int64            `json:"Transferred"`
	Skipped          int64            `json:"Skipped"`
	Quarantined      int64            `json:"Quarantined"`
	Deleted          int64            `json:"Deleted"`
	FlagsUpdated     int64            `json:"FlagsUpdated"`
	BytesTransferred int64            `json:"BytesTransferred"`
	Duration         time.Duration    `json:"Duration"`
	MsgsPerSec       float64          `json:"MsgsPerSec"`
	MBPerSec         float64          `json:"MBPerSec"`
	ErrorsByClass    map[string]int64 `json:"ErrorsByClass"`       // e.g. "append_rejected": 2
	Pending          int64            `json:"Pending"`             // messages seen on the source but not on the destination when the pass ended (0 after a clean pass)
	Recopied         int64            `json:"Recopied,omitempty"`  // see FolderStats
	DestExtra        int64            `json:"DestExtra,omitempty"` // FolderStats.DestExtra summed, plus every message of destination folders the pass does not sync
	// KeywordsDropped counts the mailbox's messages stored without some of their keywords
	// because the destination refused them (Cyrus 3.6 keeps at most 100 per folder); DroppedKeywords
	// names those keywords (the first 20, sorted). The messages themselves are
	// there; the gate warns.
	KeywordsDropped int64    `json:"KeywordsDropped,omitempty"`
	DroppedKeywords []string `json:"DroppedKeywords,omitempty"`
	// NotPersonal and DestOnlyFolders: see PreflightReport. A destination-only folder with
	// FromSource set holds copies of a source folder since renamed or deleted; strict_mirror
	// deletes it when it holds nothing else (FoldersRemoved, its messages in Deleted).
	NotPersonal     []NamespaceFolder `json:"NotPersonal,omitempty"`
	DestOnlyFolders []DestOnlyFolder  `json:"DestOnlyFolders,omitempty"`
	FoldersRemoved  []string          `json:"FoldersRemoved,omitempty"`
}

// NamespaceFolder is a source folder outside the personal namespace.
type NamespaceFolder struct {
	Name      string `json:"Name"`
	Namespace string `json:"Namespace"` // "other" or "shared"
	Messages  int64  `json:"Messages"`
}

// DestOnlyFolder is a destination folder no source folder maps to.
type DestOnlyFolder struct {
	Name     string `json:"Name"`
	Messages int64  `json:"Messages"`
	// FromSource is the source folder this job synced into it, which the source no longer
	// lists (renamed or deleted there); "" for the destination's own folders.
	FromSource string `json:"FromSource,omitempty"`
}

// PreflightReport: login to both sides, folders with counts/bytes, quota and APPENDLIMIT, special folders.
type PreflightReport struct {
	RunID          int64         `json:"RunID"`
	Folders        []FolderStats `json:"Folders"`       // SourceMessages/SourceBytes filled; Dest = mapped destination name; DestMessages = what is already there
	DestQuotaUsed  int64         `json:"DestQuotaUsed"` // bytes; 0 limit = unknown/unlimited
	DestQuotaLimit int64         `json:"DestQuotaLimit"`
	AppendLimit    int64         `json:"AppendLimit"` // bytes; 0 = none advertised
	Warnings       []string      `json:"Warnings"`
	// DestHolds is what the destination account already holds, every folder with messages in
	// it, before the job copies anything into it (or beside what it copied, on a re-run).
	DestHolds []DestFolder `json:"DestHolds,omitempty"`
	// NotPersonal lists the source folders left out because they are other users' or shared
	// (MailboxSpec.Namespaces includes them); DestOnlyFolders the destination folders no
	// source folder maps to.
	NotPersonal     []NamespaceFolder `json:"NotPersonal,omitempty"`
	DestOnlyFolders []DestOnlyFolder  `json:"DestOnlyFolders,omitempty"`
}

// DestFolder is one destination folder's content.
type DestFolder struct {
	Name     string `json:"Name"`
	Messages int64  `json:"Messages"`
	Bytes    int64  `json:"Bytes"` // 0 when the server does not report sizes
}

// VerifyReport compares source and destination per folder under the folder map.
type VerifyReport struct {
	RunID       int64        `json:"RunID"`
	Folders     []FolderDiff `json:"Folders"`
	Missing     int64        `json:"Missing"` // totals; Missing excludes quarantined messages
	Extra       int64        `json:"Extra"`
	Quarantined int64        `json:"Quarantined"`
	FlagDiffs   int64        `json:"FlagDiffs"`
	DateDiffs   int64        `json:"DateDiffs"`
	OK          bool         `json:"OK"` // Missing == 0 (quarantined messages are reported separately, not counted missing)
	// LateCopiesRemoved counts second copies of our own interrupted APPENDs that landed after
	// the message was copied again, removed from the destination by this verification.
	LateCopiesRemoved int64 `json:"LateCopiesRemoved"`
	// Rewritten counts messages present on the destination with identifying headers the
	// destination server rewrote when it stored them (Cyrus: raw 8-bit bytes as 'X'); each
	// folder's samples say which headers. They are not missing.
	Rewritten int64 `json:"Rewritten,omitempty"`
	// DestOnlyFolders: see PreflightReport; verification compares only mapped folders.
	DestOnlyFolders []DestOnlyFolder `json:"DestOnlyFolders,omitempty"`
}

// FolderDiff is one folder's verification result.
type FolderDiff struct {
	Source            string   `json:"Source"`
	Dest              string   `json:"Dest"`
	SpecialUse        string   `json:"SpecialUse"`
	SourceMessages    int64    `json:"SourceMessages"`
	DestMessages      int64    `json:"DestMessages"`
	Missing           int64    `json:"Missing"`
	Extra             int64    `json:"Extra"`
	Quarantined       int64    `json:"Quarantined"`
	FlagDiffs         int64    `json:"FlagDiffs"`
	DateDiffs         int64    `json:"DateDiffs"`
	LateCopiesRemoved int64    `json:"LateCopiesRemoved"`
	Rewritten         int64    `json:"Rewritten,omitempty"` // see VerifyReport
	Samples           []string `json:"Samples"`             // up to 10 identities/descriptions of differing messages, for humans
}

// Progress is a pass's running state: what the activity heartbeats, and what a retried attempt
// resumes from.
type Progress struct {
	RunID    int64         `json:"RunID"`
	Folder   string        `json:"Folder"`  // a folder being worked on
	LastUID  uint32        `json:"LastUID"` // the last source UID handled in it
	Counters Counters      `json:"Counters"`
	Done     []FolderStats `json:"Done"`    // folders finished (in this or an earlier attempt of the pass)
	Elapsed  time.Duration `json:"Elapsed"` // time spent by this and earlier attempts
}

// Counters are a pass's running totals.
type Counters struct {
	Found            int64            `json:"Found"`
	Transferred      int64            `json:"Transferred"`
	Skipped          int64            `json:"Skipped"`
	Quarantined      int64            `json:"Quarantined"`
	Deleted          int64            `json:"Deleted"`
	FlagsUpdated     int64            `json:"FlagsUpdated"`
	BytesTransferred int64            `json:"BytesTransferred"`
	ErrorsByClass    map[string]int64 `json:"ErrorsByClass"`
	Recopied         int64            `json:"Recopied,omitempty"`
}
