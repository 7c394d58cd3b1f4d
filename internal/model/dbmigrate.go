package model

// MigrationType is migration_orchestrations.migration_type.
type MigrationType string

const (
	MigrationFull          MigrationType = "full_migration"
	MigrationIncremental   MigrationType = "incremental"
	MigrationSchemaCleanup MigrationType = "schema_cleanup"
)

// OrchestrationStatus is migration_orchestrations.status.
type OrchestrationStatus string

const (
	OrchPending     OrchestrationStatus = "pending"
	OrchRunning     OrchestrationStatus = "running"
	OrchCompleted   OrchestrationStatus = "completed"
	OrchFailed      OrchestrationStatus = "failed"
	OrchRollingBack OrchestrationStatus = "rolling_back"
)

// orchestrationTransitions is the orchestration's state diagram: pending → running → completed |
// failed; running → rolling_back → pending. A migration that ended can be taken up again (a new
// run of its workflow over the same ledger): failed → running (retry from its checkpoints,
// retry of its quarantined rows, acceptance of them), completed → running (retry of rows it
// completed with), and failed | completed → rolling_back.
var orchestrationTransitions = map[OrchestrationStatus][]OrchestrationStatus{
	OrchPending:     {OrchRunning},
	OrchRunning:     {OrchCompleted, OrchFailed, OrchRollingBack},
	OrchRollingBack: {OrchPending},
	OrchFailed:      {OrchRunning, OrchRollingBack},
	OrchCompleted:   {OrchRunning, OrchRollingBack},
}

// CanTransition reports whether the state diagram allows moving from s to next.
func (s OrchestrationStatus) CanTransition(next OrchestrationStatus) bool {
	for _, n := range orchestrationTransitions[s] {
		if n == next {
			return true
		}
	}
	return false
}

// EntityStatus is entity_migration_status.status.
type EntityStatus string

const (
	EntityPending   EntityStatus = "pending"
	EntityRunning   EntityStatus = "running"
	EntityCompleted EntityStatus = "completed"
	EntityFailed    EntityStatus = "failed"
	EntitySkipped   EntityStatus = "skipped"
)

// CheckpointType is migration_checkpoints.checkpoint_type.
type CheckpointType string

const (
	CheckpointBatch  CheckpointType = "batch_completion"
	CheckpointEntity CheckpointType = "entity_completion"
	CheckpointError  CheckpointType = "error_recovery"
)

// BatchStatus is batch_processing_status.status.
type BatchStatus string

const (
	BatchPending    BatchStatus = "pending"
	BatchProcessing BatchStatus = "processing"
	BatchCompleted  BatchStatus = "completed"
	BatchFailed     BatchStatus = "failed"
	BatchRetrying   BatchStatus = "retrying"
)

// ErrorType is migration_errors.error_type.
type ErrorType string

const (
	ErrConnection          ErrorType = "connection_error"
	ErrDataValidation      ErrorType = "data_validation"
	ErrConstraintViolation ErrorType = "constraint_violation"
	ErrTimeout             ErrorType = "timeout"
	ErrUnknown             ErrorType = "unknown"
)

// SchemaOpType is schema_change_operations.operation_type.
type SchemaOpType string

const (
	OpDropColumn   SchemaOpType = "drop_column"
	OpAddColumn    SchemaOpType = "add_column"
	OpModifyColumn SchemaOpType = "modify_column"
	OpCreateBackup SchemaOpType = "create_backup"
)

// SchemaOpStatus is schema_change_operations.status.
type SchemaOpStatus string

const (
	OpPending    SchemaOpStatus = "pending"
	OpCompleted  SchemaOpStatus = "completed"
	OpFailed     SchemaOpStatus = "failed"
	OpRolledBack SchemaOpStatus = "rolled_back"
)

// RiskLevel is schema_change_operations.risk_level.
type RiskLevel string

const (
	RiskLow      RiskLevel = "low"
	RiskMedium   RiskLevel = "medium"
	RiskHigh     RiskLevel = "high"
	RiskCritical RiskLevel = "critical"
)

// ValidationType is data_validation_results.validation_type.
type ValidationType string

const (
	ValidationReferential  ValidationType = "referential_integrity"
	ValidationCompleteness ValidationType = "data_completeness"
	ValidationBusinessRule ValidationType = "business_rules"
	ValidationPerformance  ValidationType = "performance"
)

// ValidationStatus is data_validation_results.status.
type ValidationStatus string

const (
	ValidationPassed  ValidationStatus = "passed"
	ValidationFailed  ValidationStatus = "failed"
	ValidationWarning ValidationStatus = "warning"
)
