package netdelay_test

import (
	"bufio"
	"io"
	"net"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/testing/netdelay"
	"github.com/cutover/cutover/internal/testing/testenv"
)

const delay = 40 * time.Millisecond

// slack is how much longer than the delay a round trip may take on a busy machine.
const slack = 25 * time.Millisecond

// TestLinkDelaysRoundTrips: a TCP connect and each echo through the link take the delay (the
// namespace's incoming packets are held, its outgoing ones are not), the queue saw the
// packets, SetDelay(0) takes the delay away, and after Close neither the namespace nor the
// veth pair is left.
func TestLinkDelaysRoundTrips(t *testing.T) {
	testenv.Require(t, "kernel-level delay", netdelay.Available())
	l, err := netdelay.New(delay)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = l.Close()
		}
	})
	ln, err := l.Listen("tcp")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if got, want := ln.Addr().(*net.TCPAddr).IP.String(), l.Addr.String(); got != want {
		t.Fatalf("listener address: got %s, want the namespace's %s", got, want)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()

	start := time.Now()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	connect := time.Since(start)
	var echoes []time.Duration
	buf := make([]byte, 1)
	for range 7 {
		start := time.Now()
		if _, err := c.Write([]byte{'x'}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
		echoes = append(echoes, time.Since(start))
	}
	slices.Sort(echoes)
	echo := echoes[len(echoes)/2]
	t.Logf("through %s: connect %s, echo median %s of %v, %d packets held", l, connect, echo, echoes, l.Held())
	if connect < delay {
		t.Errorf("connect took %s, want at least %s", connect, delay)
	}
	if connect > delay+slack {
		t.Errorf("connect took %s, want at most %s", connect, delay+slack)
	}
	if echoes[0] < delay {
		t.Errorf("fastest echo round trip %s (of %v), want at least %s", echoes[0], echoes, delay)
	}
	if echo > delay+slack {
		t.Errorf("median echo round trip %s (of %v), want at most %s", echo, echoes, delay+slack)
	}
	if l.Held() < int64(1+len(echoes)) {
		t.Errorf("queue held %d packets, want at least the SYN and one per echo (%d)", l.Held(), 1+len(echoes))
	}

	// At zero the rule goes: round trips are the veth pair's and the queue sees nothing.
	if err := l.SetDelay(0); err != nil {
		t.Fatal(err)
	}
	held := l.Held()
	start = time.Now()
	for range 3 {
		if _, err := c.Write([]byte{'x'}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d >= delay {
		t.Errorf("three echoes without a delay took %s, want under %s", d, delay)
	}
	if l.Held() != held {
		t.Errorf("queue held %d packets after SetDelay(0), want none", l.Held()-held)
	}

	c.Close()
	ln.Close()
	closed = true
	if err := l.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := l.Gone(); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	if strings.Contains(string(out), l.Name) {
		t.Errorf("ip netns list still shows %s:\n%s", l.Name, out)
	}
	if _, err := exec.Command("ip", "-n", l.Name, "link").CombinedOutput(); err == nil {
		t.Errorf("namespace %s still answers `ip -n %s link`", l.Name, l.Name)
	}
}

// TestDovecotInsideLink: a Dovecot started with testenv.WithLink runs in the namespace (it
// listens on the namespace's address) and greets across the delay.
func TestDovecotInsideLink(t *testing.T) {
	testenv.Require(t, "kernel-level delay", netdelay.Available())
	l, err := netdelay.New(delay)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	d := testenv.StartDovecot(t, []testenv.User{{Name: "alice", Password: "pw"}}, testenv.WithLink(l))
	host, _, _ := net.SplitHostPort(d.Addr())
	if host != l.Addr.String() {
		t.Fatalf("dovecot at %s, want the namespace's address %s", d.Addr(), l.Addr)
	}
	start := time.Now()
	c, err := net.Dial("tcp", d.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "* OK") {
		t.Fatalf("greeting: %q, %v", line, err)
	}
	start2 := time.Now()
	if _, err := io.WriteString(c, "a NOOP\r\n"); err != nil {
		t.Fatal(err)
	}
	line, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "a OK") {
		t.Fatalf("NOOP: %q, %v", line, err)
	}
	noop := time.Since(start2)
	t.Logf("dovecot in %s: connect and greeting %s, NOOP %s", l.Name, start2.Sub(start), noop)
	if noop < delay {
		t.Errorf("NOOP answered in %s, want at least the link's %s", noop, delay)
	}
	// The server's own view: its process lives in the namespace.
	out, err := exec.Command("ip", "netns", "pids", l.Name).Output()
	if err != nil {
		t.Fatalf("ip netns pids %s: %v", l.Name, err)
	}
	if pid := d.Pid(); !slices.Contains(strings.Fields(string(out)), strconv.Itoa(pid)) {
		t.Errorf("dovecot master %d not among the namespace's processes %q", pid, strings.Fields(string(out)))
	}
}
