package mail

import (
	"context"
	"slices"

	"github.com/cutover/cutover/activities/mail/folders"
	"github.com/cutover/cutover/activities/mail/imapx"
	"github.com/cutover/cutover/activities/store"
)

// The destination as it is, not as the ledger believes: a user deletes copies, a server loses
// them, a restore brings back an older state. Before any folder is worked, a pass compares
// each destination folder's message count (from the plan's LIST-STATUS, no extra round trip)
// with the ledger's claims on it. Where they differ — or everywhere, when the request asks for
// RecheckDest — it compares UIDs (a SELECT and a UID SEARCH per folder, every folder's sent
// together: one round trip), and identities only for claims without a destination UID. Claims whose message is gone are
// forgotten, the folder's mark is lowered below them (durably: a pass that fails afterwards
// leaves the next one to copy them), and this pass copies them again.

// needsDestCheck reports whether the group's destination folder must be compared by UID.
func (p *pass) needsDestCheck(g *group) bool {
	if p.dry {
		return false
	}
	ds, ok := p.destStatus[g.dest]
	if !ok {
		return false // created by this pass; a recreated folder is re-identified by prepareFolder
	}
	for _, m := range g.mappings {
		lf := p.runs[m.Source.Name].lf
		if lf.DestUIDValidity != 0 && uint32(lf.DestUIDValidity) != ds.UIDValidity {
			return false // every claim is void: prepareFolder re-identifies the folder
		}
	}
	claimed := p.claimed(g.dest)
	if claimed == 0 {
		return false
	}
	return p.req.RecheckDest || ds.Messages != claimed
}

// checkDest compares the selected destination folder's UIDs with the ledger's claims and
// forgets the claims whose message is gone; it sets the group's count of unclaimed messages.
func (p *pass) checkDest(ctx context.Context, s *session, g *group) error {
	if _, err := s.dst.selectFolder(ctx, g.dest); err != nil {
		return err
	}
	uids, err := s.dst.uids(ctx)
	if err != nil {
		return err
	}
	return p.compareDest(ctx, s, g, uids, true)
}

// compareDest is checkDest once the folder's UIDs are known; selected says whether the folder
// is still the one selected on s (else it is selected again where identities must be read).
func (p *pass) compareDest(ctx context.Context, s *session, g *group, uids []uint32, selected bool) error {
	claims, err := p.st.MailClaims(ctx, p.spec.MailboxID, g.dest)
	if err != nil {
		return err
	}
	present := make(map[uint32]bool, len(uids))
	for _, u := range uids {
		present[u] = true
	}
	held := map[uint32]bool{}
	var lost, noUID []store.MailClaim
	for _, c := range claims {
		switch {
		case c.DestUID == nil:
			noUID = append(noUID, c)
		case present[uint32(*c.DestUID)]:
			held[uint32(*c.DestUID)] = true
		default:
			lost = append(lost, c)
		}
	}
	if len(noUID) > 0 {
		// Copies appended without UIDPLUS: look for them by identity among the messages no
		// claim names.
		if !selected {
			if _, err := s.dst.selectFolder(ctx, g.dest); err != nil {
				return err
			}
		}
		metas, err := s.dst.metas(ctx, minus(uids, held))
		if err != nil {
			return err
		}
		pool := map[string]int{}
		for _, m := range metas {
			pool[m.Identity]++
		}
		for _, c := range noUID {
			if pool[c.Identity] > 0 {
				pool[c.Identity]--
				continue
			}
			lost = append(lost, c)
		}
	}
	g.extra.Store(max(0, int64(len(uids))-int64(len(claims)-len(lost))))
	if len(lost) == 0 {
		return nil
	}
	p.log.Warn("copies gone from the destination: copying them again", "folder", g.dest, "count", len(lost))
	p.c.addError("dest_missing", int64(len(lost)))
	byFolder := map[int64][]int64{}
	for _, c := range lost {
		byFolder[c.FolderID] = append(byFolder[c.FolderID], c.SourceUID)
	}
	for _, m := range g.mappings {
		fr := p.runs[m.Source.Name]
		srcUIDs := byFolder[fr.lf.ID]
		if len(srcUIDs) == 0 {
			continue
		}
		if err := p.forget(ctx, fr, srcUIDs); err != nil {
			return err
		}
	}
	// Claims of source folders the pass no longer maps here are forgotten too: nothing of
	// theirs is on the destination.
	for id, srcUIDs := range byFolder {
		if !slices.ContainsFunc(g.mappings, func(m folders.Mapping) bool { return p.runs[m.Source.Name].lf.ID == id }) {
			if err := p.st.DeleteMailMessages(ctx, id, srcUIDs); err != nil {
				return err
			}
		}
	}
	p.mu.Lock()
	p.destCount[g.dest] -= int64(len(lost))
	p.mu.Unlock()
	return nil
}

// forget drops a folder's claims on copies the destination lost, lowering its mark below them
// first so that they are copied again even if this pass ends before it gets to them.
func (p *pass) forget(ctx context.Context, fr *folderRun, srcUIDs []int64) error {
	lf := fr.lf
	low := slices.Min(srcUIDs) - 1
	if low < lf.HighestUID {
		marks := store.MailFolderMarks{HighestUID: low, HighestModSeq: lf.HighestModSeq, DestUIDValidity: lf.DestUIDValidity,
			WindowKey: lf.WindowKey, SourceMessages: lf.SourceMessages} // SourceUIDNext 0: never skipped
		if err := p.st.SetMailFolderMarks(ctx, lf.ID, marks); err != nil {
			return err
		}
		lf.HighestUID, lf.SourceUIDNext = low, 0
		fr.lf = lf
	}
	if err := p.st.DeleteMailMessages(ctx, lf.ID, srcUIDs); err != nil {
		return err
	}
	fr.recopy = make(map[uint32]bool, len(srcUIDs))
	for _, u := range srcUIDs {
		fr.recopy[uint32(u)] = true
	}
	p.mu.Lock()
	c := p.counts[lf.ID]
	c.Messages -= int64(len(srcUIDs))
	p.counts[lf.ID] = c
	p.mu.Unlock()
	return nil
}

// unclaimed adds n to the count of the folder's destination messages no ledger row claims.
func (fr *folderRun) unclaimed(n int64) {
	if fr.g != nil {
		fr.g.extra.Add(n)
	}
}

// checkDests sets every group's unclaimed count from the plan's counts and, where the
// destination differs from the ledger (or RecheckDest asks), compares UIDs: the folders'
// listings go out together on s (one round trip for all of them, dest.listUIDs), then each is
// compared with the ledger. It returns the session to go on with.
func (p *pass) checkDests(ctx context.Context, s *session, groups []*group) *session {
	var need []*group
	for _, g := range groups {
		if ds, ok := p.destStatus[g.dest]; ok {
			g.extra.Store(max(0, ds.Messages-p.claimed(g.dest)))
		}
		if p.needsDestCheck(g) {
			need = append(need, g)
		}
	}
	if len(need) == 0 {
		return s
	}
	var listed map[string]destListing
	if s != nil {
		names := make([]string, len(need))
		for i, g := range need {
			names[i] = g.dest
		}
		listed = s.dst.listUIDs(names)
	}
	for _, g := range need {
		l, ok := listed[g.dest]
		var err error
		s, err = p.withRetries(ctx, s, nil, func(s *session) error {
			if ok && l.err == nil {
				ok = false // a retry after a dropped connection lists again
				return p.compareDest(ctx, s, g, l.uids, false)
			}
			ok = false
			return p.checkDest(ctx, s, g)
		})
		if err != nil {
			p.c.addError(errorClass(err), 1)
			p.log.Error("destination check failed", "folder", g.dest, "err", err)
			if imapx.Retryable(err) {
				p.abort(err)
				return s
			}
		}
	}
	return s
}
