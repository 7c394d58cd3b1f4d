package mail

import (
	"context"
	"sync"
	"time"

	"github.com/cutover/cutover/activities/mail/imapx"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// Dialing is a pass's sessions being opened ahead of Sync (StartDial): the activity resolves
// the credentials and logs in to both sides while it writes its run row and waits for its
// pass lock, which need nothing from the servers. Nothing is read from either account before
// Sync takes the sessions over, and Sync takes them only once the activity holds the lock.
type Dialing struct {
	done  chan struct{}
	start time.Time
	ready time.Time // when the sessions were open
	cr    creds
	s     *session
	err   error

	mu    sync.Mutex
	taken bool // Sync has the sessions, or they were let go
}

// predialFresh is how long sessions opened ahead stay worth taking idle: a pass that waited longer
// for its lock (another attempt of it was still running) dials afresh, as servers drop idle
// sessions and the other attempt may have needed the connections.
const predialFresh = 10 * time.Second

// testHookDialed runs when sessions opened ahead are ready (tests hold the activity's run row
// until then).
var testHookDialed func()

// StartDial begins opening spec's sessions for a Sync to come (SyncOptions.Dialed). A file
// source, or a spec Sync would refuse, is not dialled: Sync opens or refuses it itself.
func (e *Engine) StartDial(ctx context.Context, spec emailapi.MailboxSpec) *Dialing {
	d := &Dialing{done: make(chan struct{}), start: time.Now()}
	if isFileSource(spec) { // opening a file source reads it: only under the lock
		d.taken = true
		close(d.done)
		return d
	}
	if _, err := validateSpec(spec); err != nil {
		d.taken = true
		close(d.done)
		return d
	}
	go func() {
		defer close(d.done)
		if d.cr, d.err = e.resolve(ctx, spec); d.err != nil {
			return
		}
		d.s, d.err = e.dialPlan(ctx, spec, d.cr)
		d.ready = time.Now()
		if testHookDialed != nil {
			testHookDialed()
		}
	}()
	return d
}

// Abandon closes the sessions, once open, unless Sync took them.
func (d *Dialing) Abandon() {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.taken {
		return
	}
	d.taken = true
	go func() {
		<-d.done
		d.s.close()
	}()
}

// pending reports whether there are sessions for take to wait for.
func (d *Dialing) pending() bool {
	if d == nil {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return !d.taken
}

// take waits for the sessions and hands them to Sync: ok is false when there is nothing to
// take (not dialled, already let go, or too old), and the caller dials itself. A failure to
// connect or log in that a new dial could get past (a server refusing connections while
// another attempt still held them) is not taken either; any other failure is the pass's.
func (d *Dialing) take() (cr creds, s *session, ok bool, err error) {
	if d == nil {
		return creds{}, nil, false, nil
	}
	d.mu.Lock()
	if d.taken {
		d.mu.Unlock()
		return creds{}, nil, false, nil
	}
	d.taken = true
	d.mu.Unlock()
	<-d.done
	if d.err != nil {
		if imapx.Retryable(d.err) {
			return creds{}, nil, false, nil
		}
		return creds{}, nil, true, d.err
	}
	if time.Since(d.ready) > predialFresh {
		go d.s.close()
		return creds{}, nil, false, nil
	}
	return d.cr, d.s, true, nil
}
