package dbcopy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.temporal.io/sdk/temporal"

	"github.com/cutover/cutover/activities/store"
)

// Error types of failures (stable strings workflows and operators match on). The first three
// and the permanent ones are non-retryable: they need an operator (fix, then `cutover db
// retry`); timeouts and connection errors are retried by Temporal.
const (
	ErrTypeSpec       = "dbcopy.spec"
	ErrTypeApproval   = "dbcopy.approval_required"
	ErrTypeTransition = "dbcopy.bad_transition"
	// ErrTypePermanent: a refused privilege or login, a database that does not exist, or a
	// database unreachable for longer than unreachableGrace.
	ErrTypePermanent = "dbcopy.permanent"
	// ErrTypeTimeout: a lock or statement wait hit its bound (lock_timeout, statement_timeout,
	// idle_in_transaction_session_timeout) or PostgreSQL broke a deadlock: retried.
	ErrTypeTimeout = "dbcopy.timeout"
	// ErrTypeConnection: a database could not be reached or dropped the connection: retried
	// for unreachableGrace, then permanent.
	ErrTypeConnection = "dbcopy.connection"
)

// unreachableGrace is how long a database may refuse connections (a restart, a failover)
// before activities stop retrying: one down for longer needs an operator.
var unreachableGrace = 90 * time.Second

// pgCode is the SQLSTATE of err, "" when it is not a PostgreSQL error.
func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// permanentHint says what to fix for an error no retry can cure, "" for any other.
func permanentHint(err error) string {
	switch c := pgCode(err); {
	case c == "42501":
		return "a role lacks a privilege: grant it (the target's role needs CREATE on the target database " +
			"and its schemas, a PostgreSQL source's role SELECT on its tables)"
	case c == "28P01" || c == "28000":
		return "the database refused the login: fix the user or the password (credentials_ref) in the spec"
	case c == "3D000":
		return "the database does not exist: create it or fix the DSN"
	case c == "3F000":
		return "the schema does not exist: create it or fix the spec"
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return "the host name does not resolve: fix the host in the DSN"
	}
	return ""
}

// isTimeout reports a bounded wait that ran out, or a deadlock PostgreSQL broke.
func isTimeout(err error) bool {
	switch pgCode(err) {
	case "55P03", "57014", "25P03", "40P01", "40001":
		return true
	}
	return false
}

// isConnection reports a database that could not be reached or went away.
func isConnection(err error) bool {
	if c := pgCode(err); len(c) == 5 && (c[:2] == "08" || c == "57P01" || c == "57P02" || c == "57P03") {
		return true
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		pgconn.SafeToRetry(err)
}

// classify gives an activity's error its type: spec misfits, refused transitions, missing
// approvals and permanent errors are non-retryable (the message says what to fix); timeouts
// and connection errors are typed and retried; anything else is retried untyped.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		return err
	}
	if errors.Is(err, ErrSpec) || errors.Is(err, ErrApprovalRequired) || errors.As(err, new(*store.ErrBadTransition)) {
		return nonRetryable(err)
	}
	if hint := permanentHint(err); hint != "" {
		msg := fmt.Sprintf("%v — %s, then resume with 'cutover db retry'", err, hint)
		return temporal.NewNonRetryableApplicationError(msg, ErrTypePermanent, err)
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	if isTimeout(err) {
		return temporal.NewApplicationError(err.Error(), ErrTypeTimeout, err)
	}
	if isConnection(err) {
		return temporal.NewApplicationError(err.Error(), ErrTypeConnection, err)
	}
	return err
}

// downTracker remembers since when each migration's databases have been unreachable (in this
// worker), so a database down for longer than the grace fails the activity for good.
type downTracker struct {
	mu    sync.Mutex
	since map[string]time.Time
}

// judge classifies err for migration id: a connection error past the grace becomes
// permanent; any other outcome (success included) ends the unreachable spell.
func (d *downTracker) judge(id string, err error) error {
	err = classify(err)
	var ae *temporal.ApplicationError
	conn := errors.As(err, &ae) && ae.Type() == ErrTypeConnection
	d.mu.Lock()
	defer d.mu.Unlock()
	if !conn {
		delete(d.since, id)
		return err
	}
	if d.since == nil {
		d.since = map[string]time.Time{}
	}
	first, ok := d.since[id]
	if !ok {
		d.since[id] = time.Now()
		return err
	}
	if down := time.Since(first); down > unreachableGrace {
		msg := fmt.Sprintf("unreachable for %s: %v — check that the host and port in the DSN are right and "+
			"PostgreSQL runs there, then resume with 'cutover db retry'", down.Round(time.Second), ae.Unwrap())
		return temporal.NewNonRetryableApplicationError(msg, ErrTypePermanent, ae.Unwrap())
	}
	return err
}
