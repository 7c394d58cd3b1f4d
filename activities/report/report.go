// Package report writes the self-contained HTML report of a migration — per mailbox or entity
// counts on both sides, what was quarantined and why, the go/no-go checks and who approved
// when, the phases and the passes with a throughput chart (inline SVG) — and keeps the phase
// timing behind cutover_phase_duration_seconds. The bookkeeping activities call it when a
// migration changes phase (emailjob's state record, dbcopy's status transitions): reports appear at
// verified/closed and at completed; `cutover email|db report` writes one on demand.
package report

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/internal/metrics"
	"github.com/cutover/cutover/internal/model"
)

// EnvDir names the directory reports are written to.
const EnvDir = "CUTOVER_REPORT_DIR"

// DefaultDir is used when EnvDir is unset (relative to the working directory, beside the dev
// stack's state).
const DefaultDir = ".cutover/reports"

// Kinds of migration in the phase log.
const (
	KindEmail    = "email"
	KindDatabase = "database"
)

// DirFromEnv returns the absolute report directory configured by getenv(EnvDir).
func DirFromEnv(getenv func(string) string) string {
	dir := getenv(EnvDir)
	if dir == "" {
		dir = DefaultDir
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return dir
}

// Reporter writes reports into Dir. DB is the control database (email jobs); database
// migrations hand over their ledger.
type Reporter struct {
	Dir    string
	DB     *store.DB
	Logger *slog.Logger
	Now    func() time.Time // default time.Now
}

func (r *Reporter) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Reporter) logger() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}

// EmailPath is where a job's report is written.
func (r *Reporter) EmailPath(jobID int64) string {
	return filepath.Join(r.Dir, fmt.Sprintf("email-job-%d.html", jobID))
}

// DBPath is where a database migration's report is written.
func (r *Reporter) DBPath(id uuid.UUID) string {
	return filepath.Join(r.Dir, fmt.Sprintf("db-migration-%s.html", id))
}

// WriteEmail collects a job's report from st, writes it and records its path in the job's
// report run (migration_runs: job level, run_type verify, tool verify, log_path).
func (r *Reporter) WriteEmail(ctx context.Context, st *store.Store, jobID int64) (string, *EmailReport, error) {
	rep, err := CollectEmail(ctx, st, jobID, r.now())
	if err != nil {
		return "", nil, err
	}
	path := r.EmailPath(jobID)
	for i, m := range rep.Mailboxes { // run logs beside the report are linked relatively
		if rel, err := filepath.Rel(r.Dir, m.LogPath); err == nil && m.LogPath != "" && !strings.HasPrefix(rel, "..") {
			rep.Mailboxes[i].LogPath = filepath.ToSlash(rel)
		}
	}
	if err := writeFile(path, func(f *os.File) error { return RenderEmail(f, rep) }); err != nil {
		return "", nil, err
	}
	status := model.RunSuccess
	if rep.Totals.Missing > 0 || !rep.MissingKnown {
		status = model.RunPartial
	}
	stats := fmt.Sprintf(`{"report":true,"mailboxes":%d,"messages_source":%d,"messages_dest":%d,"quarantined":%d,"missing":%d,"verified":%t}`,
		len(rep.Mailboxes), rep.Totals.Source, rep.Totals.Dest, rep.Totals.Quarantined, rep.Totals.Missing, rep.MissingKnown)
	key := store.ReportKey(jobID)
	now := r.now()
	code := int32(0)
	if _, err := st.RecordRun(ctx, store.Run{JobID: jobID, RunType: model.RunVerify, Tool: model.ToolVerify, Status: status,
		ExitCode: &code, LogPath: path, Stats: []byte(stats), StartedAt: now, FinishedAt: &now, TriggeredBy: "report",
		IdempotencyKey: &key}); err != nil {
		return path, &rep, fmt.Errorf("record report of job %d: %w", jobID, err)
	}
	return path, &rep, nil
}

// WriteDB collects a database migration's report from its ledger, writes it and records its
// path in migration_orchestrations.report_path.
func (r *Reporter) WriteDB(ctx context.Context, ledger *store.Store, id uuid.UUID) (string, *DBReport, error) {
	rep, err := CollectDB(ctx, ledger, id, r.now())
	if err != nil {
		return "", nil, err
	}
	path := r.DBPath(id)
	if err := writeFile(path, func(f *os.File) error { return RenderDB(f, rep) }); err != nil {
		return "", nil, err
	}
	if err := ledger.SetOrchestrationReport(ctx, id, path); err != nil {
		return path, &rep, err
	}
	return path, &rep, nil
}

// WriteDBUnrecorded writes the report of a migration its ledger knows nothing of (it failed
// before the ledger existed in its target): what the caller knows, from the workflow's state.
func (r *Reporter) WriteDBUnrecorded(rep DBReport) (string, error) {
	rep.GeneratedAt = r.now().UTC()
	path := r.DBPath(rep.MigrationID)
	return path, writeFile(path, func(f *os.File) error { return RenderDB(f, rep) })
}

// writeFile replaces path atomically, so a reader never sees half a report.
func writeFile(path string, render func(*os.File) error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("report directory: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".report-*.html")
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	defer os.Remove(f.Name())
	if err := render(f); err != nil {
		f.Close()
		return fmt.Errorf("render report: %w", err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// reportTimeout bounds report work inside a bookkeeping activity: a report is never worth
// failing (or timing out) the activity that records the migration's state.
const reportTimeout = 40 * time.Second

// EmailRecorded is emailjob's hook, called after the job's state reached PostgreSQL: it
// records phase changes (and their duration in the metrics) and writes the report when the
// job becomes verified or closed. Best effort: problems are logged, never returned.
func (r *Reporter) EmailRecorded(ctx context.Context, s store.JobState) {
	if r == nil || r.DB == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reportTimeout)
	defer cancel()
	entered, err := r.enterPhase(ctx, r.DB.Store, KindEmail, strconv.FormatInt(s.ID, 10), string(s.Phase))
	if err != nil {
		r.logger().Warn("record phase", "job_id", s.ID, "phase", s.Phase, "err", err)
		return
	}
	if !entered || (s.Phase != model.PhaseVerified && s.Phase != model.PhaseClosed) {
		return
	}
	path, rep, err := r.WriteEmail(ctx, r.DB.Store, s.ID)
	if err != nil {
		r.logger().Error("email report", "job_id", s.ID, "err", err)
		return
	}
	r.logger().Info("email report written", "job_id", s.ID, "phase", s.Phase, "path", path,
		"mailboxes", len(rep.Mailboxes), "missing", rep.Totals.Missing, "quarantined", rep.Totals.Quarantined)
}

// DBTransition is dbcopy's hook, called after an orchestration's status changed in its
// ledger: it records the phase change and, at completed, observes every entity's load time
// and writes the report. Best effort: problems are logged, never returned.
func (r *Reporter) DBTransition(ctx context.Context, ledger *store.Store, id uuid.UUID, to model.OrchestrationStatus) {
	if r == nil || ledger == nil || to == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reportTimeout)
	defer cancel()
	entered, err := r.enterPhase(ctx, ledger, KindDatabase, id.String(), string(to))
	if err != nil {
		r.logger().Warn("record phase", "migration_id", id, "status", to, "err", err)
		return
	}
	if !entered || to != model.OrchCompleted {
		return
	}
	if o, err := ledger.GetOrchestration(ctx, id); err == nil {
		if ents, err := ledger.ListEntityStatus(ctx, id); err == nil {
			for _, e := range ents {
				if e.StartedAt != nil && e.CompletedAt != nil {
					metrics.PassDuration.WithLabelValues(KindDatabase, string(o.MigrationType)).Observe(e.CompletedAt.Sub(*e.StartedAt).Seconds())
				}
			}
		}
	}
	path, rep, err := r.WriteDB(ctx, ledger, id)
	if err != nil {
		r.logger().Error("database migration report", "migration_id", id, "err", err)
		return
	}
	r.logger().Info("database migration report written", "migration_id", id, "path", path,
		"entities", len(rep.Entities), "missing", rep.Totals.Missing, "quarantined", rep.Totals.Quarantined)
}

// enterPhase logs the phase and observes how long the one it ends lasted.
func (r *Reporter) enterPhase(ctx context.Context, st *store.Store, kind, ref, phase string) (bool, error) {
	if phase == "" {
		return false, errors.New("empty phase")
	}
	left, entered, err := st.EnterPhase(ctx, kind, ref, phase)
	if err != nil {
		return false, err
	}
	if left != nil && left.LeftAt != nil {
		metrics.PhaseDuration.WithLabelValues(kind, left.Phase).Observe(left.LeftAt.Sub(left.EnteredAt).Seconds())
	}
	return entered, nil
}
