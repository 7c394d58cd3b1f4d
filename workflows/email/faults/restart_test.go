package faults_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/faultproxy"
	"github.com/cutover/cutover/internal/testing/testenv"
	email "github.com/cutover/cutover/workflows/email"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// serverFault is one server fault of a restart test, injected once the job's ledger holds
// the given number of rows (APPENDs sent).
type serverFault struct {
	what string // "initial sync", "final sync"
	do   func()
}

// driveThroughServerFaults takes a job (two mailboxes, destination slowed) from start to closed
// and injects one fault at a seeded point of the initial sync's copy and one of the final
// sync's; beforeFinal runs just before the DNS confirmation starts the final sync. It returns
// what the destination holds against the source.
func driveThroughServerFaults(t *testing.T, c client.Client, j *job, queue string, r *rand.Rand, seed uint64,
	initial, final serverFault, beforeFinal func()) tally {
	t.Helper()
	id := emailapi.WorkflowID(j.id)
	ctx := context.Background()
	began := time.Now()
	inject := func(f serverFault, base, delta int64) {
		t.Helper()
		threshold := base + int64((0.1+0.7*r.Float64())*float64(delta))
		testenv.WaitFor(t, fmt.Sprintf("%s: %d ledger rows", f.what, threshold), 3*time.Minute, func() bool { return j.ledgerRows(ctx) >= threshold })
		confirmed := j.confirmedRows(ctx)
		start := time.Now()
		f.do()
		t.Logf("seed %d: fault during %s with %d/%d messages confirmed (took %s), %s into the job", seed, f.what,
			confirmed, base+delta, time.Since(start).Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
		if confirmed >= base+delta {
			t.Logf("seed %d: the %s had finished its copy before the fault", seed, f.what)
		}
	}

	n := int64(j.deliver("init", 80+r.IntN(40)))
	j.start(c, queue, j.spec(2), email.Tuning{})
	inject(initial, 0, n)
	awaitStatus(t, c, id, "initial sync done", 4*time.Minute, func(s emailapi.Status) bool { return s.Phase == model.PhaseDeltaSync })
	command(t, c, id, emailapi.Approve, emailapi.Request{By: "fault-lead"}, time.Minute)
	now := time.Now()
	command(t, c, id, emailapi.SetCutoverTime, emailapi.Request{By: "fault-ops", At: &now}, time.Minute)
	awaitStatus(t, c, id, "cutover_ready", 2*time.Minute, func(s emailapi.Status) bool { return s.Phase == model.PhaseCutoverReady })
	rows := j.ledgerRows(ctx)
	n = int64(j.deliver("final", 40+r.IntN(20)))
	if beforeFinal != nil {
		beforeFinal()
	}
	command(t, c, id, emailapi.DNSCutoverConfirmed, emailapi.Request{By: "fault-lead"}, time.Minute)
	inject(final, rows, n)
	awaitStatus(t, c, id, "verified", 4*time.Minute, func(s emailapi.Status) bool { return s.Phase == model.PhaseVerified })
	if err := c.SignalWorkflow(ctx, id, "", emailapi.Close, emailapi.Request{By: "fault-lead"}); err != nil {
		t.Fatal(err)
	}
	st := result(t, c, id, 2*time.Minute)
	if st.Phase != model.PhaseClosed {
		t.Errorf("st.Phase: want model.PhaseClosed; job ended in %s, verify %+v", st.Phase, st.Verify)
	} else if st.Verify == nil {
		t.Errorf("st.Verify is nil; job ended in %s, verify %+v", st.Phase, st.Verify)
	} else if !st.Verify.OK {
		t.Errorf("st.Verify.OK is false; job ended in %s, verify %+v", st.Phase, st.Verify)
	}
	for _, b := range j.boxes {
		if st.LastPass != nil { // a wave runs each mailbox's pass as its activity, the address its id
			addr := b.user + "@fault.example"
			t.Logf("%s: activity attempts of the last pass %v", b.user, activityAttempts(t, c, st.LastPass.WorkflowID, addr))
		}
	}
	return j.checkDestination(t)
}

// TestFaultTemporalRestartMidJob restarts a private Temporal dev server (same state file)
// while a job copies — at a seeded point of the initial sync, and of the final sync after an
// outage longer than the heartbeat timeout — with the worker running throughout: it
// reconnects, the workflows resume from their histories, passes whose heartbeats were lost
// are retried while their first attempts may still be running, and every message still
// arrives exactly once.
func TestFaultTemporalRestartMidJob(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the worker, runs a private Temporal server and restarts it")
	}
	t.Parallel()
	seed := testenv.Seeds(t, 1)[0]
	r := rand.New(rand.NewPCG(seed, 0x7e4d))
	users := []string{"ra", "rb"}
	srv := startServers(t, users)
	temporal := testenv.StartTemporal(t)
	j := newJob(t, srv, 810_000_000+time.Now().Unix()%1_000_000, users, r)
	proxy := j.slowDest(t, 48<<10)
	queue := fmt.Sprintf("emailfault-temporal-%d", time.Now().UnixNano())
	startWorker(t, temporal.Address(), j.dbURL, queue, j.workerEnv()...)

	// The second outage outlasts the heartbeat timeout, so Temporal times the running passes
	// out and retries them while their first attempts may still be copying.
	restart := func(what string, outage time.Duration) serverFault {
		return serverFault{what, func() {
			temporal.Stop()
			time.Sleep(outage) // the fault itself: the server is down
			temporal.Restart(t)
		}}
	}
	slower := func() { // the final sync's copy must outlast the outage
		proxy.Set(faultproxy.Fault{Dir: faultproxy.ClientToServer, BytesPerSec: 12 << 10})
	}
	found := driveThroughServerFaults(t, temporal.Client(t), j, queue, r, seed, restart("initial sync", 0), restart("final sync", 8*time.Second), slower)
	t.Logf("Temporal restart faults: 2 restarts over 1 job; messages %d, missing %d, duplicated %d", found.messages, found.missing, found.duplicated)
}

// TestFaultPostgresRestartMidSync puts the job's control database on a private PostgreSQL
// cluster and takes it down while mailboxes copy: a fast shutdown at a seeded point of the
// initial sync, and a crash (SIGKILL of every backend, WAL recovery) at a seeded point of the
// final sync. Passes lose their ledger and their pass lock with the connections and are
// retried; the ledger's pending rows are reconciled against the destination; every message
// arrives exactly once.
func TestFaultPostgresRestartMidSync(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the worker, runs a private PostgreSQL cluster and restarts it")
	}
	t.Parallel()
	seed := testenv.Seeds(t, 1)[0]
	r := rand.New(rand.NewPCG(seed, 0x9a57))
	users := []string{"pga", "pgb"}
	srv := startServers(t, users)
	pg := testenv.StartPostgres(t)
	temporal := testenv.SharedTemporal(t)
	j := newJobIn(t, pg.DatabaseURL("cutover"), srv, 870_000_000+time.Now().Unix()%1_000_000, users, r)
	j.slowDest(t, 48<<10)
	queue := fmt.Sprintf("emailfault-pg-%d", time.Now().UnixNano())
	startWorker(t, temporal.Address(), j.dbURL, queue, j.workerEnv()...)

	down := func(what string, do func(testing.TB)) serverFault {
		return serverFault{what, func() {
			j.db.Pool.Reset() // its connections are about to die
			do(t)
		}}
	}
	found := driveThroughServerFaults(t, temporal.Client(t), j, queue, r, seed,
		down("initial sync (fast shutdown)", pg.Restart), down("final sync (crash: SIGKILL of every backend)", pg.Crash), nil)
	t.Logf("PostgreSQL restart faults: 2 (fast shutdown, crash) over 1 job; messages %d, missing %d, duplicated %d", found.messages, found.missing, found.duplicated)
}
