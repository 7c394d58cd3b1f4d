package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/cutover/cutover/activities/onboard"
	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/activities/vault"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/starter/client"
	"github.com/cutover/cutover/starter/onboarding"
	"github.com/cutover/cutover/workflows/email/jobspec"
)

func init() {
	register("email import", "register a job's mailboxes from a MigrationWiz / Microsoft 365 batch CSV, "+
		"its passwords and tokens into the vault in one go (--check: validate only; --start: then start the job)", runEmailImport)
}

func runEmailImport(ctx context.Context, e *Env, args []string) error {
	fs, tf, out := commandFlags(e, "email import")
	csvPath := fs.String("csv", "", "the mailboxes CSV (- reads stdin); see the README for its columns")
	jobID := fs.Int64("job-id", 0, "job id to use when the spec has none (default: the next free id)")
	check := fs.Bool("check", false, "validate the spec and every CSV line and say what would be created; write nothing")
	start := fs.Bool("start", false, "start the job once its mailboxes are registered")
	wait := fs.Bool("wait", false, "with --start: follow the job until it ends")
	poll := fs.Duration("poll", 2*time.Second, "with --wait: how often to ask the job for its status")
	specFlag := fs.String("spec", "", "the job spec, YAML or JSON (or give it as the argument)")
	specPath, err := specArgument(fs, args, specFlag)
	if err != nil {
		return err
	}
	if *csvPath == "" {
		return usagef("--csv FILE is required")
	}
	if *csvPath == "-" && specPath == "-" {
		return usagef("the spec and the CSV cannot both be read from stdin")
	}
	spec, err := loadJobSpec(e, specPath, *jobID)
	if err != nil {
		return err
	}
	csvIn, name, closeCSV, err := openCSV(e, *csvPath)
	if err != nil {
		return err
	}
	defer closeCSV()

	im, done, err := openImporter(ctx, e, *check)
	if err != nil {
		return err
	}
	defer done()
	var c *client.Client
	if !*check {
		if c, err = tf.client(ctx); err != nil {
			return err
		}
		defer c.Close()
	}
	rep, job, err := importWith(ctx, c, im, spec, csvIn, onboarding.Options{File: name, Check: *check, Start: *start})
	if err != nil {
		return importError(err)
	}
	if out.json() {
		if err := writeJSON(e.Stdout, struct {
			onboard.Report
			Job *client.Job `json:"started,omitempty"`
		}{rep, job}); err != nil {
			return err
		}
	} else {
		printImport(e.Stdout, rep, name, specPath)
	}
	if job == nil {
		return nil
	}
	if !out.json() {
		fmt.Fprintf(e.Stdout, "started email job %d: %s, %d mailboxes (workflow %s, run %s)\n",
			job.JobID, rep.Domain, job.Mailboxes, job.WorkflowID, job.RunID)
	}
	if !*wait {
		return nil
	}
	return followJob(ctx, e, c, job.JobID, *poll, out)
}

// importWith imports through the client, or, checking only, without Temporal.
func importWith(ctx context.Context, c *client.Client, im *onboard.Importer, spec jobspec.Spec, csv io.Reader,
	o onboarding.Options) (onboard.Report, *client.Job, error) {
	if c != nil {
		return onboarding.ImportEmailJob(ctx, c, im, spec, csv, o)
	}
	rows, err := onboard.ParseCSV(csv, o.File)
	if err != nil {
		return onboard.Report{}, nil, err
	}
	rep, err := im.Import(ctx, spec, rows, onboard.Options{File: o.File, Check: true})
	return rep, nil, err
}

func importError(err error) error {
	var ce *onboard.CSVError
	if errors.As(err, &ce) || jobspec.IsProblems(err) {
		return usageError{err.Error()}
	}
	if errors.Is(err, client.ErrAlreadyRunning) {
		return err
	}
	return errors.New(errMessage(err))
}

func openCSV(e *Env, path string) (io.Reader, string, func(), error) {
	if path == "-" {
		return e.Stdin, "stdin", func() {}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, "", nil, usagef("mailboxes CSV: %v", err)
	}
	return f, path, func() { f.Close() }, nil
}

// openImporter connects to PostgreSQL and the vault; checking needs no vault key.
func openImporter(ctx context.Context, e *Env, check bool) (*onboard.Importer, func(), error) {
	var keysErr error
	keys, keysErr := vault.ParseKeys(e.Getenv(vault.EnvKeys))
	if keysErr != nil && !check {
		return nil, nil, usageError{keysErr.Error()}
	}
	db, err := store.OpenAndMigrate(ctx, databaseURL(e))
	if err != nil {
		return nil, nil, err
	}
	im := &onboard.Importer{DB: db}
	if keysErr == nil {
		if im.Vault, err = vault.New(db.Store, keys); err != nil {
			db.Close()
			return nil, nil, err
		}
	}
	return im, db.Close, nil
}

func printImport(w io.Writer, rep onboard.Report, csvName, specPath string) {
	verb := "imported"
	if rep.CheckOnly {
		verb = "checked (nothing written)"
	}
	job := "a new job"
	if rep.JobID > 0 {
		job = fmt.Sprintf("email job %d", rep.JobID)
	}
	fmt.Fprintf(w, "%s %s into %s (%s): %d created, %d updated\n", verb, csvName, job, rep.Domain, rep.Created, rep.Updated)
	if !rep.CheckOnly {
		fmt.Fprintf(w, "vault: %d secret(s) stored, %d replaced; %s still holds them: delete it or keep it safe\n",
			rep.SecretsStored, rep.SecretsReplaced, csvName)
	}
	t := newTable(w)
	fmt.Fprintln(t, "LINE\tEMAIL\tSOURCE TYPE\tSOURCE LOGIN\tDEST LOGIN\tMAILBOX\tSOURCE REF\tDEST REF\tSTATUS")
	for _, r := range rep.Rows {
		id := "-"
		if r.MailboxID > 0 {
			id = fmt.Sprint(r.MailboxID)
		}
		fmt.Fprintf(t, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Line, r.Email, r.SourceType, r.SourceUser, r.DestUser, id,
			dash(r.CredentialsRef), dash(r.DestCredentialsRef), r.Status)
	}
	t.Flush()
	if !rep.CheckOnly {
		fmt.Fprintf(w, "job %d has %d mailbox(es)\nnext: cutover email start %s --job-id %d\n", rep.JobID, rep.Mailboxes,
			specPath, rep.JobID)
	}
}

// withRegistered completes a spec without mailboxes with the count of the mailboxes its job
// has registered (imported), refusing a job that has none.
func withRegistered(ctx context.Context, db *store.DB, spec jobspec.Spec) (jobspec.Spec, error) {
	counts, err := db.CountMailboxesByStatus(ctx, spec.JobID)
	if err != nil {
		return spec, err
	}
	n := 0
	for st, c := range counts {
		if st != model.MailboxSkipped {
			n += int(c)
		}
	}
	if n == 0 {
		return spec, usagef("the spec lists no mailboxes and job %d has none registered: list them in the spec, "+
			"or import them with 'cutover email import SPEC --csv FILE --job-id %d'", spec.JobID, spec.JobID)
	}
	spec.MailboxCount = n
	if err := spec.Validate(); err != nil {
		return spec, usageError{err.Error()}
	}
	return spec, nil
}
