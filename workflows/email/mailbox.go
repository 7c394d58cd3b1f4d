package email

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cutover/cutover/activities/emailjob"
	"github.com/cutover/cutover/activities/mail"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/taskqueue"
	"github.com/cutover/cutover/workflows/email/emailapi"
	"github.com/cutover/cutover/workflows/email/gate"
)

// nonRetryable are the engine's permanent failures: retrying cannot help.
var nonRetryable = []string{emailapi.ErrTypeAuthFailed, emailapi.ErrTypeBadSpec, emailapi.ErrTypeMirrorAfterCutover,
	emailapi.ErrTypeCredentialsUnavailable}

// modeFor is the pass mode of one mailbox: the task's, or the mailbox's own in a presync.
func modeFor(t emailapi.Task, spec emailapi.MailboxSpec) model.SyncMode {
	if t.Presync && spec.PresyncMode != "" {
		return spec.PresyncMode
	}
	return t.Mode
}

// MailboxInput is MailboxSyncWorkflow's input.
type MailboxInput struct {
	Task emailapi.Task        `json:"task"`
	Spec emailapi.MailboxSpec `json:"spec"`
}

// MailboxResult is one mailbox's outcome of a pass (emailapi).
type MailboxResult = emailapi.MailboxResult

// MirrorRefused reports whether a pass may not run because it would delete on a destination
// users may already write to. It is the workflow-side rule of "no mirror after DNS cutover".
func MirrorRefused(t emailapi.Task) bool {
	return t.Mode.Deletes() && (t.CutOver || t.Phase.AfterDNSCutover() ||
		t.Phase == model.PhaseFailed) // a failed job runs nothing, and never a mirror
}

func errMirrorRefused(email string, t emailapi.Task) error {
	return temporal.NewNonRetryableApplicationError(
		fmt.Sprintf("mirror pass of %s refused: DNS cutover (phase %s, cut over %v) means users write to the destination; only copy passes run now",
			email, t.Phase, t.CutOver), emailapi.ErrTypeMirrorAfterCutover, nil)
}

// MailboxSyncWorkflow runs one pass (preflight, sync or verify) of one mailbox and reports it.
// A mailbox that fails is a result with OK false (recorded on its row), not a workflow failure,
// so one bad mailbox never hides the others' outcome; only a refused mirror fails the workflow.
// Waves started before mailboxActivitiesChange run one per mailbox; later waves run the same
// pass (passMailbox) as activities of their own.
func MailboxSyncWorkflow(ctx workflow.Context, in MailboxInput) (MailboxResult, error) {
	return passMailbox(ctx, in, mailboxPass{details: true})
}

// mailboxPass says where a mailbox's pass runs: in its own MailboxSyncWorkflow (details: the
// workflow's current details are the mailbox's) or inside the wave (activity: its activities
// carry the mailbox's address as their id and a summary naming the pass).
type mailboxPass struct {
	details  bool
	activity bool
}

// passMailbox is one mailbox's pass: the engine's activity, and the mailbox row marked when it
// failed before the engine could record it.
func passMailbox(ctx workflow.Context, in MailboxInput, how mailboxPass) (MailboxResult, error) {
	res := MailboxResult{MailboxID: in.Spec.MailboxID, Email: in.Spec.Email}
	t := in.Task
	if t.Kind == emailapi.TaskSync {
		t.Mode = modeFor(t, in.Spec)
	}
	if t.Kind == emailapi.TaskSync && MirrorRefused(t) {
		return res, errMirrorRefused(in.Spec.Email, t)
	}
	if len(t.Include) > 0 {
		in.Spec.Include = t.Include
	}
	opts := mailboxActivityOptions(t)
	opts.TaskQueue = taskqueue.For(ctx, taskqueue.Mail) // the IMAP engine's pool
	if how.activity {
		// The address as the activity's id: the Temporal UI, the silent-worker notes and the
		// CLI's live view name the mailbox; a wave run starts each mailbox once.
		opts.ActivityID = in.Spec.Email
		opts.Summary = fmt.Sprintf("%s %s of %s", t.Kind, t.RunType, in.Spec.Email)
	}
	actx := workflow.WithActivityOptions(ctx, opts)
	start := workflow.Now(ctx)
	if how.details {
		workflow.SetCurrentDetails(ctx, fmt.Sprintf("**%s** %s of `%s`", t.Kind, t.RunType, in.Spec.Email))
	}
	res, err := runMailboxActivity(ctx, actx, t, in.Spec, res)
	if err != nil && errors.Is(err, errUnknownTask) {
		return res, err
	}
	res.Duration = workflow.Now(ctx).Sub(start)
	if how.details {
		workflow.SetCurrentDetails(ctx, mailboxDetails(t, in.Spec.Email, res, err))
	}
	if err != nil {
		if temporal.IsCanceledError(err) || ctx.Err() != nil {
			return res, err
		}
		res.OK, res.Error, res.ErrorType = false, errorText(err), errorType(err)
		res.Facts = gate.MailboxFacts{Email: in.Spec.Email, Error: res.Error}
	} else if !res.OK { // the activity worked; what it found fails the mailbox (e.g. quota)
		res.Error = res.ErrorType + ": " + res.Error
		res.Facts.Error = res.Error
	}
	if !res.OK {
		// The engine records what it can; a failure before it could (no credentials, no
		// connection) must still show on the mailbox row.
		mctx := workflow.WithActivityOptions(ctx, bookkeepingOptions(time.Minute))
		var b *emailjob.Activities
		mark := emailapi.MailboxMark{MailboxID: in.Spec.MailboxID, Status: model.MailboxError,
			LastError: fmt.Sprintf("%s %s: %s", t.Kind, t.RunType, res.Error)}
		if merr := workflow.ExecuteActivity(mctx, b.MarkEmailMailbox, mark).Get(ctx, nil); merr != nil {
			workflow.GetLogger(ctx).Warn("could not record mailbox failure", "mailbox", in.Spec.Email, "error", merr)
		}
	}
	return res, nil
}

// errUnknownTask marks a task kind no engine activity runs (a bad spec, never retried).
var errUnknownTask = errors.New("unknown task kind")

// runMailboxActivity runs the engine's activity of the task and folds its report into res.
func runMailboxActivity(ctx, actx workflow.Context, t emailapi.Task, spec emailapi.MailboxSpec,
	res MailboxResult) (MailboxResult, error) {
	var a *mail.Activities
	switch t.Kind {
	case emailapi.TaskPreflight:
		var rep emailapi.PreflightReport
		err := workflow.ExecuteActivity(actx, a.PreflightMailbox, spec).Get(ctx, &rep)
		if err == nil {
			res = preflightResult(res, rep)
		}
		return res, err
	case emailapi.TaskSync:
		req := emailapi.PassRequest{Spec: spec, Mode: t.Mode, RunType: t.RunType, Phase: t.Phase,
			Parallelism: t.Parallelism, TriggeredBy: t.TriggeredBy, RecheckDest: t.RecheckDest, DryRunOf: t.DryRunOf}
		var ps emailapi.PassStats
		err := workflow.ExecuteActivity(actx, a.SyncMailbox, req).Get(ctx, &ps)
		if err == nil {
			res = passResult(res, ps)
		}
		return res, err
	case emailapi.TaskVerify:
		var rep emailapi.VerifyReport
		err := workflow.ExecuteActivity(actx, a.VerifyMailbox, spec).Get(ctx, &rep)
		if err == nil {
			res = verifyResult(res, rep)
		}
		return res, err
	}
	return res, temporal.NewNonRetryableApplicationError(fmt.Sprintf("unknown task kind %q", t.Kind),
		emailapi.ErrTypeBadSpec, errUnknownTask)
}

// defaultHeartbeatTimeout bounds how long a mailbox activity whose worker died (a crash, a
// SIGKILL, a lost host) stays assigned to it before Temporal retries it on another worker. It
// is sized to the keep-alive, not to the work: every mailbox activity heartbeats every quarter
// of it whatever it is doing (internal/heartbeat), and the SDK sends at most every 80% of it,
// so 15 s leaves three seconds of slack and hands a dead worker's pass on within 15 s plus the
// first retry's 5 s (it was 5 minutes: a SIGKILLed worker's pass stood still that long).
const defaultHeartbeatTimeout = 15 * time.Second

// mailboxActivityOptions: every mailbox activity heartbeats (a sync its progress, preflight and
// verify their liveness), so a pass whose worker died is retried within the heartbeat timeout
// while a large mailbox may take many hours. Without it a verify lost with its worker would
// hold the job for the whole 12-hour start-to-close timeout.
func mailboxActivityOptions(t emailapi.Task) workflow.ActivityOptions {
	maxAttempts := int32(t.MaxAttempts)
	if maxAttempts <= 0 {
		maxAttempts = 10
	}
	maxInterval := t.MaxInterval
	if maxInterval <= 0 {
		maxInterval = 5 * time.Minute
	}
	o := workflow.ActivityOptions{
		StartToCloseTimeout: time.Hour,
		WaitForCancellation: true, // a cancelled mirror pass is known to have stopped before DNS work goes on
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: 5 * time.Second, BackoffCoefficient: 2,
			MaximumInterval: maxInterval, MaximumAttempts: maxAttempts, NonRetryableErrorTypes: nonRetryable},
	}
	o.HeartbeatTimeout = t.HeartbeatTimeout
	if o.HeartbeatTimeout <= 0 {
		o.HeartbeatTimeout = defaultHeartbeatTimeout
	}
	switch t.Kind {
	case emailapi.TaskSync:
		o.StartToCloseTimeout = 48 * time.Hour
	case emailapi.TaskVerify:
		o.StartToCloseTimeout = 12 * time.Hour
	}
	return o
}

// bookkeepingOptions retry PostgreSQL writes until they land; only a missing row or a bad spec
// stops them.
func bookkeepingOptions(timeout time.Duration) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: timeout,
		// They keep a heartbeat (emailjob), so a worker killed inside one holds the job up for
		// this long, not for the whole timeout.
		HeartbeatTimeout: defaultHeartbeatTimeout,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute,
			NonRetryableErrorTypes: []string{emailapi.ErrTypeBadSpec, emailapi.ErrTypeJobNotFound, emailapi.ErrTypeMailboxNotFound}},
	}
}

// errorText is an error for people: the engine's error type (AuthFailed, Connect, ...) and
// the message, without the SDK's "(type: ..., retryable: ...)" decoration.
func errorText(err error) string {
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		msg := ae.Message()
		// The cause once: an engine error carried as the cause often repeats the message.
		if c := errors.Unwrap(ae); c != nil {
			cm := c.Error()
			var ce *temporal.ApplicationError
			if errors.As(c, &ce) {
				cm = ce.Message()
			}
			if cm != "" && !strings.Contains(msg, cm) {
				msg += ": " + cm
			}
		}
		if t := ae.Type(); t != "" && !strings.ContainsAny(t, "*.") && !ownErrorTypes[t] && !strings.HasPrefix(msg, t+": ") {
			msg = t + ": " + msg
		}
		return truncate(msg, maxErrorText)
	}
	var te *temporal.TimeoutError
	if errors.As(err, &te) {
		return truncate("timeout ("+te.TimeoutType().String()+"): "+te.Message(), maxErrorText)
	}
	return truncate(err.Error(), maxErrorText)
}

// maxErrorText bounds an error kept in results and the status (the cause and its hint fit).
const maxErrorText = 1000

// ownErrorTypes are this package's phase failures, whose messages say it all.
var ownErrorTypes = map[string]bool{"MailboxesFailed": true, "VerifyMissing": true}

func errorType(err error) string {
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		return ae.Type()
	}
	var te *temporal.TimeoutError
	if errors.As(err, &te) {
		return "Timeout"
	}
	return ""
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func isInbox(special, name string) bool {
	return special == `\Inbox` || strings.EqualFold(name, "INBOX")
}

func passResult(res MailboxResult, ps emailapi.PassStats) MailboxResult {
	f := gate.MailboxFacts{Email: res.Email, Synced: true, Quarantined: ps.Quarantined, Pending: ps.Pending,
		DestHeld: ps.DestExtra, KeywordsDropped: ps.KeywordsDropped, DroppedKeywords: ps.DroppedKeywords,
		StaleFolders: staleFolders(ps.DestOnlyFolders)}
	for _, fs := range ps.Folders {
		f.SourceMessages += fs.SourceMessages
		f.DestMessages += fs.DestMessages
		res.SourceBytes += fs.SourceBytes
		res.DestBytes += fs.DestBytes
		switch {
		case isInbox(fs.SpecialUse, fs.Source):
			f.HasInbox = true
			f.InboxSource += fs.SourceMessages
			f.InboxDest += fs.DestMessages
			f.InboxQuarantined += fs.Quarantined
		case fs.SpecialUse == `\Sent`:
			f.HasSent = true
			f.SentSource += fs.SourceMessages
			f.SentDest += fs.DestMessages
			f.SentQuarantined += fs.Quarantined
		}
	}
	res.Facts, res.RunID = f, ps.RunID
	res.Transferred, res.Deleted = ps.Transferred, ps.Deleted
	res.OK = true
	return res
}

// preflightResult sums the folders and turns what would make the sync fail into a failure
// (quota) and what needs a human look into warnings.
func preflightResult(res MailboxResult, rep emailapi.PreflightReport) MailboxResult {
	res.RunID = rep.RunID
	hasInbox, hasSent := false, false
	for _, fs := range rep.Folders {
		res.Facts.SourceMessages += fs.SourceMessages
		res.Facts.DestMessages += fs.DestMessages
		res.SourceBytes += fs.SourceBytes
		res.DestBytes += fs.DestBytes
		hasInbox = hasInbox || isInbox(fs.SpecialUse, fs.Source)
		hasSent = hasSent || fs.SpecialUse == `\Sent`
	}
	res.Facts.Email, res.Facts.HasInbox, res.Facts.HasSent = res.Email, hasInbox, hasSent
	for _, w := range rep.Warnings {
		res.Warnings = append(res.Warnings, res.Email+": "+w)
	}
	if !hasInbox {
		res.Warnings = append(res.Warnings, res.Email+": no INBOX on the source")
	}
	if !hasSent {
		res.Warnings = append(res.Warnings, res.Email+`: no \Sent folder detected on the source (check the folder map)`)
	}
	if rep.DestQuotaLimit > 0 {
		need := max(0, res.SourceBytes-res.DestBytes)
		free := rep.DestQuotaLimit - rep.DestQuotaUsed
		if need > free {
			res.OK = false
			res.ErrorType = "QuotaTooSmall"
			res.Error = fmt.Sprintf("destination quota too small: %d bytes to copy, %d free of %d", need, free, rep.DestQuotaLimit)
			return res
		}
	}
	res.OK = true
	return res
}

func verifyResult(res MailboxResult, rep emailapi.VerifyReport) MailboxResult {
	res.RunID = rep.RunID
	res.Missing, res.Extra, res.Rewritten = rep.Missing, rep.Extra, rep.Rewritten
	res.Facts.Email, res.Facts.Synced, res.Facts.Quarantined = res.Email, true, rep.Quarantined
	for _, fd := range rep.Folders {
		res.Facts.SourceMessages += fd.SourceMessages
		res.Facts.DestMessages += fd.DestMessages
		for _, s := range fd.Samples {
			if len(res.Samples) < 5 {
				res.Samples = append(res.Samples, res.Email+" "+fd.Source+": "+s)
			}
		}
	}
	res.OK = true
	return res
}

// mailboxDetails is the Temporal UI's current details of a finished mailbox pass.
func mailboxDetails(t emailapi.Task, email string, res MailboxResult, err error) string {
	d := fmt.Sprintf("**%s** %s of `%s`: ", t.Kind, t.RunType, email)
	switch {
	case err != nil:
		return d + "failed: " + errorText(err)
	case !res.OK:
		return d + "failed: " + res.Error
	}
	d += fmt.Sprintf("%d/%d messages on the destination", res.Facts.DestMessages, res.Facts.SourceMessages)
	if res.Transferred > 0 {
		d += fmt.Sprintf(", %d copied", res.Transferred)
	}
	if res.Facts.Quarantined > 0 {
		d += fmt.Sprintf(", %d quarantined", res.Facts.Quarantined)
	}
	if t.Kind == emailapi.TaskVerify {
		d += fmt.Sprintf(", %d missing", res.Missing)
	}
	return d + fmt.Sprintf(" in %s", res.Duration.Round(time.Millisecond))
}

// staleFolders counts destination folders holding copies of source folders now gone.
func staleFolders(fs []emailapi.DestOnlyFolder) int64 {
	var n int64
	for _, f := range fs {
		if f.FromSource != "" {
			n++
		}
	}
	return n
}
