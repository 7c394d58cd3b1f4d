package faults_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/testing/testenv"
)

// TestFaultWorkerSIGKILLDuringEntityLoad runs one small migration per seed (200 owners, 8,000
// events in batches of 100, through a worker that is its own process) and SIGKILLs the worker
// once or twice at seeded random points of the load — a random count of committed rows plus
// a random few milliseconds, so kills land inside batch transactions, between batches, between
// activities and across continue-as-new — restarting it each time. Every run must complete,
// validate, and hold every source row exactly once.
func TestFaultWorkerSIGKILLDuringEntityLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the worker and runs ten migrations")
	}
	t.Parallel()
	srv := testenv.SharedTemporal(t)
	testenv.WorkerBinary(t) // compiled before anything is measured
	src := sqliteWorkload(t, t.TempDir(), 200, 8_000, 100)
	c := srv.Client(t)

	var kills, midLoad atomic.Int64
	var total tally
	var mu sync.Mutex
	sem := make(chan struct{}, 5) // five migrations at once: most of a run is waiting on timeouts
	var wg sync.WaitGroup
	runs := testenv.Seeds(t, 10)
	for _, seed := range runs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
				r := rand.New(rand.NewPCG(seed, 0x5eed))
				dbURL := testenv.NewDatabase(t)
				prepareTarget(t, dbURL)
				pool := newPool(t, dbURL)
				queue := fmt.Sprintf("dbfault-kill-%d-%d", seed, time.Now().UnixNano())
				w := startWorker(t, srv.Address(), dbURL, queue)
				in := src.input(t, fastConfig())
				run := startMigration(t, c, queue, in)
				began := time.Now()

				n := 1 + r.IntN(2)
				at := 0.0
				for k := range n {
					// Each kill after the previous one, somewhere in the remaining load.
					at += (0.9 - at) * (0.1 + 0.8*r.Float64()) / float64(n-k)
					threshold := int64(at * float64(src.rows()))
					jitter := time.Duration(r.IntN(40)) * time.Millisecond
					ctx := context.Background()
					testenv.WaitFor(t, fmt.Sprintf("%d rows committed", threshold), 3*time.Minute, func() bool {
						return processed(ctx, pool, in.MigrationID) >= threshold
					})
					time.Sleep(jitter)
					got := processed(ctx, pool, in.MigrationID)
					w.KillAndRestart()
					kills.Add(1)
					if got < src.rows() {
						midLoad.Add(1)
					}
					t.Logf("seed %d: SIGKILL %d/%d at %d/%d committed rows (threshold %d + %s), %s into the run", seed, k+1, n, got, src.rows(),
						threshold, jitter, time.Since(began).Round(time.Millisecond))
				}
				lastKill := time.Now()
				awaitResult(t, run, 4*time.Minute)
				t.Logf("seed %d: completed %s after the last kill", seed, time.Since(lastKill).Round(time.Millisecond))
				found := assertExactlyOnce(t, pool, src, in.MigrationID)
				mu.Lock()
				total.add(found)
				mu.Unlock()
			})
		}()
	}
	wg.Wait()
	t.Logf("SIGKILL faults: %d kills (%d mid-load) over %d migrations; rows missing %d, duplicated %d",
		kills.Load(), midLoad.Load(), len(runs), total.missing, total.duplicated)
	if midLoad.Load() == 0 {
		t.Error("no kill landed while rows were still being copied")
	}
}
