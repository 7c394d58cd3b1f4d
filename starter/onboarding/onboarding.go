// Package onboarding is bulk onboarding for Go services: a job's mailboxes from a CSV, their
// secrets into the vault, then the job started through starter/client. It writes the control
// database (PostgreSQL) itself, so it lives beside the client, which links only contracts.
package onboarding

import (
	"context"
	"fmt"
	"io"

	"github.com/cutover/cutover/activities/onboard"
	"github.com/cutover/cutover/starter/client"
	"github.com/cutover/cutover/workflows/email/emailapi"
	"github.com/cutover/cutover/workflows/email/jobspec"
)

// Options shape ImportEmailJob.
type Options struct {
	File  string // the CSV's name in messages (default mailboxes.csv)
	Check bool   // validate and report, write nothing, start nothing
	Start bool   // start the job once its mailboxes are registered
}

// ImportEmailJob is bulk onboarding: spec (job-level settings, decoded with jobspec.Decode)
// plus the mailboxes of a MigrationWiz or Microsoft 365 IMAP batch CSV. Every secret of the
// CSV goes into the vault in the transaction that registers the mailboxes with their
// credentials_refs; a bad row fails the whole import with an *onboard.CSVError naming its
// line. A job whose workflow runs is refused. With o.Start the job starts over the
// registered mailboxes (its input carries their count, never them).
func ImportEmailJob(ctx context.Context, c *client.Client, im *onboard.Importer, spec jobspec.Spec, csv io.Reader,
	o Options) (onboard.Report, *client.Job, error) {
	rows, err := onboard.ParseCSV(csv, orName(o.File))
	if err != nil {
		return onboard.Report{}, nil, err
	}
	if spec.JobID > 0 && !o.Check {
		running, err := c.EmailRunning(ctx, spec.JobID)
		if err != nil {
			return onboard.Report{}, nil, err
		}
		if running {
			return onboard.Report{}, nil, fmt.Errorf("job %d (workflow %s) runs: its mailboxes change only when it is not running: %w",
				spec.JobID, emailapi.WorkflowID(spec.JobID), client.ErrAlreadyRunning)
		}
	}
	rep, err := im.Import(ctx, spec, rows, onboard.Options{File: orName(o.File), Check: o.Check})
	if err != nil || !o.Start || o.Check {
		return rep, nil, err
	}
	input := rep.Spec
	input.Mailboxes, input.MailboxCount = nil, rep.Mailboxes
	job, err := c.StartEmailJobWith(ctx, input, c.EmailStartOptions(input, rep.Mailboxes))
	if err != nil {
		return rep, nil, err
	}
	return rep, &job, nil
}

func orName(f string) string {
	if f == "" {
		return "mailboxes.csv"
	}
	return f
}
