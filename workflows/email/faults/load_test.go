package faults_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/cutover/cutover/activities/emailjob"
	"github.com/cutover/cutover/activities/mail/mailtest"
	"github.com/cutover/cutover/activities/vault"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/worker/workerapp"
	email "github.com/cutover/cutover/workflows/email"
	"github.com/cutover/cutover/workflows/email/emailapi"
	"github.com/cutover/cutover/workflows/email/jobspec"
)

// loadMailboxes is the load test's job size: CUTOVER_LOAD_MAILBOXES, else def.
func loadMailboxes(t testing.TB, def int) int {
	if v := os.Getenv("CUTOVER_LOAD_MAILBOXES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("err = %v, want nil; CUTOVER_LOAD_MAILBOXES=%q: want an integer of at least 10", err, v)
		}
		if n < 10 {
			t.Fatalf("n = %v, want >= 10; CUTOVER_LOAD_MAILBOXES=%q: want an integer of at least 10", n, v)
		}
		return n
	}
	return def
}

// History bounds of the load test: none may grow with the number of mailboxes. The job's grows
// with time only: the worker signals it at most once per workerapp.ReportsEvery with every
// mailbox's progress (a signal and a workflow task: reportEvents events), so its bound is
// maxJobEvents plus reportEvents per ReportsEvery the run took.
const (
	maxJobEvents = 200
	reportEvents = 4
	// A wave run passes at most ContinueAfter mailboxes, each its activity (3 events) and at
	// most one workflow task (3).
	maxWaveEvents   = 6*email.DefaultContinueAfter + 60
	maxHistoryBytes = 1 << 20
	maxWorkerRSS    = 256 << 20
)

// TestFaultLoadThousandMailboxes registers a job of 1,000 small mailboxes (one message each,
// on one Dovecot pair, logged in through a master user) and runs its preflight and initial
// sync — 2,000 mailbox passes (activities of the waves) through the worker binary, 25 mailboxes
// at a time. Every message must arrive; every workflow history (the job's, each wave run's,
// read from the server's visibility records) must stay under its bound whatever the job's size,
// and no mailbox runs a workflow of its own; and the worker's peak resident memory (VmHWM) must stay under 256 MiB.
// CUTOVER_LOAD_MAILBOXES=<n> changes the size.
func TestFaultLoadThousandMailboxes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 2,000 mailbox workflows")
	}
	t.Parallel()
	n := loadMailboxes(t, 1000)
	users := make([]string, n)
	for i := range users {
		users[i] = fmt.Sprintf("l%04d", i)
	}
	master := secret("masterpw")
	srv := startServers(t, users, testenv.WithMasterUser("loadadmin", master))
	d := time.Date(2018, 3, 4, 5, 6, 7, 0, time.UTC)
	for i, u := range users {
		msg := mailtest.Message{Folder: "INBOX", Date: d, Raw: mailtest.Text(u+"-1@load.example", u+"@load.example", "hello "+u, d, "one small message\n")}
		if err := mailtest.WriteMaildir(srv.src.Maildir(u), []mailtest.Message{msg}); err != nil {
			t.Fatalf("seed %s (%d): %v", u, i, err)
		}
	}
	srv.src.FixOwnership(t)

	temporal := testenv.SharedTemporal(t)
	c := temporal.Client(t)
	j := newJob(t, srv, 850_000_000+time.Now().Unix()%1_000_000, nil, rand.New(rand.NewPCG(5, 6)))
	ctx := context.Background()
	keys, _ := vault.ParseKeys(j.vaultKy)
	v, _ := vault.New(j.db.Store, keys)
	ref, err := v.Put(ctx, vault.Secret{Password: master}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `job_id: %d
tenant_id: 9
domain: load.example
source: {host: %q, security: plain, auth_user: loadadmin, credentials_ref: %s}
destination: {host: %q, security: plain, auth_user: loadadmin, credentials_ref: %s}
concurrency: {mailboxes: 25, folders: 1}
mailboxes:
`, j.id, srv.src.Addr(), ref, srv.dst.Addr(), ref)
	for _, u := range users {
		fmt.Fprintf(&b, "  - {email: %s@load.example, user: %s, dest_user: %s}\n", u, u, u)
	}
	spec, err := jobspec.Parse([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	// As `cutover email start` does: the mailboxes go to PostgreSQL, the workflow input
	// carries only their count.
	registered, err := emailjob.Register(ctx, j.db, spec)
	if err != nil {
		t.Fatalf("err: want nil; register: %d mailboxes, %v", registered, err)
	}
	if registered != n {
		t.Fatalf("registered: want n; register: %d mailboxes, %v", registered, err)
	}
	spec.Mailboxes, spec.MailboxCount = nil, n

	queue := fmt.Sprintf("emailload-%d", time.Now().UnixNano())
	w := startWorker(t, temporal.Address(), j.dbURL, queue, j.workerEnv()...)
	start := time.Now()
	j.start(c, queue, spec, email.Tuning{HeartbeatTimeout: time.Minute})
	id := emailapi.WorkflowID(j.id)
	st := awaitStatus(t, c, id, "initial sync of every mailbox", 15*time.Minute, func(s emailapi.Status) bool { return s.Phase == model.PhaseDeltaSync })
	took := time.Since(start)
	rss := testenv.PeakRSS(t, w.Pid())
	if st.LastPass == nil {
		t.Errorf("st.LastPass is nil; initial sync: %+v, %v%% synced", st.LastPass, st.SyncPercent)
	} else if st.LastPass.Mailboxes != int64(n) {
		t.Errorf("st.LastPass.Mailboxes = %v, want %v (int64(n)); initial sync: %+v, %v%% synced",
			st.LastPass.Mailboxes, int64(n), st.LastPass, st.SyncPercent)
	} else if st.LastPass.Failed != 0 {
		t.Errorf("st.LastPass.Failed = %v, want 0; initial sync: %+v, %v%% synced",
			st.LastPass.Failed, st.LastPass, st.SyncPercent)
	} else if st.LastPass.Transferred != int64(n) {
		t.Errorf("st.LastPass.Transferred = %v, want %v (int64(n)); initial sync: %+v, %v%% synced",
			st.LastPass.Transferred, int64(n), st.LastPass, st.SyncPercent)
	} else if st.SyncPercent != 100 {
		t.Errorf("st.SyncPercent: want 100; initial sync: %+v, %v%% synced", st.LastPass, st.SyncPercent)
	}
	if err := c.SignalWorkflow(ctx, id, "", emailapi.Abort, emailapi.Request{By: "load-test", Note: "measured"}); err != nil {
		t.Fatal(err)
	}
	_ = c.GetWorkflow(ctx, id, "").Get(ctx, nil)

	var copied int64
	if err := j.db.Pool.QueryRow(ctx, `SELECT count(*) FROM mail_messages m JOIN mail_folders f ON f.id = m.folder_id
		JOIN migration_mailboxes b ON b.id = f.mailbox_id WHERE b.job_id = $1 AND m.state = 'copied'`, j.id).Scan(&copied); err != nil {
		t.Fatal(err)
	}
	if copied != int64(n) {
		t.Errorf("%d of %d messages copied", copied, n)
	}
	for _, u := range []string{users[0], users[n/2], users[n-1]} {
		if src, dst := srv.src.MessageIDs(t, u), srv.dst.MessageIDs(t, u); compare(src, dst) != (tally{messages: 1}) {
			t.Errorf("%s: source %v, destination %v", u, src, dst)
		}
	}

	// Every history, from the server's visibility records.
	var token []byte
	counts := map[string]int{}
	largest := map[string][2]int64{} // kind → events, bytes
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: fmt.Sprintf("TaskQueue = '%s'", queue), NextPageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range resp.GetExecutions() {
			kind := e.GetType().GetName()
			counts[kind]++
			events, size := e.GetHistoryLength(), e.GetHistorySizeBytes()
			l := largest[kind]
			largest[kind] = [2]int64{max(l[0], events), max(l[1], size)}
			// The job's reports grow with the run's time, not its mailboxes (see reportEvents).
			jobLimit := maxJobEvents + reportEvents*int64(took/workerapp.ReportsEvery+1)
			limit := map[string]int64{emailapi.WorkflowName: jobLimit, emailapi.WaveWorkflowName: maxWaveEvents}[kind]
			if events > limit {
				t.Errorf("events: want <= limit; %s %s: %d events, %d bytes (limits %d events, %d bytes)",
					kind, e.GetExecution().GetWorkflowId(), events, size, limit, maxHistoryBytes)
			} else if size > maxHistoryBytes {
				t.Errorf("size: want <= maxHistoryBytes; %s %s: %d events, %d bytes (limits %d events, %d bytes)",
					kind, e.GetExecution().GetWorkflowId(), events, size, limit, maxHistoryBytes)
			}
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	if counts[emailapi.MailboxWorkflowName] != 0 {
		t.Errorf("%d mailbox workflows, want none (a wave runs its mailboxes' passes as its own activities)",
			counts[emailapi.MailboxWorkflowName])
	}
	t.Logf("%d mailboxes: preflight + initial sync in %s (%.1f ms per mailbox pass, 25 at a time); worker peak RSS (VmHWM) %.1f MiB",
		n, took.Round(time.Millisecond), float64(took.Milliseconds())/float64(2*n), float64(rss)/(1<<20))
	for _, k := range []string{emailapi.WorkflowName, emailapi.WaveWorkflowName} {
		t.Logf("%-20s %5d executions, largest history %4d events, %6d bytes", k, counts[k], largest[k][0], largest[k][1])
	}
	if rss > maxWorkerRSS {
		t.Errorf("worker peak RSS %.1f MiB, over %d MiB", float64(rss)/(1<<20), maxWorkerRSS>>20)
	}
}
