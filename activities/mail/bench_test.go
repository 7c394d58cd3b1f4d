package mail

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/cutover/cutover/activities/mail/imapx"
	"github.com/cutover/cutover/activities/mail/mailtest"
	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// The benchmarks copy generated mailboxes between two local Dovecots and print msgs/s, MB/s
// and peak RSS. With CUTOVER_IMAPSYNC pointing at an imapsync script they run imapsync on the
// same corpus beside the engine (one imapsync process per mailbox, as many as the engine's
// parallel mailboxes) and print its figures and the speedup; without it they run the engine
// alone. Figures are printed, never asserted.
//
//	CUTOVER_IMAPSYNC=/path/to/imapsync go test -run '^$' -bench . -benchtime 1x ./activities/mail/

const benchPassword = "bench-pw"

// benchAccounts is how many destination accounts a benchmark world has.
const benchAccounts = 200

// benchFolders is a mailbox's shape: 40 % INBOX, 20 % Sent, three yearly archives and Trash.
var benchFolders = []string{"INBOX", "INBOX", "INBOX", "INBOX", "Sent", "Sent", "Archive/2021", "Archive/2022", "Archive/2023", "Trash"}

type benchWorld struct {
	src, dst *testenv.Dovecot
	db       *store.DB
	eng      *Engine
	imapsync string
	jobID    int64
	next     int // destination accounts handed out
	par      int // engine parallelism per mailbox, 0 = default
	// srcAddr and dstAddr, when set, are where imapsync reaches the servers (a proxy).
	srcAddr, dstAddr string
	issued           int            // see fresh
	stretches        map[string]int // see nextStretch
	mu               sync.Mutex
}

// newBenchWorld starts the source (with srcOpts) and destination servers, the control
// database and an engine, and seeds and warms every source mailbox.
func newBenchWorld(b *testing.B, sources map[string]int, srcOpts ...testenv.DovecotOption) *benchWorld {
	b.Helper()
	ctx := context.Background()
	var srcUsers, dstUsers []testenv.User
	for u := range sources {
		srcUsers = append(srcUsers, testenv.User{Name: u, Password: benchPassword})
	}
	for i := range benchAccounts {
		dstUsers = append(dstUsers, testenv.User{Name: fmt.Sprintf("d%d", i), Password: benchPassword})
	}
	w := &benchWorld{imapsync: os.Getenv("CUTOVER_IMAPSYNC")}
	w.src = testenv.StartDovecot(b, srcUsers, srcOpts...)
	w.dst = testenv.StartDovecot(b, dstUsers)
	var err error
	if w.db, err = store.OpenAndMigrate(ctx, testenv.NewDatabase(b)); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(w.db.Close)
	job, err := w.db.CreateJob(ctx, store.Job{TenantID: 1, Domain: "bench.example"})
	if err != nil {
		b.Fatal(err)
	}
	w.jobID = job.ID
	w.eng = &Engine{Store: w.db.Store, Logger: testLogger(), Credentials: func(context.Context, string) (imapx.Credentials, error) {
		return imapx.Credentials{Password: benchPassword}, nil
	}}
	// Knobs for trying other settings on other machines.
	if v, err := strconv.Atoi(os.Getenv("CUTOVER_BENCH_BATCH")); err == nil {
		w.eng.BatchMessages = v
	}
	if v, err := strconv.Atoi(os.Getenv("CUTOVER_BENCH_PARALLELISM")); err == nil {
		w.par = v
	}
	for u, n := range sources {
		seedBench(b, w.src, u, n, 0)
	}
	return w
}

// seedBench writes n generated messages (numbered from first) into user's Maildir and has
// Dovecot index them (warm) before anything is timed.
func seedBench(b *testing.B, d *testenv.Dovecot, user string, n, first int) {
	b.Helper()
	mailtest.SeedMaildirSeq(b, d, user, mailtest.BulkSeq(mailtest.BulkOptions{Messages: n, Folders: benchFolders,
		Seed: uint64(first + 1), Prefix: fmt.Sprintf("%s-%d", user, first)}))
	warm(b, d, user)
}

// warm has Dovecot index every folder before anything is timed, as a long-lived server has.
func warm(b *testing.B, d *testenv.Dovecot, user string) {
	b.Helper()
	c, err := imapx.Dial(context.Background(), imapx.Config{Addr: d.Addr(), Security: "plain", User: user}, imapx.Credentials{Password: benchPassword})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Logout()
	fs, err := listFolders(context.Background(), c, true)
	if err != nil {
		b.Fatal(err)
	}
	for _, f := range fs {
		if f.NoSelect || f.Messages == 0 {
			continue
		}
		if _, err := c.Select(f.Name, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			b.Fatal(err)
		}
		var all imap.UIDSet
		all.AddRange(1, 0)
		if _, err := c.Fetch(all, &imap.FetchOptions{Flags: true, RFC822Size: true, InternalDate: true}).Collect(); err != nil {
			b.Fatal(err)
		}
	}
}

// fresh hands out n numbers no earlier call handed out (message numbers for seedBench).
func (w *benchWorld) fresh(n int) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.issued += n
	return 1_000_000 + w.issued - n
}

// nextStretch numbers the runs of messages flagged in user's INBOX, from 0.
func (w *benchWorld) nextStretch(user string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stretches == nil {
		w.stretches = map[string]int{}
	}
	w.stretches[user]++
	return w.stretches[user] - 1
}

// account hands out a fresh destination account.
func (w *benchWorld) account(b *testing.B) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.next == benchAccounts {
		b.Fatal("benchmark ran out of destination accounts")
	}
	w.next++
	return fmt.Sprintf("d%d", w.next-1)
}

// spec describes copying source user src into destination account dst, with its own ledger.
func (w *benchWorld) spec(b *testing.B, src, dst string) emailapi.MailboxSpec {
	b.Helper()
	mb, err := w.db.UpsertMailbox(context.Background(), store.Mailbox{JobID: w.jobID, Email: dst + "@bench.example", SourceType: model.SourceIMAP})
	if err != nil {
		b.Fatal(err)
	}
	return emailapi.MailboxSpec{JobID: w.jobID, MailboxID: mb.ID, Email: mb.Email, SourceType: model.SourceIMAP,
		Source: emailapi.Endpoint{Addr: w.src.Addr(), Security: "plain", User: src, CredentialsRef: "x"},
		Dest:   emailapi.Endpoint{Addr: w.dst.Addr(), Security: "plain", User: dst, CredentialsRef: "x"}}
}

// measured is one timed run.
type measured struct {
	d        time.Duration
	msgs     int64
	bytes    int64
	peakRSS  int64 // bytes
	pending  int64
	flagsUpd int64
}

func (m measured) msgsPerSec() float64 { return float64(m.msgs) / m.d.Seconds() }
func (m measured) mbPerSec() float64   { return float64(m.bytes) / (1 << 20) / m.d.Seconds() }

// ours runs one pass of each spec concurrently and measures the process's peak RSS.
func (w *benchWorld) ours(b *testing.B, par int, specs ...emailapi.MailboxSpec) measured {
	b.Helper()
	debug.FreeOSMemory()
	resetPeakRSS()
	m := passAll(b, specs, func(s emailapi.MailboxSpec) (emailapi.PassStats, error) {
		return w.eng.Sync(context.Background(), emailapi.PassRequest{Spec: s, Mode: model.ModeCopy, RunType: model.RunDelta, Parallelism: par}, SyncOptions{})
	})
	m.peakRSS = peakRSS()
	return m
}

// passAll runs pass on every spec at once and sums what the passes moved; a pass that
// leaves messages pending fails the benchmark.
func passAll(b *testing.B, specs []emailapi.MailboxSpec, pass func(emailapi.MailboxSpec) (emailapi.PassStats, error)) measured {
	b.Helper()
	var m measured
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for _, s := range specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := pass(s)
			if err != nil {
				b.Error(err)
				return
			}
			mu.Lock()
			m.msgs += st.Transferred
			m.bytes += st.BytesTransferred
			m.pending += st.Pending
			m.flagsUpd += st.FlagsUpdated
			mu.Unlock()
		}()
	}
	wg.Wait()
	m.d = time.Since(start)
	if m.pending != 0 {
		b.Errorf("pass left %d messages pending", m.pending)
	}
	return m
}

var imapsyncTransferred = regexp.MustCompile(`Messages transferred\s*:\s*(\d+)`)
var imapsyncBytes = regexp.MustCompile(`Total bytes transferred\s*:\s*(\d+)`)

// theirs runs one imapsync process per (source, destination) pair concurrently.
func (w *benchWorld) theirs(b *testing.B, pairs [][2]string) measured {
	b.Helper()
	var m measured
	var mu sync.Mutex
	var wg sync.WaitGroup
	dir := b.TempDir()
	start := time.Now()
	for _, p := range pairs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			srcAddr, dstAddr := w.src.Addr(), w.dst.Addr()
			if w.srcAddr != "" {
				srcAddr, dstAddr = w.srcAddr, w.dstAddr
			}
			cmd := exec.Command(w.imapsync, "--host1", "127.0.0.1", "--port1", port(srcAddr), "--user1", p[0], "--password1", benchPassword,
				"--host2", "127.0.0.1", "--port2", port(dstAddr), "--user2", p[1], "--password2", benchPassword,
				"--nossl1", "--nossl2", "--notls1", "--notls2", "--nolog", "--noreleasecheck")
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			if err != nil {
				b.Errorf("imapsync %s → %s: %v\n%s", p[0], p[1], err, tail(out, 2000))
				return
			}
			var n, by int64
			if mm := imapsyncTransferred.FindSubmatch(out); mm != nil {
				n, _ = strconv.ParseInt(string(mm[1]), 10, 64)
			}
			if mm := imapsyncBytes.FindSubmatch(out); mm != nil {
				by, _ = strconv.ParseInt(string(mm[1]), 10, 64)
			}
			rss := int64(0)
			if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
				rss = ru.Maxrss << 10
			}
			mu.Lock()
			m.msgs += n
			m.bytes += by
			m.peakRSS = max(m.peakRSS, rss)
			mu.Unlock()
		}()
	}
	wg.Wait()
	m.d = time.Since(start)
	return m
}

func port(addr string) string { return addr[strings.LastIndexByte(addr, ':')+1:] }

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// resetPeakRSS resets the kernel's high-water mark of this process's resident set (VmHWM).
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSS reads VmHWM in bytes.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func report(b *testing.B, what string, ours, theirs measured, haveTheirs bool) {
	b.ReportMetric(ours.msgsPerSec(), "msgs/s")
	b.ReportMetric(ours.mbPerSec(), "MB/s")
	b.ReportMetric(float64(ours.peakRSS)/(1<<20), "peakRSS_MB")
	b.Logf("%s cutover:  %d msgs %.1f MB in %.2fs = %.0f msgs/s %.1f MB/s, peak RSS %.0f MB", what, ours.msgs,
		float64(ours.bytes)/(1<<20), ours.d.Seconds(), ours.msgsPerSec(), ours.mbPerSec(), float64(ours.peakRSS)/(1<<20))
	if !haveTheirs {
		return
	}
	b.ReportMetric(theirs.d.Seconds(), "imapsync_s")
	b.ReportMetric(theirs.d.Seconds()/ours.d.Seconds(), "speedup_x")
	b.Logf("%s imapsync: %d msgs %.1f MB in %.2fs = %.0f msgs/s %.1f MB/s, peak RSS %.0f MB; cutover is %.1fx faster",
		what, theirs.msgs, float64(theirs.bytes)/(1<<20), theirs.d.Seconds(), theirs.msgsPerSec(), theirs.mbPerSec(),
		float64(theirs.peakRSS)/(1<<20), theirs.d.Seconds()/ours.d.Seconds())
}

// BenchmarkSyncOneMailbox: initial sync of 1 mailbox × 20,000 messages, then a pass with no
// change, then a pass after 5 % new messages.
func BenchmarkSyncOneMailbox(b *testing.B) {
	const n = 20000
	w := newBenchWorld(b, map[string]int{"big": n})
	var ourSpec emailapi.MailboxSpec
	var theirDest string
	added := n
	b.Run("initial_1x20000", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			ourSpec = w.spec(b, "big", w.account(b))
			b.StartTimer()
			ours := w.ours(b, w.par, ourSpec)
			b.StopTimer()
			var theirs measured
			if w.imapsync != "" {
				theirDest = w.account(b)
				theirs = w.theirs(b, [][2]string{{"big", theirDest}})
			}
			if ours.msgs != n {
				b.Errorf("transferred %d, want %d", ours.msgs, n)
			}
			// Untimed: the copy is complete and exact.
			if rep, err := w.eng.Verify(context.Background(), ourSpec, 0); err != nil {
				b.Errorf("err: want nil; verify after the initial sync: %+v, %v", rep, err)
			} else if !rep.OK {
				b.Errorf("rep.OK is false; verify after the initial sync: %+v, %v", rep, err)
			} else if rep.Extra+rep.FlagDiffs+rep.DateDiffs != 0 {
				b.Errorf("rep.Extra+rep.FlagDiffs+rep.DateDiffs = %v, want 0; verify after the initial sync: %+v, %v",
					rep.Extra+rep.FlagDiffs+rep.DateDiffs, rep, err)
			}
			report(b, "initial 1x20000", ours, theirs, w.imapsync != "")
		}
	})
	b.Run("delta_nochange_1x20000", func(b *testing.B) {
		for range b.N {
			b.StartTimer()
			ours := w.ours(b, w.par, ourSpec)
			b.StopTimer()
			var theirs measured
			if w.imapsync != "" {
				theirs = w.theirs(b, [][2]string{{"big", theirDest}})
			}
			if ours.msgs != 0 {
				b.Errorf("no-change pass transferred %d", ours.msgs)
			}
			b.ReportMetric(ours.d.Seconds()*1000, "ms/pass")
			b.Logf("no-change pass over %d messages: cutover %.3fs", n, ours.d.Seconds())
			if w.imapsync != "" {
				b.ReportMetric(theirs.d.Seconds()/ours.d.Seconds(), "speedup_x")
				b.Logf("no-change pass over %d messages: imapsync %.2fs; cutover is %.0fx faster", n, theirs.d.Seconds(), theirs.d.Seconds()/ours.d.Seconds())
			}
		}
	})
	b.Run("delta_5pct_new_1x20000", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			seedBench(b, w.src, "big", n/20, added)
			added += n / 20
			b.StartTimer()
			ours := w.ours(b, w.par, ourSpec)
			b.StopTimer()
			var theirs measured
			if w.imapsync != "" {
				theirs = w.theirs(b, [][2]string{{"big", theirDest}})
			}
			if ours.msgs != n/20 {
				b.Errorf("5%% delta transferred %d, want %d", ours.msgs, n/20)
			}
			report(b, "delta 5% new", ours, theirs, w.imapsync != "")
		}
	})
}

// BenchmarkSyncFiveMailboxes: initial sync of 5 mailboxes × 2,000 messages at once (the engine
// runs five passes concurrently; imapsync five processes).
func BenchmarkSyncFiveMailboxes(b *testing.B) {
	users := map[string]int{}
	for i := range 5 {
		users[fmt.Sprintf("m%d", i)] = 2000
	}
	w := newBenchWorld(b, users)
	for range b.N {
		b.StopTimer()
		var specs []emailapi.MailboxSpec
		var pairs [][2]string
		for i := range 5 {
			specs = append(specs, w.spec(b, fmt.Sprintf("m%d", i), w.account(b)))
		}
		b.StartTimer()
		ours := w.ours(b, 2, specs...)
		b.StopTimer()
		var theirs measured
		if w.imapsync != "" {
			for i := range 5 {
				pairs = append(pairs, [2]string{fmt.Sprintf("m%d", i), w.account(b)})
			}
			theirs = w.theirs(b, pairs)
		}
		if ours.msgs != 10000 {
			b.Errorf("transferred %d, want 10000", ours.msgs)
		}
		report(b, "initial 5x2000", ours, theirs, w.imapsync != "")
	}
}

// BenchmarkSyncLargeMessageRSS: a mailbox holding a 50 MB message; the figure that matters is
// peak RSS (the engine streams bodies: the message never sits whole in memory).
func BenchmarkSyncLargeMessageRSS(b *testing.B) {
	w := newBenchWorld(b, map[string]int{"huge": 500})
	mailtest.SeedMaildir(b, w.src, "huge", []mailtest.Message{mailtest.Big("INBOX", "fifty@bench.example", time.Date(2020, 2, 2, 2, 2, 2, 0, time.UTC), 50<<20)})
	warm(b, w.src, "huge")
	for range b.N {
		b.StopTimer()
		spec := w.spec(b, "huge", w.account(b))
		b.StartTimer()
		ours := w.ours(b, w.par, spec)
		b.StopTimer()
		var theirs measured
		if w.imapsync != "" {
			theirs = w.theirs(b, [][2]string{{"huge", w.account(b)}})
		}
		if ours.msgs != 501 {
			b.Errorf("transferred %d, want 501", ours.msgs)
		}
		report(b, "50 MB message", ours, theirs, w.imapsync != "")
	}
}
