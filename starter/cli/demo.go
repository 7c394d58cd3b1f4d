package cli

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cutover/cutover/activities/report"
	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/activities/vault"
	"github.com/cutover/cutover/internal/devtools/corpus"
	"github.com/cutover/cutover/internal/devtools/devstack"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/starter/client"
	"github.com/cutover/cutover/starter/internal/demo"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

func init() {
	register("demo", "on a running stack (make dev): two local Dovecots with a generated corpus, an email job through every phase, the mail-system database migration", runDemo)
}

// demoDovecots are the two demo servers, stopped by 'dev down' through their pid files.
var demoDovecots = []string{"dovecot-src", "dovecot-dst"}

func runDemo(ctx context.Context, e *Env, args []string) error {
	fs := newFlags(e, "demo")
	var tf temporalFlags
	tf.bind(e, fs)
	dir := fs.String("state-dir", ".cutover", "the stack's state directory (as for 'dev up')")
	users := fs.Int("users", 4, "demo mailboxes")
	messages := fs.Int("messages", 150, "generated messages per mailbox (the first also gets the edge-case corpus)")
	accounts := fs.Int("accounts", 200, "mail-system accounts in the generated SQLite databases")
	emails := fs.Int("emails", 3000, "mail-system emails in the generated SQLite databases")
	srcPort := fs.Int("src-port", 10143, "IMAP port of the source Dovecot")
	dstPort := fs.Int("dst-port", 10144, "IMAP port of the destination Dovecot")
	uiURL := fs.String("ui", "http://127.0.0.1:8233", "the Temporal UI, for the links printed at the end")
	metricsURL := fs.String("metrics", "http://127.0.0.1:9464/metrics", "the worker's metrics endpoint")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after this long")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	state, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	// Before anything starts: a state directory that cannot be made must not leave servers behind.
	if err := os.MkdirAll(state, 0o750); err != nil {
		return usagef("--state-dir: %v", err)
	}
	out := e.Stdout
	step := func(format string, a ...any) { fmt.Fprintf(out, "\n== "+format+"\n", a...) }
	started := time.Now()

	c, err := tf.client(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	db, err := store.OpenAndMigrate(ctx, databaseURL(e))
	if err != nil {
		return err
	}
	defer db.Close()
	v, err := demoVault(e, db, state)
	if err != nil {
		return err
	}

	step("two local Dovecot servers with a generated corpus")
	mailUsers := demo.Users(*users, *messages)
	src, dst, err := startDemoDovecots(state, mailUsers, *srcPort, *dstPort)
	if err != nil {
		return err
	}
	seeded, err := demo.SeedCorpus(mailUsers, src.Maildir)
	if err != nil {
		return err
	}
	if err := src.FixOwnership(); err != nil {
		return err
	}
	fmt.Fprintf(out, "source      %s  %d mailboxes, %d messages (nested and non-ASCII folders, duplicates, malformed MIME, attachments)\n",
		src.Addr(), len(mailUsers), seeded)
	fmt.Fprintf(out, "destination %s  empty\n", dst.Addr())
	refs, err := demo.PutCredentials(ctx, v, mailUsers)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "credentials in the vault: %d references (the job spec carries only those)\n", 2*len(mailUsers))

	job, err := db.CreateJob(ctx, store.Job{TenantID: 1, Domain: demo.Domain})
	if err != nil {
		return err
	}
	sp := demo.EmailSpec(job.ID, src.Addr(), dst.Addr(), mailUsers, refs)
	step("email job %d: %s, every phase, approved by %q", job.ID, demo.Domain, demo.Operator)
	j, err := c.StartEmailJob(ctx, sp)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "started workflow %s: %s/namespaces/%s/workflows/%s\n", j.WorkflowID, *uiURL, tf.conn.Namespace, j.WorkflowID)
	first := mailUsers[0]
	d := &demo.EmailDriver{C: c, JobID: job.ID, Out: out, Poll: 500 * time.Millisecond, Arrive: func() error {
		if err := corpus.WriteMaildir(src.Maildir(first.Name), demo.Arrival(first, 5, time.Now())); err != nil {
			return err
		}
		return src.FixOwnership()
	}}
	st, err := d.Run(ctx)
	if err != nil {
		return fmt.Errorf("email job %d: %w", job.ID, err)
	}
	if st.Phase != model.PhaseClosed {
		return fmt.Errorf("email job %d ended in phase %s", job.ID, st.Phase)
	}
	emailReport, err := waitEmailReport(ctx, db, job.ID)
	if err != nil {
		return err
	}
	rep, err := report.CollectEmail(ctx, db.Store, job.ID, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "report: %d messages on the source, %d on the destination, %d quarantined, %d missing\n",
		rep.Totals.Source, rep.Totals.Dest, rep.QuarantineN, rep.Totals.Missing)
	if !rep.MissingKnown || rep.Totals.Missing != 0 {
		return fmt.Errorf("email job %d: %d message(s) missing (verified %v); see %s", job.ID, rep.Totals.Missing, rep.MissingKnown, emailReport)
	}

	step("database: the mail system's SQLite databases into PostgreSQL (incremental, then cutover)")
	target, err := demoTarget(ctx, databaseURL(e))
	if err != nil {
		return err
	}
	msDir := filepath.Join(state, "demo", "mailsystem")
	if err := os.RemoveAll(msDir); err != nil {
		return err
	}
	if err := os.MkdirAll(msDir, 0o755); err != nil {
		return err
	}
	dbSpec, data, err := demo.MailSystem(ctx, msDir, target, *accounts, *emails)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "generated %s and %s: %d accounts, %d sessions, %d emails (%d with a duplicate message_id)\n",
		data.AuthDB, data.EmailsDB, data.Accounts, data.Sessions, data.Emails, data.Duplicates)
	fmt.Fprintf(out, "target %s\n", redactURL(target))
	m, err := c.StartDBMigration(ctx, dbmigrateapi.Input{MigrationID: uuid.NewString(), MigrationType: model.MigrationIncremental,
		CreatedBy: demo.Operator, Spec: dbSpec, Config: dbmigrateapi.Config{SyncInterval: 2 * time.Second}})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "started workflow %s: %s/namespaces/%s/workflows/%s\n", m.WorkflowID, *uiURL, tf.conn.Namespace, m.WorkflowID)
	dst2, err := (&demo.DBDriver{C: c, ID: m.MigrationID, Data: data, Out: out}).Run(ctx)
	if err != nil {
		return fmt.Errorf("database migration %s: %w", m.MigrationID, err)
	}
	if dst2.Status != model.OrchCompleted {
		return fmt.Errorf("database migration %s ended %s: %s", m.MigrationID, dst2.Status, dst2.Error)
	}
	dbReport, drep, err := waitDBReport(ctx, target, dbSpec, m.MigrationID)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "report: %d source rows, %d loaded, %d quarantined, %d missing\n",
		drep.Totals.Source, drep.Totals.Loaded, drep.QuarantineN, drep.Totals.Missing)
	if !drep.MissingKnown || drep.Totals.Missing != 0 {
		return fmt.Errorf("database migration %s: %d row(s) missing; see %s", m.MigrationID, drep.Totals.Missing, dbReport)
	}

	step("done in %s: where to look", time.Since(started).Round(time.Second))
	tw := newTable(out)
	fmt.Fprintf(tw, "Temporal UI\t%s/namespaces/%s/workflows?query=%s\n", *uiURL, tf.conn.Namespace,
		url.QueryEscape(client.ConsoleView))
	fmt.Fprintf(tw, "failed migrations\t%s/namespaces/%s/workflows?query=%s\n", *uiURL, tf.conn.Namespace,
		url.QueryEscape(client.FailedView))
	fmt.Fprintf(tw, "email job %d\t%s/namespaces/%s/workflows/%s\n", job.ID, *uiURL, tf.conn.Namespace, emailapi.WorkflowID(job.ID))
	fmt.Fprintf(tw, "email report\t%s\n", emailReport)
	fmt.Fprintf(tw, "database migration\t%s/namespaces/%s/workflows/%s\n", *uiURL, tf.conn.Namespace, m.WorkflowID)
	fmt.Fprintf(tw, "database report\t%s\n", dbReport)
	fmt.Fprintf(tw, "worker metrics\t%s\n", *metricsURL)
	fmt.Fprintf(tw, "from the CLI\tbin/cutover list · bin/cutover email status %d · bin/cutover db status %s\n", job.ID, m.MigrationID)
	fmt.Fprintf(tw, "stop everything\tmake down\n")
	tw.Flush()
	if lines := cutoverMetrics(ctx, *metricsURL); len(lines) > 0 {
		fmt.Fprintf(out, "\nworker metrics after the run:\n  %s\n", strings.Join(lines, "\n  "))
	}
	return nil
}

// demoVault opens the vault with the key the dev stack's worker uses.
func demoVault(e *Env, db *store.DB, state string) (*vault.Vault, error) {
	keys := e.Getenv(vault.EnvKeys)
	if keys == "" {
		b, err := os.ReadFile(filepath.Join(state, "vault.key"))
		if err != nil {
			return nil, usagef("no vault key: set %s or run 'make dev' first (it keeps one in %s)", vault.EnvKeys, state)
		}
		keys = strings.TrimSpace(string(b))
	}
	parsed, err := vault.ParseKeys(keys)
	if err != nil {
		return nil, usageError{err.Error()}
	}
	return vault.New(db.Store, parsed)
}

// startDemoDovecots (re)starts both demo servers from scratch, so every demo run copies a fresh
// corpus to an empty destination. Their files live under a short temporary path (Dovecot's
// socket paths are limited); their pid files in the state directory, for 'dev down'.
func startDemoDovecots(state string, users []demo.MailUser, srcPort, dstPort int) (src, dst *devstack.Dovecot, err error) {
	id, err := devstack.CurrentDovecotIdentity()
	if err != nil {
		return nil, nil, err
	}
	root := demoDovecotRoot(state)
	out := make([]*devstack.Dovecot, 2)
	for i, name := range demoDovecots {
		if _, err := devstack.StopPidFile(filepath.Join(state, name+".pid"), 10*time.Second); err != nil {
			return nil, nil, err
		}
		d := &devstack.Dovecot{Dir: filepath.Join(root, name), Port: []int{srcPort, dstPort}[i], Identity: id, Users: map[string]string{}}
		for _, u := range users {
			d.Users[u.Name] = []string{u.SrcPassword, u.DstPassword}[i]
		}
		if portOpen(d.Addr()) {
			return nil, nil, fmt.Errorf("%s: something else listens on %s (choose another with --src-port/--dst-port)", name, d.Addr())
		}
		if err := os.RemoveAll(d.Dir); err != nil {
			return nil, nil, err
		}
		if err := os.MkdirAll(d.Dir, 0o755); err != nil {
			return nil, nil, err
		}
		if err := os.Chmod(root, 0o755); err != nil {
			return nil, nil, err
		}
		if err := d.Prepare(); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		if _, err := d.StartDetached(filepath.Join(state, name+".pid"), 20*time.Second); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		out[i] = d
	}
	return out[0], out[1], nil
}

// demoDovecotRoot is where the demo's Dovecots of a state directory keep their files.
func demoDovecotRoot(state string) string {
	sum := sha256.Sum256([]byte(state))
	return filepath.Join(os.TempDir(), "cutover-demo-"+hex.EncodeToString(sum[:4]))
}

// demoTarget is a fresh database beside the control database for the mail system's tables, dropped
// and created again on every run.
func demoTarget(ctx context.Context, control string) (string, error) {
	cfg, err := pgx.ParseConfig(control)
	if err != nil {
		return "", errors.New("DATABASE_URL: malformed connection string")
	}
	name := cfg.Database + "_demo_mailsystem"
	admin, err := pgxpool.New(ctx, control)
	if err != nil {
		return "", err
	}
	defer admin.Close()
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return "", fmt.Errorf("reset the demo target %s: %w", name, err)
	}
	u, err := url.Parse(control)
	if err != nil || u.Scheme == "" {
		return "", fmt.Errorf("DATABASE_URL must be a postgres:// URL for the demo")
	}
	u.Path = "/" + name
	return u.String(), nil
}

// waitEmailReport waits for the report the worker writes when the job closes.
func waitEmailReport(ctx context.Context, db *store.DB, jobID int64) (string, error) {
	for {
		path, err := db.JobReportPath(ctx, jobID)
		if err != nil {
			return "", err
		}
		if path != "" {
			if _, err := os.Stat(path); err == nil {
				return path, nil
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("no report for job %d: %w", jobID, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitDBReport reads the report path the worker records in the migration's ledger.
func waitDBReport(ctx context.Context, target string, sp *spec.Spec, id string) (string, *report.DBReport, error) {
	cfg, err := pgxpool.ParseConfig(target)
	if err != nil {
		return "", nil, err
	}
	sp.ApplyDefaults()
	cfg.ConnConfig.RuntimeParams["search_path"] = sp.Target.LedgerSchema
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return "", nil, err
	}
	defer pool.Close()
	ledger := store.New(pool)
	mid := uuid.MustParse(id)
	for {
		path, err := ledger.OrchestrationReport(ctx, mid)
		if err != nil {
			return "", nil, err
		}
		if path != "" {
			rep, err := report.CollectDB(ctx, ledger, mid, time.Now())
			return path, &rep, err
		}
		select {
		case <-ctx.Done():
			return "", nil, fmt.Errorf("no report for migration %s: %w", id, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// cutoverMetrics returns the worker's cutover_* counter samples (histograms as their counts).
func cutoverMetrics(ctx context.Context, u string) []string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var out []string
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 8<<20))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "cutover_") || strings.Contains(line, "_bucket{") || strings.Contains(line, "_sum") {
			continue
		}
		out = append(out, line)
	}
	return out
}
