package mail

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/cutover/cutover/activities/mail/folders"
	"github.com/cutover/cutover/activities/mail/imapx"
)

const maxSamples = 10

// Verify compares source and destination folder by folder under the folder map: counts,
// identity multisets, flags and INTERNALDATE. It reads both servers (headers only) and
// trusts neither the ledger nor the last pass, except to know which messages were
// quarantined and which were copied again after an interrupted APPEND. It changes one thing
// only: a late copy of our own abandoned APPEND (see removeLateCopies) is removed and
// reported, not left as a duplicate.
func (e *Engine) Verify(ctx context.Context, spec MailboxSpec, runID int64) (VerifyReport, error) {
	filter, err := validateSpec(spec)
	if err != nil {
		return VerifyReport{}, err
	}
	cr, err := e.resolve(ctx, spec)
	if err != nil {
		return VerifyReport{}, err
	}
	s, err := e.dial(ctx, spec, cr)
	if err != nil {
		return VerifyReport{}, err
	}
	defer s.close()
	pl, err := e.plan(ctx, s, spec, filter)
	if err != nil {
		return VerifyReport{}, err
	}
	quar, late, err := e.ledgerMarks(ctx, spec.MailboxID)
	if err != nil {
		return VerifyReport{}, err
	}
	w := windowOf(spec)
	rep := VerifyReport{RunID: runID}
	for _, g := range groupByDest(pl) {
		diffs, err := e.verifyGroup(ctx, s, g, w, spec.MailboxID, quar, late)
		if err != nil {
			return rep, err
		}
		rep.Folders = append(rep.Folders, diffs...)
	}
	slices.SortFunc(rep.Folders, func(a, b FolderDiff) int { return strings.Compare(a.Source, b.Source) })
	for _, d := range rep.Folders {
		rep.Missing += d.Missing
		rep.Extra += d.Extra
		rep.Quarantined += d.Quarantined
		rep.FlagDiffs += d.FlagDiffs
		rep.DateDiffs += d.DateDiffs
		rep.LateCopiesRemoved += d.LateCopiesRemoved
	}
	rep.OK = rep.Missing == 0
	return rep, nil
}

// ledgerMarks reads what the ledger knows per source folder name: identity → unresolved
// quarantine count, and the identities watched for late copies.
func (e *Engine) ledgerMarks(ctx context.Context, mailboxID int64) (quar map[string]map[string]int, late map[string]map[string]bool, err error) {
	if e.Store == nil {
		return nil, nil, nil
	}
	fs, err := e.Store.ListMailFolders(ctx, mailboxID)
	if err != nil {
		return nil, nil, err
	}
	names := map[int64]string{}
	for _, f := range fs {
		names[f.ID] = f.SourceName
	}
	qs, err := e.Store.ListMailQuarantine(ctx, mailboxID, 0, false)
	if err != nil {
		return nil, nil, err
	}
	quar = map[string]map[string]int{}
	for _, q := range qs {
		n := names[q.FolderID]
		if quar[n] == nil {
			quar[n] = map[string]int{}
		}
		quar[n][q.Identity]++
	}
	watches, err := e.Store.LateCopyWatches(ctx, mailboxID)
	if err != nil {
		return nil, nil, err
	}
	late = map[string]map[string]bool{}
	for id, ids := range watches {
		late[names[id]] = ids
	}
	return quar, late, nil
}

// removeLateCopies deletes the destination copies only our own abandoned APPENDs can have
// made: messages the ledger does not claim, of an identity watched for one of the group's
// source folders, beyond the number of copies the source holds. Anything else extra (a
// user's message, another tool's copy) is left and reported. Without UIDPLUS the ledger has
// no destination UIDs, so nothing is removed. It returns the destination messages left.
func (e *Engine) removeLateCopies(ctx context.Context, s *session, g *group, mailboxID int64, srcCount map[string]int,
	dest []Meta, watched map[string]bool) ([]Meta, int64, error) {
	if len(watched) == 0 || e.Store == nil || !s.dst.c.Has(imap.CapUIDPlus) {
		return dest, 0, nil
	}
	have := map[string]int{}
	for _, m := range dest {
		have[m.Identity]++
	}
	excess := map[string]int{}
	for id := range watched {
		if n := have[id] - srcCount[id]; n > 0 {
			excess[id] = n
		}
	}
	if len(excess) == 0 {
		return dest, 0, nil
	}
	claimed, err := e.Store.MailDestUIDs(ctx, mailboxID, g.dest)
	if err != nil {
		return dest, 0, err
	}
	isClaimed := map[uint32]bool{}
	for _, u := range claimed {
		isClaimed[uint32(u)] = true
	}
	// Newest first: a late copy lands after the copy the ledger claims.
	drop := map[uint32]bool{}
	var uids []uint32
	for i := len(dest) - 1; i >= 0; i-- {
		m := dest[i]
		if excess[m.Identity] > 0 && !isClaimed[m.UID] {
			excess[m.Identity]--
			drop[m.UID] = true
			uids = append(uids, m.UID)
		}
	}
	if len(uids) == 0 {
		return dest, 0, nil
	}
	if _, err := s.dst.expunge(ctx, uids); err != nil {
		return dest, 0, err
	}
	e.logger().Info("removed late copies of interrupted appends", "folder", g.dest, "count", len(uids))
	return slices.DeleteFunc(dest, func(m Meta) bool { return drop[m.UID] }), int64(len(uids)), nil
}

// verifyGroup verifies the source folders landing in one destination folder. Differences are
// reported on the first source folder of the group when several share a destination.
func (e *Engine) verifyGroup(ctx context.Context, s *session, g *group, w Window, mailboxID int64,
	quar map[string]map[string]int, late map[string]map[string]bool) ([]FolderDiff, error) {
	type side struct {
		metas  []Meta
		folder string
	}
	var srcAll []side
	diffs := make([]FolderDiff, len(g.mappings))
	for i, m := range g.mappings {
		diffs[i] = FolderDiff{Source: m.Source.Name, Dest: m.Dest, SpecialUse: m.SpecialUse}
		st, err := s.src.Open(ctx, m.Source.Name)
		if err != nil {
			return nil, err
		}
		var metas []Meta
		if st.Messages > 0 {
			keys, err := s.src.Keys(ctx, 0, w)
			if err != nil {
				return nil, err
			}
			if metas, err = s.src.Metas(ctx, keys); err != nil {
				return nil, err
			}
		}
		diffs[i].SourceMessages = int64(len(metas))
		srcAll = append(srcAll, side{metas: metas, folder: m.Source.Name})
	}
	var destMetas []Meta
	exists := slices.ContainsFunc(g.mappings, func(m folders.Mapping) bool { return m.Exists })
	if exists {
		ds, err := s.dst.selectFolder(ctx, g.dest)
		if err != nil && imapx.ClassOf(err) != imapx.ClassNoFolder {
			return nil, err
		}
		if err == nil && ds.Messages > 0 {
			uids, err := s.dst.uids(ctx)
			if err != nil {
				return nil, err
			}
			if destMetas, err = s.dst.metas(ctx, uids); err != nil {
				return nil, err
			}
			if !w.Empty() {
				destMetas = slices.DeleteFunc(destMetas, func(m Meta) bool { return !w.Contains(m.Date) })
			}
		}
	} else {
		s.dst.selected, s.dst.permFlags, s.dst.anyKW = "", nil, true
	}
	srcCount := map[string]int{}
	watched := map[string]bool{}
	for _, sd := range srcAll {
		for _, m := range sd.metas {
			srcCount[m.Identity]++
		}
		for id := range late[sd.folder] {
			watched[id] = true
		}
	}
	destMetas, removed, err := e.removeLateCopies(ctx, s, g, mailboxID, srcCount, destMetas, watched)
	if err != nil {
		return nil, err
	}
	diffs[0].LateCopiesRemoved = removed
	diffs[0].DestMessages = int64(len(destMetas))

	pool := map[string][]Meta{}
	for _, m := range destMetas {
		pool[m.Identity] = append(pool[m.Identity], m)
	}
	sample := func(d *FolderDiff, format string, args ...any) {
		if len(d.Samples) < maxSamples {
			d.Samples = append(d.Samples, fmt.Sprintf(format, args...))
		}
	}
	for i, sd := range srcAll {
		d := &diffs[i]
		q := map[string]int{}
		for id, n := range quar[sd.folder] {
			q[id] = n
			d.Quarantined += int64(n)
		}
		for _, m := range sd.metas {
			cands := pool[m.Identity]
			if len(cands) == 0 {
				if q[m.Identity] > 0 {
					q[m.Identity]--
					continue
				}
				d.Missing++
				sample(d, "missing: %s/%d %s", sd.folder, m.UID, m.Describe)
				continue
			}
			// Among copies with the same identity prefer the one with the same date, so two
			// exact duplicates pair up whatever their order.
			j := slices.IndexFunc(cands, func(c Meta) bool { return c.Date.Unix() == m.Date.Unix() })
			if j < 0 {
				j = 0
			}
			got := cands[j]
			pool[m.Identity] = slices.Delete(cands, j, j+1)
			if got.Date.Unix() != m.Date.Unix() {
				d.DateDiffs++
				sample(d, "INTERNALDATE differs: %s/%d %s: %s on the source, %s on the destination", sd.folder, m.UID,
					m.Describe, m.Date.UTC().Format("2006-01-02 15:04:05"), got.Date.UTC().Format("2006-01-02 15:04:05"))
			}
			want := sortedFlags(s.dst.filterFlags(m.Flags))
			have := sortedFlags(slices.DeleteFunc(slices.Clone(got.Flags), func(f string) bool { return strings.EqualFold(f, `\Recent`) }))
			if add, del := flagDiff(have, want); len(add)+len(del) > 0 {
				d.FlagDiffs++
				sample(d, "flags differ: %s/%d %s: source %v, destination %v", sd.folder, m.UID, m.Describe, want, have)
			}
		}
	}
	for _, rest := range pool {
		for _, m := range rest {
			diffs[0].Extra++
			sample(&diffs[0], "extra on the destination: %s/%d %s", g.dest, m.UID, m.Describe)
		}
	}
	return diffs, nil
}
