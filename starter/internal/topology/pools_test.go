package topology

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	sdk "go.temporal.io/sdk/client"

	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/activities/vault"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/taskqueue"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/starter/client"
	"github.com/cutover/cutover/starter/internal/demo"
	"github.com/cutover/cutover/worker/workerapp"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// TestWorkerPoolsSplitByTaskQueue runs an email job and a database migration on a dev server
// with two workers that share no pool: one started for the mail pool alone (CUTOVER_TASK_QUEUES=mail),
// one for the workflows and the database pools. Both migrations must complete, and the recorded
// histories must show every IMAP engine activity scheduled on the mail queue and run by the mail
// worker, every database activity on the db queue run by the other worker, and the mail worker
// running nothing else.
func TestWorkerPoolsSplitByTaskQueue(t *testing.T) {
	srv := testenv.SharedTemporal(t)
	w := newMailWorld(t, 2, 20)
	t.Setenv(vault.EnvKeys, w.key) // the in-process workers read it
	dbURL, dst := w.dbURL, w.dst

	queue := fmt.Sprintf("pools-%d", time.Now().UnixNano())
	rest := startPoolWorker(t, srv, queue, dbURL, taskqueue.Workflows, taskqueue.DB)
	// health names a pool nobody polls, then counts each pool's workers.
	cliEnv := []string{"TEMPORAL_ADDRESS=" + srv.Address(), "TEMPORAL_NAMESPACE=" + srv.Namespace(), "CUTOVER_TASK_QUEUE=" + queue}
	r := runCLI(t, cliEnv, "health", "--timeout", "60s")
	if r.code == 0 {
		t.Errorf("health without a mail worker exited 0: %s", r)
	}
	if want := fmt.Sprintf(`no worker polls task queue "%s-mail", the mail pool's`, queue); !strings.Contains(r.stderr, want) {
		t.Errorf("health without a mail worker does not say %q: %s", want, r)
	}
	mailOnly := startPoolWorker(t, srv, queue, dbURL, taskqueue.Mail)
	r = runCLI(t, cliEnv, "health", "--timeout", "60s")
	if r.code != 0 {
		t.Errorf("health with every pool polled exited %d: %s", r.code, r)
	}
	for _, want := range []string{fmt.Sprintf("mail pool: 1 worker(s) poll %q", queue+"-mail"), fmt.Sprintf("db pool: 1 worker(s) poll %q", queue+"-db")} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("health with every pool polled does not say %q: %s", want, r)
		}
	}
	if want := []string{queue + "-mail"}; !slices.Equal(mailOnly.Queues, want) {
		t.Errorf("mail worker polls %v, want %v", mailOnly.Queues, want)
	}
	if want := []string{queue, queue + "-db"}; !slices.Equal(rest.Queues, want) {
		t.Errorf("workflows+db worker polls %v, want %v", rest.Queues, want)
	}

	tc := srv.Client(t)
	startPoolJobs(t, client.New(tc, queue), w, dst.Addr(), 50, 500)()
	checkPoolRuns(t, activityRuns(t, tc, srv.Namespace(), queue), queue)
}

// startPoolJobs starts an email job of w's users (to the destination at dstAddr) beside an
// incremental database migration of the mail system (accounts, sessions, emails), each driven
// to its end as an operator would. The wait it returns fails the test unless the job closes
// with nothing missing and the migration completes.
func startPoolJobs(t *testing.T, c *client.Client, w mailWorld, dstAddr string, accounts, emails int) (wait func()) {
	t.Helper()
	ctx := context.Background()
	job, err := w.db.CreateJob(ctx, store.Job{ID: uniqueJobID(), TenantID: 1, Domain: demo.Domain})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartEmailJob(ctx, demo.EmailSpec(job.ID, w.src.Addr(), dstAddr, w.users, w.refs)); err != nil {
		t.Fatal(err)
	}
	emailDone := make(chan error, 1)
	go func() {
		st, err := (&demo.EmailDriver{C: c, JobID: job.ID}).Run(context.Background())
		if err == nil && (st.Phase != model.PhaseClosed || st.Verify == nil || st.Verify.Missing != 0) {
			err = fmt.Errorf("ended in phase %s, verify %+v", st.Phase, st.Verify)
		}
		emailDone <- err
	}()
	targetURL := testenv.NewDatabase(t)
	sp, data, err := demo.MailSystem(ctx, t.TempDir(), targetURL, accounts, emails)
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.StartDBMigration(ctx, dbmigrateapi.Input{MigrationID: uuid.NewString(), MigrationType: model.MigrationIncremental,
		CreatedBy: "pools-test", Spec: sp, Config: dbmigrateapi.Config{SyncInterval: 2 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	dbDone := make(chan error, 1)
	go func() {
		st, err := (&demo.DBDriver{C: c, ID: m.MigrationID, Data: data}).Run(context.Background())
		if err == nil && st.Status != model.OrchCompleted {
			err = fmt.Errorf("ended %s: %s", st.Status, st.Error)
		}
		dbDone <- err
	}()
	return func() {
		t.Helper()
		waitDone(t, "email job", emailDone)
		waitDone(t, "database migration", dbDone)
	}
}

// checkPoolRuns: every IMAP engine activity of ran was scheduled on the mail queue and run by a
// mail-only worker, every database activity on the db queue and every other activity on the
// workflows queue, both run by a workflows+db worker; and the histories hold each kind.
func checkPoolRuns(t *testing.T, ran []activityRun, queue string) {
	t.Helper()
	counts := map[string]int{}
	for _, r := range ran {
		counts[r.activityType]++
		mailAct := slices.Contains([]string{"PreflightMailbox", "SyncMailbox", "VerifyMailbox"}, r.activityType)
		dbAct := strings.HasPrefix(r.activityType, "DB")
		wantQueue, wantPool := queue, "@workflows+db"
		switch {
		case mailAct:
			wantQueue, wantPool = queue+"-mail", "@mail"
		case dbAct:
			wantQueue = queue + "-db"
		}
		if r.queue != wantQueue {
			t.Errorf("%s in %s scheduled on %q, want %q", r.activityType, r.workflowID, r.queue, wantQueue)
		}
		if !strings.HasSuffix(r.identity, wantPool) {
			t.Errorf("%s in %s ran on worker %q, want the %s pool's", r.activityType, r.workflowID, r.identity, wantPool)
		}
	}
	for _, typ := range []string{"PreflightMailbox", "SyncMailbox", "VerifyMailbox", "DBCopyChunk", "DBValidateChanged", "MirrorEmailJob"} {
		if counts[typ] == 0 {
			t.Errorf("no %s in the histories (activity runs per type: %v)", typ, counts)
		}
	}
	t.Logf("activity runs per type: %v", counts)
}

// startPoolWorker runs the worker in-process for the given pools until the test ends.
func startPoolWorker(t *testing.T, srv *testenv.Temporal, queue, dbURL string, pools ...taskqueue.Pool) workerapp.Info {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	ready, done := make(chan workerapp.Info, 1), make(chan error, 1)
	go func() {
		done <- workerapp.Run(ctx, workerapp.Config{TemporalAddress: srv.Address(), Namespace: srv.Namespace(),
			TaskQueue: queue, Pools: pools, DatabaseURL: dbURL, ShutdownGrace: 2 * time.Second, ReportDir: t.TempDir(),
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, func(i workerapp.Info) { ready <- i })
	}()
	select {
	case i := <-ready:
		t.Cleanup(func() { stop(); <-done })
		return i
	case err := <-done:
		stop()
		t.Fatalf("worker for %v exited before it polled: %v", pools, err)
	case <-time.After(60 * time.Second):
		stop()
		t.Fatalf("worker for %v not ready in 60s", pools)
	}
	return workerapp.Info{}
}

// activityRun is one activity a history records as run: its type, the queue it was scheduled
// on and the identity of the worker that ran its last attempt.
type activityRun struct {
	workflowID, activityType, queue, identity string
}

// activityRuns reads the histories of every workflow on queue (children inherit it).
func activityRuns(t *testing.T, c sdk.Client, ns, queue string) []activityRun {
	t.Helper()
	ctx := context.Background()
	var out []activityRun
	var token []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: ns,
			Query: fmt.Sprintf("TaskQueue=%q", queue), NextPageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range resp.GetExecutions() {
			id := e.GetExecution().GetWorkflowId()
			scheduled := map[int64]activityRun{}
			it := c.GetWorkflowHistory(ctx, id, e.GetExecution().GetRunId(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
			for it.HasNext() {
				ev, err := it.Next()
				if err != nil {
					t.Fatal(err)
				}
				if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
					scheduled[ev.GetEventId()] = activityRun{workflowID: id, activityType: a.GetActivityType().GetName(),
						queue: a.GetTaskQueue().GetName()}
				}
				if a := ev.GetActivityTaskStartedEventAttributes(); a != nil {
					r := scheduled[a.GetScheduledEventId()]
					r.identity = a.GetIdentity()
					out = append(out, r)
				}
			}
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			return out
		}
	}
}

// uniqueJobID is a job id no other test's job on the shared dev server has (each test's control
// database would start at 1, and the workflow id email-job-<id> must be new).
func uniqueJobID() int64 { return 900_000_000 + time.Now().UnixNano()%100_000_000 }
