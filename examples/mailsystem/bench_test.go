package mailsystem_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cutover/cutover/activities/dbcopy"
	"github.com/cutover/cutover/examples/mailsystem"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/cpuclock"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// BenchmarkCutoverWindow is the mail system's migration at its production size (250K accounts, 100K
// sessions, 261K emails; generated), captured: the full load with its indexes, the first drain and
// the full validation during catch-up, then 1% of every table changed (a third each updated in
// place, deleted, inserted) and the cutover freeze: the last drain plus the validation of what
// changed since the full validation. It reports the window (freeze start → end), the drain's
// changes per second, and the load for scale.
//
// x10 is the same with ten times the accounts and sessions (2.5M and 1M; emails as in production)
// and the same changes (as many rows of each table as seed002 changes): the window should follow
// the changes, not the table size. x10_1pct then changes 1% of that larger database.
//
// CUTOVER_BENCH_SCALE=0.1 shrinks every size (a quick look); CUTOVER_BENCH_CPUPROFILE=FILE writes
// the window's Go CPU profile (the freeze only, not the generation and the load).
func BenchmarkCutoverWindow(b *testing.B) {
	scale := 1.0
	if s, err := strconv.ParseFloat(os.Getenv("CUTOVER_BENCH_SCALE"), 64); err == nil && s > 0 {
		scale = s
	}
	size := func(n mailsystem.Sizes, f float64) mailsystem.Sizes {
		return mailsystem.Sizes{Accounts: int(float64(n.Accounts) * f), Sessions: int(float64(n.Sessions) * f),
			Emails: int(float64(n.Emails) * f)}
	}
	base := size(mailsystem.Seed002, scale)
	big := base
	big.Accounts, big.Sessions = base.Accounts*10, base.Sessions*10
	for _, c := range []struct {
		name string
		n    mailsystem.Sizes
		per  mailsystem.Sizes // rows of each table updated, deleted and inserted (each)
	}{
		{"seed002", base, mailsystem.ChangeSizes(base, 0.01)},
		{"x10", big, mailsystem.ChangeSizes(base, 0.01)},
		{"x10_1pct", big, mailsystem.ChangeSizes(big, 0.01)},
	} {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				benchWindow(b, c.n, c.per)
			}
		})
	}
}

func benchWindow(b *testing.B, n, per mailsystem.Sizes) {
	b.StopTimer()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	data, err := mailsystem.GenerateSized(ctx, b.TempDir(), n)
	if err != nil {
		b.Fatal(err)
	}
	sp, err := spec.Load(mailsystem.SpecPath())
	if err != nil {
		b.Fatal(err)
	}
	sp.Sources["emails"] = spec.Source{Driver: "sqlite", Path: data.EmailsDB}
	sp.Sources["auth"] = spec.Source{Driver: "sqlite", Path: data.AuthDB}
	target := ""
	var pg *testenv.Postgres
	statements := os.Getenv("CUTOVER_BENCH_STATEMENTS") != ""
	if ms := os.Getenv("CUTOVER_BENCH_SLOWLOG"); ms != "" || statements {
		// A private target logging statements over ms (or 20) ms, with pg_stat_statements for
		// CUTOVER_BENCH_STATEMENTS.
		if _, err := strconv.Atoi(ms); err != nil {
			ms = "20"
		}
		settings := []string{"log_min_duration_statement=" + ms, "shared_buffers=256MB"}
		if statements {
			settings = append(settings, "shared_preload_libraries=pg_stat_statements", "pg_stat_statements.track=all")
		}
		pg = testenv.StartPostgresWith(b, settings...)
		target = pg.DatabaseURL("bench")
	} else {
		target = testenv.NewDatabase(b)
	}
	e, err := dbcopy.Open(ctx, sp, dbcopy.Options{MigrationID: uuid.New(), MigrationType: model.MigrationIncremental,
		TargetURL: target})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	if err := e.Prepare(ctx); err != nil {
		b.Fatal(err)
	}
	if err := e.InstallCapture(ctx); err != nil {
		b.Fatal(err)
	}
	order, _ := sp.Order()
	loadStart := time.Now()
	var rows int64
	for _, name := range order {
		res, err := e.CopyBatches(ctx, dbmigrateapi.BatchRequest{Entity: name}, 0, nil)
		if err != nil || !res.Done {
			b.Fatalf("load %s: %+v %v", name, res, err)
		}
		rows += res.Loaded
		if err := e.Finalize(ctx, name); err != nil {
			b.Fatal(err)
		}
	}
	load := time.Since(loadStart)
	// As the workflow drains: sources whose entities do not reference each other at once.
	groups := sp.SourceGroups([]string{"auth", "emails"})
	drainAll := func() dbcopy.DrainStats {
		var st dbcopy.DrainStats
		var mu sync.Mutex
		var wg sync.WaitGroup
		errs := make([]error, len(groups))
		for i, group := range groups {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, src := range group {
					s, err := e.Drain(ctx, src)
					if err != nil {
						errs[i] = err
						return
					}
					mu.Lock()
					st.Changes += s.Changes
					st.Upserted += s.Upserted
					st.Deleted += s.Deleted
					st.Failed += s.Failed
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			b.Fatal(err)
		}
		return st
	}
	drainAll()
	validateStart := time.Now()
	since := map[string]int64{}
	for _, name := range order {
		dv, err := e.ValidateBeforeFreeze(ctx, name)
		if err != nil {
			b.Fatal(err)
		}
		since[name] = dv.Since
	}
	fullValidation := time.Since(validateStart)
	changed, err := data.ChangeRows(ctx, per)
	if err != nil {
		b.Fatal(err)
	}

	if statements {
		resetStatements(ctx, b, e)
	}

	// The freeze: the application stopped; drain the last changes, validate what changed.
	if f := os.Getenv("CUTOVER_BENCH_CPUPROFILE"); f != "" {
		out, err := os.Create(f)
		if err != nil {
			b.Fatal(err)
		}
		defer out.Close()
		if err := pprof.StartCPUProfile(out); err != nil {
			b.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	b.StartTimer()
	goCPU0, pgCPU0 := cpuclock.Self(), cpuclock.Backends(ctx, e.Pool(), "cutover-dbcopy")
	start := time.Now()
	st := drainAll()
	drain := time.Since(start)
	drainCPU := cpuclock.Self() - goCPU0 + cpuclock.Backends(ctx, e.Pool(), "cutover-dbcopy") - pgCPU0
	var checked, countsMS, changedMS int64
	for _, name := range order {
		vs, err := e.ValidateChanged(ctx, name, since[name])
		if err != nil {
			b.Fatal(err)
		}
		if !dbcopy.Passed(vs, false) {
			for _, v := range vs {
				b.Logf("%s %s %s: %s", name, v.ValidationType, v.Status, v.IssueDetails)
			}
			b.Fatalf("freeze validation of %s failed", name)
		}
		checked += vs[1].RecordsValidated
		countsMS += vs[0].ExecutionDurationMS
		for _, v := range vs[1:] {
			changedMS += v.ExecutionDurationMS
		}
	}
	window := time.Since(start)
	b.StopTimer()
	goCPU, pgCPU := cpuclock.Self()-goCPU0, cpuclock.Backends(ctx, e.Pool(), "cutover-dbcopy")-pgCPU0
	if pg != nil {
		// On stderr: the testing package keeps only a few lines of a benchmark's log.
		fmt.Fprintf(os.Stderr, "slow statements (the log's last 16 KB):\n%s\n", pg.LogTail())
	}
	if statements {
		printStatements(ctx, b, e)
	}
	if st.Changes == 0 {
		b.Fatalf("st.Changes = %v, want != 0; drain %+v", st.Changes, st)
	}
	if st.Failed != 0 {
		b.Fatalf("st.Failed = %v, want 0; drain %+v", st.Failed, st)
	}
	b.ReportMetric(window.Seconds(), "window_s")
	b.ReportMetric(float64(st.Changes)/drain.Seconds(), "changes/s")
	b.ReportMetric(float64(st.Changes), "changes")
	b.ReportMetric(float64(rows), "rows")
	b.ReportMetric(load.Seconds(), "load_s")
	// CPU time (this process, with its SQLite reads, and its PostgreSQL server processes): the
	// window's cost apart from what the machine's other work takes.
	b.ReportMetric((goCPU + pgCPU).Seconds(), "window_cpu_s")
	b.ReportMetric(float64(st.Changes)/drainCPU.Seconds(), "changes/cpu_s")
	b.ReportMetric(drain.Seconds(), "drain_s")
	b.ReportMetric(float64(countsMS)/1000, "counts_s")
	b.ReportMetric(float64(changedMS)/1000, "changed_check_s")
	b.Logf("%d source rows (%d accounts, %d sessions, %d emails): load %s, full validation during catch-up %s; "+
		"%d rows changed → %d changes drained in %s (%.0f/s), %d rows validated (counts %d ms, changed rows %d ms); "+
		"cutover window %s (CPU: Go %.2fs, PostgreSQL %.2fs; the drain %.2fs)",
		n.Accounts+n.Sessions+n.Emails, n.Accounts, n.Sessions, n.Emails, load.Round(time.Millisecond),
		fullValidation.Round(time.Millisecond), changed, st.Changes, drain.Round(time.Millisecond),
		float64(st.Changes)/drain.Seconds(), checked, countsMS, changedMS, window.Round(time.Millisecond),
		goCPU.Seconds(), pgCPU.Seconds(), drainCPU.Seconds())
}

// resetStatements starts pg_stat_statements' counts afresh (CUTOVER_BENCH_STATEMENTS).
func resetStatements(ctx context.Context, b *testing.B, e *dbcopy.Engine) {
	for _, q := range []string{`CREATE EXTENSION IF NOT EXISTS pg_stat_statements`, `SELECT pg_stat_statements_reset()`} {
		if _, err := e.Pool().Exec(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
}

// printStatements writes the window's statements that took the most time to stderr.
func printStatements(ctx context.Context, b *testing.B, e *dbcopy.Engine) {
	rows, err := e.Pool().Query(ctx, `SELECT calls, total_exec_time, rows, left(regexp_replace(query, '\s+', ' ', 'g'), 300)
		FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
		ORDER BY total_exec_time DESC LIMIT 25`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	fmt.Fprintln(os.Stderr, "the window's statements by time (calls, ms, rows, statement):")
	for rows.Next() {
		var calls, n int64
		var ms float64
		var q string
		if err := rows.Scan(&calls, &ms, &n, &q); err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(os.Stderr, "%6d %9.1f %8d  %s\n", calls, ms, n, q)
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
}
