package mail

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/cutover/cutover/activities/mail/folders"
	"github.com/cutover/cutover/activities/mail/identity"
	"github.com/cutover/cutover/activities/mail/imapx"
	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

const maxSamples = 10

// Verify compares source and destination folder by folder under the folder map: counts,
// identity multisets, flags and INTERNALDATE. It reads both servers (headers only) and
// trusts neither the ledger nor the last pass, except to know which messages were
// quarantined and which were copied again after an interrupted APPEND. It changes one thing
// only: a late copy of our own abandoned APPEND (see removeLateCopies) is removed and
// reported, not left as a duplicate.
func (e *Engine) Verify(ctx context.Context, spec emailapi.MailboxSpec, runID int64) (emailapi.VerifyReport, error) {
	filter, err := validateSpec(spec)
	if err != nil {
		return emailapi.VerifyReport{}, err
	}
	cr, err := e.resolve(ctx, spec)
	if err != nil {
		return emailapi.VerifyReport{}, err
	}
	s, err := e.dial(ctx, spec, cr)
	if err != nil {
		return emailapi.VerifyReport{}, err
	}
	defer s.close()
	pl, err := e.plan(ctx, s, spec, filter)
	if err != nil {
		return emailapi.VerifyReport{}, err
	}
	quar, late, err := e.ledgerMarks(ctx, spec.MailboxID)
	if err != nil {
		return emailapi.VerifyReport{}, err
	}
	copies, err := e.ledgerCopies(ctx, spec.MailboxID)
	if err != nil {
		return emailapi.VerifyReport{}, err
	}
	w := windowOf(spec)
	rep := emailapi.VerifyReport{RunID: runID, DestOnlyFolders: pl.destOnly}
	for _, g := range groupByDest(pl) {
		diffs, err := e.verifyGroup(ctx, s, g, w, spec.MailboxID, quar, late, copies)
		if err != nil {
			return rep, err
		}
		rep.Folders = append(rep.Folders, diffs...)
	}
	slices.SortFunc(rep.Folders, func(a, b emailapi.FolderDiff) int { return strings.Compare(a.Source, b.Source) })
	for _, d := range rep.Folders {
		rep.Missing += d.Missing
		rep.Extra += d.Extra
		rep.Quarantined += d.Quarantined
		rep.FlagDiffs += d.FlagDiffs
		rep.DateDiffs += d.DateDiffs
		rep.LateCopiesRemoved += d.LateCopiesRemoved
		rep.Rewritten += d.Rewritten
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

// folderCopies is what the ledger says of one source folder's copies: source UID → destination
// UID, valid under the destination folder's UIDVALIDITY.
type folderCopies struct {
	destUIDValidity uint32
	uids            map[uint32]uint32
	dropped         map[uint32][]string // keywords the destination refused, by source UID
}

// ledgerCopies returns, per source folder name, the copies the ledger knows: where verification
// looks for a message the destination rewrote.
func (e *Engine) ledgerCopies(ctx context.Context, mailboxID int64) (map[string]folderCopies, error) {
	out := map[string]folderCopies{}
	if e.Store == nil {
		return out, nil
	}
	fs, err := e.Store.ListMailFolders(ctx, mailboxID)
	if err != nil {
		return nil, err
	}
	for _, f := range fs {
		rows, err := e.Store.MailMessages(ctx, f.ID, 0, nil)
		if err != nil {
			return nil, err
		}
		fc := folderCopies{destUIDValidity: uint32(f.DestUIDValidity), uids: map[uint32]uint32{}, dropped: map[uint32][]string{}}
		for _, r := range rows {
			if r.State != store.MailPending && r.DestUID != nil {
				fc.uids[uint32(r.SourceUID)] = uint32(*r.DestUID)
			}
			if len(r.DroppedFlags) > 0 {
				fc.dropped[uint32(r.SourceUID)] = r.DroppedFlags
			}
		}
		out[f.SourceName] = fc
	}
	return out, nil
}

// removeLateCopies deletes the destination copies only our own abandoned APPENDs can have
// made: messages the ledger does not claim, of an identity watched for one of the group's
// source folders, beyond the number of copies the source holds. Anything else extra (a
// user's message, another tool's copy) is left and reported. Without UIDPLUS the ledger has
// no destination UIDs, so nothing is removed. It returns the destination messages left.
func (e *Engine) removeLateCopies(ctx context.Context, s *session, g *group, mailboxID int64, srcCount map[string]int,
	dest []Meta, watched map[string]bool, loose map[string]string) ([]Meta, int64, error) {
	if len(watched) == 0 || e.Store == nil || !s.dst.c.Has(imap.CapUIDPlus) {
		return dest, 0, nil
	}
	// A copy the destination rewrote has an identity of its own: it is watched through the
	// rewrite-tolerant key of the source message (loose: key → watched identity).
	watchedAs := func(m Meta) string {
		if watched[m.Identity] {
			return m.Identity
		}
		if k := looseKey(m); k != "" {
			return loose[k]
		}
		return ""
	}
	have := map[string]int{}
	for _, m := range dest {
		if id := watchedAs(m); id != "" {
			have[id]++
		}
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
		if id := watchedAs(m); id != "" && excess[id] > 0 && !isClaimed[m.UID] {
			excess[id]--
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
	quar map[string]map[string]int, late map[string]map[string]bool,
	copies map[string]folderCopies) ([]emailapi.FolderDiff, error) {
	type side struct {
		metas  []Meta
		folder string
	}
	var srcAll []side
	diffs := make([]emailapi.FolderDiff, len(g.mappings))
	for i, m := range g.mappings {
		diffs[i] = emailapi.FolderDiff{Source: m.Source.Name, Dest: m.Dest, SpecialUse: m.SpecialUse}
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
	loose := map[string]string{}
	for _, sd := range srcAll {
		for _, m := range sd.metas {
			if k := looseKey(m); k != "" && watched[m.Identity] {
				loose[k] = m.Identity
			}
		}
	}
	destMetas, removed, err := e.removeLateCopies(ctx, s, g, mailboxID, srcCount, destMetas, watched, loose)
	if err != nil {
		return nil, err
	}
	diffs[0].LateCopiesRemoved = removed
	diffs[0].DestMessages = int64(len(destMetas))

	pool := newDestPool(destMetas)
	sample := func(d *emailapi.FolderDiff, format string, args ...any) {
		if len(d.Samples) < maxSamples {
			d.Samples = append(d.Samples, fmt.Sprintf(format, args...))
		}
	}
	compare := func(d *emailapi.FolderDiff, folder string, m, got Meta) {
		if got.Date.Unix() != m.Date.Unix() {
			d.DateDiffs++
			sample(d, "INTERNALDATE differs: %s/%d %s: %s on the source, %s on the destination", folder, m.UID,
				m.Describe, m.Date.UTC().Format("2006-01-02 15:04:05"), got.Date.UTC().Format("2006-01-02 15:04:05"))
		}
		// Keywords the destination refused (recorded and reported by the passes) are not expected.
		want := sortedFlags(withoutFlags(s.dst.filterFlags(m.Flags), copies[folder].dropped[m.UID]))
		have := sortedFlags(slices.DeleteFunc(slices.Clone(got.Flags), func(f string) bool { return strings.EqualFold(f, `\Recent`) }))
		if add, del := flagDiff(have, want); len(add)+len(del) > 0 {
			d.FlagDiffs++
			sample(d, "flags differ: %s/%d %s: source %v, destination %v", folder, m.UID, m.Describe, want, have)
		}
	}
	rewritten := func(d *emailapi.FolderDiff, folder string, m, got Meta) {
		if got.Identity != m.Identity {
			d.Rewritten++
			fields := identity.Rewritten(m.Header, got.Header)
			sample(d, "present, rewritten by the server (%s): %s/%d %s", strings.Join(fields, ", "), folder, m.UID, m.Describe)
		}
		compare(d, folder, m, got)
	}
	// Pairing tiers, each over every source folder of the group before the next: the same
	// identity; the copy the ledger names by UID (whatever the server rewrote); the same
	// rewrite-tolerant key (a copy the ledger cannot name).
	unpaired := make([][]Meta, len(srcAll))
	for i, sd := range srcAll {
		for _, m := range sd.metas {
			if got, ok := pool.byIdentity(m.Identity, m.Date); ok {
				compare(&diffs[i], sd.folder, m, got)
			} else {
				unpaired[i] = append(unpaired[i], m)
			}
		}
	}
	for i, sd := range srcAll {
		fc := copies[sd.folder]
		if !exists || s.dst.selected != g.dest || fc.destUIDValidity != s.dst.sel.UIDValidity {
			continue // the ledger's destination UIDs name nothing here
		}
		unpaired[i] = slices.DeleteFunc(unpaired[i], func(m Meta) bool {
			du, ok := fc.uids[m.UID]
			if !ok {
				return false
			}
			got, ok := pool.take(du)
			if ok {
				rewritten(&diffs[i], sd.folder, m, got)
			}
			return ok
		})
	}
	for i, sd := range srcAll {
		d := &diffs[i]
		q := map[string]int{}
		for id, n := range quar[sd.folder] {
			q[id] = n
			d.Quarantined += int64(n)
		}
		for _, m := range unpaired[i] {
			if got, ok := pool.rewritten(m); ok {
				rewritten(d, sd.folder, m, got)
				continue
			}
			if q[m.Identity] > 0 {
				q[m.Identity]--
				continue
			}
			d.Missing++
			sample(d, "missing: %s/%d %s", sd.folder, m.UID, m.Describe)
		}
	}
	for _, m := range pool.rest() {
		diffs[0].Extra++
		sample(&diffs[0], "extra on the destination: %s/%d %s", g.dest, m.UID, m.Describe)
	}
	return diffs, nil
}
