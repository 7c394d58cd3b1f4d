package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/cutover/cutover/activities/dbcopy/spec"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/dbmigrate"
	"github.com/cutover/cutover/workflows/dbmigrate/plan"
)

func init() {
	register("db start", "validate a database migration spec (YAML or JSON), plan it and start DBMigrationWorkflow", runDBStart)
	register("db status", "show a database migration: status, phase, per-entity progress, schema ops, validation", runDBStatus)
	register("db approve-op", "approve a critical schema change operation (refused unless it is pending)", runDBApprove)
	register("db rollback", "compensate a running database migration (reverse order) back to pending", dbSignal(dbmigrate.SignalRollback))
	register("db cutover", "end the catch-up passes of an incremental migration: final pass, validation", dbSignal(dbmigrate.SignalCutover))
	register("db retry-failed", "re-drive recorded row errors (optionally with a fixed spec)", runDBRetry)
}

// dbWorkflowID accepts a migration UUID or its workflow id.
func dbWorkflowID(arg string) (string, error) {
	id := strings.TrimPrefix(arg, dbmigrate.WorkflowIDPrefix)
	if _, err := uuid.Parse(id); err != nil {
		return "", usagef("%q is neither a migration id nor %s<uuid>", arg, dbmigrate.WorkflowIDPrefix)
	}
	return dbmigrate.WorkflowID(id), nil
}

func loadDBSpec(e *Env, path string) (*spec.Spec, error) {
	var sp *spec.Spec
	var err error
	if path == "-" {
		raw, rerr := readSpec(e, path)
		if rerr != nil {
			return nil, rerr
		}
		sp, err = spec.Parse(raw)
	} else {
		sp, err = spec.Load(path)
	}
	if err != nil {
		return nil, usageError{err.Error()}
	}
	if _, err := plan.New(sp); err != nil {
		return nil, usageError{err.Error()}
	}
	return sp, nil
}

func notFoundOr(err error, id string) error {
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return notFoundError{fmt.Errorf("no database migration %s; list them with 'cutover db list'", id)}
	}
	return err
}

func runDBStart(ctx context.Context, e *Env, args []string) error {
	fs := newFlags(e, "db start")
	var tf temporalFlags
	tf.bind(e, fs)
	typ := fs.String("type", string(model.MigrationFull), "full_migration, incremental or schema_cleanup")
	id := fs.String("id", "", "migration UUID (default: a new one)")
	by := fs.String("created-by", orDefault(e.Getenv("USER"), "cutover"), "who starts it (recorded as created_by)")
	var cfg dbmigrate.Config
	fs.IntVar(&cfg.Parallelism, "parallelism", 2, "entities copied at once")
	fs.IntVar(&cfg.BatchesPerActivity, "batches-per-activity", 10, "batches per copy activity")
	fs.Int64Var(&cfg.MaxErrors, "max-errors", 0, "stop an entity when more records fail (0: no limit)")
	fs.Float64Var(&cfg.MaxErrorRatio, "max-error-ratio", 0, "stop an entity when failed/(processed+failed) exceeds it (0: no limit)")
	fs.BoolVar(&cfg.AllowWarnings, "allow-warnings", false, "complete despite validation warnings")
	fs.DurationVar(&cfg.SyncInterval, "sync-interval", time.Minute, "incremental: pause between catch-up passes")
	fs.StringVar(&cfg.Events.Channel, "notify-channel", dbmigrate.DefaultChannel, "PostgreSQL NOTIFY channel for migration events (empty: none)")
	fs.StringVar(&cfg.Events.Webhook, "webhook", "", "URL receiving migration events as JSON POSTs")
	wait := fs.Bool("wait", false, "wait for the migration to end and print its summary")
	out := bindOutput(fs)
	specFlag := fs.String("spec", "", "the migration spec, YAML or JSON (or give it as the argument; - reads stdin)")
	specPath, err := specArgument(fs, args, specFlag)
	if err != nil {
		return err
	}
	mt := model.MigrationType(*typ)
	switch mt {
	case model.MigrationFull, model.MigrationIncremental, model.MigrationSchemaCleanup:
	default:
		return usagef("--type %q: want full_migration, incremental or schema_cleanup", *typ)
	}
	if *id == "" {
		*id = uuid.NewString()
	} else if _, err := uuid.Parse(*id); err != nil {
		return usagef("--id %q is not a UUID", *id)
	}
	sp, err := loadDBSpec(e, specPath)
	if err != nil {
		return err
	}
	c, err := tf.client(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	in := dbmigrate.Input{MigrationID: *id, MigrationType: mt, CreatedBy: *by, Spec: sp, Config: cfg}
	m, err := c.StartDBMigration(ctx, in)
	if err != nil {
		return err
	}
	p, _ := plan.New(sp)
	if out.json() {
		if err := writeJSON(e.Stdout, m); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(e.Stdout, "started %s (%s, %d entities)\n%s", m.WorkflowID, mt, len(p.Order), p.String())
	}
	if !*wait {
		return nil
	}
	st, err := c.DBResult(ctx, m.MigrationID)
	if st.MigrationID != "" {
		if out.json() {
			_ = writeJSON(e.Stdout, st)
		} else {
			printDBState(e, st)
		}
	}
	if err != nil {
		return fmt.Errorf("migration %s: %w", m.WorkflowID, err)
	}
	return nil
}

func printDBState(e *Env, st dbmigrate.State) {
	fmt.Fprintf(e.Stdout, "migration %s (%s): %s, phase %s, %.2f%%, %d/%d entities, %d errors\n",
		st.MigrationID, st.MigrationType, st.Status, st.Phase, st.ProgressPercent, st.CompletedEntities, st.TotalEntities, st.ErrorCount)
	tw := tabwriter.NewWriter(e.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ENTITY\tSTATUS\tPROCESSED\tFAILED\tTOTAL\tLAST ID\tROWS/S")
	for _, en := range st.Entities {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%.0f\n", en.Name, en.Status, en.Processed, en.Failed, en.Total, en.LastKey, en.Throughput)
	}
	_ = tw.Flush()
	for _, op := range st.Ops {
		wait := ""
		if op.AwaitingApproval {
			wait = " — awaiting approval (cutover db approve-op)"
		}
		fmt.Fprintf(e.Stdout, "schema op %s: %s, risk %s%s\n", op.Name, op.Status, orDefault(string(op.Risk), "?"), wait)
	}
	for _, v := range st.Validation {
		fmt.Fprintf(e.Stdout, "validation %s: %s (%d failed, %d warning checks)\n", v.Entity, v.Status, v.Failures, v.Warnings)
	}
	if st.Passes > 0 {
		fmt.Fprintf(e.Stdout, "catch-up passes: %d", st.Passes)
		if st.FinalPassSeconds > 0 {
			fmt.Fprintf(e.Stdout, ", final pass %.1f s", st.FinalPassSeconds)
		}
		fmt.Fprintln(e.Stdout)
	}
	for _, r := range st.Refused {
		fmt.Fprintf(e.Stdout, "refused: %s\n", r)
	}
	if st.Error != "" {
		fmt.Fprintf(e.Stdout, "error: %s\n", st.Error)
	}
}

func runDBStatus(ctx context.Context, e *Env, args []string) error {
	fs := newFlags(e, "db status")
	var tf temporalFlags
	tf.bind(e, fs)
	out := bindOutput(fs)
	if err := parse(fs, args, 1); err != nil {
		return err
	}
	id, err := dbWorkflowID(fs.Arg(0))
	if err != nil {
		return err
	}
	c, err := tf.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	v, err := c.QueryWorkflow(ctx, id, "", dbmigrate.QueryStatus)
	if err != nil {
		return notFoundOr(err, id)
	}
	var st dbmigrate.State
	if err := v.Get(&st); err != nil {
		return err
	}
	if out.json() {
		return writeJSON(e.Stdout, st)
	}
	printDBState(e, st)
	return nil
}

func runDBApprove(ctx context.Context, e *Env, args []string) error {
	fs := newFlags(e, "db approve-op")
	var tf temporalFlags
	tf.bind(e, fs)
	by := fs.String("by", e.Getenv("USER"), "who approves (recorded as approved_by)")
	out := bindOutput(fs)
	if err := parse(fs, args, 2); err != nil {
		return err
	}
	if *by == "" {
		return usagef("--by is required")
	}
	id, err := dbWorkflowID(fs.Arg(0))
	if err != nil {
		return err
	}
	c, err := tf.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: id, UpdateName: dbmigrate.UpdateApprove,
		WaitForStage: client.WorkflowUpdateStageCompleted, Args: []any{dbmigrate.Approval{Operation: fs.Arg(1), ApprovedBy: *by}}})
	if err != nil {
		return notFoundOr(err, id)
	}
	var msg string
	if err := h.Get(ctx, &msg); err != nil {
		return err
	}
	if out.json() {
		return writeJSON(e.Stdout, map[string]string{"workflow_id": id, "operation": fs.Arg(1), "approved_by": *by, "message": msg})
	}
	fmt.Fprintf(e.Stdout, "%s: %s by %s\n", id, msg, *by)
	return nil
}

// dbSignal sends a rollback or cutover request.
func dbSignal(name string) func(context.Context, *Env, []string) error {
	return func(ctx context.Context, e *Env, args []string) error {
		fs := newFlags(e, "db "+name)
		var tf temporalFlags
		tf.bind(e, fs)
		reason := fs.String("reason", "", "why (rollback)")
		out := bindOutput(fs)
		if err := parse(fs, args, 1); err != nil {
			return err
		}
		id, err := dbWorkflowID(fs.Arg(0))
		if err != nil {
			return err
		}
		c, err := tf.dial(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		var arg any = dbmigrate.CutoverRequest{RequestedBy: e.Getenv("USER")}
		if name == dbmigrate.SignalRollback {
			arg = dbmigrate.RollbackRequest{Reason: *reason, RequestedBy: e.Getenv("USER")}
		}
		if err := c.SignalWorkflow(ctx, id, "", name, arg); err != nil {
			return notFoundOr(err, id)
		}
		if out.json() {
			return writeJSON(e.Stdout, map[string]string{"workflow_id": id, "requested": name})
		}
		fmt.Fprintf(e.Stdout, "%s: %s requested (see 'cutover db status' for the outcome)\n", id, name)
		return nil
	}
}

func runDBRetry(ctx context.Context, e *Env, args []string) error {
	fs := newFlags(e, "db retry-failed")
	var tf temporalFlags
	tf.bind(e, fs)
	entity := fs.String("entity", "", "only this entity (default: every completed entity)")
	specPath := fs.String("spec", "", "a fixed spec to use from now on")
	out := bindOutput(fs)
	if err := parse(fs, args, 1); err != nil {
		return err
	}
	id, err := dbWorkflowID(fs.Arg(0))
	if err != nil {
		return err
	}
	req := dbmigrate.RetryRequest{Entity: *entity}
	if *specPath != "" {
		if req.Spec, err = loadDBSpec(e, *specPath); err != nil {
			return err
		}
	}
	c, err := tf.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SignalWorkflow(ctx, id, "", dbmigrate.SignalRetry, req); err != nil {
		return notFoundOr(err, id)
	}
	if out.json() {
		return writeJSON(e.Stdout, map[string]string{"workflow_id": id, "requested": dbmigrate.SignalRetry, "entity": *entity})
	}
	fmt.Fprintf(e.Stdout, "%s: retry_failed requested\n", id)
	return nil
}
