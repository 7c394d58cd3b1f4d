package dbcopy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/cutover/cutover/activities/dbcopy/spec"
	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/activities/vault"
	"github.com/cutover/cutover/internal/heartbeat"
	"github.com/cutover/cutover/internal/model"
)

// Error types of non-retryable failures (stable strings workflows and operators match on).
const (
	ErrTypeSpec       = "dbcopy.spec"
	ErrTypeApproval   = "dbcopy.approval_required"
	ErrTypeTransition = "dbcopy.bad_transition"
)

// Activities are the copy engine's Temporal activities. Engines (connections, compiled plans)
// are kept per migration for the worker's lifetime.
type Activities struct {
	// TargetURL is the database used when a spec names no target (the worker's DATABASE_URL).
	TargetURL string
	Vault     *vault.Vault
	Logger    *slog.Logger
	// HTTPClient posts webhook events (default: 5 s timeout).
	HTTPClient *http.Client
	// OnTransition, when set, runs after DBSetStatus recorded a status change in the ledger
	// (activities/report: the phase timeline and metrics, and the report at completed).
	OnTransition func(ctx context.Context, ledger *store.Store, migrationID uuid.UUID, to model.OrchestrationStatus)

	mu      sync.Mutex
	engines map[string]*cachedEngine
}

// cachedEngine is an open engine and its use, so idle ones can be closed.
type cachedEngine struct {
	*Engine
	inUse    int
	lastUsed time.Time
}

// engineIdle is how long an unused engine (connections to a migration's databases) is kept.
const engineIdle = 30 * time.Minute

// Migration identifies a run and carries its spec (never a secret: only credentials_refs).
type Migration struct {
	ID        string              `json:"id"`
	Type      model.MigrationType `json:"type"`
	CreatedBy string              `json:"created_by,omitempty"`
	Spec      *spec.Spec          `json:"spec"`
}

func (a *Activities) logger() *slog.Logger {
	if a.Logger != nil {
		return a.Logger
	}
	return slog.Default()
}

// engine returns the cached engine of a migration, opening it on first use; release must be
// called when the activity is done with it. Engines idle for engineIdle are closed.
func (a *Activities) engine(ctx context.Context, m Migration) (*Engine, func(), error) {
	id, err := uuid.Parse(m.ID)
	if err != nil {
		return nil, nil, nonRetryable(fmt.Errorf("%w: migration id %q is not a UUID", ErrSpec, m.ID))
	}
	if m.Spec == nil {
		return nil, nil, nonRetryable(fmt.Errorf("%w: no spec", ErrSpec))
	}
	b, _ := json.Marshal(m.Spec)
	sum := sha256.Sum256(b)
	key := m.ID + "/" + hex.EncodeToString(sum[:8])
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	for k, ce := range a.engines {
		if ce.inUse == 0 && now.Sub(ce.lastUsed) > engineIdle {
			ce.Close()
			delete(a.engines, k)
		}
	}
	ce, ok := a.engines[key]
	if !ok {
		sp := *m.Spec
		e, err := Open(ctx, &sp, Options{MigrationID: id, MigrationType: m.Type, CreatedBy: m.CreatedBy,
			TargetURL: a.TargetURL, Logger: a.logger(), Password: a.password})
		if err != nil {
			return nil, nil, classify(err)
		}
		if a.engines == nil {
			a.engines = map[string]*cachedEngine{}
		}
		ce = &cachedEngine{Engine: e}
		a.engines[key] = ce
	}
	ce.inUse++
	ce.lastUsed = now
	return ce.Engine, func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		ce.inUse--
		ce.lastUsed = time.Now()
	}, nil
}

func (a *Activities) password(ctx context.Context, ref string) (string, error) {
	if a.Vault == nil {
		return "", fmt.Errorf("%w: no vault key configured (%s) to resolve credentials_ref", ErrSpec, vault.EnvKeys)
	}
	s, err := a.Vault.Get(ctx, ref)
	if err != nil {
		return "", err
	}
	return s.Password, nil
}

// Shutdown releases every cached engine of a (a function, not a method: every exported method
// of Activities is registered as an activity).
func Shutdown(a *Activities) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, ce := range a.engines {
		ce.Close()
		delete(a.engines, k)
	}
}

func nonRetryable(err error) error {
	typ := ErrTypeSpec
	switch {
	case errors.Is(err, ErrApprovalRequired):
		typ = ErrTypeApproval
	case errors.As(err, new(*store.ErrBadTransition)):
		typ = ErrTypeTransition
	}
	return temporal.NewNonRetryableApplicationError(err.Error(), typ, err)
}

// classify makes spec misfits, refused transitions and missing approvals non-retryable; every
// other error (connections, timeouts, a restarting PostgreSQL) is retried by Temporal.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrSpec) || errors.Is(err, ErrApprovalRequired) || errors.As(err, new(*store.ErrBadTransition)) {
		return nonRetryable(err)
	}
	return err
}

// PrepareResult describes a prepared migration.
type PrepareResult struct {
	Order []string `json:"order"`
	// Totals are the source row counts per entity.
	Totals map[string]int64 `json:"totals"`
}

// DBPrepare registers the orchestration and its entities, creates target tables when asked
// and checks the spec against the live schemas.
func (a *Activities) DBPrepare(ctx context.Context, m Migration) (PrepareResult, error) {
	e, release, err := a.engine(ctx, m)
	if err != nil {
		return PrepareResult{}, err
	}
	defer release()
	defer heartbeat.KeepAlive(ctx, nil)()
	if err := e.Prepare(ctx); err != nil {
		return PrepareResult{}, classify(err)
	}
	order, _ := e.spec.Order()
	out := PrepareResult{Order: order, Totals: map[string]int64{}}
	ents, err := e.ledger.ListEntityStatus(ctx, e.opt.MigrationID)
	if err != nil {
		return out, err
	}
	for _, es := range ents {
		out.Totals[es.EntityName] = es.RecordsTotal
	}
	return out, nil
}

// StatusRequest moves the orchestration along the seed's state diagram and records the
// counters the workflow keeps.
type StatusRequest struct {
	Migration Migration                 `json:"migration"`
	To        model.OrchestrationStatus `json:"to,omitempty"` // "" = counters only
	Total     int32                     `json:"total"`
	Completed int32                     `json:"completed"`
	Errors    int64                     `json:"errors"`
}

// DBSetStatus applies a status transition (refused ones fail non-retryably) and the counters.
func (a *Activities) DBSetStatus(ctx context.Context, r StatusRequest) error {
	e, release, err := a.engine(ctx, r.Migration)
	if err != nil {
		return err
	}
	defer release()
	id := e.opt.MigrationID
	if r.To != "" {
		if err := e.ledger.TransitionOrchestration(ctx, id, r.To); err != nil {
			return classify(err)
		}
	}
	if err := e.ledger.SetOrchestrationProgress(ctx, id, r.Total, min(r.Completed, r.Total), r.Errors); err != nil {
		return classify(err)
	}
	if r.To != "" && a.OnTransition != nil {
		a.OnTransition(ctx, e.ledger, id, r.To)
	}
	return nil
}

// ChunkRequest asks for up to MaxBatches batches of an entity from Cursor.
type ChunkRequest struct {
	Migration  Migration    `json:"migration"`
	Cursor     BatchRequest `json:"cursor"`
	MaxBatches int          `json:"max_batches"`
	Events     EventSink    `json:"events"`
}

// ChunkResult is a chunk's outcome plus the entity's ledger counters after it.
type ChunkResult struct {
	Run              RunResult `json:"run"`
	RecordsTotal     int64     `json:"records_total"`
	RecordsProcessed int64     `json:"records_processed"`
	RecordsFailed    int64     `json:"records_failed"`
	Throughput       float64   `json:"throughput"`
}

// DBCopyChunk copies batches, heartbeating the cursor after each commit so a retry after a
// worker crash continues from the last committed batch (a replayed batch is a no-op anyway).
func (a *Activities) DBCopyChunk(ctx context.Context, r ChunkRequest) (ChunkResult, error) {
	e, release, err := a.engine(ctx, r.Migration)
	if err != nil {
		return ChunkResult{}, err
	}
	defer release()
	cursor := r.Cursor
	done := 0
	if activity.HasHeartbeatDetails(ctx) {
		var hb struct {
			Cursor BatchRequest `json:"cursor"`
			Done   int          `json:"done"`
		}
		if err := activity.GetHeartbeatDetails(ctx, &hb); err == nil && hb.Cursor.Entity == cursor.Entity {
			cursor, done = hb.Cursor, hb.Done
		}
	}
	start := time.Now()
	max := r.MaxBatches - done
	if r.MaxBatches <= 0 {
		max = 0
	} else if max <= 0 {
		max = 1
	}
	n := done
	run, err := e.CopyBatches(ctx, cursor, max, func(b BatchResult) error {
		observeBatch(b)
		n++
		activity.RecordHeartbeat(ctx, map[string]any{"cursor": BatchRequest{Entity: b.Entity, BatchNumber: b.BatchNumber + 1,
			After: b.LastKey, Sync: cursor.Sync, Mark: b.LastMark}, "done": n})
		return nil
	})
	if err != nil {
		err = classify(err)
		observeError(err)
		return ChunkResult{}, err
	}
	out := ChunkResult{Run: run}
	es, err := e.ledger.GetEntityStatus(ctx, e.opt.MigrationID, cursor.Entity)
	if err != nil {
		return out, err
	}
	out.RecordsTotal, out.RecordsProcessed, out.RecordsFailed = es.RecordsTotal, es.RecordsProcessed, es.RecordsFailed
	// Replayed batches were copied before (a retry or a workflow reset asked again): counting
	// them would report a resumed chunk's cheap lookups as a burst of throughput.
	copied := run.Rows - run.ReplayedRows
	if secs := time.Since(start).Seconds(); secs > 0 {
		out.Throughput = float64(copied) / secs
	}
	if copied > 0 {
		if _, err := e.pool.Exec(ctx, `UPDATE entity_migration_status SET throughput_per_second = $2 WHERE id = $1`,
			e.EntityStatusID(cursor.Entity), out.Throughput); err != nil {
			return out, err
		}
	}
	pct := 100.0
	if es.RecordsTotal > 0 {
		pct = float64(es.RecordsProcessed+es.RecordsFailed) * 100 / float64(es.RecordsTotal)
	}
	a.emit(ctx, e, r.Events, ProgressEvent(r.Migration.ID, cursor.Entity, pct, out.Throughput, time.Now()))
	return out, nil
}

// EntityRequest names an entity of a migration.
type EntityRequest struct {
	Migration Migration          `json:"migration"`
	Entity    string             `json:"entity"`
	Status    model.EntityStatus `json:"status,omitempty"`
}

// DBSetEntityStatus records an entity's status.
func (a *Activities) DBSetEntityStatus(ctx context.Context, r EntityRequest) error {
	e, release, err := a.engine(ctx, r.Migration)
	if err != nil {
		return err
	}
	defer release()
	return e.ledger.SetEntityStatus(ctx, e.EntityStatusID(r.Entity), r.Status)
}

// DBFinalize builds an entity's indexes and foreign keys after its load.
func (a *Activities) DBFinalize(ctx context.Context, r EntityRequest) error {
	e, release, err := a.engine(ctx, r.Migration)
	if err != nil {
		return err
	}
	defer release()
	defer heartbeat.KeepAlive(ctx, nil)()
	return classify(e.Finalize(ctx, r.Entity))
}

// ValidationSummary is an entity's validation outcome.
type ValidationSummary struct {
	Entity   string                 `json:"entity"`
	Passed   bool                   `json:"passed"`
	Warnings int                    `json:"warnings"`
	Failures int                    `json:"failures"`
	Checks   []ValidationCheck      `json:"checks"`
	Status   model.ValidationStatus `json:"status"`
}

// ValidationCheck is one recorded check.
type ValidationCheck struct {
	Type   model.ValidationType   `json:"type"`
	Status model.ValidationStatus `json:"status"`
	Issues int64                  `json:"issues"`
	Rows   int64                  `json:"rows"`
}

// ValidateRequest asks for an entity's validation.
type ValidateRequest struct {
	Migration     Migration `json:"migration"`
	Entity        string    `json:"entity"`
	AllowWarnings bool      `json:"allow_warnings"`
}

// DBValidate runs the engine's checks into data_validation_results.
func (a *Activities) DBValidate(ctx context.Context, r ValidateRequest) (ValidationSummary, error) {
	e, release, err := a.engine(ctx, r.Migration)
	if err != nil {
		return ValidationSummary{}, err
	}
	defer release()
	defer heartbeat.KeepAlive(ctx, nil)()
	vs, err := e.Validate(ctx, r.Entity)
	if err != nil {
		return ValidationSummary{}, classify(err)
	}
	out := ValidationSummary{Entity: r.Entity, Passed: Passed(vs, r.AllowWarnings), Status: model.ValidationPassed}
	for _, v := range vs {
		out.Checks = append(out.Checks, ValidationCheck{Type: v.ValidationType, Status: v.Status, Issues: v.IssuesFound, Rows: v.RecordsValidated})
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
	return out, nil
}

// SchemaOpRequest names a schema operation; ApprovedBy is set once an operator approved.
type SchemaOpRequest struct {
	Migration  Migration `json:"migration"`
	Name       string    `json:"name"`
	ApprovedBy string    `json:"approved_by,omitempty"`
}

// SchemaOpResult is a recorded operation.
type SchemaOpResult struct {
	Name        string               `json:"name"`
	ID          string               `json:"id"`
	Type        model.SchemaOpType   `json:"type"`
	Table       string               `json:"table"`
	Risk        model.RiskLevel      `json:"risk"`
	Status      model.SchemaOpStatus `json:"status"`
	RollbackSQL string               `json:"rollback_sql"`
}

func opResult(name string, op store.SchemaOp) SchemaOpResult {
	return SchemaOpResult{Name: name, ID: op.ID.String(), Type: op.OperationType, Table: op.TableName, Risk: op.RiskLevel,
		Status: op.Status, RollbackSQL: op.RollbackSQL}
}

// DBPlanSchemaOp records an operation with its SQL, rollback SQL and risk.
func (a *Activities) DBPlanSchemaOp(ctx context.Context, r SchemaOpRequest) (SchemaOpResult, error) {
	e, release, err := a.engine(ctx, r.Migration)
	if err != nil {
		return SchemaOpResult{}, err
	}
	defer release()
	op, err := e.PlanSchemaOp(ctx, r.Name)
	return opResult(r.Name, op), classify(err)
}

// DBExecuteSchemaOp executes a planned operation (critical ones need ApprovedBy).
func (a *Activities) DBExecuteSchemaOp(ctx context.Context, r SchemaOpRequest) (SchemaOpResult, error) {
	e, release, err := a.engine(ctx, r.Migration)
	if err != nil {
		return SchemaOpResult{}, err
	}
	defer release()
	defer heartbeat.KeepAlive(ctx, nil)()
	op, err := e.ExecuteSchemaOp(ctx, r.Name, r.ApprovedBy)
	return opResult(r.Name, op), classify(err)
}

// DBRollbackSchemaOp reverts a completed operation from its backup.
func (a *Activities) DBRollbackSchemaOp(ctx context.Context, r SchemaOpRequest) (SchemaOpResult, error) {
	e, release, err := a.engine(ctx, r.Migration)
	if err != nil {
		return SchemaOpResult{}, err
	}
	defer release()
	defer heartbeat.KeepAlive(ctx, nil)()
	op, err := e.RollbackSchemaOp(ctx, r.Name)
	return opResult(r.Name, op), classify(err)
}

// DBRollbackEntity deletes what the migration wrote for an entity and resets its ledger.
func (a *Activities) DBRollbackEntity(ctx context.Context, r EntityRequest) (int64, error) {
	e, release, err := a.engine(ctx, r.Migration)
	if err != nil {
		return 0, err
	}
	defer release()
	defer heartbeat.KeepAlive(ctx, nil)()
	n, err := e.RollbackEntity(ctx, r.Entity)
	return n, classify(err)
}

// DBRetryFailed re-drives an entity's recorded errors with the current spec.
func (a *Activities) DBRetryFailed(ctx context.Context, r EntityRequest) (RetryResult, error) {
	e, release, err := a.engine(ctx, r.Migration)
	if err != nil {
		return RetryResult{}, err
	}
	defer release()
	defer heartbeat.KeepAlive(ctx, nil)()
	res, err := e.RetryFailed(ctx, r.Entity)
	return res, classify(err)
}

// EventSink says where migration events go: a PostgreSQL NOTIFY channel on the target (ledger)
// database and/or a webhook URL receiving a JSON POST.
type EventSink struct {
	Channel string `json:"channel,omitempty"`
	Webhook string `json:"webhook,omitempty"`
}

// Event is the seed 001 event schema.
type Event struct {
	EventType   string         `json:"event_type"`
	MigrationID string         `json:"migration_id"`
	Timestamp   string         `json:"timestamp"`
	Data        map[string]any `json:"data"`
}

// ProgressEvent is the seed's migration_progress event.
func ProgressEvent(migrationID, entity string, pct, throughput float64, at time.Time) Event {
	return Event{EventType: "migration_progress", MigrationID: migrationID, Timestamp: at.UTC().Format(time.RFC3339Nano),
		Data: map[string]any{"entity": entity, "progress_percentage": pct, "throughput": throughput}}
}

// EmitRequest publishes an event.
type EmitRequest struct {
	Migration Migration `json:"migration"`
	Sink      EventSink `json:"sink"`
	Event     Event     `json:"event"`
}

// DBEmitEvent publishes a workflow milestone (started, completed, threshold breached…).
func (a *Activities) DBEmitEvent(ctx context.Context, r EmitRequest) error {
	e, release, err := a.engine(ctx, r.Migration)
	if err != nil {
		return err
	}
	defer release()
	if r.Event.Timestamp == "" {
		r.Event.Timestamp = time.Now().UTC().Format(time.RFC3339Nano)
	}
	a.emit(ctx, e, r.Sink, r.Event)
	return nil
}

// emit delivers best-effort: an unreachable sink is logged, never fails the migration.
func (a *Activities) emit(ctx context.Context, e *Engine, sink EventSink, ev Event) {
	body, err := json.Marshal(ev)
	if err != nil {
		return
	}
	if sink.Channel != "" {
		if _, err := e.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, sink.Channel, string(body)); err != nil {
			a.logger().Warn("event NOTIFY failed", "channel", sink.Channel, "err", err)
		}
	}
	if sink.Webhook != "" {
		c := a.HTTPClient
		if c == nil {
			c = &http.Client{Timeout: 5 * time.Second}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, sink.Webhook, bytes.NewReader(body))
		if err != nil {
			a.logger().Warn("event webhook: bad URL", "err", err)
			return
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			a.logger().Warn("event webhook failed", "err", err)
			return
		}
		_ = resp.Body.Close()
		if resp.StatusCode >= 300 {
			a.logger().Warn("event webhook refused", "status", resp.StatusCode)
		}
	}
}
