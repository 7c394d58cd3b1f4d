package mail

import (
	"bytes"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/testing/faultproxy"
)

// imapCounter reads the IMAP traffic through a faultproxy and counts, per connection, the
// commands the client sent and the round trips it waited for: the greeting, then every
// command sent while no earlier command of the connection was still unanswered (pipelined
// commands share their round trip; a LOGOUT, whose answer the client does not wait for, takes
// none, nor does a NOOP: the engine sends one only as the probe behind a LOGIN, behind.go,
// and never waits for it). Literals are skipped on both sides, so message bodies are never read as commands or
// answers.
type imapCounter struct {
	mu    sync.Mutex
	p     *faultproxy.Proxy
	conns map[int64]*imapConn
	// floor: connections up to this id were accepted before the last reset; what they still
	// send (the LOGOUT a pass writes as it returns, not waited for) is not counted.
	floor int64
}

type imapConn struct {
	cmds        []string // command names in order ("UID FETCH", "LOGIN", ...)
	rtts        int
	outstanding int
	unwaited    map[string]bool // tags of commands the client does not wait for
	cli, srv    imapStream
}

// imapStream splits one direction into lines, skipping literals.
type imapStream struct {
	buf     []byte
	literal int  // literal bytes still to skip
	cont    bool // the next line continues a command or response after a literal
}

// countIMAP starts counting the traffic through p.
func countIMAP(p *faultproxy.Proxy) *imapCounter {
	c := &imapCounter{p: p, conns: map[int64]*imapConn{}}
	p.Observe(c.see)
	return c
}

// reset forgets what was counted, and the connections it was counted on.
func (c *imapCounter) reset() {
	c.mu.Lock()
	if c.p != nil {
		c.floor = c.p.Accepted()
	}
	c.conns = map[int64]*imapConn{}
	c.mu.Unlock()
}

func (c *imapCounter) see(id int64, dir faultproxy.Direction, b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if id <= c.floor {
		return
	}
	cn := c.conns[id]
	if cn == nil {
		cn = &imapConn{rtts: 1} // the connection and its greeting
		c.conns[id] = cn
	}
	if dir == faultproxy.ClientToServer {
		cn.cli.feed(b, func(line string, first bool) {
			if !first {
				return
			}
			f := strings.Fields(line)
			if len(f) < 2 {
				return
			}
			name := strings.ToUpper(f[1])
			if name == "UID" && len(f) > 2 {
				name += " " + strings.ToUpper(f[2])
			}
			if name == "LOGOUT" || name == "NOOP" { // never waited for
				cn.cmds = append(cn.cmds, name)
				if cn.unwaited == nil {
					cn.unwaited = map[string]bool{}
				}
				cn.unwaited[f[0]] = true
				return
			}
			if cn.outstanding == 0 {
				cn.rtts++
			}
			cn.outstanding++
			cn.cmds = append(cn.cmds, name)
		})
		return
	}
	cn.srv.feed(b, func(line string, first bool) {
		if !first || line == "" || line[0] == '*' || line[0] == '+' {
			return
		}
		if tag, _, _ := strings.Cut(line, " "); cn.unwaited[tag] {
			delete(cn.unwaited, tag)
			return
		}
		if cn.outstanding > 0 {
			cn.outstanding-- // a tagged completion
		}
	})
}

// feed consumes b, calling line for each line outside literals; first is false for the rest
// of a command or response after a literal.
func (s *imapStream) feed(b []byte, line func(l string, first bool)) {
	s.buf = append(s.buf, b...)
	for len(s.buf) > 0 {
		if s.literal > 0 {
			n := min(s.literal, len(s.buf))
			s.literal -= n
			s.buf = s.buf[n:]
			continue
		}
		i := bytes.Index(s.buf, []byte("\r\n"))
		if i < 0 {
			return
		}
		l := string(s.buf[:i])
		s.buf = s.buf[i+2:]
		line(l, !s.cont)
		s.cont = false
		if strings.HasSuffix(l, "}") {
			if j := strings.LastIndexByte(l, '{'); j >= 0 {
				if n, err := strconv.Atoi(strings.TrimSuffix(l[j+1:len(l)-1], "+")); err == nil {
					s.literal, s.cont = n, true
				}
			}
		}
	}
}

// imapTally is what a counter saw, summed over its connections.
type imapTally struct {
	Sessions int            // connections that logged in
	Idle     int            // connections that logged in and sent nothing but LOGOUT after
	Commands int            // every command, LOGIN and LOGOUT included
	RTTs     int            // round trips, the greeting included, over every connection
	ByName   map[string]int // commands by name
	Conns    []string       // per connection: its commands, for failure messages
}

func (c *imapCounter) tally() imapTally {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := imapTally{ByName: map[string]int{}}
	ids := make([]int64, 0, len(c.conns))
	for id := range c.conns {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		cn := c.conns[id]
		logins := slices.IndexFunc(cn.cmds, func(s string) bool { return s == "LOGIN" || s == "AUTHENTICATE" })
		if logins >= 0 {
			t.Sessions++
			work := slices.DeleteFunc(slices.Clone(cn.cmds[logins+1:]), func(s string) bool { return s == "LOGOUT" || s == "CAPABILITY" })
			if len(work) == 0 {
				t.Idle++
			}
		}
		t.Commands += len(cn.cmds)
		t.RTTs += cn.rtts
		for _, n := range cn.cmds {
			t.ByName[n]++
		}
		t.Conns = append(t.Conns, fmt.Sprintf("#%d (%d round trips): %s", id, cn.rtts, strings.Join(cn.cmds, " ")))
	}
	return t
}

// appendsInFlight is how many APPENDs sent through the proxy are still unanswered.
func (c *imapCounter) appendsInFlight() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, cn := range c.conns {
		if slices.Contains(cn.cmds, "APPEND") { // an append connection sends nothing else after its LOGIN
			n += cn.outstanding
		}
	}
	return n
}

func (t imapTally) String() string {
	return fmt.Sprintf("%d session(s), %d idle, %d command(s), %d round trip(s)\n  %s", t.Sessions, t.Idle, t.Commands,
		t.RTTs, strings.Join(t.Conns, "\n  "))
}

func TestIMAPCounterSkipsLiterals(t *testing.T) {
	c := &imapCounter{conns: map[int64]*imapConn{}}
	cli := func(s string) { c.see(1, faultproxy.ClientToServer, []byte(s)) }
	srv := func(s string) { c.see(1, faultproxy.ServerToClient, []byte(s)) }
	srv("* OK ready\r\n")
	cli("a1 LOGIN u p\r\n")
	srv("a1 OK done\r\n")
	cli("a2 APPEND INBOX {9+}\r\na3 NOOP\r\n\r\n")  // the literal looks like a command
	cli("a4 UID FETCH 1:* (BODY[])\r\na5 NOOP\r\n") // pipelined: one round trip
	srv("a2 OK\r\n* 1 FETCH (BODY[] {9}\r\na4 OK x\r\n)\r\na4 OK\r\na5 OK\r\n")
	cli("a6 LOGOUT\r\n")
	got := c.tally()
	want := "LOGIN APPEND UID FETCH NOOP LOGOUT"
	if cmds := strings.Join(c.conns[1].cmds, " "); cmds != want {
		t.Fatalf("cmds: want want; got %v\ncommands %q, want %q with 3 round trips, 1 busy session", got, cmds, want)
	} else if got.RTTs != 3 { // greeting, LOGIN, the APPEND with the pipelined FETCH and NOOP; LOGOUT none
		t.Fatalf("got.RTTs = %v, want 3; got %v\ncommands %q, want %q with 3 round trips, 1 busy session",
			got.RTTs, got, cmds, want)
	} else if got.Sessions != 1 {
		t.Fatalf("got.Sessions = %v, want 1; got %v\ncommands %q, want %q with 3 round trips, 1 busy session",
			got.Sessions, got, cmds, want)
	} else if got.Idle != 0 {
		t.Fatalf("got.Idle = %v, want 0; got %v\ncommands %q, want %q with 3 round trips, 1 busy session",
			got.Idle, got, cmds, want)
	}
}

// What a connection accepted before a reset still sends (the LOGOUT a pass writes as it
// returns) is not counted after it.
func TestIMAPCounterResetDropsEarlierConnections(t *testing.T) {
	p, err := faultproxy.New("127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c := countIMAP(p)
	c.see(1, faultproxy.ServerToClient, []byte("* OK ready\r\n"))
	c.see(1, faultproxy.ClientToServer, []byte("a1 LOGIN u p\r\n"))
	conn, err := net.Dial("tcp", p.Addr()) // the proxy accepts it as connection 1
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for deadline := time.Now().Add(5 * time.Second); p.Accepted() < 1 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	c.reset()
	c.see(1, faultproxy.ClientToServer, []byte("a2 LOGOUT\r\n"))
	c.see(2, faultproxy.ServerToClient, []byte("* OK ready\r\n"))
	c.see(2, faultproxy.ClientToServer, []byte("a1 LOGIN u p\r\n"))
	if got := c.tally(); got.Commands != 1 {
		t.Fatalf("got.Commands = %d, want 1 (the new connection's LOGIN); %v", got.Commands, got)
	}
}

// The NOOP sent behind a LOGIN to learn a server is never waited for: it takes no round trip,
// and its late answer does not stand for the answer of a command sent after it.
func TestIMAPCounterNoopIsNotWaitedFor(t *testing.T) {
	c := &imapCounter{conns: map[int64]*imapConn{}}
	cli := func(s string) { c.see(1, faultproxy.ClientToServer, []byte(s)) }
	srv := func(s string) { c.see(1, faultproxy.ServerToClient, []byte(s)) }
	srv("* OK ready\r\n")
	cli("a1 LOGIN u p\r\na2 NOOP\r\n")
	srv("a1 OK done\r\n")
	cli("a3 NAMESPACE\r\na4 LIST \"\" \"*\"\r\n")
	srv("a2 OK noop\r\n* NAMESPACE ((\"\" \"/\")) NIL NIL\r\na3 OK\r\n")
	cli("a5 STATUS INBOX (MESSAGES)\r\n") // pipelined behind the LIST, still unanswered
	srv("a4 OK\r\na5 OK\r\n")
	if got := c.tally(); got.RTTs != 3 {
		t.Fatalf("got.RTTs = %d, want 3 (the greeting; LOGIN and NOOP; NAMESPACE, LIST and STATUS): %v", got.RTTs, got)
	}
}
