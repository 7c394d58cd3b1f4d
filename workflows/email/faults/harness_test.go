package faults_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/cutover/cutover/activities/mail/mailtest"
	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/activities/vault"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/faultproxy"
	"github.com/cutover/cutover/internal/testing/testenv"
	email "github.com/cutover/cutover/workflows/email"
	"github.com/cutover/cutover/workflows/email/emailapi"
	"github.com/cutover/cutover/workflows/email/jobspec"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// workerProc is the worker binary with the report directory its environment names.
type workerProc struct {
	*testenv.WorkerProcess
	reports string // CUTOVER_REPORT_DIR
}

// startWorker runs the worker binary on its own task queue with extra environment (vault and
// payload keys, log level) and stops it when the test ends.
func startWorker(t testing.TB, temporalAddr, dbURL, queue string, extra ...string) *workerProc {
	t.Helper()
	reports := t.TempDir()
	env := append([]string{"TEMPORAL_ADDRESS=" + temporalAddr, "DATABASE_URL=" + dbURL, "CUTOVER_TASK_QUEUE=" + queue,
		"CUTOVER_REPORT_DIR=" + reports}, extra...)
	return &workerProc{WorkerProcess: testenv.StartWorkerProcess(t, env...), reports: reports}
}

func secret(prefix string) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// servers are a source and a destination Dovecot with the users of every run of a test.
type servers struct {
	src, dst *testenv.Dovecot
	srcPW    map[string]string
	dstPW    map[string]string
}

// startServers starts both Dovecots with users named <prefix><n> (random passwords, so the
// secret scans look for strings nothing else contains).
func startServers(t testing.TB, users []string, opts ...testenv.DovecotOption) *servers {
	t.Helper()
	s := &servers{srcPW: map[string]string{}, dstPW: map[string]string{}}
	var su, du []testenv.User
	for _, u := range users {
		s.srcPW[u], s.dstPW[u] = secret("srcpw"), secret("dstpw")
		su = append(su, testenv.User{Name: u, Password: s.srcPW[u]})
		du = append(du, testenv.User{Name: u, Password: s.dstPW[u]})
	}
	s.src = testenv.StartDovecot(t, su, opts...)
	s.dst = testenv.StartDovecot(t, du, opts...)
	return s
}

// folders of a run's mailboxes; both servers use the same namespace, so names match.
var runFolders = []string{"INBOX", "Sent", "Archive/2020"}

// mailbox is one user's corpus as the test wrote it to the source.
type mailbox struct {
	user    string
	n       int // messages generated so far (ids and dates count up)
	removed int // messages the test deleted from the source
}

// job is one email migration job of a test: its control database, vault, worker, mailboxes.
type job struct {
	t       testing.TB
	srv     *servers
	id      int64
	dbURL   string
	db      *store.DB
	vaultKy string
	refs    map[string][2]string // user → source, destination credentials_ref
	boxes   []*mailbox
	rnd     *mrand.Rand
	date    time.Time
	destVia string // destination address in the spec (a fault proxy, or the server)
}

// newJob creates a control database (schema applied), stores the users' passwords in the
// vault and remembers the users' mailboxes.
func newJob(t testing.TB, srv *servers, id int64, users []string, r *mrand.Rand) *job {
	t.Helper()
	return newJobIn(t, testenv.NewDatabase(t), srv, id, users, r)
}

// newJobIn is newJob with the control database at dbURL (created if absent).
func newJobIn(t testing.TB, dbURL string, srv *servers, id int64, users []string, r *mrand.Rand) *job {
	t.Helper()
	ctx := context.Background()
	j := &job{t: t, srv: srv, id: id, dbURL: dbURL, refs: map[string][2]string{}, rnd: r,
		date: time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(id%1000) * time.Hour), destVia: srv.dst.Addr()}
	var err error
	if j.db, err = store.OpenAndMigrate(ctx, j.dbURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(j.db.Close)
	if j.vaultKy, err = vault.GenerateKey(); err != nil {
		t.Fatal(err)
	}
	keys, err := vault.ParseKeys(j.vaultKy)
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.New(j.db.Store, keys)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		sref, err := v.Put(ctx, vault.Secret{Password: srv.srcPW[u]}, nil)
		if err != nil {
			t.Fatal(err)
		}
		dref, err := v.Put(ctx, vault.Secret{Password: srv.dstPW[u]}, nil)
		if err != nil {
			t.Fatal(err)
		}
		j.refs[u] = [2]string{sref, dref}
		j.boxes = append(j.boxes, &mailbox{user: u})
	}
	return j
}

// workerEnv is what the job's worker needs beside the defaults.
func (j *job) workerEnv(extra ...string) []string {
	return append([]string{vault.EnvKeys + "=" + j.vaultKy}, extra...)
}

// deliver writes n new messages per mailbox into the source's Maildirs, spread over the
// folders, 1-12 KB each (seeded), with unique Message-IDs and dates.
func (j *job) deliver(tag string, n int) int {
	j.t.Helper()
	total := 0
	for _, b := range j.boxes {
		var msgs []mailtest.Message
		for range n {
			b.n++
			j.date = j.date.Add(time.Minute)
			id := fmt.Sprintf("%s-%s-%d@fault.example", b.user, tag, b.n)
			folder := runFolders[j.rnd.IntN(len(runFolders))]
			body := strings.Repeat(fmt.Sprintf("line %d of %s, a message the migration must move exactly once.\n", b.n, id), 15+j.rnd.IntN(170))
			var flags []string
			if j.rnd.IntN(3) > 0 {
				flags = append(flags, `\Seen`)
			}
			msgs = append(msgs, mailtest.Message{Folder: folder, Date: j.date, Flags: flags,
				Raw: mailtest.Text(id, b.user+" <"+b.user+"@fault.example>", "fault "+tag+" "+strconv.Itoa(b.n), j.date, body)})
		}
		mailtest.SeedMaildir(j.t, j.srv.src, b.user, msgs)
		total += len(msgs)
	}
	return total
}

// spec is the job spec as an operator writes it (parsed, defaults filled).
func (j *job) spec(concurrency int) jobspec.Spec {
	j.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, `job_id: %d
tenant_id: 9
domain: fault.example
source: {host: "%s", security: plain}
destination: {host: "%s", security: plain}
schedule: {presync_interval: 1h, final_sync_delay: 1s, soak: 1h, post_sync_interval: 1h}
concurrency: {mailboxes: %d}
retry: {max_attempts: 30, max_interval: 5s}
mailboxes:
`, j.id, j.srv.src.Addr(), j.destVia, concurrency)
	for _, m := range j.boxes {
		r := j.refs[m.user]
		fmt.Fprintf(&b, "  - {email: %s@fault.example, user: %s, credentials_ref: %s, dest_user: %s, dest_credentials_ref: %s}\n",
			m.user, m.user, r[0], m.user, r[1])
	}
	s, err := jobspec.Parse([]byte(b.String()))
	if err != nil {
		j.t.Fatal(err)
	}
	return s
}

// start starts the job workflow. A short workflow task timeout keeps a task lost with a killed
// worker from stalling the job for the default 10 s; the short heartbeat timeout has a pass
// lost with it retried within seconds.
func (j *job) start(c client.Client, queue string, spec jobspec.Spec, tuning email.Tuning) client.WorkflowRun {
	j.t.Helper()
	if tuning.HeartbeatTimeout == 0 {
		tuning.HeartbeatTimeout = 3 * time.Second
	}
	run, err := c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: emailapi.WorkflowID(j.id), TaskQueue: queue,
		WorkflowTaskTimeout: 3 * time.Second}, emailapi.WorkflowName, spec, &email.Resume{Tuning: tuning})
	if err != nil {
		j.t.Fatal(err)
	}
	return run
}

// status queries the job; the error is returned, not fatal (the worker may be down).
func status(c client.Client, id string) (emailapi.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := c.QueryWorkflow(ctx, id, "", emailapi.QueryStatus)
	if err != nil {
		return emailapi.Status{}, err
	}
	var s emailapi.Status
	return s, v.Get(&s)
}

// awaitStatus polls the status query until ok; a failed job fails the test at once.
func awaitStatus(t testing.TB, c client.Client, id, what string, timeout time.Duration, ok func(emailapi.Status) bool) emailapi.Status {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last emailapi.Status
	var lastErr error
	for time.Now().Before(deadline) {
		s, err := status(c, id)
		if lastErr = err; err == nil {
			last = s
			if ok(s) {
				return s
			}
			if s.Phase == model.PhaseFailed {
				t.Fatalf("%s: job failed in %s: %s", what, s.FailedPhase, s.LastError)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not reached in %s; last status: phase %s gate %s presyncs %d error %q checks %+v current pass %+v; last query error %v",
		what, timeout, last.Phase, last.Gate, last.Presyncs, last.LastError, last.Checks, last.CurrentPass, lastErr)
	return last
}

// command sends an update and waits for its answer, retrying while no worker answers.
func command(t testing.TB, c client.Client, id, name string, r emailapi.Request, timeout time.Duration) emailapi.Ack {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: id, UpdateName: name, Args: []any{r},
			WaitForStage: client.WorkflowUpdateStageCompleted})
		var ack emailapi.Ack
		if err == nil {
			err = h.Get(ctx, &ack)
		}
		cancel()
		if err == nil {
			return ack
		}
		if time.Now().After(deadline) || !retryableUpdateError(err) {
			t.Fatalf("%s: %v", name, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// retryableUpdateError: the update did not reach a worker in time (it was down or restarting).
func retryableUpdateError(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "context deadline exceeded") ||
		strings.Contains(err.Error(), "Unavailable") || strings.Contains(err.Error(), "unavailable")
}

// ledgerRows counts the job's message ledger rows (pending and copied): it grows as APPENDs are
// sent, so a kill at a row count lands inside a copy.
func (j *job) ledgerRows(ctx context.Context) int64 {
	var n int64
	if err := j.db.Pool.QueryRow(ctx, `SELECT count(*) FROM mail_messages m JOIN mail_folders f ON f.id = m.folder_id
		JOIN migration_mailboxes b ON b.id = f.mailbox_id WHERE b.job_id = $1`, j.id).Scan(&n); err != nil {
		return -1
	}
	return n
}

// confirmedRows counts the job's ledger rows whose APPEND the destination confirmed (or that
// were found there): fewer than the messages to copy means the copy was still under way.
func (j *job) confirmedRows(ctx context.Context) int64 {
	var n int64
	if err := j.db.Pool.QueryRow(ctx, `SELECT count(*) FROM mail_messages m JOIN mail_folders f ON f.id = m.folder_id
		JOIN migration_mailboxes b ON b.id = f.mailbox_id WHERE b.job_id = $1 AND m.state <> 'pending'`, j.id).Scan(&n); err != nil {
		return -1
	}
	return n
}

// runningRuns counts the job's migration_runs of a type that have not finished.
func (j *job) runningRuns(ctx context.Context, rt model.RunType) int64 {
	var n int64
	if err := j.db.Pool.QueryRow(ctx, `SELECT count(*) FROM migration_runs WHERE job_id = $1 AND run_type = $2 AND finished_at IS NULL`,
		j.id, rt).Scan(&n); err != nil {
		return -1
	}
	return n
}

// tally is what a destination check found.
type tally struct{ messages, missing, duplicated, unexpected int }

func (a *tally) add(b tally) {
	a.messages += b.messages
	a.missing += b.missing
	a.duplicated += b.duplicated
	a.unexpected += b.unexpected
}

// checkDestination compares every mailbox of the job on both servers, folder by folder and
// Message-ID by Message-ID: the destination must hold each source message exactly once.
func (j *job) checkDestination(t testing.TB) tally {
	t.Helper()
	var all tally
	for _, b := range j.boxes {
		src, dst := j.srv.src.MessageIDs(t, b.user), j.srv.dst.MessageIDs(t, b.user)
		tl := compare(src, dst)
		if tl.missing+tl.duplicated+tl.unexpected > 0 {
			t.Errorf("%s: %d source messages, destination %d: %d missing, %d duplicated, %d not on the source\nsource %v\ndest   %v",
				b.user, len(src), len(dst), tl.missing, tl.duplicated, tl.unexpected, src, dst)
		}
		if len(src) != b.n-b.removed {
			t.Errorf("%s: the source holds %d messages, the test left %d", b.user, len(src), b.n-b.removed)
		}
		all.add(tl)
	}
	return all
}

// compare counts missing, duplicated and foreign entries of dst against src (multisets).
func compare(src, dst []string) tally {
	want := map[string]int{}
	for _, s := range src {
		want[s]++
	}
	got := map[string]int{}
	for _, d := range dst {
		got[d]++
	}
	tl := tally{messages: len(src)}
	for k, n := range want {
		if got[k] < n {
			tl.missing += n - got[k]
		} else if got[k] > n {
			tl.duplicated += got[k] - n
		}
	}
	for k, n := range got {
		if want[k] == 0 {
			tl.unexpected += n
		}
	}
	return tl
}

// removeOne deletes one message (the first file) from a source folder, as a user expunging it.
func (j *job) removeOne(t testing.TB, b *mailbox, folder string) {
	t.Helper()
	dir := filepath.Join(mailtest.FolderDir(j.srv.src.Maildir(b.user), folder), "cur")
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		return
	}
	if err := os.Remove(filepath.Join(dir, entries[0].Name())); err != nil {
		t.Fatal(err)
	}
	b.removed++
}

// slowDest puts a fault proxy in front of the destination that slows every connection's
// uploads down, so copies take long enough for kills and restarts to land inside them.
func (j *job) slowDest(t testing.TB, bytesPerSec int) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.New(j.srv.dst.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	p.Set(faultproxy.Fault{Dir: faultproxy.ClientToServer, BytesPerSec: bytesPerSec})
	j.destVia = p.Addr()
	return p
}

// result waits for the job's workflow (following continue-as-new) and returns its status.
func result(t testing.TB, c client.Client, id string, timeout time.Duration) emailapi.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var st emailapi.Status
	if err := c.GetWorkflow(ctx, id, "").Get(ctx, &st); err != nil {
		t.Fatalf("job result: %v", err)
	}
	return st
}

// activityAttempts returns, per activity type, the highest attempt that started in any run of
// a workflow id, of the activities with activityID when it is not "" (a retried activity's
// started event carries its attempt).
func activityAttempts(t testing.TB, c client.Client, workflowID, activityID string) map[string]int32 {
	t.Helper()
	ctx := context.Background()
	out := map[string]int32{}
	resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: fmt.Sprintf("WorkflowId = '%s'", workflowID)})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range resp.GetExecutions() {
		scheduled := map[int64]string{}
		it := c.GetWorkflowHistory(ctx, workflowID, e.GetExecution().GetRunId(), false, 0)
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				t.Fatalf("history of %s: %v", workflowID, err)
			}
			if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil && (activityID == "" || a.GetActivityId() == activityID) {
				scheduled[ev.GetEventId()] = a.GetActivityType().GetName()
			}
			if a := ev.GetActivityTaskStartedEventAttributes(); a != nil {
				name, ok := scheduled[a.GetScheduledEventId()]
				if !ok {
					continue
				}
				out[name] = max(out[name], a.GetAttempt())
			}
		}
	}
	return out
}
