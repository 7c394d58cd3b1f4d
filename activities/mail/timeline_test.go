package mail

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/cutover/cutover/activities/mail/mailtest"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/faultproxy"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// timelines keeps the "pass timeline" records logged through it, each as its steps' offsets
// ("began": the offsets' origin, as an offset from the Unix epoch).
type timelines struct {
	slog.Handler
	mu   *sync.Mutex
	seen *[]map[string]time.Duration
}

func newTimelines() (*slog.Logger, func() []map[string]time.Duration) {
	tl := timelines{Handler: slog.NewTextHandler(discard{}, nil), mu: &sync.Mutex{}, seen: new([]map[string]time.Duration)}
	return slog.New(tl), func() []map[string]time.Duration {
		tl.mu.Lock()
		defer tl.mu.Unlock()
		return append([]map[string]time.Duration(nil), *tl.seen...)
	}
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }

func (timelines) Enabled(context.Context, slog.Level) bool { return true }
func (h timelines) WithAttrs([]slog.Attr) slog.Handler     { return h }
func (h timelines) WithGroup(string) slog.Handler          { return h }
func (h timelines) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "pass timeline" {
		return nil
	}
	m := map[string]time.Duration{}
	r.Attrs(func(a slog.Attr) bool {
		switch a.Value.Kind() {
		case slog.KindDuration:
			m[a.Key] = a.Value.Duration()
		case slog.KindTime:
			m[a.Key] = time.Duration(a.Value.Time().UnixNano())
		}
		return true
	})
	h.mu.Lock()
	*h.seen = append(*h.seen, m)
	h.mu.Unlock()
	return nil
}

// TestLedgerIsReadWhileTheSourceLogsIn: the ledger's reads from PostgreSQL depend on nothing
// the servers say, so a pass has them before its source session has even logged in over a
// long link, rather than queueing them behind the listing.
func TestLedgerIsReadWhileTheSourceLogsIn(t *testing.T) {
	ce := newCostEnv(t, 60)
	ce.pass(t, false) // the initial sync: the ledger has folders
	// A link long enough that the ledger's two queries end first on a loaded machine too.
	ce.srcProxy.Set(faultproxy.Fault{Dir: faultproxy.ClientToServer, Delay: 250 * time.Millisecond})
	log, got := newTimelines()
	ce.eng.Logger = log
	if _, err := ce.eng.Sync(context.Background(), emailapi.PassRequest{Spec: ce.spec, Mode: model.ModeCopy, RunType: model.RunDelta,
		Phase: model.PhaseDeltaSync}, SyncOptions{}); err != nil {
		t.Fatalf("pass: %v", err)
	}
	tls := got()
	if len(tls) != 1 {
		t.Fatalf("len(tls) = %d, want 1 pass timeline: %v", len(tls), tls)
	}
	tl := tls[0]
	read, ok := tl["ledger_read"]
	if !ok {
		t.Fatalf("tl[\"ledger_read\"] missing, want the ledger's read in the pass timeline: %v", tl)
	}
	if in := tl["src_logged_in"]; read >= in {
		t.Errorf("tl[\"ledger_read\"] = %v, want before the source's login at %v (a 250 ms link): %v", read, in, tl)
	}
}

// TestSyncActivityLogsInBesideItsRunRow: the SyncMailbox activity opens the pass's sessions
// while it writes its run row and takes its pass lock (PostgreSQL), not after: the source
// session the pass works on began connecting before the run row was written, the ledger was
// read before that session had logged in, and the pass logs in once per side all the same.
func TestSyncActivityLogsInBesideItsRunRow(t *testing.T) {
	e := newEnv(t, nil, nil)
	a := withVault(t, e)
	mailtest.SeedMaildir(t, e.src, "alice", mailtest.Bulk(mailtest.BulkOptions{Messages: 40, Folders: []string{"INBOX", "A"}, Seed: 5}))
	p := proxied(t, e, false)
	cnt := countIMAP(p)
	log, got := newTimelines()
	a.Logger = log
	req := emailapi.PassRequest{Spec: e.spec, Mode: model.ModeCopy, RunType: model.RunDelta, Phase: model.PhaseDeltaSync, TriggeredBy: "tester"}
	var s testsuite.WorkflowTestSuite
	run := func() emailapi.PassStats {
		t.Helper()
		env := s.NewTestActivityEnvironment()
		env.RegisterActivity(a)
		val, err := env.ExecuteActivity(a.SyncMailbox, req)
		if err != nil {
			t.Fatalf("SyncMailbox: %v", err)
		}
		var st emailapi.PassStats
		if err := val.Get(&st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	if st := run(); st.Transferred != 40 {
		t.Fatalf("st.Transferred = %d, want 40 (the initial sync)", st.Transferred)
	}
	p.Set(faultproxy.Fault{Dir: faultproxy.ClientToServer, Delay: 60 * time.Millisecond})
	// timed runs a pass and returns its engine's and its activity's timelines; with slowRow the
	// run row's INSERT waits for a lock on migration_runs another connection holds until the
	// sessions opened ahead are ready (or 5 s: a pass that dials only after its run row).
	timed := func(slowRow bool) (pass, act map[string]time.Duration) {
		t.Helper()
		cnt.reset()
		before := len(got())
		if slowRow {
			ctx := context.Background()
			tx, err := e.db.Pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(ctx, `LOCK TABLE migration_runs IN SHARE ROW EXCLUSIVE MODE`); err != nil {
				t.Fatal(err)
			}
			var once sync.Once
			release := func() { once.Do(func() { _ = tx.Rollback(ctx) }) }
			testHookDialed = release
			defer func() { testHookDialed = nil }()
			time.AfterFunc(5*time.Second, release)
		}
		run()
		tls := got()[before:]
		for _, tl := range tls {
			if _, ok := tl["run_row"]; ok {
				act = tl
			} else {
				pass = tl
			}
		}
		if pass == nil {
			t.Fatalf("pass == nil, want the engine's timeline among %v", tls)
		}
		if act == nil {
			t.Fatalf("act == nil, want the activity's timeline among %v", tls)
		}
		if tally := cnt.tally(); tally.Sessions != 1 {
			t.Errorf("tally.Sessions = %d, want 1 source login for the pass: %v", tally.Sessions, tally)
		}
		return pass, act
	}
	pass, act := timed(true)
	dial, in, row := pass["began"]+pass["src_dial"], pass["began"]+pass["src_logged_in"], act["began"]+act["run_row"]
	if dial >= row {
		t.Errorf("the pass's source session began connecting %v after the run row was written, want before it: pass %v, activity %v",
			dial-row, pass, act)
	}
	if in >= row {
		t.Errorf("the pass's source session logged in %v after the run row was written, want before: pass %v, activity %v",
			in-row, pass, act)
	}
	// A link long enough that the ledger's two queries end first on a loaded machine too.
	p.Set(faultproxy.Fault{Dir: faultproxy.ClientToServer, Delay: 250 * time.Millisecond})
	pass, _ = timed(false)
	if read, in := pass["ledger_read"], pass["src_logged_in"]; read >= in {
		t.Errorf("pass[\"ledger_read\"] = %v, want before the source's login at %v (a 250 ms link): the ledger is read while it logs in: %v",
			read, in, pass)
	}
}
