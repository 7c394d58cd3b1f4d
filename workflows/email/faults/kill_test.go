package faults_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/testenv"
	email "github.com/cutover/cutover/workflows/email"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// killer SIGKILLs a run's worker at seeded points and counts what it did.
type killer struct {
	t     *testing.T
	seed  uint64
	r     *rand.Rand
	w     *workerProc
	j     *job
	began time.Time

	kills, inside int // kills, and those that landed while the phase's work was unfinished
}

// atRows kills once the job's ledger holds base + frac*delta rows (APPENDs sent), plus a
// random few milliseconds, so the kill lands between batches or inside one; what if the copy
// finishes first is recorded.
func (k *killer) atRows(what string, base, delta int64) {
	k.t.Helper()
	ctx := context.Background()
	frac := 0.1 + 0.8*k.r.Float64()
	threshold := base + int64(frac*float64(delta))
	jitter := time.Duration(k.r.IntN(60)) * time.Millisecond
	testenv.WaitFor(k.t, fmt.Sprintf("%s: %d ledger rows", what, threshold), 3*time.Minute, func() bool {
		return k.j.ledgerRows(ctx) >= threshold
	})
	time.Sleep(jitter)
	sent, confirmed := k.j.ledgerRows(ctx), k.j.confirmedRows(ctx)
	k.w.KillAndRestart()
	k.kills++
	if confirmed < base+delta {
		k.inside++
	}
	k.t.Logf("seed %d: SIGKILL during %s with %d/%d messages sent, %d confirmed (threshold %d + %s), %s into the job", k.seed, what,
		sent, base+delta, confirmed, threshold, jitter, time.Since(k.began).Round(time.Millisecond))
}

// atRun kills once a migration_runs row of the type is open (the activity started), plus a
// random delay.
func (k *killer) atRun(what string, rt model.RunType) {
	k.t.Helper()
	ctx := context.Background()
	testenv.WaitFor(k.t, what+" started", 3*time.Minute, func() bool { return k.j.runningRuns(ctx, rt) > 0 })
	time.Sleep(time.Duration(k.r.IntN(150)) * time.Millisecond)
	open := k.j.runningRuns(ctx, rt)
	k.w.KillAndRestart()
	k.kills++
	if open > 0 {
		k.inside++
	}
	k.t.Logf("seed %d: SIGKILL during %s with %d %s run(s) open, %s into the job", k.seed, what, open, rt, time.Since(k.began).Round(time.Millisecond))
}

// TestFaultWorkerSIGKILLDuringSync runs one small job per seed (two mailboxes of 60-100
// messages in three folders, through a worker that is its own process) from preflight to
// close, and SIGKILLs the worker at seeded random points of two of these three (rotating):
// the initial sync, a (mirror) presync after new mail arrived and a message was deleted, and
// the final sync — its copy pass or, every other seed, its verification. The destination's uploads are
// slowed down so the kills land inside APPENDs. Every job must reach verified and closed, and
// each destination mailbox must hold every source message exactly once.
func TestFaultWorkerSIGKILLDuringSync(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the worker and runs ten jobs with kills")
	}
	t.Parallel()
	runs := testenv.Seeds(t, 10)
	var users []string
	for i := range runs {
		users = append(users, fmt.Sprintf("k%da", i), fmt.Sprintf("k%db", i))
	}
	srv := startServers(t, users)
	temporal := testenv.SharedTemporal(t)
	c := temporal.Client(t)
	testenv.WorkerBinary(t)

	var mu sync.Mutex
	var total tally
	var kills, inside atomic.Int64
	base := time.Now().Unix() % 100_000 * 100
	sem := make(chan struct{}, 5)
	var wg sync.WaitGroup
	for i, seed := range runs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
				r := rand.New(rand.NewPCG(seed, 0x5e1f))
				j := newJob(t, srv, 800_000_000+base+int64(i), users[2*i:2*i+2], r)
				j.slowDest(t, 48<<10)
				queue := fmt.Sprintf("emailfault-kill-%d-%d", seed, time.Now().UnixNano())
				w := startWorker(t, temporal.Address(), j.dbURL, queue, j.workerEnv()...)
				k := &killer{t: t, seed: seed, r: r, w: w, j: j, began: time.Now()}
				id := emailapi.WorkflowID(j.id)
				ctx := context.Background()

				// Two kills per job, in two of the three phases (which one is spared rotates).
				kill := func(phase int) bool { return phase != i%3 }

				// Initial sync.
				initial := int64(j.deliver("init", 60+r.IntN(40)))
				j.start(c, queue, j.spec(2), email.Tuning{})
				if kill(0) {
					k.atRows("initial sync", 0, initial)
				}
				awaitStatus(t, c, id, "initial sync done", 4*time.Minute, func(s emailapi.Status) bool { return s.Phase == model.PhaseDeltaSync })

				// A mirror presync after mail arrived and one message per mailbox was deleted.
				rows := j.ledgerRows(ctx)
				delta := int64(j.deliver("pre", 25+r.IntN(20)))
				for _, b := range j.boxes {
					j.removeOne(t, b, "INBOX")
				}
				if err := c.SignalWorkflow(ctx, id, "", emailapi.PresyncNow, emailapi.Request{By: "fault-test"}); err != nil {
					t.Fatal(err)
				}
				if kill(1) {
					k.atRows("presync", rows, delta)
				}
				awaitStatus(t, c, id, "presync done", 4*time.Minute, func(s emailapi.Status) bool { return s.Presyncs == 1 && s.CurrentPass == nil })

				// The gate, the migration hour, DNS; mail that reached the old server meanwhile
				// is brought over by the final sync.
				command(t, c, id, emailapi.Approve, emailapi.Request{By: "fault-lead", Note: "kill test"}, 2*time.Minute)
				now := time.Now()
				command(t, c, id, emailapi.SetCutoverTime, emailapi.Request{By: "fault-ops", At: &now}, 2*time.Minute)
				awaitStatus(t, c, id, "cutover_ready", 2*time.Minute, func(s emailapi.Status) bool { return s.Phase == model.PhaseCutoverReady })
				rows = j.ledgerRows(ctx)
				delta = int64(j.deliver("final", 25+r.IntN(20)))
				command(t, c, id, emailapi.DNSCutoverConfirmed, emailapi.Request{By: "fault-lead"}, 2*time.Minute)
				switch {
				case !kill(2):
				case i%2 == 0:
					k.atRows("final sync", rows, delta)
				default:
					k.atRun("final sync verification", model.RunVerify)
				}
				awaitStatus(t, c, id, "verified", 4*time.Minute, func(s emailapi.Status) bool { return s.Phase == model.PhaseVerified })
				if err := c.SignalWorkflow(ctx, id, "", emailapi.Close, emailapi.Request{By: "fault-lead", Note: "done"}); err != nil {
					t.Fatal(err)
				}
				st := result(t, c, id, 2*time.Minute)
				if st.Phase != model.PhaseClosed {
					t.Errorf("st.Phase: want model.PhaseClosed; job ended in %s, verify %+v", st.Phase, st.Verify)
				} else if st.Verify == nil {
					t.Errorf("st.Verify is nil; job ended in %s, verify %+v", st.Phase, st.Verify)
				} else if !st.Verify.OK {
					t.Errorf("st.Verify.OK is false; job ended in %s, verify %+v", st.Phase, st.Verify)
				} else if st.Verify.Missing != 0 {
					t.Errorf("st.Verify.Missing = %v, want 0; job ended in %s, verify %+v",
						st.Verify.Missing, st.Phase, st.Verify)
				}
				found := j.checkDestination(t)
				t.Logf("seed %d: %d kills (%d inside the work), job closed %s after start; %d messages, %d missing, %d duplicated",
					seed, k.kills, k.inside, time.Since(k.began).Round(time.Millisecond), found.messages, found.missing, found.duplicated)
				mu.Lock()
				total.add(found)
				mu.Unlock()
				kills.Add(int64(k.kills))
				inside.Add(int64(k.inside))
			})
		}()
	}
	wg.Wait()
	t.Logf("SIGKILL faults: %d kills (%d inside a copy or verification) over %d jobs; messages %d, missing %d, duplicated %d",
		kills.Load(), inside.Load(), len(runs), total.messages, total.missing, total.duplicated)
	if inside.Load() < kills.Load()/2 {
		t.Errorf("only %d of %d kills landed inside the work: the test proves little", inside.Load(), kills.Load())
	}
}
