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
	"time"

	"github.com/cutover/cutover/activities/emailjob"
	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/starter/client"
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
	out := bindOutput(fs)
	wait := fs.Bool("wait", false, "follow the job, printing each phase and gate change, until it ends")
	poll := fs.Duration("poll", 2*time.Second, "with --wait: how often to ask the job for its status")
	jobID := fs.Int64("job-id", 0, "job id to use when the spec has none (default: the next free id)")
	specFlag := fs.String("spec", "", "the job spec, YAML or JSON (or give it as the argument; - reads stdin)")
	specPath, err := specArgument(fs, args, specFlag)
	if err != nil {
		return err
	}
	raw, err := readSpec(e, specPath)
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

	c, err := tf.client(ctx)
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
	job, err := c.StartEmailJobWith(ctx, input, c.EmailStartOptions(spec, n))
	if errors.Is(err, client.ErrAlreadyRunning) {
		return fmt.Errorf("job %d is already running (workflow %s); see 'cutover email status %d'", spec.JobID, emailwf.WorkflowID(spec.JobID), spec.JobID)
	}
	if err != nil {
		return err
	}
	if out.json() {
		if err := writeJSON(e.Stdout, job); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(e.Stdout, "started email job %d: %s, %d mailboxes (workflow %s, run %s)\n",
			spec.JobID, spec.Domain, n, job.WorkflowID, job.RunID)
	}
	if !*wait {
		return nil
	}
	return followJob(ctx, e, c, spec.JobID, *poll, out)
}

// refuseRunning fails clearly when the job's workflow already runs (before anything is written).
func refuseRunning(ctx context.Context, c *client.Client, jobID int64) error {
	running, err := c.EmailRunning(ctx, jobID)
	if err != nil {
		return err
	}
	if running {
		return fmt.Errorf("job %d is already running (workflow %s); see 'cutover email status %d'", jobID, emailwf.WorkflowID(jobID), jobID)
	}
	return nil
}

// followJob prints phase and gate changes until the workflow ends (one JSON status per change
// with --output json).
func followJob(ctx context.Context, e *Env, c *client.Client, jobID int64, poll time.Duration, out *output) error {
	type result struct {
		st  emailwf.Status
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := c.EmailResult(ctx, jobID)
		done <- result{st, err}
	}()
	last := ""
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		select {
		case r := <-done:
			st, qerr := c.EmailStatus(ctx, jobID)
			if qerr != nil {
				st = r.st
			}
			if out.json() {
				_ = writeJSON(e.Stdout, st)
			} else {
				printStatus(e.Stdout, st)
			}
			if r.err != nil {
				return fmt.Errorf("job workflow %s ended: %s", emailwf.WorkflowID(jobID), errMessage(r.err))
			}
			return nil
		case <-tick.C:
			st, err := c.EmailStatus(ctx, jobID)
			if err != nil {
				continue // not answering yet (no worker?): keep waiting
			}
			key := fmt.Sprintf("%s|%s|%.1f|%d", st.Phase, st.Gate, st.SyncPercent, st.Presyncs)
			if key == last {
				continue
			}
			last = key
			if out.json() {
				_ = json.NewEncoder(e.Stdout).Encode(st)
				continue
			}
			line := fmt.Sprintf("%s  phase %s  gate %s  %.1f%% synced  %d presync(s)", time.Now().UTC().Format(time.TimeOnly),
				st.Phase, st.Gate, st.SyncPercent, st.Presyncs)
			if hint := nextStep(st); hint != "" {
				line += "  — " + hint
			}
			fmt.Fprintln(e.Stdout, line)
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
		out := bindOutput(fs)
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
		c, err := tf.client(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		ack, err := c.EmailCommand(ctx, id, name, req)
		if errors.Is(err, client.ErrNotFound) {
			return notFoundError{fmt.Errorf("job %d has no running workflow (%s); 'cutover email list' lists jobs", id, emailwf.WorkflowID(id))}
		}
		var refused *client.RefusedError
		if errors.As(err, &refused) {
			return fmt.Errorf("job %d: %s", id, refused.Reason)
		}
		if err != nil {
			return fmt.Errorf("job %d: %s", id, errMessage(err))
		}
		if out.json() {
			return writeJSON(e.Stdout, struct {
				JobID   int64  `json:"migration_job_id"`
				Command string `json:"command"`
				emailwf.Ack
			}{id, name, ack})
		}
		fmt.Fprintf(e.Stdout, "job %d: %s\nphase %s, gate %s\n", id, ack.Message, ack.Phase, ack.Gate)
		return nil
	}
}

// errMessage is an error's message without the SDK's decorations.
func errMessage(err error) string { return client.ErrMessage(err) }

func runEmailStatus(ctx context.Context, e *Env, args []string) error {
	fs := newFlags(e, "email status")
	var tf temporalFlags
	tf.bind(e, fs)
	out := bindOutput(fs)
	pos, err := parseAnyOrder(fs, args, 1)
	if err != nil {
		return err
	}
	id, err := parseJobID(pos[0])
	if err != nil {
		return err
	}
	c, err := tf.client(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	st, err := c.EmailStatus(ctx, id)
	if errors.Is(err, client.ErrNotFound) {
		// No workflow (never started here, or its history is gone): PostgreSQL knows the rest.
		st, err = statusFromDB(ctx, e, id)
	}
	if err != nil {
		return err
	}
	if out.json() {
		return writeJSON(e.Stdout, st)
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
		return emailwf.Status{}, notFoundError{fmt.Errorf("job %d not found: no workflow %s and no migration_jobs row; list jobs with 'cutover email list'",
			id, emailwf.WorkflowID(id))}
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
	tw := newTable(w)
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
	if p := st.LastPass; p != nil && p.Finished != nil {
		fmt.Fprintf(tw, "last pass\t%s %s\t%d mailboxes, %d copied, %d failed\tin %.1fs\n", p.RunType, p.Mode, p.Mailboxes, p.Transferred, p.Failed, p.Seconds)
	}
	if st.CutoverAt != nil {
		fmt.Fprintf(tw, "cutover hour\t%s\n", st.CutoverAt.UTC().Format(time.RFC3339))
	}
	if st.ApprovedBy != "" {
		fmt.Fprintf(tw, "approved\tby %s\tat %s\n", st.ApprovedBy, fmtTime(st.ApprovedAt))
	}
	if st.DNSCutoverAt != nil {
		fmt.Fprintf(tw, "DNS cut over\tat %s\tby %s\n", fmtTime(st.DNSCutoverAt), dash(st.DNSCutoverBy))
	}
	if st.Verify != nil {
		fmt.Fprintf(tw, "verify\tmissing %d\tquarantined %d\tok %v\n", st.Verify.Missing, st.Verify.Quarantined, st.Verify.OK)
	}
	fmt.Fprintf(tw, "mailboxes\t%d", st.Mailboxes)
	for _, s := range []model.MailboxStatus{model.MailboxOK, model.MailboxSyncing, model.MailboxPending, model.MailboxQuarantine, model.MailboxError} {
		if n := st.MailboxCounts[s]; n > 0 {
			fmt.Fprintf(tw, "\t%s %d", s, n)
		}
	}
	fmt.Fprintln(tw)
	tw.Flush()
	if len(st.Checks) > 0 {
		fmt.Fprintln(w)
		tw = newTable(w)
		fmt.Fprintln(tw, "CHECK\tSTATUS\tDETAIL")
		for _, c := range st.Checks {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", c.ID, c.Status, c.Message)
		}
		tw.Flush()
	}
	if len(st.MailboxDetails) > 0 {
		fmt.Fprintln(w)
		tw = newTable(w)
		fmt.Fprintln(tw, "MAILBOX\tSTATUS\tSOURCE\tDEST\tSYNCED\tQUARANTINED\tLAST RUN\tLAST ERROR")
		for _, m := range st.MailboxDetails {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.1f%%\t%d\t%s\t%s\n", m.Email, m.Status, m.MessagesSource, m.MessagesDest, m.SyncPercent,
				m.Quarantined, dash(string(m.LastRun)), dash(m.LastError))
		}
		tw.Flush()
	}
	if len(st.Refused) > 0 || nextStep(st) != "" {
		fmt.Fprintln(w)
	}
	for _, r := range st.Refused {
		fmt.Fprintf(w, "refused: %s\n", r)
	}
	if hint := nextStep(st); hint != "" {
		fmt.Fprintf(w, "next: %s\n", hint)
	}
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
