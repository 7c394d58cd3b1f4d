package mail

import (
	"context"
	"io"
	"time"

	"github.com/cutover/cutover/activities/mail/folders"
	"github.com/cutover/cutover/activities/mail/identity"
)

// Source is where a pass reads mail from: folders of messages, each message with flags, an
// INTERNALDATE and a stable per-folder key (the IMAP UID; file sources — pst, mbox, eml, tgz —
// can number their messages 1..N in their stable order and derive UIDVALIDITY from a hash of
// the key list, so that any change to the list re-identifies safely by identity). Everything
// downstream of it — dedupe, ledger, quarantine, stats, verify — is the same for every kind of
// source. The destination side is always IMAP.
//
// A Source is used by one goroutine at a time; the engine opens one per folder worker.
type Source interface {
	// Namespace is how the source spells folder paths.
	Namespace() folders.Namespace
	// Folders lists the source's folders with their status.
	Folders(ctx context.Context) ([]SourceFolder, error)
	// Open makes a folder current and returns its state.
	Open(ctx context.Context, name string) (FolderState, error)
	// Keys lists the keys in the current folder above a key, in ascending order, restricted to
	// the age window (exactly, on INTERNALDATE).
	Keys(ctx context.Context, above uint32, w Window) ([]uint32, error)
	// Metas returns size, flags, INTERNALDATE and identity of the given keys (headers only).
	Metas(ctx context.Context, keys []uint32) ([]Meta, error)
	// FlagChanges returns key and flags of messages with key <= upTo whose flags changed since
	// modseq; every such message when modseq is 0 or the source cannot tell.
	FlagChanges(ctx context.Context, upTo uint32, modseq uint64) ([]Meta, error)
	// Stream calls fn for each message of keys in ascending order with its metadata (identity
	// not set) and a reader of exactly Meta.Size bytes that fn must consume before returning.
	// Keys the source no longer has are skipped. An error from fn stops the stream and is
	// returned; the Source must then be closed.
	Stream(ctx context.Context, keys []uint32, fn func(m Meta, body io.Reader) error) error
	// Close releases the source's connections or files.
	Close() error
}

// SourceFolder is a listed folder with its status (zero when unknown).
type SourceFolder struct {
	folders.Folder
	Messages    int64
	Bytes       int64 // -1 when the source cannot tell without reading sizes
	UIDNext     uint32
	UIDValidity uint32
	ModSeq      uint64
}

// FolderState is a folder's state when opened.
type FolderState struct {
	UIDValidity   uint32
	UIDNext       uint32
	Messages      uint32
	HighestModSeq uint64 // 0 without CONDSTORE
}

// Meta describes one message.
type Meta struct {
	UID      uint32
	Size     int64
	Flags    []string
	Date     time.Time // INTERNALDATE
	Identity string
	Describe string          // Message-ID or subject and date, for humans
	Header   identity.Header // the identity fields (see package identity): what a server may rewrite
	// Unreadable is set (to the reason) for an item the source holds but cannot produce —
	// readpst could not convert it, a file is empty. Metas reports it; Stream skips it; the
	// engine quarantines it so it is counted, never silently dropped.
	Unreadable string
}

// Window is the age window on INTERNALDATE; zero times are open ends.
type Window struct {
	Since, Before time.Time
}

// Empty reports whether the window selects everything.
func (w Window) Empty() bool { return w.Since.IsZero() && w.Before.IsZero() }

// Contains reports whether an INTERNALDATE falls inside the window.
func (w Window) Contains(t time.Time) bool {
	return (w.Since.IsZero() || !t.Before(w.Since)) && (w.Before.IsZero() || t.Before(w.Before))
}

// Key identifies the window in the ledger, so a changed window rescans.
func (w Window) Key() string {
	if w.Empty() {
		return ""
	}
	f := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	return f(w.Since) + "/" + f(w.Before)
}
