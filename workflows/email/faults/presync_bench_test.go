package faults_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// wanMailboxes stands in for activities/emailjob's mailbox loading: it hands the wave the
// benchmark's mailbox specs (real servers) and records nothing.
type wanMailboxes struct{ specs []emailapi.MailboxSpec }

func (f *wanMailboxes) LoadEmailMailboxes(_ context.Context, req emailapi.LoadRequest) ([]emailapi.MailboxSpec, error) {
	var out []emailapi.MailboxSpec
	for _, s := range f.specs {
		if s.MailboxID > req.AfterID && len(out) < req.Limit {
			out = append(out, s)
		}
	}
	return out, nil
}
func (f *wanMailboxes) MarkEmailMailbox(context.Context, emailapi.MailboxMark) error { return nil }

const wanPassword = "wan-pw"

// BenchmarkPresyncOverWAN is a presync of five mailboxes through Temporal (productRig: the
// wave workflow, a mailbox workflow per mailbox and its SyncMailbox activity on the real
// engine), the source Dovecot behind a 40 ms link: as root, inside a network namespace whose
// incoming packets the kernel holds 40 ms (internal/testing/netdelay), else behind a delaying
// proxy (every client→server chunk and the connection's SYN held 40 ms); the log says which.
// It times the initial sync and passes with no change, and with CUTOVER_IMAPSYNC imapsync's
// runs on the same mailboxes through the same link, interleaved round by round (medians
// reported).
//
//	CUTOVER_IMAPSYNC=/path/to/imapsync go test -run '^$' -bench PresyncOverWAN -benchtime 1x ./workflows/email/faults/
//
// CUTOVER_BENCH_ROUNDS (default 3), CUTOVER_BENCH_MESSAGES (per mailbox, default 500) and
// CUTOVER_BENCH_RTT_MS (default 40) shape it; CUTOVER_BENCH_DELAY=proxy takes the proxy even
// where the kernel-level delay is available.
func BenchmarkPresyncOverWAN(b *testing.B) {
	rounds, msgs, rttMS := benchEnv("CUTOVER_BENCH_ROUNDS", 3), benchEnv("CUTOVER_BENCH_MESSAGES", 500), benchEnv("CUTOVER_BENCH_RTT_MS", 40)
	const n = 5
	var srcUsers, dstUsers []string
	var pairs, theirPairs [][2]string
	for i := range n {
		srcUsers = append(srcUsers, fmt.Sprintf("wan%d", i))
		dstUsers = append(dstUsers, fmt.Sprintf("ours%d", i), fmt.Sprintf("theirs%d", i))
		pairs = append(pairs, [2]string{srcUsers[i], fmt.Sprintf("ours%d", i)})
		theirPairs = append(theirPairs, [2]string{srcUsers[i], fmt.Sprintf("theirs%d", i)})
	}
	r := newProductRig(b, srcUsers, msgs, dstUsers, rttMS)
	spec := r.job(pairs)
	for range b.N {
		// The initial sync, once each (untimed beside the presyncs it prepares).
		d, res := r.wave(spec, model.RunInitial)
		b.Logf("initial sync of %dx%d at %d ms through Temporal: %.2fs (%d transferred)", n, msgs, rttMS, d.Seconds(), res.Transferred)
		if t := r.theirs(theirPairs); t > 0 {
			b.Logf("initial sync imapsync: %.2fs; cutover is %.1fx faster", t.Seconds(), t.Seconds()/d.Seconds())
		}
		var ours, their []time.Duration
		for round := range rounds {
			if round%2 == 1 {
				their = append(their, r.theirs(theirPairs))
			}
			d, res := r.wave(spec, model.RunDelta)
			if res.Transferred != 0 {
				b.Errorf("no-change presync transferred %d", res.Transferred)
			}
			ours = append(ours, d)
			act, eng := r.timing.slowest()
			first, last := r.timing.span()
			b.Logf("no-change round %d: wave %.3fs, slowest activity %.3fs (engine %.3fs); activities from %.3fs to %.3fs of the wave",
				round, d.Seconds(), act.Seconds(), eng.Seconds(), first.Seconds(), last.Seconds())
			if round%2 == 0 {
				their = append(their, r.theirs(theirPairs))
			}
		}
		om := medianOf(ours)
		b.ReportMetric(om.Seconds()*1000, "nochange_ms")
		b.Logf("no-change presync of %dx%d at %d ms through Temporal: median %.3fs of %v", n, msgs, rttMS, om.Seconds(), ours)
		if r.imapsync != "" {
			tm := medianOf(their)
			b.ReportMetric(tm.Seconds()*1000, "nochange_imapsync_ms")
			b.ReportMetric(tm.Seconds()/om.Seconds(), "nochange_speedup_x")
			b.Logf("no-change imapsync: median %.3fs of %v; cutover is %.1fx faster", tm.Seconds(), their, tm.Seconds()/om.Seconds())
		}
	}
}

func benchEnv(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func medianOf(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func portOf(addr string) string {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			return addr[i+1:]
		}
	}
	return addr
}
