// Package client is cutover for upstream services: start an email job or a database migration
// from a typed spec, send the operator commands (signals, or validated updates that answer with
// the reason when refused), query progress and list migrations by phase — through the Temporal
// Go SDK, with the same workflow ids, search attributes and UI summaries the cutover CLI uses
// (the CLI is built on this package).
//
//	c, err := client.Dial(ctx, client.Options{Address: "127.0.0.1:7233"})
//	job, err := c.StartEmailJob(ctx, spec)            // spec: jobspec.Spec, credentials_refs only
//	st, err := c.EmailStatus(ctx, job.JobID)          // phase, gate, checks, per-mailbox progress
//	ack, err := c.Approve(ctx, job.JobID, "ops-lead", "checks reviewed")
//	jobs, err := c.List(ctx, client.ListOptions{Kind: client.KindEmail, Phase: "delta_sync"})
//
// Secrets never go through here: specs carry credentials_ref values from the vault.
package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"go.temporal.io/api/serviceerror"
	sdk "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"

	"github.com/cutover/cutover/internal/codec"
	"github.com/cutover/cutover/internal/temporalconn"
)

// Connection is how to reach Temporal: address, namespace, TLS (mutual TLS with a client
// certificate) and an API key, as the temporal CLI names them.
type Connection = temporalconn.Options

// DefaultTaskQueue is the task queue cutover's workers poll (worker/workerapp).
const DefaultTaskQueue = "cutover"

// Kinds of migration, the MigrationKind search attribute's values.
const (
	KindEmail    = "email"
	KindDatabase = "database"
)

// ConsoleView is the Temporal UI's list of migrations, without the child workflows they start
// (waves, mailbox passes, entities): the README's saved view.
const ConsoleView = `(MigrationKind = "email" OR MigrationKind = "database") AND ParentWorkflowId IS NULL`

// FailedView is ConsoleView narrowed to the failed migrations, the README's second saved view:
// a failed email job stays open (Running) for its retry, so Temporal's own status does not
// find it; its MigrationStatus does.
const FailedView = ConsoleView + ` AND MigrationStatus = "failed"`

// Options say where Temporal is. Zero values take TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
// CUTOVER_TASK_QUEUE and CUTOVER_PAYLOAD_KEYS from Getenv (default os.Getenv), else the
// defaults of a local stack; TLS and an API key come from Connection, else from the temporal
// CLI's variables (TEMPORAL_TLS_CERT, TEMPORAL_TLS_KEY, TEMPORAL_TLS_CA,
// TEMPORAL_TLS_SERVER_NAME, TEMPORAL_API_KEY).
type Options struct {
	Address   string
	Namespace string
	// Connection, when set, is the whole connection (address, namespace, TLS, API key);
	// Address and Namespace above still win when set.
	Connection *Connection
	TaskQueue  string
	Getenv     func(string) string
	Logger     *slog.Logger // SDK logs; default: warnings and errors to stderr
}

// Client talks to cutover's workflows.
type Client struct {
	tc        sdk.Client
	taskQueue string
	owned     bool
	dc        converter.DataConverter // decodes what the SDK hands over raw (heartbeat details)
}

// Dial connects to Temporal with the payload codec the workers use.
func Dial(ctx context.Context, o Options) (*Client, error) {
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	conn := temporalconn.FromEnv(getenv)
	if o.Connection != nil {
		conn = *o.Connection
	}
	conn.Address = firstOf(o.Address, conn.Address, temporalconn.DefaultAddress)
	conn.Namespace = firstOf(o.Namespace, conn.Namespace, temporalconn.DefaultNamespace)
	so, err := conn.ClientOptions()
	if err != nil {
		return nil, err
	}
	pc, err := codec.FromEnv(getenv)
	if err != nil {
		return nil, err
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	so.Logger, so.DataConverter = log.NewStructuredLogger(logger), codec.DataConverter(pc)
	tc, err := sdk.DialContext(ctx, so)
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s: %w", conn.Describe(), err)
	}
	c := New(tc, firstOf(o.TaskQueue, getenv("CUTOVER_TASK_QUEUE"), DefaultTaskQueue))
	c.owned, c.dc = true, codec.DataConverter(pc)
	return c, nil
}

// New wraps an SDK client the caller already has (and keeps owning); taskQueue "" is the
// default. Payloads it decodes itself use CUTOVER_PAYLOAD_KEYS like every cutover process.
func New(tc sdk.Client, taskQueue string) *Client {
	pc, err := codec.FromEnv(os.Getenv)
	if err != nil {
		pc = nil
	}
	return &Client{tc: tc, taskQueue: firstOf(taskQueue, DefaultTaskQueue), dc: codec.DataConverter(pc)}
}

// Temporal is the underlying SDK client, for anything this package does not wrap.
func (c *Client) Temporal() sdk.Client { return c.tc }

// TaskQueue is where this client starts workflows.
func (c *Client) TaskQueue() string { return c.taskQueue }

// Close closes the connection when Dial made it.
func (c *Client) Close() {
	if c.owned {
		c.tc.Close()
	}
}

// ErrNotFound means no such job or migration (no workflow with its id in this namespace).
var ErrNotFound = errors.New("not found")

// ErrAlreadyRunning means a migration with this id is running already.
var ErrAlreadyRunning = errors.New("already running")

// RefusedError is a command a workflow refused (an update's validator said no, with why).
type RefusedError struct {
	Command string
	Reason  string
}

func (e *RefusedError) Error() string { return e.Command + " refused: " + e.Reason }

// notFound maps the server's NotFound to ErrNotFound, naming what was looked for.
func notFound(err error, what string) error {
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return err
}

// ErrMessage is an error's message without the SDK's decorations ("(type: …, retryable: …)").
func ErrMessage(err error) string {
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		return ae.Message()
	}
	return err.Error()
}

// isRefusal tells an update's rejection (its validator's error) from transport failures.
func isRefusal(err error) bool {
	var ae *temporal.ApplicationError
	return errors.As(err, &ae)
}

// wait polls get every poll until done says so, the context ends, or get fails.
// waitOutage is how long wait keeps polling through transient errors before it gives up.
const waitOutage = 2 * time.Minute

// wait polls get until done. A transient error (a worker stopped while it answered the query,
// the server restarting or busy) is polled through for up to waitOutage: an operator's wait
// outlives a rolling restart of the workers. Any other error ends the wait at once.
func wait[T any](ctx context.Context, poll time.Duration, get func(context.Context) (T, error), done func(T) bool) (T, error) {
	if poll <= 0 {
		poll = time.Second
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	var failingSince time.Time
	for {
		v, err := get(ctx)
		switch {
		case err == nil && done(v):
			return v, nil
		case err == nil:
			failingSince = time.Time{}
		case ctx.Err() != nil || !transient(err):
			return v, err
		case failingSince.IsZero():
			failingSince = time.Now()
		case time.Since(failingSince) > waitOutage:
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, ctx.Err()
		case <-t.C:
		}
	}
}

// transient says whether err is one a later poll may not meet: the call was cut (a worker or
// the server went away mid-answer), the server was unavailable, busy or timed out.
func transient(err error) bool {
	var (
		canceled    *serviceerror.Canceled
		unavailable *serviceerror.Unavailable
		deadline    *serviceerror.DeadlineExceeded
		exhausted   *serviceerror.ResourceExhausted
	)
	return errors.As(err, &canceled) || errors.As(err, &unavailable) || errors.As(err, &deadline) ||
		errors.As(err, &exhausted) || errors.Is(err, context.DeadlineExceeded)
}

func firstOf(vs ...string) string {
	for _, v := range vs {
		if strings.TrimSpace(v) != "" {
			return v
		}
	}
	return ""
}
