package mail

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cutover/cutover/activities/mail/mailtest"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/faultproxy"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// lanesEnv is a one-folder mailbox of n messages cut into chunks of 100, copied in batches of
// 20 by one worker, the destination behind a counting proxy.
func lanesEnv(t *testing.T, n int, dstOpts []string) (*env, *imapCounter) {
	t.Helper()
	e := newEnv(t, nil, dstOpts)
	e.eng.ChunkMessages, e.eng.BatchMessages = 100, 20
	mailtest.SeedMaildir(t, e.src, "alice", mailtest.Bulk(mailtest.BulkOptions{Messages: n, Folders: []string{"INBOX"}, Seed: 11, Prefix: "lanes"}))
	p := proxied(t, e, true)
	return e, countIMAP(p)
}

// appendingConns counts the connections that sent an APPEND.
func appendingConns(tl imapTally) int {
	n := 0
	for _, c := range tl.Conns {
		if strings.Contains(c, " APPEND") {
			n++
		}
	}
	return n
}

func lanesPass(t *testing.T, e *env, phase model.Phase) emailapi.PassStats {
	t.Helper()
	st, err := e.eng.Sync(context.Background(), emailapi.PassRequest{Spec: e.spec, Mode: model.ModeCopy, RunType: model.RunInitial,
		Phase: phase, Parallelism: 1}, SyncOptions{})
	if err != nil {
		t.Fatalf("pass: %v", err)
	}
	if st.Transferred != 600 {
		t.Fatalf("st.Transferred: want 600; transferred %d pending %d errors %v", st.Transferred, st.Pending, st.ErrorsByClass)
	}
	if st.Pending != 0 {
		t.Fatalf("st.Pending: want 0; transferred %d pending %d errors %v", st.Transferred, st.Pending, st.ErrorsByClass)
	}
	return st
}

// A folder copied in several chunks appends over more connections than the pass has workers:
// one worker spreads each chunk's batches over its own append connection and one the pass
// lends it; the copy is complete and exact.
func TestChunksAppendOverALentConnection(t *testing.T) {
	e, dst := lanesEnv(t, 600, nil)
	lanesPass(t, e, model.PhaseInitialSync)
	tl := dst.tally()
	if got := appendingConns(tl); got != 2 {
		t.Errorf("appending connections: want 2 (the worker's and one lent); destination %v", tl)
	}
	if tl.Sessions > 3 {
		t.Errorf("tl.Sessions: want <= 3 (control, append, one lent); destination %v", tl)
	}
	e.requireClean(0)
}

// A chunk that started before the pass could lend a connection (its other workers still
// logging in) borrows one at a later batch, as soon as the pass can lend it, rather than
// streaming the rest of its folder over one connection.
func TestChunkBorrowsALentConnectionMidStream(t *testing.T) {
	e, dst := lanesEnv(t, 600, nil)
	var asked atomic.Int32
	testHookLanesReady = func() bool { return asked.Add(1) > 1 } // not at the chunk's start
	t.Cleanup(func() { testHookLanesReady = nil })
	lanesPass(t, e, model.PhaseInitialSync)
	tl := dst.tally()
	if asked.Load() < 2 {
		t.Errorf("the pass asked %d time(s) whether it could lend, want at least 2", asked.Load())
	}
	if got := appendingConns(tl); got != 2 {
		t.Errorf("appending connections: want 2 (the worker's and one lent after its first batch); destination %v", tl)
	}
	e.requireClean(0)
}

// Once users may write to the destination the pass lends no connection: their mail clients
// need them more.
func TestNoLentConnectionAfterCutover(t *testing.T) {
	e, dst := lanesEnv(t, 600, nil)
	lanesPass(t, e, model.PhaseDNSCutover)
	tl := dst.tally()
	if got := appendingConns(tl); got != 1 {
		t.Errorf("appending connections: want 1 after DNS cutover; destination %v", tl)
	}
	e.requireClean(0)
}

// A destination allowing only the worker's two connections refuses the one the pass would
// lend: the copy goes on, complete, on the worker's own.
func TestLentConnectionRefusedByALimit(t *testing.T) {
	e, dst := lanesEnv(t, 600, []string{"mail_max_userip_connections = 2"})
	st := lanesPass(t, e, model.PhaseInitialSync)
	tl := dst.tally()
	if tl.Sessions < 3 {
		t.Errorf("tl.Sessions = %d, want >= 3 (the lent connection tried); destination %v", tl.Sessions, tl)
	}
	if got := appendingConns(tl); got != 1 {
		t.Errorf("appending connections: want 1 under the limit; destination %v", tl)
	}
	if len(st.ErrorsByClass) != 0 {
		t.Errorf("st.ErrorsByClass = %v, want none", st.ErrorsByClass)
	}
	e.requireClean(0)
}

// A worker that has streamed its chunk of a folder streams the folder's next queued chunk on
// the same connections behind it, rather than first waiting for every answer: with the
// destination's answers 200 ms away, the source's FETCH of each next chunk goes out while
// appends of the chunk before are still unanswered. The copy is complete and exact.
func TestChunksStreamOnWithoutWaitingAtTheirBoundaries(t *testing.T) {
	e, dst := lanesEnv(t, 600, nil)
	dst.p.Set(faultproxy.Fault{Dir: faultproxy.ClientToServer, Delay: 200 * time.Millisecond})
	src := proxied(t, e, false)
	var mu sync.Mutex
	streams := map[int64]*imapStream{}
	var fetches, behind int // FETCHes of message bodies; those sent with appends unanswered
	src.Observe(func(conn int64, dir faultproxy.Direction, b []byte) {
		if dir != faultproxy.ClientToServer {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if streams[conn] == nil {
			streams[conn] = &imapStream{}
		}
		streams[conn].feed(b, func(line string, first bool) {
			if first && strings.Contains(line, " UID FETCH ") && strings.Contains(line, "BODY.PEEK[]") {
				fetches++
				if dst.appendsInFlight() > 0 {
					behind++
				}
			}
		})
	})
	lanesPass(t, e, model.PhaseInitialSync)
	mu.Lock()
	gotFetches, gotBehind := fetches, behind
	mu.Unlock()
	if gotFetches != 6 {
		t.Errorf("body FETCHes = %d, want 6 (one per chunk); destination %v", gotFetches, dst.tally())
	}
	// Six chunks: five boundaries.
	if gotBehind < 4 {
		t.Errorf("body FETCHes sent with appends unanswered = %d of %d, want at least 4 (one per chunk boundary, give or take); destination %v",
			gotBehind, gotFetches, dst.tally())
	}
	e.requireClean(0)
}
