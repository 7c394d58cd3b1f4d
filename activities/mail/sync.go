package mail

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/cutover/cutover/activities/mail/folders"
	"github.com/cutover/cutover/activities/mail/identity"
	"github.com/cutover/cutover/activities/mail/imapx"
	"github.com/cutover/cutover/activities/store"
)

// pass is one running Sync.
type pass struct {
	e      *Engine
	req    PassRequest
	spec   MailboxSpec
	dry    bool
	mirror bool
	window Window
	cr     creds
	log    *slog.Logger
	st     *store.Store
	plan   *plan
	start  time.Time
	runIDv int64
	limit  int64 // bytes; larger messages are quarantined untried (0 = none)

	ledger      map[string]store.MailFolder      // by source name
	counts      map[int64]store.MailFolderCount  // by folder id, at pass start
	retryQ      map[int64][]store.MailQuarantine // by folder id: rows to try again
	quarantined map[int64]map[uint32]bool        // by folder id: unresolved, not retried
	destCount   map[string]int64                 // ledger messages per destination folder
	destStatus  map[string]SourceFolder          // destination LIST-STATUS, by name

	c       counters
	mu      sync.Mutex
	runs    map[string]*folderRun
	done    map[string]FolderStats // finished in an earlier attempt
	current atomic.Pointer[folderRun]
	sched   *scheduler
	worked  atomic.Bool // some folder was opened: the ledger counts changed
	fatal   error
	cancel  context.CancelFunc
}

// folderRun is one source folder's work in this pass. Its copy chunks run on several workers
// at once: the fields they share are atomic or guarded by mu.
type folderRun struct {
	m       folders.Mapping
	g       *group
	index   int // position in g.mappings
	lf      store.MailFolder
	lastUID atomic.Uint32
	failed  time.Time // when the last attempt at this folder lost its connection

	// Set by prepareFolder, read by chunks and finalizeFolder.
	st        FolderState // the source folder when prepared
	mark      uint32      // the ledger's mark the new keys were looked up above
	keys      []uint32    // source keys above mark, in the window
	todo      []uint32    // keys to copy
	destKnown bool        // the destination folder exists (always, except in dry runs)
	filter    flagFilter  // what the destination folder can store

	mu          sync.Mutex
	handled     map[uint32]bool // todo keys now on the destination or quarantined
	retry       []uint32        // keys of chunks that lost their connection: copied again at finalize
	outstanding int             // chunks not finished
	stops       map[uint32]int  // source key → copies of it a dropped connection interrupted
	stopErr     map[uint32]string

	srcMessages, srcBytes     int64
	transferred, quarantined  atomic.Int64
	deleted, flags, unhandled int64
	err                       error
	finished                  bool
}

func (fr *folderRun) addHandled(uids []uint32) {
	fr.mu.Lock()
	for _, u := range uids {
		fr.handled[u] = true
	}
	fr.mu.Unlock()
}

// Sync runs one pass of req. opts.Resume, when set, is the Progress of an earlier attempt of
// the same pass (heartbeat details): its counters carry over and its finished folders are not
// worked again.
func (e *Engine) Sync(ctx context.Context, req PassRequest, opts SyncOptions) (PassStats, error) {
	resume, onProgress := opts.Resume, opts.OnProgress
	start := time.Now()
	spec := req.Spec
	if req.Mode == "" {
		req.Mode = ModeCopy
	}
	switch req.Mode {
	case ModeCopy, ModeMirror, ModeDryRun:
	default:
		return PassStats{}, &SpecError{fmt.Errorf("mode %q: want copy, mirror or dry_run", req.Mode)}
	}
	if req.Mode == ModeMirror && req.Phase.AfterDNSCutover() {
		return PassStats{}, ErrMirrorAfterCutover
	}
	filter, err := validateSpec(spec)
	if err != nil {
		return PassStats{}, err
	}
	cr, err := e.resolve(ctx, spec)
	if err != nil {
		return PassStats{}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p := &pass{e: e, req: req, spec: spec, dry: req.Mode == ModeDryRun, mirror: req.Mode == ModeMirror,
		window: windowOf(spec), cr: cr, st: e.Store, runs: map[string]*folderRun{}, done: map[string]FolderStats{},
		cancel: cancel, runIDv: opts.RunID, start: start, log: e.logger().With("mailbox_id", spec.MailboxID, "email", spec.Email, "mode", req.Mode)}
	if resume != nil {
		start = start.Add(-resume.Elapsed) // rates cover the whole pass, not this attempt
		p.start = start
		p.c.restore(resume.Counters)
		for _, f := range resume.Done {
			p.done[f.Source] = f
		}
	}

	t0 := time.Now()
	s, err := e.dial(ctx, spec, cr)
	if err != nil {
		return PassStats{}, err
	}
	t1 := time.Now()
	if p.plan, err = e.plan(ctx, s, spec, filter); err != nil {
		s.close()
		return PassStats{}, err
	}
	t2 := time.Now()
	if err := p.prepare(ctx, s); err != nil {
		s.close()
		return PassStats{}, err
	}
	p.log.Debug("pass prepared", "dial", t1.Sub(t0), "plan", t2.Sub(t1), "prepare", time.Since(t2), "folders", len(p.plan.mappings))

	stopProgress := p.progressLoop(ctx, onProgress)
	groups := groupByDest(p.plan)
	par := req.Parallelism
	if par <= 0 {
		par = DefaultParallelism
	}
	// The first worker takes its append connection before any other worker logs in, so that a
	// server limiting connections per user can never leave the pass without one.
	if !p.dry && slices.ContainsFunc(p.plan.mappings, func(m folders.Mapping) bool {
		_, done := p.done[m.Source.Name]
		return !done && !p.canSkip(p.runs[m.Source.Name])
	}) {
		if _, err := s.dst.appender(ctx); err != nil {
			s.close()
			stopProgress()
			return PassStats{}, fmt.Errorf("destination: %w", err)
		}
	}
	p.sched = newScheduler(ctx)
	for _, g := range groups {
		g.ok = true
		for i, m := range g.mappings {
			fr := p.runs[m.Source.Name]
			fr.g, fr.index = g, i
		}
		p.sched.pushStep(step{g: g})
	}
	var wg sync.WaitGroup
	for i := range par {
		var ws *session
		if i == 0 {
			ws = s // the planning connections become worker 0's
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.worker(ctx, ws)
		}()
	}
	wg.Wait()
	stopProgress()
	p.log.Debug("pass workers done", "elapsed", time.Since(start))

	stats, err := p.stats(context.WithoutCancel(ctx), time.Since(start))
	if onProgress != nil {
		onProgress(p.progress())
	}
	if p.fatal != nil {
		return stats, p.fatal
	}
	if err != nil {
		return stats, err
	}
	if ctx.Err() != nil {
		return stats, ctx.Err()
	}
	return stats, nil
}

// prepare loads the ledger, creates missing destination folders and subscriptions.
func (p *pass) prepare(ctx context.Context, s *session) error {
	id := p.spec.MailboxID
	lfs, err := p.st.ListMailFolders(ctx, id)
	if err != nil {
		return err
	}
	p.ledger = map[string]store.MailFolder{}
	for _, f := range lfs {
		p.ledger[f.SourceName] = f
	}
	if p.counts, err = p.st.MailFolderCounts(ctx, id); err != nil {
		return err
	}
	p.destCount = map[string]int64{}
	for _, f := range lfs {
		p.destCount[f.DestName] += p.counts[f.ID].Messages
	}
	qs, err := p.st.ListMailQuarantine(ctx, id, 0, false)
	if err != nil {
		return err
	}
	p.retryQ, p.quarantined = map[int64][]store.MailQuarantine{}, map[int64]map[uint32]bool{}
	for _, q := range qs {
		if q.Retry {
			p.retryQ[q.FolderID] = append(p.retryQ[q.FolderID], q)
			continue
		}
		if p.quarantined[q.FolderID] == nil {
			p.quarantined[q.FolderID] = map[uint32]bool{}
		}
		p.quarantined[q.FolderID][uint32(q.SourceUID)] = true
	}
	p.limit = s.dst.appendLimit()
	if m := p.spec.MaxMessageSize; m > 0 && (p.limit == 0 || m < p.limit) {
		p.limit = m
	}
	if p.mirror {
		ds, err := listFolders(ctx, s.dst.c, true)
		if err != nil {
			return fmt.Errorf("destination: %w", err)
		}
		p.destStatus = map[string]SourceFolder{}
		for _, f := range ds {
			p.destStatus[f.Name] = f
		}
	}
	// Destination folders, parents first where the server wants them.
	exists, subscribed := map[string]bool{}, map[string]bool{}
	for _, f := range p.plan.destList {
		exists[f.Name] = true
		subscribed[f.Name] = f.Subscribed
	}
	for _, m := range p.plan.mappings {
		if !p.dry {
			subscribe := m.Source.Subscribed && !subscribed[m.Dest]
			if !exists[m.Dest] || subscribe {
				if err := s.dst.ensure(ctx, m.Dest, exists[m.Dest], subscribe); err != nil {
					if imapx.Retryable(err) {
						return err
					}
					p.log.Warn("cannot prepare destination folder", "folder", m.Dest, "err", err)
					p.c.addError(errorClass(err), 1)
				}
				exists[m.Dest], subscribed[m.Dest] = true, subscribed[m.Dest] || subscribe
			}
			if _, ok := p.ledger[m.Source.Name]; !ok {
				lf, err := p.st.EnsureMailFolder(ctx, id, m.Source.Name, m.Dest, m.SpecialUse)
				if err != nil {
					return err
				}
				p.ledger[m.Source.Name] = lf
			}
		}
		p.runs[m.Source.Name] = &folderRun{m: m, lf: p.ledger[m.Source.Name]}
	}
	return nil
}

// progressLoop reports progress until stopped.
func (p *pass) progressLoop(ctx context.Context, onProgress func(Progress)) func() {
	if onProgress == nil {
		return func() {}
	}
	every := p.e.ProgressEvery
	if every <= 0 {
		every = 2 * time.Second
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				onProgress(p.progress())
			case <-stop:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() { close(stop); <-done }
}

func (p *pass) progress() Progress {
	pr := Progress{RunID: p.runIDv, Counters: p.c.snapshot(), Elapsed: time.Since(p.start)}
	if fr := p.current.Load(); fr != nil {
		pr.Folder, pr.LastUID = fr.m.Source.Name, fr.lastUID.Load()
	}
	p.mu.Lock()
	for _, f := range p.done {
		pr.Done = append(pr.Done, f)
	}
	for _, fr := range p.runs {
		if fr.finished {
			pr.Done = append(pr.Done, p.folderStats(fr, nil))
		}
	}
	p.mu.Unlock()
	slices.SortFunc(pr.Done, func(a, b FolderStats) int { return strings.Compare(a.Source, b.Source) })
	return pr
}

func (p *pass) abort(err error) {
	p.mu.Lock()
	if p.fatal == nil {
		p.fatal = err
	}
	p.mu.Unlock()
	p.cancel()
}

// canSkip reports whether LIST-STATUS proves the folder unchanged since its last full sync.
func (p *pass) canSkip(fr *folderRun) bool {
	lf, st := fr.lf, p.plan.status[fr.m.Source.Name]
	if lf.ID == 0 || lf.UIDValidity == 0 || lf.DestName != fr.m.Dest || lf.WindowKey != p.window.Key() {
		return false
	}
	if st.UIDValidity != uint32(lf.UIDValidity) || int64(st.UIDNext) != lf.SourceUIDNext ||
		st.Messages != lf.SourceMessages || st.ModSeq == 0 || int64(st.ModSeq) != lf.HighestModSeq {
		return false
	}
	if p.counts[lf.ID].Pending > 0 || len(p.retryQ[lf.ID]) > 0 {
		return false
	}
	if p.mirror {
		// Extras on the destination (or a changed destination) need a look, and so do ledger
		// rows whose source message is gone (an earlier copy pass saw the expunge but deletes
		// nothing).
		ds, ok := p.destStatus[fr.m.Dest]
		if !ok || ds.UIDValidity != uint32(lf.DestUIDValidity) || ds.Messages != p.destCount[fr.m.Dest] {
			return false
		}
		if c := p.counts[lf.ID]; !p.window.Empty() || c.Messages+c.Quarantined != st.Messages {
			return false
		}
	}
	return true
}

// resetFolder forgets a folder's ledger (see store.ResetMailFolder) and what it claimed.
func (p *pass) resetFolder(ctx context.Context, fr *folderRun, uidValidity int64) error {
	lf := fr.lf
	// The rows may have been claiming messages of the old destination folder.
	rows, err := p.st.MailFolderCounts(ctx, lf.MailboxID)
	if err != nil {
		return err
	}
	if err := p.st.ResetMailFolder(ctx, lf.ID, uidValidity, fr.m.Dest); err != nil {
		return err
	}
	p.mu.Lock()
	p.destCount[lf.DestName] -= rows[lf.ID].Messages
	p.counts[lf.ID] = store.MailFolderCount{FolderID: lf.ID}
	p.mu.Unlock()
	fr.lf = store.MailFolder{ID: lf.ID, MailboxID: lf.MailboxID, SourceName: lf.SourceName, DestName: fr.m.Dest,
		SpecialUse: lf.SpecialUse, UIDValidity: uidValidity}
	return nil
}

func boolInt(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// claimed is how many messages the ledger maps into a destination folder.
func (p *pass) claimed(dest string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.destCount[dest]
}

// crossAttemptSettle is the default settle delay before reconciling what an earlier attempt
// left pending (once per folder with pending rows, per retried pass).
const crossAttemptSettle = 15 * time.Second

// reconcile settles pending rows left by an interrupted attempt: an APPEND whose answer was
// lost may or may not have been stored. Messages the destination now has beyond the ledger's
// claims are matched by identity; what is found is adopted, the rest is copied again.
func (p *pass) reconcile(ctx context.Context, s *session, fr *folderRun) ([]uint32, error) {
	lf := fr.lf
	rows, err := p.st.MailMessages(ctx, lf.ID, 0, nil)
	if err != nil {
		return nil, err
	}
	var pend []store.MailMessage
	for _, r := range rows {
		if r.State == store.MailPending {
			pend = append(pend, r)
		}
	}
	if len(pend) == 0 {
		return nil, nil
	}
	// The old session's server process may still be storing the batches it had received.
	// When the failure happened in another attempt (a process crash, an activity retry) its
	// time is unknown, and the earlier attempt's bytes may still be on their way: a slow link
	// or an intermediary delivers what it had queued after the sender gave up (seen: 7 s at
	// 12 KB/s). Wait the longer default then.
	settle := p.e.SettleDelay
	if settle <= 0 {
		settle = 3 * time.Second
		if fr.failed.IsZero() {
			settle = crossAttemptSettle
		}
	}
	wait := settle
	if !fr.failed.IsZero() {
		wait = settle - time.Since(fr.failed)
	}
	if wait > 0 {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if _, err := s.dst.selectFolder(ctx, fr.m.Dest); err != nil {
			return nil, err
		}
	}
	claimed, err := p.st.MailDestUIDs(ctx, lf.MailboxID, fr.m.Dest)
	if err != nil {
		return nil, err
	}
	all, err := s.dst.uids(ctx)
	if err != nil {
		return nil, err
	}
	isClaimed := map[uint32]bool{}
	for _, u := range claimed {
		isClaimed[uint32(u)] = true
	}
	metas, err := s.dst.metas(ctx, minus(all, isClaimed))
	if err != nil {
		return nil, err
	}
	pool := map[string][]uint32{}
	for _, m := range metas {
		pool[m.Identity] = append(pool[m.Identity], m.UID)
	}
	var foundSrc, foundDest, lost []int64
	var lostIDs []string
	for _, r := range pend {
		if d := pool[r.Identity]; len(d) > 0 {
			foundSrc, foundDest = append(foundSrc, r.SourceUID), append(foundDest, int64(d[0]))
			pool[r.Identity] = d[1:]
		} else {
			lost = append(lost, r.SourceUID)
			lostIDs = append(lostIDs, r.Identity)
		}
	}
	// Recorded before the rows go: if the abandoned APPEND lands after all, verification knows
	// the second copy is ours.
	if err := p.st.WatchLateCopies(ctx, lf.ID, lostIDs); err != nil {
		return nil, err
	}
	if err := p.st.ConfirmMailMessages(ctx, lf.ID, store.MailCopied, foundSrc, foundDest); err != nil {
		return nil, err
	}
	// They did arrive: count them as this pass's transfers.
	var bytes int64
	for _, r := range pend {
		if slices.Contains(foundSrc, r.SourceUID) {
			bytes += r.Size
		}
	}
	fr.transferred.Add(int64(len(foundSrc)))
	p.c.transferred.Add(int64(len(foundSrc)))
	p.c.bytes.Add(bytes)
	if err := p.st.DeleteMailMessages(ctx, lf.ID, lost); err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.destCount[fr.m.Dest] += int64(len(foundSrc))
	p.mu.Unlock()
	p.log.Info("reconciled interrupted appends", "folder", fr.m.Source.Name, "found_on_destination", len(foundSrc), "to_copy_again", len(lost))
	found := make([]uint32, len(foundSrc))
	for i, u := range foundSrc {
		found[i] = uint32(u)
	}
	return found, nil
}

// adopt matches todo messages against destination messages the ledger does not claim.
func (p *pass) adopt(ctx context.Context, s *session, fr *folderRun, todo []uint32) ([]uint32, error) {
	lf := fr.lf
	var claimed []int64
	var err error
	if lf.ID != 0 {
		if claimed, err = p.st.MailDestUIDs(ctx, lf.MailboxID, fr.m.Dest); err != nil {
			return nil, err
		}
	}
	all, err := s.dst.uids(ctx)
	if err != nil {
		return nil, err
	}
	isClaimed := map[uint32]bool{}
	for _, u := range claimed {
		isClaimed[uint32(u)] = true
	}
	free := minus(all, isClaimed)
	if len(free) == 0 {
		return nil, nil
	}
	dm, err := s.dst.metas(ctx, free)
	if err != nil {
		return nil, err
	}
	pool := map[string][]Meta{}
	for _, m := range dm {
		pool[m.Identity] = append(pool[m.Identity], m)
	}
	sm, err := s.src.Metas(ctx, todo)
	if err != nil {
		return nil, err
	}
	var rows []store.MailMessage
	var adopted []uint32
	for _, m := range sm {
		d := pool[m.Identity]
		if len(d) == 0 {
			continue
		}
		pool[m.Identity] = d[1:]
		flags := s.dst.filterFlags(m.Flags)
		if !p.dry {
			// Bring the adopted copy's flags up to the source's (adding only: the destination's
			// own changes stay).
			if add, _ := flagDiff(d[0].Flags, flags); len(add) > 0 {
				if err := s.dst.store(ctx, []uint32{d[0].UID}, imap.StoreFlagsAdd, add); err != nil {
					return nil, err
				}
			}
		}
		du, date := int64(d[0].UID), m.Date
		rows = append(rows, store.MailMessage{FolderID: lf.ID, SourceUID: int64(m.UID), DestUID: &du, State: store.MailAdopted,
			Identity: m.Identity, Size: m.Size, Flags: flags, InternalDate: &date})
		adopted = append(adopted, m.UID)
	}
	if !p.dry {
		if err := p.st.PutMailMessages(ctx, rows); err != nil {
			return nil, err
		}
		p.mu.Lock()
		p.destCount[fr.m.Dest] += int64(len(rows))
		p.mu.Unlock()
	}
	if len(adopted) > 0 {
		p.log.Info("adopted messages already on the destination", "folder", fr.m.Source.Name, "count", len(adopted))
	}
	return adopted, nil
}

// tooBig quarantines the todo messages above the size limit.
func (p *pass) tooBig(ctx context.Context, s *session, fr *folderRun, todo []uint32) ([]uint32, error) {
	metas, err := s.src.Metas(ctx, todo)
	if err != nil {
		return nil, err
	}
	var big []uint32
	for _, m := range metas {
		if m.Size <= p.limit {
			continue
		}
		big = append(big, m.UID)
		reason := fmt.Sprintf("message of %d bytes exceeds the destination's limit of %d bytes (APPENDLIMIT / max message size); not sent", m.Size, p.limit)
		if err := p.quarantine(ctx, fr, m, string(imapx.ClassTooBig), reason, false); err != nil {
			return nil, err
		}
	}
	return big, nil
}

// quarantine records a refused message.
func (p *pass) quarantine(ctx context.Context, fr *folderRun, m Meta, class, reason string, retry bool) error {
	fr.quarantined.Add(1)
	p.c.quarantined.Add(1)
	p.c.addError(class, 1)
	p.log.Warn("message quarantined", "folder", fr.m.Source.Name, "uid", m.UID, "class", class, "reason", reason)
	if p.dry {
		return nil
	}
	date := m.Date
	var datep *time.Time
	if !date.IsZero() {
		datep = &date
	}
	return p.st.QuarantineMailMessage(ctx, store.MailQuarantine{MailboxID: fr.lf.MailboxID, FolderID: fr.lf.ID,
		SourceUID: int64(m.UID), Identity: m.Identity, Description: m.Describe, Size: m.Size, InternalDate: datep,
		ErrorClass: class, Reason: reason, Retry: retry, RunID: p.runID()})
}

func (p *pass) runID() *int64 {
	if p.runIDv == 0 {
		return nil
	}
	id := p.runIDv
	return &id
}

// inflight is a batch on its way.
type inflight struct {
	b     *imapx.Batch
	rows  []store.MailMessage
	descs []string
	// refused is a message the server refused before it was sent (synchronizing literal).
	refused *Meta
}

// reject is a message a batch could not store.
type reject struct {
	meta  Meta
	err   error
	known bool // meta.Identity is set
}

// poisonStops is how many times a dropped connection may interrupt the copy of one message
// in a pass before that message is quarantined (to be tried again by the next pass), so that
// one message the source cannot send — Dovecot answers "* BYE FETCH failed" for a stored
// message shorter than its recorded size, every time — does not fail its whole mailbox.
const poisonStops = 3

// notePoison records which message a dropped connection interrupted: the one being copied,
// or else the next one the stream would have sent.
func (fr *folderRun) notePoison(uids []uint32, started, finished uint32, err error) {
	suspect := started
	if started == finished { // between messages: the stream stopped before the next one
		i := 0
		if finished != 0 {
			if i = slices.Index(uids, finished) + 1; i == 0 {
				return
			}
		}
		if i >= len(uids) {
			return
		}
		suspect = uids[i]
	}
	fr.mu.Lock()
	defer fr.mu.Unlock()
	if fr.stops == nil {
		fr.stops, fr.stopErr = map[uint32]int{}, map[uint32]string{}
	}
	fr.stops[suspect]++
	fr.stopErr[suspect] = err.Error()
}

// quarantinePoison takes the messages that dropped the connection poisonStops times out of
// todo and quarantines them (retried by the next pass).
func (p *pass) quarantinePoison(ctx context.Context, s *session, fr *folderRun, todo []uint32) (rest, poisoned []uint32, err error) {
	fr.mu.Lock()
	reasons := map[uint32]string{}
	for _, u := range todo {
		if n := fr.stops[u]; n >= poisonStops {
			poisoned = append(poisoned, u)
			reasons[u] = fmt.Sprintf("the connection dropped %d times while this message was being copied (last: %s); quarantined so the rest of the folder goes on, tried again by the next pass", n, fr.stopErr[u])
		} else {
			rest = append(rest, u)
		}
	}
	fr.mu.Unlock()
	if len(poisoned) == 0 {
		return todo, nil, nil
	}
	// Its headers identify it for verification when the source can send them; else its key.
	metas := map[uint32]Meta{}
	if ms, merr := s.src.Metas(ctx, poisoned); merr == nil {
		for _, m := range ms {
			metas[m.UID] = m
		}
	} else {
		err = merr // the connection is likely gone: the caller redials
	}
	for _, u := range poisoned {
		m, ok := metas[u]
		if !ok {
			m = Meta{UID: u, Identity: fmt.Sprintf("unreadable:%s/%d", fr.m.Source.Name, u), Describe: fmt.Sprintf("UID %d of %s", u, fr.m.Source.Name)}
		}
		if qerr := p.quarantine(ctx, fr, m, "unreadable", reasons[u], true); qerr != nil {
			return rest, nil, qerr
		}
	}
	return rest, poisoned, err
}

// copyAll copies todo, isolating refused messages: a refused multi-message batch is retried
// one message at a time so that only the culprit is quarantined.
func (p *pass) copyAll(ctx context.Context, s *session, fr *folderRun, todo []uint32) ([]uint32, error) {
	todo, poisoned, err := p.quarantinePoison(ctx, s, fr, todo)
	fr.addHandled(poisoned)
	if err != nil {
		return poisoned, err
	}
	done, retry, rejects, err := p.copyBatch(ctx, s, fr, todo, false)
	done = append(done, poisoned...)
	if err != nil {
		return done, err
	}
	for _, u := range retry {
		d, again, rj, err := p.copyBatch(ctx, s, fr, []uint32{u}, true)
		done = append(done, d...)
		rejects = append(rejects, rj...)
		if err != nil {
			return done, err
		}
		if len(again) > 0 {
			return done, fmt.Errorf("copy %s/%d: refused without an answer", fr.m.Source.Name, u)
		}
	}
	if len(rejects) == 0 {
		return done, nil
	}
	// Refusals of messages never sent carry no identity yet: read their headers now.
	var need []uint32
	for _, r := range rejects {
		if !r.known {
			need = append(need, r.meta.UID)
		}
	}
	metas := map[uint32]Meta{}
	if len(need) > 0 {
		ms, err := s.src.Metas(ctx, need)
		if err != nil {
			return done, err
		}
		for _, m := range ms {
			metas[m.UID] = m
		}
	}
	for _, r := range rejects {
		m := r.meta
		if !r.known {
			if mm, ok := metas[m.UID]; ok {
				m = mm
			}
		}
		class := imapx.ClassOf(r.err)
		var e *imapx.Error
		reason := r.err.Error()
		if errors.As(r.err, &e) {
			reason = strings.TrimSpace(strings.Join([]string{bracket(e.Code), e.Text}, " "))
		}
		if err := p.quarantine(ctx, fr, m, string(class), reason, class == imapx.ClassQuota); err != nil {
			return done, err
		}
		done = append(done, m.UID)
	}
	return done, nil
}

func bracket(code string) string {
	if code == "" {
		return ""
	}
	return "[" + code + "]"
}

// copyBatch streams uids from the source into MULTIAPPEND batches. It returns the UIDs now
// on the destination, those to retry one by one (their batch was refused) and, in single
// mode, the refused messages.
func (p *pass) copyBatch(ctx context.Context, s *session, fr *folderRun, uids []uint32, single bool) (done, retry []uint32, rejects []reject, err error) {
	ap, err := s.dst.appender(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	lf := fr.lf
	var mu sync.Mutex // guards done, retry, rejects between the writer and the committer
	q := make(chan *inflight, 2)
	var commitErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for fl := range q {
			if commitErr != nil {
				continue
			}
			r := fl.b.Wait(ctx)
			if err := p.settle(ctx, fr, fl, r, single, &mu, &done, &retry, &rejects); err != nil {
				commitErr = err
				ap.Close() // unblocks the writer
			}
		}
	}()

	var cur *inflight
	var sn identity.Sniffer
	end := func() error {
		if cur == nil {
			return nil
		}
		fl := cur
		cur = nil
		if fl.b.Len() == 0 {
			return fl.b.End()
		}
		// The intent is durable before the command can commit: a lost answer is checked, never
		// blindly re-sent.
		if err := p.st.PutMailMessages(ctx, fl.rows); err != nil {
			return err
		}
		if err := fl.b.End(); err != nil {
			return err
		}
		q <- fl
		return nil
	}
	nBatch, nBytes := p.e.batchMessages(), p.e.batchBytes()
	if single || !ap.MultiAppend() {
		nBatch = 1
	}
	var started, finished uint32 // the last message handed over, the last one fully read
	handle := func(m Meta, body io.Reader) error {
		fr.lastUID.Store(m.UID)
		if p.limit > 0 && m.Size > p.limit {
			// Grew past the limit since it was measured: refuse locally.
			sn.Reset()
			if _, err := io.Copy(&sn, body); err != nil {
				return imapx.Classify("fetch "+fr.m.Source.Name, err, imapx.ClassFetch)
			}
			h := sn.Header()
			m.Identity, m.Describe = identity.Of(h, m.Date), h.Describe()
			mu.Lock()
			rejects = append(rejects, reject{meta: m, known: true, err: &imapx.Error{Class: imapx.ClassTooBig,
				Op: "append", Text: fmt.Sprintf("message of %d bytes exceeds the limit of %d bytes; not sent", m.Size, p.limit)}})
			mu.Unlock()
			return nil
		}
		if cur == nil {
			b, err := ap.Begin(fr.m.Dest)
			if err != nil {
				return err
			}
			cur = &inflight{b: b}
		}
		flags := fr.filter.apply(m.Flags)
		sn.Reset()
		err := cur.b.Add(flags, m.Date, m.Size, io.TeeReader(body, &sn))
		if errors.Is(err, imapx.ErrBatchDone) {
			if _, err := io.Copy(io.Discard, body); err != nil {
				return imapx.Classify("fetch "+fr.m.Source.Name, err, imapx.ClassFetch)
			}
			mm := m
			cur.refused = &mm
			fl := cur
			cur = nil
			q <- fl
			return nil
		}
		if err != nil {
			return err
		}
		h := sn.Header()
		date := m.Date
		cur.rows = append(cur.rows, store.MailMessage{FolderID: lf.ID, SourceUID: int64(m.UID), State: store.MailPending,
			Identity: identity.Of(h, m.Date), Size: m.Size, Flags: flags, InternalDate: &date})
		cur.descs = append(cur.descs, h.Describe())
		if cur.b.Len() >= nBatch || cur.b.Bytes() >= nBytes {
			return end()
		}
		return nil
	}
	streamErr := s.src.Stream(ctx, uids, func(m Meta, body io.Reader) error {
		started = m.UID
		if err := handle(m, body); err != nil {
			return err
		}
		finished = m.UID
		return nil
	})
	if streamErr == nil || ap.Err() == nil {
		// Complete messages already written are worth committing even if the source failed.
		if err := end(); err != nil && streamErr == nil {
			streamErr = err
		}
	}
	close(q)
	wg.Wait()
	if streamErr == nil {
		streamErr = commitErr
	} else if commitErr != nil && imapx.ClassOf(streamErr) == imapx.ClassConnect {
		streamErr = commitErr // the committer's reason is the real one
	} else if imapx.ClassOf(streamErr) == imapx.ClassConnect {
		fr.notePoison(uids, started, finished, streamErr)
	}
	return done, retry, rejects, streamErr
}

// settle applies a batch's answer to the ledger.
func (p *pass) settle(ctx context.Context, fr *folderRun, fl *inflight, r imapx.BatchResult, single bool,
	mu *sync.Mutex, done, retry *[]uint32, rejects *[]reject) error {
	lf := fr.lf
	src := make([]int64, len(fl.rows))
	for i, row := range fl.rows {
		src[i] = row.SourceUID
	}
	if r.Err == nil {
		dst := make([]int64, len(fl.rows))
		if len(r.UIDs) == len(fl.rows) {
			for i, u := range r.UIDs {
				dst[i] = int64(u)
			}
		}
		if err := p.st.ConfirmMailMessages(ctx, lf.ID, store.MailCopied, src, dst); err != nil {
			return err
		}
		if len(p.retryQ[lf.ID]) > 0 { // only quarantined messages tried again can be resolved
			if err := p.st.ResolveMailQuarantine(ctx, lf.ID, src); err != nil {
				return err
			}
		}
		var bytes int64
		for _, row := range fl.rows {
			bytes += row.Size
		}
		fr.transferred.Add(int64(len(fl.rows)))
		p.c.transferred.Add(int64(len(fl.rows)))
		p.c.bytes.Add(bytes)
		p.mu.Lock()
		p.destCount[fr.m.Dest] += int64(len(fl.rows))
		p.mu.Unlock()
		mu.Lock()
		for _, u := range src {
			*done = append(*done, uint32(u))
		}
		if fl.refused != nil {
			*retry = append(*retry, fl.refused.UID)
		}
		mu.Unlock()
		return nil
	}
	class := imapx.ClassOf(r.Err)
	switch class {
	case imapx.ClassConnect, imapx.ClassThrottled, imapx.ClassNoFolder:
		// Rows stay pending: the next attempt reconciles them against the destination.
		return r.Err
	}
	if err := p.st.DeleteMailMessages(ctx, lf.ID, src); err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	if single {
		for i, row := range fl.rows {
			*rejects = append(*rejects, reject{known: true, err: r.Err, meta: Meta{UID: uint32(row.SourceUID), Size: row.Size,
				Flags: row.Flags, Date: *row.InternalDate, Identity: row.Identity, Describe: fl.descs[i]}})
		}
		if fl.refused != nil {
			*rejects = append(*rejects, reject{meta: *fl.refused, err: r.Err})
		}
		return nil
	}
	for _, u := range src {
		*retry = append(*retry, uint32(u))
	}
	if fl.refused != nil {
		*retry = append(*retry, fl.refused.UID)
	}
	return nil
}

// syncFlags carries flag changes of already-synced messages to the destination, as
// differences against what the ledger last applied, so changes made on the destination survive.
func (p *pass) syncFlags(ctx context.Context, s *session, fr *folderRun, mark uint32, since uint64) error {
	changes, err := s.src.FlagChanges(ctx, mark, since)
	if err != nil || len(changes) == 0 {
		return err
	}
	uids := make([]int64, len(changes))
	for i, c := range changes {
		uids[i] = int64(c.UID)
	}
	rows, err := p.st.MailMessages(ctx, fr.lf.ID, 0, uids)
	if err != nil {
		return err
	}
	byUID := map[int64]store.MailMessage{}
	for _, r := range rows {
		byUID[r.SourceUID] = r
	}
	type op struct{ add, del []string }
	groups := map[string]*struct {
		op   op
		uids []uint32
	}{}
	var order []string
	var updUIDs []int64
	var updFlags [][]string
	for _, c := range changes {
		r, ok := byUID[int64(c.UID)]
		if !ok || r.State == store.MailPending {
			continue
		}
		flags := s.dst.filterFlags(c.Flags)
		add, del := flagDiff(r.Flags, flags)
		if len(add) == 0 && len(del) == 0 {
			continue
		}
		updUIDs, updFlags = append(updUIDs, r.SourceUID), append(updFlags, flags)
		if r.DestUID == nil {
			p.c.addError("flags_no_dest_uid", 1)
			continue
		}
		key := strings.Join(add, " ") + "|" + strings.Join(del, " ")
		g := groups[key]
		if g == nil {
			g = &struct {
				op   op
				uids []uint32
			}{op: op{add, del}}
			groups[key] = g
			order = append(order, key)
		}
		g.uids = append(g.uids, uint32(*r.DestUID))
	}
	if p.dry {
		fr.flags += int64(len(updUIDs))
		p.c.flags.Add(int64(len(updUIDs)))
		return nil
	}
	for _, k := range order {
		g := groups[k]
		if err := s.dst.store(ctx, g.uids, imap.StoreFlagsAdd, g.op.add); err != nil {
			return err
		}
		if err := s.dst.store(ctx, g.uids, imap.StoreFlagsDel, g.op.del); err != nil {
			return err
		}
	}
	if err := p.st.SetMailMessageFlags(ctx, fr.lf.ID, updUIDs, updFlags); err != nil {
		return err
	}
	fr.flags += int64(len(updUIDs))
	p.c.flags.Add(int64(len(updUIDs)))
	return nil
}

// mirrorGone deletes on the destination the copies of messages the source no longer has.
func (p *pass) mirrorGone(ctx context.Context, s *session, fr *folderRun) error {
	if fr.lf.ID == 0 {
		return nil
	}
	all, err := s.src.Keys(ctx, 0, Window{})
	if err != nil {
		return err
	}
	present := map[uint32]bool{}
	for _, u := range all {
		present[u] = true
	}
	rows, err := p.st.MailMessages(ctx, fr.lf.ID, 0, nil)
	if err != nil {
		return err
	}
	var gone []int64
	var destUIDs []uint32
	for _, r := range rows {
		if r.State != store.MailPending && !present[uint32(r.SourceUID)] {
			gone = append(gone, r.SourceUID)
			if r.DestUID != nil {
				destUIDs = append(destUIDs, uint32(*r.DestUID))
			}
		}
	}
	if len(gone) == 0 {
		return nil
	}
	fr.deleted += int64(len(destUIDs))
	p.c.deleted.Add(int64(len(destUIDs)))
	if p.dry {
		return nil
	}
	if _, err := s.dst.expunge(ctx, destUIDs); err != nil {
		return err
	}
	p.mu.Lock()
	p.destCount[fr.m.Dest] -= int64(len(gone))
	p.mu.Unlock()
	return p.st.DeleteMailMessages(ctx, fr.lf.ID, gone)
}

// mirrorExtras deletes destination messages no source message of the group maps to.
func (p *pass) mirrorExtras(ctx context.Context, s *session, g *group) error {
	var ids []int64
	for _, m := range g.mappings {
		if lf := p.runs[m.Source.Name].lf; lf.ID != 0 {
			ids = append(ids, lf.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	ds, err := s.dst.selectFolder(ctx, g.dest)
	if err != nil {
		return err
	}
	if ds.Messages == 0 {
		return nil
	}
	claimed, err := p.st.MailDestUIDs(ctx, p.spec.MailboxID, g.dest)
	if err != nil {
		return err
	}
	counts, err := p.st.MailFolderCounts(ctx, p.spec.MailboxID)
	if err != nil {
		return err
	}
	var rows int64
	for _, id := range ids {
		rows += counts[id].Messages + counts[id].Pending
	}
	if int64(len(claimed)) != rows {
		// Without destination UIDs for every copy we cannot tell extras from our own copies.
		p.log.Warn("mirror: destination UIDs unknown for some messages; not deleting extras", "folder", g.dest)
		p.c.addError("mirror_skipped", 1)
		return nil
	}
	isClaimed := map[uint32]bool{}
	for _, u := range claimed {
		isClaimed[uint32(u)] = true
	}
	all, err := s.dst.uids(ctx)
	if err != nil {
		return err
	}
	extras := minus(all, isClaimed)
	if len(extras) == 0 {
		return nil
	}
	fr := p.runs[g.mappings[0].Source.Name]
	fr.deleted += int64(len(extras))
	p.c.deleted.Add(int64(len(extras)))
	if p.dry {
		return nil
	}
	p.log.Info("mirror: deleting destination messages the source does not have", "folder", g.dest, "count", len(extras))
	_, err = s.dst.expunge(ctx, extras)
	return err
}

// stats assembles the closing block from the folder runs and the ledger.
func (p *pass) stats(ctx context.Context, d time.Duration) (PassStats, error) {
	counts := p.counts
	if p.worked.Load() || len(p.done) > 0 {
		var err error
		if counts, err = p.st.MailFolderCounts(ctx, p.spec.MailboxID); err != nil {
			return PassStats{}, err
		}
	}
	ps := PassStats{Mode: p.req.Mode, Duration: d, RunID: p.runIDv}
	names := make([]string, 0, len(p.runs))
	for n := range p.runs {
		names = append(names, n)
	}
	slices.Sort(names)
	c := p.c.snapshot()
	for _, n := range names {
		fr := p.runs[n]
		var fs FolderStats
		if prev, ok := p.done[n]; ok {
			fs = prev
			cnt := counts[fr.lf.ID]
			fs.DestMessages, fs.DestBytes, fs.Quarantined = cnt.Messages, cnt.Bytes, cnt.Quarantined
		} else {
			fs = p.folderStats(fr, counts)
		}
		ps.Folders = append(ps.Folders, fs)
		ps.Found += fs.SourceMessages
		ps.Skipped += fs.Skipped
		ps.Quarantined += fs.Quarantined
		if fr.err != nil || !fr.finished {
			ps.Pending += max(0, fs.SourceMessages-fs.DestMessages-fs.Quarantined)
		} else {
			ps.Pending += fr.unhandled
		}
	}
	ps.Transferred, ps.Deleted, ps.FlagsUpdated, ps.BytesTransferred = c.Transferred, c.Deleted, c.FlagsUpdated, c.BytesTransferred
	ps.ErrorsByClass = c.ErrorsByClass
	if secs := d.Seconds(); secs > 0 {
		ps.MsgsPerSec = float64(ps.Transferred) / secs
		ps.MBPerSec = float64(ps.BytesTransferred) / (1 << 20) / secs
	}
	return ps, nil
}

// folderStats renders one folder run; counts may be nil (progress reports).
func (p *pass) folderStats(fr *folderRun, counts map[int64]store.MailFolderCount) FolderStats {
	fs := FolderStats{Source: fr.m.Source.Name, Dest: fr.m.Dest, SpecialUse: fr.m.SpecialUse,
		SourceMessages: fr.srcMessages, SourceBytes: fr.srcBytes, Transferred: fr.transferred.Load(),
		Deleted: fr.deleted, FlagsUpdated: fr.flags}
	if counts != nil {
		cnt := counts[fr.lf.ID]
		fs.DestMessages, fs.DestBytes, fs.Quarantined = cnt.Messages, cnt.Bytes, cnt.Quarantined
	} else {
		fs.Quarantined = fr.quarantined.Load()
	}
	fs.Skipped = max(0, fs.SourceMessages-fr.transferred.Load()-fr.quarantined.Load()-fr.unhandled)
	return fs
}
