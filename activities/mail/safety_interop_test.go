package mail

import (
	"context"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/cutover/cutover/activities/mail/mailtest"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

var messageIDHeader = regexp.MustCompile(`(?im)^Message-ID:\s*(<[^>\r\n]+>)`)

// serverMessageIDs lists "folder <Message-ID>" for every message of every selectable folder of
// an account, read on the server, sorted.
func serverMessageIDs(t *testing.T, a testenv.MailAccount) []string {
	t.Helper()
	var out []string
	for _, f := range a.Folders(t) {
		if slices.Contains(f.Attrs, string(imap.MailboxAttrNoSelect)) {
			continue
		}
		for _, m := range a.Messages(t, f.Name).Messages {
			id := "?"
			if sm := messageIDHeader.FindSubmatch(m.Header); sm != nil {
				id = string(sm[1])
			}
			out = append(out, f.Name+" "+id)
		}
	}
	slices.Sort(out)
	return out
}

// The default mirror and the destination re-check on the two other server implementations as
// destinations: mail the job did not place (early deliveries in INBOX, a copy another tool
// made, the user's own folder) survives a mirror presync with deletions at the source; the
// job's own copy of a deleted source message goes, recorded; copies a user deleted on the
// destination are copied again by the next presync. Counted on the server.
//
// Courier is also restored without its UID database before that presync (its folders get a
// new UIDVALIDITY, so every destination UID in the ledger is void). The job then re-identifies
// its copies by the source's messages; it can no longer prove it placed the copy of a message
// since deleted at the source, so it keeps it (counted as mail it did not place, for the gate's
// dest_held review) rather than delete it.
func TestMirrorKeepsDestinationMailInterop(t *testing.T) {
	for _, tc := range []struct {
		name    string
		kind    string
		restore bool
	}{{"cyrus", cyrus, false}, {"courier", courier, false}, {"courier restored", courier, true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			mirrorKeepsDestinationMail(t, tc.kind, tc.restore)
		})
	}
}

func mirrorKeepsDestinationMail(t *testing.T, kind string, restore bool) {
	e, src, dst := newInteropEnv(t, dovecot, kind)
	ctx := context.Background()
	d := time.Date(2024, 5, 1, 9, 0, 0, 0, time.UTC)
	msg := func(folder, id string) mailtest.Message {
		d = d.Add(time.Hour)
		return mailtest.Message{Folder: folder, Date: d,
			Raw: mailtest.Text(id+"@src.example", "alice@example.org", "source "+id, d, "body of "+id+"\n")}
	}
	corpus := []mailtest.Message{msg("INBOX", "i0"), msg("INBOX", "i1"), msg("INBOX", "i2"), msg("INBOX", "i3"),
		msg("Projects", "p0"), msg("Projects", "p1")}
	mailtest.SeedIMAP(t, src.alice, corpus)

	own := func(id string) []byte {
		return mailtest.Text(id+"@dest.example", "alice@example.org", "dest "+id, d, "kept "+id+"\n")
	}
	dst.alice.Append(t, "INBOX", own("early-1"), nil, d)
	dst.alice.Append(t, "INBOX", own("early-2"), nil, d)
	dst.alice.Create(t, "INBOX.Mine")
	dst.alice.Append(t, "INBOX.Mine", own("personal-1"), nil, d)
	dst.alice.Append(t, "INBOX", corpus[0].Raw, nil, corpus[0].Date) // another tool's copy of i0
	before := serverMessageIDs(t, dst.alice)
	if len(before) != 4 {
		t.Fatalf("destination before the job: %v", before)
	}

	if st := e.sync(model.ModeCopy); st.Transferred != int64(len(corpus))-1 {
		t.Fatalf("st.Transferred = %d, want %d (all but the copy another tool made)", st.Transferred, len(corpus)-1)
	}
	copied := serverMessageIDs(t, dst.alice)
	sc := src.alice.Login(t)
	expungeByMessageID(t, sc, "INBOX", "i0@src.example") // the message another tool copied
	expungeByMessageID(t, sc, "INBOX", "i1@src.example") // one the job copied
	sc.Close()
	dc := dst.alice.Login(t)
	expungeByMessageID(t, dc, "INBOX", "i2@src.example") // the user deletes two of the job's copies
	expungeByMessageID(t, dc, "INBOX.Projects", "p0@src.example")
	dc.Close()
	if restore {
		dst.courier.ForgetUIDs(t, "alice", "INBOX")
		dst.courier.ForgetUIDs(t, "alice", "INBOX.Projects")
		time.Sleep(1100 * time.Millisecond) // Courier's UIDVALIDITY counts seconds
	}

	st, err := e.eng.Sync(ctx, emailapi.PassRequest{Spec: e.spec, Mode: model.ModeMirror, RunType: model.RunDelta,
		Phase: model.PhaseDeltaSync, RecheckDest: true}, SyncOptions{})
	if err != nil {
		t.Fatalf("mirror presync: %v", err)
	}
	t.Logf("mirror presync: deleted %d, recopied %d, transferred %d, not placed by the job %d",
		st.Deleted, st.Recopied, st.Transferred, st.DestExtra)
	after := serverMessageIDs(t, dst.alice)
	if lost := missingFrom(after, before); len(lost) > 0 {
		t.Errorf("the mirror presync deleted mail the job did not place: %v", lost)
	}
	want, wantDeleted, wantRecorded := copied, int64(0), []string(nil)
	if !restore {
		want = slices.DeleteFunc(slices.Clone(copied), func(s string) bool { return s == "INBOX <i1@src.example>" })
		wantDeleted, wantRecorded = 1, []string{"INBOX <i1@src.example> source_gone mirror"}
	}
	if !slices.Equal(after, want) {
		t.Errorf("destination after the mirror presync (the user's deletions copied again):\n got %v\nwant %v", after, want)
	}
	if st.Deleted != wantDeleted {
		t.Errorf("st.Deleted = %d, want %d", st.Deleted, wantDeleted)
	}
	if !restore && st.Recopied != 2 {
		t.Errorf("st.Recopied = %d, want 2 (the copies the user deleted)", st.Recopied)
	}

	// The next presync and the final pass change nothing; verification finds nothing missing.
	if st := e.sync(model.ModeMirror); st.Deleted != 0 {
		t.Errorf("second mirror presync deleted %d", st.Deleted)
	} else if st.Transferred != 0 {
		t.Errorf("second mirror presync transferred %d", st.Transferred)
	}
	if rep := e.verify(); rep.Missing != 0 {
		t.Errorf("verify: %d missing", rep.Missing)
	}
	if got := serverMessageIDs(t, dst.alice); !slices.Equal(got, want) {
		t.Errorf("destination at the end:\n got %v\nwant %v", got, want)
	}
	dels, err := e.db.ListMailDeletions(ctx, e.spec.MailboxID)
	if err != nil {
		t.Fatal(err)
	}
	var recorded []string
	for _, x := range dels {
		recorded = append(recorded, x.DestFolder+" "+x.Description+" "+x.Reason+" "+x.Mode)
	}
	if !slices.Equal(recorded, wantRecorded) {
		t.Errorf("recorded deletions: %v, want %v", recorded, wantRecorded)
	}
}
