package mail

import (
	"context"
	"slices"
	"time"

	"github.com/cutover/cutover/activities/store"
)

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
	pool := newDestPool(metas)
	// The destination may have rewritten what it stored: the source's headers give the
	// rewrite-tolerant key of what exact identities do not find.
	srcMetas := map[uint32]Meta{}
	if len(metas) > 0 {
		uids := make([]uint32, len(pend))
		for i, r := range pend {
			uids[i] = uint32(r.SourceUID)
		}
		sm, err := s.src.Metas(ctx, uids)
		if err != nil {
			return nil, err
		}
		for _, m := range sm {
			srcMetas[m.UID] = m
		}
	}
	var foundSrc, foundDest, lost []int64
	var lostIDs []string
	for _, r := range pend {
		d, ok := pool.byIdentity(r.Identity, time.Time{})
		if !ok {
			if m, known := srcMetas[uint32(r.SourceUID)]; known {
				d, ok = pool.rewritten(m)
			}
		}
		if ok {
			foundSrc, foundDest = append(foundSrc, r.SourceUID), append(foundDest, int64(d.UID))
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
	fr.unclaimed(-int64(len(foundSrc)))
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
	pool := newDestPool(dm)
	// Copies this job made before the source's UIDVALIDITY changed are found by their claim
	// first, whatever the destination rewrote.
	claims := map[string][]store.MailPriorClaim{}
	if !p.dry && lf.ID != 0 {
		cs, err := p.st.MailPriorClaims(ctx, lf.ID, fr.m.Dest, lf.DestUIDValidity)
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			claims[c.Identity] = append(claims[c.Identity], c)
		}
	}
	sm, err := s.src.Metas(ctx, todo)
	if err != nil {
		return nil, err
	}
	var rows []store.MailMessage
	var adopted []uint32
	var used []int64
	stores := newFlagStores()
	for _, m := range sm {
		var d Meta
		var claim *store.MailPriorClaim
		ok := false
		for len(claims[m.Identity]) > 0 && !ok {
			c := claims[m.Identity][0]
			claims[m.Identity] = claims[m.Identity][1:]
			if d, ok = pool.take(uint32(c.DestUID)); ok {
				claim = &c
				used = append(used, c.DestUID)
			}
		}
		if !ok {
			d, ok = pool.byIdentity(m.Identity, m.Date)
		}
		if !ok {
			d, ok = pool.rewritten(m)
		}
		if !ok {
			continue
		}
		flags := s.dst.filterFlags(m.Flags)
		droppedKW := droppedKeywords(m.Flags, flags)
		state := store.MailAdopted
		if claim != nil {
			// Our own copy: replay the source's flags against those last applied to it,
			// removals included; what a user changed on the destination since stays. When a
			// failed attempt left them unsure, against what the destination holds.
			state = claim.State
			applied := claim.Flags
			if claim.FlagsUnsure {
				applied = withoutFlags(d.Flags, []string{`\Recent`})
			}
			add, del := flagDiff(applied, flags)
			stores.add(d.UID, add, del)
		} else {
			// Someone else's copy: bring its flags up to the source's, adding only.
			add, _ := flagDiff(d.Flags, flags)
			stores.add(d.UID, add, nil)
		}
		du, date, di := int64(d.UID), m.Date, d.Identity
		rows = append(rows, store.MailMessage{FolderID: lf.ID, SourceUID: int64(m.UID), DestUID: &du, State: state,
			Identity: m.Identity, Size: m.Size, Flags: flags, InternalDate: &date, DestIdentity: &di, DroppedFlags: droppedKW})
		adopted = append(adopted, m.UID)
	}
	if !p.dry {
		// The rows first, their flags unsure where a STORE follows: a pass failing before the
		// STOREs are recorded leaves the next one to read what the destination holds.
		touched := stores.uids()
		for i, r := range rows {
			rows[i].FlagsUnsure = touched[uint32(*r.DestUID)]
		}
		if err := p.st.PutMailMessages(ctx, rows); err != nil {
			return nil, err
		}
		p.mu.Lock()
		p.destCount[fr.m.Dest] += int64(len(rows))
		fr.unclaimed(-int64(len(rows)))
		p.mu.Unlock()
		if err := p.st.DeleteMailPriorClaims(ctx, lf.ID, used); err != nil {
			return nil, err
		}
		dropped, err := stores.apply(ctx, s.dst)
		if err != nil {
			return nil, err
		}
		var setSrc, dropSrc []int64
		var setFlags, dropKW [][]string
		for _, r := range rows {
			du := uint32(*r.DestUID)
			if !touched[du] {
				continue
			}
			f := r.Flags
			if kws := dropped[du]; len(kws) > 0 {
				f = withoutFlags(f, kws)
				dropSrc, dropKW = append(dropSrc, r.SourceUID), append(dropKW, kws)
			}
			setSrc, setFlags = append(setSrc, r.SourceUID), append(setFlags, f)
		}
		if n := int64(countRows(rows, func(r store.MailMessage) bool { return len(r.DroppedFlags) > 0 })); n > 0 {
			p.c.addError("keywords_dropped", n)
		}
		if err := p.recordDropped(ctx, fr, dropSrc, dropKW); err != nil {
			return nil, err
		}
		if err := p.st.SetMailMessageFlags(ctx, lf.ID, setSrc, setFlags); err != nil {
			return nil, err
		}
	}
	if len(adopted) > 0 {
		p.log.Info("adopted messages already on the destination", "folder", fr.m.Source.Name, "count", len(adopted))
	}
	return adopted, nil
}

// countRows counts the rows f holds for.
func countRows(rows []store.MailMessage, f func(store.MailMessage) bool) int {
	n := 0
	for _, r := range rows {
		if f(r) {
			n++
		}
	}
	return n
}
