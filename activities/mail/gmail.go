package mail

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cutover/cutover/activities/mail/folders"
)

// The Gmail preset. Gmail shows labels as folders: a message with two labels is in two folders,
// every message (archived ones too) is in "[Gmail]/All Mail", and "[Gmail]/Starred" and
// "[Gmail]/Important" are views, not places. Copied naively that duplicates the mailbox. So,
// for a source with "[Gmail]/" (or "[Google Mail]/") folders:
//
//   - each label folder lands in its own folder (a message with two labels in both);
//   - Starred and Important are not copied: starring is the \Flagged flag the message carries
//     in its other folders, importance is Gmail's guess;
//   - All Mail is handled last in spirit: only the messages found in no other copied folder
//     (archived mail) come from it, into the destination's Archive folder (special use \Archive,
//     unless the folder map says otherwise);
//   - Sent Mail, Drafts, Spam, Trash/Bin carry their special use by name when the server did
//     not send it.
//
// Identities decide what "found in another folder" means, counted (two copies stay two).

var gmailRoots = []string{"[Gmail]/", "[Google Mail]/"}

// gmailViews are Gmail's virtual folders that are never copied.
var gmailViews = []string{"Starred", "Important"}

var gmailSpecial = map[string]string{"All Mail": folders.Archive, "Sent Mail": folders.Sent, "Drafts": folders.Drafts,
	"Spam": folders.Junk, "Trash": folders.Trash, "Bin": folders.Trash}

// gmailLeaf returns the part after "[Gmail]/", or "" for other folders.
func gmailLeaf(name string) string {
	for _, r := range gmailRoots {
		if leaf, ok := strings.CutPrefix(name, r); ok {
			return leaf
		}
	}
	return ""
}

// gmailSource wraps an IMAP source; it acts only when the account has Gmail folders.
type gmailSource struct {
	Source
	mailboxID int64
	detected  bool // Folders ran on this connection
	gmail     bool
	allMail   string // the All Mail folder's name on the source
	kept      []SourceFolder
	cur       string
	orphans   map[uint32]bool // of All Mail, when computed for the current state
}

func newGmailSource(inner Source, mailboxID int64) *gmailSource {
	return &gmailSource{Source: inner, mailboxID: mailboxID}
}

func (g *gmailSource) Folders(ctx context.Context) ([]SourceFolder, error) {
	fs, err := g.Source.Folders(ctx)
	if err != nil {
		return nil, err
	}
	g.detected, g.gmail, g.allMail, g.kept, g.orphans = true, false, "", nil, nil
	for _, f := range fs {
		if gmailLeaf(f.Name) != "" {
			g.gmail = true
		}
	}
	if !g.gmail {
		return fs, nil
	}
	out := make([]SourceFolder, 0, len(fs))
	for _, f := range fs {
		leaf := gmailLeaf(f.Name)
		if leaf != "" && containsFold(gmailViews, leaf) {
			continue
		}
		if su, ok := gmailSpecial[leaf]; ok && f.SpecialUse == "" {
			f.SpecialUse = su
		}
		if strings.EqualFold(leaf, "All Mail") {
			g.allMail = f.Name
		}
		out = append(out, f)
	}
	g.kept = out
	if g.allMail != "" {
		orphans, err := g.orphanSet(ctx)
		if err != nil {
			return nil, err
		}
		for i := range out {
			if out[i].Name == g.allMail {
				out[i].Messages = int64(len(orphans))
				out[i].Bytes = -1
			}
		}
	}
	return out, nil
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

func (g *gmailSource) Open(ctx context.Context, name string) (FolderState, error) {
	return g.open(ctx, name, g.Source.Open)
}

// open opens a folder with the wrapped source's open (Open or KeepUIDs).
func (g *gmailSource) open(ctx context.Context, name string, open func(context.Context, string) (FolderState, error)) (FolderState, error) {
	// A folder worker's connection opens folders without listing them first: learn the
	// account's shape when a Gmail folder is opened (the only ones treated differently).
	if !g.detected && gmailLeaf(name) != "" {
		if _, err := g.Folders(ctx); err != nil {
			return FolderState{}, err
		}
	}
	st, err := open(ctx, name)
	if err != nil {
		return st, err
	}
	g.cur = name
	if g.gmail && name == g.allMail {
		orphans, err := g.orphanSet(ctx)
		if err != nil {
			return st, err
		}
		st.Messages = uint32(len(orphans))
	}
	return st, nil
}

func (g *gmailSource) Keys(ctx context.Context, above uint32, w Window) ([]uint32, error) {
	keys, err := g.Source.Keys(ctx, above, w)
	if err != nil || !g.gmail || g.cur != g.allMail {
		return keys, err
	}
	orphans, err := g.orphanSet(ctx)
	if err != nil {
		return nil, err
	}
	out := keys[:0]
	for _, k := range keys {
		if orphans[k] {
			out = append(out, k)
		}
	}
	return out, nil
}

func (g *gmailSource) FlagChanges(ctx context.Context, upTo uint32, modseq uint64) ([]Meta, error) {
	ms, err := g.Source.FlagChanges(ctx, upTo, modseq)
	if err != nil || !g.gmail || g.cur != g.allMail {
		return ms, err
	}
	orphans, err := g.orphanSet(ctx)
	if err != nil {
		return nil, err
	}
	out := ms[:0]
	for _, m := range ms {
		if orphans[m.UID] {
			out = append(out, m)
		}
	}
	return out, nil
}

func (g *gmailSource) Stream(ctx context.Context, keys []uint32, fn func(m Meta, body io.Reader) error) error {
	return g.Source.Stream(ctx, keys, fn)
}

// orphanCache shares the All Mail analysis between a pass's folder workers and its verify:
// it is valid while no folder's UIDVALIDITY, UIDNEXT or message count changed.
var orphanCache = struct {
	sync.Mutex
	m map[string]orphanEntry
}{m: map[string]orphanEntry{}}

type orphanEntry struct {
	set map[uint32]bool
	at  time.Time
}

func (g *gmailSource) stateKey() string {
	parts := make([]string, 0, len(g.kept))
	for _, f := range g.kept {
		parts = append(parts, fmt.Sprintf("%s|%d|%d|%d", f.Name, f.UIDValidity, f.UIDNext, f.Messages))
	}
	sort.Strings(parts)
	return fmt.Sprintf("%d\x00%s", g.mailboxID, strings.Join(parts, "\x00"))
}

// orphanSet computes which All Mail UIDs are in no other copied folder, matching identities by
// count. It reads the headers of the whole account once per account state.
func (g *gmailSource) orphanSet(ctx context.Context) (map[uint32]bool, error) {
	if g.orphans != nil {
		return g.orphans, nil
	}
	key := g.stateKey()
	orphanCache.Lock()
	for k, e := range orphanCache.m {
		if time.Since(e.at) > snapTTL {
			delete(orphanCache.m, k)
		}
	}
	if e, ok := orphanCache.m[key]; ok {
		orphanCache.Unlock()
		g.orphans = e.set
		return e.set, nil
	}
	orphanCache.Unlock()

	seen := map[string]int{}
	for _, f := range g.kept {
		if f.Name == g.allMail || f.NoSelect || f.Messages == 0 {
			continue
		}
		metas, err := g.allMetas(ctx, f.Name)
		if err != nil {
			return nil, err
		}
		for _, m := range metas {
			seen[m.Identity]++
		}
	}
	metas, err := g.allMetas(ctx, g.allMail)
	if err != nil {
		return nil, err
	}
	set := map[uint32]bool{}
	for _, m := range metas {
		if seen[m.Identity] > 0 {
			seen[m.Identity]--
			continue
		}
		set[m.UID] = true
	}
	if g.cur != "" {
		if _, err := g.Source.Open(ctx, g.cur); err != nil {
			return nil, err
		}
	}
	orphanCache.Lock()
	orphanCache.m[key] = orphanEntry{set: set, at: time.Now()}
	orphanCache.Unlock()
	g.orphans = set
	return set, nil
}

func (g *gmailSource) allMetas(ctx context.Context, name string) ([]Meta, error) {
	if _, err := g.Source.Open(ctx, name); err != nil {
		return nil, err
	}
	keys, err := g.Source.Keys(ctx, 0, Window{})
	if err != nil {
		return nil, err
	}
	return g.Source.Metas(ctx, keys)
}
