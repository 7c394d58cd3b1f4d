package mail

import (
	"bufio"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/cutover/cutover/activities/mail/imapx"
)

// droppingServer is an IMAP server whose login step throws away whatever the client sent
// behind its LOGIN, as Courier's login process does when the bytes arrive together. It keeps
// the commands each connection got to it.
type droppingServer struct {
	ln    net.Listener
	mu    sync.Mutex
	conns [][]string
}

func newDroppingServer(t *testing.T) *droppingServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &droppingServer{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, nil)
			i := len(s.conns) - 1
			s.mu.Unlock()
			go s.serve(c, i)
		}
	}()
	return s
}

const droppingCaps = "IMAP4rev1 NAMESPACE LIST-EXTENDED LIST-STATUS SPECIAL-USE"

func (s *droppingServer) serve(c net.Conn, i int) {
	defer c.Close()
	r := bufio.NewReader(c)
	w := func(lines ...string) { c.Write([]byte(strings.Join(lines, "\r\n") + "\r\n")) }
	w("* OK [CAPABILITY IMAP4rev1 LITERAL+ AUTH=PLAIN] ready")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		tag, cmd := f[0], strings.ToUpper(f[1])
		s.mu.Lock()
		s.conns[i] = append(s.conns[i], cmd)
		s.mu.Unlock()
		switch cmd {
		case "LOGIN":
			// The login step hands the connection over without what it had read beyond the
			// LOGIN, or what arrives meanwhile.
			r.Discard(r.Buffered())
			_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			for {
				if _, err := r.ReadByte(); err != nil {
					break
				}
			}
			_ = c.SetReadDeadline(time.Time{})
			r = bufio.NewReader(c)
			w(tag + " OK [CAPABILITY " + droppingCaps + "] logged in")
		case "NAMESPACE":
			w(`* NAMESPACE (("" "/")) NIL NIL`, tag+" OK done")
		case "LIST":
			w(`* LIST () "/" INBOX`, `* STATUS INBOX (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 1)`, tag+" OK done")
		case "CAPABILITY":
			w("* CAPABILITY "+droppingCaps, tag+" OK done")
		case "LOGOUT":
			w("* BYE", tag+" OK done")
			return
		default:
			w(tag + " OK done")
		}
	}
}

func (s *droppingServer) commands() [][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([][]string, len(s.conns))
	for i, c := range s.conns {
		out[i] = append([]string(nil), c...)
	}
	return out
}

// TestPlanningSessionLearnsAServerDropsPipelinedInput: a server that drops what follows the
// LOGIN is probed (a NOOP behind the LOGIN, unanswered) and never pipelined to; and taken for
// one that keeps it, the pipelined session gets no answer to its NAMESPACE, is closed after
// behindWait and dialled again without, lists its folders, and the server is known to drop
// pipelined input from then on.
func TestPlanningSessionLearnsAServerDropsPipelinedInput(t *testing.T) {
	srv := newDroppingServer(t)
	cfg := imapx.Config{Addr: srv.ln.Addr().String(), Security: "plain", User: "alice"}
	forgetServers(cfg.Addr)
	cred := imapx.Credentials{Password: "pw"}
	ctx := context.Background()
	list := func() {
		t.Helper()
		c, nsq, ahead, err := dialPlanning(ctx, cfg, cred)
		if err != nil {
			t.Fatalf("dialPlanning: %v", err)
		}
		defer c.Logout()
		if _, _, err := nsq.get(); err != nil {
			t.Fatalf("namespace: %v", err)
		}
		fs, err := listFoldersAhead(ctx, c, ahead, true)
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		if len(fs) != 1 {
			t.Fatalf("len(fs) = %d, want 1 (INBOX): %v", len(fs), fs)
		}
	}
	list()
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, keeps := recall(cfg); keeps == -1 {
			break
		}
		if time.Now().After(deadline) {
			_, keeps := recall(cfg)
			t.Fatalf("keeps = %d after a probe the server dropped, want -1", keeps)
		}
	}

	forceMemo(cfg, imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapNamespace: {}, imap.CapListExtended: {}, imap.CapListStatus: {},
		imap.CapSpecialUse: {}}, 1)
	began := time.Now()
	list()
	took := time.Since(began)
	if took < behindWait {
		t.Errorf("the pipelined dial took %v, want the wait of behindWait (%v) for the dropped NAMESPACE", took, behindWait)
	}
	if _, keeps := recall(cfg); keeps != -1 {
		t.Errorf("keeps = %d after the pipelined session's NAMESPACE was dropped, want -1", keeps)
	}
	conns := srv.commands()
	if len(conns) != 3 {
		t.Fatalf("len(conns) = %d, want 3 (the probing session, the pipelined one, the one dialled again): %v", len(conns), conns)
	}
	if got := strings.Join(conns[1], " "); got != "LOGIN" {
		t.Errorf("the pipelined session's commands the server kept = %q, want LOGIN alone (the rest dropped)", got)
	}
	if got := strings.Join(conns[2], " "); !strings.HasPrefix(got, "LOGIN NAMESPACE LIST") {
		t.Errorf("the session dialled again sent %q, want LOGIN, NAMESPACE, LIST after the login's answer", got)
	}
}

// forgetServers drops what this process knows of the servers at addrs: a test's server may
// listen where an earlier test's did, and its passes must not start from what that one taught.
func forgetServers(addrs ...string) {
	servers.Lock()
	defer servers.Unlock()
	for k := range servers.m {
		for _, a := range addrs {
			if strings.HasSuffix(k, "://"+a) {
				delete(servers.m, k)
			}
		}
	}
}
