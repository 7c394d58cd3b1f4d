package dbmigrateapi

import (
	"strings"
	"time"

	"github.com/cutover/cutover/internal/silence"
)

// SignalEntityAttempt is the signal the worker sends a migration when an attempt of an
// activity of one of its entity workflows fails: the migration's page in the Temporal UI shows
// it while Temporal retries.
const SignalEntityAttempt = "entity_attempt_failed"

// EntityAttempt is one failed attempt of an entity workflow's activity.
type EntityAttempt struct {
	Entity   string    `json:"entity"`
	Activity string    `json:"activity"`
	Attempt  int32     `json:"attempt"`
	Type     string    `json:"type,omitempty"` // the error type (ApplicationError), when it has one
	Message  string    `json:"message"`
	Final    bool      `json:"final,omitempty"` // no attempt follows: not retryable, or the last one allowed
	At       time.Time `json:"at"`
}

// EntityWorkflowID is the workflow id of one entity's child of a migration.
func EntityWorkflowID(migrationID, entity string) string {
	return WorkflowID(migrationID) + "/" + entity
}

// SplitEntityWorkflowID returns the migration's workflow id and the entity of an entity
// workflow id (ok false for anything else).
func SplitEntityWorkflowID(id string) (parent, entity string, ok bool) {
	parent, entity, ok = strings.Cut(id, "/")
	if !ok || !strings.HasPrefix(parent, WorkflowIDPrefix) || entity == "" {
		return "", "", false
	}
	return parent, entity, true
}

// Descriptions of a migration's signals, update and query, shown by the Temporal UI's dialogs
// (the SDK's handler options) so an operator there knows what to send.
var Descriptions = map[string]string{
	silence.Signal: silence.SignalDescription,
	SignalApprove: `Approve a schema change waiting for approval: {"operation":"add_column_x","approved_by":"dba","reason":"why"} ` +
		`(also an update of the same name, which answers or refuses)`,
	SignalRollback: `Roll the migration back while it runs: {"requested_by":"ops","reason":"why"}`,
	SignalCutover: `End the catch-up passes of an incremental migration: final pass, validation, done: ` +
		`{"requested_by":"ops","reason":"why"}`,
	SignalRetry: `Re-drive the quarantined rows of one entity ("" for all), optionally with a fixed spec: ` +
		`{"entity":"patients","requested_by":"ops","reason":"why"}`,
	SignalClose:  `End the reverse flow after cutover; the migration completes: {"requested_by":"ops","reason":"why"}`,
	SignalAccept: `Accept the quarantined rows so the migration may complete: {"id":"…","requested_by":"ops","reason":"why"}`,
	SignalProgress: `Sent by an entity workflow to its migration after each copy activity: ` +
		`{entity, total, processed, failed, last_key, throughput}`,
	SignalEntityAttempt: `Sent by the worker when an attempt of an entity workflow's activity fails ` +
		`(shown while Temporal retries): {entity, activity, attempt, type, message}`,
	QueryStatus: `The migration's state: phase, status, progress, entities, schema operations, validation, errors`,
}
