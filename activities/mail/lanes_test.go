package mail

import (
	"context"
	"strings"
	"testing"

	"github.com/cutover/cutover/activities/mail/mailtest"
	"github.com/cutover/cutover/internal/model"
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
