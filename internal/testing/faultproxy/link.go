package faultproxy

import (
	"net"
	"sync"
	"time"
)

// link forwards one direction of a connection: every chunk is shown to the observer when the
// proxy reads it, then written to the other side at once or, with a delay, that long after it
// was read (in order, without holding up the chunks behind it).
type link struct {
	p     *Proxy
	pr    *pair
	dst   net.Conn
	dir   Direction
	delay time.Duration

	q       chan heldChunk // delayed chunks, oldest first
	done    chan struct{}  // closed when the delayed writer has stopped
	mu      sync.Mutex
	err     error // the delayed writer's write error
	drained bool
}

type heldChunk struct {
	at time.Time
	b  []byte
}

// delayQueue bounds the chunks a delayed direction holds (each at most the pipe's 32 KiB).
const delayQueue = 256

func (p *Proxy) newLink(pr *pair, dst net.Conn, dir Direction, delay time.Duration) *link {
	l := &link{p: p, pr: pr, dst: dst, dir: dir, delay: delay}
	if delay > 0 {
		l.q, l.done = make(chan heldChunk, delayQueue), make(chan struct{})
		p.wg.Add(1)
		go l.run()
	}
	return l
}

// see shows a chunk to the observer, if any.
func (l *link) see(b []byte) {
	l.p.mu.Lock()
	f := l.p.observe
	l.p.mu.Unlock()
	if f != nil && len(b) > 0 {
		f(l.pr.id, l.dir, b)
	}
}

// write forwards b (which the caller may reuse once write returns).
func (l *link) write(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	l.see(b)
	if l.delay == 0 {
		_, err := l.dst.Write(b)
		return err
	}
	l.mu.Lock()
	err := l.err
	l.mu.Unlock()
	if err != nil {
		return err
	}
	select {
	case l.q <- heldChunk{at: time.Now().Add(l.delay), b: append([]byte(nil), b...)}:
		return nil
	case <-l.pr.closed:
		return net.ErrClosed
	}
}

// run writes the delayed chunks when their time comes.
func (l *link) run() {
	defer l.p.wg.Done()
	defer close(l.done)
	for h := range l.q {
		if d := time.Until(h.at); d > 0 {
			select {
			case <-time.After(d):
			case <-l.pr.closed:
				return
			}
		}
		if _, err := l.dst.Write(h.b); err != nil {
			l.mu.Lock()
			l.err = err
			l.mu.Unlock()
			l.p.cut(l.pr, false)
			return
		}
	}
}

// drain waits until every delayed chunk is written (the source side ended cleanly).
func (l *link) drain() error {
	if l.delay == 0 {
		return nil
	}
	l.mu.Lock()
	if !l.drained {
		l.drained = true
		close(l.q)
	}
	l.mu.Unlock()
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// close stops the delayed writer without waiting (the pair is being torn down).
func (l *link) close() {
	if l.delay == 0 {
		return
	}
	l.mu.Lock()
	if !l.drained {
		l.drained = true
		close(l.q)
	}
	l.mu.Unlock()
}
