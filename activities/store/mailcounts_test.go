package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/internal/model"
)

// recount is MailFolderCounts computed the long way, from every ledger row of the mailbox.
func recount(t *testing.T, db *store.DB, mailboxID int64) map[int64]store.MailFolderCount {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), `SELECT f.id, count(m.*) FILTER (WHERE m.state <> 'pending'),
			coalesce(sum(m.size) FILTER (WHERE m.state <> 'pending'), 0)::bigint,
			count(m.*) FILTER (WHERE m.state = 'pending'),
			(SELECT count(*) FROM mail_quarantine q WHERE q.folder_id = f.id AND q.resolved_at IS NULL),
			count(m.*) FILTER (WHERE cardinality(m.dropped_flags) > 0)
		FROM mail_folders f LEFT JOIN mail_messages m ON m.folder_id = f.id
		WHERE f.mailbox_id = $1 GROUP BY f.id`, mailboxID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64]store.MailFolderCount{}
	for rows.Next() {
		var c store.MailFolderCount
		if err := rows.Scan(&c.FolderID, &c.Messages, &c.Bytes, &c.Pending, &c.Quarantined, &c.Dropped); err != nil {
			t.Fatal(err)
		}
		out[c.FolderID] = c
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func ledgerRows(folderID int64, from, n int, state string) []store.MailMessage {
	ms := make([]store.MailMessage, n)
	for i := range ms {
		ms[i] = store.MailMessage{FolderID: folderID, SourceUID: int64(from + i), State: state,
			Identity: fmt.Sprintf("id-%d", from+i), Size: int64(100 + i%7)}
	}
	return ms
}

// TestMailFolderCountsFollowEveryLedgerWrite: the per-folder summaries PostgreSQL keeps agree
// with a recount of the rows after each kind of ledger write.
func TestMailFolderCountsFollowEveryLedgerWrite(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	ctx := context.Background()
	job, err := db.CreateJob(ctx, store.Job{TenantID: 1, Domain: "counts.example"})
	if err != nil {
		t.Fatal(err)
	}
	mb, err := db.UpsertMailbox(ctx, store.Mailbox{JobID: job.ID, Email: "a@counts.example", SourceType: model.SourceIMAP})
	if err != nil {
		t.Fatal(err)
	}
	inbox, err := db.EnsureMailFolder(ctx, mb.ID, "INBOX", "INBOX", "")
	if err != nil {
		t.Fatal(err)
	}
	sent, err := db.EnsureMailFolder(ctx, mb.ID, "Sent", "Sent", `\Sent`)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		do   func() error
	}{
		{"pending intents", func() error {
			return db.PutMailMessages(ctx, append(ledgerRows(inbox.ID, 1, 300, store.MailPending), ledgerRows(sent.ID, 1, 40, store.MailPending)...))
		}},
		{"confirmed", func() error {
			return db.ConfirmMailMessages(ctx, inbox.ID, store.MailCopied, []int64{1, 2, 3, 4, 5}, []int64{11, 12, 13, 14, 15})
		}},
		{"upsert over existing rows", func() error {
			return db.PutMailMessages(ctx, append(ledgerRows(inbox.ID, 200, 150, store.MailAdopted), ledgerRows(sent.ID, 30, 5, store.MailCopied)...))
		}},
		{"flags only", func() error {
			return db.SetMailMessageFlags(ctx, inbox.ID, []int64{1, 2}, [][]string{{`\Seen`}, {`\Flagged`}})
		}},
		{"dropped keywords", func() error {
			return db.AddMailDroppedFlags(ctx, inbox.ID, []int64{1, 250}, [][]string{{"$a"}, {"$b"}})
		}},
		{"deleted rows", func() error { return db.DeleteMailMessages(ctx, inbox.ID, []int64{1, 3, 7, 260}) }},
		{"quarantined", func() error {
			return db.QuarantineMailMessage(ctx, store.MailQuarantine{MailboxID: mb.ID, FolderID: sent.ID, SourceUID: 99,
				Identity: "q", Size: 5, ErrorClass: "too_big", Reason: "too big"})
		}},
		{"folder reset", func() error { return db.ResetMailFolder(ctx, sent.ID, 7, "Sent") }},
		{"reset keeping claims", func() error {
			if err := db.PutMailMessages(ctx, ledgerRows(sent.ID, 1, 10, store.MailCopied)); err != nil {
				return err
			}
			return db.ResetMailFolderKeepingClaims(ctx, inbox.ID, 9)
		}},
		{"folder deleted", func() error { return db.DeleteMailFolder(ctx, sent.ID) }},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		got, err := db.MailFolderCounts(ctx, mb.ID)
		if err != nil {
			t.Fatalf("%s: MailFolderCounts: %v", st.name, err)
		}
		if diff := cmp.Diff(recount(t, db, mb.ID), got); diff != "" {
			t.Fatalf("after %s: MailFolderCounts differs from a recount (-recount +got):\n%s", st.name, diff)
		}
	}
}

// TestMailFolderCountsReadNoLedgerRows: reading the summaries reads no mail_messages row,
// whatever the ledger's size (PostgreSQL's per-transaction table statistics count the rows
// a statement read), while a recount reads them all.
func TestMailFolderCountsReadNoLedgerRows(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	ctx := context.Background()
	job, err := db.CreateJob(ctx, store.Job{TenantID: 1, Domain: "read.example"})
	if err != nil {
		t.Fatal(err)
	}
	mb, err := db.UpsertMailbox(ctx, store.Mailbox{JobID: job.ID, Email: "a@read.example", SourceType: model.SourceIMAP})
	if err != nil {
		t.Fatal(err)
	}
	f, err := db.EnsureMailFolder(ctx, mb.ID, "INBOX", "INBOX", "")
	if err != nil {
		t.Fatal(err)
	}
	// ledgerRowsRead runs read in a transaction and returns how many mail_messages rows it read:
	// the difference of the backend's table statistics before and after (they may still hold
	// earlier transactions' counts not yet flushed).
	ledgerRowsRead := func(read func(*store.Store) error) int64 {
		tx, err := db.Pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback(ctx) }()
		rowsRead := func() int64 {
			var n int64
			if err := tx.QueryRow(ctx, `SELECT coalesce(sum(seq_tup_read + idx_tup_fetch), 0)::bigint
				FROM pg_stat_xact_user_tables WHERE relname = 'mail_messages'`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		before := rowsRead()
		if err := read(store.New(tx)); err != nil {
			t.Fatal(err)
		}
		return rowsRead() - before
	}
	uid := 1
	for _, size := range []int{1000, 10000} {
		if err := db.PutMailMessages(ctx, ledgerRows(f.ID, uid, size-uid+1, store.MailCopied)); err != nil {
			t.Fatal(err)
		}
		uid = size + 1
		var counts map[int64]store.MailFolderCount
		read := ledgerRowsRead(func(s *store.Store) error {
			var err error
			counts, err = s.MailFolderCounts(ctx, mb.ID)
			return err
		})
		if counts[f.ID].Messages != int64(size) {
			t.Fatalf("ledger of %d rows: MailFolderCounts says %d messages", size, counts[f.ID].Messages)
		}
		if read != 0 {
			t.Errorf("ledger of %d rows: MailFolderCounts read %d mail_messages rows, want 0", size, read)
		}
		recounted := ledgerRowsRead(func(s *store.Store) error {
			return s.Q().QueryRow(ctx, `SELECT count(*) FROM mail_messages WHERE folder_id = $1`, f.ID).Scan(new(int64))
		})
		if recounted < int64(size) {
			t.Errorf("ledger of %d rows: a recount read %d rows: the statistics do not see reads", size, recounted)
		}
	}
}

// TestMailFolderCountsUnderConcurrentWriters: several writers putting and confirming rows of
// one folder at once (a pass's workers copying chunks of one big folder) neither deadlock on
// the folder's summary nor lose a change to it.
func TestMailFolderCountsUnderConcurrentWriters(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	ctx := context.Background()
	job, err := db.CreateJob(ctx, store.Job{TenantID: 1, Domain: "race.example"})
	if err != nil {
		t.Fatal(err)
	}
	mb, err := db.UpsertMailbox(ctx, store.Mailbox{JobID: job.ID, Email: "a@race.example", SourceType: model.SourceIMAP})
	if err != nil {
		t.Fatal(err)
	}
	f, err := db.EnsureMailFolder(ctx, mb.ID, "INBOX", "INBOX", "")
	if err != nil {
		t.Fatal(err)
	}
	const writers, batches, batch = 6, 20, 50
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			for b := range batches {
				from := (w*batches+b)*batch + 1
				if err := db.PutMailMessages(ctx, ledgerRows(f.ID, from, batch, store.MailPending)); err != nil {
					errs <- err
					return
				}
				src, dst := make([]int64, batch), make([]int64, batch)
				for i := range src {
					src[i], dst[i] = int64(from+i), int64(from+i)
				}
				if err := db.ConfirmMailMessages(ctx, f.ID, store.MailCopied, src, dst); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent ledger writes: %v", err)
		}
	}
	got, err := db.MailFolderCounts(ctx, mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(recount(t, db, mb.ID), got); diff != "" {
		t.Fatalf("MailFolderCounts differs from a recount (-recount +got):\n%s", diff)
	}
	if got[f.ID].Messages != writers*batches*batch {
		t.Fatalf("MailFolderCounts says %d messages, want %d", got[f.ID].Messages, writers*batches*batch)
	}
}
