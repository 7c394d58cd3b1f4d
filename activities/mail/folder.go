package mail

import (
	"context"
	"fmt"
	"slices"

	"github.com/cutover/cutover/activities/mail/imapx"
	"github.com/cutover/cutover/activities/store"
)

// prepareFolder is a folder's first step; it returns the chunks to copy.
func (p *pass) prepareFolder(ctx context.Context, s *session, fr *folderRun) ([]chunk, error) {
	m := fr.m
	p.worked.Store(true)
	log := p.log.With("folder", m.Source.Name, "dest", m.Dest)
	s.srcFolder = ""
	lf := fr.lf
	keeper, _ := s.src.(uidKeeper)
	fr.destKnown = !p.dry || m.Exists
	fr.ahead, fr.copyless = nil, false
	var st FolderState
	look, dsel, err := p.look(ctx, s, fr) // look.go: one round trip for a changed folder the ledger knows
	if err != nil {
		return nil, err
	}
	if look != nil {
		st = look.st
		if fr.st.UIDValidity != 0 && st.UIDValidity != fr.st.UIDValidity {
			if dsel != nil {
				_, _ = s.dst.selectSent(m.Dest, dsel)
			}
			return nil, fmt.Errorf("source folder %q changed UIDVALIDITY during the pass (%d → %d): the next pass re-identifies it",
				m.Source.Name, fr.st.UIDValidity, st.UIDValidity)
		}
		if !p.dry && keeper != nil && lf.UIDValidity != int64(st.UIDValidity) {
			// Changed since LIST-STATUS: make sure the source keeps the UIDs this pass records.
			kept, err := keeper.KeepUIDs(ctx, m.Source.Name)
			if err != nil {
				s.srcFolder = ""
				if dsel != nil {
					_, _ = s.dst.selectSent(m.Dest, dsel)
				}
				return nil, err
			}
			st, s.srcState = kept, kept
		}
	} else if listed := p.plan.status[m.Source.Name].UIDValidity; !p.dry && keeper != nil && fr.st.UIDValidity == 0 &&
		listed != 0 && int64(listed) != lf.UIDValidity {
		// LIST-STATUS shows a UIDVALIDITY the ledger does not hold (the folder's first sync, or
		// a change): open it read-write at once (see imapSource.KeepUIDs), no read-only look first.
		kept, err := keeper.KeepUIDs(ctx, m.Source.Name)
		if err != nil {
			return nil, err
		}
		st, s.srcFolder, s.srcState = kept, m.Source.Name, kept
	} else {
		if err := p.openSrc(ctx, s, fr); err != nil {
			return nil, err
		}
		st = s.srcState
		if !p.dry && keeper != nil && lf.UIDValidity != int64(st.UIDValidity) {
			// The folder's first sync, or its UIDVALIDITY changed: make sure the source keeps
			// the UIDs this pass records.
			kept, err := keeper.KeepUIDs(ctx, m.Source.Name)
			if err != nil {
				s.srcFolder = ""
				return nil, err
			}
			st, s.srcState = kept, kept
		}
	}
	fr.st = st
	fr.srcMessages = int64(st.Messages)
	fr.handled = map[uint32]bool{}
	fr.retry = nil
	// A new UIDVALIDITY (or a new destination folder) invalidates every UID the ledger holds:
	// start over, re-identifying what the destination already has instead of copying it again.
	if !p.dry && (lf.UIDValidity != int64(st.UIDValidity) || lf.DestName != m.Dest) {
		if lf.UIDValidity != 0 || lf.DestName != m.Dest {
			log.Warn("source UIDVALIDITY or destination folder changed: re-identifying", "old_uidvalidity", lf.UIDValidity,
				"uidvalidity", st.UIDValidity, "old_dest", lf.DestName)
			p.c.addError("uidvalidity_reset", 1)
		}
		reset := p.resetFolder
		if lf.UIDValidity != 0 && lf.DestName == m.Dest {
			reset = p.resetFolderKeepingClaims // the copies are still there, still ours
		}
		if err := reset(ctx, fr, int64(st.UIDValidity)); err != nil {
			return nil, err
		}
		lf = fr.lf
	}

	var ds destState
	fr.filter = flagFilter{anyKW: true}
	if fr.destKnown {
		if dsel != nil {
			ds, err = s.dst.selectSent(m.Dest, dsel)
		} else {
			ds, err = s.dst.selectFolder(ctx, m.Dest)
		}
		if err != nil {
			if imapx.ClassOf(err) == imapx.ClassNoFolder && !p.dry {
				if err2 := s.dst.ensure(ctx, m.Dest, false, false, m.SpecialUse); err2 != nil {
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
	var keys []uint32
	if look != nil && look.mark == mark && uint32(lf.UIDValidity) == st.UIDValidity {
		keys, fr.ahead = look.keys, look
	} else if keys, err = s.src.Keys(ctx, mark, p.window); err != nil {
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
		fr.copyless = true
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
	fr.copyless = len(chunks) == 0
	return chunks, nil
}

// finalizeFolder copies again what lost its connection, settles what was not copied, carries
// flag changes and mirror deletes, and records the folder's marks.
func (p *pass) finalizeFolder(ctx context.Context, s *session, fr *folderRun) error {
	m, lf := fr.m, fr.lf
	if err := p.openSrc(ctx, s, fr); err != nil {
		return err
	}
	// The folder stays selected from its prepare when nothing was copied into it since (the
	// same session, no chunk): the view is current. After appends on other connections a new
	// SELECT makes the server show them.
	if fr.destKnown && !(fr.copyless && s.dst.selected == m.Dest) {
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
			done, err := p.copyAll(ctx, s, fr, retry, false, nil)
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
		if !p.dry {
			// A failed attempt may have left flags the ledger does not know of: compare them all.
			unsure, err := p.settleUnsureFlags(ctx, s, fr)
			if err != nil {
				return err
			}
			if unsure {
				since = 0
			}
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
	if err := p.learnDestIdentities(ctx, s, fr); err != nil {
		return err
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
