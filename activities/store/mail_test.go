package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/internal/model"
)

func TestMailLedger(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	job, err := db.CreateJob(ctx, store.Job{TenantID: 1, Domain: "ledger.example"})
	if err != nil {
		t.Fatal(err)
	}
	mb, err := db.UpsertMailbox(ctx, store.Mailbox{JobID: job.ID, Email: "a@ledger.example", SourceType: model.SourceIMAP})
	if err != nil {
		t.Fatal(err)
	}
	f, err := db.EnsureMailFolder(ctx, mb.ID, "Sent Items", "Sent", `\Sent`)
	if err != nil {
		t.Fatal(err)
	}
	again, err := db.EnsureMailFolder(ctx, mb.ID, "Sent Items", "Other", `\Sent`)
	if err != nil || again.ID != f.ID || again.DestName != "Sent" {
		t.Fatalf("EnsureMailFolder twice = %+v, %v: want the same row, destination unchanged", again, err)
	}

	date := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	pending := []store.MailMessage{
		{FolderID: f.ID, SourceUID: 1, State: store.MailPending, Identity: "m1", Size: 10, Flags: []string{`\Seen`, "$Label1"}, InternalDate: &date},
		{FolderID: f.ID, SourceUID: 2, State: store.MailPending, Identity: "m2", Size: 20},
		{FolderID: f.ID, SourceUID: 3, State: store.MailPending, Identity: "m2", Size: 20},
	}
	if err := db.PutMailMessages(ctx, pending); err != nil {
		t.Fatal(err)
	}
	if err := db.ConfirmMailMessages(ctx, f.ID, store.MailCopied, []int64{1, 2}, []int64{101, 102}); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteMailMessages(ctx, f.ID, []int64{3}); err != nil {
		t.Fatal(err)
	}
	ms, err := db.MailMessages(ctx, f.ID, 0, nil)
	if err != nil || len(ms) != 2 {
		t.Fatalf("MailMessages = %+v, %v", ms, err)
	}
	if ms[0].State != store.MailCopied || ms[0].DestUID == nil || *ms[0].DestUID != 101 ||
		!slices.Equal(ms[0].Flags, []string{`\Seen`, "$Label1"}) || !ms[0].InternalDate.Equal(date) {
		t.Errorf("row 1 = %+v", ms[0])
	}
	if len(ms[1].Flags) != 0 || ms[1].Flags == nil {
		t.Errorf("row 2 flags = %#v, want empty, not nil", ms[1].Flags)
	}
	if err := db.SetMailMessageFlags(ctx, f.ID, []int64{2}, [][]string{{`\Flagged`}}); err != nil {
		t.Fatal(err)
	}
	if ms, _ := db.MailMessages(ctx, f.ID, 0, []int64{2}); len(ms) != 1 || !slices.Equal(ms[0].Flags, []string{`\Flagged`}) {
		t.Errorf("flags after update = %+v", ms)
	}
	if uids, _ := db.MailSourceUIDs(ctx, f.ID, 1); !slices.Equal(uids, []int64{2}) {
		t.Errorf("MailSourceUIDs above 1 = %v", uids)
	}
	if uids, _ := db.MailDestUIDs(ctx, mb.ID, "Sent"); !slices.Equal(uids, []int64{101, 102}) {
		t.Errorf("MailDestUIDs = %v", uids)
	}

	q := store.MailQuarantine{MailboxID: mb.ID, FolderID: f.ID, SourceUID: 7, Identity: "m7", Size: 1 << 20,
		ErrorClass: "too_big", Reason: "[LIMIT] Mail size is larger than the maximum"}
	for range 2 {
		if err := db.QuarantineMailMessage(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	qs, err := db.ListMailQuarantine(ctx, mb.ID, 0, false)
	if err != nil || len(qs) != 1 || qs[0].Attempts != 2 || qs[0].Reason != q.Reason {
		t.Fatalf("quarantine = %+v, %v", qs, err)
	}
	counts, err := db.MailFolderCounts(ctx, mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	if c := counts[f.ID]; c.Messages != 2 || c.Bytes != 30 || c.Quarantined != 1 || c.Pending != 0 {
		t.Errorf("counts = %+v", c)
	}
	if err := db.ResolveMailQuarantine(ctx, f.ID, []int64{7}); err != nil {
		t.Fatal(err)
	}
	if qs, _ := db.ListMailQuarantine(ctx, mb.ID, 0, false); len(qs) != 0 {
		t.Errorf("resolved row still listed: %+v", qs)
	}

	marks := store.MailFolderMarks{HighestUID: 3, HighestModSeq: 42, DestUIDValidity: 9, WindowKey: "w", SourceMessages: 3, SourceUIDNext: 4}
	if err := db.SetMailFolderMarks(ctx, f.ID, marks); err != nil {
		t.Fatal(err)
	}
	fs, _ := db.ListMailFolders(ctx, mb.ID)
	if len(fs) != 1 || fs[0].HighestUID != 3 || fs[0].HighestModSeq != 42 || fs[0].DestUIDValidity != 9 || fs[0].SourceUIDNext != 4 {
		t.Errorf("folders = %+v", fs)
	}
	if err := db.ResetMailFolder(ctx, f.ID, 77, "INBOX.Sent"); err != nil {
		t.Fatal(err)
	}
	fs, _ = db.ListMailFolders(ctx, mb.ID)
	if ms, _ := db.MailMessages(ctx, f.ID, 0, nil); len(ms) != 0 || fs[0].HighestUID != 0 || fs[0].UIDValidity != 77 || fs[0].DestName != "INBOX.Sent" {
		t.Errorf("after reset: folder %+v, %d messages", fs[0], len(ms))
	}
}
