package mail

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/cutover/cutover/activities/mail/identity"
	"github.com/cutover/cutover/activities/mail/imapx"
	"github.com/cutover/cutover/activities/store"
)

// A destination may rewrite what it stores (Cyrus turns raw 8-bit header bytes into 'X'), so
// the copy's identity can differ from the source message's. The ledger's source UID →
// destination UID (APPENDUID) is the proof of a copy; the identity the destination gave it is
// read back once (learnDestIdentities) and kept beside the source's. Where no UID names the
// copy — an APPEND whose answer was lost, a source whose UIDVALIDITY changed, mail already on
// the destination — messages are paired by exact identity first, then by the rewrite-tolerant
// loose key (identity.Loose).

// destPool holds the destination messages not paired yet, indexed for the pairing tiers.
type destPool struct {
	byUID   map[uint32]Meta
	byID    map[string][]uint32 // identity → UIDs, ascending
	byLoose map[string][]uint32 // loose key → UIDs, ascending
}

func newDestPool(ms []Meta) *destPool {
	p := &destPool{byUID: make(map[uint32]Meta, len(ms)), byID: map[string][]uint32{}, byLoose: map[string][]uint32{}}
	sorted := slices.SortedFunc(slices.Values(ms), func(a, b Meta) int { return cmp.Compare(a.UID, b.UID) })
	for _, m := range sorted {
		p.byUID[m.UID] = m
		p.byID[m.Identity] = append(p.byID[m.Identity], m.UID)
		k := looseKey(m)
		p.byLoose[k] = append(p.byLoose[k], m.UID)
	}
	return p
}

// looseKey is a message's rewrite-tolerant key ("" without a parsed header: never matches).
func looseKey(m Meta) string {
	if m.Header == nil {
		return ""
	}
	return identity.Loose(m.Header, m.Date)
}

// take removes a destination message by UID.
func (p *destPool) take(uid uint32) (Meta, bool) {
	m, ok := p.byUID[uid]
	if ok {
		delete(p.byUID, uid)
	}
	return m, ok
}

// pick removes the first message listed under key (in index) that is still in the pool,
// preferring one with the INTERNALDATE date (to the second) so exact duplicates pair up
// whatever their order.
func (p *destPool) pick(index map[string][]uint32, key string, date time.Time) (Meta, bool) {
	if key == "" {
		return Meta{}, false
	}
	uids := slices.DeleteFunc(index[key], func(u uint32) bool { _, ok := p.byUID[u]; return !ok })
	index[key] = uids
	if len(uids) == 0 {
		return Meta{}, false
	}
	i := slices.IndexFunc(uids, func(u uint32) bool { return p.byUID[u].Date.Unix() == date.Unix() })
	if i < 0 || date.IsZero() {
		i = 0
	}
	return p.take(uids[i])
}

// byIdentity removes a message with the same exact identity.
func (p *destPool) byIdentity(id string, date time.Time) (Meta, bool) {
	return p.pick(p.byID, id, date)
}

// rewritten removes a message with the same loose key as src: the same message as the
// destination rewrote it.
func (p *destPool) rewritten(src Meta) (Meta, bool) {
	return p.pick(p.byLoose, looseKey(src), src.Date)
}

// rest returns the messages left, by UID.
func (p *destPool) rest() []Meta {
	out := make([]Meta, 0, len(p.byUID))
	for _, m := range p.byUID {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Meta) int { return cmp.Compare(a.UID, b.UID) })
	return out
}

// learnDestIdentities reads back the identity the destination gave the folder's copies whose
// destination identity the ledger does not know yet: copied in this pass where the read-back
// beside the copy (readBack) missed them, or in an attempt that ended before reading them.
func (p *pass) learnDestIdentities(ctx context.Context, s *session, fr *folderRun) error {
	rows, err := p.st.MailDestIdentitiesUnread(ctx, fr.lf.ID)
	if err != nil || len(rows) == 0 {
		return err
	}
	if s.dst.selected != fr.m.Dest {
		if _, err := s.dst.selectFolder(ctx, fr.m.Dest); err != nil {
			return err
		}
	}
	cs := make([]copied, 0, len(rows))
	for _, r := range rows {
		cs = append(cs, copied{src: r.SourceUID, dst: uint32(*r.DestUID), identity: r.Identity})
	}
	metas, err := s.dst.metas(ctx, copiedDestUIDs(cs))
	if err != nil {
		return err
	}
	return p.recordDestIdentities(ctx, fr, cs, metas)
}

// copied is one copy whose destination identity is to be read: source UID, destination UID
// (APPENDUID) and the source message's identity.
type copied struct {
	src      int64
	dst      uint32
	identity string
}

func copiedDestUIDs(cs []copied) []uint32 {
	uids := make([]uint32, len(cs))
	for i, c := range cs {
		uids[i] = c.dst
	}
	slices.Sort(uids)
	return uids
}

// recordDestIdentities keeps the identities the destination gave copies (metas, read back by
// destination UID) beside the source's. A copy missing from metas is left unread: gone from
// the destination, the destination check copies it again.
func (p *pass) recordDestIdentities(ctx context.Context, fr *folderRun, cs []copied, metas []Meta) error {
	byUID := make(map[uint32]Meta, len(metas))
	for _, m := range metas {
		byUID[m.UID] = m
	}
	var src []int64
	var ids []string
	rewritten := 0
	for _, c := range cs {
		m, ok := byUID[c.dst]
		if !ok {
			continue
		}
		src, ids = append(src, c.src), append(ids, m.Identity)
		if m.Identity != c.identity {
			rewritten++
		}
	}
	if rewritten > 0 {
		p.log.Info("the destination rewrote identifying headers of copies", "folder", fr.m.Source.Name,
			"dest", fr.m.Dest, "count", rewritten)
	}
	return p.st.SetMailDestIdentities(ctx, fr.lf.ID, src, ids)
}

// resetFolderKeepingClaims is resetFolder for a source folder whose UIDVALIDITY changed while
// its destination folder stayed: the copies become prior claims the next adoption finds first.
func (p *pass) resetFolderKeepingClaims(ctx context.Context, fr *folderRun, uidValidity int64) error {
	lf := fr.lf
	rows, err := p.st.MailFolderCounts(ctx, lf.MailboxID)
	if err != nil {
		return err
	}
	if err := p.st.ResetMailFolderKeepingClaims(ctx, lf.ID, uidValidity); err != nil {
		return err
	}
	p.mu.Lock()
	p.destCount[lf.DestName] -= rows[lf.ID].Messages
	fr.unclaimed(rows[lf.ID].Messages)
	p.counts[lf.ID] = store.MailFolderCount{FolderID: lf.ID}
	p.mu.Unlock()
	fr.lf = store.MailFolder{ID: lf.ID, MailboxID: lf.MailboxID, SourceName: lf.SourceName, DestName: lf.DestName,
		SpecialUse: lf.SpecialUse, UIDValidity: uidValidity, DestUIDValidity: lf.DestUIDValidity}
	return nil
}

// uidKeeper is a source that can make a folder's UIDs persistent before they are relied on.
type uidKeeper interface {
	KeepUIDs(ctx context.Context, name string) (FolderState, error)
}

// KeepUIDs opens a folder read-write once, then read-only again, and returns its state. A
// server may keep UIDs only once a read-write session wrote them: Courier, whose UID database
// (courierimapuiddb) is missing after a Maildir restore, hands every read-only session a new
// UIDVALIDITY until then, so each pass would re-identify the folder. Opening read-write changes
// nothing in the folder (no expunge: the folder is left by opening another one read-only).
// Both openings go out together: one round trip.
func (s *imapSource) KeepUIDs(ctx context.Context, name string) (FolderState, error) {
	rw := s.c.Select(name, nil)
	st, err := s.Open(ctx, name) // answered after the SELECT
	if _, rwErr := rw.Wait(); rwErr != nil {
		if rwErr := imapx.Classify("select "+name, rwErr, imapx.ClassFetch); imapx.Retryable(rwErr) {
			return FolderState{}, rwErr
		}
	}
	return st, err
}

// KeepUIDs passes the read-write opening through to the IMAP source it wraps.
func (g *gmailSource) KeepUIDs(ctx context.Context, name string) (FolderState, error) {
	if k, ok := g.Source.(uidKeeper); ok {
		return g.open(ctx, name, k.KeepUIDs)
	}
	return g.Open(ctx, name)
}
