package dbcopy

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// BenchmarkValidateClinic loads dbcopytest's clinic chain once (in process) and then times the
// validation of every entity (all its checks, as the workflow runs them after the load), b.N
// times. Knob: CUTOVER_BENCH_CLINIC_SCALE (65 ≈ 200K rows). Figures are printed, never asserted,
// beyond the validation passing: rows/s, and the CPU seconds this process (the engine: reading
// the source, comparing) and the target database's backends spent validating, which a loaded
// machine changes far less than the elapsed time.
func BenchmarkValidateClinic(b *testing.B) {
	ctx := context.Background()
	sp, rows := clinicBenchSpec(b)
	e, err := Open(ctx, sp, Options{MigrationID: newID(), TargetURL: testenv.NewDatabase(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	if err := e.Prepare(ctx); err != nil {
		b.Fatal(err)
	}
	order, _ := sp.Order()
	for _, name := range order {
		if _, err := e.CopyBatches(ctx, dbmigrateapi.BatchRequest{Entity: name}, 0, nil); err != nil {
			b.Fatal(err)
		}
		if err := e.Finalize(ctx, name); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		start, self, pg := time.Now(), selfCPU(), sampleBackendCPU(ctx, b, e)
		for _, name := range order {
			vs, err := e.Validate(ctx, name)
			if err != nil {
				b.Fatal(err)
			}
			for _, v := range vs {
				if v.Status == model.ValidationFailed {
					b.Fatalf("%s: %s failed: %s", name, v.ValidationType, v.IssueDetails)
				}
			}
		}
		b.ReportMetric(float64(rows)/time.Since(start).Seconds(), "rows/s")
		b.ReportMetric((selfCPU() - self).Seconds(), "worker_CPU_s")
		pgCPU := pg()
		b.ReportMetric(pgCPU.Seconds(), "PostgreSQL_CPU_s")
	}
}

// selfCPU is this process's CPU time (user and system) so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// sampleBackendCPU samples the CPU time of the target database's backends every 100 ms until
// the returned function is called, which returns what they spent since the call (a backend
// that ended in between counts but for its last 100 ms).
func sampleBackendCPU(ctx context.Context, b *testing.B, e *Engine) func() time.Duration {
	base := backendCPU(ctx, b, e)
	last := map[int32]time.Duration{}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			for pid, t := range backendCPU(ctx, b, e) {
				last[pid] = max(last[pid], t)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	return func() time.Duration {
		close(stop)
		<-done
		var total time.Duration
		for pid, t := range last {
			total += t - base[pid]
		}
		return total
	}
}

// backendCPU is the CPU time so far of each PostgreSQL backend serving the engine's target
// database (the server runs on this machine, its processes readable under /proc).
func backendCPU(ctx context.Context, b *testing.B, e *Engine) map[int32]time.Duration {
	rows, err := e.Pool().Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)
	if err != nil {
		return nil
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil
	}
	out := map[int32]time.Duration{}
	for _, pid := range pids {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// The fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
		f := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+1:]))
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		out[pid] = time.Duration(u+s) * time.Second / 100 // clock ticks (USER_HZ, 100 on Linux)
	}
	return out
}

// clinicBenchSpec writes dbcopytest's clinic chain at CUTOVER_BENCH_CLINIC_SCALE (default 65,
// about 200K rows) to a SQLite file and returns its spec (batches of 10,000) and its rows.
func clinicBenchSpec(b *testing.B) (*spec.Spec, int) {
	b.Helper()
	scale := 65
	if v, err := strconv.Atoi(os.Getenv("CUTOVER_BENCH_CLINIC_SCALE")); err == nil && v > 0 {
		scale = v
	}
	clinic := dbcopytest.NewClinic(scale, false)
	src := filepath.Join(b.TempDir(), "legacy.db")
	if err := dbcopytest.WriteSQLite(context.Background(), src, clinic.Tables); err != nil {
		b.Fatal(err)
	}
	sp, err := spec.Parse([]byte(dbcopytest.ClinicSpec("sqlite", src, 10000)))
	if err != nil {
		b.Fatal(err)
	}
	return sp, clinic.Rows()
}
