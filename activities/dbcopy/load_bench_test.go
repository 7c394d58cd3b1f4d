package dbcopy

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// BenchmarkLoadClinic loads dbcopytest's clinic chain (in process, no workflow) into a fresh
// database b.N times: every entity's batches in dependency order, then its Finalize, as the
// entity workflow runs them. It is the product's load path without the orchestration around
// it, for profiling the per-row and per-batch costs (-cpuprofile). Knob:
// CUTOVER_BENCH_CLINIC_SCALE (65 ≈ 200K rows). Figures are printed, never asserted: rows/s,
// and the CPU seconds this process (reading, transforming, encoding) and the target database's
// backends spent. CUTOVER_BENCH_PG_STATEMENTS=1 loads into a private cluster with
// pg_stat_statements instead of the shared server and prints the statements' times.
func BenchmarkLoadClinic(b *testing.B) {
	ctx := context.Background()
	sp, rows := clinicBenchSpec(b)
	order, _ := sp.Order()
	newDB := func() string { return testenv.NewDatabase(b) }
	var stats *pgxpool.Pool
	if os.Getenv("CUTOVER_BENCH_PG_STATEMENTS") != "" {
		pg := testenv.StartPostgresWith(b, "shared_preload_libraries=pg_stat_statements", "pg_stat_statements.track=all")
		var err error
		if stats, err = pgxpool.New(ctx, pg.URL()); err != nil {
			b.Fatal(err)
		}
		defer stats.Close()
		if _, err := stats.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`); err != nil {
			b.Fatal(err)
		}
		n := 0
		newDB = func() string {
			n++
			return pg.DatabaseURL(fmt.Sprintf("load%d", n))
		}
		defer printStatements(ctx, b, stats)
	}
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		e, err := Open(ctx, sp, Options{MigrationID: newID(), TargetURL: newDB()})
		if err != nil {
			b.Fatal(err)
		}
		if err := e.Prepare(ctx); err != nil {
			b.Fatal(err)
		}
		if stats != nil {
			if _, err := stats.Exec(ctx, `SELECT pg_stat_statements_reset()`); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		start, self, pg := time.Now(), selfCPU(), sampleBackendCPU(ctx, b, e)
		for _, name := range order {
			if _, err := e.CopyBatches(ctx, dbmigrateapi.BatchRequest{Entity: name}, 0, nil); err != nil {
				b.Fatal(err)
			}
			if err := e.Finalize(ctx, name); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(rows)/time.Since(start).Seconds(), "rows/s")
		b.ReportMetric((selfCPU() - self).Seconds(), "worker_CPU_s")
		b.ReportMetric(pg().Seconds(), "PostgreSQL_CPU_s")
		b.StopTimer()
		e.Close()
		b.StartTimer()
	}
}

// printStatements prints the statements pg_stat_statements saw, by total time.
func printStatements(ctx context.Context, b *testing.B, pool *pgxpool.Pool) {
	rows, err := pool.Query(ctx, `SELECT calls, total_exec_time, rows, left(regexp_replace(query, '\s+', ' ', 'g'), 160)
		FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 60`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var calls, n int64
		var ms float64
		var q string
		if err := rows.Scan(&calls, &ms, &n, &q); err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(os.Stderr, "%8.0f ms %6d calls %8d rows  %s\n", ms, calls, n, q)
	}
}
