package mail

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/cutover/cutover/activities/mail/imapx"
	"github.com/cutover/cutover/activities/mail/sources"
	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/activities/vault"
	"github.com/cutover/cutover/internal/heartbeat"
	"github.com/cutover/cutover/internal/model"
)

// Retryable error types beside ErrTypeConnect and ErrTypeThrottled.
const (
	ErrTypeTLS      = "TLSFailed" // certificate or handshake: permanent until the endpoint is fixed
	ErrTypeInternal = "Internal"  // our side (database, unexpected answer): retried
)

// throttleDelay is how long a throttled pass waits before its retry when the server gave no hint.
const throttleDelay = 30 * time.Second

func (a *Activities) logger() *slog.Logger {
	if a.Logger == nil {
		return slog.Default()
	}
	return a.Logger
}

func (a *Activities) engine() *Engine {
	var st *store.Store
	if a.DB != nil {
		st = a.DB.Store
	}
	e := &Engine{Store: st, Credentials: a.credentials, Logger: a.logger()}
	if a.Tune != nil {
		a.Tune(e)
	}
	return e
}

// credentials resolves a credentials_ref with the vault at the moment of login.
func (a *Activities) credentials(ctx context.Context, ref string) (imapx.Credentials, error) {
	if a.Vault == nil {
		return imapx.Credentials{}, vault.ErrNoKey
	}
	sec, err := a.Vault.Get(ctx, ref)
	if err != nil && !errors.Is(err, vault.ErrTokenExpired) { // an expired token is refreshed at login
		return imapx.Credentials{}, err
	}
	cred := imapx.Credentials{Password: sec.Password, Token: sec.OAuthToken}
	if sec.OAuthToken != "" || sec.RefreshToken != "" {
		cred.Tokens = a.oauthTokens(ref) // oauthcreds.go: refreshed before expiry and when refused
	}
	return cred, nil
}

// appError classifies an engine error for Temporal: the contract's non-retryable types for
// what retrying cannot fix, typed retryable errors for the rest.
func appError(err error) error {
	if err == nil {
		return nil
	}
	var (
		se *SpecError
		ce *CredentialsError
		ae *temporal.ApplicationError
	)
	switch {
	case errors.As(err, &ae):
		return err
	case errors.As(err, &se):
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeBadSpec, err)
	case errors.As(err, &ce):
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeCredentialsUnavailable, err)
	case isSourceError(err): // sourceopen.go: a malformed pst/mbox/eml/tgz/zimbra file
		return temporal.NewNonRetryableApplicationError(err.Error(), sources.ErrTypeBadSource, err)
	case errors.Is(err, ErrMirrorAfterCutover):
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeMirrorAfterCutover, err)
	}
	switch imapx.ClassOf(err) {
	case imapx.ClassAuth:
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeAuthFailed, err)
	case imapx.ClassTLS:
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeTLS, err)
	case imapx.ClassConnect:
		return temporal.NewApplicationError(err.Error(), ErrTypeConnect, err)
	case imapx.ClassThrottled:
		return temporal.NewApplicationErrorWithOptions(err.Error(), ErrTypeThrottled,
			temporal.ApplicationErrorOptions{Cause: err, NextRetryDelay: retryDelay(err)}) // throttle.go: the server's hint
	}
	return temporal.NewApplicationError(err.Error(), ErrTypeInternal, err)
}

// runKey is the idempotency key of this activity's run row: retries of one activity share it.
func runKey(ctx context.Context, kind string) *string {
	if !activity.IsActivity(ctx) {
		return nil
	}
	info := activity.GetInfo(ctx)
	k := fmt.Sprintf("%s/%s/%s/%s", kind, info.WorkflowExecution.ID, info.WorkflowExecution.RunID, info.ActivityID)
	return &k
}

// passLockSpace is the first key of the mailbox pass locks ("mail").
const passLockSpace int32 = 0x6d61696c

// errPassLockLost ends a pass whose lock went with its database connection.
var errPassLockLost = errors.New("the mailbox's pass lock was lost with its database connection")

// lockPass makes a writing pass the only one of its mailbox, across activity attempts and
// workers. Temporal starts a retry when it has given up on an attempt (heartbeats lost while
// the server or the network was down), and that attempt may still be copying: both would
// append what the other had not recorded yet. The retry waits, heartbeating details so it is
// not timed out itself, until the earlier attempt has stopped and closed its connections; its
// reconcile then settles what that attempt left pending. The returned context ends if the lock
// is lost, and release lets it go.
func (a *Activities) lockPass(ctx context.Context, mailboxID int64, details Progress) (context.Context, func(), error) {
	if a.DB == nil {
		return ctx, func() {}, nil
	}
	stop := heartbeat.KeepAlive(ctx, details)
	began := time.Now()
	l, err := a.DB.LockSession(ctx, passLockSpace, int32(mailboxID)) // ids past 2^31 share locks: only serialised
	stop()
	if err != nil {
		return ctx, nil, err
	}
	if waited := time.Since(began); waited > time.Second {
		a.logger().Info("waited for another pass of the mailbox to end", "mailbox_id", mailboxID, "waited", waited.Round(time.Millisecond))
	}
	ctx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-l.Lost():
			cancel(errPassLockLost)
		case <-ctx.Done():
		}
	}()
	return ctx, func() { cancel(nil); l.Release() }, nil
}

// startRun records (or, on a retry, re-opens) the run row.
func (a *Activities) startRun(ctx context.Context, spec MailboxSpec, rt model.RunType, tool model.Tool, by, kind string) (int64, error) {
	if a.DB == nil {
		return 0, nil
	}
	mb := spec.MailboxID
	r, err := a.DB.RecordRun(ctx, store.Run{JobID: spec.JobID, MailboxID: &mb, RunType: rt, Tool: tool,
		Status: model.RunRunning, TriggeredBy: by, IdempotencyKey: runKey(ctx, kind)})
	if err != nil {
		return 0, err
	}
	return r.ID, nil
}

func (a *Activities) finishRun(ctx context.Context, id int64, status model.RunStatus, stats any) {
	if a.DB == nil || id == 0 {
		return
	}
	b, err := json.Marshal(stats)
	if err != nil {
		b = []byte(`{}`)
	}
	code := int32(0)
	if status == model.RunFailed {
		code = 1
	}
	if err := a.DB.FinishRun(context.WithoutCancel(ctx), id, status, &code, b, ""); err != nil {
		a.logger().Error("record run outcome", "run_id", id, "err", err)
	}
}

// setMailbox updates the mailbox's projection, keeping fields the caller leaves negative.
func (a *Activities) setMailbox(ctx context.Context, id int64, f func(*store.MailboxProgress)) {
	if a.DB == nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	mb, err := a.DB.GetMailbox(ctx, id)
	if err != nil {
		a.logger().Error("read mailbox", "mailbox_id", id, "err", err)
		return
	}
	p := store.MailboxProgress{MessagesSource: mb.MessagesSource, MessagesDest: mb.MessagesDest, BytesSource: mb.BytesSource,
		BytesDest: mb.BytesDest, Status: mb.Status, LastError: mb.LastError}
	f(&p)
	if err := a.DB.SetMailboxProgress(ctx, id, p); err != nil {
		a.logger().Error("update mailbox", "mailbox_id", id, "err", err)
	}
}

func (a *Activities) preflightMailbox(ctx context.Context, spec MailboxSpec) (PreflightReport, error) {
	runID, err := a.startRun(ctx, spec, model.RunPreflight, model.ToolIMAPSync, "worker", "preflight")
	if err != nil {
		return PreflightReport{}, appError(err)
	}
	stop := heartbeat.KeepAlive(ctx, Progress{RunID: runID})
	rep, err := a.engine().Preflight(ctx, spec, runID)
	stop()
	rep.RunID = runID
	if err != nil {
		observeFailure(err)
		a.finishRun(ctx, runID, model.RunFailed, map[string]any{"error": err.Error(), "error_class": errorClass(err)})
		a.setMailbox(ctx, spec.MailboxID, func(p *store.MailboxProgress) { p.Status, p.LastError = model.MailboxError, err.Error() })
		return rep, appError(err)
	}
	var msgs, bytes int64
	for _, f := range rep.Folders {
		msgs += f.SourceMessages
		bytes += f.SourceBytes
	}
	a.finishRun(ctx, runID, model.RunSuccess, map[string]any{"folders": len(rep.Folders), "messages_source": msgs,
		"bytes_source": bytes, "dest_quota_used": rep.DestQuotaUsed, "dest_quota_limit": rep.DestQuotaLimit,
		"append_limit": rep.AppendLimit, "warnings": rep.Warnings})
	a.setMailbox(ctx, spec.MailboxID, func(p *store.MailboxProgress) {
		p.MessagesSource, p.BytesSource = msgs, bytes
		if p.Status == model.MailboxError {
			p.Status, p.LastError = model.MailboxPending, ""
		}
	})
	return rep, nil
}

func (a *Activities) syncMailbox(ctx context.Context, req PassRequest) (PassStats, error) {
	if req.RunType == "" {
		req.RunType = model.RunDelta
	}
	by := req.TriggeredBy
	if by == "" {
		by = "worker"
	}
	rt, tool := passRunKind(req.Spec, req.RunType) // sourceopen.go: pst_upload, tgz_import, imap-upload, doveadm...
	runID, err := a.startRun(ctx, req.Spec, rt, tool, by, "sync")
	if err != nil {
		return PassStats{}, appError(err)
	}
	var resume *Progress
	if activity.IsActivity(ctx) && activity.HasHeartbeatDetails(ctx) {
		var p Progress
		if err := activity.GetHeartbeatDetails(ctx, &p); err == nil && p.RunID == runID {
			resume = &p
			a.logger().Info("resuming pass from heartbeat", "mailbox_id", req.Spec.MailboxID, "run_id", runID,
				"transferred", p.Counters.Transferred, "folders_done", len(p.Done), "folder", p.Folder, "last_uid", p.LastUID)
		}
	}
	dry := req.Mode == ModeDryRun
	if !dry {
		details := Progress{RunID: runID}
		if resume != nil {
			details = *resume
		}
		var release func()
		if ctx, release, err = a.lockPass(ctx, req.Spec.MailboxID, details); err != nil {
			return PassStats{}, appError(err)
		}
		defer release()
		a.setMailbox(ctx, req.Spec.MailboxID, func(p *store.MailboxProgress) { p.Status = model.MailboxSyncing })
	}
	heartbeat.Record(ctx, Progress{RunID: runID})
	stats, err := a.engine().Sync(ctx, req, SyncOptions{RunID: runID, Resume: resume,
		OnProgress: func(p Progress) { heartbeat.Record(ctx, p) }})
	stats.RunID = runID
	if err != nil && errors.Is(context.Cause(ctx), errPassLockLost) {
		err = fmt.Errorf("%w: %w", errPassLockLost, err) // say why the pass was cut short
	}
	observePass(req.RunType, resume, stats, err)
	if err != nil {
		a.finishRun(ctx, runID, model.RunFailed, stats.json(err))
		if !dry {
			a.setMailbox(ctx, req.Spec.MailboxID, func(p *store.MailboxProgress) { p.Status, p.LastError = model.MailboxError, err.Error() })
		}
		return stats, appError(err)
	}
	a.logger().Info("pass finished", "mailbox_id", req.Spec.MailboxID, "run_id", runID, "mode", stats.Mode,
		"found", stats.Found, "transferred", stats.Transferred, "pending", stats.Pending, "quarantined", stats.Quarantined,
		"msgs_per_sec", stats.MsgsPerSec, "duration", stats.Duration)
	a.logger().Debug("pass statistics\n" + stats.Summary())
	status := model.RunSuccess
	if stats.Pending > 0 {
		status = model.RunPartial
	}
	a.finishRun(ctx, runID, status, stats.json(nil))
	if !dry {
		a.setMailbox(ctx, req.Spec.MailboxID, func(p *store.MailboxProgress) {
			p.MessagesSource, p.BytesSource, p.MessagesDest, p.BytesDest = 0, 0, 0, 0
			for _, f := range stats.Folders {
				p.MessagesSource += f.SourceMessages
				p.BytesSource += f.SourceBytes
				p.MessagesDest += f.DestMessages
				p.BytesDest += f.DestBytes
			}
			switch {
			case stats.Pending > 0:
				p.Status = model.MailboxError
				p.LastError = fmt.Sprintf("%d message(s) not copied (%s)", stats.Pending, strings.Join(stats.folderErrors(), "; "))
			case stats.Quarantined > 0:
				p.Status, p.LastError = model.MailboxQuarantine, fmt.Sprintf("%d message(s) quarantined", stats.Quarantined)
			default:
				p.Status, p.LastError = model.MailboxOK, ""
			}
		})
	}
	return stats, nil
}

// folderErrors lists error classes of the pass that are not per-message refusals.
func (s PassStats) folderErrors() []string {
	var out []string
	for class, n := range s.ErrorsByClass {
		switch class {
		case "too_big", "quota", "append_rejected", "unreadable", "reconnect", "uidvalidity_reset", "dest_uidvalidity_reset",
			"connect", "cancelled":
			continue
		}
		out = append(out, fmt.Sprintf("%s: %d", class, n))
	}
	return out
}

// json renders the stats as migration_runs.stats_json (seed keys transferred, errors, folders).
func (s PassStats) json(err error) map[string]any {
	var errs int64
	for _, n := range s.ErrorsByClass {
		errs += n
	}
	m := map[string]any{
		"transferred": s.Transferred, "errors": errs, "folders": len(s.Folders), "mode": s.Mode,
		"found": s.Found, "skipped": s.Skipped, "quarantined": s.Quarantined, "deleted": s.Deleted,
		"flags_updated": s.FlagsUpdated, "bytes_transferred": s.BytesTransferred, "pending": s.Pending,
		"duration_seconds": s.Duration.Seconds(), "msgs_per_sec": s.MsgsPerSec, "mb_per_sec": s.MBPerSec,
		"errors_by_class": s.ErrorsByClass, "folder_stats": s.Folders,
	}
	if err != nil {
		m["error"] = err.Error()
		m["error_class"] = errorClass(err)
	}
	return m
}

func (a *Activities) verifyMailbox(ctx context.Context, spec MailboxSpec) (VerifyReport, error) {
	runID, err := a.startRun(ctx, spec, model.RunVerify, model.ToolVerify, "worker", "verify")
	if err != nil {
		return VerifyReport{}, appError(err)
	}
	heartbeat.Record(ctx, Progress{RunID: runID})
	stop := heartbeat.KeepAlive(ctx, Progress{RunID: runID})
	rep, err := a.engine().Verify(ctx, spec, runID)
	stop()
	rep.RunID = runID
	if err != nil {
		observeFailure(err)
		a.finishRun(ctx, runID, model.RunFailed, map[string]any{"error": err.Error(), "error_class": errorClass(err)})
		return rep, appError(err)
	}
	status := model.RunSuccess
	if !rep.OK {
		status = model.RunPartial
	}
	a.finishRun(ctx, runID, status, map[string]any{"ok": rep.OK, "missing": rep.Missing, "extra": rep.Extra,
		"quarantined": rep.Quarantined, "flag_diffs": rep.FlagDiffs, "date_diffs": rep.DateDiffs, "late_copies_removed": rep.LateCopiesRemoved, "folders": rep.Folders})
	return rep, nil
}
