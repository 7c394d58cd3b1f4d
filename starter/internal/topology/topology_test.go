package topology

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	sdk "go.temporal.io/sdk/client"

	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/activities/vault"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/faultproxy"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/starter/client"
	"github.com/cutover/cutover/starter/internal/demo"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// failoverLimit is how long a stopped worker's activities may wait for another worker.
const failoverLimit = 30 * time.Second

// TestFaultProductionTopology runs the production topology on a real Temporal server on
// PostgreSQL, plaintext and with mutual TLS: `cutover temporal setup` on a new namespace, two
// worker processes, `cutover health`, then an email job (the destination's link slowed so the
// copy takes a while) beside an incremental database migration. One worker is SIGKILLed while
// it copies; its activities must run on the other worker within 30 s. A replacement starts and
// the surviving original is SIGTERMed while it runs activities (a rolling restart); it must
// hand them back at once. Both migrations must complete, every source message must be on the
// destination exactly once (read on both servers), and the target tables must hold every row.
func TestFaultProductionTopology(t *testing.T) {
	for _, mtls := range []bool{false, true} {
		name := "plaintext"
		var opts []testenv.TemporalServerOption
		if mtls {
			name, opts = "mTLS", []testenv.TemporalServerOption{testenv.WithServerMTLS()}
		}
		t.Run(name, func(t *testing.T) { runTopology(t, testenv.SharedTemporalServer(t, opts...)) })
	}
}

func runTopology(t *testing.T, srv *testenv.TemporalServer) {
	ctx := context.Background()
	conn := srv.Connection()
	conn.Namespace = fmt.Sprintf("cutover-%d", time.Now().UnixNano())
	queue := "topology"

	r := runCLI(t, conn.Env(), "temporal", "setup", "--retention", "24h")
	if r.code != 0 || !strings.Contains(r.stdout, "namespace "+conn.Namespace+": created") {
		t.Fatalf("temporal setup: %s", r)
	}
	t.Logf("cutover temporal setup (%s):\n%s", conn.Describe(), r.stdout)
	if srv.MTLS() {
		// The frontend really requires the client certificate.
		bare := conn
		bare.CertPath, bare.KeyPath = "", ""
		co, err := bare.ClientOptions()
		if err != nil {
			t.Fatal(err)
		}
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if c, err := sdk.DialContext(dctx, co); err == nil {
			c.Close()
			t.Fatal("the frontend accepted a TLS client without a certificate")
		}
		cancel()
		if r := runCLI(t, bare.Env(), "health", "--timeout", "5s"); r.code == 0 {
			t.Fatalf("health without a client certificate: %s", r)
		}
	}

	// The control database, the vault, the two IMAP servers with the demo corpus.
	w := newMailWorld(t, 3, 40)
	dbURL, db, users, src, dst, refs, key := w.dbURL, w.db, w.users, w.src, w.dst, w.refs, w.key
	// A slow link to the destination: the initial sync lasts long enough to be killed inside.
	slow, err := faultproxy.New(dst.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = slow.Close() })
	slow.Set(faultproxy.Fault{Dir: faultproxy.ClientToServer, BytesPerSec: 64 << 10})

	env := append(conn.Env(), "DATABASE_URL="+dbURL, "CUTOVER_TASK_QUEUE="+queue, vault.EnvKeys+"="+key,
		"CUTOVER_REPORT_DIR="+t.TempDir())
	workers := []*testenv.WorkerProcess{testenv.StartWorkerProcess(t, env...), testenv.StartWorkerProcess(t, env...)}
	if r := runCLI(t, env, "health"); r.code != 0 || !strings.HasPrefix(r.stdout, "healthy: worker ") {
		t.Fatalf("health: %s", r)
	}

	cc := conn
	c, err := client.Dial(ctx, client.Options{Connection: &cc, TaskQueue: queue})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	tc := dial(t, conn)

	// The email job and the database migration run side by side, each driven as an operator would.
	job, err := db.CreateJob(ctx, store.Job{TenantID: 1, Domain: demo.Domain})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartEmailJob(ctx, demo.EmailSpec(job.ID, src.Addr(), slow.Addr(), users, refs)); err != nil {
		t.Fatal(err)
	}
	emailDone := make(chan error, 1)
	var emailSt emailapi.Status
	go func() {
		d := &demo.EmailDriver{C: c, JobID: job.ID}
		var err error
		emailSt, err = d.Run(context.Background())
		emailDone <- err
	}()
	targetURL := testenv.NewDatabase(t)
	sp, data, err := demo.MailSystem(ctx, t.TempDir(), targetURL, 200, 3000)
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.StartDBMigration(ctx, dbmigrateapi.Input{MigrationID: uuid.NewString(), MigrationType: model.MigrationIncremental,
		CreatedBy: "topology-test", Spec: sp, Config: dbmigrateapi.Config{SyncInterval: 2 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	dbDone := make(chan error, 1)
	var dbSt dbmigrateapi.State
	go func() {
		var err error
		dbSt, err = (&demo.DBDriver{C: c, ID: m.MigrationID, Data: data}).Run(context.Background())
		dbDone <- err
	}()

	// SIGKILL the worker that runs a mailbox copy, mid-copy.
	var victim *testenv.WorkerProcess
	var lost []running
	testenv.WaitFor(t, "a mailbox sync running on a worker", 3*time.Minute, func() bool {
		acts, err := pendingActivities(ctx, tc, conn.Namespace)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range workers {
			on := startedOn(acts, w.Pid())
			if slices.ContainsFunc(on, func(a running) bool { return strings.Contains(a.activityType, "Sync") }) {
				victim, lost = w, on
				return true
			}
		}
		return false
	})
	pid := victim.Pid()
	killed := time.Now()
	victim.Stop(syscall.SIGKILL)
	// Meanwhile the job's live status says its pass waits for the heartbeat timeout.
	silentSeen, stopWatch := make(chan string, 1), make(chan struct{})
	go func() {
		for {
			select {
			case <-stopWatch:
				close(silentSeen)
				return
			case <-time.After(200 * time.Millisecond):
			}
			st, err := c.EmailStatus(ctx, job.ID)
			if err != nil {
				continue
			}
			live, _ := c.LiveMailboxes(ctx, st)
			for _, l := range live {
				if strings.Contains(l.WorkerSilent, fmt.Sprintf("worker %d ", pid)) {
					silentSeen <- l.Email + ": " + l.WorkerSilent
					<-stopWatch
					close(silentSeen)
					return
				}
			}
		}
	}()
	took := handedOver(t, tc, conn.Namespace, lost, pid, killed, failoverLimit)
	close(stopWatch)
	t.Logf("SIGKILL: worker %d ran %d activit(ies) (%s); all running on the other worker or done %s later",
		pid, len(lost), types(lost), took.Round(100*time.Millisecond))
	// The note shows in the last two seconds before the heartbeat timeout (a live worker's
	// heartbeats may be 12 s apart); a loaded machine may poll past that window, so it is logged
	// here and its wording is tested in starter/client.
	if note := <-silentSeen; note != "" {
		t.Logf("status while waiting: %s", note)
	} else {
		t.Logf("the job's live status was not polled while it waited for worker %d's heartbeat timeout", pid)
	}

	// A rolling restart: a replacement starts, then the surviving original gets SIGTERM while
	// it runs activities and must hand them back at once.
	survivor := workers[0]
	if survivor == victim {
		survivor = workers[1]
	}
	replacement := testenv.StartWorkerProcess(t, env...)
	_ = replacement
	var onSurvivor []running
	testenv.WaitFor(t, "an activity running on the surviving worker", 3*time.Minute, func() bool {
		acts, err := pendingActivities(ctx, tc, conn.Namespace)
		if err != nil {
			t.Fatal(err)
		}
		onSurvivor = startedOn(acts, survivor.Pid())
		return len(onSurvivor) > 0
	})
	spid := survivor.Pid()
	termed := time.Now()
	survivor.Stop(syscall.SIGTERM)
	took = handedOver(t, tc, conn.Namespace, onSurvivor, spid, termed, failoverLimit)
	t.Logf("SIGTERM: worker %d ran %d activit(ies) (%s); all running on the replacement or done %s later",
		spid, len(onSurvivor), types(onSurvivor), took.Round(100*time.Millisecond))

	waitDone(t, "email job", emailDone)
	waitDone(t, "database migration", dbDone)
	if emailSt.Phase != model.PhaseClosed {
		t.Fatalf("emailSt.Phase: want model.PhaseClosed; email job ended in phase %s, verify %+v",
			emailSt.Phase, emailSt.Verify)
	}
	if emailSt.Verify == nil {
		t.Fatalf("emailSt.Verify is nil; email job ended in phase %s, verify %+v", emailSt.Phase, emailSt.Verify)
	}
	if emailSt.Verify.Missing != 0 {
		t.Fatalf("emailSt.Verify.Missing = %v, want 0; email job ended in phase %s, verify %+v",
			emailSt.Verify.Missing, emailSt.Phase, emailSt.Verify)
	}
	// Read both servers: every source message on the destination exactly once (by Message-ID:
	// special folders take the destination's names, "Sent Items" → "Sent").
	for _, u := range users {
		want, got := messageIDs(src.MessageIDs(t, u.Name)), messageIDs(dst.MessageIDs(t, u.Name))
		if !slices.Equal(want, got) {
			t.Errorf("%s: %d messages on the source, %d on the destination; missing %v, extra %v", u.Name, len(want), len(got),
				minus(want, got), minus(got, want))
		}
	}
	if dbSt.Status != model.OrchCompleted {
		t.Fatalf("database migration ended %s: %s", dbSt.Status, dbSt.Error)
	}
	pool, err := pgxpool.New(ctx, targetURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	for table, want := range map[string]int{"emails": data.Emails - data.Duplicates, "sessions": data.Sessions, "accounts": data.Accounts} {
		var n int
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM public."+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != want {
			t.Errorf("target table %s holds %d rows, want %d", table, n, want)
		}
	}
}

func waitDone(t *testing.T, what string, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(5 * time.Minute):
		t.Fatalf("%s not done 5 minutes after the faults", what)
	}
}

func types(acts []running) string {
	var out []string
	for _, a := range acts {
		out = append(out, a.activityType)
	}
	return strings.Join(out, ", ")
}

// messageIDs drops the folder of MessageIDs' "folder <message-id>" lines, sorted.
func messageIDs(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l[strings.LastIndex(l, " ")+1:]
	}
	slices.Sort(out)
	return out
}

// minus is what of a is not in b, counting repeats.
func minus(a, b []string) []string {
	left := map[string]int{}
	for _, s := range b {
		left[s]++
	}
	var out []string
	for _, s := range a {
		if left[s] > 0 {
			left[s]--
			continue
		}
		out = append(out, s)
	}
	return out
}
