package testenv

import (
	"bytes"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

const testMessage = "From: Alice <alice@example.com>\r\n" +
	"To: Bob <bob@example.com>\r\n" +
	"Subject: testenv round trip\r\n" +
	"Date: Mon, 02 Jan 2006 15:04:05 +0000\r\n" +
	"Message-ID: <testenv-1@example.com>\r\n" +
	"\r\n" +
	"Hello from testenv.\r\n"

func TestStartDovecotRoundTrip(t *testing.T) {
	t.Parallel()
	alice := User{Name: "alice", Password: "alice-" + randomHex(4)}
	src := StartDovecot(t, []User{alice})
	dst := StartDovecot(t, []User{{Name: "bob", Password: "bob-pw"}})
	if src.Addr() == dst.Addr() {
		t.Fatalf("both instances listen on %s", src.Addr())
	}

	c := dialIMAP(t, src.Addr(), alice)
	if err := c.Create("Archive", nil).Wait(); err != nil {
		t.Fatalf("CREATE: %v", err)
	}
	date := time.Date(2024, 3, 4, 5, 6, 7, 0, time.UTC)
	appendCmd := c.Append("Archive", int64(len(testMessage)), &imap.AppendOptions{
		Flags: []imap.Flag{imap.FlagSeen, imap.FlagFlagged},
		Time:  date,
	})
	if _, err := appendCmd.Write([]byte(testMessage)); err != nil {
		t.Fatalf("APPEND write: %v", err)
	}
	if err := appendCmd.Close(); err != nil {
		t.Fatalf("APPEND close: %v", err)
	}
	if _, err := appendCmd.Wait(); err != nil {
		t.Fatalf("APPEND: %v", err)
	}

	sel, err := c.Select("Archive", nil).Wait()
	if err != nil {
		t.Fatalf("SELECT: %v", err)
	}
	if sel.NumMessages != 1 {
		t.Fatalf("NumMessages = %d, want 1", sel.NumMessages)
	}
	body := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{
		Flags:        true,
		InternalDate: true,
		BodySection:  []*imap.FetchItemBodySection{body},
	}).Collect()
	if err != nil {
		t.Fatalf("FETCH: %v", err)
	}
	if len(msgs) != 1 {
		t.Fatalf("FETCH returned %d messages, want 1", len(msgs))
	}
	if got := msgs[0].FindBodySection(body); !bytes.Equal(got, []byte(testMessage)) {
		t.Errorf("fetched body differs:\ngot  %q\nwant %q", got, testMessage)
	}
	if !msgs[0].InternalDate.Equal(date) {
		t.Errorf("INTERNALDATE = %v, want %v", msgs[0].InternalDate, date)
	}
	if !hasFlag(msgs[0].Flags, imap.FlagFlagged) || !hasFlag(msgs[0].Flags, imap.FlagSeen) {
		t.Errorf("flags = %v, want \\Seen and \\Flagged", msgs[0].Flags)
	}

	// The message is on disk in the source Maildir, and doveadm sees it.
	entries, err := os.ReadDir(filepath.Join(src.Maildir("alice"), ".Archive", "cur"))
	if err != nil {
		t.Errorf("err: want nil; source Maildir .Archive/cur: %d entries, err %v; want 1", len(entries), err)
	} else if len(entries) != 1 {
		t.Errorf("len(entries): want 1; source Maildir .Archive/cur: %d entries, err %v; want 1", len(entries), err)
	}
	out, err := src.Doveadm(t, "mailbox", "status", "-u", "alice", "messages", "Archive")
	if err != nil || !strings.Contains(out, "messages=1") {
		t.Errorf("doveadm mailbox status = %q, %v; want messages=1", out, err)
	}
	// The destination is a separate server.
	if _, err := os.Stat(dst.Maildir("alice")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("destination has a Maildir for alice (err %v)", err)
	}

	// A user added at runtime can log in without a restart.
	carol := User{Name: "carol", Password: "carol-pw"}
	src.AddUser(t, carol)
	dialIMAP(t, src.Addr(), carol)

	// Stop closes the port; Restart brings it back with the mail intact.
	addr := src.Addr()
	src.Stop()
	if src.Pid() != 0 {
		t.Errorf("Pid() = %d after Stop, want 0", src.Pid())
	}
	if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		conn.Close()
		t.Fatalf("%s still accepts connections after Stop", addr)
	}
	src.Restart(t)
	c = dialIMAP(t, src.Addr(), alice)
	if sel, err := c.Select("Archive", nil).Wait(); err != nil {
		t.Fatalf("err: want nil; after restart: SELECT Archive = %+v, %v; want 1 message", sel, err)
	} else if sel.NumMessages != 1 {
		t.Fatalf("sel.NumMessages = %v, want 1; after restart: SELECT Archive = %+v, %v; want 1 message",
			sel.NumMessages, sel, err)
	}
}

func TestStartDovecotMasterUser(t *testing.T) {
	t.Parallel()
	alice := User{Name: "alice", Password: "alice-pw"}
	d := StartDovecot(t, []User{alice}, WithMasterUser("master", "master-pw"),
		WithDovecotConfig("mail_max_userip_connections = 3"))

	c := dialIMAP(t, d.Addr(), User{Name: "alice*master", Password: "master-pw"})
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatalf("SELECT INBOX as alice*master: %v", err)
	}
	if sel.NumMessages != 0 {
		t.Errorf("NumMessages = %d, want 0", sel.NumMessages)
	}
	if _, err := os.Stat(d.Maildir("alice")); err != nil {
		t.Errorf("master login did not open alice's Maildir: %v", err)
	}

	// Wrong master password, and master login as a nonexistent user, fail.
	for _, name := range []string{"alice*master:wrong", "nobody-here*master:master-pw"} {
		login, password, _ := strings.Cut(name, ":")
		c, err := imapclient.DialInsecure(d.Addr(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Login(login, password).Wait(); err == nil {
			t.Errorf("LOGIN %s succeeded, want failure", login)
		}
		c.Close()
	}

	conf, err := os.ReadFile(d.ConfigPath())
	if err != nil || !strings.Contains(string(conf), "mail_max_userip_connections = 3") {
		t.Errorf("extra config line missing from %s (err %v)", d.ConfigPath(), err)
	}
}

func TestStartDovecotTLS(t *testing.T) {
	t.Parallel()
	alice := User{Name: "Alice", Password: "alice-pw"}
	d := StartDovecot(t, []User{alice}, WithTLS())
	if d.TLSAddr() == "" {
		t.Fatalf("want d.TLSAddr() != \"\"; TLS endpoints not set: addr %q port %d ca %d bytes",
			d.TLSAddr(), d.TLSPort(), len(d.CACertPEM()))
	}
	if d.TLSPort() == 0 {
		t.Fatalf("want d.TLSPort() != 0; TLS endpoints not set: addr %q port %d ca %d bytes",
			d.TLSAddr(), d.TLSPort(), len(d.CACertPEM()))
	}
	if len(d.CACertPEM()) == 0 {
		t.Fatalf("want len(d.CACertPEM()) != 0; TLS endpoints not set: addr %q port %d ca %d bytes",
			d.TLSAddr(), d.TLSPort(), len(d.CACertPEM()))
	}
	opts := &imapclient.Options{TLSConfig: d.ClientTLSConfig()}

	c, err := imapclient.DialTLS(d.TLSAddr(), opts)
	if err != nil {
		t.Fatalf("dial TLS: %v", err)
	}
	defer c.Close()
	if err := c.Login(alice.Name, alice.Password).Wait(); err != nil {
		t.Fatalf("LOGIN over TLS: %v", err)
	}

	st, err := imapclient.DialStartTLS(d.Addr(), opts)
	if err != nil {
		t.Fatalf("dial STARTTLS: %v", err)
	}
	defer st.Close()
	if err := st.Login(alice.Name, alice.Password).Wait(); err != nil {
		t.Fatalf("LOGIN after STARTTLS: %v", err)
	}
	if _, err := st.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("SELECT INBOX: %v", err)
	}
	if _, err := os.Stat(d.Maildir("alice")); err != nil {
		t.Errorf("Maildir(alice) for user %q: %v", alice.Name, err)
	}
}

func dialIMAP(t *testing.T, addr string, u User) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(u.Name, u.Password).Wait(); err != nil {
		t.Fatalf("LOGIN %s at %s: %v", u.Name, addr, err)
	}
	return c
}

func hasFlag(flags []imap.Flag, want imap.Flag) bool {
	for _, f := range flags {
		if f == want {
			return true
		}
	}
	return false
}
