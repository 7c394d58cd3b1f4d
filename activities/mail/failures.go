package mail

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/cutover/cutover/activities/mail/imapx"
	"github.com/cutover/cutover/activities/mail/sources"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// unreachableAttempts is the retry budget of a connection refused at dial time: a server
// restarting answers again within seconds, a wrong host or port never does.
const unreachableAttempts = 3

// AttemptFailure is one failed attempt of a mailbox activity as an operator should see it.
type AttemptFailure struct {
	JobID     int64
	Email     string
	Type      string // emailapi.ErrType*
	Message   string // the cause once, and what to do
	Attempt   int32
	Permanent bool // no further attempt: the mailbox fails
}

// failure classifies an engine error for Temporal with the project's error types: a
// non-retryable type for what retrying cannot fix, a typed retryable error for the rest. The
// message carries the cause once (no cause chain repeating it) and, for permanent failures,
// what to do. attempt is the activity's attempt (1 for the first).
func failure(err error, spec emailapi.MailboxSpec, attempt int32) error {
	if err == nil {
		return nil
	}
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		return err
	}
	typ, permanent := classifyFailure(err, attempt)
	msg := err.Error()
	if typ == emailapi.ErrTypeConnect && isRefused(err) {
		msg += fmt.Sprintf(" (attempt %d of %d before the mailbox fails)", attempt, unreachableAttempts)
	}
	if h := hint(typ, err, spec); h != "" && permanent {
		msg = strings.TrimRight(msg, ". ") + ". To fix: " + h
	}
	opts := temporal.ApplicationErrorOptions{NonRetryable: permanent}
	if typ == emailapi.ErrTypeThrottled {
		opts.NextRetryDelay = retryDelay(err) // throttle.go: the server's hint
	}
	return temporal.NewApplicationErrorWithOptions(msg, typ, opts)
}

// classifyFailure is the one mapping of engine errors onto emailapi.ErrType* values.
func classifyFailure(err error, attempt int32) (typ string, permanent bool) {
	var (
		se *SpecError
		ce *CredentialsError
	)
	switch {
	case errors.As(err, &se):
		return emailapi.ErrTypeBadSpec, true
	case errors.As(err, &ce):
		return emailapi.ErrTypeCredentialsUnavailable, true
	case isSourceError(err): // sourceopen.go: a malformed pst/mbox/eml/tgz/zimbra file
		return sources.ErrTypeBadSource, true
	case errors.Is(err, ErrMirrorAfterCutover):
		return emailapi.ErrTypeMirrorAfterCutover, true
	}
	switch imapx.ClassOf(err) {
	case imapx.ClassAuth:
		return emailapi.ErrTypeAuthFailed, true
	case imapx.ClassTLS:
		return emailapi.ErrTypeTLS, true
	case imapx.ClassPermission:
		return emailapi.ErrTypePermission, true
	case imapx.ClassConnect:
		if isRefused(err) && attempt >= unreachableAttempts {
			return emailapi.ErrTypeUnreachable, true
		}
		return emailapi.ErrTypeConnect, false
	case imapx.ClassThrottled:
		return emailapi.ErrTypeThrottled, false
	}
	return emailapi.ErrTypeInternal, false
}

// isRefused reports a dial that nothing answered: connection refused, no such host, no route.
func isRefused(err error) bool {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH)
}

// sideOf names the account an error is about, from the engine's "source: " or "destination: "
// prefix.
func sideOf(err error) string {
	msg := err.Error()
	switch {
	case strings.HasPrefix(msg, "destination:"):
		return "destination"
	case strings.HasPrefix(msg, "source:"):
		return "source"
	}
	var ce *CredentialsError
	if errors.As(err, &ce) {
		return ce.Side
	}
	return ""
}

// hint says what an operator does about a permanent failure.
func hint(typ string, err error, spec emailapi.MailboxSpec) string {
	side := sideOf(err)
	flag, ep := "--source", spec.Source
	if side == "destination" {
		flag, ep = "--dest", spec.Dest
	}
	job := fmt.Sprint(spec.JobID)
	newRef := fmt.Sprintf("store the right secret with `cutover vault put`, give the new reference with "+
		"`cutover email set-credentials %s %s %s REF` (or restart the job with a spec naming it), then `cutover email retry %s`",
		job, spec.Email, flag, job)
	switch typ {
	case emailapi.ErrTypeAuthFailed:
		return fmt.Sprintf("the %s server refused the login of %s; %s", orWord(side, "mail"), ep.User, newRef)
	case emailapi.ErrTypeCredentialsUnavailable:
		return "the vault cannot produce this credentials_ref (unknown, or the worker lacks the key in " +
			"CUTOVER_VAULT_KEYS); " + newRef
	case emailapi.ErrTypeUnreachable:
		return fmt.Sprintf("nothing answers at %s: check the %s host and port in the job spec and the firewall, "+
			"then `cutover email retry %s`",
			ep.Addr, orWord(side, "server's"), job)
	case emailapi.ErrTypeTLS:
		return fmt.Sprintf("the %s server's certificate is not trusted: give its CA with ca_file in the job spec "+
			"(or fix the certificate), then `cutover email retry %s`", orWord(side, "mail"), job)
	case emailapi.ErrTypePermission:
		return fmt.Sprintf("let the account create folders, or map the source folder onto an existing destination folder "+
			"with folder_map in the job spec, then `cutover email retry %s`", job)
	case emailapi.ErrTypeBadSpec:
		return "correct the job spec and start the job again"
	}
	return ""
}

func orWord(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// attemptOf is the activity's attempt number (1 outside an activity).
func attemptOf(ctx context.Context) int32 {
	if !activity.IsActivity(ctx) {
		return 1
	}
	return activity.GetInfo(ctx).Attempt
}

// fail classifies a failed attempt and reports it through OnAttemptFailed, so the job can show
// it while Temporal retries.
func (a *Activities) fail(ctx context.Context, spec emailapi.MailboxSpec, err error) error {
	attempt := attemptOf(ctx)
	out := failure(err, spec, attempt)
	if a.OnAttemptFailed != nil && out != nil {
		var ae *temporal.ApplicationError
		f := AttemptFailure{JobID: spec.JobID, Email: spec.Email, Message: out.Error(), Attempt: attempt}
		if errors.As(out, &ae) {
			f.Type, f.Message, f.Permanent = ae.Type(), ae.Message(), ae.NonRetryable()
		}
		a.OnAttemptFailed(context.WithoutCancel(ctx), f)
	}
	return out
}

// messageOf is an error's text for people: an application error's message without the SDK's
// "(type: …, retryable: …)" decoration.
func messageOf(err error) string {
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		return ae.Message()
	}
	return err.Error()
}
