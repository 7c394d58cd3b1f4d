package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/cutover/cutover/activities/emailjob"
	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/searchattr"
	emailwf "github.com/cutover/cutover/workflows/email"
	"github.com/cutover/cutover/workflows/email/gate"
	"github.com/cutover/cutover/workflows/email/jobspec"
)

func init() {
	register("email start", "validate a job spec (YAML or JSON), register its mailboxes and start the job", runEmailStart)
	register("email status", "show a job: phase, gate, checks, mailboxes (from the workflow, else PostgreSQL)", runEmailStatus)
	register("email approve", "approve the go/no-go gate as the ops lead (refused while checks fail)", emailCommand(emailwf.Approve, "note"))
	register("email cutover", "confirm DNS/MX now point at the destination (refused unless ready_for_dns)", emailCommand(emailwf.DNSCutoverConfirmed, "at"))
	register("email retry", "resume a failed job from the phase it failed in", emailCommand(emailwf.Retry, ""))
	register("email abort", "stop a job (left failed; start it again to resume)", emailCommand(emailwf.Abort, "reason"))
	register("email close", "close a verified job before its soak period ends", emailCommand(emailwf.Close, "note"))
	register("email presync", "run a presync now instead of waiting for the schedule", emailCommand(emailwf.PresyncNow, ""))
	register("email schedule", "set (--cutover-at) or clear (--clear) the migration hour", emailCommand(emailwf.SetCutoverTime, "cutover-at"))
}

// readSpec reads a spec file, or stdin for "-".
func readSpec(e *Env, path string) ([]byte, error) {
	var r io.Reader
	if path == "-" {
		r = e.Stdin
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, usagef("job spec: %v", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("read job spec: %w", err)
	}
	return b, nil
}

func runEmailStart(ctx context.Context, e *Env, args []string) error {
	fs := newFlags(e, "email start")
	var tf temporalFlags
	tf.bind(e, fs)
	wait := fs.Bool("wait", false, "follow the job, printing each phase and gate change, until it ends")
	poll := fs.Duration("poll", 2*time.Second, "with --wait: how often to ask the job for its status")
	jobID := fs.Int64("job-id", 0, "job id to use when the spec has none (default: the next free id)")
	pos, err := parseAnyOrder(fs, args, 1)
	if err != nil {
		return err
	}
	raw, err := readSpec(e, pos[0])
	if err != nil {
		return err
	}
	spec, err := jobspec.Parse(raw)
	if err != nil {
		return usageError{err.Error()}
	}
	if err := spec.CheckFiles(); err != nil {
		return usageError{err.Error()}
	}
	if *jobID != 0 {
		if spec.JobID != 0 && spec.JobID != *jobID {
			return usagef("--job-id %d contradicts the spec's job_id %d", *jobID, spec.JobID)
		}
		spec.JobID = *jobID
	}

	c, err := tf.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if spec.JobID != 0 {
		if err := refuseRunning(ctx, c, spec.JobID); err != nil {
			return err
		}
	}
	db, err := store.OpenAndMigrate(ctx, databaseURL(e))
	if err != nil {
		return err
	}
	defer db.Close()
	if spec.JobID == 0 {
		// Let PostgreSQL pick the id: the job row is created here, the workflow finds it.
		j, err := db.CreateJob(ctx, store.Job{TenantID: spec.TenantID, Domain: spec.Domain})
		if err != nil {
			return err
		}
		spec.JobID = j.ID
	}
	// The mailboxes go to PostgreSQL now, so the workflow input stays small at any job size.
	n, err := emailjob.Register(ctx, db, spec)
	if err != nil {
		return fmt.Errorf("register job %d: %s", spec.JobID, errMessage(err))
	}
	input := spec
	input.Mailboxes, input.MailboxCount = nil, n

	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                                       emailwf.WorkflowID(spec.JobID),
		TaskQueue:                                tf.taskQueue,
		WorkflowIDReusePolicy:                    enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY,
		WorkflowIDConflictPolicy:                 enums.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		TypedSearchAttributes: temporal.NewSearchAttributes(searchattr.Kind.ValueSet(emailwf.Kind),
			searchattr.Domain.ValueSet(spec.Domain), searchattr.TenantID.ValueSet(spec.TenantID),
			searchattr.Phase.ValueSet(string(model.PhaseDiscovered)), searchattr.Gate.ValueSet(string(model.GateBlocked))),
		StaticSummary: fmt.Sprintf("email job %d: %s (%d mailboxes)", spec.JobID, spec.Domain, n),
		StaticDetails: staticDetails(spec, n),
	}, emailwf.WorkflowName, input)
	if err != nil {
		var started *serviceerror.WorkflowExecutionAlreadyStarted
		if errors.As(err, &started) {
			return fmt.Errorf("job %d already ran to completion (workflow %s); a closed job is not started again", spec.JobID, emailwf.WorkflowID(spec.JobID))
		}
		return fmt.Errorf("start job %d: %w", spec.JobID, err)
	}
	fmt.Fprintf(e.Stdout, "started email job %d: %s, %d mailboxes (workflow %s, run %s)\n",
		spec.JobID, spec.Domain, n, run.GetID(), run.GetRunID())
	if !*wait {
		return nil
	}
	return followJob(ctx, e, c, run, *poll)
}

// refuseRunning fails clearly when the job's workflow already runs (before anything is written).
func refuseRunning(ctx context.Context, c client.Client, jobID int64) error {
	d, err := c.DescribeWorkflowExecution(ctx, emailwf.WorkflowID(jobID), "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up job %d: %w", jobID, err)
	}
	if d.GetWorkflowExecutionInfo().GetStatus() == enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return fmt.Errorf("job %d is already running (workflow %s); see 'cutover email status %d'", jobID, emailwf.WorkflowID(jobID), jobID)
	}
	return nil
}

func staticDetails(spec jobspec.Spec, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "**Email migration** of `%s` (tenant %d", spec.Domain, spec.TenantID)
	if spec.TicketID > 0 {
		fmt.Fprintf(&b, ", ticket %d", spec.TicketID)
	}
	fmt.Fprintf(&b, ")\n\n- source: `%s` %s\n- destination: `%s`\n- mailboxes: %d\n- presyncs: ", spec.Source.Host, spec.Source.Label, spec.Destination.Host, n)
	if spec.Schedule.PresyncAt != "" {
		fmt.Fprintf(&b, "daily at %s %s", spec.Schedule.PresyncAt, spec.Schedule.Timezone)
	} else {
		fmt.Fprintf(&b, "every %s", spec.Schedule.PresyncInterval)
	}
	if at := spec.Schedule.CutoverAt; at != nil {
		fmt.Fprintf(&b, "\n- cutover hour: %s", at.UTC().Format(time.RFC3339))
	}
	return b.String()
}

// followJob prints phase and gate changes until the workflow ends.
func followJob(ctx context.Context, e *Env, c client.Client, run client.WorkflowRun, poll time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- run.Get(ctx, nil) }()
	last := ""
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			st, qerr := queryStatus(ctx, c, run.GetID())
			if qerr == nil {
				printStatus(e.Stdout, st)
			}
			if err != nil {
				return fmt.Errorf("job workflow %s ended: %s", run.GetID(), errMessage(err))
			}
			return nil
		case <-tick.C:
			st, err := queryStatus(ctx, c, run.GetID())
			if err != nil {
				continue // not answering yet (no worker?): keep waiting
			}
			line := fmt.Sprintf("%s  phase %s  gate %s  %.1f%% synced  %d presync(s)", time.Now().UTC().Format(time.TimeOnly),
				st.Phase, st.Gate, st.SyncPercent, st.Presyncs)
			if hint := nextStep(st); hint != "" {
				line += "  — " + hint
			}
			if key := fmt.Sprintf("%s|%s|%.1f|%d", st.Phase, st.Gate, st.SyncPercent, st.Presyncs); key != last {
				last = key
				fmt.Fprintln(e.Stdout, line)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// nextStep says what a waiting job needs from a human.
func nextStep(st emailwf.Status) string {
	id := st.JobID
	switch {
	case st.Phase == model.PhaseFailed:
		return fmt.Sprintf("failed in %s: %s; fix and run 'cutover email retry %d'", st.FailedPhase, st.LastError, id)
	case (st.Phase == model.PhaseDeltaSync || st.Phase == model.PhaseCutoverReady) && st.Gate == model.GateWarning && st.ApprovedBy == "":
		return fmt.Sprintf("review the checks and 'cutover email approve %d'", id)
	case st.Phase == model.PhaseCutoverReady && st.Gate == model.GateReadyForDNS:
		return fmt.Sprintf("switch DNS/MX, then 'cutover email cutover %d'", id)
	case st.Phase == model.PhaseVerified:
		return fmt.Sprintf("soaking with INBOX post-syncs; 'cutover email close %d' ends it", id)
	}
	return ""
}

// parseAnyOrder parses flags given before or after the positional arguments
// ("email approve 42 --by lead" as well as "email approve --by lead 42").
func parseAnyOrder(fs *flag.FlagSet, args []string, positional int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if len(pos) != positional {
		return nil, usagef("want %d argument(s), got %d: %s", positional, len(pos), strings.Join(pos, " "))
	}
	return pos, nil
}

func parseJobID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, usagef("job id %q: want a positive integer", s)
	}
	return id, nil
}

// emailCommand sends one of the job's commands as a validated update: a refusal comes back
// with its reason. extra names the command's own flag ("note", "reason", "at", "cutover-at").
func emailCommand(name, extra string) func(ctx context.Context, e *Env, args []string) error {
	return func(ctx context.Context, e *Env, args []string) error {
		fs := newFlags(e, "email "+name)
		var tf temporalFlags
		tf.bind(e, fs)
		by := fs.String("by", e.Getenv("USER"), "who is asking (user id; default $USER)")
		var text, at string
		clearAt := false
		switch extra {
		case "note", "reason":
			fs.StringVar(&text, extra, "", "a line recorded in the job's notes")
		case "at":
			fs.StringVar(&at, "at", "", "when DNS was switched, RFC 3339 (default now)")
		case "cutover-at":
			fs.StringVar(&at, "cutover-at", "", "the migration hour, RFC 3339")
			fs.BoolVar(&clearAt, "clear", false, "clear the migration hour")
		}
		pos, err := parseAnyOrder(fs, args, 1)
		if err != nil {
			return err
		}
		id, err := parseJobID(pos[0])
		if err != nil {
			return err
		}
		if strings.TrimSpace(*by) == "" {
			return usagef("--by is required (no $USER)")
		}
		req := emailwf.Request{By: *by, Note: text}
		if at != "" {
			t, err := time.Parse(time.RFC3339, at)
			if err != nil {
				return usagef("%q is not an RFC 3339 time such as 2026-06-01T22:00:00Z", at)
			}
			req.At = &t
		}
		if extra == "cutover-at" && (at == "") == !clearAt {
			return usagef("give --cutover-at or --clear")
		}
		c, err := tf.dial(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: emailwf.WorkflowID(id), UpdateName: name,
			Args: []any{req}, WaitForStage: client.WorkflowUpdateStageCompleted})
		if err == nil {
			var ack emailwf.Ack
			if err = h.Get(ctx, &ack); err == nil {
				fmt.Fprintf(e.Stdout, "job %d: %s\nphase %s, gate %s\n", id, ack.Message, ack.Phase, ack.Gate)
				return nil
			}
		}
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			return notFoundError{fmt.Errorf("job %d has no running workflow (%s)", id, emailwf.WorkflowID(id))}
		}
		return fmt.Errorf("job %d: %s", id, errMessage(err))
	}
}

// errMessage is an error's message without the SDK's decorations.
func errMessage(err error) string {
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		return ae.Message()
	}
	return err.Error()
}

func queryStatus(ctx context.Context, c client.Client, workflowID string) (emailwf.Status, error) {
	var st emailwf.Status
	v, err := c.QueryWorkflow(ctx, workflowID, "", emailwf.QueryStatus)
	if err != nil {
		return st, err
	}
	return st, v.Get(&st)
}

func runEmailStatus(ctx context.Context, e *Env, args []string) error {
	fs := newFlags(e, "email status")
	var tf temporalFlags
	tf.bind(e, fs)
	asJSON := fs.Bool("json", false, "print the status as JSON (the ticket payload first)")
	pos, err := parseAnyOrder(fs, args, 1)
	if err != nil {
		return err
	}
	id, err := parseJobID(pos[0])
	if err != nil {
		return err
	}
	c, err := tf.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	st, err := queryStatus(ctx, c, emailwf.WorkflowID(id))
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		// No workflow (never started here, or its history is gone): PostgreSQL knows the rest.
		st, err = statusFromDB(ctx, e, id)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(e.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	printStatus(e.Stdout, st)
	return nil
}

func statusFromDB(ctx context.Context, e *Env, id int64) (emailwf.Status, error) {
	db, err := store.Open(ctx, databaseURL(e))
	if err != nil {
		return emailwf.Status{}, err
	}
	defer db.Close()
	p, err := db.GetJobProgress(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return emailwf.Status{}, notFoundError{fmt.Errorf("job %d: no workflow and no migration_jobs row", id)}
	}
	if err != nil {
		return emailwf.Status{}, err
	}
	st := emailwf.Status{JobID: id, Phase: p.Phase, Gate: p.Gate, SyncPercent: float64(p.SyncPercent), Domain: p.Domain,
		TenantID: p.TenantID, State: "unknown (from PostgreSQL)", FailedPhase: p.FailedPhase, LastError: p.LastError,
		ApprovedAt: p.ApprovedAt, CutoverAt: p.CutoverPlannedAt, DNSCutoverAt: p.DNSCutoverAt}
	if p.ApprovedBy != nil {
		st.ApprovedBy = *p.ApprovedBy
	}
	if p.PredictedFinalSyncSeconds != nil {
		st.PredictedFinalSyncSeconds = *p.PredictedFinalSyncSeconds
	}
	mbs, err := db.ListMailboxes(ctx, id)
	if err != nil {
		return st, err
	}
	st.Mailboxes = len(mbs)
	st.MailboxCounts = map[model.MailboxStatus]int64{}
	for _, m := range mbs {
		st.MailboxCounts[m.Status]++
		if len(st.MailboxDetails) < emailwf.DefaultKeepResults {
			st.MailboxDetails = append(st.MailboxDetails, emailwf.MailboxProgress{Email: m.Email, Status: m.Status,
				MessagesSource: m.MessagesSource, MessagesDest: m.MessagesDest, SyncPercent: float64(m.SyncPercent), LastError: m.LastError})
		}
	}
	checks, err := db.LatestGateChecks(ctx, id)
	if err != nil {
		return st, err
	}
	for _, id := range model.CheckIDs { // the seed's order
		for _, c := range checks {
			if c.CheckID == id {
				st.Checks = append(st.Checks, gateCheck(c))
			}
		}
	}
	return st, nil
}

func printStatus(w io.Writer, st emailwf.Status) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "job %d\t%s\ttenant %d\n", st.JobID, st.Domain, st.TenantID)
	fmt.Fprintf(tw, "phase\t%s (%s)\tgate %s\tsynced %.1f%%\n", st.Phase, st.State, st.Gate, st.SyncPercent)
	if st.Phase == model.PhaseFailed {
		fmt.Fprintf(tw, "failed in\t%s\t%s\n", st.FailedPhase, st.LastError)
	}
	fmt.Fprintf(tw, "presyncs\t%d\tpredicted final sync %s\n", st.Presyncs, time.Duration(st.PredictedFinalSyncSeconds*float64(time.Second)).Round(time.Second))
	if st.NextPresyncAt != nil {
		fmt.Fprintf(tw, "next presync\t%s\n", st.NextPresyncAt.UTC().Format(time.RFC3339))
	}
	if st.CurrentPass != nil {
		fmt.Fprintf(tw, "running\t%s %s\tsince %s\t%s\n", st.CurrentPass.RunType, st.CurrentPass.Mode, st.CurrentPass.Started.UTC().Format(time.RFC3339), st.CurrentPass.WorkflowID)
	}
	if st.CutoverAt != nil {
		fmt.Fprintf(tw, "cutover hour\t%s\n", st.CutoverAt.UTC().Format(time.RFC3339))
	}
	if st.ApprovedBy != "" {
		fmt.Fprintf(tw, "approved\tby %s\tat %s\n", st.ApprovedBy, fmtTime(st.ApprovedAt))
	}
	if st.DNSCutoverAt != nil {
		fmt.Fprintf(tw, "DNS cut over\tat %s\tby %s\n", fmtTime(st.DNSCutoverAt), st.DNSCutoverBy)
	}
	if st.Verify != nil {
		fmt.Fprintf(tw, "verify\tmissing %d\tquarantined %d\tok %v\n", st.Verify.Missing, st.Verify.Quarantined, st.Verify.OK)
	}
	if len(st.Checks) > 0 {
		fmt.Fprintln(tw, "checks:")
		for _, c := range st.Checks {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", c.ID, c.Status, c.Message)
		}
	}
	fmt.Fprintf(tw, "mailboxes\t%d", st.Mailboxes)
	for _, s := range []model.MailboxStatus{model.MailboxOK, model.MailboxSyncing, model.MailboxPending, model.MailboxQuarantine, model.MailboxError} {
		if n := st.MailboxCounts[s]; n > 0 {
			fmt.Fprintf(tw, "\t%s %d", s, n)
		}
	}
	fmt.Fprintln(tw)
	for _, m := range st.MailboxDetails {
		fmt.Fprintf(tw, "  %s\t%s\t%d/%d\t%.1f%%\t%s\n", m.Email, m.Status, m.MessagesDest, m.MessagesSource, m.SyncPercent, m.LastError)
	}
	for _, r := range st.Refused {
		fmt.Fprintf(tw, "refused\t%s\n", r)
	}
	if hint := nextStep(st); hint != "" {
		fmt.Fprintf(tw, "next\t%s\n", hint)
	}
	tw.Flush()
}

func gateCheck(c store.GateCheck) gate.Check {
	return gate.Check{ID: c.CheckID, Status: c.Status, Message: c.Message}
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
