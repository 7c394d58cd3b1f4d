package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/cutover/cutover/activities/emailjob"
	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/starter/client"
	"github.com/cutover/cutover/workflows/email/emailapi"
	"github.com/cutover/cutover/workflows/email/jobspec"
)

func init() {
	register("email dry-run", "report per mailbox what a pass would copy, delete and refuse, changing nothing "+
		"(imapsync --dry); --mode mirror or strict_mirror counts their deletions", runEmailDryRun)
}

func runEmailDryRun(ctx context.Context, e *Env, args []string) error {
	fs, tf, out := commandFlags(e, "email dry-run")
	jobID := fs.Int64("job-id", 0, "job id to use when the spec has none (default: the next free id)")
	mode := fs.String("mode", "copy", "the pass to describe: copy, mirror or strict_mirror")
	specFlag := fs.String("spec", "", "the job spec, YAML or JSON (or give it as the argument; - reads stdin)")
	specPath, err := specArgument(fs, args, specFlag)
	if err != nil {
		return err
	}
	m := model.SyncMode(*mode)
	if m != model.ModeCopy && m != model.ModeMirror && m != model.ModeStrictMirror {
		return usagef("--mode %q: want copy, mirror or strict_mirror", *mode)
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
	if spec, err = registerForRun(ctx, e, spec, imported); err != nil {
		return err
	}
	res, err := c.DryRunEmail(ctx, spec, m)
	if errors.Is(err, client.ErrAlreadyRunning) {
		return err
	}
	if err != nil {
		return errors.New(errMessage(err))
	}
	if out.json() {
		return writeJSON(e.Stdout, res)
	}
	printDryRun(e.Stdout, spec, m, res)
	return nil
}

// registerForRun registers a spec's job and mailboxes in PostgreSQL (the job row first when
// the spec has no id) and returns the spec as a workflow input: the mailboxes' count, not them.
func registerForRun(ctx context.Context, e *Env, spec jobspec.Spec, imported bool) (jobspec.Spec, error) {
	db, err := store.OpenAndMigrate(ctx, databaseURL(e))
	if err != nil {
		return spec, err
	}
	defer db.Close()
	if imported {
		if spec, err = withRegistered(ctx, db, spec); err != nil {
			return spec, err
		}
	}
	if spec.JobID == 0 {
		j, err := db.CreateJob(ctx, store.Job{TenantID: spec.TenantID, Domain: spec.Domain})
		if err != nil {
			return spec, err
		}
		spec.JobID = j.ID
	}
	n, err := emailjob.Register(ctx, db, spec)
	if err != nil {
		return spec, fmt.Errorf("register job %d: %s", spec.JobID, errMessage(err))
	}
	spec.Mailboxes, spec.MailboxCount = nil, n
	return spec, nil
}

func printDryRun(w io.Writer, spec jobspec.Spec, mode model.SyncMode, res emailapi.WaveResult) {
	fmt.Fprintf(w, "dry run of a %s pass, email job %d (%s): %d mailboxes, nothing changed on either server\n",
		mode, spec.JobID, spec.Domain, res.Mailboxes)
	t := newTable(w)
	fmt.Fprintln(t, "EMAIL\tSOURCE\tON DESTINATION\tWOULD COPY\tWOULD DELETE\tWOULD REFUSE\tERROR")
	for _, r := range res.Results {
		fmt.Fprintf(t, "%s\t%d\t%d\t%d\t%d\t%d\t%s\n", r.Email, r.Facts.SourceMessages, r.Facts.DestMessages, r.Transferred,
			r.Deleted, r.Facts.Quarantined, dash(r.Error))
	}
	fmt.Fprintf(t, "TOTAL\t%d\t%d\t%d\t%d\t%d\t%d failed\n", res.SourceMessages, res.DestMessages, res.Transferred,
		res.Deleted, res.Quarantined, res.Failed)
	t.Flush()
	if int64(len(res.Results)) < res.Mailboxes {
		fmt.Fprintf(w, "(%d mailboxes listed of %d; -o json has the same)\n", len(res.Results), res.Mailboxes)
	}
	if res.Quarantined > 0 {
		fmt.Fprintln(w, "refused: larger than max_message_size or the destination's APPENDLIMIT, or unreadable on the source")
	}
}
