// Package faultproxy is a loopback TCP proxy that injects network faults between a client and
// a real server: cut a connection after N bytes or when a byte pattern is about to pass, stall
// it, slow it down, delay it (a long link), reset it, or refuse new connections. Tests put it in
// front of Dovecot, PostgreSQL or Temporal to show that a component resumes without losing or
// duplicating work; Observe lets them count what passes (commands, round trips).
package faultproxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Direction says which way a fault watches the bytes.
type Direction int

const (
	ClientToServer Direction = iota // what the client sends
	ServerToClient                  // what the server answers
)

func (d Direction) String() string {
	if d == ServerToClient {
		return "server→client"
	}
	return "client→server"
}

// Fault describes what to do to connections. The zero Fault forwards faithfully.
type Fault struct {
	Dir Direction
	// CutAfter closes the connection once this many bytes have passed in Dir (0: never).
	CutAfter int64
	// CutAt closes the connection when Pattern is about to pass in Dir: the bytes before it
	// are forwarded, the pattern and everything after are not.
	CutAt []byte
	// Stall stops forwarding in Dir for this long when the trigger (CutAfter/CutAt, or the
	// first byte if neither is set) is reached, instead of cutting.
	Stall time.Duration
	// BytesPerSec slows Dir down to about this rate (0: full speed).
	BytesPerSec int
	// Reset closes with a TCP RST instead of a FIN.
	Reset bool
	// Delay holds every chunk going in Dir this long before forwarding it: the latency of a
	// long link, not a rate (chunks behind it are not held up further). Delaying the
	// client→server direction by D makes every request/answer cost D; the connection to the
	// target also waits D, as a SYN would.
	Delay time.Duration
	// Times is how many connections the fault hits before it disarms (0: every connection).
	Times int
}

func (f Fault) active() bool {
	return f.CutAfter > 0 || len(f.CutAt) > 0 || f.Stall > 0 || f.BytesPerSec > 0 || f.Reset || f.Delay > 0
}

// Proxy forwards a loopback listener to a target address.
type Proxy struct {
	target string
	ln     net.Listener

	mu      sync.Mutex
	fault   Fault
	observe func(conn int64, dir Direction, chunk []byte)
	hits    int
	refuse  bool
	conns   map[*pair]struct{}
	closed  bool
	wg      sync.WaitGroup
	accepts atomic.Int64
	cuts    atomic.Int64
	stalls  atomic.Int64
}

type pair struct {
	id             int64 // accept order, from 1
	client, server net.Conn
	once           sync.Once
	halves         atomic.Int32  // directions finished cleanly
	closed         chan struct{} // closed by cut: ends a stall early
}

// New starts a proxy on 127.0.0.1 with a free port, forwarding to target.
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{target: target, ln: ln, conns: map[*pair]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's host:port: point the client here.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Set replaces the fault for connections accepted from now on.
func (p *Proxy) Set(f Fault) {
	p.mu.Lock()
	p.fault, p.hits = f, 0
	p.mu.Unlock()
}

// Observe calls f with every chunk the proxy forwards from now on, with its connection's number
// (accept order, from 1) and direction; nil stops it. f must not keep the chunk.
func (p *Proxy) Observe(f func(conn int64, dir Direction, chunk []byte)) {
	p.mu.Lock()
	p.observe = f
	p.mu.Unlock()
}

// Clear removes the fault (live connections keep theirs).
func (p *Proxy) Clear() { p.Set(Fault{}) }

// Refuse makes the proxy close new connections at once (a server that is down) or accept
// them again.
func (p *Proxy) Refuse(on bool) {
	p.mu.Lock()
	p.refuse = on
	p.mu.Unlock()
}

// CutAll closes every live connection now.
func (p *Proxy) CutAll() {
	p.mu.Lock()
	ps := make([]*pair, 0, len(p.conns))
	for c := range p.conns {
		ps = append(ps, c)
	}
	p.mu.Unlock()
	for _, c := range ps {
		p.cut(c, false)
	}
}

// Accepted is the number of connections accepted so far; Cuts the number the proxy cut;
// Stalls the number it stalled.
func (p *Proxy) Accepted() int64 { return p.accepts.Load() }
func (p *Proxy) Cuts() int64     { return p.cuts.Load() }
func (p *Proxy) Stalls() int64   { return p.stalls.Load() }

// Close stops the listener and every connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	err := p.ln.Close()
	p.CutAll()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		id := p.accepts.Add(1)
		p.mu.Lock()
		refuse, closed := p.refuse, p.closed
		f := p.fault
		armed := f.active() && (f.Times == 0 || p.hits < f.Times)
		p.mu.Unlock()
		if refuse || closed {
			c.Close()
			continue
		}
		p.wg.Add(1)
		go p.serve(id, c, f, armed)
	}
}

// serve connects an accepted client to the target and starts both directions.
func (p *Proxy) serve(id int64, c net.Conn, f Fault, armed bool) {
	defer p.wg.Done()
	if armed && f.Delay > 0 {
		time.Sleep(f.Delay) // the SYN's trip over the long link
	}
	s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	// A link's queue is bounded: small socket buffers make a slowed sender wait (TCP flow
	// control) instead of parking megabytes here that would still trickle out long after
	// the sender gave up.
	for _, conn := range []net.Conn{c, s} {
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(linkQueue)
		}
	}
	pr := &pair{id: id, client: c, server: s, closed: make(chan struct{})}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		c.Close()
		s.Close()
		return
	}
	p.conns[pr] = struct{}{}
	p.mu.Unlock()
	var fc *faultState
	if armed {
		fc = &faultState{f: f, p: p}
	}
	p.wg.Add(2)
	go p.pipe(pr, s, c, ClientToServer, fc)
	go p.pipe(pr, c, s, ServerToClient, fc)
}

// faultState is one connection's armed fault.
type faultState struct {
	f     Fault
	p     *Proxy
	n     atomic.Int64
	fired atomic.Bool
	tail  []byte // end of the previous chunk, for patterns spanning chunks
}

// counted marks the fault as having hit a connection (for Times).
func (fs *faultState) counted() bool {
	fs.p.mu.Lock()
	defer fs.p.mu.Unlock()
	if fs.f.Times > 0 && fs.p.hits >= fs.f.Times {
		return false
	}
	fs.p.hits++
	return true
}

// linkQueue bounds what a connection's socket buffers hold in the proxy.
const linkQueue = 64 << 10

func (p *Proxy) pipe(pr *pair, dst, src net.Conn, dir Direction, fs *faultState) {
	defer p.wg.Done()
	var delay time.Duration
	if fs != nil && fs.f.Dir == dir {
		delay = fs.f.Delay
	}
	ln := p.newLink(pr, dst, dir, delay)
	defer ln.close()
	buf := make([]byte, 32<<10)
	for {
		rd := buf
		if fs != nil && fs.f.Dir == dir && fs.f.BytesPerSec > 0 {
			rd = buf[:min(len(buf), max(1<<10, fs.f.BytesPerSec/4))] // a slow link takes a quarter second's worth at a time
		}
		n, err := src.Read(rd)
		if n > 0 {
			chunk := buf[:n]
			if fs != nil && fs.f.Dir == dir && !fs.fired.Load() {
				pass, trigger, after := fs.check(chunk)
				if trigger && fs.counted() {
					fs.fired.Store(true)
					if len(pass) > 0 {
						if werr := ln.write(pass); werr != nil {
							p.cut(pr, false)
							return
						}
					}
					if fs.f.Stall > 0 {
						p.stalls.Add(1)
						select {
						case <-time.After(fs.f.Stall):
						case <-pr.closed: // the client gave up on the stalled connection
							return
						}
						chunk = after
					} else {
						p.cuts.Add(1)
						p.cut(pr, fs.f.Reset)
						return
					}
				} else if trigger {
					fs.fired.Store(true) // disarmed: Times connections were hit already
					chunk = append(pass, after...)
				} else if len(fs.f.CutAt) > 0 {
					chunk = pass // the held-back tail goes out with the next read
				}
			}
			var werr error
			if fs != nil && fs.f.Dir == dir && fs.f.BytesPerSec > 0 {
				ln.see(chunk)
				werr = slowWrite(dst, chunk, fs.f.BytesPerSec)
			} else if len(chunk) > 0 {
				werr = ln.write(chunk)
			}
			if werr != nil {
				p.cut(pr, false)
				return
			}
		}
		if err != nil {
			if fs != nil && fs.f.Dir == dir && len(fs.tail) > 0 && !fs.fired.Load() {
				_ = ln.write(fs.tail) // a held-back partial match that never completed
			}
			if ln.drain() != nil {
				p.cut(pr, false)
				return
			}
			// A clean end of one direction is passed on as a half-close; the pair closes when
			// both are done. Anything else tears the pair down.
			if tc, ok := dst.(*net.TCPConn); ok && errors.Is(err, io.EOF) {
				_ = tc.CloseWrite()
				if pr.halves.Add(1) < 2 {
					return
				}
			}
			p.cut(pr, false)
			return
		}
	}
}

// check returns the bytes that may pass now, whether the fault triggers after them, and the
// bytes after the trigger point (sent after a stall). For
// CutAt it holds back a chunk's tail that could begin the pattern (so a pattern split over
// two reads is still caught before any of it passes); line protocols never stall on it since
// their chunks end in CRLF.
func (fs *faultState) check(chunk []byte) (pass []byte, trigger bool, after []byte) {
	f := fs.f
	before := fs.n.Add(int64(len(chunk))) - int64(len(chunk))
	if len(f.CutAt) > 0 {
		hay := append(append([]byte(nil), fs.tail...), chunk...)
		if i := bytes.Index(hay, f.CutAt); i >= 0 {
			fs.tail = nil
			return hay[:i], true, hay[i:]
		}
		hold := 0
		for k := min(len(f.CutAt)-1, len(hay)); k > 0; k-- {
			if bytes.HasPrefix(f.CutAt, hay[len(hay)-k:]) {
				hold = k
				break
			}
		}
		fs.tail = append([]byte(nil), hay[len(hay)-hold:]...)
		return hay[:len(hay)-hold], false, nil
	}
	if f.CutAfter > 0 {
		if k := f.CutAfter - before; k < int64(len(chunk)) {
			return chunk[:k], true, chunk[k:]
		}
		return chunk, false, nil
	}
	// Neither trigger: Stall/Reset apply at the first byte.
	return nil, f.Stall > 0 || f.Reset, chunk
}

func slowWrite(w net.Conn, b []byte, rate int) error {
	const slice = 20 * time.Millisecond
	per := max(1, rate*int(slice)/int(time.Second))
	for len(b) > 0 {
		n := min(per, len(b))
		if _, err := w.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
		time.Sleep(slice)
	}
	return nil
}

func (p *Proxy) cut(pr *pair, reset bool) {
	pr.once.Do(func() {
		if reset {
			for _, c := range []net.Conn{pr.client, pr.server} {
				if tc, ok := c.(*net.TCPConn); ok {
					_ = tc.SetLinger(0)
				}
			}
		}
		close(pr.closed)
		pr.client.Close()
		pr.server.Close()
		p.mu.Lock()
		delete(p.conns, pr)
		p.mu.Unlock()
	})
}
