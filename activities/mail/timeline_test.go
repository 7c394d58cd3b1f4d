package mail

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/faultproxy"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// timelines keeps the "pass timeline" records logged through it, each as its steps' offsets.
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
		if a.Value.Kind() == slog.KindDuration {
			m[a.Key] = a.Value.Duration()
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
	ce.srcProxy.Set(faultproxy.Fault{Dir: faultproxy.ClientToServer, Delay: 50 * time.Millisecond})
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
		t.Errorf("tl[\"ledger_read\"] = %v, want before the source's login at %v (a 50 ms link): %v", read, in, tl)
	}
}
