package mail

import (
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/cutover/cutover/activities/mail/folders"
	"github.com/cutover/cutover/activities/mail/identity"
	"github.com/cutover/cutover/activities/mail/sources"
)

// fileSource serves a file source's listing (sources.Snapshot: pst, mbox, eml, tgz, zimbra,
// a Dovecot Maildir) through the Source interface, so the engine copies, dedupes, ledgers,
// quarantines and verifies it exactly like an IMAP account.
//
// Keys are UIDs: Dovecot's own where its dovecot-uidlist names every message of a folder;
// otherwise the message's 1-based position in the folder's key order, with a UIDVALIDITY
// hashed from the folder's whole key list, so any change to the folder's contents (a new
// upload) is a new UIDVALIDITY and the engine re-identifies instead of trusting positions.
type fileSource struct {
	snap    *sources.Snapshot
	folders []*fileFolder
	byName  map[string]*fileFolder
	cur     *fileFolder
	sniff   identity.Sniffer
}

type fileFolder struct {
	name     string
	validity uint32
	uids     []uint32 // ascending
	items    map[uint32]fileItem
	messages int64
	bytes    int64
}

// fileItem is a message, or an item the source holds but cannot produce (readpst could not
// convert it, an empty file): the engine quarantines those with the reason.
type fileItem struct {
	msg        *sources.Message
	unreadable string
	key        string
}

// newFileSource indexes snap; sourceID names the source's content (type and path) so two
// sources never share a UIDVALIDITY.
func newFileSource(snap *sources.Snapshot, sourceID string) *fileSource {
	s := &fileSource{snap: snap, byName: map[string]*fileFolder{}}
	quarantined := map[string][]sources.Quarantined{}
	for _, q := range snap.Quarantined {
		name := q.Folder
		if name == "" {
			name = "INBOX"
		}
		quarantined[name] = append(quarantined[name], q)
	}
	seen := map[string]bool{}
	for i := range snap.Folders {
		f := &snap.Folders[i]
		s.add(f.Name, f, quarantined[f.Name], sourceID)
		seen[f.Name] = true
	}
	// Quarantined items of folders without a single message still need a folder to be
	// counted in.
	names := make([]string, 0, len(quarantined))
	for name := range quarantined {
		if !seen[name] {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		s.add(name, &sources.Folder{Name: name}, quarantined[name], sourceID)
	}
	return s
}

func (s *fileSource) add(name string, f *sources.Folder, qs []sources.Quarantined, sourceID string) {
	ff := &fileFolder{name: name, items: map[uint32]fileItem{}}
	dovecot := f.UIDValidity != 0 && len(qs) == 0
	for i := range f.Messages {
		if f.Messages[i].UID == 0 {
			dovecot = false
		}
	}
	if dovecot {
		ff.validity = f.UIDValidity
		for i := range f.Messages {
			m := &f.Messages[i]
			ff.items[m.UID] = fileItem{msg: m, key: m.Key}
			ff.uids = append(ff.uids, m.UID)
		}
		slices.Sort(ff.uids)
	} else {
		all := make([]fileItem, 0, len(f.Messages)+len(qs))
		for i := range f.Messages {
			all = append(all, fileItem{msg: &f.Messages[i], key: f.Messages[i].Key})
		}
		for _, q := range qs {
			all = append(all, fileItem{unreadable: q.Reason, key: q.Key})
		}
		sort.SliceStable(all, func(i, j int) bool { return sources.CompareKeys(all[i].key, all[j].key) < 0 })
		h := fnv.New32a()
		h.Write([]byte(sourceID + "\x00" + name))
		for i, it := range all {
			uid := uint32(i + 1)
			ff.items[uid] = it
			ff.uids = append(ff.uids, uid)
			h.Write([]byte{0})
			h.Write([]byte(it.key))
		}
		ff.validity = h.Sum32() | 1 // never 0
	}
	for _, it := range ff.items {
		ff.messages++
		if it.msg != nil {
			ff.bytes += it.msg.Size
		}
	}
	s.folders = append(s.folders, ff)
	s.byName[name] = ff
}

func (s *fileSource) Namespace() folders.Namespace { return folders.Namespace{Delim: "/"} }

func (s *fileSource) Folders(ctx context.Context) ([]SourceFolder, error) {
	out := make([]SourceFolder, 0, len(s.folders))
	have := map[string]bool{}
	for _, f := range s.folders {
		have[f.name] = true
	}
	for _, f := range s.folders {
		// Parents that exist only as levels of a path ("Projects" of "Projects/2023") are
		// hierarchy nodes, as on a server.
		levels := strings.Split(f.name, "/")
		for i := 1; i < len(levels); i++ {
			p := strings.Join(levels[:i], "/")
			if !have[p] {
				have[p] = true
				out = append(out, SourceFolder{Folder: folders.Folder{Name: p, Delim: "/", NoSelect: true, Subscribed: true}})
			}
		}
		next := uint32(1)
		if n := len(f.uids); n > 0 {
			next = f.uids[n-1] + 1
		}
		out = append(out, SourceFolder{Folder: folders.Folder{Name: f.name, Delim: "/", Subscribed: true},
			Messages: f.messages, Bytes: f.bytes, UIDNext: next})
	}
	return out, nil
}

func (s *fileSource) Open(ctx context.Context, name string) (FolderState, error) {
	f := s.byName[name]
	if f == nil {
		return FolderState{}, fmt.Errorf("source folder %q: no such folder", name)
	}
	s.cur = f
	next := uint32(1)
	if n := len(f.uids); n > 0 {
		next = f.uids[n-1] + 1
	}
	return FolderState{UIDValidity: f.validity, UIDNext: next, Messages: uint32(len(f.uids))}, nil
}

func (s *fileSource) current() (*fileFolder, error) {
	if s.cur == nil {
		return nil, fmt.Errorf("no source folder open")
	}
	return s.cur, nil
}

func (s *fileSource) Keys(ctx context.Context, above uint32, w Window) ([]uint32, error) {
	f, err := s.current()
	if err != nil {
		return nil, err
	}
	i := sort.Search(len(f.uids), func(i int) bool { return f.uids[i] > above })
	out := make([]uint32, 0, len(f.uids)-i)
	for _, uid := range f.uids[i:] {
		it := f.items[uid]
		// An unreadable item has no date: it is in every window, so it is always counted.
		if it.msg == nil || w.Contains(it.msg.Date) {
			out = append(out, uid)
		}
	}
	return out, nil
}

func (s *fileSource) Metas(ctx context.Context, keys []uint32) ([]Meta, error) {
	f, err := s.current()
	if err != nil {
		return nil, err
	}
	out := make([]Meta, 0, len(keys))
	for _, uid := range keys {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		it, ok := f.items[uid]
		if !ok {
			continue
		}
		m, err := s.meta(uid, it, true)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// meta describes one item; with identity it reads the message's header.
func (s *fileSource) meta(uid uint32, it fileItem, withIdentity bool) (Meta, error) {
	if it.msg == nil {
		return Meta{UID: uid, Identity: unreadableIdentity(it.key), Describe: it.key, Unreadable: it.unreadable}, nil
	}
	m := Meta{UID: uid, Size: it.msg.Size, Flags: sortedFlags(it.msg.Flags), Date: it.msg.Date}
	if !withIdentity {
		return m, nil
	}
	rc, err := it.msg.Open()
	if err != nil {
		return Meta{}, fmt.Errorf("source message %s: %w", it.key, err)
	}
	s.sniff.Reset()
	_, err = io.CopyN(&s.sniff, rc, identity.MaxHeader)
	rc.Close()
	if err != nil && err != io.EOF {
		return Meta{}, fmt.Errorf("source message %s: %w", it.key, err)
	}
	h := s.sniff.Header()
	m.Identity = identity.Of(h, m.Date)
	m.Describe = h.Describe()
	m.Header = h
	return m, nil
}

// unreadableIdentity names an item the source cannot produce, for the quarantine table.
func unreadableIdentity(key string) string {
	h := fnv.New64a()
	h.Write([]byte(key))
	return fmt.Sprintf("q%016x", h.Sum64())
}

func (s *fileSource) FlagChanges(ctx context.Context, upTo uint32, modseq uint64) ([]Meta, error) {
	f, err := s.current()
	if err != nil {
		return nil, err
	}
	var out []Meta
	for _, uid := range f.uids {
		if uid > upTo {
			break
		}
		it := f.items[uid]
		if it.msg == nil {
			continue
		}
		m, _ := s.meta(uid, it, false)
		out = append(out, m)
	}
	return out, nil
}

func (s *fileSource) Stream(ctx context.Context, keys []uint32, fn func(m Meta, body io.Reader) error) error {
	f, err := s.current()
	if err != nil {
		return err
	}
	for _, uid := range keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		it, ok := f.items[uid]
		if !ok || it.msg == nil {
			continue // unreadable items are quarantined from their Meta, never streamed
		}
		m, _ := s.meta(uid, it, false)
		rc, err := it.msg.Open()
		if err != nil {
			return fmt.Errorf("source message %s: %w", it.key, err)
		}
		err = fn(m, &exactReader{r: rc, n: it.msg.Size, key: it.key})
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *fileSource) Close() error {
	if s.snap != nil && s.snap.Close != nil {
		return s.snap.Close()
	}
	return nil
}

// exactReader yields exactly n bytes and fails loudly if the file changed under the listing.
type exactReader struct {
	r   io.Reader
	n   int64
	key string
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.n {
		p = p[:e.n]
	}
	n, err := e.r.Read(p)
	e.n -= int64(n)
	if err == io.EOF && e.n > 0 {
		return n, fmt.Errorf("source message %s: %w (%d bytes short of its listed size: the file changed)", e.key, io.ErrUnexpectedEOF, e.n)
	}
	if err == io.EOF {
		err = nil
	}
	return n, err
}
