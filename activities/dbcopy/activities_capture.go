package dbcopy

import (
	"context"
	"fmt"
	"time"

	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/internal/heartbeat"
	"github.com/cutover/cutover/internal/metrics"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// CaptureResult lists a migration's captures.
type CaptureResult struct {
	Sources []dbmigrateapi.CaptureStatus `json:"sources"`
}

// DBInstallCapture starts following the changes of every source whose capture is not
// key_cursor, before the full load reads a row.
func (a *Activities) DBInstallCapture(ctx context.Context, m Migration) (CaptureResult, error) {
	e, release, err := a.engine(ctx, m)
	if err != nil {
		return CaptureResult{}, err
	}
	defer release()
	defer heartbeat.KeepAlive(ctx, nil)()
	if err := e.InstallCapture(ctx); err != nil {
		return CaptureResult{}, a.down.judge(m.ID, err)
	}
	caps, err := e.CaptureStatus(ctx)
	if err != nil {
		return CaptureResult{}, a.down.judge(m.ID, err)
	}
	return CaptureResult{Sources: caps}, nil
}

// DrainRequest asks for one drain of a source's captured changes.
type DrainRequest struct {
	Migration Migration `json:"migration"`
	Source    string    `json:"source"`
}

// EntityCounters are an entity's ledger counters.
type EntityCounters struct {
	Entity    string `json:"entity"`
	Total     int64  `json:"records_total"`
	Processed int64  `json:"records_processed"`
	Failed    int64  `json:"records_failed"`
}

// DrainResult is what a drain applied and the capture's state after it.
type DrainResult struct {
	Source   string                     `json:"source"`
	Stats    DrainStats                 `json:"stats"`
	Seconds  float64                    `json:"seconds"`
	Capture  dbmigrateapi.CaptureStatus `json:"capture"`
	Entities []EntityCounters           `json:"entities"`
}

// DBDrain applies a source's captured changes (one target transaction with the position).
func (a *Activities) DBDrain(ctx context.Context, r DrainRequest) (DrainResult, error) {
	e, release, err := a.engine(ctx, r.Migration)
	if err != nil {
		return DrainResult{}, err
	}
	defer release()
	defer heartbeat.KeepAlive(ctx, nil)()
	start := time.Now()
	st, err := e.Drain(ctx, r.Source)
	if err != nil {
		observeError(classify(err))
		return DrainResult{}, a.down.judge(r.Migration.ID, err)
	}
	out := DrainResult{Source: r.Source, Stats: st, Seconds: time.Since(start).Seconds()}
	metrics.CaptureChanges.WithLabelValues(DirForward).Add(float64(st.Changes))
	caps, err := e.CaptureStatus(ctx)
	if err != nil {
		return out, a.down.judge(r.Migration.ID, err)
	}
	for _, c := range caps {
		if c.Source == r.Source && c.Direction == DirForward {
			out.Capture = c
		}
	}
	observeCapture(r.Migration.ID, out.Capture)
	// A freeze now would drain what accumulated since the previous pass, as this drain did.
	metrics.CapturePredicted.WithLabelValues(r.Migration.ID).Set(out.Seconds)
	ents, err := e.ledger.ListEntityStatus(ctx, e.opt.MigrationID)
	if err != nil {
		return out, a.down.judge(r.Migration.ID, err)
	}
	for _, es := range ents {
		if ent, ok := e.spec.Entity(es.EntityName); ok && ent.Source == r.Source {
			out.Entities = append(out.Entities, EntityCounters{Entity: es.EntityName, Total: es.RecordsTotal,
				Processed: es.RecordsProcessed, Failed: es.RecordsFailed})
		}
	}
	return out, nil
}

// observeCapture sets a capture's gauges.
func observeCapture(migrationID string, c dbmigrateapi.CaptureStatus) {
	if c.Source == "" {
		return
	}
	if c.Removed {
		for _, unit := range []string{"changes", "wal_bytes"} {
			metrics.CapturePending.DeleteLabelValues(migrationID, c.Source, c.Direction, unit)
		}
		metrics.CaptureRate.DeleteLabelValues(migrationID, c.Source, c.Direction)
		return
	}
	if c.Method == MethodPGLogical {
		metrics.CapturePending.WithLabelValues(migrationID, c.Source, c.Direction, "wal_bytes").Set(float64(c.PendingWALBytes))
	} else {
		metrics.CapturePending.WithLabelValues(migrationID, c.Source, c.Direction, "changes").Set(float64(c.Pending))
	}
	metrics.CaptureRate.WithLabelValues(migrationID, c.Source, c.Direction).Set(c.RowsPerSecond)
}

// DBCaptureStatus reads every capture of a migration (pending changes, slots).
func (a *Activities) DBCaptureStatus(ctx context.Context, m Migration) (CaptureResult, error) {
	defer heartbeat.KeepAlive(ctx, nil)()
	e, release, err := a.engine(ctx, m)
	if err != nil {
		return CaptureResult{}, err
	}
	defer release()
	return a.observedCapture(ctx, e, m.ID)
}

// DBRemoveCapture removes every capture of the migration from its sources (triggers and change
// logs, slots and publications). Idempotent.
func (a *Activities) DBRemoveCapture(ctx context.Context, m Migration) (CaptureResult, error) {
	e, release, err := a.engine(ctx, m)
	if err != nil {
		return CaptureResult{}, err
	}
	defer release()
	defer heartbeat.KeepAlive(ctx, nil)()
	if err := e.RemoveCapture(ctx); err != nil {
		return CaptureResult{}, a.down.judge(m.ID, err)
	}
	res, err := a.observedCapture(ctx, e, m.ID)
	if err == nil {
		metrics.CapturePredicted.DeleteLabelValues(m.ID)
	}
	return res, err
}

// FreezeValidation is the full validation run during catch-up.
type FreezeValidation struct {
	Summary dbmigrateapi.ValidationSummary `json:"summary"`
	// Since is the last drain committed when it started: the freeze validates what came after.
	Since    int64 `json:"since"`
	Deferred int64 `json:"deferred"`
}

// DBValidateBeforeFreeze runs the full content check while catch-up goes on.
func (a *Activities) DBValidateBeforeFreeze(ctx context.Context, r ValidateRequest) (FreezeValidation, error) {
	e, release, err := a.engine(ctx, r.Migration)
	if err != nil {
		return FreezeValidation{}, err
	}
	defer release()
	defer heartbeat.KeepAlive(ctx, nil)()
	dv, err := e.ValidateBeforeFreeze(ctx, r.Entity)
	if err != nil {
		return FreezeValidation{}, a.down.judge(r.Migration.ID, err)
	}
	return FreezeValidation{Summary: summarizeValidation(r.Entity, dv.Results, r.AllowWarnings), Since: dv.Since,
		Deferred: dv.Deferred}, nil
}

// ChangedRequest asks for the freeze's validation of an entity.
type ChangedRequest struct {
	Migration     Migration `json:"migration"`
	Entity        string    `json:"entity"`
	Since         int64     `json:"since"`
	AllowWarnings bool      `json:"allow_warnings"`
}

// DBValidateChanged validates, inside the freeze, what changed since the full validation.
func (a *Activities) DBValidateChanged(ctx context.Context, r ChangedRequest) (dbmigrateapi.ValidationSummary, error) {
	e, release, err := a.engine(ctx, r.Migration)
	if err != nil {
		return dbmigrateapi.ValidationSummary{}, err
	}
	defer release()
	defer heartbeat.KeepAlive(ctx, nil)()
	vs, err := e.ValidateChanged(ctx, r.Entity, r.Since)
	if err != nil {
		return dbmigrateapi.ValidationSummary{}, a.down.judge(r.Migration.ID, err)
	}
	return summarizeValidation(r.Entity, vs, r.AllowWarnings), nil
}

// summarizeValidation is an entity's validation outcome from its recorded checks.
func summarizeValidation(entity string, vs []store.ValidationResult,
	allowWarnings bool) dbmigrateapi.ValidationSummary {
	out := dbmigrateapi.ValidationSummary{
		Entity: entity,
		Passed: Passed(vs, allowWarnings),
		Status: model.ValidationPassed,
	}
	for _, v := range vs {
		out.Checks = append(out.Checks, dbmigrateapi.ValidationCheck{Type: v.ValidationType, Status: v.Status, Issues: v.IssuesFound, Rows: v.RecordsValidated})
		if v.ValidationType == model.ValidationPerformance {
			continue // a measurement, listed with the checks: not the entity's verdict
		}
		switch v.Status {
		case model.ValidationFailed:
			out.Failures++
			out.Status = model.ValidationFailed
		case model.ValidationWarning:
			out.Warnings++
			if out.Status == model.ValidationPassed {
				out.Status = model.ValidationWarning
			}
		}
	}
	return out
}

// WindowRequest records a measured cutover window.
type WindowRequest struct {
	Migration      Migration `json:"migration"`
	StartedAt      time.Time `json:"started_at"`
	CompletedAt    time.Time `json:"completed_at"`
	DrainedChanges int64     `json:"drained_changes"`
	ValidatedRows  int64     `json:"validated_rows"`
	Passed         bool      `json:"passed"`
}

// DBRecordWindow records a cutover window in the ledger and the metrics.
func (a *Activities) DBRecordWindow(ctx context.Context, r WindowRequest) error {
	defer heartbeat.KeepAlive(ctx, nil)()
	e, release, err := a.engine(ctx, r.Migration)
	if err != nil {
		return err
	}
	defer release()
	secs := r.CompletedAt.Sub(r.StartedAt).Seconds()
	tag, err := e.pool.Exec(ctx, `INSERT INTO cutover_windows (migration_id, started_at, completed_at, seconds, drained_changes,
		validated_rows, passed) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (migration_id, started_at) DO NOTHING`,
		e.opt.MigrationID, r.StartedAt, r.CompletedAt, secs, r.DrainedChanges, r.ValidatedRows, r.Passed)
	if err != nil {
		return a.down.judge(r.Migration.ID, fmt.Errorf("record the cutover window: %w", err))
	}
	if tag.RowsAffected() == 1 {
		metrics.CutoverWindow.Observe(secs)
	}
	return nil
}

// DBInstallReverse starts the reverse flow after cutover (target.reverse_flow).
func (a *Activities) DBInstallReverse(ctx context.Context, m Migration) (CaptureResult, error) {
	e, release, err := a.engine(ctx, m)
	if err != nil {
		return CaptureResult{}, err
	}
	defer release()
	defer heartbeat.KeepAlive(ctx, nil)()
	if err := e.InstallReverse(ctx); err != nil {
		return CaptureResult{}, a.down.judge(m.ID, err)
	}
	caps, err := e.CaptureStatus(ctx)
	if err != nil {
		return CaptureResult{}, a.down.judge(m.ID, err)
	}
	return CaptureResult{Sources: caps}, nil
}

// DBReverseDrain writes the target's changes back into the SQLite sources.
func (a *Activities) DBReverseDrain(ctx context.Context, m Migration) (DrainResult, error) {
	e, release, err := a.engine(ctx, m)
	if err != nil {
		return DrainResult{}, err
	}
	defer release()
	defer heartbeat.KeepAlive(ctx, nil)()
	start := time.Now()
	st, err := e.ReverseDrain(ctx)
	if err != nil {
		return DrainResult{}, a.down.judge(m.ID, err)
	}
	metrics.CaptureChanges.WithLabelValues(DirReverse).Add(float64(st.Changes))
	out := DrainResult{Source: reverseSource, Stats: st, Seconds: time.Since(start).Seconds()}
	caps, err := e.CaptureStatus(ctx)
	if err != nil {
		return out, a.down.judge(m.ID, err)
	}
	for _, c := range caps {
		if c.Direction == DirReverse {
			out.Capture = c
			observeCapture(m.ID, c)
		}
	}
	return out, nil
}

// DBRemoveReverse stops the reverse flow (closing or rolling back the migration). Idempotent.
func (a *Activities) DBRemoveReverse(ctx context.Context, m Migration) (CaptureResult, error) {
	e, release, err := a.engine(ctx, m)
	if err != nil {
		return CaptureResult{}, err
	}
	defer release()
	defer heartbeat.KeepAlive(ctx, nil)()
	if err := e.RemoveReverse(ctx); err != nil {
		return CaptureResult{}, a.down.judge(m.ID, err)
	}
	return a.observedCapture(ctx, e, m.ID)
}

// observedCapture reads the migration's captures and publishes each one's gauges.
func (a *Activities) observedCapture(ctx context.Context, e *Engine, migrationID string) (CaptureResult, error) {
	caps, err := e.CaptureStatus(ctx)
	if err != nil {
		return CaptureResult{}, a.down.judge(migrationID, err)
	}
	for _, c := range caps {
		observeCapture(migrationID, c)
	}
	return CaptureResult{Sources: caps}, nil
}
