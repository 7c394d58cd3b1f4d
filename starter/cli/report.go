package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cutover/cutover/activities/report"
	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/starter/client"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
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
	// Database migrations: the status, why it failed, the acceptances of its quarantine, and
	// why the report comes from the workflow's state rather than the ledger.
	Status     string   `json:"status,omitempty"`
	Error      string   `json:"error,omitempty"`
	Accepted   []string `json:"accepted,omitempty"`
	Requests   []string `json:"requests,omitempty"` // what operators asked for, who and why
	Unrecorded string   `json:"unrecorded,omitempty"`
}

func reportFlags(e *Env, path string) (*struct {
	tf  *temporalFlags
	out *output
	dir *string
}, func([]string, int) ([]string, error)) {
	fs, tf, out := commandFlags(e, path)
	f := &struct {
		tf  *temporalFlags
		out *output
		dir *string
	}{tf: tf, out: out}
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
	wid, err := dbWorkflowID(pos[0])
	if err != nil {
		return err
	}
	id := uuid.MustParse(strings.TrimPrefix(wid, dbmigrateapi.WorkflowIDPrefix))
	// The ledger lives in the migration's target: the spec the migration started with says where.
	c, err := f.tf.client(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	in, err := c.DBInput(ctx, wid)
	if err != nil {
		return fromClient(err, "cutover db list")
	}
	if in.Spec == nil {
		return fmt.Errorf("migration %s started without a spec", id)
	}
	r := &report.Reporter{Dir: reportDir(e, *f.dir)}
	pool, err := openLedger(ctx, e, in.Spec)
	if err != nil {
		return dbReportFromState(ctx, e, f.out, r, c, in, id, err)
	}
	defer pool.Close()
	path, rep, err := r.WriteDB(ctx, store.New(pool), id)
	if unrecorded(err) {
		return dbReportFromState(ctx, e, f.out, r, c, in, id, err)
	}
	if err != nil {
		return err
	}
	res := reportResult{Path: path, Missing: rep.Totals.Missing, Quarantined: rep.QuarantineN, Source: rep.Totals.Source,
		Destination: rep.Totals.Loaded, MissingKnown: rep.MissingKnown, Complete: rep.MissingKnown && rep.Totals.Missing == 0,
		Status: string(rep.Status)}
	for _, a := range rep.Acceptances {
		res.Accepted = append(res.Accepted, fmt.Sprintf("%d rows by %s: %s", a.QuarantinedRows, a.AcceptedBy, a.Reason))
	}
	for _, q := range rep.Requests {
		res.Requests = append(res.Requests, requestLine(dbmigrateapi.RequestRecord{Request: q.Request, Subject: q.Subject,
			RequestedBy: q.RequestedBy, Reason: q.Reason, At: q.RequestedAt}))
	}
	if rep.Status == model.OrchFailed {
		if st, err := c.DBStatus(ctx, id.String()); err == nil {
			res.Error = st.Error
		}
	}
	return printReport(e, f.out, "migration "+id.String(), "rows", res)
}

// unrecorded reports whether a ledger read failed because the migration left nothing there:
// no row of it, or no ledger at all in its target (it failed before creating it).
func unrecorded(err error) bool {
	var pgErr *pgconn.PgError
	return errors.Is(err, store.ErrNotFound) ||
		(errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "3F000")) // undefined table, schema
}

// dbReportFromState writes the report of a migration whose target holds no ledger of it (it
// failed before, or the target cannot be read) from what its workflow knows: status, the
// cause of the failure, the entities' counts.
func dbReportFromState(ctx context.Context, e *Env, out *output, r *report.Reporter, c *client.Client,
	in dbmigrateapi.Input, id uuid.UUID, why error) error {
	st, err := c.DBStatus(ctx, id.String())
	if err != nil {
		return fromClient(err, "cutover db list")
	}
	rep := report.DBReport{MigrationID: id, Type: st.MigrationType, Status: st.Status, CreatedBy: in.CreatedBy,
		Progress: st.ProgressPercent, ErrorCount: st.ErrorCount, Error: st.Error}
	for _, es := range st.Entities {
		row := report.EntityRow{Name: es.Name, Status: es.Status, Source: es.Total, Loaded: es.Processed,
			Quarantined: es.Failed, PerSec: es.Throughput}
		rep.Entities = append(rep.Entities, row)
		rep.Totals.Source, rep.Totals.Loaded, rep.Totals.Quarantined = rep.Totals.Source+row.Source,
			rep.Totals.Loaded+row.Loaded, rep.Totals.Quarantined+row.Quarantined
	}
	rep.Totals.Name = "total"
	for _, q := range st.Requests {
		rep.Requests = append(rep.Requests, store.OperatorRequest{MigrationID: id, Request: q.Request, Subject: q.Subject,
			RequestedBy: q.RequestedBy, Reason: q.Reason, RequestedAt: q.At})
	}
	path, err := r.WriteDBUnrecorded(rep)
	if err != nil {
		return err
	}
	res := reportResult{Path: path, Source: rep.Totals.Source, Destination: rep.Totals.Loaded, Status: string(st.Status),
		Error: st.Error, Requests: requestLines(st.Requests), Unrecorded: "its target holds no ledger of it (" + ledgerProblem(why) + "): written from the workflow's state"}
	return printReport(e, out, "migration "+id.String(), "rows", res)
}

// ledgerProblem says in a few words why the ledger could not be read.
func ledgerProblem(err error) string {
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, store.ErrNotFound):
		return "no row of this migration"
	case errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "3F000"):
		return "the ledger tables were never created there"
	}
	return err.Error()
}

func printReport(e *Env, out *output, what, items string, r reportResult) error {
	if out.json() {
		return writeJSON(e.Stdout, r)
	}
	verdict := fmt.Sprintf("%d %s missing", r.Missing, items)
	if !r.MissingKnown {
		verdict = fmt.Sprintf("not proven complete yet (%d %s unaccounted for so far)", r.Missing, items)
	}
	if r.Unrecorded != "" {
		fmt.Fprintf(e.Stdout, "%s: %s; %s\n", what, r.Status, r.Unrecorded)
	} else {
		fmt.Fprintf(e.Stdout, "%s: %s, %d quarantined (source %d, destination %d)\n", what, verdict, r.Quarantined,
			r.Source, r.Destination)
	}
	if r.Error != "" {
		fmt.Fprintf(e.Stdout, "failed: %s\n", r.Error)
	}
	for _, a := range r.Accepted {
		fmt.Fprintf(e.Stdout, "quarantine accepted: %s\n", a)
	}
	for _, q := range r.Requests {
		fmt.Fprintf(e.Stdout, "requested: %s\n", q)
	}
	fmt.Fprintf(e.Stdout, "report: %s\n", r.Path)
	return nil
}

// openLedger connects to a database migration's ledger: the spec's target (or the workers'
// default target, CUTOVER_DB_TARGET_URL), its password from the vault when the spec names a
// credentials_ref, search_path the ledger schema.
func openLedger(ctx context.Context, e *Env, sp *spec.Spec) (*pgxpool.Pool, error) {
	sp.ApplyDefaults()
	dsn := sp.Target.DSN
	if dsn == "" {
		dsn = e.Getenv(dbmigrateapi.EnvTargetURL)
	}
	if dsn == "" {
		return nil, fmt.Errorf("the migration's spec names no target (target.dsn) and %s is not set", dbmigrateapi.EnvTargetURL)
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
