package cli

import (
	"context"
	"encoding/json"
	"errors"
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
	"github.com/cutover/cutover/workflows/email/emailapi"
	"github.com/cutover/cutover/workflows/email/gate"
	"github.com/cutover/cutover/workflows/email/jobspec"
)

func init() {
	register("email start", "validate a job spec (YAML or JSON), register its mailboxes and start the job", runEmailStart)
	register("email status", "show a job: phase, gate, checks, mailboxes (from the workflow, else PostgreSQL)", runEmailStatus)
	register("email approve", "approve the go/no-go gate as the ops lead (refused while checks fail); "+
		"--accept CHECK[:MAILBOX] --reason TEXT accepts a reviewed warning", emailCommand(emailapi.Approve, "note"))
	register("email cutover", "confirm DNS/MX now point at the destination (refused unless ready_for_dns)", emailCommand(emailapi.DNSCutoverConfirmed, "at"))
	register("email retry", "resume a failed job from the phase it failed in", emailCommand(emailapi.Retry, ""))
	register("email abort", "stop a job (left failed; start it again to resume)", emailCommand(emailapi.Abort, ""))
	register("email close", "close a verified job before its soak period ends", emailCommand(emailapi.Close, "note"))
	register("email presync", "run a presync now instead of waiting for the schedule", emailCommand(emailapi.PresyncNow, ""))
	register("email schedule", "set (--cutover-at) or clear (--clear) the migration hour", emailCommand(emailapi.SetCutoverTime, "cutover-at"))
}

// readSpec reads a spec file, or stdin for "-".
// loadJobSpec reads and decodes a job spec, checks the files it names, and gives it --job-id
// (refused when the spec names another job).
func loadJobSpec(e *Env, path string, jobID int64) (jobspec.Spec, error) {
	raw, err := readSpec(e, path)
	if err != nil {
		return jobspec.Spec{}, err
	}
	spec, err := jobspec.Decode(raw)
	if err != nil {
		return spec, usageError{err.Error()}
	}
	if err := spec.CheckFiles(); err != nil {
		return spec, usageError{err.Error()}
	}
	if jobID != 0 {
		if spec.JobID != 0 && spec.JobID != jobID {
			return spec, usagef("--job-id %d contradicts the spec's job_id %d", jobID, spec.JobID)
		}
		spec.JobID = jobID
	}
	return spec, nil
}

// validateUnlessImported validates a spec that lists its mailboxes; a spec without mailboxes
// for a job given by id names a job whose mailboxes were imported (email import): imported.
func validateUnlessImported(spec jobspec.Spec) (imported bool, err error) {
	if len(spec.Mailboxes) == 0 && spec.MailboxCount == 0 && spec.JobID != 0 {
		return true, nil
	}
	if err := spec.Validate(); err != nil {
		return false, usageError{err.Error()}
	}
	return false, nil
}

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
	fs, tf, out := commandFlags(e, "email start")
	wait := fs.Bool("wait", false, "follow the job, printing each phase and gate change, until it ends")
	poll := fs.Duration("poll", 2*time.Second, "with --wait: how often to ask the job for its status")
	jobID := fs.Int64("job-id", 0, "job id to use when the spec has none (default: the next free id)")
	specFlag := fs.String("spec", "", "the job spec, YAML or JSON (or give it as the argument; - reads stdin)")
	specPath, err := specArgument(fs, args, specFlag)
	if err != nil {
		return err
	}
	spec, err := loadJobSpec(e, specPath, *jobID)
	if err != nil {
		return err
	}
	imported, err := validateUnlessImported(spec)
	if err != nil {
		return err
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
	if imported {
		// A spec without mailboxes starts a job whose mailboxes were imported (email import).
		if spec, err = withRegistered(ctx, db, spec); err != nil {
			return err
		}
	}
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
	return startRegistered(ctx, e, c, spec, n, out, *wait, *poll)
}

// startRegistered starts a job whose n mailboxes are registered in PostgreSQL, then follows
// it with wait.
func startRegistered(ctx context.Context, e *Env, c *client.Client, spec jobspec.Spec, n int, out *output,
	wait bool, poll time.Duration) error {
	input := spec
	input.Mailboxes, input.MailboxCount = nil, n
	job, err := c.StartEmailJobWith(ctx, input, c.EmailStartOptions(spec, n))
	if errors.Is(err, client.ErrAlreadyRunning) {
		return fmt.Errorf("job %d is already running (workflow %s); see 'cutover email status %d'", spec.JobID, emailapi.WorkflowID(spec.JobID), spec.JobID)
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
		if w := strictWarning(spec); w != "" {
			fmt.Fprintln(e.Stdout, w)
		}
	}
	if !wait {
		return nil
	}
	return followJob(ctx, e, c, spec.JobID, poll, out)
}

// strictWarning names the destructive presync mode when the spec chose it ("" otherwise).
func strictWarning(spec jobspec.Spec) string {
	var who []string
	if spec.Schedule.PresyncMode == model.ModeStrictMirror {
		who = append(who, "every mailbox")
	}
	for _, m := range spec.Mailboxes {
		if m.PresyncMode == model.ModeStrictMirror {
			who = append(who, m.Email)
		}
	}
	if len(who) == 0 {
		return ""
	}
	return "DESTRUCTIVE: presync_mode strict_mirror (" + strings.Join(who, ", ") + "): presyncs delete on the " +
		"destination every message of the synced folders the source lacks, the user's own mail included"
}

// refuseRunning fails clearly when the job's workflow already runs (before anything is written).
func refuseRunning(ctx context.Context, c *client.Client, jobID int64) error {
	running, err := c.EmailRunning(ctx, jobID)
	if err != nil {
		return err
	}
	if running {
		return fmt.Errorf("job %d is already running (workflow %s); see 'cutover email status %d'", jobID, emailapi.WorkflowID(jobID), jobID)
	}
	return nil
}

// followJob prints phase and gate changes until the workflow ends (one JSON status per change
// with --output json).
func followJob(ctx context.Context, e *Env, c *client.Client, jobID int64, poll time.Duration, out *output) error {
	type result struct {
		st  emailapi.Status
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
				return fmt.Errorf("job workflow %s ended: %s", emailapi.WorkflowID(jobID), errMessage(r.err))
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

// nextStep says what a waiting job needs from a human (the job's own NextAction).
func nextStep(st emailapi.Status) string { return emailapi.NextAction(st) }

func parseJobID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, usagef("job id %q: want a positive integer", s)
	}
	return id, nil
}

// emailCommand sends one of the job's commands as a validated update: a refusal comes back
// with its reason. extra names the command's own flag ("note", "at", "cutover-at"); every
// command takes --reason, recorded in the job's notes (migration_jobs.notes).
func emailCommand(name, extra string) func(ctx context.Context, e *Env, args []string) error {
	return func(ctx context.Context, e *Env, args []string) error {
		fs, tf, out := commandFlags(e, "email "+name)
		by := fs.String("by", e.Getenv("USER"), "who is asking (user id; default $USER)")
		var text, at, reason string
		var accept stringList
		clearAt := false
		if name == emailapi.Approve {
			fs.Var(&accept, "accept", "a warning reviewed and accepted, CHECK or CHECK:MAILBOX (repeatable; never a failing check)")
			fs.StringVar(&reason, "reason", "", "why: recorded in the job's notes, and the reason of the accepted warnings "+
				"(required with --accept)")
		} else {
			fs.StringVar(&reason, "reason", "", "why: recorded in the job's notes")
		}
		switch extra {
		case "note":
			fs.StringVar(&text, extra, "", "a line recorded in the job's notes (with --reason: both)")
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
		if len(accept) > 0 && strings.TrimSpace(reason) == "" {
			return usagef("--accept needs --reason: why the warning is acceptable")
		}
		req := emailapi.Request{By: *by, Note: joinNote(text, reason), Accept: accept}
		if name == emailapi.Approve {
			req.Reason = reason
		}
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
		return sendCommand(ctx, e, tf, out, id, name, req)
	}
}

// joinNote is the line a command leaves in the job's notes: its --note and its --reason.
func joinNote(note, reason string) string {
	note, reason = strings.TrimSpace(note), strings.TrimSpace(reason)
	switch {
	case note == "":
		return reason
	case reason == "" || reason == note:
		return note
	}
	return note + "; " + reason
}

// errMessage is an error's message without the SDK's decorations.
func errMessage(err error) string { return client.ErrMessage(err) }

func runEmailStatus(ctx context.Context, e *Env, args []string) error {
	fs, tf, out := commandFlags(e, "email status")
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

func statusFromDB(ctx context.Context, e *Env, id int64) (emailapi.Status, error) {
	db, err := store.Open(ctx, databaseURL(e))
	if err != nil {
		return emailapi.Status{}, err
	}
	defer db.Close()
	p, err := db.GetJobProgress(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return emailapi.Status{}, notFoundError{fmt.Errorf("job %d not found: no workflow %s and no migration_jobs row; list jobs with 'cutover email list'",
			id, emailapi.WorkflowID(id))}
	}
	if err != nil {
		return emailapi.Status{}, err
	}
	st := emailapi.Status{JobID: id, Phase: p.Phase, Gate: p.Gate, SyncPercent: float64(p.SyncPercent), Domain: p.Domain,
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
		if len(st.MailboxDetails) < emailapi.DefaultKeepResults {
			st.MailboxDetails = append(st.MailboxDetails, emailapi.MailboxProgress{Email: m.Email, Status: m.Status,
				MessagesSource: m.MessagesSource, MessagesDest: m.MessagesDest, SyncPercent: float64(m.SyncPercent), LastError: m.LastError})
		}
	}
	checks, err := db.LatestGateChecks(ctx, id)
	if err != nil {
		return st, err
	}
	for _, id := range model.AllCheckIDs() { // the gate's order
		for _, c := range checks {
			if c.CheckID == id {
				st.Checks = append(st.Checks, gateCheck(c))
			}
		}
	}
	return st, nil
}

func printStatus(w io.Writer, st emailapi.Status) {
	tw := newTable(w)
	fmt.Fprintf(tw, "job %d\t%s\ttenant %d\n", st.JobID, st.Domain, st.TenantID)
	fmt.Fprintf(tw, "phase\t%s (%s)\tgate %s\tsynced %.1f%%\n", st.Phase, st.State, st.Gate, st.SyncPercent)
	if st.Phase == model.PhaseFailed {
		fmt.Fprintf(tw, "failed in\t%s\t%s\n", st.FailedPhase, st.LastError)
	}
	for _, a := range st.Retrying {
		what := "retrying"
		if a.Permanent {
			what = "failed"
		}
		fmt.Fprintf(tw, "%s\t%s (attempt %d)\t%s: %s\n", what, a.Email, a.Attempt, a.Type, a.Message)
	}
	for _, sk := range st.Skipped {
		fmt.Fprintf(tw, "skipped\t%s\tby %s at %s\t%s\n", sk.Email, sk.By, sk.At.UTC().Format(time.RFC3339), sk.Reason)
	}
	fmt.Fprintf(tw, "presyncs\t%d\tpredicted final sync %s\n", st.Presyncs, time.Duration(st.PredictedFinalSyncSeconds*float64(time.Second)).Round(time.Second))
	if st.NextPresyncAt != nil {
		fmt.Fprintf(tw, "next presync\t%s\n", st.NextPresyncAt.UTC().Format(time.RFC3339))
	}
	if st.CurrentPass != nil {
		fmt.Fprintf(tw, "running\t%s %s\tsince %s\t%s\n", st.CurrentPass.RunType, modeName(st.CurrentPass.Mode), st.CurrentPass.Started.UTC().Format(time.RFC3339), st.CurrentPass.WorkflowID)
	}
	if p := st.LastPass; p != nil && p.Finished != nil {
		fmt.Fprintf(tw, "last pass\t%s %s\t%d mailboxes, %d copied, %d deleted, %d failed\tin %.1fs\n", p.RunType,
			modeName(p.Mode), p.Mailboxes, p.Transferred, p.Deleted, p.Failed, p.Seconds)
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
	if d := st.DNS; d != nil {
		for _, r := range d.Records {
			fmt.Fprintf(tw, "dns\t%s %s\tTTL %ds\t%s\n", r.Type, r.Name, r.TTL, strings.Join(r.Values, ", "))
		}
		if len(d.MXSeen) > 0 && st.DNSCutoverAt != nil {
			fmt.Fprintf(tw, "MX now\t%s\tswitched %v\n", strings.Join(d.MXSeen, ", "), d.MXSwitched)
		}
		if d.Error != "" {
			fmt.Fprintf(tw, "dns\tlookup failed\t%s\n", d.Error)
		}
	}
	if st.Verify != nil {
		fmt.Fprintf(tw, "verify\tmissing %d\tquarantined %d\tok %v\n", st.Verify.Missing, st.Verify.Quarantined, st.Verify.OK)
		if st.Verify.Rewritten > 0 {
			fmt.Fprintf(tw, "\trewritten by the server %d\t(present; see the samples)\n", st.Verify.Rewritten)
		}
	}
	fmt.Fprintf(tw, "mailboxes\t%d", st.Mailboxes)
	for _, s := range []model.MailboxStatus{model.MailboxOK, model.MailboxSyncing, model.MailboxPending, model.MailboxQuarantine,
		model.MailboxError, model.MailboxSkipped} {
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
			status := string(c.Status)
			if c.Accepted {
				status += " (accepted)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", c.ID, status, c.Message)
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
	printNotifications(w, st.Notifications)
	if len(st.Refused) > 0 || nextStep(st) != "" || st.Waiting != "" {
		fmt.Fprintln(w)
	}
	if st.Waiting != "" {
		fmt.Fprintf(w, "now: %s\n", st.Waiting)
	}
	for _, r := range st.Refused {
		fmt.Fprintf(w, "refused: %s\n", r)
	}
	if hint := nextStep(st); hint != "" {
		fmt.Fprintf(w, "next: %s\n", hint)
	}
}

// modeName spells a pass mode, naming the destructive one.
func modeName(m string) string {
	if m == string(model.ModeStrictMirror) {
		return m + " (destructive)"
	}
	return m
}

func gateCheck(c store.GateCheck) gate.Check {
	g := gate.Check{ID: c.CheckID, Status: c.Status, Message: c.Message}
	if c.AcceptedBy != nil && c.AcceptedAt != nil && c.AcceptReason != nil {
		g.Accepted = true
		g.Message += fmt.Sprintf(" (accepted by %s at %s: %s)", *c.AcceptedBy, c.AcceptedAt.UTC().Format(time.RFC3339), *c.AcceptReason)
	}
	return g
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
