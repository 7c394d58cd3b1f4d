package faultproxy

import (
	"bytes"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// echoServer answers every byte it receives.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	return ln.Addr().String()
}

func proxy(t *testing.T, target string) *Proxy {
	t.Helper()
	p, err := New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// roundTrip sends msg and reads back what the echo returns before the connection ends.
func roundTrip(t *testing.T, addr string, msg []byte) []byte {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	go func() {
		c.Write(msg)
		c.(*net.TCPConn).CloseWrite()
	}()
	got, _ := io.ReadAll(c)
	return got
}

func TestForwardsFaithfully(t *testing.T) {
	p := proxy(t, echoServer(t))
	msg := bytes.Repeat([]byte("0123456789"), 100000)
	if got := roundTrip(t, p.Addr(), msg); !bytes.Equal(got, msg) {
		t.Fatalf("got %d bytes back, want %d", len(got), len(msg))
	}
}

func TestCutAfter(t *testing.T) {
	p := proxy(t, echoServer(t))
	p.Set(Fault{Dir: ServerToClient, CutAfter: 1000, Times: 1})
	msg := bytes.Repeat([]byte("x"), 100000)
	if got := roundTrip(t, p.Addr(), msg); len(got) != 1000 {
		t.Errorf("first connection got %d bytes, want exactly 1000", len(got))
	}
	if p.Cuts() != 1 {
		t.Errorf("cuts = %d", p.Cuts())
	}
	// Times: 1 — the next connection is untouched.
	if got := roundTrip(t, p.Addr(), msg); len(got) != len(msg) {
		t.Errorf("second connection got %d bytes, want %d", len(got), len(msg))
	}
}

func TestCutAtPatternAcrossChunks(t *testing.T) {
	target := echoServer(t)
	p := proxy(t, target)
	p.Set(Fault{Dir: ClientToServer, CutAt: []byte("MARK")})
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	// The pattern is split over two writes.
	c.Write([]byte("hello MA"))
	time.Sleep(50 * time.Millisecond)
	c.Write([]byte("RK world"))
	got, _ := io.ReadAll(c)
	if string(got) != "hello " {
		t.Errorf("echoed %q, want the bytes before the pattern only", got)
	}
}

func TestRefuseAndCutAll(t *testing.T) {
	p := proxy(t, echoServer(t))
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("ping"))
	buf := make([]byte, 4)
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	p.CutAll()
	if _, err := c.Read(buf); err == nil {
		t.Error("connection still open after CutAll")
	}
	p.Refuse(true)
	if got := roundTrip(t, p.Addr(), []byte("x")); len(got) != 0 {
		t.Errorf("refused connection echoed %q", got)
	}
	p.Refuse(false)
	if got := roundTrip(t, p.Addr(), []byte("back")); string(got) != "back" {
		t.Errorf("after Refuse(false) got %q", got)
	}
}

func TestStallAndSlow(t *testing.T) {
	p := proxy(t, echoServer(t))
	p.Set(Fault{Dir: ServerToClient, CutAfter: 10, Stall: 300 * time.Millisecond})
	start := time.Now()
	msg := bytes.Repeat([]byte("s"), 100)
	if got := roundTrip(t, p.Addr(), msg); len(got) != len(msg) {
		t.Fatalf("stalled connection lost data: %d of %d", len(got), len(msg))
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("no stall: %v", d)
	}
	p.Set(Fault{Dir: ServerToClient, BytesPerSec: 5000})
	start = time.Now()
	msg = bytes.Repeat([]byte("z"), 2000)
	if got := roundTrip(t, p.Addr(), msg); len(got) != len(msg) {
		t.Fatalf("slowed connection lost data: %d", len(got))
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("2000 bytes at 5000 B/s took only %v", d)
	}
}

// A stall long enough to look permanent is counted and ends when the connection is cut, so a
// test's cleanup never waits for it.
func TestLongStallEndsWhenCut(t *testing.T) {
	p := proxy(t, echoServer(t))
	p.Set(Fault{Dir: ServerToClient, Stall: time.Hour})
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, _ := c.Read(make([]byte, 10)); n != 0 {
		t.Fatalf("read %d bytes through a stalled connection", n)
	}
	if p.Stalls() != 1 {
		t.Fatalf("stalls = %d, want 1", p.Stalls())
	}
	done := make(chan struct{})
	go func() { p.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for the stall")
	}
}

func TestDelayHoldsEachRequest(t *testing.T) {
	p := proxy(t, echoServer(t))
	const d = 60 * time.Millisecond
	p.Set(Fault{Dir: ClientToServer, Delay: d})
	var mu sync.Mutex
	seen := map[Direction]int{}
	p.Observe(func(_ int64, dir Direction, b []byte) {
		mu.Lock()
		seen[dir] += len(b)
		mu.Unlock()
	})
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 5)
	for i := range 3 {
		start := time.Now()
		if _, err := c.Write([]byte("ping!")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took < d {
			t.Errorf("round trip %d took %v, want at least the delay %v", i, took, d)
		}
	}
	// A burst is delayed once, not once per chunk: the link has latency, not a rate.
	start := time.Now()
	for range 10 {
		if _, err := c.Write([]byte("burst")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := io.ReadFull(c, make([]byte, 50)); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < d {
		t.Errorf("took: want >= d; a burst of 10 writes took %v, want about one delay (%v)", took, d)
	} else if took > 4*d+time.Second {
		t.Errorf("took: want <= 4*d+time.Second; a burst of 10 writes took %v, want about one delay (%v)", took, d)
	}
	mu.Lock()
	defer mu.Unlock()
	if seen[ClientToServer] != 65 {
		t.Errorf("seen[ClientToServer] = %v, want 65; observed %v bytes per direction, want 65 each way",
			seen[ClientToServer], seen)
	} else if seen[ServerToClient] != 65 {
		t.Errorf("seen[ServerToClient] = %v, want 65; observed %v bytes per direction, want 65 each way",
			seen[ServerToClient], seen)
	}
}

func TestDelayKeepsOrderAndHalfClose(t *testing.T) {
	p := proxy(t, echoServer(t))
	p.Set(Fault{Dir: ClientToServer, Delay: 20 * time.Millisecond})
	msg := bytes.Repeat([]byte("0123456789"), 100000)
	if got := roundTrip(t, p.Addr(), msg); !bytes.Equal(got, msg) {
		t.Fatalf("got %d bytes back, want %d in order", len(got), len(msg))
	}
}
