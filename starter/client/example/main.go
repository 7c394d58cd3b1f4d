// Command example is an upstream service using the cutover Go client (starter/client): it
// starts an email job from a typed spec, waits for the initial sync, asks for a presync
// (signal), approves the go/no-go gate (validated update), finds the job by phase in the
// visibility store and prints the ticket payload of its status query. DNS stays with the ops
// team: the job waits for them at the gate.
//
//	TEMPORAL_ADDRESS=127.0.0.1:7233 go run ./starter/client/example -spec job.yaml -by ops-lead
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/cutover/cutover/starter/client"
	"github.com/cutover/cutover/workflows/email/emailapi"
	"github.com/cutover/cutover/workflows/email/jobspec"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "example:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, out io.Writer) error {
	fs := flag.NewFlagSet("example", flag.ContinueOnError)
	specPath := fs.String("spec", "", "email job spec (YAML or JSON, credentials_refs only)")
	by := fs.String("by", "ops-lead", "who approves")
	poll := fs.Duration("poll", time.Second, "how often to ask the job for its status")
	if err := fs.Parse(args); err != nil {
		return err
	}
	raw, err := os.ReadFile(*specPath)
	if err != nil {
		return err
	}
	spec, err := jobspec.Parse(raw) // the typed spec; refuses secrets and names every problem
	if err != nil {
		return err
	}

	c, err := client.Dial(ctx, client.Options{Getenv: getenv})
	if err != nil {
		return err
	}
	defer c.Close()

	job, err := c.StartEmailJob(ctx, spec)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "started job %d as %s (%d mailboxes)\n", job.JobID, job.WorkflowID, job.Mailboxes)

	st, err := c.WaitEmail(ctx, job.JobID, *poll, func(st emailapi.Status) bool { return st.Phase == "delta_sync" })
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "initial sync done: %.1f%% synced, gate %s\n", st.SyncPercent, st.Gate)

	if err := c.SignalEmail(ctx, job.JobID, emailapi.PresyncNow, emailapi.Request{By: *by}); err != nil {
		return err
	}
	if st, err = c.WaitEmail(ctx, job.JobID, *poll, func(st emailapi.Status) bool { return st.Presyncs > 0 && st.CurrentPass == nil }); err != nil {
		return err
	}
	fmt.Fprintf(out, "presync done: %d presync(s), predicted final sync %.1fs\n", st.Presyncs, st.PredictedFinalSyncSeconds)

	// DNS before approval is refused by the workflow itself, with the reason.
	var refused *client.RefusedError
	if _, err := c.ConfirmDNSCutover(ctx, job.JobID, *by, nil); errors.As(err, &refused) {
		fmt.Fprintf(out, "refused as expected: %s\n", refused.Reason)
	} else if err != nil {
		return err
	}
	ack, err := c.Approve(ctx, job.JobID, *by, "approved by the example service")
	if errors.As(err, &refused) {
		return fmt.Errorf("the gate does not allow approval yet: %s", refused.Reason)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "approved: %s (phase %s)\n", ack.Message, ack.Phase)

	// The visibility store lags a moment behind the workflow.
	for i := 0; ; i++ {
		jobs, err := c.List(ctx, client.ListOptions{Kind: client.KindEmail, Gate: string(ack.Gate), Open: true})
		if err != nil {
			return err
		}
		found := false
		for _, j := range jobs {
			found = found || j.EmailJobID() == job.JobID
		}
		if found {
			fmt.Fprintf(out, "listed among %d running job(s) with gate %s\n", len(jobs), ack.Gate)
			break
		}
		if i == 50 {
			return fmt.Errorf("job %d not listed with gate %s", job.JobID, ack.Gate)
		}
		time.Sleep(200 * time.Millisecond)
	}

	if st, err = c.EmailStatus(ctx, job.JobID); err != nil {
		return err
	}
	ticket, _ := json.Marshal(map[string]any{"migration_job_id": st.JobID, "migration_phase": st.Phase,
		"migration_gate": st.Gate, "migration_sync_percent": st.SyncPercent})
	fmt.Fprintf(out, "ticket payload: %s\n", ticket)
	return nil
}
