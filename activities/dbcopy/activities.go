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

	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/activities/vault"
	"github.com/cutover/cutover/internal/heartbeat"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// Activities are the copy engine's Temporal activities. Engines (connections, compiled plans)
// are kept per migration for the worker's lifetime.
type Activities struct {
	// TargetURL is the database used when a spec names no target (CUTOVER_DB_TARGET_URL);
	// "" refuses such specs.
	TargetURL string
	// ControlURL is the worker's control database (DATABASE_URL): never a migration's target.
	ControlURL string
	Vault      *vault.Vault
	Logger     *slog.Logger
	// HTTPClient posts webhook events (default: 5 s timeout).
	HTTPClient *http.Client
	// OnTransition, when set, runs after DBSetStatus recorded a status change in the ledger
	// (activities/report: the phase timeline and metrics, and the report at completed).
	OnTransition func(ctx context.Context, ledger *store.Store, migrationID uuid.UUID, to model.OrchestrationStatus)

	mu      sync.Mutex
	engines map[string]*cachedEngine
	down    downTracker
	// ended are the migrations whose orchestration reached an end (completed, failed, or back
	// to pending after a rollback): their engines close as soon as no activity uses them.
	ended map[string]bool
}

// cachedEngine is an open engine and its use, so idle ones can be closed.
type cachedEngine struct {
	*Engine
	id       string // migration id
	inUse    int
	lastUsed time.Time
}

// engineIdle is how long an unused engine (connections to a migration's databases) of a
// migration that has not ended is kept.
const engineIdle = 10 * time.Minute

// Migration identifies a run and carries its spec (never a secret: only credentials_refs).
type Migration struct {
	ID        string              `json:"id"`
	Type      model.MigrationType `json:"type"`
	CreatedBy string              `json:"created_by,omitempty"`
	Spec      *spec.Spec          `json:"spec"`
	// Parallelism is how many entities the workflow loads at once (recorded in the
	// orchestration's configuration; 0 in inputs recorded before it).
	Parallelism int `json:"parallelism,omitempty"`
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
	return a.openEngine(ctx, m, false)
}

// openEngine is engine; preparing opens a new engine for DBPrepare (Options.Preparing).
func (a *Activities) openEngine(ctx context.Context, m Migration, preparing bool) (*Engine, func(), error) {
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
		if err := a.checkTarget(m.Spec); err != nil {
			return nil, nil, nonRetryable(err)
		}
		sp := *m.Spec
		e, err := Open(ctx, &sp, Options{MigrationID: id, MigrationType: m.Type, CreatedBy: m.CreatedBy, Parallelism: m.Parallelism,
			TargetURL: a.TargetURL, Logger: a.logger(), Password: a.password, Preparing: preparing})
		if err != nil {
			return nil, nil, a.down.judge(m.ID, err)
		}
		if a.engines == nil {
			a.engines = map[string]*cachedEngine{}
		}
		ce = &cachedEngine{Engine: e, id: m.ID}
		a.engines[key] = ce
	}
	ce.inUse++
	ce.lastUsed = now
	return ce.Engine, func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		ce.inUse--
		ce.lastUsed = time.Now()
		if ce.inUse == 0 && a.ended[ce.id] && a.engines[key] == ce {
			ce.Close()
			delete(a.engines, key)
		}
	}, nil
}

// markEnded records whether a migration has ended (its status changed to to): the engines of
// an ended migration are closed once no activity uses them, so a finished migration holds no
// connection to its databases. A migration taken up again (running, rolling back) keeps them.
func (a *Activities) markEnded(id string, to model.OrchestrationStatus) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch to {
	case model.OrchCompleted, model.OrchFailed, model.OrchPending:
		if a.ended == nil {
			a.ended = map[string]bool{}
		}
		a.ended[id] = true
	case model.OrchRunning, model.OrchRollingBack:
		delete(a.ended, id)
	}
}

// OpenEngines is how many engines (each holding connections to a migration's databases) the
// activities keep open.
func OpenEngines(a *Activities) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.engines)
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

// PrepareResult describes a prepared migration.
type PrepareResult struct {
	Order []string `json:"order"`
	// Totals are the source row counts per entity.
	Totals map[string]int64 `json:"totals"`
}

// DBPrepare registers the orchestration and its entities, creates target tables when asked
// and checks the spec against the live schemas.
func (a *Activities) DBPrepare(ctx context.Context, m Migration) (PrepareResult, error) {
	e, release, err := a.openEngine(ctx, m, true)
	if err != nil {
		return PrepareResult{}, err
	}
	defer release()
	defer heartbeat.KeepAlive(ctx, nil)()
	if err := e.Prepare(ctx); err != nil {
		return PrepareResult{}, a.down.judge(m.ID, err)
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

// StatusRequest moves the orchestration along its state diagram (internal/model) and records the
// counters the workflow keeps.
type StatusRequest struct {
	Migration Migration                 `json:"migration"`
	To        model.OrchestrationStatus `json:"to,omitempty"` // "" = counters only
	Total     int32                     `json:"total"`
	Completed int32                     `json:"completed"`
	Errors    int64                     `json:"errors"`
	// Event, when set, is published once the status and counters are recorded (the workflow's
	// milestone that follows them; before, an activity of its own published it).
	Event *StatusEvent `json:"event,omitempty"`
}

// StatusEvent is an event DBSetStatus publishes, and where to.
type StatusEvent struct {
	Sink  dbmigrateapi.EventSink `json:"sink"`
	Event Event                  `json:"event"`
}

// DBSetStatus applies a status transition (refused ones fail non-retryably) and the counters.
func (a *Activities) DBSetStatus(ctx context.Context, r StatusRequest) error {
	defer heartbeat.KeepAlive(ctx, nil)()
	e, release, err := a.engine(ctx, r.Migration)
	if err != nil {
		return err
	}
	defer release()
	id := e.opt.MigrationID
	if r.To != "" {
		if err := e.ledger.TransitionOrchestration(ctx, id, r.To); err != nil {
			return a.down.judge(r.Migration.ID, err)
		}
	}
	if err := e.ledger.SetOrchestrationProgress(ctx, id, r.Total, min(r.Completed, r.Total), r.Errors); err != nil {
		return a.down.judge(r.Migration.ID, err)
	}
	if r.To != "" && a.OnTransition != nil {
		a.OnTransition(ctx, e.ledger, id, r.To)
	}
	if r.Event != nil {
		ev := r.Event.Event
		if ev.Timestamp == "" {
			ev.Timestamp = time.Now().UTC().Format(time.RFC3339Nano)
		}
		a.emit(ctx, e, r.Event.Sink, ev)
	}
	if r.To != "" {
		a.markEnded(r.Migration.ID, r.To)
	}
	return nil
}

// ChunkRequest asks for up to MaxBatches batches of an entity from Cursor.
type ChunkRequest struct {
	Migration  Migration                 `json:"migration"`
	Cursor     dbmigrateapi.BatchRequest `json:"cursor"`
	MaxBatches int                       `json:"max_batches"`
	Events     dbmigrateapi.EventSink    `json:"events"`
	// Running: the entity is recorded running before the chunk copies (its workflow's first
	// chunk; before, an activity of its own did it).
	Running bool `json:"running,omitempty"`
}

// ChunkResult is a chunk's outcome plus the entity's ledger counters after it.
type ChunkResult struct {
	Run              RunResult `json:"run"`
	RecordsTotal     int64     `json:"records_total"`
	RecordsProcessed int64     `json:"records_processed"`
	RecordsFailed    int64     `json:"records_failed"`
	Throughput       float64   `json:"throughput"`
	// Changes counts the entity's values a transformation changed so far, per column.
	Changes []ColumnChange `json:"changes,omitempty"`
}

// DBCopyChunk copies batches, heartbeating the cursor after each commit so a retry after a
// worker crash continues from the last committed batch (a replayed batch is a no-op anyway).
func (a *Activities) DBCopyChunk(ctx context.Context, r ChunkRequest) (ChunkResult, error) {
	e, release, err := a.engine(ctx, r.Migration)
	if err != nil {
		return ChunkResult{}, err
	}
	defer release()
	if r.Running {
		if err := e.SetEntityStatus(ctx, r.Cursor.Entity, model.EntityRunning); err != nil {
			return ChunkResult{}, a.down.judge(r.Migration.ID, err)
		}
	}
	cursor := r.Cursor
	done := 0
	var since time.Time // when the last batch committed, across attempts
	if activity.HasHeartbeatDetails(ctx) {
		var hb dbmigrateapi.ChunkProgress
		if err := activity.GetHeartbeatDetails(ctx, &hb); err == nil && hb.Cursor.Entity == cursor.Entity {
			cursor, done, since = hb.Cursor, hb.Done, hb.LastCommit
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
	beat := newChunkBeat(ctx, cursor, done, since)
	run, err := e.CopyBatches(ctx, cursor, max, func(b BatchResult) error {
		observeBatch(b)
		n++
		beat.committed(dbmigrateapi.BatchRequest{Entity: b.Entity, BatchNumber: b.BatchNumber + 1, After: b.LastKey,
			AfterType: b.LastKeyType, Sync: cursor.Sync,
			Mark: b.LastMark, MarkType: b.LastMarkType}, n)
		return nil
	})
	beat.stop()
	if err != nil {
		err = a.down.judge(r.Migration.ID, err)
		observeError(err)
		return ChunkResult{}, err
	}
	_ = a.down.judge(r.Migration.ID, nil) // reachable again
	out := ChunkResult{Run: run}
	es, err := e.ledger.GetEntityStatus(ctx, e.opt.MigrationID, cursor.Entity)
	if err != nil {
		return out, err
	}
	out.RecordsTotal, out.RecordsProcessed, out.RecordsFailed = es.RecordsTotal, es.RecordsProcessed, es.RecordsFailed
	if out.Changes, err = e.ChangeCounts(ctx, cursor.Entity); err != nil {
		return out, classify(err)
	}
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
	// OrphansOnly: DBRetryFailed re-drives only the rows quarantined for a missing parent.
	OrphansOnly bool `json:"orphans_only,omitempty"`
}

// DBSetEntityStatus records an entity's status.
func (a *Activities) DBSetEntityStatus(ctx context.Context, r EntityRequest) error {
	defer heartbeat.KeepAlive(ctx, nil)()
	e, release, err := a.engine(ctx, r.Migration)
	if err != nil {
		return err
	}
	defer release()
	return e.SetEntityStatus(ctx, r.Entity, r.Status)
}

// DBFinalize builds an entity's indexes and foreign keys after its load, then records the
// entity's Status when one is given (completed: its workflow's last step; before, an activity
// of its own did it).
func (a *Activities) DBFinalize(ctx context.Context, r EntityRequest) error {
	e, release, err := a.engine(ctx, r.Migration)
	if err != nil {
		return err
	}
	defer release()
	defer heartbeat.KeepAlive(ctx, nil)()
	err = e.Finalize(ctx, r.Entity)
	if err == nil && r.Status != "" {
		err = e.SetEntityStatus(ctx, r.Entity, r.Status)
	}
	return a.down.judge(r.Migration.ID, err)
}

// ValidateRequest asks for an entity's validation.
type ValidateRequest struct {
	Migration     Migration `json:"migration"`
	Entity        string    `json:"entity"`
	AllowWarnings bool      `json:"allow_warnings"`
}

// DBValidate runs the engine's checks into data_validation_results.
func (a *Activities) DBValidate(ctx context.Context, r ValidateRequest) (dbmigrateapi.ValidationSummary, error) {
	e, release, err := a.engine(ctx, r.Migration)
	if err != nil {
		return dbmigrateapi.ValidationSummary{}, err
	}
	defer release()
	defer heartbeat.KeepAlive(ctx, nil)()
	vs, err := e.Validate(ctx, r.Entity)
	if err != nil {
		return dbmigrateapi.ValidationSummary{}, a.down.judge(r.Migration.ID, err)
	}
	return summarizeValidation(r.Entity, vs, r.AllowWarnings), nil
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
	defer heartbeat.KeepAlive(ctx, nil)()
	e, release, err := a.engine(ctx, r.Migration)
	if err != nil {
		return SchemaOpResult{}, err
	}
	defer release()
	op, err := e.PlanSchemaOp(ctx, r.Name)
	return opResult(r.Name, op), a.down.judge(r.Migration.ID, err)
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
	return opResult(r.Name, op), a.down.judge(r.Migration.ID, err)
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
	return opResult(r.Name, op), a.down.judge(r.Migration.ID, err)
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
	return n, a.down.judge(r.Migration.ID, err)
}

// DBRetryFailed re-drives an entity's recorded errors with the current spec.
func (a *Activities) DBRetryFailed(ctx context.Context, r EntityRequest) (RetryResult, error) {
	e, release, err := a.engine(ctx, r.Migration)
	if err != nil {
		return RetryResult{}, err
	}
	defer release()
	defer heartbeat.KeepAlive(ctx, nil)()
	retry := e.RetryFailed
	if r.OrphansOnly {
		retry = e.RetryOrphans
	}
	res, err := retry(ctx, r.Entity)
	return res, a.down.judge(r.Migration.ID, err)
}

// Event is a migration event: event_type, migration_id, timestamp and data, as webhooks and NOTIFY
// listeners receive it.
type Event struct {
	EventType   string         `json:"event_type"`
	MigrationID string         `json:"migration_id"`
	Timestamp   string         `json:"timestamp"`
	Data        map[string]any `json:"data"`
}

// ProgressEvent is the migration_progress event: an entity's percentage and throughput.
func ProgressEvent(migrationID, entity string, pct, throughput float64, at time.Time) Event {
	return Event{EventType: "migration_progress", MigrationID: migrationID, Timestamp: at.UTC().Format(time.RFC3339Nano),
		Data: map[string]any{"entity": entity, "progress_percentage": pct, "throughput": throughput}}
}

// EmitRequest publishes an event.
type EmitRequest struct {
	Migration Migration              `json:"migration"`
	Sink      dbmigrateapi.EventSink `json:"sink"`
	Event     Event                  `json:"event"`
}

// DBEmitEvent publishes a workflow milestone (started, completed, threshold breached…).
func (a *Activities) DBEmitEvent(ctx context.Context, r EmitRequest) error {
	defer heartbeat.KeepAlive(ctx, nil)()
	e, release, err := a.engine(ctx, r.Migration)
	if err != nil {
		return err
	}
	defer release()
	if r.Event.Timestamp == "" {
		r.Event.Timestamp = time.Now().UTC().Format(time.RFC3339Nano)
	}
	a.emit(ctx, e, r.Sink, r.Event)
	switch r.Event.EventType {
	case "migration_completed", "migration_failed", "rollback_completed":
		// The workflow's last activity: a migration that failed before it ran (a spec the
		// plan refused) has no status transition to mark its end.
		a.markEnded(r.Migration.ID, model.OrchFailed)
	}
	return nil
}

// emit delivers best-effort: an unreachable sink is logged, never fails the migration.
func (a *Activities) emit(ctx context.Context, e *Engine, sink dbmigrateapi.EventSink, ev Event) {
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
