package mail

import (
	"context"

	"github.com/cutover/cutover/activities/store"
)

// mirrorGone deletes on the destination the copies this job placed (ledger state copied) of
// messages the source no longer has, recording each deletion first. A message the job adopted
// (already on the destination when the job found it) is never deleted here: its claim is
// released and it becomes the destination's own again (strict_mirror may then delete it as a
// message the source lacks).
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
	var gone, released []int64
	var destUIDs []uint32
	for _, r := range rows {
		if r.State == store.MailPending || present[uint32(r.SourceUID)] {
			continue
		}
		switch {
		case r.State == store.MailCopied && r.DestUID != nil:
			gone = append(gone, r.SourceUID)
			destUIDs = append(destUIDs, uint32(*r.DestUID))
		default: // adopted, or copied without a known destination UID: never deleted by us
			released = append(released, r.SourceUID)
		}
	}
	if len(gone)+len(released) == 0 {
		return nil
	}
	fr.deleted += int64(len(destUIDs))
	p.c.deleted.Add(int64(len(destUIDs)))
	if p.dry {
		return nil
	}
	if len(destUIDs) > 0 {
		if err := p.recordDeletions(ctx, s, fr.m.Dest, destUIDs, store.DeletedSourceGone); err != nil {
			return err
		}
		if _, err := s.dst.expunge(ctx, destUIDs); err != nil {
			return err
		}
	}
	if len(released) > 0 {
		p.log.Info("mirror: source message gone; the destination's own copy is kept and no longer claimed",
			"folder", fr.m.Dest, "count", len(released))
		fr.unclaimed(int64(len(released)))
	}
	p.mu.Lock()
	p.destCount[fr.m.Dest] -= int64(len(gone) + len(released))
	p.mu.Unlock()
	return p.st.DeleteMailMessages(ctx, fr.lf.ID, append(gone, released...))
}

// recordDeletions writes one mail_deletions row per destination UID (with its identity and
// description, read from the destination) before the caller expunges them.
func (p *pass) recordDeletions(ctx context.Context, s *session, folder string, uids []uint32, reason string) error {
	metas, err := s.dst.metas(ctx, uids)
	if err != nil {
		return err
	}
	byUID := make(map[uint32]Meta, len(metas))
	for _, m := range metas {
		byUID[m.UID] = m
	}
	rows := make([]store.MailDeletion, 0, len(uids))
	for _, u := range uids {
		m := byUID[u]
		rows = append(rows, store.MailDeletion{MailboxID: p.spec.MailboxID, RunID: p.runID(), DestFolder: folder,
			DestUID: int64(u), Identity: m.Identity, Description: m.Describe, Size: m.Size, Mode: string(p.req.Mode),
			Reason: reason})
	}
	return p.st.RecordMailDeletions(ctx, rows)
}

// mirrorExtras (strict_mirror only: imapsync --delete2) deletes destination messages no
// source message of the group maps to, whoever put them there, recording each deletion first.
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
	p.log.Warn("strict mirror: deleting destination messages the source does not have", "folder", g.dest, "count", len(extras))
	if err := p.recordDeletions(ctx, s, g.dest, extras, store.DeletedNotOnSource); err != nil {
		return err
	}
	if _, err = s.dst.expunge(ctx, extras); err != nil {
		return err
	}
	g.extra.Add(-int64(len(extras)))
	return nil
}
