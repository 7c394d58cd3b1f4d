// Package workerapp is the cutover worker: it connects to Temporal and PostgreSQL, registers
// every workflow and activity, serves Prometheus metrics and stops gracefully. worker/main.go
// runs it as a process; tests run it in-process.
package workerapp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/cutover/cutover/activities/dbcopy"
	"github.com/cutover/cutover/activities/dbping"
	"github.com/cutover/cutover/activities/dnscheck"
	"github.com/cutover/cutover/activities/emailjob"
	"github.com/cutover/cutover/activities/mail"
	"github.com/cutover/cutover/activities/report"
	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/activities/vault"
	"github.com/cutover/cutover/activities/webhook"
	"github.com/cutover/cutover/internal/codec"
	"github.com/cutover/cutover/internal/metrics"
	"github.com/cutover/cutover/internal/taskqueue"
	"github.com/cutover/cutover/internal/temporalconn"
	"github.com/cutover/cutover/workflows/dbmigrate"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	emailwf "github.com/cutover/cutover/workflows/email"
	"github.com/cutover/cutover/workflows/email/emailapi"
	healthwf "github.com/cutover/cutover/workflows/health"
)

// DefaultTaskQueue is where cutover's workflows and activities run.
const DefaultTaskQueue = "cutover"

// Config is the worker's configuration; ConfigFromEnv documents each variable.
type Config struct {
	TemporalAddress string
	Namespace       string
	// Connection holds TLS and the API key (TEMPORAL_TLS_CERT, TEMPORAL_TLS_KEY, TEMPORAL_TLS_CA,
	// TEMPORAL_TLS_SERVER_NAME, TEMPORAL_API_KEY); its address and namespace are the two above.
	Connection temporalconn.Options
	TaskQueue  string // the workflows' queue; the mail and db pools poll "<TaskQueue>-mail" and "-db"
	// Pools are the worker pools this process serves (CUTOVER_TASK_QUEUES): nil = all of them.
	Pools       []taskqueue.Pool
	DatabaseURL string
	// DBTargetURL is the target of database migrations whose spec names none (target.dsn);
	// "" refuses them. Never the control database (DatabaseURL): the worker refuses that.
	DBTargetURL   string
	MetricsAddr   string        // "" disables the endpoint
	ShutdownGrace time.Duration // how long in-flight activities get to finish on SIGTERM
	// MaxActivities bounds the concurrent activities of each pool this process serves; 0 = the
	// SDK's default. MaxMailActivities and MaxDBActivities, when set, bound the mail and db
	// pools instead (CUTOVER_MAX_MAIL_ACTIVITIES, CUTOVER_MAX_DB_ACTIVITIES).
	MaxActivities     int
	MaxMailActivities int
	MaxDBActivities   int
	PayloadCodec      *codec.Codec // nil = from CUTOVER_PAYLOAD_KEYS when set, else payloads in clear
	ReportDir         string       // migration reports; "" = $CUTOVER_REPORT_DIR, else <temp dir>/cutover-reports ('make dev' sets .cutover/reports)
	DNSServer         string       // the resolver of the DNS checks, host[:port]; "" = the system's
	Logger            *slog.Logger
}

// ConfigFromEnv reads the Temporal connection (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_TLS*,
// TEMPORAL_API_KEY: temporalconn), CUTOVER_TASK_QUEUE, CUTOVER_TASK_QUEUES (the pools: workflows,
// mail, db; all by default), DATABASE_URL, CUTOVER_DB_TARGET_URL, CUTOVER_METRICS_ADDR, CUTOVER_SHUTDOWN_GRACE,
// CUTOVER_MAX_ACTIVITIES, CUTOVER_MAX_MAIL_ACTIVITIES, CUTOVER_MAX_DB_ACTIVITIES and
// CUTOVER_PAYLOAD_KEYS.
func ConfigFromEnv() (Config, error) {
	conn := temporalconn.FromEnv(os.Getenv)
	if err := conn.Validate(); err != nil {
		return Config{}, err
	}
	cfg := Config{
		TemporalAddress: conn.Address,
		Namespace:       conn.Namespace,
		Connection:      conn,
		TaskQueue:       env("CUTOVER_TASK_QUEUE", DefaultTaskQueue),
		DatabaseURL:     store.URLFromEnv(),
		DBTargetURL:     os.Getenv(dbmigrateapi.EnvTargetURL),
		MetricsAddr:     env("CUTOVER_METRICS_ADDR", "127.0.0.1:9464"),
		ShutdownGrace:   30 * time.Second,
		ReportDir:       os.Getenv(report.EnvDir), // "" → Run picks a directory under the system temp dir
		DNSServer:       os.Getenv(dnscheck.EnvServer),
	}
	if v := os.Getenv("CUTOVER_SHUTDOWN_GRACE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return cfg, fmt.Errorf("CUTOVER_SHUTDOWN_GRACE=%q: want a duration such as 30s", v)
		}
		cfg.ShutdownGrace = d
	}
	var err error
	if cfg.Pools, err = taskqueue.ParsePools(os.Getenv("CUTOVER_TASK_QUEUES")); err != nil {
		return cfg, fmt.Errorf("CUTOVER_TASK_QUEUES: %w", err)
	}
	for name, to := range map[string]*int{"CUTOVER_MAX_ACTIVITIES": &cfg.MaxActivities,
		"CUTOVER_MAX_MAIL_ACTIVITIES": &cfg.MaxMailActivities, "CUTOVER_MAX_DB_ACTIVITIES": &cfg.MaxDBActivities} {
		v := os.Getenv(name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return cfg, fmt.Errorf("%s=%q: want a non-negative integer", name, v)
		}
		*to = n
	}
	return cfg, nil
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// Deps are what activities need from the process.
type Deps struct {
	DB      *store.DB
	Vault   *vault.Vault // nil when no key is configured: activities that need it fail clearly
	Metrics *metrics.Metrics
	Logger  *slog.Logger
	// ReportDir is where migration reports are written ("" = <temp dir>/cutover-reports).
	ReportDir string
	// Signal, when set, signals a workflow: the progress and failed attempts of mailbox
	// activities reach their job this way (emailapi.MailboxReportsSignal, gathered per job).
	Signal func(ctx context.Context, workflowID, name string, arg any) error
	// Temporal, when set, lets the email bookkeeping delete a run started with a secret in its
	// input and start its redacted replacement (emailjob.PurgeRefusedStart).
	Temporal client.Client
	// Namespace is Temporal's namespace (for deleting histories).
	Namespace string
	// DNSServer is the DNS checks' resolver (Config.DNSServer).
	DNSServer string
	// DBTargetURL is the default target of database migrations (Config.DBTargetURL).
	DBTargetURL string

	toJobs *jobReports // shared by the pools of one process (startPools), so a job gets one report an interval
}

// Register adds every workflow and activity to r, as a worker serving every pool on one queue.
func Register(r worker.Registry, d Deps) {
	registerPool(r, taskqueue.Workflows, d) // it registers every workflow and activity
}

// registerPool adds what pool p runs to r. Workflow types carry explicit names (the ones
// clients start); activity method names are unique across structs so they register flat. The
// workflows pool also registers the mail and database activities: a run started before the
// pools split schedules them on the workflows' queue (taskqueue.For), and must still finish.
func registerPool(r worker.Registry, p taskqueue.Pool, d Deps) {
	reports := &report.Reporter{Dir: d.ReportDir, DB: d.DB, Logger: d.Logger}
	if reports.Dir == "" {
		reports.Dir = filepath.Join(os.TempDir(), "cutover-reports") // as Run does without configuration
	}
	mailActs := func() {
		toJobs := d.toJobs
		if toJobs == nil && d.Signal != nil {
			toJobs = newJobReports(ReportsEvery, d.Signal, d.Logger)
		}
		r.RegisterActivityWithOptions(&mail.Activities{DB: d.DB, Vault: d.Vault, Logger: d.Logger,
			OnAttemptFailed: attemptNotifier(toJobs), OnPassProgress: progressNotifier(toJobs),
			LogDir: filepath.Join(reports.Dir, "logs")}, activity.RegisterOptions{})
	}
	dbActs := func() {
		r.RegisterActivityWithOptions(&dbcopy.Activities{TargetURL: d.DBTargetURL, ControlURL: dbURL(d.DB), Vault: d.Vault,
			Logger:       d.Logger,
			OnTransition: reports.DBTransition}, activity.RegisterOptions{})
	}
	switch p {
	case taskqueue.Mail:
		mailActs()
	case taskqueue.DB:
		dbActs()
	case taskqueue.Workflows:
		r.RegisterWorkflowWithOptions(healthwf.Workflow, workflow.RegisterOptions{Name: healthwf.Name})
		r.RegisterActivityWithOptions(&dbping.Activities{DB: d.DB}, activity.RegisterOptions{})
		emailwf.RegisterWorkflows(r)
		emailjob.RegisterActivities(r, &emailjob.Activities{DB: d.DB, Logger: d.Logger, OnRecorded: reports.EmailRecorded,
			Purge: purger(d)})
		dbmigrate.RegisterWorkflows(r)
		r.RegisterActivityWithOptions(&webhook.Activities{DB: d.DB, Vault: d.Vault, Logger: d.Logger},
			activity.RegisterOptions{})
		r.RegisterActivityWithOptions(&dnscheck.Activities{Server: d.DNSServer}, activity.RegisterOptions{})
		mailActs()
		dbActs()
	}
}

// progressNotifier tells a job how far a mailbox's sync pass got, for its live progress.
func progressNotifier(r *jobReports) func(context.Context, mail.PassProgressReport) {
	if r == nil {
		return nil
	}
	return func(_ context.Context, p mail.PassProgressReport) {
		r.progress(p.JobID, emailapi.PassProgress{Email: p.Email, RunType: p.RunType, Copied: p.Copied, Done: p.Done})
	}
}

// attemptNotifier tells a job about a failed attempt of one of its mailbox activities (the
// attempt's own error is what Temporal acts on).
func attemptNotifier(r *jobReports) func(context.Context, mail.AttemptFailure) {
	if r == nil {
		return nil
	}
	return func(_ context.Context, f mail.AttemptFailure) {
		r.attempt(f.JobID, emailapi.AttemptFailed{Email: f.Email, Type: f.Type, Message: f.Message, Attempt: f.Attempt,
			Permanent: f.Permanent, At: time.Now().UTC()})
	}
}

// dbURL is the control database's URL: database migrations whose spec names no target write there.
func dbURL(db *store.DB) string {
	if db == nil {
		return ""
	}
	return db.Pool.Config().ConnString()
}

// Info describes a running worker.
type Info struct {
	MetricsAddr string
	TaskQueue   string   // the workflows' queue
	Queues      []string // the task queues it polls, one per pool it serves
}

// Run starts the worker and blocks until ctx is cancelled (SIGTERM in main) or it fails.
// ready, if set, is called once the worker polls.
func Run(ctx context.Context, cfg Config, ready func(Info)) error {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	db, err := store.OpenAndMigrate(ctx, cfg.DatabaseURL)
	if err != nil {
		if ctx.Err() != nil { // stopped while opening (a migration's transaction rolls back): a clean stop
			logger.Info("worker stopped before it opened the control database")
			return nil
		}
		return fmt.Errorf("worker: control database: %w", err)
	}
	defer db.Close()

	v, err := vault.FromEnv(db.Store)
	if err != nil {
		if !errors.Is(err, vault.ErrNoKey) {
			return fmt.Errorf("worker: %w", err)
		}
		logger.Warn("vault has no key; activities that need credentials will fail", "env", vault.EnvKeys)
	}

	if cfg.PayloadCodec == nil {
		// Every process of a deployment (workers, CLI, tests' clients) reads the same variable.
		if cfg.PayloadCodec, err = codec.FromEnv(os.Getenv); err != nil {
			return fmt.Errorf("worker: %w", err)
		}
	}

	m, err := metrics.New()
	if err != nil {
		return err
	}
	mctx, stopMetrics := context.WithCancel(context.WithoutCancel(ctx))
	defer stopMetrics()
	metricsAddr := ""
	if cfg.MetricsAddr != "" {
		if metricsAddr, _, err = m.Serve(mctx, cfg.MetricsAddr); err != nil {
			return fmt.Errorf("worker: %w", err)
		}
	}

	conn := cfg.Connection
	conn.Address, conn.Namespace = cfg.TemporalAddress, cfg.Namespace
	co, err := conn.ClientOptions()
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	co.Logger, co.MetricsHandler, co.DataConverter = log.NewStructuredLogger(logger), m.SDKHandler(), codec.DataConverter(cfg.PayloadCodec)
	if co.Identity == "" {
		co.Identity = identity(cfg.Pools)
	}
	c, err := client.DialContext(ctx, co)
	if err != nil {
		if ctx.Err() != nil { // stopped (SIGTERM) while still connecting: nothing ran, a clean stop
			logger.Info("worker stopped before it connected to Temporal", "temporal", conn.Describe())
			return nil
		}
		return fmt.Errorf("worker: connect to Temporal at %s: %w", conn.Describe(), err)
	}
	defer c.Close()
	if err := checkNamespace(ctx, c, conn); err != nil {
		return fmt.Errorf("worker: %w", err)
	}

	if cfg.ReportDir == "" {
		if cfg.ReportDir = os.Getenv(report.EnvDir); cfg.ReportDir == "" {
			// Not the working directory: a worker started from a source tree (tests) must not
			// write into it. 'cutover dev up' points its worker at the state directory.
			cfg.ReportDir = filepath.Join(os.TempDir(), "cutover-reports")
		}
	}
	if abs, err := filepath.Abs(cfg.ReportDir); err == nil {
		cfg.ReportDir = abs
	}
	deps := Deps{DB: db, Vault: v, Metrics: m, Logger: logger, ReportDir: cfg.ReportDir, Temporal: c, Namespace: cfg.Namespace,
		DNSServer: cfg.DNSServer, DBTargetURL: cfg.DBTargetURL,
		Signal: func(ctx context.Context, id, name string, arg any) error {
			return c.SignalWorkflow(ctx, id, "", name, arg)
		}}
	ws, queues, err := startPools(c, cfg, deps)
	if err != nil {
		return fmt.Errorf("worker: start: %w", err)
	}
	if len(cfg.Pools) == 0 || slices.Contains(cfg.Pools, taskqueue.Workflows) {
		sw := &silenceWatcher{c: c, ns: cfg.Namespace, queue: cfg.TaskQueue, logger: logger, shown: map[string]string{}}
		wctx, stopWatch := context.WithCancel(ctx)
		defer stopWatch()
		go sw.run(wctx)
	}
	logger.Info("worker started", "temporal", conn.Describe(), "namespace", cfg.Namespace, "identity", co.Identity,
		"task_queues", queues, "metrics", metricsAddr, "payload_encryption", cfg.PayloadCodec != nil, "reports", cfg.ReportDir)
	if ready != nil {
		ready(Info{MetricsAddr: metricsAddr, TaskQueue: cfg.TaskQueue, Queues: queues})
	}
	<-ctx.Done()
	logger.Info("worker stopping; in-flight activities are handed back to other workers", "grace", cfg.ShutdownGrace)
	stopPools(ws)
	logger.Info("worker stopped")
	return nil
}

// purger deletes a refused run (its start event holds a secret) and starts a run of the same
// id with the redacted input, which refuses it with the same words.
func purger(d Deps) func(context.Context, emailjob.RefusedStart) error {
	if d.Temporal == nil {
		return nil
	}
	return func(ctx context.Context, r emailjob.RefusedStart) error {
		_, err := d.Temporal.WorkflowService().DeleteWorkflowExecution(ctx, &workflowservice.DeleteWorkflowExecutionRequest{
			Namespace:         d.Namespace,
			WorkflowExecution: &commonpb.WorkflowExecution{WorkflowId: r.WorkflowID, RunId: r.RunID},
		})
		if err != nil {
			return fmt.Errorf("delete refused run %s/%s: %w", r.WorkflowID, r.RunID, err)
		}
		// The deletion terminates the run first; starting its replacement waits until then.
		var last error
		for range 50 {
			_, last = d.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
				ID:                       r.WorkflowID,
				TaskQueue:                r.TaskQueue,
				WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
				WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
				StaticSummary:            "refused job spec (a secret was in the input; its value is redacted here)",
			}, r.WorkflowType, r.Input)
			if last == nil {
				return nil
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
		return fmt.Errorf("start the redacted replacement of %s: %w", r.WorkflowID, last)
	}
}
