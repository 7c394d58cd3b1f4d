package mail

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/cutover/cutover/activities/mail/mailtest"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// TestSyncEndToEnd walks one mailbox through the life of a migration against two real
// Dovecots: initial pass, verify, an idle pass, a delta with new mail and flag changes, a dry
// run, mirror deletes, the mirror refusal after cutover and a UIDVALIDITY change.
func TestSyncEndToEnd(t *testing.T) {
	e := newEnv(t, nil, nil)
	corpus := mailtest.Standard(20 << 20)
	mailtest.SeedMaildir(t, e.src, "alice", corpus)
	n := countCorpus(corpus)

	st := e.sync(model.ModeCopy)
	if st.Transferred != n {
		t.Fatalf("st.Transferred: want n; initial pass: transferred %d found %d pending %d quarantined %d, want %d/%d/0/0 (errors %v)",
			st.Transferred, st.Found, st.Pending, st.Quarantined, n, n, st.ErrorsByClass)
	}
	if st.Pending != 0 {
		t.Fatalf("st.Pending: want 0; initial pass: transferred %d found %d pending %d quarantined %d, want %d/%d/0/0 (errors %v)",
			st.Transferred, st.Found, st.Pending, st.Quarantined, n, n, st.ErrorsByClass)
	}
	if st.Quarantined != 0 {
		t.Fatalf("st.Quarantined: want 0; initial pass: transferred %d found %d pending %d quarantined %d, want %d/%d/0/0 (errors %v)",
			st.Transferred, st.Found, st.Pending, st.Quarantined, n, n, st.ErrorsByClass)
	}
	if st.Found != n {
		t.Fatalf("st.Found: want n; initial pass: transferred %d found %d pending %d quarantined %d, want %d/%d/0/0 (errors %v)",
			st.Transferred, st.Found, st.Pending, st.Quarantined, n, n, st.ErrorsByClass)
	}
	if sum := Summary(st); !strings.Contains(sum, fmt.Sprintf("Messages transferred          : %d\n", n)) || !strings.Contains(sum, `"Sent Items"`) {
		t.Errorf("summary:\n%s", sum)
	}
	if st.BytesTransferred < 20<<20 {
		t.Errorf("bytes transferred %d: the 20 MB attachment is missing", st.BytesTransferred)
	}
	e.requireClean(0)

	dc := client(t, e.dst, dstPassword)
	dests := map[string]string{}
	for _, f := range st.Folders {
		dests[f.Source] = f.Dest
	}
	for src, want := range map[string]string{"INBOX": "INBOX", "Sent Items": "INBOX.Sent", "Ñoño/Año": "INBOX.Ñoño.Año",
		"Projects/2023/Q1": "INBOX.Projects.2023.Q1", "Entwürfe": "INBOX.Drafts", "Archive": "INBOX.Archive"} {
		if dests[src] != want {
			t.Errorf("%q landed in %q, want %q", src, dests[src], want)
		}
	}
	// Both copies of the exact duplicates arrived.
	if got := count(t, dc, "INBOX"); got != 18 {
		t.Errorf("destination INBOX has %d messages, want 18", got)
	}
	subs, err := dc.List("", "*", &imap.ListOptions{SelectSubscribed: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(subs, func(l *imap.ListData) bool { return l.Mailbox == "INBOX.Ñoño.Año" }) {
		t.Errorf("subscriptions not carried over: %v", subs)
	}

	// Nothing changed: nothing moves, and no folder is even opened.
	st = e.sync(model.ModeCopy)
	if st.Transferred != 0 {
		t.Fatalf("st.Transferred: want 0; idle pass: transferred %d flags %d skipped %d pending %d",
			st.Transferred, st.FlagsUpdated, st.Skipped, st.Pending)
	}
	if st.FlagsUpdated != 0 {
		t.Fatalf("st.FlagsUpdated: want 0; idle pass: transferred %d flags %d skipped %d pending %d",
			st.Transferred, st.FlagsUpdated, st.Skipped, st.Pending)
	}
	if st.Skipped != n {
		t.Fatalf("st.Skipped: want n; idle pass: transferred %d flags %d skipped %d pending %d",
			st.Transferred, st.FlagsUpdated, st.Skipped, st.Pending)
	}
	if st.Pending != 0 {
		t.Fatalf("st.Pending: want 0; idle pass: transferred %d flags %d skipped %d pending %d",
			st.Transferred, st.FlagsUpdated, st.Skipped, st.Pending)
	}

	// Delta: three new messages and two flag changes on the source.
	sc := client(t, e.src, srcPassword)
	now := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	for i, folder := range []string{"INBOX", "Ñoño/Año", "Sent Items"} {
		appendMsg(t, sc, folder, mailtest.Message{Date: now, Flags: []string{`\Seen`, mailtest.Keyword},
			Raw: mailtest.Text("delta-"+string(rune('a'+i))+"@x", "d@x", "delta", now, "new")})
	}
	if _, err := sc.Select("Projects", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := sc.Store(imap.UIDSetNum(1, 2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagFlagged, "$Work"}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	st = e.sync(model.ModeCopy)
	if st.Transferred != 3 {
		t.Fatalf("st.Transferred: want 3; delta pass: transferred %d flags %d pending %d, want 3 and 2",
			st.Transferred, st.FlagsUpdated, st.Pending)
	}
	if st.FlagsUpdated != 2 {
		t.Fatalf("st.FlagsUpdated: want 2; delta pass: transferred %d flags %d pending %d, want 3 and 2",
			st.Transferred, st.FlagsUpdated, st.Pending)
	}
	if st.Pending != 0 {
		t.Fatalf("st.Pending: want 0; delta pass: transferred %d flags %d pending %d, want 3 and 2",
			st.Transferred, st.FlagsUpdated, st.Pending)
	}
	e.requireClean(0)

	// A dry run reports the new message and changes nothing, so the next pass still copies it.
	appendMsg(t, sc, "INBOX", mailtest.Message{Date: now, Raw: mailtest.Text("dry@x", "d@x", "dry", now, "dry")})
	before := count(t, dc, "INBOX")
	st = e.sync(model.ModeDryRun)
	if st.Transferred != 1 {
		t.Fatalf("st.Transferred: want 1; dry run: transferred %d, destination INBOX %d → %d",
			st.Transferred, before, count(t, dc, "INBOX"))
	}
	if count(t, dc, "INBOX") != before {
		t.Fatalf("want count(t, dc, \"INBOX\") == before; dry run: transferred %d, destination INBOX %d → %d",
			st.Transferred, before, count(t, dc, "INBOX"))
	}
	if st = e.sync(model.ModeCopy); st.Transferred != 1 {
		t.Fatalf("pass after dry run: transferred %d, want 1", st.Transferred)
	}

	// Strict mirror (imapsync --delete2): a message only the destination has, and one the
	// source deleted, both go. The default mirror would keep the first (safety_test.go).
	appendMsg(t, dc, "INBOX.Archive", mailtest.Message{Date: now, Raw: mailtest.Text("extra@x", "e@x", "extra", now, "extra")})
	if _, err := sc.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := sc.Store(imap.UIDSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := sc.UIDExpunge(imap.UIDSetNum(1)).Close(); err != nil {
		t.Fatal(err)
	}
	// Copy mode never deletes.
	if st = e.sync(model.ModeCopy); st.Deleted != 0 {
		t.Fatalf("copy pass deleted %d", st.Deleted)
	}
	if rep := e.verify(); rep.Extra != 2 {
		t.Fatalf("before mirror: extra %d, want 2", rep.Extra)
	}
	if st = e.sync(model.ModeStrictMirror); st.Deleted != 2 {
		t.Fatalf("strict mirror pass deleted %d, want 2", st.Deleted)
	}
	e.requireClean(0)

	_, err = e.eng.Sync(context.Background(), emailapi.PassRequest{Spec: e.spec, Mode: model.ModeMirror, Phase: model.PhaseFinalSync}, SyncOptions{})
	if !errors.Is(err, ErrMirrorAfterCutover) {
		t.Fatalf("mirror after cutover: %v", err)
	}

	// UIDVALIDITY changes on the source: re-identified, nothing copied twice.
	if _, err := e.src.Doveadm(t, "mailbox", "update", "-u", "alice", "--uid-validity", "12345", "Projects"); err != nil {
		t.Fatal(err)
	}
	projects := count(t, dc, "INBOX.Projects")
	st = e.sync(model.ModeCopy)
	if st.Transferred != 0 {
		t.Fatalf("st.Transferred: want 0; after UIDVALIDITY change: transferred %d, resets %d",
			st.Transferred, st.ErrorsByClass["uidvalidity_reset"])
	}
	if st.ErrorsByClass["uidvalidity_reset"] != 1 {
		t.Fatalf("st.ErrorsByClass[\"uidvalidity_reset\"]: want 1; after UIDVALIDITY change: transferred %d, resets %d",
			st.Transferred, st.ErrorsByClass["uidvalidity_reset"])
	}
	if got := count(t, dc, "INBOX.Projects"); got != projects {
		t.Fatalf("destination Projects went from %d to %d messages", projects, got)
	}
	e.requireClean(0)
}

// Mail already on the destination (an earlier migration tool, a user's own upload) is adopted
// by identity, never copied a second time; exact duplicates on the source still both arrive.
func TestAdoptsMailAlreadyOnDestination(t *testing.T) {
	e := newEnv(t, nil, nil)
	corpus := mailtest.Standard(0)
	mailtest.SeedMaildir(t, e.src, "alice", corpus)
	// The destination already holds INBOX's first ten messages and one copy of the duplicate.
	var pre []mailtest.Message
	dupSeen := false
	for _, m := range corpus {
		if m.Folder != "INBOX" {
			continue
		}
		if strings.Contains(string(m.Raw), "<dup@corpus.example>") {
			if dupSeen {
				continue
			}
			dupSeen = true
		} else if len(pre) >= 10 {
			continue
		}
		pre = append(pre, m)
	}
	dc := client(t, e.dst, dstPassword)
	for _, m := range pre {
		appendMsg(t, dc, "INBOX", m)
	}
	st := e.sync(model.ModeCopy)
	n := countCorpus(corpus)
	if st.Transferred != n-int64(len(pre)) {
		t.Fatalf("st.Transferred: want n-int64(len(pre)); transferred %d pending %d, want %d (the %d already there adopted)",
			st.Transferred, st.Pending, n-int64(len(pre)), len(pre))
	}
	if st.Pending != 0 {
		t.Fatalf("st.Pending: want 0; transferred %d pending %d, want %d (the %d already there adopted)",
			st.Transferred, st.Pending, n-int64(len(pre)), len(pre))
	}
	if got := count(t, dc, "INBOX"); got != 18 {
		t.Errorf("destination INBOX has %d messages, want 18 (no duplicate of the adopted ones, both exact duplicates)", got)
	}
	e.requireClean(0)
}

// The age window copies only messages whose INTERNALDATE falls inside it, exactly (not to the
// day), and verify judges under the same window; widening it later copies the rest.
func TestAgeWindow(t *testing.T) {
	e := newEnv(t, nil, nil)
	corpus := mailtest.Standard(0)
	mailtest.SeedMaildir(t, e.src, "alice", corpus)
	since := time.Date(2010, 6, 15, 12, 0, 0, 0, time.UTC)
	before := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	var in int64
	for _, m := range corpus {
		if !m.Date.Before(since) && m.Date.Before(before) {
			in++
		}
	}
	e.spec.Since, e.spec.Before = &since, &before
	st := e.sync(model.ModeCopy)
	if st.Transferred != in {
		t.Fatalf("st.Transferred: want in; windowed pass transferred %d, want %d of %d",
			st.Transferred, in, countCorpus(corpus))
	}
	if in == 0 {
		t.Fatalf("in: want != 0; windowed pass transferred %d, want %d of %d",
			st.Transferred, in, countCorpus(corpus))
	}
	if in == countCorpus(corpus) {
		t.Fatalf("in: want != countCorpus(corpus); windowed pass transferred %d, want %d of %d",
			st.Transferred, in, countCorpus(corpus))
	}
	e.requireClean(0)
	e.spec.Since, e.spec.Before = nil, nil
	if st = e.sync(model.ModeCopy); st.Transferred != countCorpus(corpus)-in {
		t.Fatalf("after widening the window: transferred %d, want %d", st.Transferred, countCorpus(corpus)-in)
	}
	e.requireClean(0)
}
