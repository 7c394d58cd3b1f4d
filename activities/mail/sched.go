package mail

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cutover/cutover/activities/mail/imapx"
	"github.com/cutover/cutover/activities/store"
)

// A pass is a queue of work run by Parallelism workers, each with its own source connection,
// destination connection and appender:
//
//   - a step prepares the next folder of a group (everything landing in one destination
//     folder, handled one source folder after another so adoption never races a copy into the
//     same folder): open it, reset the ledger if UIDVALIDITY changed, settle interrupted
//     appends, find the new keys, adopt what the destination has, quarantine what is too big,
//     and cut the rest into chunks;
//   - a chunk copies up to ChunkMessages of those keys; chunks of one folder run on every
//     free worker at once, so one big INBOX does not leave the other connections idle;
//   - the worker finishing a folder's last chunk finalizes it (copies again what lost its
//     connection, carries flag changes, mirror deletes, records the marks) and queues the
//     group's next step.
//
// Chunks go first, so started folders finish before new ones begin.

type step struct {
	g *group
	i int // index into g.mappings; len(g.mappings) = the group's closing step (mirror extras)
}

type chunk struct {
	fr   *folderRun
	uids []uint32
}

type scheduler struct {
	mu      sync.Mutex
	cond    *sync.Cond
	steps   []step
	chunks  []chunk
	running int
	closed  bool
}

func newScheduler(ctx context.Context) *scheduler {
	s := &scheduler{}
	s.cond = sync.NewCond(&s.mu)
	context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.cond.Broadcast()
	})
	return s
}

func (s *scheduler) pushStep(st step) {
	s.mu.Lock()
	s.steps = append(s.steps, st)
	s.mu.Unlock()
	s.cond.Signal()
}

func (s *scheduler) pushChunks(cs []chunk) {
	s.mu.Lock()
	s.chunks = append(s.chunks, cs...)
	s.mu.Unlock()
	s.cond.Broadcast()
}

// next blocks until there is work, or returns false when everything is done (or cancelled).
func (s *scheduler) next() (step, *chunk, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		switch {
		case s.closed:
			return step{}, nil, false
		case len(s.chunks) > 0:
			c := s.chunks[0]
			s.chunks = s.chunks[1:]
			s.running++
			return step{}, &c, true
		case len(s.steps) > 0:
			st := s.steps[0]
			s.steps = s.steps[1:]
			s.running++
			return st, nil, true
		case s.running == 0:
			s.closed = true
			s.cond.Broadcast()
			return step{}, nil, false
		}
		s.cond.Wait()
	}
}

// requeue puts work back at the front of its queue.
func (s *scheduler) requeue(st step, c *chunk) {
	s.mu.Lock()
	if c != nil {
		s.chunks = append([]chunk{*c}, s.chunks...)
	} else {
		s.steps = append([]step{st}, s.steps...)
	}
	s.mu.Unlock()
	s.cond.Broadcast()
}

func (s *scheduler) done() {
	s.mu.Lock()
	s.running--
	s.mu.Unlock()
	s.cond.Broadcast()
}

// worker runs queued work on its own connections until the pass is done. A worker other than
// the first that cannot log in (a server limiting connections per user) hands its work back
// and stops: the pass goes on with fewer connections.
func (p *pass) worker(ctx context.Context, s *session) {
	primary := s != nil
	defer func() { s.close() }()
	for {
		st, c, ok := p.sched.next()
		if !ok {
			return
		}
		if s == nil && !primary {
			var err error
			if s, err = p.dialWorker(ctx); err != nil {
				if p.retryLater(err) && ctx.Err() == nil {
					p.log.Warn("extra connection refused; continuing with fewer", "err", err)
					p.c.addError("connection_limit", 1)
					p.sched.requeue(st, c)
					p.sched.done()
					return
				}
				s = nil // the task's own retry loop reports it
			}
		}
		if c != nil {
			s = p.runChunk(ctx, s, c)
		} else {
			s = p.runStep(ctx, s, st)
		}
		p.sched.done()
	}
}

// dialWorker opens an extra worker's connections, its appender included, so that a server
// limiting connections refuses the worker as a whole rather than one of its commands later.
func (p *pass) dialWorker(ctx context.Context) (*session, error) {
	s, err := p.e.dial(ctx, p.spec, p.cr)
	if err != nil {
		return nil, err
	}
	if !p.dry {
		if _, err := s.dst.appender(ctx); err != nil {
			s.close()
			return nil, fmt.Errorf("destination: %w", err)
		}
	}
	return s, nil
}

// folderFailed records a folder's failure: retryable ones end the pass (Temporal retries it,
// resuming from the ledger), others leave the folder pending and the pass goes on.
func (p *pass) folderFailed(ctx context.Context, fr *folderRun, err error) {
	p.mu.Lock()
	fr.err, fr.finished = err, false
	fr.g.ok = false
	p.mu.Unlock()
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return // another worker aborted the pass; its error is the one reported
	}
	p.c.addError(errorClass(err), 1)
	if imapx.Retryable(err) || errors.Is(err, context.Canceled) {
		p.abort(err)
		return
	}
	p.log.Error("folder failed", "folder", fr.m.Source.Name, "err", err)
}

func (p *pass) folderDone(fr *folderRun) {
	p.mu.Lock()
	fr.finished = fr.err == nil
	p.mu.Unlock()
	p.sched.pushStep(step{g: fr.g, i: fr.index + 1})
}

// runStep prepares the next folder of a group, or closes the group.
func (p *pass) runStep(ctx context.Context, s *session, st step) *session {
	if st.i == len(st.g.mappings) {
		if p.mirror && st.g.ok && p.window.Empty() {
			var err error
			s, err = p.withRetries(ctx, s, nil, func(s *session) error { return p.mirrorExtras(ctx, s, st.g) })
			if err != nil {
				p.c.addError(errorClass(err), 1)
				p.log.Error("mirror delete failed", "folder", st.g.dest, "err", err)
				if imapx.Retryable(err) {
					p.abort(err)
				}
			}
		}
		return s
	}
	fr := p.runs[st.g.mappings[st.i].Source.Name]
	if _, ok := p.done[fr.m.Source.Name]; ok {
		p.sched.pushStep(step{g: st.g, i: st.i + 1})
		return s
	}
	status := p.plan.status[fr.m.Source.Name]
	fr.srcMessages, fr.srcBytes = status.Messages, max(0, status.Bytes)
	if p.canSkip(fr) {
		// Unchanged since the last full sync: no connection needed.
		p.folderDone(fr)
		return s
	}
	var chunks []chunk
	var err error
	s, err = p.withRetries(ctx, s, fr, func(s *session) error {
		var err error
		chunks, err = p.prepareFolder(ctx, s, fr)
		return err
	})
	if err != nil {
		p.folderFailed(ctx, fr, err)
		p.sched.pushStep(step{g: st.g, i: st.i + 1})
		return s
	}
	if len(chunks) == 0 {
		return p.finalize(ctx, s, fr)
	}
	fr.mu.Lock()
	fr.outstanding = len(chunks)
	fr.mu.Unlock()
	p.sched.pushChunks(chunks)
	return s
}

// runChunk copies one chunk. A lost connection does not retry here — other workers may be
// appending into the same destination folder, so telling our lost appends from theirs must
// wait: the keys go back to the folder and its finalizer copies them again after settling.
func (p *pass) runChunk(ctx context.Context, s *session, c *chunk) *session {
	fr := c.fr
	p.current.Store(fr)
	var err error
	if fr.failedPermanently() {
		err = nil
	} else {
		if s == nil {
			s, err = p.e.dial(ctx, p.spec, p.cr)
		}
		if err == nil {
			err = p.openSrc(ctx, s, fr)
		}
		var done []uint32
		if err == nil {
			done, err = p.copyAll(ctx, s, fr, c.uids)
			fr.addHandled(done)
		}
		if err != nil {
			if p.retryLater(err) && ctx.Err() == nil {
				p.log.Warn("connection lost in a chunk; its keys are copied again when the folder finishes",
					"folder", fr.m.Source.Name, "err", err)
				p.c.addError("reconnect", 1)
				fr.mu.Lock()
				fr.retry = append(fr.retry, c.uids...)
				fr.failed = time.Now()
				fr.mu.Unlock()
			} else {
				p.folderFailed(ctx, fr, err)
			}
			s.close()
			s = nil
		}
	}
	fr.mu.Lock()
	fr.outstanding--
	last := fr.outstanding == 0
	fr.mu.Unlock()
	if !last {
		return s
	}
	if fr.failedPermanently() {
		p.sched.pushStep(step{g: fr.g, i: fr.index + 1})
		return s
	}
	return p.finalize(ctx, s, fr)
}

func (fr *folderRun) failedPermanently() bool {
	fr.mu.Lock()
	defer fr.mu.Unlock()
	return fr.err != nil
}

// retryLater reports whether an error is worth a new connection within this pass.
func (p *pass) retryLater(err error) bool {
	switch imapx.ClassOf(err) {
	case imapx.ClassConnect, imapx.ClassNoFolder:
		return true
	case imapx.ClassThrottled:
		// A long throttling hint ends the activity: Temporal waits on a durable timer (throttle.go).
		return retryInPass(err)
	}
	return false
}

// finalize runs finalizeFolder with reconnects and queues the group's next step.
func (p *pass) finalize(ctx context.Context, s *session, fr *folderRun) *session {
	s, err := p.withRetries(ctx, s, fr, func(s *session) error { return p.finalizeFolder(ctx, s, fr) })
	if err != nil {
		p.folderFailed(ctx, fr, err)
		p.sched.pushStep(step{g: fr.g, i: fr.index + 1})
		return s
	}
	p.folderDone(fr)
	return s
}

// withRetries runs f on a session, redialling after dropped connections; the ledger makes
// every retry resume where the last attempt stopped.
func (p *pass) withRetries(ctx context.Context, s *session, fr *folderRun, f func(*session) error) (*session, error) {
	tries := p.e.Reconnects
	if tries <= 0 {
		tries = defaultReconnects
	}
	delay := p.e.ReconnectDelay
	if delay <= 0 {
		delay = time.Second
	}
	for attempt := 0; ; attempt++ {
		var err error
		if s == nil {
			s, err = p.e.dial(ctx, p.spec, p.cr)
		}
		if err == nil {
			if fr != nil {
				p.current.Store(fr)
			}
			if err = f(s); err == nil {
				return s, nil
			}
		}
		if !p.retryLater(err) || attempt >= tries || ctx.Err() != nil {
			return s, err
		}
		name := ""
		if fr != nil {
			name = fr.m.Source.Name
			fr.mu.Lock()
			fr.failed = time.Now()
			fr.mu.Unlock()
		}
		p.log.Warn("connection lost, resuming", "folder", name, "attempt", attempt+1, "err", err)
		p.c.addError("reconnect", 1)
		s.close()
		s = nil
		select {
		case <-time.After(delay << attempt):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// openSrc makes the folder current on the session's source connection, checking it is still
// the folder that was prepared.
func (p *pass) openSrc(ctx context.Context, s *session, fr *folderRun) error {
	if s.srcFolder == fr.m.Source.Name {
		return nil
	}
	st, err := s.src.Open(ctx, fr.m.Source.Name)
	if err != nil {
		s.srcFolder = ""
		return err
	}
	s.srcFolder, s.srcState = fr.m.Source.Name, st
	if fr.st.UIDValidity != 0 && st.UIDValidity != fr.st.UIDValidity {
		return fmt.Errorf("source folder %q changed UIDVALIDITY during the pass (%d → %d): the next pass re-identifies it",
			fr.m.Source.Name, fr.st.UIDValidity, st.UIDValidity)
	}
	return nil
}

// prepareFolder is a folder's first step; it returns the chunks to copy.
func (p *pass) prepareFolder(ctx context.Context, s *session, fr *folderRun) ([]chunk, error) {
	m := fr.m
	p.worked.Store(true)
	log := p.log.With("folder", m.Source.Name, "dest", m.Dest)
	s.srcFolder = ""
	if err := p.openSrc(ctx, s, fr); err != nil {
		return nil, err
	}
	st := s.srcState
	fr.st = st
	fr.srcMessages = int64(st.Messages)
	fr.handled = map[uint32]bool{}
	fr.retry = nil
	lf := fr.lf
	// A new UIDVALIDITY (or a new destination folder) invalidates every UID the ledger holds:
	// start over, re-identifying what the destination already has instead of copying it again.
	if !p.dry && (lf.UIDValidity != int64(st.UIDValidity) || lf.DestName != m.Dest) {
		if lf.UIDValidity != 0 || lf.DestName != m.Dest {
			log.Warn("source UIDVALIDITY or destination folder changed: re-identifying", "old_uidvalidity", lf.UIDValidity,
				"uidvalidity", st.UIDValidity, "old_dest", lf.DestName)
			p.c.addError("uidvalidity_reset", 1)
		}
		if err := p.resetFolder(ctx, fr, int64(st.UIDValidity)); err != nil {
			return nil, err
		}
		lf = fr.lf
	}

	var ds destState
	fr.destKnown = !p.dry || m.Exists
	fr.filter = flagFilter{anyKW: true}
	if fr.destKnown {
		var err error
		if ds, err = s.dst.selectFolder(ctx, m.Dest); err != nil {
			if imapx.ClassOf(err) == imapx.ClassNoFolder && !p.dry {
				if err2 := s.dst.ensure(ctx, m.Dest, false, false); err2 != nil {
					return nil, err2
				}
			}
			return nil, err
		}
		fr.filter = s.dst.flagFilter()
		if !p.dry && lf.DestUIDValidity != 0 && lf.DestUIDValidity != int64(ds.UIDValidity) {
			log.Warn("destination UIDVALIDITY changed: re-identifying", "old", lf.DestUIDValidity, "new", ds.UIDValidity)
			p.c.addError("dest_uidvalidity_reset", 1)
			if err := p.resetFolder(ctx, fr, int64(st.UIDValidity)); err != nil {
				return nil, err
			}
			lf = fr.lf
		}
		if !p.dry && lf.DestUIDValidity != int64(ds.UIDValidity) {
			if err := p.st.SetMailFolderDestUIDValidity(ctx, lf.ID, int64(ds.UIDValidity)); err != nil {
				return nil, err
			}
			lf.DestUIDValidity = int64(ds.UIDValidity)
			fr.lf = lf
		}
	}

	// Pending rows exist only after an interrupted attempt (this one or an earlier one); no
	// chunk of this folder runs yet, so every unclaimed destination message is a candidate.
	if !p.dry && (p.counts[lf.ID].Pending > 0 || !fr.failed.IsZero()) {
		if _, err := p.reconcile(ctx, s, fr); err != nil {
			return nil, err
		}
	}

	// New messages: above the mark, minus what the ledger or the quarantine already holds.
	mark := uint32(lf.HighestUID)
	if lf.WindowKey != p.window.Key() {
		mark = 0 // a new window: look at everything again; the ledger still skips what is done
	}
	keys, err := s.src.Keys(ctx, mark, p.window)
	if err != nil {
		return nil, err
	}
	fr.mark, fr.keys = mark, keys
	known := map[uint32]bool{}
	if lf.ID != 0 && len(keys) > 0 {
		uids, err := p.st.MailSourceUIDs(ctx, lf.ID, int64(mark))
		if err != nil {
			return nil, err
		}
		for _, u := range uids {
			known[uint32(u)] = true
		}
	}
	for u := range p.quarantined[lf.ID] {
		known[u] = true
	}
	todo := minus(keys, known)
	for _, q := range p.retryQ[lf.ID] {
		if !slices.Contains(todo, uint32(q.SourceUID)) {
			todo = append(todo, uint32(q.SourceUID))
		}
	}
	slices.Sort(todo)
	fr.todo = todo

	// Mail already on the destination that the ledger cannot account for: adopt it by identity
	// instead of copying a duplicate (first pass over a pre-filled account, UIDVALIDITY change,
	// mail delivered to the destination).
	if len(todo) > 0 && fr.destKnown && int64(ds.Messages) > p.claimed(m.Dest) {
		adopted, err := p.adopt(ctx, s, fr, todo)
		if err != nil {
			return nil, err
		}
		fr.addHandled(adopted)
		todo = minus(todo, fr.handled)
	}

	// Messages above the size limit are quarantined without being fetched.
	if p.limit > 0 && len(todo) > 0 {
		big, err := p.tooBig(ctx, s, fr, todo)
		if err != nil {
			return nil, err
		}
		fr.addHandled(big)
		todo = minus(todo, fr.handled)
	}

	if p.dry {
		metas, err := s.src.Metas(ctx, todo)
		if err != nil {
			return nil, err
		}
		for _, mt := range metas {
			if mt.Unreadable != "" {
				if err := p.quarantine(ctx, fr, mt, "unreadable", mt.Unreadable, false); err != nil {
					return nil, err
				}
				continue
			}
			fr.transferred.Add(1)
			p.c.transferred.Add(1)
			p.c.bytes.Add(mt.Size)
		}
		fr.addHandled(todo)
		return nil, nil
	}
	size := p.e.ChunkMessages
	if size <= 0 {
		size = DefaultChunkMessages
	}
	var chunks []chunk
	for len(todo) > 0 {
		n := min(size, len(todo))
		// A short tail rides with the chunk before it.
		if len(todo)-n < size/4 {
			n = len(todo)
		}
		chunks = append(chunks, chunk{fr: fr, uids: todo[:n]})
		todo = todo[n:]
	}
	return chunks, nil
}

// finalizeFolder copies again what lost its connection, settles what was not copied, carries
// flag changes and mirror deletes, and records the folder's marks.
func (p *pass) finalizeFolder(ctx context.Context, s *session, fr *folderRun) error {
	m, lf := fr.m, fr.lf
	if err := p.openSrc(ctx, s, fr); err != nil {
		return err
	}
	if fr.destKnown {
		if _, err := s.dst.selectFolder(ctx, m.Dest); err != nil {
			return err
		}
	}
	fr.mu.Lock()
	retry := slices.Clone(fr.retry)
	failed := !fr.failed.IsZero()
	fr.mu.Unlock()
	if len(retry) > 0 || (failed && !p.dry) {
		// Every chunk is over: appends whose answer was lost can be told apart now.
		found, err := p.reconcile(ctx, s, fr)
		if err != nil {
			return err
		}
		fr.addHandled(found)
		fr.mu.Lock()
		retry = minus(retry, fr.handled)
		fr.mu.Unlock()
		slices.Sort(retry)
		if len(retry) > 0 {
			done, err := p.copyAll(ctx, s, fr, retry)
			fr.addHandled(done)
			if err != nil {
				return err
			}
		}
		fr.mu.Lock()
		fr.retry = nil
		fr.mu.Unlock()
	}

	fr.mu.Lock()
	unhandled := minus(fr.todo, fr.handled)
	fr.mu.Unlock()
	if len(unhandled) > 0 && !p.dry {
		// Not streamed: gone from the source since the search (nothing to do), or an item the
		// source cannot produce (quarantined with its reason).
		metas, err := s.src.Metas(ctx, unhandled)
		if err != nil {
			return err
		}
		still := map[uint32]bool{}
		for _, mt := range metas {
			if mt.Unreadable != "" {
				if err := p.quarantine(ctx, fr, mt, "unreadable", mt.Unreadable, false); err != nil {
					return err
				}
				continue
			}
			still[mt.UID] = true
		}
		var left []uint32
		for _, u := range unhandled {
			if still[u] {
				left = append(left, u)
			}
		}
		unhandled = left
	}
	fr.unhandled = int64(len(unhandled))

	// Flags of messages synced in earlier passes: CONDSTORE tells which changed.
	st, mark := fr.st, fr.mark
	if mark > 0 && fr.destKnown {
		since := uint64(lf.HighestModSeq)
		if st.HighestModSeq == 0 {
			since = 0
		}
		if since == 0 || since != st.HighestModSeq {
			if err := p.syncFlags(ctx, s, fr, mark, since); err != nil {
				return err
			}
		}
	}

	if p.mirror && fr.destKnown {
		if err := p.mirrorGone(ctx, s, fr); err != nil {
			return err
		}
	}

	if p.dry {
		return nil
	}
	newMark := mark
	if len(fr.keys) > 0 {
		newMark = max(newMark, fr.keys[len(fr.keys)-1])
	}
	if len(unhandled) > 0 {
		newMark = min(newMark, unhandled[0]-1)
	}
	newMark = max(newMark, uint32(lf.HighestUID)*boolInt(lf.WindowKey == p.window.Key()))
	modseq := st.HighestModSeq
	if len(unhandled) > 0 {
		modseq = uint64(lf.HighestModSeq) // flags of unhandled messages are not settled
	}
	marks := store.MailFolderMarks{HighestUID: int64(newMark), HighestModSeq: int64(modseq), DestUIDValidity: lf.DestUIDValidity,
		WindowKey: p.window.Key(), SourceMessages: int64(st.Messages), SourceUIDNext: int64(st.UIDNext)}
	if len(unhandled) > 0 {
		marks.SourceUIDNext = 0 // never skip this folder while something is left
	}
	if err := p.st.SetMailFolderMarks(ctx, lf.ID, marks); err != nil {
		return err
	}
	p.log.Debug("folder synced", "folder", m.Source.Name, "transferred", fr.transferred.Load(),
		"quarantined", fr.quarantined.Load(), "unhandled", len(unhandled))
	return nil
}
