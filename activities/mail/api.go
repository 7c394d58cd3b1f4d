// This file is the engine's side of the contract with the email workflows (workflows/email):
// the activity types and their error types. Their inputs, results and heartbeat details are
// emailapi's (MailboxSpec, PassRequest, PassStats, PreflightReport, VerifyReport, Progress).
// Names, types and semantics are fixed; fields may be added.

package mail

import (
	"context"
	"log/slog"

	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/activities/vault"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// maxDroppedKeywords bounds emailapi.PassStats.DroppedKeywords.
const maxDroppedKeywords = 20

// Activities is registered on the worker (worker/workerapp Register). Method names are the activity type names.
type Activities struct {
	DB     *store.DB
	Vault  *vault.Vault
	Logger *slog.Logger
	// Tune, when set, adjusts the engine before each call (batch sizes, reconnect and settle
	// delays, progress interval): for operators and tests. An addition to the contract.
	Tune func(*Engine)
	// OnAttemptFailed, when set, hears every failed attempt of a mailbox activity, classified
	// and with its hint (failures.go), so the job can show the cause while Temporal retries.
	// The worker signals the job workflow with it; it must not block.
	OnAttemptFailed func(ctx context.Context, f AttemptFailure)
	// OnPassProgress, when set, hears a sync pass's progress (passprogress.go), at most every
	// PassProgressEvery per mailbox and once when it ends, so the job shows live progress.
	// The worker signals the job workflow with it; it must not block for long.
	OnPassProgress func(ctx context.Context, p PassProgressReport)
	// LogDir, when set, receives a log of every run (preflight, pass, verification) of every
	// mailbox, like imapsync's per-mailbox logs: job-<id>/<mailbox>/run-<run id>-<kind>.log, its
	// path recorded in migration_runs.log_path (runlog.go).
	LogDir string
}

// PreflightMailbox records a migration_runs row (run_type preflight, tool imapsync) and updates
// migration_mailboxes (messages_source, bytes_source, status).
func (a *Activities) PreflightMailbox(ctx context.Context, spec emailapi.MailboxSpec) (emailapi.PreflightReport, error) {
	return a.preflightMailbox(ctx, spec)
}

// SyncMailbox runs one pass, heartbeating progress (folder, uid, counts) and resuming from its
// last heartbeat details on retry; records a migration_runs row (run_type from the request,
// idempotent per activity via an idempotency key derived from workflow id + activity id) with
// stats_json, and updates migration_mailboxes (counts, bytes, sync_percent, status
// syncing/ok/error/quarantine, last_error).
func (a *Activities) SyncMailbox(ctx context.Context, req emailapi.PassRequest) (emailapi.PassStats, error) {
	return a.syncMailbox(ctx, req)
}

// VerifyMailbox records a run (run_type verify, tool verify).
func (a *Activities) VerifyMailbox(ctx context.Context, spec emailapi.MailboxSpec) (emailapi.VerifyReport, error) {
	return a.verifyMailbox(ctx, spec)
}
