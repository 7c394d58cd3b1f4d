package mail

import (
	"context"
	"slices"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/cutover/cutover/activities/mail/imapx"
)

// A changed folder the ledger knows (same UIDVALIDITY, same destination, no age window) is
// looked at in one round trip on the source: its EXAMINE, the UID SEARCH for the keys above
// the ledger's mark and the FETCH of the flags changed since the ledger's modification
// sequence go out together, and the destination folder's SELECT is sent before any of their
// answers is awaited. Opening, searching and reading flag changes one after the other cost
// three round trips on the source, and the destination folder was selected again to finish it.

// folderLook is what a pipelined look at a source folder found.
type folderLook struct {
	st   FolderState
	mark uint32   // the keys are those above it, the flag changes those up to it
	keys []uint32 // ascending
	// flagsSince is the modification sequence the flag changes are since; 0 when they were
	// not asked for (the folder's modification sequence had not moved, or none is kept).
	flagsSince uint64
	flags      []Meta
}

// folderLooker is a source that can open a folder and ask for its new keys and flag changes
// at once.
type folderLooker interface {
	Look(ctx context.Context, name string, mark uint32, modseq uint64) (folderLook, error)
}

// Look opens a folder read-only, pipelining the search for keys above mark and, when modseq
// is set and the server keeps modification sequences, the flags of keys up to mark changed
// since modseq. A failed EXAMINE leaves no folder selected (RFC 3501), so the commands behind
// it fail too and their answers are dropped.
func (s *imapSource) Look(ctx context.Context, name string, mark uint32, modseq uint64) (folderLook, error) {
	cond := s.c.Has(imap.CapCondStore)
	sel := s.c.Select(name, &imap.SelectOptions{ReadOnly: true, CondStore: cond})
	crit, opts := s.keySearch(mark, Window{})
	search := s.c.UIDSearch(crit, opts)
	var flags *imapclient.FetchCommand
	if mark > 0 && modseq > 0 && cond {
		flags = s.flagFetch(mark, modseq, true)
	}
	st, selErr := s.opened(name, sel)
	data, searchErr := search.Wait()
	var changed []Meta
	var flagsErr error
	if flags != nil {
		changed, flagsErr = s.flagsFound(flags, mark)
	}
	switch {
	case selErr != nil:
		return folderLook{}, selErr
	case searchErr != nil:
		return folderLook{}, imapx.Classify("search "+name, searchErr, imapx.ClassFetch)
	case flagsErr != nil:
		return folderLook{}, flagsErr
	}
	look := folderLook{st: st, mark: mark, keys: keysFound(data, mark)}
	if flags != nil && st.HighestModSeq > 0 {
		look.flagsSince, look.flags = modseq, changed
	}
	return look, nil
}

// look opens a changed folder the ledger knows with one pipelined look (see folderLook),
// sending the destination folder's SELECT first when there is one to open; it returns false
// where the folder needs the step-by-step path (a new or reset folder, an age window, a
// source that cannot look, the folder already open on this session).
func (p *pass) look(ctx context.Context, s *session, fr *folderRun) (*folderLook, *imapclient.SelectCommand, error) {
	lf, m := fr.lf, fr.m
	looker, ok := s.src.(folderLooker)
	listed := p.plan.status[m.Source.Name]
	if !ok || s.srcFolder == m.Source.Name || !p.window.Empty() || lf.WindowKey != p.window.Key() ||
		lf.UIDValidity == 0 || listed.UIDValidity != uint32(lf.UIDValidity) || lf.DestName != m.Dest {
		return nil, nil, nil
	}
	var dsel *imapclient.SelectCommand
	if fr.destKnown {
		dsel = s.dst.c.Select(m.Dest, nil)
	}
	modseq := uint64(lf.HighestModSeq)
	if listed.ModSeq != 0 && listed.ModSeq == modseq {
		modseq = 0 // LIST-STATUS says no flag changed: do not ask
	}
	look, err := looker.Look(ctx, m.Source.Name, uint32(lf.HighestUID), modseq)
	if err != nil {
		s.srcFolder = ""
		if dsel != nil {
			_, _ = s.dst.selectSent(m.Dest, dsel)
		}
		return nil, nil, err
	}
	s.srcFolder, s.srcState = m.Source.Name, look.st
	return &look, dsel, nil
}

// flagChanges are the flag changes of keys up to mark since a modification sequence: those the
// folder's look fetched when it asked for the same, else read now.
func (p *pass) flagChanges(ctx context.Context, s *session, fr *folderRun, mark uint32, since uint64) ([]Meta, error) {
	if la := fr.ahead; la != nil && since > 0 && la.flagsSince == since && la.mark == mark && la.st.UIDValidity == fr.st.UIDValidity {
		fr.ahead = nil // a retry of the folder's finish reads them again
		return la.flags, nil
	}
	return s.src.FlagChanges(ctx, mark, since)
}

// Look pipelines the wrapped IMAP source's look for folders outside Gmail's; a Gmail folder
// (All Mail's keys are filtered) is opened, searched and read for flag changes in turn.
func (g *gmailSource) Look(ctx context.Context, name string, mark uint32, modseq uint64) (folderLook, error) {
	if inner, ok := g.Source.(folderLooker); ok && gmailLeaf(name) == "" {
		look, err := inner.Look(ctx, name, mark, modseq)
		if err == nil {
			g.cur = name
		}
		return look, err
	}
	st, err := g.Open(ctx, name)
	if err != nil {
		return folderLook{}, err
	}
	look := folderLook{st: st, mark: mark}
	if look.keys, err = g.Keys(ctx, mark, Window{}); err != nil {
		return folderLook{}, err
	}
	if mark > 0 && modseq > 0 && st.HighestModSeq > 0 {
		look.flagsSince = modseq
		if look.flags, err = g.FlagChanges(ctx, mark, modseq); err != nil {
			return folderLook{}, err
		}
	}
	return look, nil
}

// keySearch is the UID SEARCH for the keys above a key in an age window.
func (s *imapSource) keySearch(above uint32, w Window) (*imap.SearchCriteria, *imap.SearchOptions) {
	crit := &imap.SearchCriteria{}
	var set imap.UIDSet
	set.AddRange(imap.UID(above+1), 0)
	crit.UID = []imap.UIDSet{set}
	// SEARCH SINCE/BEFORE compare dates in the server's zone: widen by a day, then filter exactly.
	if !w.Since.IsZero() {
		crit.Since = w.Since.AddDate(0, 0, -1)
	}
	if !w.Before.IsZero() {
		crit.Before = w.Before.AddDate(0, 0, 2)
	}
	var opts *imap.SearchOptions
	if s.c.Has(imap.CapESearch) || s.c.Has(imap.CapIMAP4rev2) {
		opts = &imap.SearchOptions{ReturnAll: true}
	}
	return crit, opts
}

// keysFound are the UIDs of a keySearch answer above the key, sorted.
func keysFound(data *imap.SearchData, above uint32) []uint32 {
	var keys []uint32
	if uids, ok := data.All.(imap.UIDSet); ok {
		nums, _ := uids.Nums()
		for _, u := range nums {
			// "n:*" includes the highest UID even when it is below n.
			if uint32(u) > above {
				keys = append(keys, uint32(u))
			}
		}
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}
