package imapx

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/cutover/cutover/internal/testing/faultproxy"
	"github.com/cutover/cutover/internal/testing/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var alice = testenv.User{Name: "alice", Password: "alice-pw"}

func plainCfg(d *testenv.Dovecot, user string) Config {
	return Config{Addr: d.Addr(), Security: "plain", User: user}
}

func TestDialSecurityAndAuth(t *testing.T) {
	if testing.Short() {
		t.Skip("needs Dovecot")
	}
	t.Parallel()
	d := testenv.StartDovecot(t, []testenv.User{alice}, testenv.WithTLS(), testenv.WithMasterUser("admin", "admin-pw"))
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, d.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ok := []struct {
		name string
		cfg  Config
		cred Credentials
	}{
		{"plain login", plainCfg(d, "alice"), Credentials{Password: alice.Password}},
		{"starttls", Config{Addr: d.Addr(), Security: "starttls", CAFile: ca, User: "alice"}, Credentials{Password: alice.Password}},
		{"tls", Config{Addr: d.TLSAddr(), Security: "tls", CAFile: ca, User: "alice"}, Credentials{Password: alice.Password}},
		{"tls default", Config{Addr: d.TLSAddr(), InsecureSkipVerify: true, User: "alice"}, Credentials{Password: alice.Password}},
		{"sasl plain", Config{Addr: d.Addr(), Security: "plain", Auth: "plain", User: "alice"}, Credentials{Password: alice.Password}},
		{"master user*", plainCfg(d, "alice*admin"), Credentials{Password: "admin-pw"}},
		{"authuser", Config{Addr: d.Addr(), Security: "plain", User: "alice", AuthUser: "admin"}, Credentials{Password: "admin-pw"}},
	}
	for _, c := range ok {
		cl, err := Dial(ctx, c.cfg, c.cred)
		if err != nil {
			t.Errorf("%s: Dial: %v", c.name, err)
			continue
		}
		// The session must belong to alice whoever authenticated.
		if err := cl.Create("Made-"+strings.ReplaceAll(c.name, " ", "-"), nil).Wait(); err != nil {
			t.Errorf("%s: CREATE: %v", c.name, err)
		}
		cl.Logout()
		ap, err := DialAppender(ctx, c.cfg, c.cred)
		if err != nil {
			t.Errorf("%s: DialAppender: %v", c.name, err)
			continue
		}
		if !ap.MultiAppend() || !ap.UIDPlus() {
			t.Errorf("%s: appender caps multi=%v uidplus=%v", c.name, ap.MultiAppend(), ap.UIDPlus())
		}
		ap.Close()
	}
	out, err := d.Doveadm(t, "mailbox", "list", "-u", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out, "Made-"); n != len(ok) {
		t.Errorf("alice has %d Made-* folders, want %d:\n%s", n, len(ok), out)
	}

	bad := []struct {
		name  string
		cfg   Config
		cred  Credentials
		class Class
	}{
		{"wrong password", plainCfg(d, "alice"), Credentials{Password: "nope"}, ClassAuth},
		{"unknown CA", Config{Addr: d.TLSAddr(), User: "alice"}, Credentials{Password: alice.Password}, ClassTLS},
		{"tls to plain port", Config{Addr: d.Addr(), Security: "tls", InsecureSkipVerify: true, User: "alice", DialTimeout: 2 * time.Second}, Credentials{Password: alice.Password}, ClassTLS},
		{"refused", Config{Addr: "127.0.0.1:1", Security: "plain", User: "alice"}, Credentials{}, ClassConnect},
	}
	for _, c := range bad {
		_, err := Dial(ctx, c.cfg, c.cred)
		if ClassOf(err) != c.class {
			t.Errorf("%s: Dial error %v (class %q), want class %q", c.name, err, ClassOf(err), c.class)
		}
		if err != nil && strings.Contains(err.Error(), alice.Password) {
			t.Errorf("%s: error leaks the password: %v", c.name, err)
		}
		_, err = DialAppender(ctx, c.cfg, c.cred)
		if ClassOf(err) != c.class {
			t.Errorf("%s: DialAppender error %v (class %q), want class %q", c.name, err, ClassOf(err), c.class)
		}
	}
	if got := (Credentials{Password: "s3cret"}); strings.Contains(stringOf(got), "s3cret") {
		t.Error("Credentials print their secret")
	}
}

func stringOf(v any) string {
	var b bytes.Buffer
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		b.WriteString(sprintf(f, v))
	}
	return b.String()
}

func msg(id, body string) []byte {
	return []byte("Message-ID: <" + id + ">\r\nSubject: " + id + "\r\n\r\n" + body + "\r\n")
}

func TestAppenderMultiAppend(t *testing.T) {
	if testing.Short() {
		t.Skip("needs Dovecot")
	}
	t.Parallel()
	d := testenv.StartDovecot(t, []testenv.User{alice}, testenv.WithDovecotConfig(
		"mail_plugins = $mail_plugins quota", "plugin {", "  quota = maildir:User quota", "  quota_rule = *:storage=100M",
		"  quota_max_mail_size = 64k", "}"))
	ctx := context.Background()
	cfg := plainCfg(d, "alice")
	cred := Credentials{Password: alice.Password}
	ap, err := DialAppender(ctx, cfg, cred)
	if err != nil {
		t.Fatal(err)
	}
	defer ap.Close()
	date := time.Date(2004, 5, 6, 7, 8, 9, 0, time.FixedZone("", 2*3600))
	msgs := [][]byte{msg("a@x", "one"), msg("b@x", "two"), msg("c@x", strings.Repeat("big ", 3000))}
	flags := [][]string{{`\Seen`, "$Label1"}, {`\Recent`, `\Flagged`, "bad flag"}, nil}

	// Two pipelined batches, the second written before the first is answered.
	b1, _ := ap.Begin("Entwürfe")
	for i := range 2 {
		if err := b1.Add(flags[i], date, int64(len(msgs[i])), bytes.NewReader(msgs[i])); err != nil {
			t.Fatal(err)
		}
	}
	if err := b1.End(); err != nil {
		t.Fatal(err)
	}
	b2, _ := ap.Begin("INBOX")
	if err := b2.Add(flags[2], date, int64(len(msgs[2])), bytes.NewReader(msgs[2])); err != nil {
		t.Fatal(err)
	}
	b2.End()
	r1, r2 := b1.Wait(ctx), b2.Wait(ctx)
	// The folder did not exist: TRYCREATE, and nothing of the batch was stored.
	if ClassOf(r1.Err) != ClassNoFolder {
		t.Fatalf("batch into a missing folder: %+v", r1)
	}
	if r2.Err != nil {
		t.Fatalf("r2.Err = %v, want nil; INBOX batch: %+v", r2.Err, r2)
	}
	if len(r2.UIDs) != 1 {
		t.Fatalf("len(r2.UIDs) = %v, want 1; INBOX batch: %+v", len(r2.UIDs), r2)
	}
	if r2.UIDValidity == 0 {
		t.Fatalf("r2.UIDValidity = %v, want != 0; INBOX batch: %+v", r2.UIDValidity, r2)
	}

	c, err := Dial(ctx, cfg, cred)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Logout()
	if err := c.Create("Entwürfe", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	b1, _ = ap.Begin("Entwürfe")
	for i := range 2 {
		b1.Add(flags[i], date, int64(len(msgs[i])), bytes.NewReader(msgs[i]))
	}
	b1.End()
	if r := b1.Wait(ctx); r.Err != nil || !slices.Equal(r.UIDs, []uint32{1, 2}) {
		t.Fatalf("retried batch: %+v", r)
	}
	sel, err := c.Select("Entwürfe", nil).Wait()
	if err != nil {
		t.Fatalf("err: want nil; select: %v, %+v", err, sel)
	}
	if sel.NumMessages != 2 {
		t.Fatalf("sel.NumMessages = %v, want 2; select: %v, %+v", sel.NumMessages, err, sel)
	}
	bs := &imap.FetchItemBodySection{Peek: true}
	got, err := c.Fetch(imap.UIDSetNum(1, 2), &imap.FetchOptions{UID: true, Flags: true, InternalDate: true, BodySection: []*imap.FetchItemBodySection{bs}}).Collect()
	if err != nil {
		t.Fatalf("err: want nil; fetch: %v (%d)", err, len(got))
	}
	if len(got) != 2 {
		t.Fatalf("len(got): want 2; fetch: %v (%d)", err, len(got))
	}
	for i, m := range got {
		if !bytes.Equal(m.FindBodySection(bs), msgs[i]) {
			t.Errorf("message %d body differs", i)
		}
		if !m.InternalDate.Equal(date) {
			t.Errorf("message %d INTERNALDATE %v, want %v", i, m.InternalDate, date)
		}
	}
	if !slices.Contains(got[0].Flags, imap.FlagSeen) || !slices.Contains(got[0].Flags, "$Label1") || !slices.Contains(got[1].Flags, imap.FlagFlagged) {
		t.Errorf("flags not preserved: %v / %v", got[0].Flags, got[1].Flags)
	}

	// A batch holding one message above the size limit is refused as a whole, classified too big.
	big := bytes.Repeat([]byte("x"), 100<<10)
	b3, _ := ap.Begin("INBOX")
	b3.Add(nil, time.Time{}, int64(len(msgs[0])), bytes.NewReader(msgs[0]))
	b3.Add(nil, time.Time{}, int64(len(big)), bytes.NewReader(big))
	b3.End()
	if r := b3.Wait(ctx); ClassOf(r.Err) != ClassTooBig {
		t.Errorf("oversized batch: %+v", r)
	}
	// The connection is still in sync afterwards.
	b4, _ := ap.Begin("INBOX")
	b4.Add(nil, time.Time{}, int64(len(msgs[1])), bytes.NewReader(msgs[1]))
	b4.End()
	if r := b4.Wait(ctx); r.Err != nil {
		t.Errorf("r.Err = %v, want nil; append after a rejection: %+v", r.Err, r)
	} else if len(r.UIDs) != 1 {
		t.Errorf("len(r.UIDs) = %v, want 1; append after a rejection: %+v", len(r.UIDs), r)
	}
}

func TestAppenderSynchronizingLiterals(t *testing.T) {
	if testing.Short() {
		t.Skip("needs Dovecot")
	}
	t.Parallel()
	// A server with neither LITERAL+ nor MULTIAPPEND (imap_capability replaces the list).
	d := testenv.StartDovecot(t, []testenv.User{alice}, testenv.WithDovecotConfig(
		"imap_capability = IMAP4rev1 UIDPLUS", "mail_plugins = $mail_plugins quota",
		"plugin {", "  quota = maildir:User quota", "  quota_rule = *:storage=100M", "  quota_max_mail_size = 64k", "}"))
	ctx := context.Background()
	ap, err := DialAppender(ctx, plainCfg(d, "alice"), Credentials{Password: alice.Password})
	if err != nil {
		t.Fatal(err)
	}
	defer ap.Close()
	if ap.MultiAppend() || ap.literalPlus {
		t.Fatalf("caps not honoured: multi=%v literal+=%v", ap.MultiAppend(), ap.literalPlus)
	}
	m := msg("sync@x", "synchronizing")
	b, _ := ap.Begin("INBOX")
	if err := b.Add(nil, time.Time{}, int64(len(m)), bytes.NewReader(m)); err != nil {
		t.Fatal(err)
	}
	if err := b.Add(nil, time.Time{}, int64(len(m)), bytes.NewReader(m)); err == nil {
		t.Error("second message accepted without MULTIAPPEND")
	}
	b.End()
	if r := b.Wait(ctx); r.Err != nil {
		t.Fatalf("r.Err = %v, want nil; sync append: %+v", r.Err, r)
	} else if len(r.UIDs) != 1 {
		t.Fatalf("len(r.UIDs) = %v, want 1; sync append: %+v", len(r.UIDs), r)
	}
	// Refused before a byte of the literal is sent: the reader is left untouched.
	big := bytes.NewReader(bytes.Repeat([]byte("y"), 100<<10))
	b, _ = ap.Begin("INBOX")
	if err := b.Add(nil, time.Time{}, big.Size(), big); err != ErrBatchDone {
		t.Fatalf("oversized sync literal: %v", err)
	}
	b.End()
	if r := b.Wait(ctx); ClassOf(r.Err) != ClassTooBig {
		t.Errorf("oversized: %+v", r)
	}
	if big.Len() != 100<<10 {
		t.Errorf("%d bytes of the refused message were read", 100<<10-big.Len())
	}
	b, _ = ap.Begin("INBOX")
	b.Add(nil, time.Time{}, int64(len(m)), bytes.NewReader(m))
	b.End()
	if r := b.Wait(ctx); r.Err != nil {
		t.Errorf("append after a refusal: %+v", r)
	}
}

// An APPEND abandoned mid-literal (the attempt was cancelled) must never be stored later: what
// the kernel or a slow link still holds would otherwise complete the command after the next
// attempt has looked for the message and sent it again. Through a link of 64 KB/s, a 320 KB
// message is cut off by the reset and the server stores nothing.
func TestAppenderAbandonedBatchNeverLands(t *testing.T) {
	if testing.Short() {
		t.Skip("needs Dovecot")
	}
	t.Parallel()
	d := testenv.StartDovecot(t, []testenv.User{alice})
	p, err := faultproxy.New(d.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.Set(faultproxy.Fault{Dir: faultproxy.ClientToServer, BytesPerSec: 64 << 10})
	ctx := context.Background()
	cred := Credentials{Password: alice.Password}
	ap, err := DialAppender(ctx, Config{Addr: p.Addr(), Security: "plain", User: "alice"}, cred)
	if err != nil {
		t.Fatal(err)
	}
	body := msg("abandoned@x", strings.Repeat("a line of an abandoned message\n", 10_000))
	b, _ := ap.Begin("INBOX")
	if err := b.Add(nil, time.Time{}, int64(len(body)), bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	if err := b.End(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // well under way, far from done
	ap.Close()
	if r := b.Wait(ctx); ClassOf(r.Err) != ClassConnect {
		t.Fatalf("abandoned batch: %+v", r)
	}
	time.Sleep(time.Duration(len(body)/(64<<10)+2) * time.Second) // the whole literal's time at that rate
	c, err := Dial(ctx, plainCfg(d, "alice"), cred)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Logout()
	if sel, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("err: want nil; INBOX after the abandoned APPEND: %v, %d messages, want none", err, sel.NumMessages)
	} else if sel.NumMessages != 0 {
		t.Fatalf("sel.NumMessages: want 0; INBOX after the abandoned APPEND: %v, %d messages, want none",
			err, sel.NumMessages)
	}
}
