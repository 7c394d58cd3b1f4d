// Package maildir reads a Maildir tree as a source: a Dovecot account on the worker host
// (source type dovecot) or a Maildir unpacked from a tarball (source type tgz).
//
// Both of Dovecot's layouts are understood: Maildir++ (INBOX at the root, folders as
// ".Parent.Child" directories, names in IMAP modified UTF-7) and LAYOUT=fs (folders as nested
// directories). Flags come from the "info" suffix of the file names (":2,FRS" plus keyword
// letters resolved through dovecot-keywords), INTERNALDATE from the file's mtime (what Dovecot
// itself uses as the received date).
package maildir

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cutover/cutover/activities/mail/sources"
	"github.com/cutover/cutover/internal/utf7"
)

// IsMaildir reports whether dir looks like a Maildir folder (has cur/ or new/).
func IsMaildir(dir string) bool {
	for _, sub := range []string{"cur", "new"} {
		if fi, err := os.Stat(filepath.Join(dir, sub)); err == nil && fi.IsDir() {
			return true
		}
	}
	return false
}

// Find returns the Maildir root under dir: dir itself, or the shallowest directory below it
// that is a Maildir or holds Maildir++ folders (a tarball of a home directory holds "Maildir/"
// or "user/Maildir/").
func Find(dir string) (string, bool) {
	level := []string{dir}
	for depth := 0; depth < 8 && len(level) > 0; depth++ {
		var next []string
		for _, d := range level {
			if isRoot(d) {
				return d, true
			}
			entries, _ := os.ReadDir(d)
			for _, e := range entries {
				if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
					next = append(next, filepath.Join(d, e.Name()))
				}
			}
		}
		level = next
	}
	return "", false
}

// isRoot: a Maildir, or a directory whose ".Name" children are Maildirs (INBOX never created).
func isRoot(dir string) bool {
	if IsMaildir(dir) {
		return true
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), ".") && IsMaildir(filepath.Join(dir, e.Name())) {
			return true
		}
	}
	return false
}

// Read lists every folder and message of the Maildir rooted at root.
func Read(root string) (*sources.Snapshot, error) {
	fi, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("maildir %s: %w", root, err)
	}
	if !fi.IsDir() {
		return nil, sources.Malformed(root, -1, nil, "not a directory")
	}
	snap := &sources.Snapshot{}
	if IsMaildir(root) {
		if err := readFolder(snap, root, "INBOX"); err != nil {
			return nil, err
		}
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("maildir %s: %w", root, err)
	}
	for _, e := range entries {
		if !e.IsDir() || e.Name() == "cur" || e.Name() == "new" || e.Name() == "tmp" {
			continue
		}
		dir := filepath.Join(root, e.Name())
		if strings.HasPrefix(e.Name(), ".") {
			// Maildir++: ".a.b" is folder a/b; "." and ".." never appear in ReadDir.
			if !IsMaildir(dir) {
				continue
			}
			parts := strings.Split(e.Name()[1:], ".")
			for i, p := range parts {
				parts[i] = utf7.DecodeLenient(p)
			}
			name := strings.Join(parts, "/")
			if strings.EqualFold(name, "INBOX") {
				name = "INBOX"
			}
			if err := readFolder(snap, dir, name); err != nil {
				return nil, err
			}
			continue
		}
		// LAYOUT=fs: nested directories, each a folder when it holds cur/ or new/.
		if err := readFS(snap, dir, utf7.DecodeLenient(e.Name())); err != nil {
			return nil, err
		}
	}
	snap.Sort()
	return snap, nil
}

func readFS(snap *sources.Snapshot, dir, name string) error {
	if IsMaildir(dir) {
		if strings.EqualFold(name, "INBOX") {
			name = "INBOX"
		}
		if err := readFolder(snap, dir, name); err != nil {
			return err
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("maildir %s: %w", dir, err)
	}
	for _, e := range entries {
		if !e.IsDir() || e.Name() == "cur" || e.Name() == "new" || e.Name() == "tmp" || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if err := readFS(snap, filepath.Join(dir, e.Name()), name+"/"+utf7.DecodeLenient(e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// readFolder lists one Maildir folder's messages (cur/ and new/; tmp/ holds deliveries in
// progress, which are not messages yet).
func readFolder(snap *sources.Snapshot, dir, name string) error {
	keywords, err := sources.ReadDovecotKeywords(dir)
	if err != nil {
		return fmt.Errorf("maildir %s keywords: %w", dir, err)
	}
	uids, err := sources.ReadDovecotUIDList(dir)
	if err != nil {
		return fmt.Errorf("maildir %s uid list: %w", dir, err)
	}
	snap.EnsureFolder(name)
	allUIDs := uids != nil && uids.UIDValidity != 0
	for _, sub := range []string{"cur", "new"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("maildir %s: %w", filepath.Join(dir, sub), err)
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".") {
				continue // hidden files are editors' and tools' temporaries, never messages
			}
			path := filepath.Join(dir, sub, e.Name())
			info, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // expunged or renamed while listing: the next pass sees it
			}
			if err != nil {
				return fmt.Errorf("maildir %s: %w", path, err)
			}
			if !info.Mode().IsRegular() {
				snap.Quarantined = append(snap.Quarantined, sources.Quarantined{Folder: name, Key: e.Name(),
					Reason: fmt.Sprintf("%s: not a regular file (%s)", path, info.Mode().Type())})
				continue
			}
			base, flags := sources.SplitMaildirName(e.Name(), keywords)
			if sub == "new" {
				flags = nil // "new" means not yet seen by any client
			}
			if info.Size() == 0 {
				snap.Quarantined = append(snap.Quarantined, sources.Quarantined{Folder: name, Key: base,
					Reason: fmt.Sprintf("%s at offset 0: empty file, not a message", path)})
				continue
			}
			slices.Sort(flags)
			var uid uint32
			if allUIDs {
				if uid = uids.UIDs[base]; uid == 0 {
					allUIDs = false // delivered after Dovecot last listed the folder
				}
			}
			snap.Add(name, sources.Message{Key: base, Flags: flags, Date: info.ModTime(), Size: info.Size(),
				Open: opener(dir, base, path), UID: uid})
		}
	}
	if allUIDs {
		snap.Folder(name).UIDValidity = uids.UIDValidity
	}
	return nil
}

// opener opens a Maildir message, following it when a live server renamed it since the listing
// (a flag change rewrites the info suffix, a first read moves it from new/ to cur/).
func opener(dir, base, path string) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) {
		f, err := os.Open(path)
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			return f, err
		}
		for _, sub := range []string{"cur", "new"} {
			matches, _ := filepath.Glob(filepath.Join(dir, sub, globEscape(base)+"*"))
			for _, m := range matches {
				if b, _ := sources.SplitMaildirName(filepath.Base(m), nil); b == base {
					return os.Open(m)
				}
			}
		}
		return nil, fmt.Errorf("maildir message %s: %w (expunged since the listing)", base, fs.ErrNotExist)
	}
}

func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
