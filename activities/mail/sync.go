package mail

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cutover/cutover/activities/mail/folders"
	"github.com/cutover/cutover/activities/mail/imapx"
	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// pass is one running Sync.
type pass struct {
	e      *Engine
	req    emailapi.PassRequest
	spec   emailapi.MailboxSpec
	dry    bool
	mirror bool // the mode deletes: mirror or strict_mirror
	strict bool // strict_mirror: also what the source lacks, whoever put it there
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
	done    map[string]emailapi.FolderStats // finished in an earlier attempt
	current atomic.Pointer[folderRun]
	// removedFolders: destination folders strict_mirror deleted (stale.go).
	removedFolders []string
	sched          *scheduler
	lanes          *lanes      // extra append connections for copy chunks
	worked         atomic.Bool // some folder was opened: the ledger counts changed
	fatal          error
	cancel         context.CancelFunc
	tl             *timeline // the pass's steps, logged at debug level
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
	// recopy: source keys whose copies the destination no longer has, forgotten by the ledger
	// so this pass copies them again (destcheck.go); set before the folder's first step.
	recopy   map[uint32]bool
	recopied atomic.Int64

	// Set by prepareFolder, read by chunks and finalizeFolder.
	st        FolderState // the source folder when prepared
	mark      uint32      // the ledger's mark the new keys were looked up above
	keys      []uint32    // source keys above mark, in the window
	todo      []uint32    // keys to copy
	destKnown bool        // the destination folder exists (always, except in dry runs)
	ahead     *folderLook // the folder's look, its flag changes not used yet (look.go)
	copyless  bool        // prepared with nothing to copy: its destination folder is still selected
	filter    flagFilter  // what the destination folder can store (guarded by mu once chunks run)

	mu          sync.Mutex
	kwModes     map[uint32]kwMode // messages the destination refused with their keywords (keywords.go)
	handled     map[uint32]bool   // todo keys now on the destination or quarantined
	retry       []uint32          // keys of chunks that lost their connection: copied again at finalize
	outstanding int               // chunks not finished
	chunked     int               // chunks the folder was cut into (the scheduler may split them further)
	stops       map[uint32]int    // source key → copies of it a dropped connection interrupted
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
func (e *Engine) Sync(ctx context.Context, req emailapi.PassRequest, opts SyncOptions) (emailapi.PassStats, error) {
	resume, onProgress := opts.Resume, opts.OnProgress
	defer opts.Dialed.Abandon() // unless taken below
	start := time.Now()
	spec := req.Spec
	if req.Mode == "" {
		req.Mode = model.ModeCopy
	}
	switch req.Mode {
	case model.ModeCopy, model.ModeMirror, model.ModeStrictMirror, model.ModeDryRun:
	default:
		return emailapi.PassStats{}, &SpecError{fmt.Errorf("mode %q: want copy, mirror, strict_mirror or dry_run", req.Mode)}
	}
	switch req.DryRunOf {
	case "", model.ModeCopy, model.ModeMirror, model.ModeStrictMirror:
	default:
		return emailapi.PassStats{}, &SpecError{fmt.Errorf("dry run of %q: want copy, mirror or strict_mirror", req.DryRunOf)}
	}
	if req.Mode.Deletes() && req.Phase.AfterDNSCutover() {
		return emailapi.PassStats{}, ErrMirrorAfterCutover
	}
	filter, err := validateSpec(spec)
	if err != nil {
		return emailapi.PassStats{}, err
	}
	if opts.Dialed.pending() {
		start = opts.Dialed.start // the pass began with its dial
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	acts := req.Mode // the mode whose copies and deletions the pass works out
	if req.Mode == model.ModeDryRun {
		acts = req.DryRunOf
	}
	p := &pass{e: e, req: req, spec: spec, dry: req.Mode == model.ModeDryRun, mirror: acts.Deletes(),
		strict: acts == model.ModeStrictMirror,
		window: windowOf(spec), st: e.Store, runs: map[string]*folderRun{}, done: map[string]emailapi.FolderStats{},
		cancel: cancel, runIDv: opts.RunID, start: start, log: e.logger().With("mailbox_id", spec.MailboxID, "email", spec.Email, "mode", req.Mode)}
	p.tl = newTimeline(start)
	defer p.tl.log(p.log)
	if resume != nil {
		start = start.Add(-resume.Elapsed) // rates cover the whole pass, not this attempt
		p.start = start
		p.c.restore(resume.Counters)
		for _, f := range resume.Done {
			p.done[f.Source] = f
		}
	}

	// The ledger from PostgreSQL while both sides log in and list (or finish doing so).
	led := p.readLedger(ctx)
	cr, s, dialed, err := opts.Dialed.take()
	if !dialed {
		cr, err = e.resolve(ctx, spec)
	}
	if err != nil {
		led.wait()
		return emailapi.PassStats{}, err
	}
	p.cr = cr
	p.tl.mark("resolved")
	if s == nil {
		if s, err = e.dialPlan(ctx, spec, cr); err != nil {
			led.wait()
			return emailapi.PassStats{}, err
		}
	}
	s.timeline(p.tl)
	if p.plan, err = e.plan(ctx, s, spec, filter); err != nil {
		led.wait()
		s.close()
		return emailapi.PassStats{}, err
	}
	p.tl.at("src_listed", p.plan.srcListed)
	p.tl.at("dst_listed", p.plan.dstListed)
	p.tl.mark("planned")
	if err := p.prepare(ctx, s, led); err != nil {
		s.close()
		return emailapi.PassStats{}, err
	}
	p.tl.mark("prepared")

	stopProgress := p.progressLoop(ctx, onProgress)
	groups := groupByDest(p.plan)
	par := req.Parallelism
	if par <= 0 {
		par = DefaultParallelism
	}
	if err := p.runWorkers(ctx, s, groups, par); err != nil {
		stopProgress()
		return emailapi.PassStats{}, err
	}
	stopProgress()
	p.tl.mark("worked")
	if p.strict && !p.dry && p.fatal == nil && ctx.Err() == nil {
		if err := p.removeStaleFolders(ctx, groups); err != nil {
			p.c.addError(errorClass(err), 1)
			p.log.Error("strict mirror: removing folders of source folders now gone failed", "err", err)
			if imapx.Retryable(err) {
				p.abort(err)
			}
		}
	}

	stats, err := p.stats(context.WithoutCancel(ctx), time.Since(start))
	p.tl.mark("counted")
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

// ledgerRead is the mailbox's ledger as a pass starts: its folders, their counts and the
// unresolved quarantine rows, read by readLedger.
type ledgerRead struct {
	done    chan struct{}
	folders []store.MailFolder
	counts  map[int64]store.MailFolderCount
	quar    []store.MailQuarantine
	err     error
}

// readLedger reads the mailbox's ledger in the background: it depends on nothing the servers
// say (the activity's pass lock is already held), so PostgreSQL answers while both sides
// connect, log in and list rather than after. wait returns once it is read.
func (p *pass) readLedger(ctx context.Context) *ledgerRead {
	l := &ledgerRead{done: make(chan struct{})}
	go func() {
		defer close(l.done)
		defer p.tl.mark("ledger_read")
		id := p.spec.MailboxID
		if l.folders, l.err = p.st.ListMailFolders(ctx, id); l.err != nil {
			return
		}
		if l.counts, l.err = p.st.MailFolderCounts(ctx, id); l.err != nil {
			return
		}
		if quarantined(l.counts) > 0 { // the counts hold the unresolved quarantine rows: read them only if there are any
			l.quar, l.err = p.st.ListMailQuarantine(ctx, id, 0, false)
		}
	}()
	return l
}

func (l *ledgerRead) wait() error {
	<-l.done
	return l.err
}

// prepare takes in the ledger, creates missing destination folders and subscriptions.
func (p *pass) prepare(ctx context.Context, s *session, led *ledgerRead) error {
	id := p.spec.MailboxID
	if err := led.wait(); err != nil {
		return err
	}
	lfs := led.folders
	p.ledger = map[string]store.MailFolder{}
	for _, f := range lfs {
		p.ledger[f.SourceName] = f
	}
	p.counts = led.counts
	p.destCount = map[string]int64{}
	for _, f := range lfs {
		p.destCount[f.DestName] += p.counts[f.ID].Messages
	}
	p.retryQ, p.quarantined = map[int64][]store.MailQuarantine{}, map[int64]map[uint32]bool{}
	for _, q := range led.quar {
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
	p.destStatus = p.plan.destStatus
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
				if err := s.dst.ensure(ctx, m.Dest, exists[m.Dest], subscribe, m.SpecialUse); err != nil {
					if imapx.Retryable(err) {
						return err
					}
					if imapx.ClassOf(err) == imapx.ClassPermission && !exists[m.Dest] {
						// Retrying cannot help, and the folder's mail would have nowhere to go.
						return fmt.Errorf("destination: cannot create folder %q for source folder %q: %w", m.Dest, m.Source.Name, err)
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

// quarantined sums the unresolved quarantine rows of the ledger's counts.
func quarantined(counts map[int64]store.MailFolderCount) int64 {
	var n int64
	for _, c := range counts {
		n += c.Quarantined
	}
	return n
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
	if ds, ok := p.destStatus[fr.m.Dest]; ok && lf.DestUIDValidity != 0 && ds.UIDValidity != uint32(lf.DestUIDValidity) {
		return false // the destination folder was recreated or restored: re-identify
	}
	if len(fr.recopy) > 0 {
		return false // copies of ours gone from the destination (destcheck.go)
	}
	// Ledger rows whose source message is gone need a look (an earlier copy pass saw the
	// expunge but deletes nothing).
	if c := p.counts[lf.ID]; p.mirror && (!p.window.Empty() || c.Messages+c.Quarantined != st.Messages) {
		return false
	}
	// strict_mirror deletes what the destination has beyond the ledger.
	if ds, ok := p.destStatus[fr.m.Dest]; p.strict && (!ok || ds.Messages != p.claimed(fr.m.Dest)) {
		return false
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
	if lf.DestName == fr.m.Dest {
		fr.unclaimed(rows[lf.ID].Messages)
	}
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
