package faults_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cutover/cutover/activities/dbcopy"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// loadRows is the large table of the load test: CUTOVER_LOAD_ROWS, else def (the small table is
// a tenth of it).
func loadRows(t testing.TB, def int) int {
	if v := os.Getenv("CUTOVER_LOAD_ROWS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("err = %v, want nil; CUTOVER_LOAD_ROWS=%q: want an integer of at least 10000", err, v)
		}
		if n < 10_000 {
			t.Fatalf("n = %v, want >= 10_000; CUTOVER_LOAD_ROWS=%q: want an integer of at least 10000", n, v)
		}
		return n
	}
	return def
}

// TestFaultLoadRSSFlat migrates a narrow table of N rows and one of 10×N through the worker
// process (the whole path: workflows, heartbeats, COPY, mappings, validation) and compares the
// worker's peak resident set (VmHWM): streaming in batches must keep it flat. In CI 10×N is
// 400K rows (well under a minute); CUTOVER_LOAD_ROWS=10000000 runs the 10M against 1M
// (about ten minutes).
func TestFaultLoadRSSFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("copies 440K rows")
	}
	t.Parallel()
	large := loadRows(t, 400_000)
	srv := testenv.SharedTemporal(t)
	testenv.WorkerBinary(t) // compiled before anything is measured
	c := srv.Client(t)
	peak := map[int]int64{}
	for _, n := range []int{large / 10, large} {
		src := sqliteWorkload(t, t.TempDir(), 1000, n, 5000)
		dbURL := testenv.NewDatabase(t)
		prepareTarget(t, dbURL)
		pool := newPool(t, dbURL)
		queue := fmt.Sprintf("dbfault-load-%d-%d", n, time.Now().UnixNano())
		w := startWorker(t, srv.Address(), dbURL, queue)
		start := time.Now()
		in := src.input(t, dbmigrateapi.Config{HeartbeatTimeout: 30 * time.Second})
		awaitResult(t, startMigration(t, c, queue, in), 5*time.Minute+time.Duration(n/5000)*time.Second)
		took := time.Since(start)
		peak[n] = testenv.PeakRSS(t, w.Pid())
		w.Stop(syscall.SIGTERM)
		found := assertExactlyOnce(t, pool, src, in.MigrationID)
		t.Logf("%d rows: %s (%.0f rows/s), worker peak RSS (VmHWM) %.1f MiB; rows missing %d, duplicated %d",
			src.rows(), took.Round(time.Millisecond), float64(src.rows())/took.Seconds(), float64(peak[n])/(1<<20), found.missing, found.duplicated)
	}
	small := peak[large/10]
	growth := peak[large] - small
	t.Logf("10x the rows: peak RSS %+.1f MiB (%.2fx)", float64(growth)/(1<<20), float64(peak[large])/float64(small))
	// Holding the rows would cost well over 100 bytes a row (over 50 MiB for the 360K more);
	// GC and connection pools vary by a few MiB.
	if limit := small/4 + 16<<20; growth > limit {
		t.Errorf("peak RSS grew by %.1f MiB for 10x the rows (limit %.1f MiB): not flat", float64(growth)/(1<<20), float64(limit)/(1<<20))
	}
}

// BenchmarkDBLoadMemory runs the copy engine in this process over CUTOVER_LOAD_ROWS narrow
// rows (default 10M) from SQLite into PostgreSQL and reports throughput, peak RSS and peak Go
// heap. With -memprofile it yields the allocation profile:
//
//	go test -run '^$' -bench DBLoadMemory -benchtime 1x -memprofile mem.out ./workflows/dbmigrate/faults/
//	go tool pprof -top -sample_index=alloc_space mem.out
func BenchmarkDBLoadMemory(b *testing.B) {
	n := loadRows(b, 10_000_000)
	ctx := context.Background()
	genStart := time.Now()
	src := sqliteWorkload(b, b.TempDir(), 1000, n, 5000)
	b.Logf("generated %d rows in %s", src.rows(), time.Since(genStart).Round(time.Millisecond))
	for b.Loop() {
		dbURL := testenv.NewDatabase(b)
		prepareTarget(b, dbURL)
		sp, err := spec.Parse(fmt.Appendf(nil, specYAML, src.batch, src.source))
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) // restart VmHWM from here
		stop := sampleHeap()
		start := time.Now()
		e, err := dbcopy.Open(ctx, sp, dbcopy.Options{MigrationID: uuid.New(), TargetURL: dbURL})
		if err != nil {
			b.Fatal(err)
		}
		if err := e.Prepare(ctx); err != nil {
			b.Fatal(err)
		}
		var rows int64
		for _, ent := range []string{"owners", "events"} {
			res, err := e.CopyBatches(ctx, dbmigrateapi.BatchRequest{Entity: ent}, 0, nil)
			if err != nil || !res.Done {
				b.Fatalf("copy %s: %+v, %v", ent, res, err)
			}
			rows += res.Loaded
		}
		took := time.Since(start)
		e.Close()
		heap := stop()
		if rows != src.rows() {
			b.Fatalf("%d rows loaded, want %d", rows, src.rows())
		}
		rss := testenv.PeakRSS(b, os.Getpid())
		b.ReportMetric(float64(rows)/took.Seconds(), "rows/s")
		b.ReportMetric(float64(rss)/(1<<20), "peak_RSS_MiB")
		b.ReportMetric(float64(heap)/(1<<20), "peak_heap_MiB")
		b.Logf("%d rows in %s: %.0f rows/s, peak RSS %.1f MiB, peak heap %.1f MiB", rows, took.Round(time.Millisecond),
			float64(rows)/took.Seconds(), float64(rss)/(1<<20), float64(heap)/(1<<20))
	}
}

// sampleHeap records the Go heap's peak (objects + unused spans) every 50 ms until stopped.
func sampleHeap() (stop func() uint64) {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"}}
	var peak uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(s)
			peak = max(peak, s[0].Value.Uint64()+s[1].Value.Uint64())
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		wg.Wait()
		return peak
	}
}
