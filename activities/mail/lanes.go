package mail

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/cutover/cutover/activities/mail/imapx"
)

// A destination that stores every message to disk (Dovecot's Maildir: a file written, synced
// and renamed per message) spends most of an initial sync waiting on the disk, each append
// connection one message at a time; the disk takes concurrent syncs in one journal commit, so
// more appends in flight store more messages a second. A worker copying a chunk of a folder
// cut into several chunks therefore borrows one more append connection, when the pass has
// one to lend, and spreads its batches over both: the source is read once, the batches go to
// the connection with fewer unanswered ones.
//
// The extra connections are the pass's, ExtraAppenders at most, lent to one chunk at a time
// (with the chunks of its folder its worker streams on behind it, scheduler.more); a chunk that
// started before the pass could lend asks again before each batch, and the connection is opened
// in the background meanwhile.
// They respect servers that limit connections per user: none is opened before every worker
// the pass may start has its own connections (a worker refused a connection hands its work
// back, sched.go, and the pass then opens no extra one), and one refused ends the lending for
// the pass. None is opened once users may write to the destination: their mail clients need
// the connections more. A folder copied as one chunk keeps a single connection, so its
// destination UIDs follow the source's order.

// DefaultExtraAppenders: with DefaultParallelism's 4 workers (a control and an append
// connection each) a pass holds at most 10 destination connections, Dovecot's default per
// user and address (mail_max_userip_connections).
const DefaultExtraAppenders = 2

// lanes lends a pass's extra append connections to chunks.
type lanes struct {
	p       *pass
	mu      sync.Mutex
	max     int
	open    int // lent or idle, alive
	dialed  int // connections opened in the pass (the timeline's append_lent_N)
	idle    []*imapx.Appender
	dials   sync.WaitGroup // connections being opened
	stopped bool           // a server refused one: no more this pass
	closed  bool           // the pass is over
	// dialing counts the workers started that have not yet dialled their connections (or
	// given up): no extra connection may take a place a worker is about to ask for.
	dialing atomic.Int32
}

func (e *Engine) extraAppenders() int {
	switch {
	case e.ExtraAppenders > 0:
		return e.ExtraAppenders
	case e.ExtraAppenders < 0:
		return 0
	}
	return DefaultExtraAppenders
}

func newLanes(p *pass) *lanes {
	l := &lanes{p: p, max: p.e.extraAppenders()}
	if p.dry || p.req.Phase.AfterDNSCutover() {
		l.max = 0
	}
	return l
}

// take lends an extra append connection for a chunk of fr, or returns nil. When none is idle
// and the pass may open one more, wait opens it now; otherwise it is opened in the background
// and lent to the next asking chunk (a chunk streaming on asks again at its next batch).
func (l *lanes) take(ctx context.Context, fr *folderRun, wait bool) *imapx.Appender {
	if l == nil || l.max == 0 {
		return nil
	}
	fr.mu.Lock()
	chunked := fr.chunked
	fr.mu.Unlock()
	if chunked < 2 || !l.ready() {
		return nil
	}
	l.mu.Lock()
	for len(l.idle) > 0 {
		ap := l.idle[len(l.idle)-1]
		l.idle = l.idle[:len(l.idle)-1]
		if ap.Err() == nil {
			l.mu.Unlock()
			return ap
		}
		l.open--
	}
	if l.stopped || l.closed || l.open >= l.max {
		l.mu.Unlock()
		return nil
	}
	l.open++
	l.dials.Add(1)
	l.mu.Unlock()
	if !wait {
		go func() {
			defer l.dials.Done()
			if ap := l.dial(ctx); ap != nil {
				l.put(ap)
			}
		}()
		return nil
	}
	defer l.dials.Done()
	return l.dial(ctx)
}

// dial opens a connection take counted as open.
func (l *lanes) dial(ctx context.Context) *imapx.Appender {
	ap, err := imapx.DialAppender(ctx, endpointConfig(l.p.spec.Dest), l.p.cr.dst)
	if err != nil {
		l.mu.Lock()
		l.open--
		l.stopped = true
		l.mu.Unlock()
		l.p.log.Debug("no extra append connection; the pass goes on with one per worker", "err", err)
		return nil
	}
	l.mu.Lock()
	l.dialed++
	n := l.dialed
	l.mu.Unlock()
	l.p.tl.mark(fmt.Sprintf("append_lent_%d", n))
	return ap
}

// testHookLanesReady, when set, holds lending back while it returns false (tests: workers
// still dialling as a chunk starts).
var testHookLanesReady func() bool

// ready reports whether every worker the pass may start has its connections, and no server
// refused one.
func (l *lanes) ready() bool {
	if l.dialing.Load() > 0 || testHookLanesReady != nil && !testHookLanesReady() {
		return false
	}
	l.p.c.mu.Lock()
	refused := l.p.c.errors["connection_limit"] > 0
	l.p.c.mu.Unlock()
	if refused {
		return false
	}
	s := l.p.sched
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.workers >= s.max
}

// put takes back a lent connection; a dead one is forgotten.
func (l *lanes) put(ap *imapx.Appender) {
	if l == nil || ap == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if ap.Err() != nil || l.closed {
		l.open--
		ap.Close()
		return
	}
	l.idle = append(l.idle, ap)
}

// close closes the idle connections at the end of the pass, once those being opened are.
func (l *lanes) close() {
	if l == nil {
		return
	}
	l.dials.Wait()
	l.mu.Lock()
	idle := l.idle
	l.idle, l.closed = nil, true
	l.mu.Unlock()
	for _, ap := range idle {
		ap.Close()
	}
}
