// Package dbmigrate holds the database migration workflows: DBMigrationWorkflow, seed 001's
// MigrationOrchestration (status pending → running → completed | failed, running →
// rolling_back → pending), and EntityMigrationWorkflow, one child per entity copying batches
// through the dbcopy activities and continuing as new every few activities so a 100M-row table
// keeps a bounded history. Deterministic code only: every effect is an activity.
package dbmigrate

import (
	"time"

	"github.com/cutover/cutover/activities/dbcopy"
	"github.com/cutover/cutover/activities/dbcopy/spec"
	"github.com/cutover/cutover/internal/model"
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
	SignalApprove    = "approve_schema_change"
	SignalRollback   = "rollback"
	SignalCutover    = "cutover"
	SignalRetry      = "retry_failed"
	SignalProgress   = "entity_progress" // child → parent
	QueryStatus      = "status"
	UpdateApprove    = "approve_schema_change"
	DefaultChannel   = "cutover_migration_events"
	errTypeThreshold = "dbmigrate.error_threshold"
	errTypeInvalid   = "dbmigrate.invalid_spec"
)

// WorkflowID returns the workflow id of a migration.
func WorkflowID(migrationID string) string { return WorkflowIDPrefix + migrationID }

// Config tunes a migration; zero values take the defaults.
type Config struct {
	Parallelism        int     `json:"parallelism,omitempty"`          // entities at once (2)
	BatchesPerActivity int     `json:"batches_per_activity,omitempty"` // batches per copy activity (10)
	ActivitiesPerRun   int     `json:"activities_per_run,omitempty"`   // entity continue-as-new after this many (50)
	MaxErrorRatio      float64 `json:"max_error_ratio,omitempty"`      // stop when failed/(processed+failed) exceeds it
	MaxErrors          int64   `json:"max_errors,omitempty"`           // stop when failed exceeds it
	AllowWarnings      bool    `json:"allow_warnings,omitempty"`       // validation warnings still complete
	// SyncInterval is the pause between catch-up passes of an incremental migration (1m).
	SyncInterval time.Duration `json:"sync_interval,omitempty"`
	// PassesPerRun continues the orchestration as new after this many catch-up passes (100).
	PassesPerRun int `json:"passes_per_run,omitempty"`
	// HeartbeatTimeout of copy activities (60s): how fast a dead worker's batch is retried.
	HeartbeatTimeout time.Duration    `json:"heartbeat_timeout,omitempty"`
	Events           dbcopy.EventSink `json:"events"`
}

func (c Config) withDefaults() Config {
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
		c.HeartbeatTimeout = time.Minute
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
	// Resume carries the state across continue-as-new (nil on a fresh start).
	Resume *State `json:"resume,omitempty"`
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
	PhaseRollingBck Phase = "rolling_back"
	PhaseDone       Phase = "done"
)

// EntityState is an entity's progress as the orchestration knows it.
type EntityState struct {
	Name       string              `json:"name"`
	Status     model.EntityStatus  `json:"status"`
	Total      int64               `json:"records_total"`
	Processed  int64               `json:"records_processed"`
	Failed     int64               `json:"records_failed"`
	LastKey    string              `json:"last_processed_id,omitempty"`
	Throughput float64             `json:"throughput_per_second"`
	Cursor     dbcopy.BatchRequest `json:"cursor"` // where catch-up passes continue
	MarkStart  string              `json:"mark_start,omitempty"`
	Reason     string              `json:"reason,omitempty"`
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

// State is what the status query returns (and continue-as-new carries).
type State struct {
	MigrationID       string                      `json:"migration_id"`
	MigrationType     model.MigrationType         `json:"migration_type"`
	Status            model.OrchestrationStatus   `json:"status"`
	Phase             Phase                       `json:"phase"`
	ProgressPercent   float64                     `json:"progress_percentage"`
	TotalEntities     int32                       `json:"total_entities"`
	CompletedEntities int32                       `json:"completed_entities"`
	ErrorCount        int64                       `json:"error_count"`
	Entities          []*EntityState              `json:"entities"`
	Ops               []*OpState                  `json:"schema_ops,omitempty"`
	Passes            int                         `json:"catch_up_passes,omitempty"`
	FinalPassSeconds  float64                     `json:"final_pass_seconds,omitempty"`
	Validation        []dbcopy.ValidationSummary  `json:"validation,omitempty"`
	Refused           []string                    `json:"refused,omitempty"`
	Error             string                      `json:"error,omitempty"`
	Transitions       []model.OrchestrationStatus `json:"transitions"`
	RolledBack        bool                        `json:"rolled_back,omitempty"`
}

// Result is the workflow's outcome (its State at the end).
type Result = State

// Approval approves a critical schema operation.
type Approval struct {
	Operation  string `json:"operation"`
	ApprovedBy string `json:"approved_by"`
}

// RollbackRequest asks for compensation.
type RollbackRequest struct {
	Reason      string `json:"reason,omitempty"`
	RequestedBy string `json:"requested_by,omitempty"`
}

// CutoverRequest ends catch-up passes: final pass, validation, done.
type CutoverRequest struct {
	RequestedBy string `json:"requested_by,omitempty"`
}

// RetryRequest re-drives recorded errors of an entity ("" = all), optionally with a fixed spec.
type RetryRequest struct {
	Entity string     `json:"entity,omitempty"`
	Spec   *spec.Spec `json:"spec,omitempty"`
}

// Progress is what an entity child reports to its parent after each copy activity.
type Progress struct {
	Entity     string  `json:"entity"`
	Total      int64   `json:"total"`
	Processed  int64   `json:"processed"`
	Failed     int64   `json:"failed"`
	LastKey    string  `json:"last_key"`
	Throughput float64 `json:"throughput"`
}
