package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/starter/client"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/dbmigrate/plan"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

func init() {
	register("db start", "validate a database migration spec (YAML or JSON), plan it and start DBMigrationWorkflow", runDBStart)
	register("db status", "show a database migration: status, phase, per-entity progress, schema ops, validation", runDBStatus)
	register("db approve-op", "approve a critical schema change operation (refused unless it is pending)", runDBApprove)
	register("db rollback", "compensate a database migration, running or ended (reverse order), back to pending", runDBRollback)
	register("db cutover", "end the catch-up passes of an incremental migration: freeze, last changes, validation", dbSignal(dbmigrateapi.SignalCutover))
	register("db close", "end the reverse flow of a cut-over migration (target.reverse_flow): it completes", dbSignal(dbmigrateapi.SignalClose))
	register("db retry-failed", "re-drive quarantined rows (optionally with a fixed spec), of a running or an ended migration", runDBRetry)
	register("db retry", "resume a failed database migration from its committed batches (a new run over the same ledger)", runDBResume)
	register("db accept-errors", "accept a migration's quarantined rows (--reason, recorded and reported): it may complete with them", runDBAccept)
}

// dbWorkflowID accepts a migration UUID or its workflow id (a usage error otherwise).
func dbWorkflowID(arg string) (string, error) {
	id, err := client.DBWorkflowID(arg)
	if err != nil {
		return "", usageError{err.Error()}
	}
	return id, nil
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

// dbError turns the client's answers for migration id into the CLI's: not found (exit 3) with
// where to look, a refusal with its reason.
func dbError(err error, id string) error {
	var refused *client.RefusedError
	switch {
	case errors.Is(err, client.ErrNotFound):
		return notFoundError{fmt.Errorf("no database migration %s; list them with 'cutover db list'", id)}
	case errors.As(err, &refused):
		return errors.New(refused.Reason)
	}
	return err
}

func runDBStart(ctx context.Context, e *Env, args []string) error {
	fs, tf, out := commandFlags(e, "db start")
	typ := fs.String("type", string(model.MigrationFull), "full_migration, incremental or schema_cleanup")
	id := fs.String("id", "", "migration UUID (default: a new one)")
	by := fs.String("created-by", orDefault(e.Getenv("USER"), "cutover"), "who starts it (recorded as created_by)")
	var cfg dbmigrateapi.Config
	fs.IntVar(&cfg.Parallelism, "parallelism", 2, "entities loading at once (one building its indexes after its load does not count)")
	fs.IntVar(&cfg.BatchesPerActivity, "batches-per-activity", 10, "batches per copy activity")
	fs.Int64Var(&cfg.MaxErrors, "max-errors", 0, "stop an entity when more records fail (0: no limit)")
	fs.Float64Var(&cfg.MaxErrorRatio, "max-error-ratio", 0, "stop an entity when failed/(processed+failed) exceeds it (0: no limit)")
	fs.BoolVar(&cfg.AllowWarnings, "allow-warnings", false, "complete despite validation warnings")
	fs.DurationVar(&cfg.SyncInterval, "sync-interval", time.Minute, "incremental: pause between catch-up passes")
	fs.StringVar(&cfg.Events.Channel, "notify-channel", dbmigrateapi.DefaultChannel, "PostgreSQL NOTIFY channel for migration events (empty: none)")
	fs.StringVar(&cfg.Events.Webhook, "webhook", "", "URL receiving migration events as JSON POSTs")
	wait := fs.Bool("wait", false, "wait for the migration to end and print its summary")
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
	in := dbmigrateapi.Input{MigrationID: *id, MigrationType: mt, CreatedBy: *by, Spec: sp, Config: cfg}
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

func printDBState(e *Env, st dbmigrateapi.State) {
	fmt.Fprintf(e.Stdout, "migration %s (%s): %s, phase %s, %.2f%%, %d/%d entities, %d errors\n",
		st.MigrationID, st.MigrationType, st.Status, st.Phase, st.ProgressPercent, st.CompletedEntities, st.TotalEntities, st.ErrorCount)
	tw := tabwriter.NewWriter(e.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ENTITY\tSTATUS\tPROCESSED\tFAILED\tTOTAL\tLAST ID\tROWS/S")
	for _, en := range st.Entities {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%.0f\n", en.Name, en.Status, en.Processed, en.Failed, en.Total, en.LastKey, en.Throughput)
	}
	_ = tw.Flush()
	for _, en := range st.Entities {
		if len(en.Changes) == 0 {
			continue
		}
		parts := make([]string, len(en.Changes))
		for i, c := range en.Changes {
			parts[i] = fmt.Sprintf("%s %s ×%d", c.Column, c.Change, c.Count)
		}
		fmt.Fprintf(e.Stdout, "values changed in %s: %s\n", en.Name, strings.Join(parts, ", "))
	}
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
	printCapture(e, st)
	for _, r := range st.Recoveries {
		fmt.Fprintf(e.Stdout, "taken up again: %s of the %s migration (after run %s) by %s", r.Action, r.From, r.PreviousRunID,
			orDefault(r.RequestedBy, "?"))
		if r.Reason != "" {
			fmt.Fprintf(e.Stdout, ": %s", r.Reason)
		}
		fmt.Fprintln(e.Stdout)
	}
	for _, r := range st.Requests {
		fmt.Fprintf(e.Stdout, "requested: %s\n", requestLine(r))
	}
	if a := st.Accepted; a != nil {
		fmt.Fprintf(e.Stdout, "quarantined rows accepted: %d by %s: %s\n", a.QuarantinedRows, a.By, a.Reason)
	}
	for _, p := range st.Pending {
		printPending(e, p)
	}
	for _, r := range st.Refused {
		fmt.Fprintf(e.Stdout, "refused: %s\n", r)
	}
	if st.Error != "" {
		fmt.Fprintf(e.Stdout, "error: %s\n", st.Error)
	}
}

func runDBStatus(ctx context.Context, e *Env, args []string) error {
	fs, tf, out := commandFlags(e, "db status")
	pos, err := parseAnyOrder(fs, args, 1)
	if err != nil {
		return err
	}
	id, err := dbWorkflowID(pos[0])
	if err != nil {
		return err
	}
	c, err := tf.client(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	st, err := c.DBStatus(ctx, id)
	if err != nil {
		return dbError(err, id)
	}
	if out.json() {
		return writeJSON(e.Stdout, st)
	}
	printDBState(e, st)
	return nil
}

func runDBApprove(ctx context.Context, e *Env, args []string) error {
	fs, tf, out := commandFlags(e, "db approve-op")
	by := fs.String("by", e.Getenv("USER"), "who approves (recorded as approved_by)")
	reason := fs.String("reason", "", "why: recorded with the approval, shown by db status and db report")
	pos, err := parseAnyOrder(fs, args, 2)
	if err != nil {
		return err
	}
	if *by == "" {
		return usagef("--by is required")
	}
	id, err := dbWorkflowID(pos[0])
	if err != nil {
		return err
	}
	c, err := tf.client(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	msg, err := c.ApproveSchemaChange(ctx, id, pos[1], *by, *reason)
	if err != nil {
		return dbError(err, id)
	}
	if out.json() {
		return writeJSON(e.Stdout, map[string]string{"workflow_id": id, "operation": pos[1], "approved_by": *by, "message": msg})
	}
	fmt.Fprintf(e.Stdout, "%s: %s by %s\n", id, msg, *by)
	return nil
}

// dbSignal sends a cutover or close request.
func dbSignal(name string) func(context.Context, *Env, []string) error {
	return func(ctx context.Context, e *Env, args []string) error {
		fs, tf, out := commandFlags(e, "db "+name)
		reason := fs.String("reason", "", "why: recorded with the request, shown by db status and db report")
		pos, err := parseAnyOrder(fs, args, 1)
		if err != nil {
			return err
		}
		id, err := dbWorkflowID(pos[0])
		if err != nil {
			return err
		}
		c, err := tf.client(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		switch name {
		case dbmigrateapi.SignalClose:
			err = c.RequestClose(ctx, id, e.Getenv("USER"), *reason)
		default:
			err = c.RequestCutover(ctx, id, e.Getenv("USER"), *reason)
		}
		if err != nil {
			return dbError(err, id)
		}
		if out.json() {
			return writeJSON(e.Stdout, map[string]string{"workflow_id": id, "requested": name})
		}
		fmt.Fprintf(e.Stdout, "%s: %s requested (see 'cutover db status' for the outcome)\n", id, name)
		return nil
	}
}

func runDBRetry(ctx context.Context, e *Env, args []string) error {
	fs, tf, out := commandFlags(e, "db retry-failed")
	entity := fs.String("entity", "", "only this entity (default: every completed entity)")
	specPath := fs.String("spec", "", "a fixed spec to use from now on")
	reason := fs.String("reason", "", "why: recorded with the request, shown by db status and db report")
	pos, err := parseAnyOrder(fs, args, 1)
	if err != nil {
		return err
	}
	var fixed *spec.Spec
	if *specPath != "" {
		if fixed, err = loadDBSpec(e, *specPath); err != nil {
			return err
		}
	}
	return dbRecover(ctx, e, tf, out, pos[0], dbmigrateapi.Recovery{Action: dbmigrateapi.RecoverRetryFailed, Entity: *entity,
		Reason: *reason, RequestedBy: e.Getenv("USER")}, fixed)
}

func runDBRollback(ctx context.Context, e *Env, args []string) error {
	fs, tf, out := commandFlags(e, "db rollback")
	reason := fs.String("reason", "", "why (recorded)")
	pos, err := parseAnyOrder(fs, args, 1)
	if err != nil {
		return err
	}
	return dbRecover(ctx, e, tf, out, pos[0], dbmigrateapi.Recovery{Action: dbmigrateapi.RecoverRollback,
		Reason: *reason, RequestedBy: e.Getenv("USER")}, nil)
}

func runDBResume(ctx context.Context, e *Env, args []string) error {
	fs, tf, out := commandFlags(e, "db retry")
	reason := fs.String("reason", "", "why (recorded)")
	pos, err := parseAnyOrder(fs, args, 1)
	if err != nil {
		return err
	}
	return dbRecover(ctx, e, tf, out, pos[0], dbmigrateapi.Recovery{Action: dbmigrateapi.RecoverRetry,
		Reason: *reason, RequestedBy: e.Getenv("USER")}, nil)
}

func runDBAccept(ctx context.Context, e *Env, args []string) error {
	fs, tf, out := commandFlags(e, "db accept-errors")
	reason := fs.String("reason", "", "why the quarantined rows may stay out of the target (required; recorded and reported)")
	by := fs.String("by", e.Getenv("USER"), "who accepts (recorded)")
	pos, err := parseAnyOrder(fs, args, 1)
	if err != nil {
		return err
	}
	if strings.TrimSpace(*reason) == "" {
		return usagef("--reason is required: say why the quarantined rows may stay out of the target")
	}
	if *by == "" {
		return usagef("--by is required")
	}
	return dbRecover(ctx, e, tf, out, pos[0], dbmigrateapi.Recovery{Action: dbmigrateapi.RecoverAccept,
		Reason: *reason, RequestedBy: *by}, nil)
}

// dbRecover delivers a recovery request: a signal to a running migration, a new run of an
// ended one.
func dbRecover(ctx context.Context, e *Env, tf *temporalFlags, out *output, arg string, rec dbmigrateapi.Recovery,
	fixed *spec.Spec) error {
	id, err := dbWorkflowID(arg)
	if err != nil {
		return err
	}
	c, err := tf.client(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	r, err := c.Recover(ctx, id, rec, fixed)
	if err != nil {
		return dbError(err, id)
	}
	if out.json() {
		return writeJSON(e.Stdout, map[string]any{"workflow_id": id, "requested": rec.Action, "signalled": r.Signalled,
			"run_id": r.RunID, "previous_run_id": r.PreviousRunID})
	}
	if r.Signalled {
		fmt.Fprintf(e.Stdout, "%s: %s requested (see 'cutover db status' for the outcome)\n", id, rec.Action)
		return nil
	}
	fmt.Fprintf(e.Stdout, "%s: %s started as run %s, after run %s (see 'cutover db status')\n", id, rec.Action, r.RunID, r.PreviousRunID)
	return nil
}

// requestLine is an operator's request as status and report print it: "cutover by ops at
// 2026-12-07T08:00:00Z: the application is switched over".
func requestLine(r dbmigrateapi.RequestRecord) string {
	what := r.Request
	if r.Subject != "" {
		what += " " + r.Subject
	}
	line := fmt.Sprintf("%s by %s at %s", what, orDefault(r.RequestedBy, "?"), r.At.UTC().Format(time.RFC3339))
	if r.Reason != "" {
		line += ": " + r.Reason
	}
	return line
}

func requestLines(rs []dbmigrateapi.RequestRecord) []string {
	var out []string
	for _, r := range rs {
		out = append(out, requestLine(r))
	}
	return out
}

// printPending shows an activity Temporal runs or retries, loudly when it is stalled.
func printPending(e *Env, p dbmigrateapi.PendingActivity) {
	what := p.Activity
	if p.Entity != "" {
		what = fmt.Sprintf("%s of %s", p.Activity, p.Entity)
	}
	if !p.LastCommit.IsZero() {
		what += fmt.Sprintf(" (batch %d, no batch committed for %s)", p.Batch, time.Since(p.LastCommit).Round(time.Second))
	}
	state := "running"
	if p.Stalled {
		state = "STALLED"
	}
	fmt.Fprintf(e.Stdout, "%s: %s, attempt %d", state, what, p.Attempt)
	if p.LastFailure != "" {
		fmt.Fprintf(e.Stdout, ", last failure: %s", p.LastFailure)
	}
	if p.WorkerSilent != "" {
		fmt.Fprintf(e.Stdout, "; %s", p.WorkerSilent)
	}
	fmt.Fprintln(e.Stdout)
}

// printCapture shows a captured migration's lag, its replication slots while they exist, the
// cutover window and the reverse flow.
func printCapture(e *Env, st dbmigrateapi.State) {
	show := func(what string, c *dbmigrateapi.CaptureState) {
		if c == nil {
			return
		}
		if c.Removed {
			fmt.Fprintf(e.Stdout, "%s: removed from the sources (%d changes applied)\n", what, c.ChangesApplied)
			return
		}
		fmt.Fprintf(e.Stdout, "%s: %d changes at the last pass, %.0f changes/s, final pass ≈ %.1f s, %d applied\n",
			what, c.ChangesPending, c.RowsPerSecond, c.PredictedFinalSeconds, c.ChangesApplied)
		for _, s := range c.Sources {
			if s.Slot != "" {
				fmt.Fprintf(e.Stdout, "  replication slot %s (%s, %s): %d WAL bytes pending, %d retained — dropped at the end or on rollback\n",
					s.Slot, s.Source, s.Direction, s.PendingWALBytes, s.RetainedWALBytes)
			}
		}
	}
	show("change capture", st.Capture)
	show("reverse flow", st.Reverse)
	if st.CutoverWindowSeconds > 0 {
		fmt.Fprintf(e.Stdout, "cutover window: %.2f s (freeze start → completed)\n", st.CutoverWindowSeconds)
	}
}
