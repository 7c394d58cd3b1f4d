package faults_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"

	"github.com/cutover/cutover/activities/mail"
	"github.com/cutover/cutover/activities/mail/imapx"
	"github.com/cutover/cutover/activities/mail/mailtest"
	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/faultproxy"
	"github.com/cutover/cutover/internal/testing/netdelay"
	"github.com/cutover/cutover/internal/testing/testenv"
	email "github.com/cutover/cutover/workflows/email"
	"github.com/cutover/cutover/workflows/email/emailapi"
	"github.com/cutover/cutover/workflows/email/jobspec"
)

// productRig runs mailbox passes the way the product does: a worker on the shared Temporal dev
// server, the wave workflow, a mailbox workflow per mailbox and its SyncMailbox activity on the
// real engine (pass lock, run rows and ledger in PostgreSQL), between two Dovecots. The source
// may sit behind a delaying link. imapsync, when CUTOVER_IMAPSYNC names it, runs on the same
// accounts through the same link.
type productRig struct {
	b        *testing.B
	src, dst *testenv.Dovecot
	srcAddr  string // where passes and imapsync reach the source (the link at rtt > 0)
	db       *store.DB
	c        client.Client
	queue    string
	loader   *wanMailboxes
	imapsync string
	timing   *passTiming
}

// benchFolders is a benchmark mailbox's shape: 40 % INBOX, 20 % Sent, two archives, Trash, Drafts.
var benchFolders = []string{"INBOX", "INBOX", "INBOX", "INBOX", "Sent", "Sent", "Archive/2022", "Archive/2023", "Trash", "Drafts"}

// newProductRig starts the servers (srcUsers seeded with msgs messages each, dstUsers empty),
// the control database and a worker; rttMS > 0 puts the source behind a link of that round
// trip (kernelDelay, or the delaying proxy).
func newProductRig(b *testing.B, srcUsers []string, msgs int, dstUsers []string, rttMS int) *productRig {
	b.Helper()
	users := func(names []string) []testenv.User {
		var out []testenv.User
		for _, n := range names {
			out = append(out, testenv.User{Name: n, Password: wanPassword})
		}
		return out
	}
	r := &productRig{b: b, loader: &wanMailboxes{}, imapsync: os.Getenv("CUTOVER_IMAPSYNC"), timing: &passTiming{}}
	rtt := time.Duration(rttMS) * time.Millisecond
	var srcOpts []testenv.DovecotOption
	kernel := rtt > 0 && kernelDelay(b, rtt, &srcOpts)
	r.src, r.dst = testenv.StartDovecot(b, users(srcUsers), srcOpts...), testenv.StartDovecot(b, users(dstUsers))
	for _, u := range srcUsers {
		mailtest.SeedMaildirSeq(b, r.src, u, mailtest.BulkSeq(mailtest.BulkOptions{Messages: msgs, Seed: 3, Folders: benchFolders, Prefix: u}))
		warmSource(b, r.src.Addr(), u)
	}
	r.srcAddr = r.src.Addr()
	if rtt > 0 && !kernel {
		link, err := faultproxy.New(r.src.Addr())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { link.Close() })
		link.Set(faultproxy.Fault{Dir: faultproxy.ClientToServer, Delay: rtt})
		r.srcAddr = link.Addr()
	}
	ctx := context.Background()
	var err error
	if r.db, err = store.OpenAndMigrate(ctx, testenv.NewDatabase(b)); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(r.db.Close)
	r.c = testenv.SharedTemporal(b).Client(b)
	r.queue = fmt.Sprintf("product-bench-%d", time.Now().UnixNano())
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if path := os.Getenv("CUTOVER_BENCH_TRACE"); path != "" {
		// The passes' timelines (debug level): where each pass's time went.
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { f.Close() })
		quiet = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	engine := &mail.Activities{DB: r.db, Logger: quiet, LogDir: b.TempDir(), Tune: func(e *mail.Engine) {
		e.Credentials = func(context.Context, string) (imapx.Credentials, error) {
			return imapx.Credentials{Password: wanPassword}, nil
		}
	}}
	testenv.StartPoolWorkers(b, r.c, r.queue, worker.Options{MaxConcurrentWorkflowTaskPollers: 8, MaxConcurrentActivityTaskPollers: 8,
		Interceptors: []interceptor.WorkerInterceptor{r.timing}}, func(w worker.Registry) {
		email.RegisterWorkflows(w)
		w.RegisterActivity(engine)
		w.RegisterActivity(r.loader)
	})
	return r
}

// kernelDelay puts the source behind a kernel-level delay (internal/testing/netdelay: the
// source Dovecot in a network namespace whose incoming packets are held rtt) when this machine
// allows it and CUTOVER_BENCH_DELAY is not "proxy", adding the server option to opts;
// otherwise the caller falls back to the in-process delaying proxy. It logs which one.
func kernelDelay(b *testing.B, rtt time.Duration, opts *[]testenv.DovecotOption) bool {
	b.Helper()
	l, err := netdelay.ForBench(b, rtt)
	if err != nil {
		b.Logf("delay: in-process proxy holding client→server chunks %s (no kernel-level delay: %v)", rtt, err)
		return false
	}
	b.Logf("delay: %s", l)
	*opts = append(*opts, testenv.WithLink(l))
	return true
}

// warmSource has Dovecot index every folder of user before anything is timed, as a
// long-lived server has.
func warmSource(b *testing.B, addr, user string) {
	b.Helper()
	c, err := imapx.Dial(context.Background(), imapx.Config{Addr: addr, Security: "plain", User: user}, imapx.Credentials{Password: wanPassword})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Logout()
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		b.Fatal(err)
	}
	for _, f := range list {
		if slices.Contains(f.Attrs, imap.MailboxAttrNoSelect) {
			continue
		}
		if _, err := c.Select(f.Mailbox, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			b.Fatal(err)
		}
		var all imap.UIDSet
		all.AddRange(1, 0)
		if _, err := c.Fetch(all, &imap.FetchOptions{Flags: true, RFC822Size: true, InternalDate: true}).Collect(); err != nil {
			b.Fatal(err)
		}
	}
}

// job records a job with one mailbox per (source, destination) pair and hands them to the
// wave: each call is a fresh ledger, so a pass over it is an initial sync.
func (r *productRig) job(pairs [][2]string) jobspec.Spec {
	b := r.b
	b.Helper()
	ctx := context.Background()
	job, err := r.db.CreateJob(ctx, store.Job{TenantID: 1, Domain: "bench.example"})
	if err != nil {
		b.Fatal(err)
	}
	var specs []emailapi.MailboxSpec
	for _, p := range pairs {
		mb, err := r.db.UpsertMailbox(ctx, store.Mailbox{JobID: job.ID, Email: p[1] + "@bench.example", SourceType: model.SourceIMAP})
		if err != nil {
			b.Fatal(err)
		}
		specs = append(specs, emailapi.MailboxSpec{JobID: job.ID, MailboxID: mb.ID, Email: mb.Email, SourceType: model.SourceIMAP,
			Source: emailapi.Endpoint{Addr: r.srcAddr, Security: "plain", User: p[0], CredentialsRef: "bench"},
			Dest:   emailapi.Endpoint{Addr: r.dst.Addr(), Security: "plain", User: p[1], CredentialsRef: "bench"}})
	}
	slices.SortFunc(specs, func(a, b emailapi.MailboxSpec) int { return int(a.MailboxID - b.MailboxID) })
	r.loader.specs = specs
	return jobspec.Spec{JobID: job.ID, TenantID: 1, Domain: "bench.example", MailboxCount: len(pairs),
		Source:      jobspec.Endpoint{Host: "old.example", Security: "plain", AuthUser: "a", CredentialsRef: "0b7f6a52-5d0c-4b0e-9a57-6f1b7f0f3c11"},
		Destination: jobspec.Endpoint{Host: "new.example", Security: "plain", AuthUser: "a", CredentialsRef: "0b7f6a52-5d0c-4b0e-9a57-6f1b7f0f3c11"},
		Concurrency: jobspec.Concurrency{Mailboxes: len(pairs)}}
}

// wave runs one pass of every mailbox of spec through Temporal and times it from the start
// request to the result.
func (r *productRig) wave(spec jobspec.Spec, rt model.RunType) (time.Duration, email.WaveResult) {
	b := r.b
	b.Helper()
	n := int64(spec.MailboxCount)
	in := email.WaveInput{Spec: spec, Concurrency: int(n), Task: emailapi.Task{Kind: emailapi.TaskSync, Mode: model.ModeCopy, RunType: rt,
		Phase: model.PhaseDeltaSync, Presync: rt == model.RunDelta}}
	r.timing.reset()
	start := time.Now()
	run, err := r.c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: fmt.Sprintf("%s-%d", r.queue, start.UnixNano()),
		TaskQueue: r.queue}, emailapi.WaveWorkflowName, in)
	if err != nil {
		b.Fatal(err)
	}
	var res email.WaveResult
	if err := run.Get(context.Background(), &res); err != nil {
		b.Fatal(err)
	}
	d := time.Since(start)
	if res.OK != n {
		b.Fatalf("res.OK: want n; pass: %d of %d mailboxes ok, %d pending: %v", res.OK, n, res.Pending, res.Failures)
	}
	if res.Pending != 0 {
		b.Fatalf("res.Pending: want 0; pass: %d of %d mailboxes ok, %d pending: %v",
			res.OK, n, res.Pending, res.Failures)
	}
	return d, res
}

// theirs runs one imapsync per (source, destination) pair at once; 0 without CUTOVER_IMAPSYNC.
func (r *productRig) theirs(pairs [][2]string) time.Duration {
	b := r.b
	b.Helper()
	if r.imapsync == "" {
		return 0
	}
	start := time.Now()
	var wg sync.WaitGroup
	for _, p := range pairs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			srcHost, srcPort, _ := net.SplitHostPort(r.srcAddr)
			cmd := exec.Command(r.imapsync, "--host1", srcHost, "--port1", srcPort, "--user1", p[0], "--password1", wanPassword,
				"--host2", "127.0.0.1", "--port2", portOf(r.dst.Addr()), "--user2", p[1], "--password2", wanPassword,
				"--nossl1", "--nossl2", "--notls1", "--notls2", "--nolog", "--noreleasecheck")
			cmd.Dir = b.TempDir()
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Errorf("imapsync %s: %v\n%s", p[0], err, out[max(0, len(out)-2000):])
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

// passTiming times the SyncMailbox activities of a wave inside the worker: how long the
// activity function ran and how long of it the engine's pass took (PassStats.Duration). The
// wave's wall time beyond the slowest activity is Temporal's (scheduling the workflows and
// activities, their tasks and results); the activity's beyond the engine's is the pass's
// bookkeeping (lock, run row, mailbox row, run log).
type passTiming struct {
	interceptor.WorkerInterceptorBase
	mu       sync.Mutex
	activity []time.Duration
	engine   []time.Duration
	// since the wave's start: the first activity's start, the last one's end
	wave           time.Time
	first, lastEnd time.Duration
}

func (t *passTiming) reset() {
	t.mu.Lock()
	t.activity, t.engine = nil, nil
	t.wave, t.first, t.lastEnd = time.Now(), 0, 0
	t.mu.Unlock()
}

// span returns when, from the wave's start, the first activity began and the last ended.
func (t *passTiming) span() (first, lastEnd time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.first, t.lastEnd
}

// slowest returns the longest activity and the engine time of that same activity.
func (t *passTiming) slowest() (act, eng time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, d := range t.activity {
		if d > act {
			act, eng = d, t.engine[i]
		}
	}
	return act, eng
}

func (t *passTiming) InterceptActivity(ctx context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	return &timedActivity{ActivityInboundInterceptorBase: interceptor.ActivityInboundInterceptorBase{Next: next}, t: t}
}

type timedActivity struct {
	interceptor.ActivityInboundInterceptorBase
	t *passTiming
}

func (a *timedActivity) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	start := time.Now()
	out, err := a.Next.ExecuteActivity(ctx, in)
	if activity.GetInfo(ctx).ActivityType.Name != "SyncMailbox" {
		return out, err
	}
	d := time.Since(start)
	var eng time.Duration
	if ps, ok := out.(emailapi.PassStats); ok {
		eng = ps.Duration
	}
	a.t.mu.Lock()
	a.t.activity, a.t.engine = append(a.t.activity, d), append(a.t.engine, eng)
	if f := start.Sub(a.t.wave); a.t.first == 0 || f < a.t.first {
		a.t.first = f
	}
	a.t.lastEnd = max(a.t.lastEnd, time.Since(a.t.wave))
	a.t.mu.Unlock()
	return out, err
}
