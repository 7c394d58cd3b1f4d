// Package dbmigrateapi is the contract of the database migration workflows (workflows/dbmigrate)
// with their clients (the cutover CLI, the temporal CLI, upstream services) and with the copy
// engine's activities (activities/dbcopy): workflow type names and ids, the names and payloads
// of signals, updates and the status query, and the copy payloads the state carries. It is a
// leaf: it imports no I/O package, so a client links no database driver.
package dbmigrateapi

import (
	"time"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// Workflow type names clients start.
const (
	WorkflowName       = "DBMigrationWorkflow"
	EntityWorkflowName = "EntityMigrationWorkflow"
	// WorkflowIDPrefix + migration UUID is a migration's workflow id.
	WorkflowIDPrefix = "db-migration-"
	// Kind is the MigrationKind search attribute value.
	Kind = "database"
)

// Signal, query and update names (the CLI and the temporal CLI use them).
const (
	SignalApprove  = "approve_schema_change"
	SignalRollback = "rollback"
	SignalCutover  = "cutover"
	SignalRetry    = "retry_failed"
	SignalClose    = "close"           // ends the reverse flow after cutover: the migration completes
	SignalAccept   = "accept_errors"   // accepts the quarantined rows: the migration may complete with them
	SignalProgress = "entity_progress" // child → parent
	QueryStatus    = "status"
	UpdateApprove  = "approve_schema_change"
	DefaultChannel = "cutover_migration_events"
)

// WorkflowID returns the workflow id of a migration.
func WorkflowID(migrationID string) string { return WorkflowIDPrefix + migrationID }

// Config tunes a migration; zero values take the defaults.
type Config struct {
	Parallelism        int     `json:"parallelism,omitempty"`          // entities loading at once (2)
	BatchesPerActivity int     `json:"batches_per_activity,omitempty"` // batches per copy activity (10)
	ActivitiesPerRun   int     `json:"activities_per_run,omitempty"`   // entity continue-as-new after this many (50)
	MaxErrorRatio      float64 `json:"max_error_ratio,omitempty"`      // stop when failed/(processed+failed) exceeds it
	MaxErrors          int64   `json:"max_errors,omitempty"`           // stop when failed exceeds it
	AllowWarnings      bool    `json:"allow_warnings,omitempty"`       // validation warnings still complete
	// SyncInterval is the pause between catch-up passes of an incremental migration (1m).
	SyncInterval time.Duration `json:"sync_interval,omitempty"`
	// PassesPerRun continues the orchestration as new after this many catch-up passes (100).
	PassesPerRun int `json:"passes_per_run,omitempty"`
	// HeartbeatTimeout of copy activities (15s): how fast a dead worker's batch is retried on
	// another worker. Sized to the keep-alive (every quarter of it, whatever the batch does),
	// not to the work.
	HeartbeatTimeout time.Duration `json:"heartbeat_timeout,omitempty"`
	Events           EventSink     `json:"events"`
}

// WithDefaults is the configuration a run uses: zero values replaced by the defaults.
func (c Config) WithDefaults() Config {
	if c.Parallelism <= 0 {
		c.Parallelism = 2
	}
	if c.BatchesPerActivity <= 0 {
		c.BatchesPerActivity = 10
	}
	if c.ActivitiesPerRun <= 0 {
		c.ActivitiesPerRun = 50
	}
	if c.SyncInterval <= 0 {
		c.SyncInterval = time.Minute
	}
	if c.PassesPerRun <= 0 {
		c.PassesPerRun = 100
	}
	if c.HeartbeatTimeout <= 0 {
		c.HeartbeatTimeout = 15 * time.Second
	}
	return c
}

// Input starts a migration. It carries the spec (credentials_refs only, never secrets).
type Input struct {
	MigrationID   string              `json:"migration_id"`
	MigrationType model.MigrationType `json:"migration_type"`
	CreatedBy     string              `json:"created_by"`
	Spec          *spec.Spec          `json:"spec"`
	Config        Config              `json:"config"`
	// Resume carries the state across continue-as-new (nil on a fresh start), and the ended
	// run's state into a recovery run.
	Resume *State `json:"resume,omitempty"`
	// Recover takes up an ended migration in a new run of its workflow (same workflow id, same
	// ledger): nil on a start or a continue-as-new.
	Recover *Recovery `json:"recover,omitempty"`
}

// RecoveryAction is what a recovery run does with an ended migration.
type RecoveryAction string

// Recovery actions (the CLI's db retry, db retry-failed, db accept-errors, db rollback).
const (
	// RecoverRetry resumes a failed migration: entities not completed start again from their
	// committed batches (the ledger's checkpoints), then validation.
	RecoverRetry RecoveryAction = "retry"
	// RecoverRetryFailed re-drives the quarantined rows (with the run's spec, maybe fixed),
	// then resumes like RecoverRetry.
	RecoverRetryFailed RecoveryAction = "retry_failed"
	// RecoverAccept records an acceptance of the quarantined rows, then resumes like RecoverRetry.
	RecoverAccept RecoveryAction = "accept_errors"
	// RecoverRollback compensates a failed or completed migration back to pending.
	RecoverRollback RecoveryAction = "rollback"
)

// Recovery is a request to take up an ended migration.
type Recovery struct {
	Action        RecoveryAction `json:"action"`
	PreviousRunID string         `json:"previous_run_id"`
	RequestedBy   string         `json:"requested_by,omitempty"`
	Reason        string         `json:"reason,omitempty"`
	Entity        string         `json:"entity,omitempty"`        // retry_failed: one entity ("" = all)
	AcceptanceID  string         `json:"acceptance_id,omitempty"` // accept_errors: makes it idempotent
}

// AcceptRequest accepts a migration's quarantined rows (the accept_errors signal).
type AcceptRequest struct {
	ID          string `json:"id"`
	RequestedBy string `json:"requested_by"`
	Reason      string `json:"reason"`
}

// Phase is where the orchestration is.
type Phase string

// Phases in order.
const (
	PhasePlanning   Phase = "planning"
	PhaseLoading    Phase = "loading"
	PhaseCatchingUp Phase = "catching_up" // incremental: passes until cutover
	PhaseFinalPass  Phase = "final_pass"
	PhaseValidating Phase = "validating"
	// PhaseReverseSync: cut over; the target's writes flow back into the sources until close
	// (or a rollback, which returns the application to the sources with them).
	PhaseReverseSync Phase = "reverse_sync"
	PhaseRollingBck  Phase = "rolling_back"
	PhaseDone        Phase = "done"
)

// Phases lists every phase, in order.
var Phases = []Phase{PhasePlanning, PhaseLoading, PhaseCatchingUp, PhaseFinalPass, PhaseValidating, PhaseReverseSync,
	PhaseRollingBck, PhaseDone}

// EntityState is an entity's progress as the orchestration knows it.
type EntityState struct {
	Name       string             `json:"name"`
	Status     model.EntityStatus `json:"status"`
	Total      int64              `json:"records_total"`
	Processed  int64              `json:"records_processed"`
	Failed     int64              `json:"records_failed"`
	LastKey    string             `json:"last_processed_id,omitempty"`
	Throughput float64            `json:"throughput_per_second"`
	Cursor     BatchRequest       `json:"cursor"` // where catch-up passes continue
	MarkStart  string             `json:"mark_start,omitempty"`
	// MarkStartType is MarkStart's storage class (BatchRequest.MarkType).
	MarkStartType string `json:"mark_start_type,omitempty"`
	Reason        string `json:"reason,omitempty"`
	// Changes counts the values a transformation changed, per column (none changes silently).
	Changes []ColumnChange `json:"changes,omitempty"`
}

// OpState is a schema operation's place and state.
type OpState struct {
	Name             string               `json:"name"`
	After            string               `json:"after,omitempty"`
	Risk             model.RiskLevel      `json:"risk,omitempty"`
	Status           model.SchemaOpStatus `json:"status"`
	AwaitingApproval bool                 `json:"awaiting_approval,omitempty"`
	ApprovedBy       string               `json:"approved_by,omitempty"`
	Error            string               `json:"error,omitempty"`
}

// EnvTargetURL names the worker's default target of database migrations whose spec names no
// target.dsn (the worker refuses its own control database, DATABASE_URL, as a target).
const EnvTargetURL = "CUTOVER_DB_TARGET_URL"

// State is what the status query returns (and continue-as-new carries).
type State struct {
	MigrationID       string                    `json:"migration_id"`
	MigrationType     model.MigrationType       `json:"migration_type"`
	Status            model.OrchestrationStatus `json:"status"`
	Phase             Phase                     `json:"phase"`
	ProgressPercent   float64                   `json:"progress_percentage"`
	TotalEntities     int32                     `json:"total_entities"`
	CompletedEntities int32                     `json:"completed_entities"`
	ErrorCount        int64                     `json:"error_count"`
	Entities          []*EntityState            `json:"entities"`
	Ops               []*OpState                `json:"schema_ops,omitempty"`
	Passes            int                       `json:"catch_up_passes,omitempty"`
	FinalPassSeconds  float64                   `json:"final_pass_seconds,omitempty"`
	// CutoverWindowSeconds is a captured migration's freeze, from its start (the cutover) to its
	// completion (last changes drained, what changed since the full validation validated).
	CutoverWindowSeconds float64 `json:"cutover_window_seconds,omitempty"`
	// Capture is the change capture of an incremental migration (nil: catch-up by key cursor).
	Capture *CaptureState `json:"capture,omitempty"`
	// Reverse is the reverse flow after cutover (target.reverse_flow).
	Reverse    *CaptureState       `json:"reverse,omitempty"`
	Validation []ValidationSummary `json:"validation,omitempty"`
	Refused    []string            `json:"refused,omitempty"`
	// WorkerSilent: the activities of this migration whose worker stopped heartbeating, as a
	// worker last reported them (silence.Signal); shown in the current details.
	WorkerSilent []string                    `json:"worker_silent,omitempty"`
	Error        string                      `json:"error,omitempty"`
	Transitions  []model.OrchestrationStatus `json:"transitions"`
	RolledBack   bool                        `json:"rolled_back,omitempty"`
	// Recoveries are the runs that took this migration up again after it ended, each linked
	// to the run before it.
	Recoveries []RecoveryRecord `json:"recoveries,omitempty"`
	// Accepted is the acceptance of quarantined rows this run recorded.
	Accepted *AcceptanceRecord `json:"accepted,omitempty"`
	// Requests are the operators' requests the migration accepted while it ran, oldest first
	// (recovery runs are in Recoveries, acceptances in Accepted).
	Requests []RequestRecord `json:"requests,omitempty"`
	// Partitions is the partition upkeep of a cut-over migration that stays open (the reverse
	// flow): the months ahead created on the workflow's timer until it is closed.
	Partitions *PartitionUpkeep `json:"partitions,omitempty"`
	// Pending is filled by the client that asks for the status (cutover db status), never by
	// the workflow: the activities Temporal is running or retrying for this migration.
	Pending []PendingActivity `json:"pending_activities,omitempty"`
	// Retrying are the last failed attempts of entity workflows' activities (one per entity),
	// as the worker reports them, until the entity's workflow ends.
	Retrying []EntityAttempt `json:"retrying,omitempty"`
}

// PartitionUpkeep is when the workflow last made the partitioned tables' coming months and
// what it created over the migration.
type PartitionUpkeep struct {
	LastRun time.Time `json:"last_run"`
	Created []string  `json:"created,omitempty"`
}

// RecoveryRecord is a recovery run as the state shows it.
type RecoveryRecord struct {
	Action        RecoveryAction            `json:"action"`
	PreviousRunID string                    `json:"previous_run_id"`
	RequestedBy   string                    `json:"requested_by,omitempty"`
	Reason        string                    `json:"reason,omitempty"`
	From          model.OrchestrationStatus `json:"from"`
}

// AcceptanceRecord is a recorded acceptance of quarantined rows.
type AcceptanceRecord struct {
	By              string `json:"by"`
	Reason          string `json:"reason"`
	QuarantinedRows int64  `json:"quarantined_rows"`
}

// PendingActivity is an activity of a migration (or of one of its entities) that has not
// ended: how often Temporal tried it, why the last attempt failed, and for a copy activity the
// batch it writes and when its last batch committed. A batch stuck behind a lock shows here.
type PendingActivity struct {
	Entity      string    `json:"entity,omitempty"`
	Activity    string    `json:"activity"`
	Attempt     int32     `json:"attempt"`
	LastFailure string    `json:"last_failure,omitempty"`
	Batch       int64     `json:"batch,omitempty"`
	LastCommit  time.Time `json:"last_commit,omitzero"`
	// Stalled: no batch committed (or, for other activities, no attempt ended) for a minute.
	Stalled bool `json:"stalled,omitempty"`
	// WorkerSilent: its worker stopped heartbeating; Temporal waits for the heartbeat timeout
	// before another worker runs it (a killed worker shows here for seconds).
	WorkerSilent string `json:"worker_silent,omitempty"`
}

// Result is the workflow's outcome (its State at the end).
type Result = State

// Approval approves a critical schema operation.
type Approval struct {
	Operation  string `json:"operation"`
	ApprovedBy string `json:"approved_by"`
	Reason     string `json:"reason,omitempty"` // why (operator text, recorded and reported)
}

// RollbackRequest asks for compensation.
type RollbackRequest struct {
	Reason      string `json:"reason,omitempty"`
	RequestedBy string `json:"requested_by,omitempty"`
}

// CutoverRequest ends catch-up passes: final pass, validation, done.
type CutoverRequest struct {
	RequestedBy string `json:"requested_by,omitempty"`
	Reason      string `json:"reason,omitempty"`
}

// CloseRequest ends the reverse flow after cutover: the migration completes and the sources
// stop receiving the target's writes.
type CloseRequest struct {
	RequestedBy string `json:"requested_by,omitempty"`
	Reason      string `json:"reason,omitempty"`
}

// RetryRequest re-drives recorded errors of an entity ("" = all), optionally with a fixed spec.
type RetryRequest struct {
	Entity      string     `json:"entity,omitempty"`
	Spec        *spec.Spec `json:"spec,omitempty"`
	RequestedBy string     `json:"requested_by,omitempty"`
	Reason      string     `json:"reason,omitempty"`
}

// RequestRecord is an operator's request a running migration accepted (a schema change's
// approval, cutover, close, a re-drive of quarantined rows, a rollback): what, who, when and
// why. The reason is operator text, never a secret; the ledger keeps it too
// (migration_operator_requests), so the status and the report show it.
type RequestRecord struct {
	Request     string    `json:"request"`           // the signal or update's name
	Subject     string    `json:"subject,omitempty"` // the operation approved, the entity re-driven
	RequestedBy string    `json:"requested_by,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	At          time.Time `json:"at"`
}

// Progress is what an entity child reports to its parent after each copy activity.
type Progress struct {
	Entity     string  `json:"entity"`
	Total      int64   `json:"total"`
	Processed  int64   `json:"processed"`
	Failed     int64   `json:"failed"`
	LastKey    string  `json:"last_key"`
	Throughput float64 `json:"throughput"`
	// Changes counts the entity's values a transformation changed so far.
	Changes []ColumnChange `json:"changes,omitempty"`
	// Loaded: the entity's last chunk is written (every row and mapping of its load is in),
	// under its error limit; its Finalize (indexes, foreign keys, ANALYZE) follows.
	Loaded bool `json:"loaded,omitempty"`
}

// CaptureState is a captured migration's catch-up as the status shows it.
type CaptureState struct {
	Sources []CaptureStatus `json:"sources"`
	// ChangesPending is the backlog the last pass found (changes captured since the pass before).
	ChangesPending int64 `json:"changes_pending"`
	// RowsPerSecond is the apply rate of the last drain that applied any.
	RowsPerSecond float64 `json:"rows_per_second"`
	// PredictedFinalSeconds is what the freeze's last drain would take with that backlog at that
	// rate (plus the validation of the rows changed, measured the same way).
	PredictedFinalSeconds float64 `json:"predicted_final_pass_seconds"`
	ChangesApplied        int64   `json:"changes_applied"`
	// FullValidationDone: the full content check ran during catch-up; the freeze validates what
	// drains wrote after drain ValidatedSince.
	FullValidationDone bool  `json:"full_validation_done,omitempty"`
	ValidatedSince     int64 `json:"validated_since_drain,omitempty"`
	Deferred           int64 `json:"deferred_to_freeze,omitempty"`
	Removed            bool  `json:"removed,omitempty"`
}
