package dbcopy

import (
	"context"
	"database/sql"
	"encoding/csv"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cutover/cutover/internal/testing/cpuclock"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// benchRows is 1M; CUTOVER_BENCH_ROWS overrides it for quick profiling.
var benchRows = func() int {
	if n, err := strconv.Atoi(os.Getenv("CUTOVER_BENCH_ROWS")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}()

// benchDB writes the benchmark's legacy table: 1M rows, 8 columns (~150 bytes a row).
func benchDB(b *testing.B, dir string) string {
	b.Helper()
	path := filepath.Join(dir, "bench.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(off)&_pragma=synchronous(off)")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, email TEXT, visits INTEGER,
		score REAL, created_at TEXT, bio TEXT, active INTEGER)`); err != nil {
		b.Fatal(err)
	}
	tx, err := db.Begin()
	if err != nil {
		b.Fatal(err)
	}
	st, err := tx.Prepare(`INSERT INTO users VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		b.Fatal(err)
	}
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 1; i <= benchRows; i++ {
		if _, err := st.Exec(i, fmt.Sprintf("User %d", i), fmt.Sprintf("user%d@example.com", i), i%1000, float64(i)/7,
			base.Add(time.Duration(i)*time.Minute).Format("2006-01-02 15:04:05"),
			"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor "+strconv.Itoa(i), i%2); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	return path
}

const benchSpec = `name: bench
batch_size: %d
sources:
  legacy: {driver: sqlite, path: %q}
target:
  create_tables: true
entities:
  - name: users
    source_table: users
    target_table: users
    key: {source: id, uuid: %s}
    columns:
      - {source: id, target: legacy_id, type: bigint}
      - {source: name, type: text}
      - {source: email, type: text}
      - {source: visits, type: bigint}
      - {source: score, type: double precision}
      - {source: created_at, type: timestamptz}
      - {source: bio, type: text}
      - {source: active, type: boolean}
`

// peakRSS returns the process's peak resident set (VmHWM) in bytes; resetPeakRSS restarts it.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkSQLiteToPostgres1M copies a generated 1M-row SQLite table into PostgreSQL with the
// engine (UUID mapping rows, checkpoints and batch records included; once with the default
// UUIDv5 keys, once with ordered keys), with pgloader and with a raw psql \copy of the same rows
// as CSV, in three rounds where the tools take turns, and reports the medians (peak RSS: the
// highest). Figures are printed, never asserted. Knobs for profiling: CUTOVER_BENCH_ROWS,
// _RUNS, _BATCH, _WRITERS, _MODES (v5,ordered), _ONLY_CUTOVER.
func BenchmarkSQLiteToPostgres1M(b *testing.B) {
	dir := b.TempDir()
	path := benchDB(b, dir)
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	mb := float64(st.Size()) / (1 << 20)
	runs := 3
	if v, err := strconv.Atoi(os.Getenv("CUTOVER_BENCH_RUNS")); err == nil && v > 0 {
		runs = v
	}
	batch := 20000
	if v := os.Getenv("CUTOVER_BENCH_BATCH"); v != "" {
		batch, _ = strconv.Atoi(v)
	}
	ctx := context.Background()
	modes := []string{spec.UUIDv5, spec.UUIDOrdered}
	if v := os.Getenv("CUTOVER_BENCH_MODES"); v != "" { // e.g. "ordered", to profile one mode
		modes = strings.Split(v, ",")
	}
	writers, _ := strconv.Atoi(os.Getenv("CUTOVER_BENCH_WRITERS"))
	only := os.Getenv("CUTOVER_BENCH_ONLY_CUTOVER") != ""
	pgloader, _ := exec.LookPath("pgloader")
	psql, _ := exec.LookPath("psql")
	if pgloader == "" && !only {
		b.Logf("pgloader not installed: no comparison (Debian package pgloader)")
	}
	csvPath := filepath.Join(dir, "users.csv")
	if psql != "" && !only {
		writeCSV(b, path, csvPath)
	}

	// The tools take turns, round after round, so a machine whose load drifts (other work,
	// checkpoints) weighs on each of them alike; the medians of the rounds are reported.
	rates, rss := map[string][]float64{}, map[string][]float64{}
	for round := range runs {
		for _, mode := range modes {
			name := "cutover"
			if mode == spec.UUIDOrdered {
				name = "cutover_ordered"
			}
			rate, peak := benchCutover(ctx, b, path, batch, writers, mode)
			rates[name] = append(rates[name], rate)
			rss[name] = append(rss[name], peak)
		}
		if only {
			continue
		}
		if pgloader != "" {
			rates["pgloader"] = append(rates["pgloader"], benchPgloader(b, pgloader, path))
		}
		if psql != "" {
			rates["copy"] = append(rates["copy"], benchCopy(b, psql, csvPath))
		}
		benchf("round %d of %d done", round+1, runs)
	}
	medians := map[string]float64{}
	for name, rs := range rates {
		medians[name] = median(rs)
		b.ReportMetric(medians[name], name+"_rows/s")
		b.ReportMetric(medians[name]/float64(benchRows)*mb, name+"_MB/s")
	}
	for name, peaks := range rss {
		b.ReportMetric(slices.Max(peaks), name+"_peak_RSS_MB") // the highest of the runs
	}
	for _, base := range []string{"pgloader", "copy"} {
		if medians[base] == 0 {
			continue
		}
		for _, name := range []string{"cutover", "cutover_ordered"} {
			if medians[name] > 0 {
				b.ReportMetric(medians[name]/medians[base], name+"_vs_"+base)
			}
		}
	}
}

// benchf prints a line of the benchmark's progress on stderr: the testing package keeps only
// ten lines of a benchmark's log, and every run's figures matter when the machine is shared.
func benchf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "dbcopy bench: "+format+"\n", a...)
}

// benchCutover copies the table once with the engine (Open, Prepare with create_tables, every
// batch) into a fresh database and returns rows/s and the peak RSS in MB.
func benchCutover(ctx context.Context, b *testing.B, path string, batch, writers int, mode string) (float64, float64) {
	target := testenv.NewDatabase(b)
	sp, err := spec.Parse(fmt.Appendf(nil, benchSpec, batch, path, mode))
	if err != nil {
		b.Fatal(err)
	}
	// Return the generator's garbage to the OS first: the peak is the copy's own.
	debug.FreeOSMemory()
	resetPeakRSS()
	cpu0 := cpuclock.Self()
	start := time.Now()
	e, err := Open(ctx, sp, Options{MigrationID: uuid.New(), TargetURL: target, Writers: writers})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	if err := e.Prepare(ctx); err != nil {
		b.Fatal(err)
	}
	res, err := e.CopyBatches(ctx, dbmigrateapi.BatchRequest{Entity: "users"}, 0, nil)
	if err != nil {
		b.Fatalf("err: want nil; copy: %+v %v", res, err)
	}
	if !res.Done {
		b.Fatalf("res.Done is false; copy: %+v %v", res, err)
	}
	if res.Loaded != int64(benchRows) {
		b.Fatalf("res.Loaded = %v, want %v (int64(benchRows)); copy: %+v %v", res.Loaded, int64(benchRows), res, err)
	}
	d := time.Since(start)
	goCPU := cpuclock.Self() - cpu0
	pgCPU := cpuclock.Backends(ctx, e.Pool(), "cutover-dbcopy")
	var maps int
	_ = e.Pool().QueryRow(ctx, `SELECT count(*) FROM migration_mappings`).Scan(&maps)
	if maps != benchRows {
		b.Fatalf("%d mappings", maps)
	}
	rate, peak := float64(benchRows)/d.Seconds(), float64(peakRSS())/(1<<20)
	benchf("cutover (uuid %s) run: %v, %.0f rows/s, %d batches, peak RSS %.0f MB, CPU: Go %.1fs, PostgreSQL %.1fs",
		mode, d.Round(time.Millisecond), rate, res.Batches, peak, goCPU.Seconds(), pgCPU.Seconds())
	return rate, peak
}

// benchPgloader loads the SQLite file with pgloader into a fresh database; rows/s.
func benchPgloader(b *testing.B, bin, path string) float64 {
	target := testenv.NewDatabase(b)
	start := time.Now()
	cmd := exec.Command(bin, "--on-error-stop", "sqlite://"+path, strings.Replace(target, "postgres://", "pgsql://", 1))
	out, err := cmd.CombinedOutput()
	d := time.Since(start)
	if err != nil {
		b.Fatalf("pgloader: %v\n%s", err, out)
	}
	rate := float64(benchRows) / d.Seconds()
	benchf("pgloader run: %v, %.0f rows/s, CPU: pgloader %.1fs", d.Round(time.Millisecond), rate,
		(cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds())
	return rate
}

// benchCopy loads the CSV export with psql \copy into a fresh table; rows/s.
func benchCopy(b *testing.B, bin, csvPath string) float64 {
	target := testenv.NewDatabase(b)
	if out, err := exec.Command(bin, target, "-v", "ON_ERROR_STOP=1", "-c", `CREATE TABLE users (id bigint PRIMARY KEY, name text,
		email text, visits bigint, score double precision, created_at timestamptz, bio text, active boolean)`).CombinedOutput(); err != nil {
		b.Fatalf("psql: %v\n%s", err, out)
	}
	start := time.Now()
	// The same session then reads its server process's CPU time (superuser pg_read_file).
	cmd := exec.Command(bin, target, "-At", "-v", "ON_ERROR_STOP=1", "-c", fmt.Sprintf(`\copy users FROM '%s' CSV`, csvPath),
		"-c", `SELECT pg_read_file('/proc/self/stat')`)
	out, err := cmd.CombinedOutput()
	d := time.Since(start)
	if err != nil {
		b.Fatalf("psql \\copy: %v\n%s", err, out)
	}
	rate := float64(benchRows) / d.Seconds()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	benchf("psql \\copy run: %v, %.0f rows/s, CPU: psql %.1fs, PostgreSQL %.1fs", d.Round(time.Millisecond), rate,
		(cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds(), cpuclock.Stat(lines[len(lines)-1]).Seconds())
	return rate
}

// writeCSV exports the legacy table with the values the engine would load (booleans as t/f,
// timestamps as UTC) so \copy does the same inserts minus the transformation and the ledger.
func writeCSV(b *testing.B, dbPath, csvPath string) {
	b.Helper()
	db, err := sql.Open("sqlite", "file:"+dbPath+"?mode=ro")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	f, err := os.Create(csvPath)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	w := csv.NewWriter(f)
	rows, err := db.Query(`SELECT id, name, email, visits, score, created_at || '+00', bio, CASE active WHEN 1 THEN 't' ELSE 'f' END FROM users ORDER BY id`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	rec := make([]string, 8)
	ptrs := make([]any, 8)
	for i := range rec {
		ptrs[i] = &rec[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			b.Fatal(err)
		}
		if err := w.Write(rec); err != nil {
			b.Fatal(err)
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		b.Fatal(err)
	}
}
