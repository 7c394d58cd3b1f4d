package dbmigrate_test

import (
	"context"
	"database/sql"
	"encoding/csv"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"

	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// BenchmarkClinicChain runs dbcopytest's clinic chain (offices → profiles → doctors → patients →
// orders and the secondary tables; legacy integer ids mapped to UUIDs, references remapped,
// planted bad rows quarantined) through the whole product: a worker process, the Temporal dev
// server, the orchestration workflow and its entity children, as a user's `cutover db start`
// would. Beside it, on the same SQLite file, pgloader (no mapping, no remap) and psql \copy of
// the same rows as CSV into pre-created text tables (the limit). The tools take turns, round
// after round; medians are reported with the machine's load average (uptime). Also reported:
// the worker's peak RSS (VmHWM of its process), its CPU time, and the mapping ledger's bytes per
// mapped row (pg_total_relation_size of the ledger's mapping tables, indexes and TOAST included).
// Figures are printed, never asserted. Knobs: CUTOVER_BENCH_CLINIC_SCALE (325 ≈ 1M rows),
// CUTOVER_BENCH_RUNS (3), CUTOVER_BENCH_ONLY_CUTOVER, CUTOVER_BENCH_PPROF (a file: the worker's
// CPU profile of the last round), CUTOVER_BENCH_HISTORY (each run's timeline from its Temporal
// histories).
func BenchmarkClinicChain(b *testing.B) {
	scale := envInt("CUTOVER_BENCH_CLINIC_SCALE", 325)
	runs := envInt("CUTOVER_BENCH_RUNS", 3)
	only := os.Getenv("CUTOVER_BENCH_ONLY_CUTOVER") != ""
	dir := b.TempDir()
	ctx := context.Background()

	clinic := dbcopytest.NewClinic(scale, false)
	src := filepath.Join(dir, "legacy.db")
	if err := dbcopytest.WriteSQLite(ctx, src, clinic.Tables); err != nil {
		b.Fatal(err)
	}
	total, loaded := clinic.Rows(), 0
	for _, x := range clinic.Expects {
		loaded += x.Loaded
	}
	tables := make([]*dbcopytest.Table, len(clinic.Tables))
	for i, t := range clinic.Tables {
		tables[i] = &dbcopytest.Table{Name: t.Name, Columns: t.Columns}
	}
	clinic.Tables = nil
	runtime.GC()
	debug.FreeOSMemory()
	st, err := os.Stat(src)
	if err != nil {
		b.Fatal(err)
	}
	mb := float64(st.Size()) / (1 << 20)
	benchLog("clinic scale %d: %d source rows (%d to load), SQLite file %.1f MB", scale, total, loaded, mb)

	bin := filepath.Join(dir, "cutover-worker")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/cutover/cutover/worker").CombinedOutput(); err != nil {
		b.Fatalf("build worker: %v\n%s", err, out)
	}
	srv := testenv.SharedTemporal(b)
	c := srv.Client(b)
	pgloader, _ := exec.LookPath("pgloader")
	pgSrc := ""
	if pgloader != "" && !only {
		pgSrc = pgloaderSource(ctx, b, dir, scale)
	}
	psql, _ := exec.LookPath("psql")
	csvDir := filepath.Join(dir, "csv")
	if psql != "" && !only {
		exportCSV(b, src, csvDir, tables)
	}

	sp, err := spec.Parse([]byte(dbcopytest.ClinicSpec("sqlite", src, 10000)))
	if err != nil {
		b.Fatal(err)
	}
	rates, rss, ledger, cpus := map[string][]float64{}, []float64{}, []float64{}, map[string][]float64{}
	for round := range runs {
		benchLog("round %d of %d, %s", round+1, runs, uptime())
		prof := ""
		if round == runs-1 {
			prof = os.Getenv("CUTOVER_BENCH_PPROF")
		}
		r := benchProduct(ctx, b, c, srv, bin, sp, loaded, prof)
		rates["cutover"] = append(rates["cutover"], float64(total)/r.elapsed.Seconds())
		rss, ledger = append(rss, r.peakMB), append(ledger, r.ledgerBytesPerRow)
		cpus["worker"], cpus["postgres"] = append(cpus["worker"], r.workerCPU), append(cpus["postgres"], r.pgCPU)
		if only {
			continue
		}
		if pgloader != "" {
			d, n := benchClinicPgloader(ctx, b, pgloader, pgSrc, dir)
			rates["pgloader"] = append(rates["pgloader"], float64(total)/d.Seconds())
			rates["pgloader_loaded"] = append(rates["pgloader_loaded"], float64(n)/d.Seconds())
		}
		if psql != "" {
			rates["copy"] = append(rates["copy"], float64(total)/benchCopy(b, psql, csvDir, tables, nil).Seconds())
		}
	}
	benchLog("done, %s", uptime())
	med := map[string]float64{}
	for name, rs := range rates {
		med[name] = benchMedian(rs)
		b.ReportMetric(med[name], name+"_rows/s")
		benchLog("%s rows/s: %s, median %.0f", name, fmtFloats(rs), med[name])
	}
	for _, base := range []string{"pgloader", "copy"} {
		if med[base] > 0 {
			b.ReportMetric(med["cutover"]/med[base], "cutover_vs_"+base)
		}
	}
	b.ReportMetric(slices.Max(rss), "worker_peak_RSS_MB")
	b.ReportMetric(benchMedian(ledger), "ledger_bytes/mapping")
	reportCPU(b, cpus)
}

type productRun struct {
	elapsed           time.Duration
	peakMB            float64
	ledgerBytesPerRow float64
	workerCPU, pgCPU  float64 // seconds
}

// benchProduct migrates sp's sources with a fresh worker process into a fresh database; loaded
// is how many rows must end mapped.
func benchProduct(ctx context.Context, b *testing.B, c client.Client, srv *testenv.Temporal, bin string, sp *spec.Spec,
	loaded int, prof string) productRun {
	dbURL, controlURL := testenv.NewDatabase(b), testenv.NewDatabase(b)
	port := testenv.FreePort(b)
	queue := fmt.Sprintf("db-bench-%d", time.Now().UnixNano())
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "TEMPORAL_ADDRESS="+srv.Address(), "TEMPORAL_NAMESPACE="+srv.Namespace(),
		"DATABASE_URL="+controlURL, dbmigrateapi.EnvTargetURL+"="+dbURL,
		fmt.Sprintf("CUTOVER_METRICS_ADDR=127.0.0.1:%d", port), "CUTOVER_TASK_QUEUE="+queue,
		"CUTOVER_VAULT_KEYS=")
	if prof != "" {
		cmd.Env = append(cmd.Env, "CUTOVER_CPU_PROFILE="+prof)
	}
	logs := &strings.Builder{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	testenv.WaitFor(b, "worker /healthz", 60*time.Second, func() bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", port))
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	in := dbmigrateapi.Input{MigrationID: uuid.NewString(), MigrationType: model.MigrationFull, CreatedBy: "bench", Spec: sp}
	cpu0 := pidCPU(cmd.Process.Pid)
	peakAt := sampleRSS(cmd.Process.Pid)
	pgc := startPGCPU(ctx, b, dbURL, controlURL)
	start := time.Now()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: dbmigrateapi.WorkflowID(in.MigrationID),
		TaskQueue: queue}, dbmigrateapi.WorkflowName, in)
	if err != nil {
		b.Fatal(err)
	}
	var res dbmigrateapi.State
	if err := run.Get(ctx, &res); err != nil {
		b.Fatalf("err: want nil; migration: %+v %v\n%s", res, err, logs.String())
	} else if res.Status != model.OrchCompleted {
		b.Fatalf("res.Status = %v, want model.OrchCompleted; migration: %+v %v\n%s",
			res.Status, res, err, logs.String())
	}
	d := time.Since(start)
	peak, cpu, pgCPU, at := pidPeakRSS(cmd.Process.Pid), pidCPU(cmd.Process.Pid)-cpu0, pgc.end(), peakAt()
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	if prof != "" {
		_ = cmd.Process.Signal(os.Interrupt) // the worker writes its profile as it stops
		_ = cmd.Wait()
	}
	var maps, ledgerBytes, targetBytes int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM cutover.migration_mappings WHERE migration_id = $1`,
		in.MigrationID).Scan(&maps); err != nil {
		b.Fatalf("err: want nil; %d mappings, want %d (%v)", maps, loaded, err)
	} else if maps != int64(loaded) {
		b.Fatalf("maps: want int64(loaded); %d mappings, want %d (%v)", maps, loaded, err)
	}
	if err := pool.QueryRow(ctx, `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'cutover' AND c.relkind = 'r'
		AND c.relname LIKE 'migration\_mapping%'`).Scan(&ledgerBytes); err != nil {
		b.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'`).Scan(&targetBytes); err != nil {
		b.Fatal(err)
	}
	// Where the time went: the entities' load (first start to last completion, their index and
	// foreign key builds included) and the validation's checks (their recorded durations).
	var loadSecs float64
	var validateMS int64
	if err := pool.QueryRow(ctx, `SELECT coalesce(extract(epoch FROM max(completed_at) - min(started_at)), 0)::float8
		FROM cutover.entity_migration_status WHERE migration_id = $1`, in.MigrationID).Scan(&loadSecs); err != nil {
		b.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT coalesce(sum(execution_duration_ms), 0)::bigint FROM cutover.data_validation_results
		WHERE migration_id = $1`, in.MigrationID).Scan(&validateMS); err != nil {
		b.Fatal(err)
	}
	var checks string
	if err := pool.QueryRow(ctx, `SELECT coalesce(string_agg(c || ' ' || round(ms / 1000.0, 1) || 's', ', ' ORDER BY ms DESC), '')
		FROM (SELECT coalesce(validation_criteria->>'check', validation_type::text) AS c, sum(execution_duration_ms) AS ms
		FROM cutover.data_validation_results WHERE migration_id = $1 GROUP BY 1) x`, in.MigrationID).Scan(&checks); err != nil {
		b.Fatal(err)
	}
	benchLog("cutover phases: entities loaded in %.1fs, validation checks %.1fs (%s)", loadSecs, float64(validateMS)/1000, checks)
	benchTimeline(ctx, b, pool, in.MigrationID, start, d, pgc)
	if os.Getenv("CUTOVER_BENCH_HISTORY") != "" {
		benchHistory(ctx, b, c, in.MigrationID, run.GetRunID(), start)
	}
	r := productRun{elapsed: d, peakMB: float64(peak) / (1 << 20), ledgerBytesPerRow: float64(ledgerBytes) / float64(maps),
		workerCPU: cpu.Seconds(), pgCPU: pgCPU.Seconds()}
	benchLog("cutover run: %v, worker peak RSS %.0f MB (sampled: %.0f MB at %.1fs, %.0f MB at the start), worker CPU %.1fs, PostgreSQL CPU %.1fs (target and control backends), "+
		"target tables %.0f MB, mapping ledger %.1f MB (%.0f bytes per mapping)", d.Round(time.Millisecond), r.peakMB,
		float64(at.rss)/(1<<20), at.at.Seconds(), float64(at.first)/(1<<20),
		cpu.Seconds(), pgCPU.Seconds(), float64(targetBytes)/(1<<20),
		float64(ledgerBytes)/(1<<20), r.ledgerBytesPerRow)
	return r
}

// pgloaderSource writes the clinic for pgloader: the same rows, with the one invalid UTF-8 name
// made valid, as the \copy baseline's CSV export does (pgloader refuses the whole table over it).
func pgloaderSource(ctx context.Context, b *testing.B, dir string, scale int) string {
	src := filepath.Join(dir, "legacy-pgloader.db")
	if err := dbcopytest.WriteSQLite(ctx, src, dbcopytest.NewClinic(scale, true).Tables); err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	debug.FreeOSMemory()
	return src
}

// pgloaderCasts are the cast rules a pgloader user needs to load every clinic table: with its
// defaults pgloader reads dispatch_user's DATETIME column (some values are integer seconds) as
// dates it cannot copy, and office's INTEGER column holding "maybe" as a row it cannot format,
// and loses each such table whole (no profile at all). Both become text, which spares pgloader
// the conversion cutover does; the baseline errs in pgloader's favour.
const pgloaderCasts = `CAST type datetime to text drop typemod,
     column office.active to text drop typemod`

// benchClinicPgloader loads the SQLite file with pgloader, with its default options and
// pgloaderCasts, into a fresh database and returns how long it took and how many rows it
// loaded (its rows/s over the rows it loaded is reported beside its rows/s over the source's).
func benchClinicPgloader(ctx context.Context, b *testing.B, bin, src, dir string) (time.Duration, int64) {
	target := testenv.NewDatabase(b)
	load := filepath.Join(dir, "clinic.load")
	cmds := fmt.Sprintf("LOAD DATABASE\n  FROM sqlite://%s\n  INTO %s\n%s\n;\n", src,
		strings.Replace(target, "postgres://", "pgsql://", 1), pgloaderCasts)
	if err := os.WriteFile(load, []byte(cmds), 0o600); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	cmd := exec.Command(bin, load)
	out, err := cmd.CombinedOutput()
	d := time.Since(start)
	if err != nil {
		b.Fatalf("pgloader: %v\n%s", err, out)
	}
	pool, err := pgxpool.New(ctx, target)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	var tables []string
	rows, err := pool.Query(ctx, `SELECT format('%I.%I', table_schema, table_name) FROM information_schema.tables
		WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')`)
	if err != nil {
		b.Fatal(err)
	}
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			b.Fatal(err)
		}
		tables = append(tables, t)
	}
	if rows.Err() != nil {
		b.Fatal(rows.Err())
	}
	var loaded int64
	for _, t := range tables {
		var n int64
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM "+t).Scan(&n); err != nil {
			b.Fatal(err)
		}
		loaded += n
	}
	benchLog("pgloader run: %v, %d rows loaded, CPU %.1fs, peak RSS %d MB", d.Round(time.Millisecond), loaded,
		(cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds(), maxRSS(cmd.ProcessState)>>20)
	return d, loaded
}

// benchCopy loads the CSV exports with one psql \copy per table into pre-created tables of
// text columns: no conversion, no mapping, no check; then runs after (index builds), timed with
// the copies.
func benchCopy(b *testing.B, bin, csvDir string, tables []*dbcopytest.Table, after []string) time.Duration {
	target := testenv.NewDatabase(b)
	var ddl, cmds []string
	for _, t := range tables {
		cols := make([]string, len(t.Columns))
		for i, c := range t.Columns {
			cols[i] = spec.QuoteIdent(c) + " text"
		}
		ddl = append(ddl, fmt.Sprintf("CREATE TABLE %s (%s);", spec.QuoteIdent(t.Name), strings.Join(cols, ", ")))
		cmds = append(cmds, "-c", fmt.Sprintf(`\copy %s FROM '%s' CSV`, spec.QuoteIdent(t.Name), filepath.Join(csvDir, t.Name+".csv")))
	}
	for _, q := range after {
		cmds = append(cmds, "-c", q)
	}
	if out, err := exec.Command(bin, target, "-v", "ON_ERROR_STOP=1", "-c", strings.Join(ddl, "\n")).CombinedOutput(); err != nil {
		b.Fatalf("psql: %v\n%s", err, out)
	}
	pgc := startPGCPU(context.Background(), b, target)
	start := time.Now()
	cmd := exec.Command(bin, append([]string{target, "-v", "ON_ERROR_STOP=1"}, cmds...)...)
	out, err := cmd.CombinedOutput()
	d := time.Since(start)
	pgCPU := pgc.end()
	if err != nil {
		b.Fatalf("psql \\copy: %v\n%s", err, out)
	}
	benchLog("psql \\copy run: %v, psql CPU %.1fs, PostgreSQL CPU %.1fs", d.Round(time.Millisecond),
		(cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds(), pgCPU.Seconds())
	return d
}

// exportCSV writes each source table as CSV, its values as SQLite renders them as text
// (invalid UTF-8 made valid: a text column cannot hold it).
func exportCSV(b *testing.B, src, dir string, tables []*dbcopytest.Table) {
	b.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+src+"?mode=ro")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	for _, t := range tables {
		f, err := os.Create(filepath.Join(dir, t.Name+".csv"))
		if err != nil {
			b.Fatal(err)
		}
		w := csv.NewWriter(f)
		cols := make([]string, len(t.Columns))
		for i, c := range t.Columns {
			cols[i] = `CAST("` + c + `" AS TEXT)`
		}
		rows, err := db.Query(fmt.Sprintf(`SELECT %s FROM "%s"`, strings.Join(cols, ", "), t.Name))
		if err != nil {
			b.Fatal(err)
		}
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		rec := make([]string, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				b.Fatal(err)
			}
			for i, v := range vals {
				rec[i] = strings.ToValidUTF8(strings.ReplaceAll(v.String, "\x00", ""), "?")
			}
			if err := w.Write(rec); err != nil {
				b.Fatal(err)
			}
		}
		rows.Close()
		w.Flush()
		if err := errorsJoin(rows.Err(), w.Error(), f.Close()); err != nil {
			b.Fatal(err)
		}
	}
}

// maxRSS is an exited process's peak RSS in bytes.
func maxRSS(ps *os.ProcessState) int64 {
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss << 10
	}
	return 0
}

func errorsJoin(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func benchLog(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "dbmigrate bench: "+format+"\n", a...)
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func benchMedian(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func fmtFloats(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.FormatFloat(x, 'f', 0, 64)
		if x < 100 {
			parts[i] = strconv.FormatFloat(x, 'f', 1, 64)
		}
	}
	return strings.Join(parts, ", ")
}

// uptime is the machine's load average, as uptime(1) prints it.
func uptime() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "load average unknown"
	}
	f := strings.Fields(string(b))
	return "load average: " + strings.Join(f[:3], ", ")
}

// pidPeakRSS is a process's VmHWM in bytes.
func pidPeakRSS(pid int) int64 { return pidStatusBytes(pid, "VmHWM:") }

// pidStatusBytes is a kB field of a process's /proc status (VmHWM:, VmRSS:) in bytes.
func pidStatusBytes(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

type rssPeak struct {
	first, rss int64 // the first sample (the idle worker's), the highest
	at         time.Duration
}

// sampleRSS reads a process's RSS every 100 ms until the returned function is called, which
// returns the highest seen and when (from the first sample, about the run's start): the phase
// of the timeline (benchTimeline) the peak belongs to.
func sampleRSS(pid int) func() rssPeak {
	stop, done := make(chan struct{}), make(chan rssPeak)
	go func() {
		start, peak := time.Now(), rssPeak{first: pidStatusBytes(pid, "VmRSS:")}
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if r := pidStatusBytes(pid, "VmRSS:"); r > peak.rss {
				peak.rss, peak.at = r, time.Since(start)
			}
			select {
			case <-stop:
				done <- peak
				return
			case <-t.C:
			}
		}
	}()
	return func() rssPeak { close(stop); return <-done }
}

// pidCPU is a process's user + system CPU time (from /proc/<pid>/stat, 10 ms ticks).
func pidCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// benchTimeline prints when each entity loaded and validated, in seconds from the run's start:
// load (first batch start to the entity's completion, its index and foreign key builds
// included), its batches (to the last batch's commit; the rest of the load is Finalize's index
// and foreign key builds), validation (first check start to last check end), and the run's
// end, so the waits between phases show; with each phase the PostgreSQL CPU spent meanwhile
// (pgc's samples, every backend of the run's databases, so overlapping entities share it).
func benchTimeline(ctx context.Context, b *testing.B, pool *pgxpool.Pool, migrationID string, start time.Time, d time.Duration,
	pgc *pgCPU) {
	rows, err := pool.Query(ctx, `SELECT s.entity_name, s.records_processed,
		coalesce(extract(epoch FROM s.started_at - $2), 0)::float8, coalesce(extract(epoch FROM s.completed_at - $2), 0)::float8,
		(SELECT count(*) FROM cutover.batch_processing_status b WHERE b.entity_status_id = s.id),
		coalesce((SELECT extract(epoch FROM max(b.completed_at) - $2) FROM cutover.batch_processing_status b
			WHERE b.entity_status_id = s.id), 0)::float8,
		coalesce((SELECT extract(epoch FROM min(v.executed_at - make_interval(secs => v.execution_duration_ms / 1000.0)) - $2)
			FROM cutover.data_validation_results v WHERE v.migration_id = $1 AND v.entity_name = s.entity_name), 0)::float8,
		coalesce((SELECT extract(epoch FROM max(v.executed_at) - $2)
			FROM cutover.data_validation_results v WHERE v.migration_id = $1 AND v.entity_name = s.entity_name), 0)::float8
		FROM cutover.entity_migration_status s WHERE s.migration_id = $1 ORDER BY s.started_at`, migrationID, start)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	cpu := func(from, to float64) float64 {
		at := func(x float64) time.Time { return start.Add(time.Duration(x * float64(time.Second))) }
		return pgc.between(at(from), at(to)).Seconds()
	}
	var parts []string
	for rows.Next() {
		var name string
		var n int64
		var ls, le, lb, vs, ve float64
		var batches int64
		if err := rows.Scan(&name, &n, &ls, &le, &batches, &lb, &vs, &ve); err != nil {
			b.Fatal(err)
		}
		parts = append(parts, fmt.Sprintf("%s %d rows load %.1f–%.1f (%d batches to %.1f, PostgreSQL CPU %.1fs; "+
			"finalize PostgreSQL CPU %.1fs) validate %.1f–%.1f (PostgreSQL CPU %.1fs)",
			name, n, ls, le, batches, lb, cpu(ls, lb), cpu(lb, le), vs, ve, cpu(vs, ve)))
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	benchLog("cutover timeline (s from start): %s; end %.1f", strings.Join(parts, "; "), d.Seconds())
}

// reportCPU reports the product runs' median CPU seconds per process kind (worker, postgres):
// what a run costs apart from the machine's other work.
func reportCPU(b *testing.B, cpus map[string][]float64) {
	for _, k := range []string{"worker", "postgres"} {
		benchLog("cutover %s CPU s: %s, median %.1f", k, fmtFloats(cpus[k]), benchMedian(cpus[k]))
		b.ReportMetric(benchMedian(cpus[k]), k+"_cpu_s")
	}
}
