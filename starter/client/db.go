package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	sdk "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/searchattr"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/dbmigrate/plan"
)

// Migration names a started database migration.
type Migration struct {
	MigrationID string   `json:"migration_id"`
	WorkflowID  string   `json:"workflow_id"`
	RunID       string   `json:"run_id"`
	Order       []string `json:"order"` // entities in dependency order
}

// DBWorkflowID accepts a migration UUID or its workflow id (db-migration-<uuid>).
func DBWorkflowID(arg string) (string, error) {
	id := strings.TrimPrefix(arg, dbmigrateapi.WorkflowIDPrefix)
	if _, err := uuid.Parse(id); err != nil {
		return "", fmt.Errorf("%q is neither a migration id nor %s<uuid>", arg, dbmigrateapi.WorkflowIDPrefix)
	}
	return dbmigrateapi.WorkflowID(id), nil
}

// DBStartOptions are the options a database migration starts with: its id, the search
// attributes, and the summary and details the Temporal UI shows.
func (c *Client) DBStartOptions(in dbmigrateapi.Input, p *plan.Plan) sdk.StartWorkflowOptions {
	name := in.Spec.Name
	if name == "" {
		name = "spec"
	}
	var details strings.Builder
	fmt.Fprintf(&details, "**Database migration** `%s` version %s (%s), started by %s\n\n", name, in.Spec.Version, in.MigrationType, in.CreatedBy)
	for i, wave := range p.Levels() {
		fmt.Fprintf(&details, "- wave %d: %s\n", i+1, strings.Join(wave, ", "))
	}
	return sdk.StartWorkflowOptions{
		ID:        dbmigrateapi.WorkflowID(in.MigrationID),
		TaskQueue: c.taskQueue,
		TypedSearchAttributes: temporal.NewSearchAttributes(searchattr.Kind.ValueSet(dbmigrateapi.Kind),
			searchattr.Status.ValueSet(string(model.OrchPending)), searchattr.Phase.ValueSet(string(dbmigrateapi.PhasePlanning)),
			searchattr.SyncPercent.ValueSet(0)),
		StaticSummary: fmt.Sprintf("database migration %s: %s (%s, %d entities)", in.MigrationID, name, in.MigrationType, len(p.Order)),
		StaticDetails: details.String(),
	}
}

// StartDBMigration plans in.Spec (refusing cycles and unknown references) and starts the
// migration; MigrationID "" gets a new UUID, MigrationType "" is full_migration.
func (c *Client) StartDBMigration(ctx context.Context, in dbmigrateapi.Input) (Migration, error) {
	if in.Spec == nil {
		return Migration{}, errors.New("database migration needs a spec")
	}
	if in.MigrationID == "" {
		in.MigrationID = uuid.NewString()
	} else if _, err := uuid.Parse(in.MigrationID); err != nil {
		return Migration{}, fmt.Errorf("migration id %q is not a UUID", in.MigrationID)
	}
	if in.MigrationType == "" {
		in.MigrationType = model.MigrationFull
	}
	if in.CreatedBy == "" {
		in.CreatedBy = "cutover"
	}
	p, err := plan.New(in.Spec)
	if err != nil {
		return Migration{}, err
	}
	run, err := c.tc.ExecuteWorkflow(ctx, c.DBStartOptions(in, p), dbmigrateapi.WorkflowName, in)
	if err != nil {
		return Migration{}, fmt.Errorf("start database migration %s: %w", in.MigrationID, err)
	}
	return Migration{MigrationID: in.MigrationID, WorkflowID: run.GetID(), RunID: run.GetRunID(), Order: p.Order}, nil
}

// DBStatus queries a migration (by UUID or workflow id).
func (c *Client) DBStatus(ctx context.Context, id string) (dbmigrateapi.State, error) {
	var st dbmigrateapi.State
	wid, err := DBWorkflowID(id)
	if err != nil {
		return st, err
	}
	v, err := c.tc.QueryWorkflow(ctx, wid, "", dbmigrateapi.QueryStatus)
	if err != nil {
		return st, notFound(err, "database migration "+wid)
	}
	if err := v.Get(&st); err != nil {
		return st, err
	}
	if st.Phase != dbmigrateapi.PhaseDone {
		if err := c.addPending(ctx, &st, time.Now()); err != nil {
			return st, fmt.Errorf("database migration %s: pending activities: %w", wid, err)
		}
	}
	return st, nil
}

// DBRunning reports whether a migration's workflow runs now.
func (c *Client) DBRunning(ctx context.Context, id string) (bool, error) {
	wid, err := DBWorkflowID(id)
	if err != nil {
		return false, err
	}
	st, err := c.describe(ctx, wid)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return false, nil
	}
	return st == enums.WORKFLOW_EXECUTION_STATUS_RUNNING, err
}

// ApproveSchemaChange approves a critical schema operation waiting for it (a validated update:
// refused, with the reason, unless the operation exists and is pending). by and reason are
// recorded with the approval (the reason is operator text, never a secret).
func (c *Client) ApproveSchemaChange(ctx context.Context, id, operation, by, reason string) (string, error) {
	wid, err := DBWorkflowID(id)
	if err != nil {
		return "", err
	}
	h, err := c.tc.UpdateWorkflow(ctx, sdk.UpdateWorkflowOptions{
		WorkflowID:   wid,
		UpdateName:   dbmigrateapi.UpdateApprove,
		WaitForStage: sdk.WorkflowUpdateStageCompleted,
		Args:         []any{dbmigrateapi.Approval{Operation: operation, ApprovedBy: by, Reason: reason}},
	})
	var msg string
	if err == nil {
		err = h.Get(ctx, &msg)
	}
	if err == nil {
		return msg, nil
	}
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return "", fmt.Errorf("database migration %s: %w", wid, ErrNotFound)
	}
	if isRefusal(err) {
		return "", &RefusedError{Command: dbmigrateapi.UpdateApprove, Reason: ErrMessage(err)}
	}
	return "", err
}

// SignalDB sends a signal (dbmigrateapi.SignalRollback, SignalCutover, SignalRetry) with its payload.
func (c *Client) SignalDB(ctx context.Context, id, name string, arg any) error {
	wid, err := DBWorkflowID(id)
	if err != nil {
		return err
	}
	if err := c.tc.SignalWorkflow(ctx, wid, "", name, arg); err != nil {
		return notFound(err, "database migration "+wid)
	}
	return nil
}

// RequestCutover ends an incremental migration's catch-up passes: final pass, validation. by
// and reason are recorded with the request.
func (c *Client) RequestCutover(ctx context.Context, id, by, reason string) error {
	return c.SignalDB(ctx, id, dbmigrateapi.SignalCutover, dbmigrateapi.CutoverRequest{RequestedBy: by, Reason: reason})
}

// RequestClose ends the reverse flow of a cut-over migration: it completes. by and reason are
// recorded with the request.
func (c *Client) RequestClose(ctx context.Context, id, by, reason string) error {
	return c.SignalDB(ctx, id, dbmigrateapi.SignalClose, dbmigrateapi.CloseRequest{RequestedBy: by, Reason: reason})
}

// RequestRollback compensates a running migration back to pending.
func (c *Client) RequestRollback(ctx context.Context, id, by, reason string) error {
	req := dbmigrateapi.RollbackRequest{RequestedBy: by, Reason: reason}
	return c.SignalDB(ctx, id, dbmigrateapi.SignalRollback, req)
}

// RetryFailed re-drives a migration's recorded row errors (req.Entity "" = every completed
// entity; req.Spec, when set, is the fixed spec to use from now on).
func (c *Client) RetryFailed(ctx context.Context, id string, req dbmigrateapi.RetryRequest) error {
	return c.SignalDB(ctx, id, dbmigrateapi.SignalRetry, req)
}

// WaitDB polls a migration until done says so, it fails, or ctx ends.
func (c *Client) WaitDB(ctx context.Context, id string, poll time.Duration, done func(dbmigrateapi.State) bool) (dbmigrateapi.State, error) {
	st, err := wait(ctx, poll, func(ctx context.Context) (dbmigrateapi.State, error) { return c.DBStatus(ctx, id) },
		func(st dbmigrateapi.State) bool { return done(st) || st.Status == model.OrchFailed })
	if err == nil && st.Status == model.OrchFailed && !done(st) {
		return st, fmt.Errorf("database migration %s failed: %s", id, st.Error)
	}
	return st, err
}

// DBResult waits for a migration's workflow to end and returns its final state (with the
// state also when it failed).
func (c *Client) DBResult(ctx context.Context, id string) (dbmigrateapi.State, error) {
	var st dbmigrateapi.State
	wid, err := DBWorkflowID(id)
	if err != nil {
		return st, err
	}
	err = c.tc.GetWorkflow(ctx, wid, "").Get(ctx, &st)
	if err != nil {
		var ae *temporal.ApplicationError
		if errors.As(err, &ae) && ae.HasDetails() {
			_ = ae.Details(&st)
		}
		return st, notFound(err, "database migration "+wid)
	}
	return st, nil
}

// DBInput reads the input a migration's (latest) run started with: its spec and settings.
func (c *Client) DBInput(ctx context.Context, id string) (dbmigrateapi.Input, error) {
	var in dbmigrateapi.Input
	wid, err := DBWorkflowID(id)
	if err != nil {
		return in, err
	}
	it := c.tc.GetWorkflowHistory(ctx, wid, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	if !it.HasNext() {
		return in, fmt.Errorf("database migration %s: %w", wid, ErrNotFound)
	}
	ev, err := it.Next()
	if err != nil {
		return in, notFound(err, "database migration "+wid)
	}
	attrs := ev.GetWorkflowExecutionStartedEventAttributes()
	if attrs == nil {
		return in, fmt.Errorf("database migration %s: history does not start with its input", wid)
	}
	if err := c.dc.FromPayloads(attrs.GetInput(), &in); err != nil {
		return in, fmt.Errorf("database migration %s input: %w", wid, err)
	}
	return in, nil
}
