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
	if err != nil {
		t.Fatalf("err: want nil; EnsureMailFolder twice = %+v, %v: want the same row, destination unchanged",
			again, err)
	}
	if again.ID != f.ID {
		t.Fatalf("again.ID = %v, want %v (f.ID); EnsureMailFolder twice = %+v, %v: want the same row, destination unchanged",
			again.ID, f.ID, again, err)
	}
	if again.DestName != "Sent" {
		t.Fatalf("again.DestName = %v, want \"Sent\"; EnsureMailFolder twice = %+v, %v: want the same row, destination unchanged",
			again.DestName, again, err)
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
	if err != nil {
		t.Fatalf("err: want nil; MailMessages = %+v, %v", ms, err)
	}
	if len(ms) != 2 {
		t.Fatalf("len(ms) = %v, want 2; MailMessages = %+v, %v", len(ms), ms, err)
	}
	if ms[0].State != store.MailCopied {
		t.Errorf("ms[0].State = %v, want store.MailCopied; row 1 = %+v", ms[0].State, ms[0])
	} else if ms[0].DestUID == nil {
		t.Errorf("ms[0].DestUID is nil; row 1 = %+v", ms[0])
	} else if *ms[0].DestUID != 101 {
		t.Errorf("*ms[0].DestUID = %v, want 101; row 1 = %+v", *ms[0].DestUID, ms[0])
	} else if !slices.Equal(ms[0].Flags, []string{`\Seen`, "$Label1"}) {
		t.Errorf("slices.Equal(ms[0].Flags, []string{`\\Seen`, \"$Label1\"}) is false; row 1 = %+v", ms[0])
	} else if !ms[0].InternalDate.Equal(date) {
		t.Errorf("ms[0].InternalDate.Equal(date) is false; row 1 = %+v", ms[0])
	}
	if len(ms[1].Flags) != 0 {
		t.Errorf("len(ms[1].Flags) = %v, want 0; row 2 flags = %#v, want empty, not nil",
			len(ms[1].Flags), ms[1].Flags)
	} else if ms[1].Flags == nil {
		t.Errorf("ms[1].Flags is nil; row 2 flags = %#v, want empty, not nil", ms[1].Flags)
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
	if err != nil {
		t.Fatalf("err: want nil; quarantine = %+v, %v", qs, err)
	}
	if len(qs) != 1 {
		t.Fatalf("len(qs) = %v, want 1; quarantine = %+v, %v", len(qs), qs, err)
	}
	if qs[0].Attempts != 2 {
		t.Fatalf("qs[0].Attempts = %v, want 2; quarantine = %+v, %v", qs[0].Attempts, qs, err)
	}
	if qs[0].Reason != q.Reason {
		t.Fatalf("qs[0].Reason = %v, want %v (q.Reason); quarantine = %+v, %v", qs[0].Reason, q.Reason, qs, err)
	}
	counts, err := db.MailFolderCounts(ctx, mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	if c := counts[f.ID]; c.Messages != 2 {
		t.Errorf("c.Messages = %v, want 2; counts = %+v", c.Messages, c)
	} else if c.Bytes != 30 {
		t.Errorf("c.Bytes = %v, want 30; counts = %+v", c.Bytes, c)
	} else if c.Quarantined != 1 {
		t.Errorf("c.Quarantined = %v, want 1; counts = %+v", c.Quarantined, c)
	} else if c.Pending != 0 {
		t.Errorf("c.Pending = %v, want 0; counts = %+v", c.Pending, c)
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
	if len(fs) != 1 {
		t.Errorf("len(fs) = %v, want 1; folders = %+v", len(fs), fs)
	} else if fs[0].HighestUID != 3 {
		t.Errorf("fs[0].HighestUID = %v, want 3; folders = %+v", fs[0].HighestUID, fs)
	} else if fs[0].HighestModSeq != 42 {
		t.Errorf("fs[0].HighestModSeq = %v, want 42; folders = %+v", fs[0].HighestModSeq, fs)
	} else if fs[0].DestUIDValidity != 9 {
		t.Errorf("fs[0].DestUIDValidity = %v, want 9; folders = %+v", fs[0].DestUIDValidity, fs)
	} else if fs[0].SourceUIDNext != 4 {
		t.Errorf("fs[0].SourceUIDNext = %v, want 4; folders = %+v", fs[0].SourceUIDNext, fs)
	}
	if err := db.ResetMailFolder(ctx, f.ID, 77, "INBOX.Sent"); err != nil {
		t.Fatal(err)
	}
	fs, _ = db.ListMailFolders(ctx, mb.ID)
	if ms, _ := db.MailMessages(ctx, f.ID, 0, nil); len(ms) != 0 {
		t.Errorf("len(ms): want 0; after reset: folder %+v, %d messages", fs[0], len(ms))
	} else if fs[0].HighestUID != 0 {
		t.Errorf("fs[0].HighestUID = %v, want 0; after reset: folder %+v, %d messages",
			fs[0].HighestUID, fs[0], len(ms))
	} else if fs[0].UIDValidity != 77 {
		t.Errorf("fs[0].UIDValidity = %v, want 77; after reset: folder %+v, %d messages",
			fs[0].UIDValidity, fs[0], len(ms))
	} else if fs[0].DestName != "INBOX.Sent" {
		t.Errorf("fs[0].DestName = %v, want \"INBOX.Sent\"; after reset: folder %+v, %d messages",
			fs[0].DestName, fs[0], len(ms))
	}
}
