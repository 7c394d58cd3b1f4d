package testenv

import (
	"bytes"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/google/go-cmp/cmp"
)

// serverUnderTest is what the shared checks need from a started server.
type serverUnderTest struct {
	account func(user string) MailAccount
	addUser func(t testing.TB, u User)
	restart func(t testing.TB)
	stop    func()
	pid     func() int
	inbox   string // the folder prefix of the personal namespace
}

// checkServer runs the checks every harness must pass: logins (a wrong password refused),
// APPEND with a keyword and an INTERNALDATE answered with APPENDUID, folders, users added to a
// running server, mail kept across a restart, and no process left after Stop.
func checkServer(t *testing.T, s serverUnderTest) {
	alice := s.account("alice")
	wrong := alice
	wrong.Password += "-wrong"
	if c, err := imapclient.DialInsecure(wrong.Addr, nil); err != nil {
		t.Fatal(err)
	} else {
		if err := c.Login(wrong.User, wrong.Password).Wait(); err == nil {
			t.Error("login with a wrong password succeeded")
		}
		c.Close()
	}

	date := time.Date(2021, 7, 8, 9, 10, 11, 0, time.UTC)
	uid := alice.Append(t, "INBOX", []byte(testMessage), []string{`\Seen`, "$Work"}, date)
	if uid == 0 {
		t.Error("APPEND answered without APPENDUID")
	}
	folder := s.inbox + "Archive"
	alice.Create(t, folder)
	alice.Append(t, folder, []byte(testMessage), nil, date)

	got := alice.Messages(t, "INBOX")
	if len(got.Messages) != 1 {
		t.Fatalf("INBOX holds %d messages, want 1", len(got.Messages))
	}
	type view struct {
		UID   imap.UID
		Flags []string
		Date  time.Time
		Size  int64
	}
	want := view{UID: uid, Flags: []string{"$Work", `\Seen`}, Date: date, Size: int64(len(testMessage))}
	m := got.Messages[0]
	if diff := cmp.Diff(want, view{m.UID, m.Flags, m.InternalDate.UTC(), m.Size}); diff != "" {
		t.Errorf("stored message (-want +got):\n%s", diff)
	}
	if got.UIDValidity == 0 {
		t.Error("UIDVALIDITY 0")
	}
	listed := map[string]bool{}
	for _, f := range alice.Folders(t) {
		listed[f.Name] = true
	}
	if !listed["INBOX"] || !listed[folder] {
		t.Errorf("LIST shows %v, want INBOX and %s among them", listed, folder)
	}

	carol := User{Name: "carol", Password: "carol-" + randomHex(4)}
	s.addUser(t, carol)
	s.account("carol").Append(t, "INBOX", []byte(testMessage), nil, time.Time{})

	s.restart(t)
	if n := len(alice.Messages(t, folder).Messages); n != 1 {
		t.Errorf("after restart %s holds %d messages, want 1", folder, n)
	}
	pid := s.pid()
	s.stop()
	// Stop kills the whole group; members other than the leader are reaped by init.
	for deadline := time.Now().Add(10 * time.Second); syscall.Kill(-pid, 0) == nil; {
		if time.Now().After(deadline) {
			t.Errorf("process group %d still alive 10s after Stop", pid)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestStartCyrus(t *testing.T) {
	t.Parallel()
	c := StartCyrus(t, []User{{Name: "alice", Password: "alice-" + randomHex(4)}, {Name: "bob", Password: "bob-pw"}})

	// What a Debian Cyrus serves: other users' and shared folders beside the personal ones,
	// 8-bit header bytes rewritten to 'X' (munge8bit), CREATE-SPECIAL-USE.
	admin := c.AdminAccount()
	admin.Create(t, "user.bob.Trash")
	admin.Create(t, "shared-news")
	a := admin.Login(t)
	for _, mb := range []string{"user.bob.Trash", "shared-news"} {
		if err := a.SetACL(mb, "alice", imap.RightModificationReplace, imap.RightSet("lrs")).Wait(); err != nil {
			t.Fatalf("setacl %s: %v", mb, err)
		}
	}
	alice := c.Account("alice")
	alice.Create(t, "INBOX.Sent", imap.MailboxAttrSent)
	raw := []byte("From: a@example.org\r\nSubject: Gr\xc3\xbc\xc3\x9fe\r\nMessage-ID: <m8@example.org>\r\n\r\nbody\r\n")
	alice.Append(t, "INBOX.Sent", raw, nil, time.Time{})
	sent := alice.Messages(t, "INBOX.Sent").Messages
	if len(sent) != 1 || !bytes.Contains(sent[0].Header, []byte("Subject: GrXXXXe")) {
		t.Errorf("8-bit subject not munged as Debian's Cyrus does: %+v", sent)
	}
	folders := map[string][]string{}
	for _, f := range alice.Folders(t) {
		folders[f.Name] = f.Attrs
	}
	for _, name := range []string{"INBOX", "INBOX.Sent", "user.bob.Trash", "shared-news"} {
		if _, ok := folders[name]; !ok {
			t.Errorf("alice does not see %s: %v", name, folders)
		}
	}
	if !strings.Contains(strings.Join(folders["INBOX.Sent"], " "), `\Sent`) {
		t.Errorf("INBOX.Sent attributes %v, want \\Sent", folders["INBOX.Sent"])
	}

	bob := StartCyrus(t, []User{{Name: "alice", Password: "other"}}, WithCyrusConfig("munge8bit: no"))
	bob.Account("alice").Append(t, "INBOX", raw, nil, time.Time{})
	if h := bob.Account("alice").Messages(t, "INBOX").Messages[0].Header; !bytes.Contains(h, []byte("Subject: Gr\xc3\xbc")) {
		t.Errorf("munge8bit: no still rewrote the subject: %q", h)
	}
	bob.Stop()

	c.AdminAccount() // the administrator is not a mail user
	checkServer(t, serverUnderTest{account: c.Account, addUser: c.AddUser, restart: c.Restart, stop: c.Stop,
		pid: c.Pid, inbox: "INBOX."})
}

func TestStartCourier(t *testing.T) {
	t.Parallel()
	c := StartCourier(t, []User{{Name: "alice", Password: "alice-" + randomHex(4)}})

	// A Maildir restored without its UID database: every read-only session sees a new
	// UIDVALIDITY until a read-write one writes the database again.
	alice := c.Account("alice")
	alice.Append(t, "INBOX", []byte(testMessage), nil, time.Time{})
	c.ForgetUIDs(t, "alice", "INBOX")
	first := alice.Messages(t, "INBOX").UIDValidity
	time.Sleep(1100 * time.Millisecond) // Courier's UIDVALIDITY is a clock reading, in seconds
	second := alice.Messages(t, "INBOX").UIDValidity
	if first == second {
		t.Errorf("UIDVALIDITY %d in two read-only sessions after the UID database was removed, want a change", first)
	}
	cl := alice.Login(t)
	if _, err := cl.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	before := alice.Messages(t, "INBOX").UIDValidity
	time.Sleep(1100 * time.Millisecond)
	if after := alice.Messages(t, "INBOX").UIDValidity; before != after {
		t.Errorf("UIDVALIDITY %d then %d after a read-write session, want it stable", before, after)
	}
	// Start the shared checks from an empty INBOX.
	cl = alice.Login(t)
	if _, err := cl.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := cl.Store(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.StoreFlags{Op: imap.StoreFlagsAdd,
		Flags: []imap.Flag{imap.FlagDeleted}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := cl.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	cl.Close()

	checkServer(t, serverUnderTest{account: c.Account, addUser: c.AddUser, restart: c.Restart, stop: c.Stop,
		pid: c.Pid, inbox: "INBOX."})
}
