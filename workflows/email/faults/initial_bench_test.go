package faults_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/model"
)

// BenchmarkInitialSyncThroughTemporal is the initial sync through the product (productRig:
// a worker on Temporal, the wave workflow, a mailbox workflow and SyncMailbox activity per
// mailbox on the real engine, PostgreSQL bookkeeping) beside imapsync on the same corpus
// when CUTOVER_IMAPSYNC is set. Each round copies into fresh destination accounts, ours and
// imapsync's taking turns (imapsync first on odd rounds); medians of the rounds. Cases:
// 5 mailboxes × 2,000 and 1 × 20,000 on loopback, 1 × 5,000 with the source behind a 40 ms
// link (the kernel-level delay where available, else the proxy: see kernelDelay). Besides wall time it reports the slowest SyncMailbox activity and its engine pass, so
// the shares of Temporal (wave beyond activity) and of the pass's bookkeeping (activity beyond
// engine) show.
//
//	CUTOVER_IMAPSYNC=/path/to/imapsync go test -run '^$' -bench InitialSyncThroughTemporal -benchtime 1x ./workflows/email/faults/
//
// CUTOVER_BENCH_ROUNDS (default 3) sets the rounds.
func BenchmarkInitialSyncThroughTemporal(b *testing.B) {
	for _, c := range []struct {
		mailboxes, msgs, rttMS int
	}{
		{mailboxes: 5, msgs: 2000},
		{mailboxes: 1, msgs: 20000},
		{mailboxes: 1, msgs: 5000, rttMS: 40},
	} {
		b.Run(fmt.Sprintf("%dx%d_%dms", c.mailboxes, c.msgs, c.rttMS), func(b *testing.B) {
			benchInitial(b, c.mailboxes, c.msgs, c.rttMS)
		})
	}
}

func benchInitial(b *testing.B, n, msgs, rttMS int) {
	rounds := benchEnv("CUTOVER_BENCH_ROUNDS", 3)
	var srcUsers, dstUsers []string
	for i := range n {
		srcUsers = append(srcUsers, fmt.Sprintf("src%d", i))
	}
	// Fresh destination accounts for every round and side.
	accounts := func(side string, round int) [][2]string {
		var out [][2]string
		for i := range n {
			out = append(out, [2]string{srcUsers[i], fmt.Sprintf("%s%d-%d", side, round, i)})
		}
		return out
	}
	for round := range rounds * b.N {
		for _, side := range []string{"ours", "theirs"} {
			for _, p := range accounts(side, round) {
				dstUsers = append(dstUsers, p[1])
			}
		}
	}
	r := newProductRig(b, srcUsers, msgs, dstUsers, rttMS)
	total := int64(n * msgs)
	round := 0
	for range b.N {
		var ours, their []time.Duration
		for range rounds {
			if round%2 == 1 {
				their = append(their, r.theirs(accounts("theirs", round)))
			}
			d, res := r.wave(r.job(accounts("ours", round)), model.RunInitial)
			if res.Transferred != total {
				b.Errorf("initial sync transferred %d, want %d", res.Transferred, total)
			}
			ours = append(ours, d)
			act, eng := r.timing.slowest()
			b.Logf("round %d: wave %.2fs (%.0f msgs/s), slowest activity %.2fs, its engine pass %.2fs; Temporal %.2fs, bookkeeping %.2fs",
				round, d.Seconds(), float64(total)/d.Seconds(), act.Seconds(), eng.Seconds(), (d - act).Seconds(), (act - eng).Seconds())
			if round%2 == 0 {
				their = append(their, r.theirs(accounts("theirs", round)))
			}
			round++
		}
		om := medianOf(ours)
		b.ReportMetric(om.Seconds(), "initial_s")
		b.ReportMetric(float64(total)/om.Seconds(), "msgs/s")
		b.Logf("initial sync of %dx%d at %d ms through Temporal: median %.2fs of %v", n, msgs, rttMS, om.Seconds(), ours)
		if r.imapsync != "" {
			tm := medianOf(their)
			b.ReportMetric(tm.Seconds(), "initial_imapsync_s")
			b.ReportMetric(tm.Seconds()/om.Seconds(), "speedup_x")
			b.Logf("initial sync imapsync: median %.2fs of %v; cutover is %.1fx faster", tm.Seconds(), their, tm.Seconds()/om.Seconds())
		}
	}
}
