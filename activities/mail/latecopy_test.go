package mail

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/cutover/cutover/activities/mail/mailtest"
	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/internal/model"
)

// An interrupted attempt leaves APPENDs unanswered; the next attempt does not find those
// messages on the destination and copies them again. When the abandoned APPENDs land after
// all (bytes queued on a slow link), the second copies are ours: verification removes them.
// A second copy a user filed of another message is not ours and stays, reported as extra.
func TestVerifyRemovesLateCopiesOfInterruptedAppends(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.eng.SettleDelay = 10 * time.Millisecond
	ctx := context.Background()
	mailtest.SeedMaildir(t, e.src, "alice", bulk(60))
	e.sync(model.ModeCopy)

	fs, err := e.db.ListMailFolders(ctx, e.spec.MailboxID)
	if err != nil {
		t.Fatal(err)
	}
	var inbox store.MailFolder
	for _, f := range fs {
		if f.SourceName == "INBOX" {
			inbox = f
		}
	}
	rows, err := e.db.MailMessages(ctx, inbox.ID, 0, nil)
	if err != nil {
		t.Fatalf("err: want nil; INBOX ledger: %d rows, %v", len(rows), err)
	}
	if len(rows) < 12 {
		t.Fatalf("len(rows): want >= 12; INBOX ledger: %d rows, %v", len(rows), err)
	}
	// The interrupted attempt: three messages pending, their APPENDs not (yet) stored.
	interrupted := rows[:3]
	dc := client(t, e.dst, dstPassword)
	if _, err := dc.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	var destSet imap.UIDSet
	var lateUIDs []imap.UID
	pending := make([]store.MailMessage, len(interrupted))
	for i, r := range interrupted {
		destSet.AddNum(imap.UID(*r.DestUID))
		lateUIDs = append(lateUIDs, imap.UID(r.SourceUID))
		r.State, r.DestUID = store.MailPending, nil
		pending[i] = r
	}
	if err := dc.Store(destSet, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := dc.UIDExpunge(destSet).Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.db.PutMailMessages(ctx, pending); err != nil {
		t.Fatal(err)
	}
	// An interrupted attempt never recorded the folder's marks: they are the last pass's, below
	// the pending messages.
	if err := e.db.SetMailFolderMarks(ctx, inbox.ID, store.MailFolderMarks{HighestUID: interrupted[0].SourceUID - 1,
		HighestModSeq: inbox.HighestModSeq, DestUIDValidity: inbox.DestUIDValidity, WindowKey: inbox.WindowKey}); err != nil {
		t.Fatal(err)
	}
	if st := e.sync(model.ModeCopy); st.Transferred != 3 {
		t.Fatalf("the retried pass transferred %d, want the 3 lost appends copied again", st.Transferred)
	}
	e.requireClean(0)

	// The abandoned APPENDs land, and a user files a second copy of another message.
	sc := client(t, e.src, srcPassword)
	if _, err := sc.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	for _, uid := range append(lateUIDs, imap.UID(rows[10].SourceUID)) {
		appendSameMessage(t, sc, dc, uid)
	}
	// Counted on new sessions: a session with INBOX selected need not see another's expunge.
	before := count(t, client(t, e.dst, dstPassword), "INBOX")

	rep := e.verify()
	if rep.LateCopiesRemoved != 3 {
		t.Fatalf("rep.LateCopiesRemoved: want 3; verify: removed %d late copies, extra %d, missing %d, ok %v; want 3, 1 (the user's), 0, true\n%+v",
			rep.LateCopiesRemoved, rep.Extra, rep.Missing, rep.OK, rep.Folders)
	}
	if rep.Extra != 1 {
		t.Fatalf("rep.Extra: want 1; verify: removed %d late copies, extra %d, missing %d, ok %v; want 3, 1 (the user's), 0, true\n%+v",
			rep.LateCopiesRemoved, rep.Extra, rep.Missing, rep.OK, rep.Folders)
	}
	if rep.Missing != 0 {
		t.Fatalf("rep.Missing: want 0; verify: removed %d late copies, extra %d, missing %d, ok %v; want 3, 1 (the user's), 0, true\n%+v",
			rep.LateCopiesRemoved, rep.Extra, rep.Missing, rep.OK, rep.Folders)
	}
	if !rep.OK {
		t.Fatalf("rep.OK is false; verify: removed %d late copies, extra %d, missing %d, ok %v; want 3, 1 (the user's), 0, true\n%+v",
			rep.LateCopiesRemoved, rep.Extra, rep.Missing, rep.OK, rep.Folders)
	}
	if after := count(t, client(t, e.dst, dstPassword), "INBOX"); after != before-3 {
		t.Errorf("destination INBOX holds %d messages, want %d", after, before-3)
	}
	if rep := e.verify(); rep.LateCopiesRemoved != 0 {
		t.Errorf("rep.LateCopiesRemoved: want 0; second verify: removed %d, extra %d; want 0 and the user's 1",
			rep.LateCopiesRemoved, rep.Extra)
	} else if rep.Extra != 1 {
		t.Errorf("rep.Extra: want 1; second verify: removed %d, extra %d; want 0 and the user's 1",
			rep.LateCopiesRemoved, rep.Extra)
	}
}

// appendSameMessage appends a source message to the destination's INBOX byte for byte, with
// its flags and INTERNALDATE, as a late APPEND of it would.
func appendSameMessage(t *testing.T, src, dst *imapclient.Client, uid imap.UID) {
	t.Helper()
	body := &imap.FetchItemBodySection{Peek: true}
	got, err := src.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{Flags: true, InternalDate: true,
		BodySection: []*imap.FetchItemBodySection{body}}).Collect()
	if err != nil {
		t.Fatalf("err: want nil; fetch source %d: %d messages, %v", uid, len(got), err)
	}
	if len(got) != 1 {
		t.Fatalf("len(got): want 1; fetch source %d: %d messages, %v", uid, len(got), err)
	}
	raw := got[0].FindBodySection(body)
	flags := slices.DeleteFunc(got[0].Flags, func(f imap.Flag) bool { return strings.EqualFold(string(f), `\Recent`) })
	cmd := dst.Append("INBOX", int64(len(raw)), &imap.AppendOptions{Flags: flags, Time: got[0].InternalDate})
	if _, err := cmd.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := cmd.Wait(); err != nil {
		t.Fatalf("append a copy of %d: %v", uid, err)
	}
}
