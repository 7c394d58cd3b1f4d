// Package sources turns the file-based source types of an email job (pst, mbox, eml, tgz, zimbra,
// dovecot maildir) into one ingestion model the IMAP sync engine consumes exactly like an IMAP
// source: folders of messages, each with flags, an INTERNALDATE and a key that stays the same
// from one pass to the next. Dedupe, ledger, quarantine, stats and verify then work identically
// for every source.
//
// The readers live in sub-packages (sources/mbox, sources/eml, ...); this package holds the
// model they share and the helpers every reader needs (flags, dates, safe archive extraction,
// clear errors naming the file and the offset).
package sources

import (
	"io"
	"slices"
	"strings"
	"time"
)

// Message is one message of a source folder.
type Message struct {
	// Key identifies the message within its folder across passes: a path inside the archive,
	// a byte offset in an mbox, a Zimbra item id, a Maildir unique name. Two identical copies
	// of a message have different keys, so both arrive.
	Key   string
	Flags []string  // IMAP system flags (\Seen, \Answered, \Flagged, \Deleted, \Draft) and keywords
	Date  time.Time // INTERNALDATE
	Size  int64     // exact length of what Open yields
	// Open streams the message's bytes; a 50 MB message never sits whole in memory.
	Open func() (io.ReadCloser, error)
	// UID is the message's UID on the server that wrote the source (Dovecot's dovecot-uidlist),
	// 0 when the source has none; it is used only when every message of the folder has one.
	UID uint32
}

// Folder is one folder of a source with its messages in a stable order.
type Folder struct {
	Name     string // UTF-8, "/" between hierarchy levels; "INBOX" is the inbox
	Messages []Message
	// UIDValidity goes with the messages' UIDs (Dovecot's), 0 when they have none.
	UIDValidity uint32
}

// Bytes is the folder's total size.
func (f Folder) Bytes() int64 {
	var n int64
	for _, m := range f.Messages {
		n += m.Size
	}
	return n
}

// Quarantined is an item of the source that cannot become a message (readpst could not convert
// it, an archive entry is not a message, ...). The engine quarantines it and counts it, so it
// shows in the stats and flips the gate's pst_quarantine check instead of vanishing.
type Quarantined struct {
	Folder string // folder it belonged to, "" when unknown
	Key    string // stable identity, like Message.Key
	Reason string // names the file and the offset
}

// Snapshot is everything a file source holds. File sources do not change during a pass, so a
// reader lists them once.
type Snapshot struct {
	Folders     []Folder
	Quarantined []Quarantined
	// Warnings are things a human should know that lose no mail (e.g. contacts and calendar
	// items of a PST, which are not messages).
	Warnings []string
	// Close releases what the reader holds open (a zip file); nil when nothing is.
	Close func() error
}

// Folder returns the named folder, or nil.
func (s *Snapshot) Folder(name string) *Folder {
	for i := range s.Folders {
		if s.Folders[i].Name == name {
			return &s.Folders[i]
		}
	}
	return nil
}

// Messages counts the messages of all folders.
func (s *Snapshot) Messages() int {
	n := 0
	for _, f := range s.Folders {
		n += len(f.Messages)
	}
	return n
}

// Add appends m to the named folder, creating the folder on first use. Folder order is the
// order of first appearance; Sort fixes a canonical order afterwards.
func (s *Snapshot) Add(folder string, m Message) {
	if f := s.Folder(folder); f != nil {
		f.Messages = append(f.Messages, m)
		return
	}
	s.Folders = append(s.Folders, Folder{Name: folder, Messages: []Message{m}})
}

// EnsureFolder adds an empty folder unless it exists, so empty folders are migrated too.
func (s *Snapshot) EnsureFolder(name string) {
	if s.Folder(name) == nil {
		s.Folders = append(s.Folders, Folder{Name: name})
	}
}

// Sort orders folders INBOX first then by name, and messages within a folder by key, so two
// listings of the same source are identical whatever order the file system returned.
func (s *Snapshot) Sort() {
	slices.SortStableFunc(s.Folders, func(a, b Folder) int {
		ai, bi := strings.EqualFold(a.Name, "INBOX"), strings.EqualFold(b.Name, "INBOX")
		switch {
		case ai && !bi:
			return -1
		case bi && !ai:
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	for i := range s.Folders {
		slices.SortStableFunc(s.Folders[i].Messages, func(a, b Message) int { return CompareKeys(a.Key, b.Key) })
	}
}

// CompareKeys orders keys with embedded numbers numerically ("2.eml" before "10.eml"), so
// readpst's and Zimbra's numbered files keep their natural order.
func CompareKeys(a, b string) int {
	for a != "" && b != "" {
		ad, bd := digitPrefix(a), digitPrefix(b)
		if ad > 0 && bd > 0 {
			na, nb := strings.TrimLeft(a[:ad], "0"), strings.TrimLeft(b[:bd], "0")
			if c := len(na) - len(nb); c != 0 {
				return c
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
			a, b = a[ad:], b[bd:]
			continue
		}
		if a[0] != b[0] {
			return int(a[0]) - int(b[0])
		}
		a, b = a[1:], b[1:]
	}
	return len(a) - len(b)
}

func digitPrefix(s string) int {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}
