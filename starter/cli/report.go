package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cutover/cutover/activities/dbcopy/spec"
	"github.com/cutover/cutover/activities/report"
	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/starter/client"
	"github.com/cutover/cutover/workflows/dbmigrate"
)

func init() {
	register("email report", "write a job's HTML report now (counts, quarantine, gate, passes); prints its path", runEmailReport)
	register("db report", "write a database migration's HTML report now; prints its path", runDBReport)
}

// reportResult is what report commands print with --output json.
type reportResult struct {
	Path         string `json:"path"`
	Complete     bool   `json:"complete"` // proven: nothing missing
	Missing      int64  `json:"missing"`
	Quarantined  int    `json:"quarantined"`
	Source       int64  `json:"source"`
	Destination  int64  `json:"destination"`
	MissingKnown bool   `json:"missing_known"`
}

func reportFlags(e *Env, path string) (*struct {
	tf  temporalFlags
	out *output
	dir *string
}, func([]string, int) ([]string, error)) {
	fs := newFlags(e, path)
	f := &struct {
		tf  temporalFlags
		out *output
		dir *string
	}{}
	f.tf.bind(e, fs)
	f.out = bindOutput(fs)
	f.dir = fs.String("dir", "", "where to write it (default $CUTOVER_REPORT_DIR, else .cutover/reports)")
	return f, func(args []string, n int) ([]string, error) { return parseAnyOrder(fs, args, n) }
}

func reportDir(e *Env, flag string) string {
	if flag != "" {
		return report.DirFromEnv(func(string) string { return flag })
	}
	return report.DirFromEnv(e.Getenv)
}

func runEmailReport(ctx context.Context, e *Env, args []string) error {
	f, parseArgs := reportFlags(e, "email report")
	pos, err := parseArgs(args, 1)
	if err != nil {
		return err
	}
	id, err := parseJobID(pos[0])
	if err != nil {
		return err
	}
	db, err := store.Open(ctx, databaseURL(e))
	if err != nil {
		return err
	}
	defer db.Close()
	r := &report.Reporter{Dir: reportDir(e, *f.dir), DB: db}
	path, rep, err := r.WriteEmail(ctx, db.Store, id)
	if errors.Is(err, store.ErrNotFound) {
		return notFoundError{fmt.Errorf("job %d: no migration_jobs row in %s; list jobs with 'cutover email list'", id, redactURL(databaseURL(e)))}
	}
	if err != nil {
		return err
	}
	res := reportResult{Path: path, Missing: rep.Totals.Missing, Quarantined: rep.QuarantineN, Source: rep.Totals.Source,
		Destination: rep.Totals.Dest, MissingKnown: rep.MissingKnown, Complete: rep.MissingKnown && rep.Totals.Missing == 0}
	return printReport(e, f.out, fmt.Sprintf("job %d", id), "messages", res)
}

func runDBReport(ctx context.Context, e *Env, args []string) error {
	f, parseArgs := reportFlags(e, "db report")
	pos, err := parseArgs(args, 1)
	if err != nil {
		return err
	}
	wid, err := client.DBWorkflowID(pos[0])
	if err != nil {
		return usageError{err.Error()}
	}
	id := uuid.MustParse(strings.TrimPrefix(wid, dbmigrate.WorkflowIDPrefix))
	// The ledger lives in the migration's target: the spec the migration started with says where.
	c, err := f.tf.client(ctx)
	if err != nil {
		return err
	}
	in, err := c.DBInput(ctx, wid)
	c.Close()
	if err != nil {
		return fromClient(err, "cutover db list")
	}
	if in.Spec == nil {
		return fmt.Errorf("migration %s started without a spec", id)
	}
	pool, err := openLedger(ctx, e, in.Spec)
	if err != nil {
		return err
	}
	defer pool.Close()
	r := &report.Reporter{Dir: reportDir(e, *f.dir)}
	path, rep, err := r.WriteDB(ctx, store.New(pool), id)
	if errors.Is(err, store.ErrNotFound) {
		return notFoundError{fmt.Errorf("migration %s has no ledger yet in its target; list migrations with 'cutover db list'", id)}
	}
	if err != nil {
		return err
	}
	res := reportResult{Path: path, Missing: rep.Totals.Missing, Quarantined: rep.QuarantineN, Source: rep.Totals.Source,
		Destination: rep.Totals.Loaded, MissingKnown: rep.MissingKnown, Complete: rep.MissingKnown && rep.Totals.Missing == 0}
	return printReport(e, f.out, "migration "+id.String(), "rows", res)
}

func printReport(e *Env, out *output, what, items string, r reportResult) error {
	if out.json() {
		return writeJSON(e.Stdout, r)
	}
	verdict := fmt.Sprintf("%d %s missing", r.Missing, items)
	if !r.MissingKnown {
		verdict = fmt.Sprintf("not proven complete yet (%d %s unaccounted for so far)", r.Missing, items)
	}
	fmt.Fprintf(e.Stdout, "%s: %s, %d quarantined (source %d, destination %d)\nreport: %s\n", what, verdict, r.Quarantined,
		r.Source, r.Destination, r.Path)
	return nil
}

// openLedger connects to a database migration's ledger: the spec's target (or DATABASE_URL),
// its password from the vault when the spec names a credentials_ref, search_path the ledger
// schema.
func openLedger(ctx context.Context, e *Env, sp *spec.Spec) (*pgxpool.Pool, error) {
	sp.ApplyDefaults()
	dsn := sp.Target.DSN
	if dsn == "" {
		dsn = databaseURL(e)
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, errors.New("migration target: malformed connection string")
	}
	if ref := sp.Target.CredentialsRef; ref != "" {
		v, done, err := openVault(ctx, e)
		if err != nil {
			return nil, err
		}
		defer done()
		s, err := v.Get(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("target credentials_ref: %w", err)
		}
		cfg.ConnConfig.Password = s.Password
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = sp.Target.LedgerSchema
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("migration target: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("migration target %s@%s/%s: %w", cfg.ConnConfig.User, cfg.ConnConfig.Host, cfg.ConnConfig.Database, err)
	}
	return pool, nil
}
