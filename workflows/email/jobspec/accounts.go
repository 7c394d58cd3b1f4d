package jobspec

import (
	"fmt"
	"strings"

	"github.com/cutover/cutover/internal/model"
)

func presyncMode(m model.SyncMode) bool {
	return m == model.ModeMirror || m == model.ModeCopy || m == model.ModeStrictMirror
}

// Account names one side's account of a mailbox, for finding two entries (of one job, or of
// two jobs) that would write into the same destination account or read the same source:
// "host:port/user", or "file:path" for a file source.
type Account struct {
	Source, Dest string
}

// Accounts returns the source and destination accounts of a mailbox entry.
func (s Spec) Accounts(m Mailbox) Account {
	src, dest := s.Logins(m)
	a := Account{Dest: strings.ToLower(dest.Addr + "/" + dest.User)}
	if readsFiles(m) {
		a.Source = "file:" + m.SourcePath
	} else {
		a.Source = strings.ToLower(src.Addr + "/" + src.User)
	}
	return a
}

// sharedAccounts refuses two entries on one destination account or one source account: the
// job would copy every message twice into it, and each entry's mirror would see the other's
// copies as extra. Entries that merge several sources into one account on purpose all say
// merge: true (their messages are deduplicated by identity), and never strict_mirror.
func (s Spec) sharedAccounts(p *problems) {
	dests, srcs := map[string]int{}, map[string]int{}
	for i, m := range s.Mailboxes {
		path := fmt.Sprintf("mailboxes[%d]", i)
		mode := m.PresyncMode
		if mode == "" {
			mode = s.Schedule.PresyncMode
		}
		if m.Merge && mode == model.ModeStrictMirror {
			p.add(path+".presync_mode",
				"strict_mirror would delete what the other merged entries copied: use mirror or copy with merge")
		}
		a := s.Accounts(m)
		for _, side := range []struct {
			seen    map[string]int
			key     string
			what    string
			mergeOK bool
		}{{dests, a.Dest, "destination", true}, {srcs, a.Source, "source", true}} {
			j, dup := side.seen[side.key]
			if !dup {
				side.seen[side.key] = i
				continue
			}
			if side.mergeOK && m.Merge && s.Mailboxes[j].Merge {
				continue
			}
			p.add(path, fmt.Sprintf("%s (%s) uses the same %s account %s as mailboxes[%d] (%s): every message would be "+
				"copied twice; give each entry its own account, or set merge: true on both to merge them on purpose",
				m.Email, path, side.what, side.key, j, s.Mailboxes[j].Email))
		}
	}
}
