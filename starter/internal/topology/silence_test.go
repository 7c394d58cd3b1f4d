package topology

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	sdkpb "go.temporal.io/api/sdk/v1"
	sdk "go.temporal.io/sdk/client"

	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/activities/vault"
	"github.com/cutover/cutover/internal/taskqueue"
	"github.com/cutover/cutover/internal/testing/faultproxy"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/starter/client"
	"github.com/cutover/cutover/starter/internal/demo"
	"github.com/cutover/cutover/worker/workerapp"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// TestSilentWorkerShowsInTheJobsDetails: the only mail worker (a process started for the mail
// pool) is SIGKILLed while it copies a mailbox. The job's current details, what the Temporal UI
// shows of it, must name the silent worker (while Temporal waits for the heartbeat timeout and
// then, with no other mail worker, while the retry waits for one), and must drop the note once
// a new mail worker runs the pass.
func TestSilentWorkerShowsInTheJobsDetails(t *testing.T) {
	ctx := context.Background()
	srv := testenv.SharedTemporal(t)
	w := newMailWorld(t, 2, 40)
	t.Setenv(vault.EnvKeys, w.key) // the in-process workers read it
	dbURL, db, users, src, dst, refs, key := w.dbURL, w.db, w.users, w.src, w.dst, w.refs, w.key
	slow, err := faultproxy.New(dst.Addr()) // the copy lasts long enough to be killed inside
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = slow.Close() })
	slow.Set(faultproxy.Fault{Dir: faultproxy.ClientToServer, BytesPerSec: 32 << 10})

	every := workerapp.SilenceEvery
	workerapp.SilenceEvery = 500 * time.Millisecond
	t.Cleanup(func() { workerapp.SilenceEvery = every })
	queue := fmt.Sprintf("silence-%d", time.Now().UnixNano())
	startPoolWorker(t, srv, queue, dbURL, taskqueue.Workflows, taskqueue.DB)
	env := []string{"TEMPORAL_ADDRESS=" + srv.Address(), "TEMPORAL_NAMESPACE=" + srv.Namespace(), "DATABASE_URL=" + dbURL,
		"CUTOVER_TASK_QUEUE=" + queue, "CUTOVER_TASK_QUEUES=mail", vault.EnvKeys + "=" + key, "CUTOVER_REPORT_DIR=" + t.TempDir()}
	mailWorker := testenv.StartWorkerProcess(t, env...)

	tc := srv.Client(t)
	c := client.New(tc, queue)
	job, err := db.CreateJob(ctx, store.Job{ID: uniqueJobID(), TenantID: 1, Domain: demo.Domain})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartEmailJob(ctx, demo.EmailSpec(job.ID, src.Addr(), slow.Addr(), users, refs)); err != nil {
		t.Fatal(err)
	}
	pid := mailWorker.Pid()
	testenv.WaitFor(t, "a mailbox sync running on the mail worker", 3*time.Minute, func() bool {
		acts, err := pendingActivities(ctx, tc, srv.Namespace())
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range startedOn(acts, pid) {
			if a.activityType == "SyncMailbox" {
				return true
			}
		}
		return false
	})
	killed := time.Now()
	mailWorker.Stop(syscall.SIGKILL)

	id := emailapi.WorkflowID(job.ID)
	worker := fmt.Sprintf("worker %d ", pid)
	var note string
	testenv.WaitFor(t, "the job's current details naming the silent worker", time.Minute, func() bool {
		note = currentDetails(t, tc, id)
		return strings.Contains(note, worker)
	})
	t.Logf("%s after the SIGKILL the job's current details say:\n%s", time.Since(killed).Round(100*time.Millisecond), note)
	// The wave runs each mailbox's pass as its activity: the note names the mailbox and its wave.
	if !strings.Contains(note, "`SyncMailbox` of `") || !strings.Contains(note, "@"+demo.Domain+"` in `email-wave-") {
		t.Errorf("the note does not name the activity, its mailbox and its wave:\n%s", note)
	}

	// A new mail worker runs the pass: the note goes.
	testenv.StartWorkerProcess(t, env...)
	testenv.WaitFor(t, "the note gone from the job's current details", 2*time.Minute, func() bool {
		note = currentDetails(t, tc, id)
		return !strings.Contains(note, worker)
	})
}

// currentDetails is what the Temporal UI shows as a workflow's current details.
func currentDetails(t *testing.T, c sdk.Client, id string) string {
	t.Helper()
	qctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := c.QueryWorkflow(qctx, id, "", "__temporal_workflow_metadata")
	if err != nil {
		return ""
	}
	var md sdkpb.WorkflowMetadata
	if err := v.Get(&md); err != nil {
		t.Fatal(err)
	}
	return md.GetCurrentDetails()
}
