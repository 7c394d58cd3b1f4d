package mail

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/cutover/cutover/activities/mail/imapx"
	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/activities/vault"
	"github.com/cutover/cutover/internal/heartbeat"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/email/emailapi"
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

// runKey is the idempotency key of this activity's run row: retries of one activity share it.
func runKey(ctx context.Context, kind string) *string {
	if !activity.IsActivity(ctx) {
		return nil
	}
	info := activity.GetInfo(ctx)
	k := fmt.Sprintf("%s/%s/%s/%s", kind, info.WorkflowExecution.ID, info.WorkflowExecution.RunID, info.ActivityID)
	return &k
}

// passLockSpace is the first key of the mailbox pass locks ("mail"); mergeLockSpace ("mrge")
// that of the pass locks of entries merged into one destination account.
const (
	passLockSpace  int32 = 0x6d61696c
	mergeLockSpace int32 = 0x6d726765
)

// passLock names the lock a writing pass of the mailbox holds: its own, or, for an entry
// merged into a destination account with others (merge: true), the account's. Merged entries'
// passes then take turns: the second finds the first's copies and adopts them, where two
// passes at once would both copy a message both sources hold. Accounts whose names hash alike
// only take turns too.
func passLock(spec emailapi.MailboxSpec) (space, key int32) {
	if !spec.Merge {
		return passLockSpace, int32(spec.MailboxID) // ids past 2^31 share locks: only serialised
	}
	h := fnv.New32a()
	h.Write([]byte(strings.ToLower(spec.Dest.Addr + "/" + spec.Dest.User)))
	return mergeLockSpace, int32(h.Sum32())
}

// errPassLockLost ends a pass whose lock went with its database connection.
var errPassLockLost = errors.New("the mailbox's pass lock was lost with its database connection")

// pendingLock is the mailbox's pass lock being taken (beginLock), beside the run row's write.
type pendingLock struct {
	done  chan struct{}
	l     *store.SessionLock
	err   error
	began time.Time
}

// beginLock starts taking the pass lock (passLock) of the mailbox; lockPass waits for it.
func (a *Activities) beginLock(ctx context.Context, spec emailapi.MailboxSpec) *pendingLock {
	pl := &pendingLock{done: make(chan struct{}), began: time.Now()}
	if a.DB == nil {
		close(pl.done)
		return pl
	}
	go func() {
		defer close(pl.done)
		space, key := passLock(spec)
		pl.l, pl.err = a.DB.LockSession(ctx, space, key)
	}()
	return pl
}

// abandon lets the lock go once it is taken (a pass that could not start).
func (pl *pendingLock) abandon() {
	go func() {
		<-pl.done
		if pl.l != nil {
			pl.l.Release()
		}
	}()
}

// lockPass makes a writing pass the only one of its mailbox, across activity attempts and
// workers. Temporal starts a retry when it has given up on an attempt (heartbeats lost while
// the server or the network was down), and that attempt may still be copying: both would
// append what the other had not recorded yet. The retry waits, heartbeating details so it is
// not timed out itself, until the earlier attempt has stopped and closed its connections; its
// reconcile then settles what that attempt left pending. The returned context ends if the lock
// is lost, and release lets it go.
func (a *Activities) lockPass(ctx context.Context, pl *pendingLock, spec emailapi.MailboxSpec, details emailapi.Progress) (context.Context, func(), error) {
	if a.DB == nil {
		return ctx, func() {}, nil
	}
	stop := heartbeat.KeepAlive(ctx, details)
	<-pl.done
	stop()
	if pl.err != nil {
		return ctx, nil, pl.err
	}
	l := pl.l
	if waited := time.Since(pl.began); waited > time.Second {
		a.logger().Info("waited for another pass of the mailbox (or of an entry merged into its account) to end",
			"mailbox_id", spec.MailboxID, "waited", waited.Round(time.Millisecond))
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
func (a *Activities) startRun(ctx context.Context, spec emailapi.MailboxSpec, rt model.RunType, tool model.Tool, by, kind string) (int64, error) {
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

func (a *Activities) finishRun(ctx context.Context, id int64, status model.RunStatus, stats any, l *runLog) {
	if a.DB == nil || id == 0 {
		return
	}
	logPath, err := l.write(a.LogDir, id, status)
	if err != nil {
		a.logger().Warn("write run log", "run_id", id, "dir", a.LogDir, "err", err)
	}
	b, err := json.Marshal(stats)
	if err != nil {
		b = []byte(`{}`)
	}
	code := int32(0)
	if status == model.RunFailed {
		code = 1
	}
	if err := a.DB.FinishRun(context.WithoutCancel(ctx), id, status, &code, b, logPath); err != nil {
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

func (a *Activities) preflightMailbox(ctx context.Context, spec emailapi.MailboxSpec) (emailapi.PreflightReport, error) {
	runID, err := a.startRun(ctx, spec, model.RunPreflight, model.ToolIMAPSync, "worker", "preflight")
	if err != nil {
		return emailapi.PreflightReport{}, a.fail(ctx, spec, err)
	}
	l := newRunLog(spec, "preflight")
	stop := heartbeat.KeepAlive(ctx, emailapi.Progress{RunID: runID})
	rep, err := a.engine().Preflight(ctx, spec, runID)
	stop()
	rep.RunID = runID
	if err != nil {
		observeFailure(err)
		l.failed(err)
		a.finishRun(ctx, runID, model.RunFailed, map[string]any{"error": err.Error(), "error_class": errorClass(err)}, l)
		out := a.fail(ctx, spec, err)
		a.setMailbox(ctx, spec.MailboxID, func(p *store.MailboxProgress) { p.Status, p.LastError = model.MailboxError, messageOf(out) })
		return rep, out
	}
	var msgs, bytes int64
	for _, f := range rep.Folders {
		msgs += f.SourceMessages
		bytes += f.SourceBytes
	}
	l.preflight(rep)
	a.finishRun(ctx, runID, model.RunSuccess, map[string]any{"folders": len(rep.Folders), "messages_source": msgs,
		"bytes_source": bytes, "dest_quota_used": rep.DestQuotaUsed, "dest_quota_limit": rep.DestQuotaLimit,
		"append_limit": rep.AppendLimit, "warnings": rep.Warnings}, l)
	a.setMailbox(ctx, spec.MailboxID, func(p *store.MailboxProgress) {
		p.MessagesSource, p.BytesSource = msgs, bytes
		if p.Status == model.MailboxError {
			p.Status, p.LastError = model.MailboxPending, ""
		}
	})
	return rep, nil
}

func (a *Activities) syncMailbox(ctx context.Context, req emailapi.PassRequest) (emailapi.PassStats, error) {
	if req.RunType == "" {
		req.RunType = model.RunDelta
	}
	by := req.TriggeredBy
	if by == "" {
		by = "worker"
	}
	rt, tool := passRunKind(req.Spec, req.RunType) // sourceopen.go: pst_upload, tgz_import, imap-upload, doveadm...
	passStart := time.Now()
	dry := req.Mode == model.ModeDryRun
	var pl *pendingLock
	if !dry {
		pl = a.beginLock(ctx, req.Spec) // beside the run row: the lock needs nothing from it
	}
	// Both sides log in beside the run row and the lock too: over a long link the logins are
	// most of a pass with nothing to copy. The engine reads nothing from them before it runs.
	eng := a.engine()
	dialing := eng.StartDial(ctx, req.Spec)
	tl := newTimeline(passStart)
	defer tl.log(a.logger().With("mailbox_id", req.Spec.MailboxID, "activity", "sync"))
	runID, err := a.startRun(ctx, req.Spec, rt, tool, by, "sync")
	if err != nil {
		if pl != nil {
			pl.abandon()
		}
		dialing.Abandon()
		return emailapi.PassStats{}, a.fail(ctx, req.Spec, err)
	}
	tl.mark("run_row")
	var resume *emailapi.Progress
	if activity.IsActivity(ctx) && activity.HasHeartbeatDetails(ctx) {
		var p emailapi.Progress
		if err := activity.GetHeartbeatDetails(ctx, &p); err == nil && p.RunID == runID {
			resume = &p
			a.logger().Info("resuming pass from heartbeat", "mailbox_id", req.Spec.MailboxID, "run_id", runID,
				"transferred", p.Counters.Transferred, "folders_done", len(p.Done), "folder", p.Folder, "last_uid", p.LastUID)
		}
	}
	marked := make(chan struct{}) // the mailbox's row says syncing: what the pass writes there comes after
	if !dry {
		details := emailapi.Progress{RunID: runID}
		if resume != nil {
			details = *resume
		}
		var release func()
		if ctx, release, err = a.lockPass(ctx, pl, req.Spec, details); err != nil {
			dialing.Abandon()
			return emailapi.PassStats{}, a.fail(ctx, req.Spec, err)
		}
		defer func() { release(); tl.mark("released") }()
		tl.mark("locked")
		// Beside the pass, not before it: the row is the operators' view, and the pass needs
		// nothing from it.
		go func() {
			defer close(marked)
			if a.DB == nil {
				return
			}
			if err := a.DB.SetMailboxSyncing(context.WithoutCancel(ctx), req.Spec.MailboxID); err != nil {
				a.logger().Error("update mailbox", "mailbox_id", req.Spec.MailboxID, "err", err)
			}
		}()
	} else {
		close(marked)
	}
	// Until the pass reports progress, a retry still resumes where the previous attempt got.
	initial := emailapi.Progress{RunID: runID}
	if resume != nil {
		initial = *resume
	}
	beat := heartbeat.Start(ctx, initial)
	// The SDK sends an activity's first heartbeat to the server before Set returns: beside the
	// pass, not before it (the previous attempt's details stand until then).
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		beat.Set(initial)
	}()
	report := a.passReporter(ctx, req)
	tl.mark("engine_start")
	stats, err := eng.Sync(ctx, req, SyncOptions{RunID: runID, Resume: resume, Dialed: dialing,
		OnProgress: func(p emailapi.Progress) { beat.Set(p); report(p.Counters.Transferred, false) }})
	tl.mark("engine_done")
	<-sent
	beat.Stop()
	<-marked
	tl.mark("marked")
	stats.RunID = runID
	if err != nil && errors.Is(context.Cause(ctx), errPassLockLost) {
		err = fmt.Errorf("%w: %w", errPassLockLost, err) // say why the pass was cut short
	}
	observePass(req.RunType, resume, stats, err)
	if err != nil {
		l := newRunLog(req.Spec, passKind(req))
		l.start = passStart
		l.pass(stats)
		l.failed(err)
		a.finishRun(ctx, runID, model.RunFailed, statsJSON(stats, err), l)
		out := a.fail(ctx, req.Spec, err)
		if !dry {
			a.setMailbox(ctx, req.Spec.MailboxID, func(p *store.MailboxProgress) { p.Status, p.LastError = model.MailboxError, messageOf(out) })
		}
		return stats, out
	}
	a.logger().Info("pass finished", "mailbox_id", req.Spec.MailboxID, "run_id", runID, "mode", stats.Mode,
		"found", stats.Found, "transferred", stats.Transferred, "pending", stats.Pending, "quarantined", stats.Quarantined,
		"msgs_per_sec", stats.MsgsPerSec, "duration", stats.Duration)
	a.logger().Debug("pass statistics\n" + Summary(stats))
	status := model.RunSuccess
	if stats.Pending > 0 {
		status = model.RunPartial
	}
	l := newRunLog(req.Spec, passKind(req))
	l.start = passStart
	l.pass(stats)
	// The run's row and the mailbox's are written at once: neither depends on the other.
	projected := make(chan struct{})
	go func() {
		defer close(projected)
		if !dry && a.DB != nil {
			// Every field of the projection comes from the pass: no need to read the row first.
			if err := a.DB.SetMailboxProgress(context.WithoutCancel(ctx), req.Spec.MailboxID, passProgress(stats)); err != nil {
				a.logger().Error("update mailbox", "mailbox_id", req.Spec.MailboxID, "err", err)
			}
		}
	}()
	a.finishRun(ctx, runID, status, statsJSON(stats, nil), l)
	tl.mark("run_finished")
	report(stats.Transferred, true)
	<-projected
	tl.mark("projected")
	return stats, nil
}

// passProgress is the mailbox's projection after a pass that ran to its end.
func passProgress(stats emailapi.PassStats) store.MailboxProgress {
	var p store.MailboxProgress
	for _, f := range stats.Folders {
		p.MessagesSource += f.SourceMessages
		p.BytesSource += f.SourceBytes
		p.MessagesDest += f.DestMessages
		p.BytesDest += f.DestBytes
	}
	switch {
	case stats.Pending > 0:
		p.Status = model.MailboxError
		p.LastError = fmt.Sprintf("%d message(s) not copied (%s)", stats.Pending, strings.Join(folderErrors(stats), "; "))
	case stats.Quarantined > 0:
		p.Status, p.LastError = model.MailboxQuarantine, fmt.Sprintf("%d message(s) quarantined", stats.Quarantined)
	default:
		p.Status, p.LastError = model.MailboxOK, ""
	}
	return p
}

// folderErrors lists error classes of the pass that are not per-message refusals.
func folderErrors(s emailapi.PassStats) []string {
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

// passKind names a pass in its log's file name: its run type, or dry-run.
func passKind(req emailapi.PassRequest) string {
	if req.Mode == model.ModeDryRun {
		return "dry-run"
	}
	return string(req.RunType)
}

// statsJSON renders the stats as migration_runs.stats_json (seed keys transferred, errors, folders).
func statsJSON(s emailapi.PassStats, err error) map[string]any {
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

func (a *Activities) verifyMailbox(ctx context.Context, spec emailapi.MailboxSpec) (emailapi.VerifyReport, error) {
	runID, err := a.startRun(ctx, spec, model.RunVerify, model.ToolVerify, "worker", "verify")
	if err != nil {
		return emailapi.VerifyReport{}, a.fail(ctx, spec, err)
	}
	l := newRunLog(spec, "verify")
	heartbeat.Record(ctx, emailapi.Progress{RunID: runID})
	stop := heartbeat.KeepAlive(ctx, emailapi.Progress{RunID: runID})
	rep, err := a.engine().Verify(ctx, spec, runID)
	stop()
	rep.RunID = runID
	if err != nil {
		observeFailure(err)
		l.failed(err)
		a.finishRun(ctx, runID, model.RunFailed, map[string]any{"error": err.Error(), "error_class": errorClass(err)}, l)
		return rep, a.fail(ctx, spec, err)
	}
	status := model.RunSuccess
	if !rep.OK {
		status = model.RunPartial
	}
	l.verify(rep)
	a.finishRun(ctx, runID, status, map[string]any{"ok": rep.OK, "missing": rep.Missing, "extra": rep.Extra,
		"quarantined": rep.Quarantined, "flag_diffs": rep.FlagDiffs, "date_diffs": rep.DateDiffs, "late_copies_removed": rep.LateCopiesRemoved, "rewritten": rep.Rewritten, "folders": rep.Folders}, l)
	return rep, nil
}
