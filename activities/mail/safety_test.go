package mail

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/google/go-cmp/cmp"

	"github.com/cutover/cutover/activities/mail/mailtest"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// safetyCorpus is a small source mailbox: INBOX, "Sent Items" and Projects.
func safetyCorpus() []mailtest.Message {
	var msgs []mailtest.Message
	d := time.Date(2024, 5, 1, 9, 0, 0, 0, time.UTC)
	for _, f := range []struct {
		folder string
		n      int
	}{{"INBOX", 6}, {"Sent Items", 3}, {"Projects", 2}} {
		folder := f.folder
		for i := range f.n {
			d = d.Add(time.Hour)
			id := folder[:1] + "-src-" + string(rune('a'+i))
			msgs = append(msgs, mailtest.Message{Folder: folder, Date: d,
				Raw: mailtest.Text(id+"@src.example", "alice@example.org", "source "+id, d, "body of "+id+"\n")})
		}
	}
	slices.SortStableFunc(msgs, func(a, b mailtest.Message) int { return a.Date.Compare(b.Date) })
	return msgs
}

func destOnly(id string, d time.Time) mailtest.Message {
	return mailtest.Message{Date: d, Raw: mailtest.Text(id+"@dest.example", "alice@example.org", "dest "+id, d, "kept "+id+"\n")}
}

// expungeByMessageID deletes a message from a folder behind the engine's back.
func expungeByMessageID(t *testing.T, c *imapclient.Client, folder, msgID string) {
	t.Helper()
	if _, err := c.Select(folder, nil).Wait(); err != nil {
		t.Fatal(err)
	}
	data, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Message-ID", Value: msgID}}}, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	uids := data.AllUIDs()
	if len(uids) != 1 {
		t.Fatalf("%s in %s: %d matches", msgID, folder, len(uids))
	}
	set := imap.UIDSetNum(uids...)
	if err := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.UIDExpunge(set).Close(); err != nil {
		t.Fatal(err)
	}
}

// contains reports whether every entry of want is in have.
func missingFrom(have, want []string) []string {
	var out []string
	for _, w := range want {
		if !slices.Contains(have, w) {
			out = append(out, w)
		}
	}
	return out
}

// A destination account that already holds mail — the user's own sent mail, mail delivered to
// the new server early, a folder only the destination has, a copy another tool left — keeps
// every one of those messages through the initial pass, mirror presyncs (with deletions at the
// source), the final pass and verification. The default mirror deletes only the copies this
// job placed whose source message is gone, and records each deletion. Counted on the server.
func TestMirrorKeepsMailTheJobDidNotPlace(t *testing.T) {
	e := newEnv(t, nil, nil)
	ctx := context.Background()
	corpus := safetyCorpus()
	mailtest.SeedMaildir(t, e.src, "alice", corpus)

	dc := client(t, e.dst, dstPassword)
	for _, f := range []string{"INBOX.Sent", "INBOX.Personal"} {
		if err := dc.Create(f, nil).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	d := time.Date(2024, 6, 1, 9, 0, 0, 0, time.UTC)
	appendMsg(t, dc, "INBOX", destOnly("early-1", d))
	appendMsg(t, dc, "INBOX", destOnly("early-2", d.Add(time.Minute)))
	appendMsg(t, dc, "INBOX.Sent", destOnly("own-sent-1", d.Add(2*time.Minute)))
	appendMsg(t, dc, "INBOX.Sent", destOnly("own-sent-2", d.Add(3*time.Minute)))
	appendMsg(t, dc, "INBOX.Personal", destOnly("personal-1", d.Add(4*time.Minute)))
	// Another tool already copied one source message: adopted, not ours to delete.
	var adopted mailtest.Message
	for _, m := range corpus {
		if m.Folder == "INBOX" {
			adopted = m
			break
		}
	}
	appendMsg(t, dc, "INBOX", adopted)
	before := e.dst.MessageIDs(t, "alice")
	if len(before) != 6 {
		t.Fatalf("destination before the job: %v", before)
	}

	// The preflight says what the destination already holds.
	rep, err := e.eng.Preflight(ctx, e.spec, 0)
	if err != nil {
		t.Fatal(err)
	}
	type held struct {
		Folder   string
		Messages int64
	}
	var gotHeld []held
	var heldBytes int64
	for _, h := range rep.DestHolds {
		gotHeld = append(gotHeld, held{h.Name, h.Messages})
		heldBytes += h.Bytes
	}
	if diff := cmp.Diff([]held{{"INBOX", 3}, {"INBOX.Personal", 1}, {"INBOX.Sent", 2}}, gotHeld); diff != "" {
		t.Errorf("diff: want \"\"; preflight DestHolds (-want +got):\n%s bytes %d", diff, heldBytes)
	} else if heldBytes <= 0 {
		t.Errorf("heldBytes: want > 0; preflight DestHolds (-want +got):\n%s bytes %d", diff, heldBytes)
	}

	if st := e.sync(model.ModeCopy); st.Transferred != int64(len(corpus))-1 {
		t.Fatalf("st.Transferred: want int64(len(corpus))-1; initial pass: transferred %d pending %d",
			st.Transferred, st.Pending)
	} else if st.Pending != 0 {
		t.Fatalf("st.Pending: want 0; initial pass: transferred %d pending %d", st.Transferred, st.Pending)
	}
	// The source deletes one message the job copied and the one another tool had copied.
	sc := client(t, e.src, srcPassword)
	expungeByMessageID(t, sc, "INBOX", "I-src-b@src.example")
	expungeByMessageID(t, sc, "INBOX", "I-src-a@src.example")
	if adoptedID := "<I-src-a@src.example>"; !slices.Contains(before, "INBOX "+adoptedID) {
		t.Fatalf("the adopted message is %q? before: %v", adoptedID, before)
	}

	st := e.sync(model.ModeMirror)
	after := e.dst.MessageIDs(t, "alice")
	if lost := missingFrom(after, before); len(lost) > 0 {
		t.Errorf("a mirror presync deleted mail the job did not place: %v", lost)
	}
	if slices.Contains(after, "INBOX <I-src-b@src.example>") {
		t.Errorf("the job's copy of a message deleted at the source is still there: %v", after)
	}
	if st.Deleted != 1 {
		t.Errorf("mirror pass deleted %d, want 1 (the job's own copy)", st.Deleted)
	}
	// A second mirror presync and the final pass change nothing more.
	if st := e.sync(model.ModeMirror); st.Deleted != 0 {
		t.Errorf("second mirror presync deleted %d", st.Deleted)
	}
	final, err := e.eng.Sync(ctx, emailapi.PassRequest{Spec: e.spec, Mode: model.ModeCopy, RunType: model.RunFinal, Phase: model.PhaseFinalSync,
		RecheckDest: true}, SyncOptions{})
	if err != nil {
		t.Fatalf("err: want nil; final pass: deleted %d, %v", final.Deleted, err)
	}
	if final.Deleted != 0 {
		t.Fatalf("final.Deleted: want 0; final pass: deleted %d, %v", final.Deleted, err)
	}
	rv := e.verify()
	if rv.Missing != 0 {
		t.Errorf("verify: %d missing", rv.Missing)
	}
	if lost := missingFrom(e.dst.MessageIDs(t, "alice"), before); len(lost) > 0 {
		t.Errorf("after the final pass and verification, lost: %v", lost)
	}

	// Every deletion is recorded: which folder, which message, why.
	dels, err := e.db.ListMailDeletions(ctx, e.spec.MailboxID)
	if err != nil {
		t.Fatal(err)
	}
	type del struct{ Folder, Description, Reason, Mode string }
	var got []del
	for _, x := range dels {
		got = append(got, del{x.DestFolder, x.Description, x.Reason, x.Mode})
	}
	want := []del{{"INBOX", "<I-src-b@src.example>", "source_gone", "mirror"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("recorded deletions (-want +got):\n%s", diff)
	}
}

// strict_mirror (imapsync --delete2) is the explicit destructive choice: it deletes what the
// source lacks in the folders the job syncs, the user's own messages included, records each
// deletion with its reason, and is refused once the job is past DNS cutover.
func TestStrictMirrorIsExplicitRecordedAndRefusedAfterCutover(t *testing.T) {
	e := newEnv(t, nil, nil)
	ctx := context.Background()
	mailtest.SeedMaildir(t, e.src, "alice", safetyCorpus())
	dc := client(t, e.dst, dstPassword)
	if err := dc.Create("INBOX.Personal", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	d := time.Date(2024, 6, 1, 9, 0, 0, 0, time.UTC)
	appendMsg(t, dc, "INBOX", destOnly("early-1", d))
	appendMsg(t, dc, "INBOX.Personal", destOnly("personal-1", d))
	e.sync(model.ModeCopy)

	_, err := e.eng.Sync(ctx, emailapi.PassRequest{Spec: e.spec, Mode: model.ModeStrictMirror, RunType: model.RunFinal, Phase: model.PhaseFinalSync}, SyncOptions{})
	if !errors.Is(err, ErrMirrorAfterCutover) {
		t.Fatalf("strict mirror after cutover: %v", err)
	}
	if ids := e.dst.MessageIDs(t, "alice"); !slices.Contains(ids, "INBOX <early-1@dest.example>") {
		t.Fatalf("a refused strict mirror deleted mail: %v", ids)
	}
	st := e.sync(model.ModeStrictMirror)
	if st.Deleted != 1 {
		t.Errorf("strict mirror deleted %d, want 1", st.Deleted)
	}
	ids := e.dst.MessageIDs(t, "alice")
	if slices.Contains(ids, "INBOX <early-1@dest.example>") || !slices.Contains(ids, "INBOX.Personal <personal-1@dest.example>") {
		t.Errorf("strict mirror: INBOX extra should go, a folder the job does not sync stays: %v", ids)
	}
	dels, err := e.db.ListMailDeletions(ctx, e.spec.MailboxID)
	if err != nil {
		t.Errorf("err: want nil; recorded deletions: %+v, %v", dels, err)
	} else if len(dels) != 1 {
		t.Errorf("len(dels) = %v, want 1; recorded deletions: %+v, %v", len(dels), dels, err)
	} else if dels[0].Reason != "not_on_source" {
		t.Errorf("dels[0].Reason = %v, want \"not_on_source\"; recorded deletions: %+v, %v",
			dels[0].Reason, dels, err)
	} else if dels[0].Mode != string(model.ModeStrictMirror) {
		t.Errorf("dels[0].Mode = %v, want %v (string(model.ModeStrictMirror)); recorded deletions: %+v, %v",
			dels[0].Mode, string(model.ModeStrictMirror), dels, err)
	} else if dels[0].Description != "<early-1@dest.example>" {
		t.Errorf("dels[0].Description = %v, want \"<early-1@dest.example>\"; recorded deletions: %+v, %v",
			dels[0].Description, dels, err)
	}
}

// Messages that disappear from the destination (a user deletes them, the server loses them)
// are copied again by the next pass, though the source did not change: a pass compares each
// destination folder's count with the ledger (one LIST-STATUS) and, where they differ, the
// UIDs (one UID SEARCH). With RecheckDest it compares UIDs even where counts match (one of
// ours deleted, one of the user's added). Counted on the server, not in the ledger.
func TestPassCopiesAgainWhatVanishedFromTheDestination(t *testing.T) {
	e := newEnv(t, nil, nil)
	corpus := safetyCorpus()
	mailtest.SeedMaildir(t, e.src, "alice", corpus)
	e.sync(model.ModeCopy)
	want := e.dst.MessageIDs(t, "alice")

	dc := client(t, e.dst, dstPassword)
	expungeByMessageID(t, dc, "INBOX", "I-src-c@src.example")
	expungeByMessageID(t, dc, "INBOX", "I-src-d@src.example")
	expungeByMessageID(t, dc, "INBOX.Sent", "S-src-a@src.example")
	st := e.sync(model.ModeCopy)
	if st.Transferred != 3 {
		t.Errorf("st.Transferred: want 3; pass after destination losses: transferred %d recopied %d, want 3 and 3",
			st.Transferred, st.Recopied)
	} else if st.Recopied != 3 {
		t.Errorf("st.Recopied: want 3; pass after destination losses: transferred %d recopied %d, want 3 and 3",
			st.Transferred, st.Recopied)
	}
	if got := e.dst.MessageIDs(t, "alice"); !slices.Equal(got, want) {
		t.Errorf("destination after the pass:\n got %v\nwant %v", got, want)
	}

	// Same count, different messages: one of ours gone, one of the user's arrived.
	expungeByMessageID(t, dc, "INBOX", "I-src-e@src.example")
	appendMsg(t, dc, "INBOX", destOnly("user-new", time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC)))
	if st := e.sync(model.ModeCopy); st.Pending != 0 {
		t.Fatalf("pass: pending %d", st.Pending)
	}
	st, err := e.eng.Sync(context.Background(), emailapi.PassRequest{Spec: e.spec, Mode: model.ModeCopy, RunType: model.RunDelta,
		Phase: model.PhaseDeltaSync, RecheckDest: true}, SyncOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Recopied != 1 {
		t.Errorf("rechecked pass recopied %d, want 1", st.Recopied)
	}
	got := e.dst.MessageIDs(t, "alice")
	if lost := missingFrom(got, want); len(lost) > 0 || !slices.Contains(got, "INBOX <user-new@dest.example>") {
		t.Errorf("after the rechecked pass: lost %v; dest %v", lost, got)
	}
	var destMsgs int64
	for _, f := range st.Folders {
		destMsgs += f.DestMessages
	}
	if destMsgs != int64(len(corpus)) {
		t.Errorf("pass reports %d messages on the destination, want %d", destMsgs, len(corpus))
	}
}
