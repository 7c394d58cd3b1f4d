package mail

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cutover/cutover/activities/mail/mailtest"
	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// sqlCounter is a store.Querier recording every statement run through it (a batch's queued
// statements one by one).
type sqlCounter struct {
	store.Querier
	mu    sync.Mutex
	stmts []string
}

func (c *sqlCounter) see(sql string) {
	c.mu.Lock()
	c.stmts = append(c.stmts, strings.Join(strings.Fields(sql), " "))
	c.mu.Unlock()
}

func (c *sqlCounter) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	c.see(sql)
	return c.Querier.Exec(ctx, sql, args...)
}

func (c *sqlCounter) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	c.see(sql)
	return c.Querier.Query(ctx, sql, args...)
}

func (c *sqlCounter) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	c.see(sql)
	return c.Querier.QueryRow(ctx, sql, args...)
}

func (c *sqlCounter) CopyFrom(ctx context.Context, t pgx.Identifier, cols []string, src pgx.CopyFromSource) (int64, error) {
	c.see("COPY " + t.Sanitize())
	return c.Querier.CopyFrom(ctx, t, cols, src)
}

func (c *sqlCounter) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	for _, q := range b.QueuedQueries {
		c.see(q.SQL)
	}
	return c.Querier.SendBatch(ctx, b)
}

// take returns the statements recorded since the last take.
func (c *sqlCounter) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.stmts
	c.stmts = nil
	return out
}

// TestNoChangePassStatements counts the control database statements of a pass through the
// activity over a mailbox with nothing new: six, whatever its folder count — the run row
// opened and closed, the mailbox row marked syncing and given its outcome, the ledger's folders
// and their counts (which also tell whether quarantine rows or dropped keywords need reading).
// The pass lock has its own connection, apart.
func TestNoChangePassStatements(t *testing.T) {
	e := newEnv(t, nil, nil)
	mailtest.SeedMaildir(t, e.src, "alice", mailtest.Bulk(mailtest.BulkOptions{Messages: 120, Folders: costFolders, Seed: 5, Prefix: "sql"}))
	cnt := &sqlCounter{Querier: e.db.Pool}
	acts := &Activities{DB: &store.DB{Store: store.New(cnt), Pool: e.db.Pool}, Logger: testLogger(), LogDir: t.TempDir(),
		Tune: func(en *Engine) { en.Credentials = testCredentials }}
	pass := func() emailapi.PassStats {
		t.Helper()
		st, err := acts.SyncMailbox(context.Background(), emailapi.PassRequest{Spec: e.spec, Mode: model.ModeCopy, RunType: model.RunDelta,
			Phase: model.PhaseDeltaSync})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	if st := pass(); st.Transferred != 120 {
		t.Fatalf("initial pass transferred %d, want 120", st.Transferred)
	}
	cnt.take()
	if st := pass(); st.Transferred != 0 {
		t.Fatalf("st.Transferred: want 0; no-change pass: transferred %d, found %d; want 0 and 120",
			st.Transferred, st.Found)
	} else if st.Found != 120 {
		t.Fatalf("st.Found: want 120; no-change pass: transferred %d, found %d; want 0 and 120",
			st.Transferred, st.Found)
	}
	stmts := cnt.take()
	var b strings.Builder
	for i, s := range stmts {
		fmt.Fprintf(&b, "\n  %2d %.110s", i+1, s)
	}
	t.Logf("no-change pass: %d statements%s", len(stmts), b.String())
	const want = 6
	if len(stmts) > want {
		t.Errorf("a no-change pass ran %d statements on the control database, want at most %d", len(stmts), want)
	}
}
