package mail

import (
	"context"

	"github.com/cutover/cutover/activities/store"
)

// syncFlags carries flag changes of already-synced messages to the destination, as
// differences against what the ledger last applied, so changes made on the destination survive.
func (p *pass) syncFlags(ctx context.Context, s *session, fr *folderRun, mark uint32, since uint64) error {
	changes, err := p.flagChanges(ctx, s, fr, mark, since) // look.go: fetched with the folder's look
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
	stores := newFlagStores()
	var updUIDs []int64
	var updFlags [][]string
	srcOf := map[uint32]int{}         // destination UID → index in updUIDs
	dropBySrc := map[int64][]string{} // source UID → keywords the destination refuses
	for _, c := range changes {
		r, ok := byUID[int64(c.UID)]
		if !ok || r.State == store.MailPending {
			continue
		}
		// Keywords the destination refused before are not asked for again; those its
		// PERMANENTFLAGS rule out are recorded as refused.
		filtered := s.dst.filterFlags(c.Flags)
		if kws := withoutFlags(droppedKeywords(c.Flags, filtered), r.DroppedFlags); len(kws) > 0 {
			dropBySrc[r.SourceUID] = kws
		}
		flags := withoutFlags(filtered, r.DroppedFlags)
		add, del := flagDiff(r.Flags, flags)
		if len(add) == 0 && len(del) == 0 {
			continue
		}
		updUIDs, updFlags = append(updUIDs, r.SourceUID), append(updFlags, flags)
		if r.DestUID == nil {
			p.c.addError("flags_no_dest_uid", 1)
			continue
		}
		srcOf[uint32(*r.DestUID)] = len(updUIDs) - 1
		stores.add(uint32(*r.DestUID), add, del)
	}
	if p.dry {
		fr.flags += int64(len(updUIDs))
		p.c.flags.Add(int64(len(updUIDs)))
		return nil
	}
	// Until the ledger records the outcome, what the destination holds for these is unsure: a
	// pass failing in between leaves the next one to read it there.
	if err := p.st.MarkMailFlagsUnsure(ctx, fr.lf.ID, updUIDs); err != nil {
		return err
	}
	dropped, err := stores.apply(ctx, s.dst)
	if err != nil {
		return err
	}
	for du, kws := range dropped {
		i := srcOf[du]
		updFlags[i] = withoutFlags(updFlags[i], kws)
		dropBySrc[updUIDs[i]] = sortedFlags(append(dropBySrc[updUIDs[i]], kws...))
	}
	var dropSrc []int64
	var dropKW [][]string
	for u, kws := range dropBySrc {
		dropSrc, dropKW = append(dropSrc, u), append(dropKW, kws)
	}
	if err := p.recordDropped(ctx, fr, dropSrc, dropKW); err != nil {
		return err
	}
	if err := p.st.SetMailMessageFlags(ctx, fr.lf.ID, updUIDs, updFlags); err != nil {
		return err
	}
	fr.flags += int64(len(updUIDs))
	p.c.flags.Add(int64(len(updUIDs)))
	return nil
}
