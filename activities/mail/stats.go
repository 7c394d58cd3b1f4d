package mail

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// progressLoop reports progress until stopped.
func (p *pass) progressLoop(ctx context.Context, onProgress func(emailapi.Progress)) func() {
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

func (p *pass) progress() emailapi.Progress {
	pr := emailapi.Progress{RunID: p.runIDv, Counters: p.c.snapshot(), Elapsed: time.Since(p.start)}
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
	slices.SortFunc(pr.Done, func(a, b emailapi.FolderStats) int { return strings.Compare(a.Source, b.Source) })
	return pr
}

// stats assembles the closing block from the folder runs and the ledger.
func (p *pass) stats(ctx context.Context, d time.Duration) (emailapi.PassStats, error) {
	counts := p.counts
	if p.worked.Load() || len(p.done) > 0 {
		var err error
		if counts, err = p.st.MailFolderCounts(ctx, p.spec.MailboxID); err != nil {
			return emailapi.PassStats{}, err
		}
	}
	ps := emailapi.PassStats{Mode: p.req.Mode, Duration: d, RunID: p.runIDv, NotPersonal: p.plan.outside,
		DestOnlyFolders: withoutRemoved(p.plan.destOnly, p.removedFolders), FoldersRemoved: p.removedFolders}
	names := make([]string, 0, len(p.runs))
	for n := range p.runs {
		names = append(names, n)
	}
	slices.Sort(names)
	c := p.c.snapshot()
	for _, n := range names {
		fr := p.runs[n]
		var fs emailapi.FolderStats
		if prev, ok := p.done[n]; ok {
			fs = prev
			cnt := counts[fr.lf.ID]
			fs.DestMessages, fs.DestBytes, fs.Quarantined = cnt.Messages, cnt.Bytes, cnt.Quarantined
		} else {
			fs = p.folderStats(fr, counts)
		}
		if fr.g != nil && fr.index == 0 {
			fs.DestExtra = fr.g.extra.Load() // once per destination folder
		}
		ps.DestExtra += fs.DestExtra
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
	ps.ErrorsByClass, ps.Recopied = c.ErrorsByClass, c.Recopied
	// Destination folders the pass does not sync hold mail the job did not place, beside the
	// job's copies of source folders since renamed or deleted (reported apart, DestOnlyFolders).
	synced := map[string]bool{}
	for _, fr := range p.runs {
		synced[fr.m.Dest] = true
	}
	for name, f := range p.destStatus {
		if !synced[name] && !f.NoSelect {
			ps.DestExtra += max(0, f.Messages-p.claimed(name))
		}
	}
	var dropped int64
	for _, c := range counts {
		dropped += c.Dropped
	}
	if !p.dry && dropped > 0 { // the counts say whether any message lost keywords: name them only then
		dk, err := p.st.MailDroppedKeywords(ctx, p.spec.MailboxID, maxDroppedKeywords)
		if err != nil {
			return ps, err
		}
		ps.KeywordsDropped, ps.DroppedKeywords = dk.Messages, dk.Keywords
	}
	if secs := d.Seconds(); secs > 0 {
		ps.MsgsPerSec = float64(ps.Transferred) / secs
		ps.MBPerSec = float64(ps.BytesTransferred) / (1 << 20) / secs
	}
	return ps, nil
}

// folderStats renders one folder run; counts may be nil (progress reports).
func (p *pass) folderStats(fr *folderRun, counts map[int64]store.MailFolderCount) emailapi.FolderStats {
	fs := emailapi.FolderStats{Source: fr.m.Source.Name, Dest: fr.m.Dest, SpecialUse: fr.m.SpecialUse,
		SourceMessages: fr.srcMessages, SourceBytes: fr.srcBytes, Transferred: fr.transferred.Load(),
		Deleted: fr.deleted, FlagsUpdated: fr.flags, Recopied: fr.recopied.Load()}
	if counts != nil {
		cnt := counts[fr.lf.ID]
		fs.DestMessages, fs.DestBytes, fs.Quarantined = cnt.Messages, cnt.Bytes, cnt.Quarantined
	}
	if counts == nil || p.dry { // a dry run records no quarantine: what it would refuse is its own count
		fs.Quarantined = fr.quarantined.Load()
	}
	fs.Skipped = max(0, fs.SourceMessages-fr.transferred.Load()-fr.quarantined.Load()-fr.unhandled)
	return fs
}
