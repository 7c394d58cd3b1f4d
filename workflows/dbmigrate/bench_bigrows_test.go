package dbmigrate_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
	"github.com/cutover/cutover/examples/mailsystem"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// BenchmarkBigRows runs the mail system's emails (examples/mailsystem/spec.yaml: partitioned by month, its
// five secondary indexes with the full-text GIN one, message_id unique across partitions) with
// multi-KB rows through the whole product (a worker process, the Temporal dev server, the
// orchestration and its entity child, validation included), beside psql \copy of the same rows
// as CSV into a pre-created table of text columns, its key and indexes built after (the limit).
// Here the limit is bytes, not rows: the figure is MB/s of source payload (the sum of every
// value's length).
// The tools take turns, round after round; medians are reported. Knobs:
// CUTOVER_BENCH_BIGROWS_EMAILS (20000), CUTOVER_BENCH_BIGROWS_BODY (bytes of padding in body and
// html each, 1800: about 5.4 KB a row with raw_email, as the mail system's production 3.3 GB over 610K rows),
// CUTOVER_BENCH_RUNS (3), CUTOVER_BENCH_ONLY_CUTOVER, CUTOVER_BENCH_PPROF (the worker's CPU
// profile of the last round).
func BenchmarkBigRows(b *testing.B) {
	emails := envInt("CUTOVER_BENCH_BIGROWS_EMAILS", 20000)
	body := envInt("CUTOVER_BENCH_BIGROWS_BODY", 1800)
	runs := envInt("CUTOVER_BENCH_RUNS", 3)
	only := os.Getenv("CUTOVER_BENCH_ONLY_CUTOVER") != ""
	dir := b.TempDir()
	ctx := context.Background()

	data, err := mailsystem.GenerateSized(ctx, dir, mailsystem.Sizes{Accounts: 1000, Sessions: 1, Emails: emails, BodyBytes: body})
	if err != nil {
		b.Fatal(err)
	}
	sp, err := spec.Load(mailsystem.SpecPath())
	if err != nil {
		b.Fatal(err)
	}
	sp.Sources = map[string]spec.Source{"emails": {Driver: "sqlite", Path: data.EmailsDB}}
	sp.Entities = slices.DeleteFunc(sp.Entities, func(e spec.Entity) bool { return e.Name != "emails" })
	if len(sp.Entities) != 1 {
		b.Fatalf("the mail system's spec has %d emails entities, want 1", len(sp.Entities))
	}
	cols, payload := sqliteColumns(b, data.EmailsDB, "emails")
	mb := float64(payload) / (1 << 20)
	benchLog("big rows: %d emails, %.1f MB of payload (%.0f bytes a row)", emails, mb, float64(payload)/float64(emails))

	bin := filepath.Join(dir, "cutover-worker")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/cutover/cutover/worker").CombinedOutput(); err != nil {
		b.Fatalf("build worker: %v\n%s", err, out)
	}
	srv := testenv.SharedTemporal(b)
	c := srv.Client(b)
	psql, _ := exec.LookPath("psql")
	tables := []*dbcopytest.Table{{Name: "emails", Columns: cols}}
	csvDir := filepath.Join(dir, "csv")
	if psql != "" && !only {
		exportCSV(b, data.EmailsDB, csvDir, tables)
	}

	rates, rss, cpus := map[string][]float64{}, []float64{}, map[string][]float64{}
	for round := range runs {
		benchLog("round %d of %d, %s", round+1, runs, uptime())
		prof := ""
		if round == runs-1 {
			prof = os.Getenv("CUTOVER_BENCH_PPROF")
		}
		r := benchProduct(ctx, b, c, srv, bin, sp, emails, prof)
		rates["cutover"] = append(rates["cutover"], mb/r.elapsed.Seconds())
		rss = append(rss, r.peakMB)
		cpus["worker"], cpus["postgres"] = append(cpus["worker"], r.workerCPU), append(cpus["postgres"], r.pgCPU)
		if psql != "" && !only {
			rates["copy"] = append(rates["copy"], mb/benchCopy(b, psql, csvDir, tables, bigRowIndexes).Seconds())
		}
	}
	benchLog("done, %s", uptime())
	med := map[string]float64{}
	for name, rs := range rates {
		med[name] = benchMedian(rs)
		b.ReportMetric(med[name], name+"_MB/s")
		benchLog("%s MB/s: %s, median %.1f", name, fmtFloats(rs), med[name])
	}
	if med["copy"] > 0 {
		b.ReportMetric(med["cutover"]/med["copy"], "cutover_vs_copy")
	}
	b.ReportMetric(slices.Max(rss), "worker_peak_RSS_MB")
	reportCPU(b, cpus)
}

// bigRowIndexes are the emails entity's key and indexes (examples/mailsystem/spec.yaml) on the
// \copy baseline's text table, built after its copy.
var bigRowIndexes = []string{
	`ALTER TABLE emails ADD PRIMARY KEY (id)`,
	`CREATE UNIQUE INDEX ON emails (message_id)`,
	`CREATE INDEX ON emails (to_address)`,
	`CREATE INDEX ON emails (from_address)`,
	`CREATE INDEX ON emails (created_at)`,
	`CREATE INDEX ON emails (starred) WHERE starred = '1'`,
	`CREATE INDEX ON emails USING gin (to_tsvector('english'::regconfig, coalesce(subject, '') || ' ' || coalesce(body, '')))`,
}

// sqliteColumns lists a SQLite table's columns and the bytes of all its values (each value's
// length as text or blob).
func sqliteColumns(b *testing.B, path, table string) ([]string, int64) {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT name FROM pragma_table_info(?) ORDER BY cid`, table)
	if err != nil {
		b.Fatal(err)
	}
	var cols, lens []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			b.Fatal(err)
		}
		cols = append(cols, n)
		lens = append(lens, fmt.Sprintf(`coalesce(length(CAST(%s AS BLOB)), 0)`, spec.QuoteIdent(n)))
	}
	if err := errorsJoin(rows.Err(), rows.Close()); err != nil {
		b.Fatal(err)
	}
	var payload int64
	if err := db.QueryRow(fmt.Sprintf(`SELECT coalesce(sum(%s), 0) FROM %s`, strings.Join(lens, " + "),
		spec.QuoteIdent(table))).Scan(&payload); err != nil {
		b.Fatal(err)
	}
	return cols, payload
}
