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
//     free worker at once, so one big INBOX does not leave the other connections idle; a
//     worker that has streamed its chunk streams the folder's next queued one behind it when
//     it would take it next anyway (more), so its appends do not stop at chunk boundaries;
//   - the worker finishing a folder's last chunk finalizes it (copies again what lost its
//     connection, carries flag changes, mirror deletes, records the marks) and queues the
//     group's next step.
//
// Chunks go first, so started folders finish before new ones begin; but once fewer chunks are
// queued than there are workers, the next folder is prepared, so its chunks are queued before a
// worker runs out of work. At the pass's tail (no folder left to prepare) a chunk bigger than
// its share of what is queued is split (guided self-scheduling): the last copies spread over
// every worker instead of one worker finishing a whole chunk while the others wait.
//
// Before any of that, every group's destination check runs on the planning session
// (destcheck.go) and groups whose folders LIST-STATUS proves unchanged are settled without a
// connection. Workers start as queued work outnumbers idle workers, up to Parallelism, the
// first on the planning session: a pass over an unchanged mailbox logs in once per side, and a
// change in one folder is worked on those same sessions.

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
	idle    int    // workers waiting for work
	workers int    // workers started
	max     int    // workers allowed
	spawn   func() // starts one more worker (without connections)
	// minChunk: a tail chunk is split only into parts of at least this many keys (0: never).
	minChunk int
}

func newScheduler(ctx context.Context, max int, spawn func()) *scheduler {
	s := &scheduler{max: max, spawn: spawn}
	s.cond = sync.NewCond(&s.mu)
	context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.cond.Broadcast()
	})
	return s
}

// fill queues the first steps and returns how many workers to start for them (at most
// workers, at least one).
func (s *scheduler) fill(steps []step, workers int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.steps = append(s.steps, steps...)
	s.workers = max(1, min(s.max, len(steps), workers))
	return s.workers
}

func (s *scheduler) pushStep(st step) {
	s.mu.Lock()
	s.steps = append(s.steps, st)
	n := s.growLocked()
	s.mu.Unlock()
	s.cond.Signal()
	s.grow(n)
}

func (s *scheduler) pushChunks(cs []chunk) {
	s.mu.Lock()
	s.chunks = append(s.chunks, cs...)
	n := s.growLocked()
	s.mu.Unlock()
	s.cond.Broadcast()
	s.grow(n)
}

// growLocked counts the workers to start for queued copy chunks: as many as they outnumber the
// idle workers, the one pushing them included (it is about to take work), up to max. Folder
// steps alone start no worker: they run on the sessions already open.
func (s *scheduler) growLocked() int {
	n := 0
	for s.spawn != nil && s.workers < s.max && len(s.chunks) > s.idle+1+n {
		s.workers++
		n++
	}
	return n
}

func (s *scheduler) grow(n int) {
	for range n {
		s.spawn()
	}
}

// next blocks until there is work, or returns false when everything is done (or cancelled).
func (s *scheduler) next() (step, *chunk, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		switch {
		case s.closed:
			return step{}, nil, false
		case s.chunkFirst():
			c := s.takeChunk(0)
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
		s.idle++
		s.cond.Wait()
		s.idle--
	}
}

// takeChunk takes the i-th queued chunk, split at the pass's tail when it is bigger than its
// share of the queue. Only a folder already cut into several chunks is split: a folder copied
// as one chunk keeps its destination UIDs in source order.
func (s *scheduler) takeChunk(i int) chunk {
	c := s.chunks[i]
	s.chunks = slices.Delete(s.chunks, i, i+1)
	if len(s.steps) > 0 || s.minChunk <= 0 || c.fr.chunked < 2 {
		return c
	}
	q := len(c.uids)
	for _, o := range s.chunks {
		q += len(o.uids)
	}
	share := max(s.minChunk, (q+s.workers-1)/max(1, s.workers))
	if len(c.uids) < share+s.minChunk {
		return c
	}
	rest := chunk{fr: c.fr, uids: c.uids[share:]}
	c.uids = c.uids[:share:share]
	c.fr.mu.Lock()
	c.fr.outstanding++
	c.fr.mu.Unlock()
	s.chunks = slices.Insert(s.chunks, i, rest)
	return c
}

// chunkFirst reports whether a worker asking for work is given a chunk before a step: chunks
// go first when there are no steps or at least one chunk per worker.
func (s *scheduler) chunkFirst() bool {
	return len(s.chunks) > 0 && (len(s.steps) == 0 || len(s.chunks) >= s.workers)
}

// more hands a worker that has streamed its chunk of fr another queued chunk of fr to stream
// on the same connections behind it, so that its appends go on while the first chunk's last
// answers come back instead of stopping at every chunk boundary. It does so only when the
// worker would be given a chunk next anyway (chunkFirst) and no idle worker is waiting for one.
func (s *scheduler) more(fr *folderRun) (chunk, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.idle > 0 || !s.chunkFirst() {
		return chunk{}, false
	}
	i := slices.IndexFunc(s.chunks, func(c chunk) bool { return c.fr == fr })
	if i < 0 {
		return chunk{}, false
	}
	return s.takeChunk(i), true
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

// runWorkers works the pass's groups on s, the planning session, and on as many more as the
// queue needs (up to par), and returns when every group is done or the pass was cut short.
func (p *pass) runWorkers(ctx context.Context, s *session, groups []*group, par int) error {
	for _, g := range groups {
		g.ok = true
		for i, m := range g.mappings {
			fr := p.runs[m.Source.Name]
			fr.g, fr.index = g, i
		}
	}
	s = p.checkDests(ctx, s, groups)
	var queued []step
	var fresh int64 // source messages above the ledger's marks in the queued folders, about
	for _, g := range groups {
		if p.settleUnchanged(g) {
			continue
		}
		queued = append(queued, step{g: g})
		for _, m := range g.mappings {
			if _, done := p.done[m.Source.Name]; !done {
				fresh += p.freshEstimate(p.runs[m.Source.Name])
			}
		}
	}
	if len(queued) == 0 || ctx.Err() != nil {
		s.close()
		return nil
	}
	// Extra workers cost a login on each side (and an append connection): they start at once
	// only for copying more than a couple of batches; otherwise the folders are worked on the
	// planning session and more workers start only when copy chunks queue up behind it.
	first := 1
	if fresh >= 2*int64(p.e.batchMessages()) {
		first = par
	}
	// The first worker takes its append connection before any other worker logs in, so that a
	// server limiting connections per user can never leave the pass without one.
	if fresh > 0 && !p.dry && s != nil {
		if _, err := s.dst.appender(ctx); err != nil {
			s.close()
			return fmt.Errorf("destination: %w", err)
		}
	}
	var wg sync.WaitGroup
	p.lanes = newLanes(p)
	defer p.lanes.close()
	start := func(ws *session) {
		wg.Add(1)
		if ws == nil {
			p.lanes.dialing.Add(1)
		}
		go func() {
			defer wg.Done()
			p.worker(ctx, ws)
		}()
	}
	p.sched = newScheduler(ctx, par, func() { start(nil) })
	p.sched.minChunk = 2 * p.e.batchMessages()
	n := p.sched.fill(queued, first)
	start(s) // the planning connections become the first worker's
	for range n - 1 {
		start(nil)
	}
	wg.Wait()
	return nil
}

// settleUnchanged finishes a group without a connection when LIST-STATUS proves each of its
// folders unchanged since its last full sync (canSkip) and nothing else is due in it.
func (p *pass) settleUnchanged(g *group) bool {
	if p.strict && p.window.Empty() {
		return false // strict_mirror looks for extras in every destination folder it syncs
	}
	for _, m := range g.mappings {
		if _, done := p.done[m.Source.Name]; !done && !p.canSkip(p.runs[m.Source.Name]) {
			return false
		}
	}
	for _, m := range g.mappings {
		if _, done := p.done[m.Source.Name]; done {
			continue
		}
		fr, status := p.runs[m.Source.Name], p.plan.status[m.Source.Name]
		fr.srcMessages, fr.srcBytes = status.Messages, max(0, status.Bytes)
		p.mu.Lock()
		fr.finished = fr.err == nil
		p.mu.Unlock()
	}
	return true
}

// freshEstimate is about how many messages of a folder the pass will copy, from LIST-STATUS
// and the ledger's marks: every message when the folder is new to the ledger or changed
// UIDVALIDITY, else the UIDs handed out above the mark.
func (p *pass) freshEstimate(fr *folderRun) int64 {
	st, lf := p.plan.status[fr.m.Source.Name], fr.lf
	if lf.UIDValidity == 0 || st.UIDValidity != uint32(lf.UIDValidity) || st.UIDNext == 0 {
		return st.Messages
	}
	return min(st.Messages, max(0, int64(st.UIDNext)-1-lf.HighestUID)) + int64(len(fr.recopy)) + int64(len(p.retryQ[lf.ID]))
}

// worker runs queued work on its own connections until the pass is done. A worker other than
// the first that cannot log in (a server limiting connections per user) hands its work back
// and stops: the pass goes on with fewer connections.
func (p *pass) worker(ctx context.Context, s *session) {
	primary := s != nil // the planning session: never handed back
	defer func() { s.close() }()
	dialed := primary
	dialedOnce := func() {
		if !dialed {
			dialed = true
			p.lanes.dialing.Add(-1)
		}
	}
	defer dialedOnce()
	for {
		st, c, ok := p.sched.next()
		if !ok {
			return
		}
		if s == nil && !primary {
			var err error
			s, err = p.dialWorker(ctx)
			if err != nil {
				if p.retryLater(err) && ctx.Err() == nil {
					p.log.Warn("extra connection refused; continuing with fewer", "err", err)
					p.c.addError("connection_limit", 1) // before dialedOnce: no extra appender after it
					p.sched.requeue(st, c)
					p.sched.done()
					return
				}
				s = nil // the task's own retry loop reports it
			}
			dialedOnce()
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
// resuming from the ledger), others leave the folder pending and the pass goes on. A control
// database that went away is retryable too: a pass that went on would end "done" with the
// folder pending, and the job would leave its initial sync with mail not copied.
func (p *pass) folderFailed(ctx context.Context, fr *folderRun, err error) {
	p.mu.Lock()
	fr.err, fr.finished = err, false
	fr.g.ok = false
	p.mu.Unlock()
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return // another worker aborted the pass; its error is the one reported
	}
	p.c.addError(errorClass(err), 1)
	if imapx.Retryable(err) || errors.Is(err, context.Canceled) || store.Unavailable(err) {
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
		// A dry run has no destination folder to look at where the job never copied.
		if p.strict && st.g.ok && p.window.Empty() && (!p.dry || st.g.mappings[0].Exists) {
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
	fr.outstanding, fr.chunked = len(chunks), len(chunks)
	fr.mu.Unlock()
	p.sched.pushChunks(chunks)
	return s
}

// runChunk copies one chunk, and the chunks of the same folder it streams on behind it
// (scheduler.more). A lost connection does not retry here — other workers may be appending
// into the same destination folder, so telling our lost appends from theirs must wait: the
// keys go back to the folder and its finalizer copies them again after settling.
func (p *pass) runChunk(ctx context.Context, s *session, c *chunk) *session {
	fr := c.fr
	p.current.Store(fr)
	taken := []chunk{*c}
	more := func() []uint32 {
		if fr.failedPermanently() {
			return nil
		}
		nc, ok := p.sched.more(fr)
		if !ok {
			return nil
		}
		taken = append(taken, nc)
		return nc.uids
	}
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
			done, err = p.copyAll(ctx, s, fr, c.uids, true, more)
			fr.addHandled(done)
		}
		if err != nil {
			if p.retryLater(err) && ctx.Err() == nil {
				p.log.Warn("connection lost in a chunk; its keys are copied again when the folder finishes",
					"folder", fr.m.Source.Name, "err", err)
				p.c.addError("reconnect", 1)
				fr.mu.Lock()
				for _, t := range taken {
					fr.retry = append(fr.retry, t.uids...)
				}
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
	fr.outstanding -= len(taken)
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
			s.settleReads()
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
