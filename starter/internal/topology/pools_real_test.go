package topology

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cutover/cutover/activities/vault"
	"github.com/cutover/cutover/internal/testing/faultproxy"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/starter/client"
)

// TestWorkerPoolsOnTheProductionServer runs the split pools on the real Temporal server with
// mutual TLS and an API key, as deployed: `cutover temporal setup` on a new namespace, a worker
// process for the workflows and db pools, then two mail-only processes (CUTOVER_TASK_QUEUES=mail).
// `cutover health` must name the mail pool while nobody polls it and count each pool's workers
// once they do. An email job (the destination's link slowed) runs beside a database migration;
// the mail worker that copies a mailbox is SIGKILLed and its activities must run on the other
// mail worker within 30 s. Both must complete, every source message must be on the destination
// exactly once, and the histories must show every activity on its pool's queue, run by a worker
// of that pool. No command's output and no worker's log may show the API key.
func TestWorkerPoolsOnTheProductionServer(t *testing.T) {
	ctx := context.Background()
	srv := testenv.SharedTemporalServer(t, testenv.WithServerMTLS())
	conn := srv.Connection()
	conn.Namespace = fmt.Sprintf("pools-%d", time.Now().UnixNano())
	// An API key beside the client certificate, as a cloud deployment has both: the server
	// ignores it, every client sends it, and no output may show it.
	conn.APIKey = fmt.Sprintf("api-key-%d", time.Now().UnixNano())
	queue := "pools"
	var outputs []string // what operators saw: every CLI run's output, then the workers' logs
	r := runCLI(t, conn.Env(), "temporal", "setup")
	if r.code != 0 {
		t.Fatalf("temporal setup: %s", r)
	}
	outputs = append(outputs, r.String())

	w := newMailWorld(t, 2, 40)
	slow, err := faultproxy.New(w.dst.Addr()) // the copy lasts long enough to be killed inside
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = slow.Close() })
	slow.Set(faultproxy.Fault{Dir: faultproxy.ClientToServer, BytesPerSec: 64 << 10})

	env := append(conn.Env(), "DATABASE_URL="+w.dbURL, "CUTOVER_TASK_QUEUE="+queue, vault.EnvKeys+"="+w.key,
		"CUTOVER_REPORT_DIR="+t.TempDir())
	pools := func(p string) []string { return append(slices.Clip(env), "CUTOVER_TASK_QUEUES="+p) }
	rest := testenv.StartWorkerProcess(t, pools("workflows,db")...)
	cliEnv := append(conn.Env(), "CUTOVER_TASK_QUEUE="+queue)
	r = runCLI(t, cliEnv, "health", "--timeout", "30s")
	outputs = append(outputs, r.String())
	if r.code == 0 {
		t.Errorf("health without a mail worker exited 0: %s", r)
	}
	if want := fmt.Sprintf(`no worker polls task queue "%s-mail", the mail pool's`, queue); !strings.Contains(r.stderr, want) {
		t.Errorf("health without a mail worker does not say %q: %s", want, r)
	}
	mail := []*testenv.WorkerProcess{
		testenv.StartWorkerProcess(t, pools("mail")...),
		testenv.StartWorkerProcess(t, pools("mail")...),
	}
	// health returns once every pool has a poller; the second mail worker's first poll may
	// reach the server a moment after the first's, so ask again until both are counted.
	wantMail := fmt.Sprintf("mail pool: 2 worker(s) poll %q", queue+"-mail")
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Second) {
		r = runCLI(t, cliEnv, "health", "--timeout", "60s")
		if r.code != 0 || strings.Contains(r.stdout, wantMail) || time.Now().After(deadline) {
			break
		}
	}
	outputs = append(outputs, r.String())
	if r.code != 0 {
		t.Errorf("health with every pool polled exited %d: %s", r.code, r)
	}
	for _, want := range []string{
		wantMail,
		fmt.Sprintf("db pool: 1 worker(s) poll %q", queue+"-db"),
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("health with every pool polled does not say %q: %s", want, r)
		}
	}

	cc := conn
	c, err := client.Dial(ctx, client.Options{Connection: &cc, TaskQueue: queue})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	tc := dial(t, conn)

	wait := startPoolJobs(t, c, w, slow.Addr(), 50, 500)
	// SIGKILL the mail worker that copies a mailbox; the other mail worker must take it over.
	var victim *testenv.WorkerProcess
	var lost []running
	testenv.WaitFor(t, "a mailbox sync running on a mail worker", 3*time.Minute, func() bool {
		acts, err := pendingActivities(ctx, tc, conn.Namespace)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mail {
			on := startedOn(acts, m.Pid())
			if slices.ContainsFunc(on, func(a running) bool { return a.activityType == "SyncMailbox" }) {
				victim, lost = m, on
				return true
			}
		}
		return false
	})
	pid, killed := victim.Pid(), time.Now()
	victim.Stop(syscall.SIGKILL)
	took := handedOver(t, tc, conn.Namespace, lost, pid, killed, failoverLimit)
	t.Logf("SIGKILL: mail worker %d ran %d activit(ies) (%s); all running on the other mail worker or done %s later",
		pid, len(lost), types(lost), took.Round(100*time.Millisecond))
	wait()

	for _, u := range w.users {
		want, got := messageIDs(w.src.MessageIDs(t, u.Name)), messageIDs(w.dst.MessageIDs(t, u.Name))
		if !slices.Equal(want, got) {
			t.Errorf("%s: %d messages on the source, %d on the destination; missing %v, extra %v", u.Name, len(want),
				len(got), minus(want, got), minus(got, want))
		}
	}
	checkPoolRuns(t, activityRuns(t, tc, conn.Namespace, queue), queue)
	for _, p := range append(mail, rest) {
		outputs = append(outputs, p.Log())
	}
	for i, out := range outputs {
		if strings.Contains(out, conn.APIKey) {
			t.Errorf("output %d of %d shows the API key:\n%s", i+1, len(outputs), out)
		}
	}
}
