package mail

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/cutover/cutover/activities/mail/imapx"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/faultproxy"
	"github.com/cutover/cutover/internal/testing/netdelay"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// BenchmarkSyncLatency puts the source Dovecot behind a long link (as root, inside a network
// namespace whose incoming packets the kernel holds for the round-trip time, see
// internal/testing/netdelay; else an in-process proxy holding every client→server chunk and
// the connection's SYN as long; the log says which) and measures passes through the activity (SyncMailbox: the pass lock, the run rows and the
// mailbox's row around the engine, as the worker runs it; Temporal's own share is
// BenchmarkMailboxWave's) at 0 and 40 ms, for one mailbox and five at once: the initial sync,
// a pass with no change, one after 5 % new messages and one after flag changes on 2 %. It
// counts what each pass costs on the wire: logins and commands per side, round trips on the
// source. With CUTOVER_IMAPSYNC it runs imapsync on the same corpus through the same link,
// interleaved round by round, and reports both medians and the speedup. Figures are printed,
// never asserted.
//
//	CUTOVER_IMAPSYNC=/path/to/imapsync go test -run '^$' -bench SyncLatency -benchtime 1x ./activities/mail/
//
// CUTOVER_BENCH_ROUNDS (default 3) sets the rounds per measurement, CUTOVER_BENCH_RTTS the
// round-trip times in ms (default "0,40") and CUTOVER_BENCH_SCALE the corpus (default 1: one
// mailbox of 2,000 messages and five of 500); CUTOVER_BENCH_DELAY=proxy takes the proxy even
// where the kernel-level delay is available. The counting proxy stays in front of the source
// either way, without a delay of its own when the kernel holds the packets.
func BenchmarkSyncLatency(b *testing.B) {
	rounds := envInt("CUTOVER_BENCH_ROUNDS", 3)
	scale := 1.0
	if v, err := strconv.ParseFloat(os.Getenv("CUTOVER_BENCH_SCALE"), 64); err == nil && v > 0 {
		scale = v
	}
	rtts := []time.Duration{0, 40 * time.Millisecond}
	if v := os.Getenv("CUTOVER_BENCH_RTTS"); v != "" {
		rtts = nil
		for _, f := range strings.Split(v, ",") {
			ms, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				b.Fatalf("CUTOVER_BENCH_RTTS: %v", err)
			}
			rtts = append(rtts, time.Duration(ms)*time.Millisecond)
		}
	}
	one, five := int(2000*scale), int(500*scale)
	sources := map[string]int{"one": one}
	for i := range 5 {
		sources[fmt.Sprintf("five%d", i)] = five
	}
	var srcOpts []testenv.DovecotOption
	kernel, why := netdelay.ForBench(b, 0) // the delay is set per round-trip time below
	if kernel != nil {
		srcOpts = append(srcOpts, testenv.WithLink(kernel))
	}
	w := newBenchWorld(b, sources, srcOpts...)
	for _, rtt := range rtts {
		link := newBenchLink(b, w, kernel, rtt)
		for _, shape := range []struct {
			name  string
			users []string
			n     int
		}{
			{fmt.Sprintf("1x%d", one), []string{"one"}, one},
			{fmt.Sprintf("5x%d", five), []string{"five0", "five1", "five2", "five3", "five4"}, five},
		} {
			b.Run(fmt.Sprintf("rtt%dms/%s", rtt.Milliseconds(), shape.name), func(b *testing.B) {
				if kernel != nil {
					b.Logf("delay: %s", kernel)
				} else {
					b.Logf("delay: in-process proxy holding client→server chunks %s (no kernel-level delay: %v)", rtt, why)
				}
				for range b.N {
					link.series(b, shape.users, shape.n, rounds)
				}
			})
		}
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// benchLink is the source behind a delay (the kernel's or the proxy's), both sides counted
// by proxies.
type benchLink struct {
	w        *benchWorld
	rtt      time.Duration
	srcAddr  string
	src, dst *imapCounter
	dstAddr  string
	acts     *Activities
}

// newBenchLink delays the source by rtt: the kernel's link when there is one, else the
// counting proxy itself.
func newBenchLink(b *testing.B, w *benchWorld, kernel *netdelay.Link, rtt time.Duration) *benchLink {
	b.Helper()
	sp, err := faultproxy.New(w.src.Addr())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sp.Close() })
	if kernel != nil {
		if err := kernel.SetDelay(rtt); err != nil {
			b.Fatal(err)
		}
	} else {
		sp.Set(faultproxy.Fault{Dir: faultproxy.ClientToServer, Delay: rtt})
	}
	dp, err := faultproxy.New(w.dst.Addr())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { dp.Close() })
	l := &benchLink{w: w, rtt: rtt, srcAddr: sp.Addr(), dstAddr: dp.Addr(), src: countIMAP(sp), dst: countIMAP(dp)}
	l.acts = &Activities{DB: w.db, Logger: testLogger(), Tune: func(e *Engine) {
		e.Credentials = w.eng.Credentials
		e.BatchMessages = w.eng.BatchMessages
	}}
	return l
}

// side is one tool's destination accounts for a shape.
type side struct {
	specs []emailapi.MailboxSpec // ours
	pairs [][2]string            // imapsync's (source user, destination account)
}

// series runs the four measurements of one shape, each over rounds interleaved rounds.
func (l *benchLink) series(b *testing.B, users []string, n, rounds int) {
	b.Helper()
	name := fmt.Sprintf("rtt %dms %dx%d", l.rtt.Milliseconds(), len(users), n)
	theirsToo := l.w.imapsync != ""
	var ours, theirs side
	var m benchRounds
	for r := range rounds {
		ours, theirs = l.fresh(b, users, theirsToo)
		l.round(b, &m, r, ours, theirs)
	}
	m.report(b, name+" initial", "initial", int64(n*len(users)))

	m = benchRounds{}
	for r := range rounds {
		l.round(b, &m, r, ours, theirs)
	}
	m.report(b, name+" no change", "nochange", 0)

	m = benchRounds{}
	for r := range rounds {
		for _, u := range users {
			seedBench(b, l.w.src, u, n/20, l.w.fresh(n/20))
		}
		l.round(b, &m, r, ours, theirs)
	}
	m.report(b, name+" 5% new", "new5pct", int64(n/20*len(users)))

	m = benchRounds{}
	for r := range rounds {
		for _, u := range users {
			l.flagSome(b, u, n/50, l.w.nextStretch(u)) // messages no earlier round flagged
		}
		l.round(b, &m, r, ours, theirs)
	}
	m.report(b, name+" 2% flags", "flags2pct", 0)
}

// fresh hands out new destination accounts for each tool.
func (l *benchLink) fresh(b *testing.B, users []string, theirsToo bool) (ours, theirs side) {
	b.Helper()
	for _, u := range users {
		s := l.w.spec(b, u, l.w.account(b))
		s.Source.Addr, s.Dest.Addr = l.srcAddr, l.dstAddr
		ours.specs = append(ours.specs, s)
		if theirsToo {
			theirs.pairs = append(theirs.pairs, [2]string{u, l.w.account(b)})
		}
	}
	return ours, theirs
}

// flagSome sets \Flagged on count messages of user's INBOX, the stretch-th run of them.
func (l *benchLink) flagSome(b *testing.B, user string, count, stretch int) {
	b.Helper()
	c, err := imapx.Dial(context.Background(), imapx.Config{Addr: l.w.src.Addr(), Security: "plain", User: user},
		imapx.Credentials{Password: benchPassword})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Logout()
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		b.Fatal(err)
	}
	var set imap.SeqSet
	set.AddRange(uint32(1+stretch*count), uint32((stretch+1)*count))
	if err := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err != nil {
		b.Fatal(err)
	}
}

// wire is what one measured run cost on the wire.
type wire struct {
	srcLogins, dstLogins, srcCmds, dstCmds, srcRTTs int
}

// ours runs one pass of every spec at once through the activity and counts its traffic.
func (l *benchLink) ours(b *testing.B, s side) (measured, wire) {
	b.Helper()
	l.src.reset()
	l.dst.reset()
	m := passAll(b, s.specs, func(spec emailapi.MailboxSpec) (emailapi.PassStats, error) {
		return l.acts.SyncMailbox(context.Background(), emailapi.PassRequest{Spec: spec, Mode: model.ModeCopy,
			RunType: model.RunDelta, Phase: model.PhaseDeltaSync, Parallelism: l.w.par})
	})
	st, dt := l.src.tally(), l.dst.tally()
	return m, wire{srcLogins: st.Sessions, dstLogins: dt.Sessions, srcCmds: st.Commands, dstCmds: dt.Commands, srcRTTs: st.RTTs}
}

// theirs runs imapsync through the same link, or nothing without CUTOVER_IMAPSYNC.
func (l *benchLink) theirs(b *testing.B, s side) (measured, wire) {
	b.Helper()
	if len(s.pairs) == 0 {
		return measured{}, wire{}
	}
	l.src.reset()
	l.dst.reset()
	saved := [2]string{l.w.srcAddr, l.w.dstAddr}
	l.w.srcAddr, l.w.dstAddr = l.srcAddr, l.dstAddr
	m := l.w.theirs(b, s.pairs)
	l.w.srcAddr, l.w.dstAddr = saved[0], saved[1]
	st, dt := l.src.tally(), l.dst.tally()
	return m, wire{srcLogins: st.Sessions, dstLogins: dt.Sessions, srcCmds: st.Commands, dstCmds: dt.Commands, srcRTTs: st.RTTs}
}

// benchRounds collects interleaved rounds of both tools.
type benchRounds struct {
	ours, theirs []measured
	ow, tw       []wire
}

// round runs both tools once, in turn: odd rounds imapsync first, so neither always meets a
// server the other just warmed.
func (l *benchLink) round(b *testing.B, r *benchRounds, i int, ours, theirs side) {
	b.Helper()
	var om, tm measured
	var ow, tw wire
	if i%2 == 1 {
		tm, tw = l.theirs(b, theirs)
	}
	om, ow = l.ours(b, ours)
	if i%2 == 0 {
		tm, tw = l.theirs(b, theirs)
	}
	r.ours, r.ow = append(r.ours, om), append(r.ow, ow)
	if tm.d > 0 {
		r.theirs, r.tw = append(r.theirs, tm), append(r.tw, tw)
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func durations(ms []measured) []time.Duration {
	out := make([]time.Duration, len(ms))
	for i, m := range ms {
		out[i] = m.d
	}
	return out
}

// report prints the rounds and their medians; msgs is what each round copies.
func (r *benchRounds) report(b *testing.B, what, metric string, msgs int64) {
	b.Helper()
	om := median(durations(r.ours))
	b.ReportMetric(om.Seconds()*1000, metric+"_ms")
	last := r.ow[len(r.ow)-1]
	b.Logf("%s cutover: median %.3fs over %d rounds %v; last round: logins %d+%d, commands %d+%d, source round trips %d",
		what, om.Seconds(), len(r.ours), durations(r.ours), last.srcLogins, last.dstLogins, last.srcCmds, last.dstCmds, last.srcRTTs)
	if msgs > 0 {
		b.ReportMetric(float64(msgs)/om.Seconds(), metric+"_msgs/s")
	} else {
		b.ReportMetric(1/om.Seconds(), metric+"_passes/s")
	}
	b.ReportMetric(float64(last.srcRTTs), metric+"_src_rtts")
	b.ReportMetric(float64(last.srcLogins+last.dstLogins), metric+"_logins")
	if len(r.theirs) == 0 {
		return
	}
	tm := median(durations(r.theirs))
	tl := r.tw[len(r.tw)-1]
	b.ReportMetric(tm.Seconds()*1000, metric+"_imapsync_ms")
	b.ReportMetric(tm.Seconds()/om.Seconds(), metric+"_speedup_x")
	b.Logf("%s imapsync: median %.3fs over %d rounds %v; last round: logins %d+%d, commands %d+%d, source round trips %d; cutover is %.1fx faster",
		what, tm.Seconds(), len(r.theirs), durations(r.theirs), tl.srcLogins, tl.dstLogins, tl.srcCmds, tl.dstCmds, tl.srcRTTs, tm.Seconds()/om.Seconds())
}
