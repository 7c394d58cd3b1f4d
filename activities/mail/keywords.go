package mail

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/cutover/cutover/activities/mail/imapx"
)

// A destination may refuse keywords: Cyrus keeps at most 100 per folder and answers an APPEND
// or STORE bringing more with "NO Too many user flags in mailbox". A message matters more than
// its keywords: the APPEND is tried again with only the keywords the folder already knows,
// then with none, and a STORE likewise; what could not be stored is recorded on the message's
// ledger row (dropped_flags), counted in the pass's stats ("keywords_dropped") and reported to
// the go/no-go gate. Later passes do not ask for those keywords again. Keywords the folder's
// PERMANENTFLAGS already rule out are dropped up front and recorded the same way.

// kwMode is how many of a message's keywords an APPEND carries.
type kwMode int

const (
	kwAll       kwMode = iota // every keyword the folder's PERMANENTFLAGS allow
	kwKnownOnly               // only keywords the folder's PERMANENTFLAGS list by name
	kwNone                    // none
)

// isKeyword reports a keyword (not a system flag).
func isKeyword(f string) bool { return !strings.HasPrefix(f, `\`) }

// withoutFlags returns fs without the members of drop (case-insensitive).
func withoutFlags(fs, drop []string) []string {
	if len(drop) == 0 {
		return fs
	}
	return slices.DeleteFunc(slices.Clone(fs), func(f string) bool {
		return slices.ContainsFunc(drop, func(d string) bool { return strings.EqualFold(d, f) })
	})
}

// keptFlags narrows flags (already filtered to what the folder can store) by mode.
func keptFlags(flags []string, f flagFilter, mode kwMode) []string {
	switch mode {
	case kwKnownOnly:
		return slices.DeleteFunc(slices.Clone(flags), func(fl string) bool {
			return isKeyword(fl) && !slices.Contains(f.perm, strings.ToLower(fl))
		})
	case kwNone:
		return slices.DeleteFunc(slices.Clone(flags), isKeyword)
	}
	return flags
}

// droppedKeywords are the keywords of the source's flags that flags leaves out.
func droppedKeywords(source, flags []string) []string {
	var out []string
	for _, f := range source {
		if isKeyword(f) && !slices.ContainsFunc(flags, func(x string) bool { return strings.EqualFold(x, f) }) {
			out = append(out, f)
		}
	}
	return sortedFlags(out)
}

// flagsFor returns the flags an APPEND of m carries into the folder and the keywords left out.
func (fr *folderRun) flagsFor(m Meta) (flags, dropped []string) {
	fr.mu.Lock()
	f, mode := fr.filter, fr.kwModes[m.UID]
	fr.mu.Unlock()
	flags = keptFlags(f.apply(m.Flags), f, mode)
	return flags, droppedKeywords(m.Flags, flags)
}

// setFilter replaces the folder's flag filter (chunks on other workers read it).
func (fr *folderRun) setFilter(f flagFilter) {
	fr.mu.Lock()
	fr.filter = f
	fr.mu.Unlock()
}

func (fr *folderRun) setKeywordMode(uid uint32, mode kwMode) {
	fr.mu.Lock()
	if fr.kwModes == nil {
		fr.kwModes = map[uint32]kwMode{}
	}
	fr.kwModes[uid] = mode
	fr.mu.Unlock()
}

// retryWithoutKeywords tries again, with fewer keywords, the messages a folder refused one by
// one that carry keywords; it returns those now stored and the refusals that stand (with the
// destination's first answer).
func (p *pass) retryWithoutKeywords(ctx context.Context, s *session, fr *folderRun, rejects []reject) (done []uint32, left []reject, err error) {
	var cand []reject
	for _, r := range rejects {
		if imapx.ClassOf(r.err) == imapx.ClassAppendRejected && slices.ContainsFunc(r.meta.Flags, isKeyword) {
			cand = append(cand, r)
		} else {
			left = append(left, r)
		}
	}
	if len(cand) == 0 {
		return nil, rejects, nil
	}
	// The folder's keywords now: the refused ones may be those over its limit.
	if _, err := s.dst.selectFolder(ctx, fr.m.Dest); err != nil {
		return nil, nil, err
	}
	f := s.dst.flagFilter()
	fr.setFilter(f)
	for _, mode := range []kwMode{kwKnownOnly, kwNone} {
		var next []reject
		for _, r := range cand {
			fr.setKeywordMode(r.meta.UID, mode)
			d, again, rj, err := p.copyBatch(ctx, s, fr, []uint32{r.meta.UID}, true, false, nil)
			done = append(done, d...)
			if err != nil {
				return done, nil, err
			}
			if len(again) > 0 {
				return done, nil, fmt.Errorf("copy %s/%d: refused without an answer", fr.m.Source.Name, r.meta.UID)
			}
			if len(rj) > 0 {
				next = append(next, r)
			}
		}
		if cand = next; len(cand) == 0 {
			break
		}
	}
	if n := len(done); n > 0 {
		// The folder takes no new keywords, whatever its PERMANENTFLAGS say (Cyrus keeps
		// listing \* when full): later messages leave unknown keywords out from the start.
		f.anyKW = false
		fr.setFilter(f)
		p.log.Warn("the destination refused keywords; messages stored without them", "folder", fr.m.Dest, "messages", n)
	}
	return done, append(left, cand...), nil
}

// storeAdd adds flags to destination UIDs. A refusal (a NO, not a lost connection) when keywords
// are among the flags is tried again with only the keywords the folder knows, then without
// keywords; it returns the keywords it could not store.
func (d *dest) storeAdd(ctx context.Context, uids []uint32, add []string) ([]string, error) {
	err := d.store(ctx, uids, imap.StoreFlagsAdd, add)
	if err == nil || imapx.Retryable(err) || !slices.ContainsFunc(add, isKeyword) {
		return nil, err
	}
	first := err
	if _, err := d.selectFolder(ctx, d.selected); err != nil {
		return nil, err
	}
	f := d.flagFilter()
	for _, mode := range []kwMode{kwKnownOnly, kwNone} {
		kept := keptFlags(add, f, mode)
		dropped := droppedKeywords(add, kept)
		if len(dropped) == 0 {
			continue
		}
		err := d.store(ctx, uids, imap.StoreFlagsAdd, kept)
		if err == nil {
			return dropped, nil
		}
		if imapx.Retryable(err) {
			return nil, err
		}
	}
	return nil, first
}

// flagStores collects flag changes of destination messages and applies them grouped: one STORE
// per distinct change rather than one per message.
type flagStores struct {
	order  []string
	groups map[string]*flagStore
}

type flagStore struct {
	add, del []string
	uids     []uint32
}

func newFlagStores() *flagStores { return &flagStores{groups: map[string]*flagStore{}} }

func (f *flagStores) add(uid uint32, add, del []string) {
	if len(add) == 0 && len(del) == 0 {
		return
	}
	k := strings.Join(add, " ") + "|" + strings.Join(del, " ")
	g := f.groups[k]
	if g == nil {
		g = &flagStore{add: add, del: del}
		f.groups[k] = g
		f.order = append(f.order, k)
	}
	g.uids = append(g.uids, uid)
}

// uids returns the destination UIDs that get a STORE.
func (f *flagStores) uids() map[uint32]bool {
	out := map[uint32]bool{}
	for _, g := range f.groups {
		for _, u := range g.uids {
			out[u] = true
		}
	}
	return out
}

// apply sends the STOREs to the selected destination folder; it returns the keywords the
// destination refused, by destination UID.
func (f *flagStores) apply(ctx context.Context, d *dest) (map[uint32][]string, error) {
	dropped := map[uint32][]string{}
	for _, k := range f.order {
		g := f.groups[k]
		kws, err := d.storeAdd(ctx, g.uids, g.add)
		if err != nil {
			return dropped, err
		}
		if len(kws) > 0 {
			for _, u := range g.uids {
				dropped[u] = kws
			}
		}
		if err := d.store(ctx, g.uids, imap.StoreFlagsDel, g.del); err != nil {
			return dropped, err
		}
	}
	return dropped, nil
}

// recordDropped records keywords the destination refused for source UIDs of the folder.
func (p *pass) recordDropped(ctx context.Context, fr *folderRun, srcUIDs []int64, dropped [][]string) error {
	if len(srcUIDs) == 0 {
		return nil
	}
	p.c.addError("keywords_dropped", int64(len(srcUIDs)))
	return p.st.AddMailDroppedFlags(ctx, fr.lf.ID, srcUIDs, dropped)
}

// settleUnsureFlags reads, for the folder's rows whose flags are unsure (a flag change whose
// outcome a failed attempt did not record), the flags the destination really holds into the
// ledger. It reports whether there were any: the caller then compares every message's flags
// with the source's, since the source may not have changed since.
func (p *pass) settleUnsureFlags(ctx context.Context, s *session, fr *folderRun) (bool, error) {
	rows, err := p.st.MailFlagsUnsure(ctx, fr.lf.ID)
	if err != nil || len(rows) == 0 {
		return false, err
	}
	if s.dst.selected != fr.m.Dest {
		if _, err := s.dst.selectFolder(ctx, fr.m.Dest); err != nil {
			return false, err
		}
	}
	var uids []uint32
	for _, r := range rows {
		if r.DestUID != nil {
			uids = append(uids, uint32(*r.DestUID))
		}
	}
	slices.Sort(uids)
	metas, err := s.dst.metas(ctx, uids)
	if err != nil {
		return false, err
	}
	held := map[uint32][]string{}
	for _, m := range metas {
		held[m.UID] = withoutFlags(m.Flags, []string{`\Recent`})
	}
	src := make([]int64, 0, len(rows))
	flags := make([][]string, 0, len(rows))
	for _, r := range rows {
		f := r.Flags
		if r.DestUID != nil {
			f = held[uint32(*r.DestUID)] // gone: no flags; the destination check copies it again
		}
		src, flags = append(src, r.SourceUID), append(flags, f)
	}
	p.log.Info("read back flags a failed attempt left unsure", "folder", fr.m.Source.Name, "messages", len(rows))
	return true, p.st.SetMailMessageFlags(ctx, fr.lf.ID, src, flags)
}
