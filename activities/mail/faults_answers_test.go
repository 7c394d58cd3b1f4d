package mail

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/cutover/cutover/activities/mail/imapx"
	"github.com/cutover/cutover/activities/mail/mailtest"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// scripted is a destination IMAP server (go-imap's in-memory server) whose APPEND answers a
// test scripts: the refusals, throttling and disconnections real servers give and Dovecot
// will not on demand. A message asks for its answer with an "X-Fault:" header.
type scripted struct {
	addr string

	mu       sync.Mutex
	appends  int            // APPEND commands seen
	byeAt    map[int]bool   // the n-th APPEND gets "* BYE" and a closed connection
	throttle map[string]int // X-Fault: throttle-N messages answered throttled N times
	quotaOK  bool           // OVERQUOTA answers stop (the quota was raised)
	answers  map[string]int // answers given, by kind
}

const scriptedUser, scriptedPassword = "alice", "scripted-pw"

func startScripted(t *testing.T) *scripted {
	t.Helper()
	mem := imapmemserver.New()
	u := imapmemserver.NewUser(scriptedUser, scriptedPassword)
	if err := u.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	mem.AddUser(u)
	s := &scripted{byeAt: map[int]bool{}, throttle: map[string]int{}, answers: map[string]int{}}
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(c *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return &scriptedSession{Session: mem.NewSession(), s: s, conn: c}, nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapUIDPlus: {}, imap.CapLiteralPlus: {}},
		InsecureAuth: true,
		Logger:       log.New(io.Discard, "", 0),
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	s.addr = ln.Addr().String()
	return s
}

func (s *scripted) count(kind string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.answers[kind]
}

type scriptedSession struct {
	imapserver.Session
	s    *scripted
	conn *imapserver.Conn
}

type literal struct {
	*bytes.Reader
}

func (l literal) Size() int64 { return l.Reader.Size() }

func (ss *scriptedSession) Append(mailbox string, r imap.LiteralReader, o *imap.AppendOptions) (*imap.AppendData, error) {
	buf, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	s := ss.s
	s.mu.Lock()
	s.appends++
	n := s.appends
	fault := ""
	if rest, ok := bytes.CutPrefix(buf, []byte("X-Fault: ")); ok { // faultMessage puts it first
		fault = string(rest[:bytes.IndexByte(rest, '\r')])
	}
	kind, answer := "", (*imap.Error)(nil)
	switch {
	case s.byeAt[n]:
		kind = "bye"
	case fault == "too-big":
		kind, answer = fault, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTooBig, Text: "Message size exceeds the fixed maximum message size"}
	case fault == "quota" && !s.quotaOK:
		kind, answer = fault, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeOverQuota, Text: "Quota exceeded (mailbox for user is full)"}
	case fault == "invalid":
		// Exchange Online's answer to a message it cannot parse.
		kind, answer = fault, &imap.Error{Type: imap.StatusResponseTypeBad, Text: "Command Argument Error. 11"}
	case fault == "refused":
		kind, answer = fault, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "Message contains a forbidden attachment type"}
	case strings.HasPrefix(fault, "throttle") && s.throttle[string(buf[:min(len(buf), 200)])] < int(fault[len(fault)-1]-'0'):
		s.throttle[string(buf[:min(len(buf), 200)])]++
		kind, answer = "throttle", &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable,
			Text: "Request is throttled. Suggested Backoff Time: 1200 milliseconds"}
	}
	if kind != "" {
		s.answers[kind]++
	}
	s.mu.Unlock()
	if kind == "bye" {
		// The server goes away before storing the message, mid-session.
		_ = ss.conn.Bye("Server shutting down for maintenance")
		return nil, &imap.Error{Type: imap.StatusResponseTypeBye, Text: "Server shutting down for maintenance"}
	}
	if answer != nil {
		return nil, answer
	}
	return ss.Session.Append(mailbox, literal{bytes.NewReader(buf)}, o)
}

// faultMessage is a small message asking the scripted server for an answer.
func faultMessage(folder, id, fault string, i int) mailtest.Message {
	d := time.Date(2022, 2, 3, 4, 5, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute)
	raw := mailtest.Text(id, "f@x", "scripted "+id, d, fmt.Sprintf("message %d\n", i))
	if fault != "" {
		raw = append([]byte("X-Fault: "+fault+"\r\n"), raw...)
	}
	return mailtest.Message{Folder: folder, Date: d, Flags: []string{`\Seen`}, Raw: raw}
}

// TestFaultServerAnswers runs a pass into a destination that answers APPEND as real servers
// do when things go wrong: NO [TOOBIG], NO [OVERQUOTA], BAD (an invalid message), NO [CANNOT]
// (a forbidden attachment), NO [UNAVAILABLE] throttling with a backoff hint (twice for one
// message), and "* BYE" in the middle of the session twice. Refused messages are quarantined
// with the server's words and never counted missing; throttled ones wait the hint and
// arrive; the session lost to BYE is redialled and nothing is stored twice. Raising the
// quota lets the next pass copy the quarantined message and resolve its quarantine.
func TestFaultServerAnswers(t *testing.T) {
	e := newEnv(t, nil, nil)
	d := startScripted(t)
	e.spec.Dest = emailapi.Endpoint{Addr: d.addr, Security: "plain", User: scriptedUser, CredentialsRef: "scripted-ref"}
	creds := e.eng.Credentials
	e.eng.Credentials = func(ctx context.Context, ref string) (imapx.Credentials, error) {
		if ref == "scripted-ref" {
			return imapx.Credentials{Password: scriptedPassword}, nil
		}
		return creds(ctx, ref)
	}
	faults := map[int]string{3: "too-big", 7: "quota", 11: "invalid", 15: "refused", 19: "throttle-2", 23: "throttle-1"}
	var corpus []mailtest.Message
	for i := range 30 {
		folder := []string{"INBOX", "Archive"}[i%2]
		corpus = append(corpus, faultMessage(folder, fmt.Sprintf("answer-%d@x", i), faults[i], i))
	}
	mailtest.SeedMaildir(t, e.src, "alice", corpus)
	d.mu.Lock()
	d.byeAt[5], d.byeAt[17] = true, true
	d.mu.Unlock()

	st, err := e.eng.Sync(context.Background(), emailapi.PassRequest{Spec: e.spec, Mode: model.ModeCopy}, SyncOptions{})
	if err != nil {
		t.Fatalf("pass failed: %v", err)
	}
	t.Logf("pass: transferred %d quarantined %d pending %d errors %v; server answers %v", st.Transferred, st.Quarantined, st.Pending, st.ErrorsByClass, d.answers)
	if st.Transferred != 26 {
		t.Errorf("st.Transferred: want 26; transferred %d quarantined %d pending %d, want 26, 4, 0",
			st.Transferred, st.Quarantined, st.Pending)
	} else if st.Quarantined != 4 {
		t.Errorf("st.Quarantined: want 4; transferred %d quarantined %d pending %d, want 26, 4, 0",
			st.Transferred, st.Quarantined, st.Pending)
	} else if st.Pending != 0 {
		t.Errorf("st.Pending: want 0; transferred %d quarantined %d pending %d, want 26, 4, 0",
			st.Transferred, st.Quarantined, st.Pending)
	}
	for kind, want := range map[string]int{"bye": 2, "throttle": 3, "too-big": 1, "quota": 1, "invalid": 1, "refused": 1} {
		if got := d.count(kind); got < want {
			t.Errorf("the server gave %d %q answers, want at least %d: the case was not exercised", got, kind, want)
		}
	}
	qs, err := e.db.ListMailQuarantine(context.Background(), e.spec.MailboxID, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"<answer-3@x>": "too_big", "<answer-7@x>": "quota", "<answer-11@x>": "append_rejected", "<answer-15@x>": "append_rejected"}
	words := map[string]string{"<answer-3@x>": "maximum message size", "<answer-7@x>": "[OVERQUOTA]", "<answer-11@x>": "Command Argument Error", "<answer-15@x>": "forbidden attachment"}
	for _, q := range qs {
		if want[q.Description] != q.ErrorClass || !strings.Contains(q.Reason, words[q.Description]) {
			t.Errorf("quarantined %s as %s: %q", q.Description, q.ErrorClass, q.Reason)
		}
		delete(want, q.Description)
	}
	if len(want) > 0 {
		t.Errorf("not quarantined: %v", want)
	}
	dst := scriptedMessages(t, d)
	for i, m := range corpus {
		id := fmt.Sprintf("<answer-%d@x>", i)
		n := dst[folderKey(m.Folder)+" "+id]
		switch {
		case faults[i] == "" || strings.HasPrefix(faults[i], "throttle"):
			if n != 1 {
				t.Errorf("%s: %d copies on the destination, want 1", id, n)
			}
		case n != 0:
			t.Errorf("%s (%s): %d copies on the destination, want none", id, faults[i], n)
		}
	}
	rep := e.verify()
	if !rep.OK {
		t.Errorf("rep.OK is false; verify: ok %v missing %d quarantined %d, want true, 0, 4",
			rep.OK, rep.Missing, rep.Quarantined)
	} else if rep.Missing != 0 {
		t.Errorf("rep.Missing: want 0; verify: ok %v missing %d quarantined %d, want true, 0, 4",
			rep.OK, rep.Missing, rep.Quarantined)
	} else if rep.Quarantined != 4 {
		t.Errorf("rep.Quarantined: want 4; verify: ok %v missing %d quarantined %d, want true, 0, 4",
			rep.OK, rep.Missing, rep.Quarantined)
	}

	// The quota is raised: the next pass copies the message quarantined for it.
	d.mu.Lock()
	d.quotaOK = true
	d.mu.Unlock()
	st = e.sync(model.ModeCopy)
	if st.Transferred != 1 {
		t.Errorf("st.Transferred: want 1; after the quota was raised: transferred %d quarantined %d pending %d, want 1, 3, 0",
			st.Transferred, st.Quarantined, st.Pending)
	} else if st.Quarantined != 3 {
		t.Errorf("st.Quarantined: want 3; after the quota was raised: transferred %d quarantined %d pending %d, want 1, 3, 0",
			st.Transferred, st.Quarantined, st.Pending)
	} else if st.Pending != 0 {
		t.Errorf("st.Pending: want 0; after the quota was raised: transferred %d quarantined %d pending %d, want 1, 3, 0",
			st.Transferred, st.Quarantined, st.Pending)
	}
	if n := scriptedMessages(t, d)["Archive <answer-7@x>"]; n != 1 {
		t.Errorf("the quota message has %d copies, want 1", n)
	}
}

// scriptedMessages counts the scripted server's messages by "folder <message-id>".
func scriptedMessages(t *testing.T, d *scripted) map[string]int {
	t.Helper()
	c, err := imapclient.DialInsecure(d.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(scriptedUser, scriptedPassword).Wait(); err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for k, bodies := range rawMessages(t, c) {
		out[k] += len(bodies)
	}
	return out
}
