package mail

import (
	"cmp"
	"context"
	"slices"
	"strings"

	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// removeStaleFolders (strict_mirror only) deletes the destination folders this job filled from
// source folders since renamed or deleted (see destOnlyFolders), when they hold nothing but the
// job's own copies (ledger state copied): each message's deletion is recorded first, then the
// folder goes, deepest first, with its ledger folder. A folder holding anything else (a user's
// message, mail the job adopted) is kept and stays reported.
func (p *pass) removeStaleFolders(ctx context.Context, groups []*group) error {
	var stale []emailapi.DestOnlyFolder
	for _, f := range p.plan.destOnly {
		if f.FromSource != "" {
			stale = append(stale, f)
		}
	}
	if len(stale) == 0 || slices.ContainsFunc(groups, func(g *group) bool { return !g.ok }) {
		return nil
	}
	// Children before their parents.
	slices.SortFunc(stale, func(a, b emailapi.DestOnlyFolder) int { return cmp.Compare(len(b.Name), len(a.Name)) })
	lfs, err := p.st.ListMailFolders(ctx, p.spec.MailboxID)
	if err != nil {
		return err
	}
	s, err := p.e.dial(ctx, p.spec, p.cr)
	if err != nil {
		return err
	}
	defer s.close()
	for _, f := range stale {
		i := slices.IndexFunc(lfs, func(lf store.MailFolder) bool { return lf.SourceName == f.FromSource && lf.DestName == f.Name })
		if i < 0 {
			continue
		}
		removed, err := p.removeStaleFolder(ctx, s, f.Name, lfs[i])
		if err != nil {
			return err
		}
		if removed {
			p.mu.Lock()
			p.removedFolders = append(p.removedFolders, f.Name)
			p.mu.Unlock()
		}
	}
	return nil
}

func (p *pass) removeStaleFolder(ctx context.Context, s *session, name string, lf store.MailFolder) (bool, error) {
	rows, err := p.st.MailMessages(ctx, lf.ID, 0, nil)
	if err != nil {
		return false, err
	}
	ours := map[uint32]bool{}
	for _, r := range rows {
		if r.State != store.MailCopied || r.DestUID == nil {
			return false, nil // adopted, or an unconfirmed copy: not only ours for sure
		}
		ours[uint32(*r.DestUID)] = true
	}
	ds, err := s.dst.selectFolder(ctx, name)
	if err != nil || ds.UIDValidity != uint32(lf.DestUIDValidity) {
		return false, err // gone already, or not the folder the ledger knew
	}
	uids, err := s.dst.uids(ctx)
	if err != nil {
		return false, err
	}
	if slices.ContainsFunc(uids, func(u uint32) bool { return !ours[u] }) {
		p.log.Info("strict mirror: keeping a folder of a source folder now gone: it holds mail the job did not place",
			"folder", name)
		return false, nil
	}
	if len(uids) > 0 {
		if err := p.recordDeletions(ctx, s, name, uids, store.DeletedSourceGone); err != nil {
			return false, err
		}
		if _, err := s.dst.expunge(ctx, uids); err != nil {
			return false, err
		}
		p.c.deleted.Add(int64(len(uids)))
	}
	// Leave the folder before deleting it.
	if _, err := s.dst.selectFolder(ctx, "INBOX"); err != nil {
		return false, err
	}
	if err := s.dst.c.Delete(name).Wait(); err != nil {
		// A child still there (kept): the folder stays, empty, and stays reported.
		p.log.Warn("strict mirror: cannot delete the folder of a source folder now gone", "folder", name, "err", err)
		return false, nil
	}
	p.log.Warn("strict mirror: deleted the destination folder of a source folder now gone", "folder", name,
		"source_folder", lf.SourceName, "messages", len(uids))
	return true, p.st.DeleteMailFolder(ctx, lf.ID)
}

// withoutRemoved drops the folders a pass deleted from its destination-only report.
func withoutRemoved(fs []emailapi.DestOnlyFolder, removed []string) []emailapi.DestOnlyFolder {
	return slices.DeleteFunc(slices.Clone(fs), func(f emailapi.DestOnlyFolder) bool {
		return slices.ContainsFunc(removed, func(r string) bool { return strings.EqualFold(r, f.Name) })
	})
}
