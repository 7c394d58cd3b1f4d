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
	"strconv"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/cutover/cutover/activities/dbcopy"
	"github.com/cutover/cutover/activities/emailjob"
	"github.com/cutover/cutover/activities/health"
	"github.com/cutover/cutover/activities/mail"
	"github.com/cutover/cutover/activities/report"
	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/activities/vault"
	"github.com/cutover/cutover/internal/codec"
	"github.com/cutover/cutover/internal/metrics"
	"github.com/cutover/cutover/workflows/dbmigrate"
	emailwf "github.com/cutover/cutover/workflows/email"
	healthwf "github.com/cutover/cutover/workflows/health"
)

// DefaultTaskQueue is where cutover's workflows and activities run.
const DefaultTaskQueue = "cutover"

// Config is the worker's configuration; ConfigFromEnv documents each variable.
type Config struct {
	TemporalAddress string
	Namespace       string
	TaskQueue       string
	DatabaseURL     string
	MetricsAddr     string        // "" disables the endpoint
	ShutdownGrace   time.Duration // how long in-flight activities get to finish on SIGTERM
	MaxActivities   int           // concurrent activity executions; 0 = SDK default
	PayloadCodec    *codec.Codec  // nil = from CUTOVER_PAYLOAD_KEYS when set, else payloads in clear
	ReportDir       string        // migration reports; "" = $CUTOVER_REPORT_DIR, else <temp dir>/cutover-reports ('make dev' sets .cutover/reports)
	Logger          *slog.Logger
}

// ConfigFromEnv reads TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, CUTOVER_TASK_QUEUE, DATABASE_URL,
// CUTOVER_METRICS_ADDR, CUTOVER_SHUTDOWN_GRACE, CUTOVER_MAX_ACTIVITIES and CUTOVER_PAYLOAD_KEYS.
func ConfigFromEnv() (Config, error) {
	cfg := Config{
		TemporalAddress: env("TEMPORAL_ADDRESS", "127.0.0.1:7233"),
		Namespace:       env("TEMPORAL_NAMESPACE", "default"),
		TaskQueue:       env("CUTOVER_TASK_QUEUE", DefaultTaskQueue),
		DatabaseURL:     store.URLFromEnv(),
		MetricsAddr:     env("CUTOVER_METRICS_ADDR", "127.0.0.1:9464"),
		ShutdownGrace:   30 * time.Second,
		ReportDir:       os.Getenv(report.EnvDir), // "" → Run picks a directory under the system temp dir
	}
	if v := os.Getenv("CUTOVER_SHUTDOWN_GRACE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return cfg, fmt.Errorf("CUTOVER_SHUTDOWN_GRACE=%q: want a duration such as 30s", v)
		}
		cfg.ShutdownGrace = d
	}
	if v := os.Getenv("CUTOVER_MAX_ACTIVITIES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return cfg, fmt.Errorf("CUTOVER_MAX_ACTIVITIES=%q: want a non-negative integer", v)
		}
		cfg.MaxActivities = n
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
}

// Register adds every workflow and activity to r. Workflow types carry explicit names (the
// ones clients start); activity method names are unique across structs so they register flat.
func Register(r worker.Registry, d Deps) {
	reports := &report.Reporter{Dir: d.ReportDir, DB: d.DB, Logger: d.Logger}
	if reports.Dir == "" {
		reports.Dir = filepath.Join(os.TempDir(), "cutover-reports") // as Run does without configuration
	}
	r.RegisterWorkflowWithOptions(healthwf.Workflow, workflow.RegisterOptions{Name: healthwf.Name})
	r.RegisterActivityWithOptions(&health.Activities{DB: d.DB}, activity.RegisterOptions{})
	emailwf.RegisterWorkflows(r)
	r.RegisterActivityWithOptions(&emailjob.Activities{DB: d.DB, Logger: d.Logger, OnMirrored: reports.EmailMirrored}, activity.RegisterOptions{})
	dbmigrate.RegisterWorkflows(r)
	r.RegisterActivityWithOptions(&dbcopy.Activities{TargetURL: dbURL(d.DB), Vault: d.Vault, Logger: d.Logger,
		OnTransition: reports.DBTransition}, activity.RegisterOptions{})
	r.RegisterActivityWithOptions(&mail.Activities{DB: d.DB, Vault: d.Vault, Logger: d.Logger}, activity.RegisterOptions{})
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
	TaskQueue   string
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

	c, err := client.DialContext(ctx, client.Options{
		HostPort:       cfg.TemporalAddress,
		Namespace:      cfg.Namespace,
		Logger:         log.NewStructuredLogger(logger),
		MetricsHandler: m.SDKHandler(),
		DataConverter:  codec.DataConverter(cfg.PayloadCodec),
	})
	if err != nil {
		if ctx.Err() != nil { // stopped (SIGTERM) while still connecting: nothing ran, a clean stop
			logger.Info("worker stopped before it connected to Temporal", "address", cfg.TemporalAddress)
			return nil
		}
		return fmt.Errorf("worker: connect to Temporal at %s: %w", cfg.TemporalAddress, err)
	}
	defer c.Close()

	w := worker.New(c, cfg.TaskQueue, worker.Options{
		WorkerStopTimeout:                  cfg.ShutdownGrace,
		MaxConcurrentActivityExecutionSize: cfg.MaxActivities,
		// A job fans out to a child workflow per mailbox and pass, each a few short workflow
		// and activity tasks: the SDK's two pollers per kind left tasks waiting in the queue
		// (a wave of mailboxes went 25% faster with eight).
		MaxConcurrentWorkflowTaskPollers: 8,
		MaxConcurrentActivityTaskPollers: 8,
	})
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
	Register(w, Deps{DB: db, Vault: v, Metrics: m, Logger: logger, ReportDir: cfg.ReportDir})
	if err := w.Start(); err != nil {
		return fmt.Errorf("worker: start: %w", err)
	}
	logger.Info("worker started", "temporal", cfg.TemporalAddress, "namespace", cfg.Namespace,
		"task_queue", cfg.TaskQueue, "metrics", metricsAddr, "payload_encryption", cfg.PayloadCodec != nil, "reports", cfg.ReportDir)
	if ready != nil {
		ready(Info{MetricsAddr: metricsAddr, TaskQueue: cfg.TaskQueue})
	}
	<-ctx.Done()
	logger.Info("worker stopping; in-flight activities get the grace period", "grace", cfg.ShutdownGrace)
	w.Stop()
	logger.Info("worker stopped")
	return nil
}
