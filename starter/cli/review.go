package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/starter/client"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

func init() {
	register("email skip", "take a mailbox out of a job (no pass, out of the gate): JOB MAILBOX --reason TEXT",
		mailboxCommand(emailapi.Skip))
	register("email unskip", "bring a skipped mailbox back into its job: JOB MAILBOX", mailboxCommand(emailapi.Unskip))
	register("email set-credentials", "give a mailbox a new credentials_ref: JOB MAILBOX --source REF | --dest REF",
		mailboxCommand(emailapi.SetCredentials))
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// mailboxCommand sends skip, unskip or set_credentials for one mailbox as a validated update.
func mailboxCommand(name string) func(ctx context.Context, e *Env, args []string) error {
	return func(ctx context.Context, e *Env, args []string) error {
		fs, tf, out := commandFlags(e, "email "+strings.ReplaceAll(name, "_", "-"))
		by := fs.String("by", e.Getenv("USER"), "who is asking (user id; default $USER)")
		var reason, src, dst string
		if name == emailapi.Skip {
			fs.StringVar(&reason, "reason", "", "why the mailbox leaves the job (required; recorded in the job's notes)")
		} else {
			fs.StringVar(&reason, "reason", "", "why: recorded in the job's notes")
		}
		switch name {
		case emailapi.SetCredentials:
			fs.StringVar(&src, "source", "", "the new source credentials_ref (cutover vault put prints one)")
			fs.StringVar(&dst, "dest", "", "the new destination credentials_ref")
		}
		pos, err := parseAnyOrder(fs, args, 2)
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
		req := emailapi.Request{By: *by, Mailbox: pos[1], Reason: reason}
		if name != emailapi.Skip {
			req.Reason, req.Note = "", strings.TrimSpace(reason) // a skip's reason is its own field
		}
		switch {
		case name == emailapi.Skip && strings.TrimSpace(reason) == "":
			return usagef("--reason is required: why the mailbox leaves the job")
		case name == emailapi.SetCredentials && (src == "") == (dst == ""):
			return usagef("give --source REF or --dest REF")
		case name == emailapi.SetCredentials && !model.IsCredentialsRef(src+dst):
			return usagef("--source/--dest %s", model.NotACredentialsRef) // never the value
		case src != "":
			req.Side, req.CredentialsRef = "source", src
		case dst != "":
			req.Side, req.CredentialsRef = "dest", dst
		}
		return sendCommand(ctx, e, tf, out, id, name, req)
	}
}

// sendCommand sends a job command as a validated update and prints the answer.
func sendCommand(ctx context.Context, e *Env, tf *temporalFlags, out *output, id int64, name string, req emailapi.Request) error {
	c, err := tf.client(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	ack, err := c.EmailCommand(ctx, id, name, req)
	if errors.Is(err, client.ErrNotFound) {
		return notFoundError{fmt.Errorf("job %d has no running workflow (%s); 'cutover email list' lists jobs",
			id, emailapi.WorkflowID(id))}
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
			emailapi.Ack
		}{id, name, ack})
	}
	fmt.Fprintf(e.Stdout, "job %d: %s\nphase %s, gate %s\n", id, ack.Message, ack.Phase, ack.Gate)
	return nil
}
