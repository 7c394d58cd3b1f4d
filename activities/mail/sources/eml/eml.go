// Package eml reads a tree of .eml files as a source: a directory, or a zip unpacked (with the
// archive safety limits) into the work directory. The folder is the file's directory relative
// to the root ("Projects/2023/a.eml" is in Projects/2023; files at the root are in INBOX), the
// INTERNALDATE the topmost Received date, else the Date header, else the file's mtime; flags
// come from Status/X-Status/X-Keywords headers when a tool wrote them (readpst does).
package eml

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/cutover/cutover/activities/mail/sources"
)

// Open reads path: a directory of .eml files, or a .zip of them unpacked under workRoot.
func Open(path, workRoot string, lim sources.Limits) (*sources.Snapshot, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("eml %s: %w", path, err)
	}
	if fi.IsDir() {
		return ReadTree(path)
	}
	if !IsZip(path) {
		// A single .eml file is a one-message INBOX.
		snap := &sources.Snapshot{}
		addFile(snap, path, "INBOX", filepath.Base(path), fi)
		return snap, nil
	}
	dir, _, err := sources.Prepared(workRoot, "eml-zip", path, func(dir string) error {
		_, err := sources.ExtractZip(path, dir, lim)
		return err
	})
	if err != nil {
		return nil, err
	}
	return ReadTree(dir)
}

// IsZip reports whether path starts with a zip signature.
func IsZip(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [4]byte
	n, _ := f.Read(b[:])
	return n == 4 && string(b[:]) == "PK\x03\x04" || n == 4 && string(b[:]) == "PK\x05\x06"
}

var mhName = regexp.MustCompile(`^[0-9]+$`)

// IsMessageName reports whether a file name is a message file of an eml tree: ".eml", or an
// MH-style number.
func IsMessageName(name string) bool {
	return strings.EqualFold(filepath.Ext(name), ".eml") || mhName.MatchString(name)
}

// ReadTree lists every message file under root. Files that are not messages by name are
// reported as warnings, never dropped silently.
func ReadTree(root string) (*sources.Snapshot, error) {
	snap := &sources.Snapshot{}
	// Non-message files are summarised per directory and extension (a PST's calendar can
	// hold thousands of .ics files).
	type ignoredKey struct{ dir, ext string }
	var ignoredOrder []ignoredKey
	ignored := map[ignoredKey]int{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("eml tree %s: %w", p, err)
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			if d.Name() == "__MACOSX" {
				snap.Warnings = append(snap.Warnings, fmt.Sprintf("%s: macOS resource forks, not mail, ignored", p))
				return filepath.SkipDir
			}
			if rel != "." {
				snap.EnsureFolder(FolderName(filepath.ToSlash(rel)))
			}
			return nil
		}
		if sources.IsMarker(d.Name()) {
			return nil
		}
		if !d.Type().IsRegular() {
			return sources.Malformed(p, -1, nil, "not a regular file (%s)", d.Type())
		}
		if !IsMessageName(d.Name()) {
			k := ignoredKey{filepath.Dir(p), strings.ToLower(filepath.Ext(d.Name()))}
			if ignored[k] == 0 {
				ignoredOrder = append(ignoredOrder, k)
			}
			ignored[k]++
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return fmt.Errorf("eml tree %s: %w", p, err)
		}
		folder := "INBOX"
		if dir := filepath.Dir(rel); dir != "." {
			folder = FolderName(filepath.ToSlash(dir))
		}
		addFile(snap, p, folder, d.Name(), fi)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, k := range ignoredOrder {
		ext := k.ext
		if ext == "" {
			ext = "(no extension)"
		}
		snap.Warnings = append(snap.Warnings, fmt.Sprintf("%s: %d %s file(s) are not messages, ignored", k.dir, ignored[k], ext))
	}
	snap.Sort()
	return snap, nil
}

// FolderName turns a slash-separated relative directory into a folder name: valid UTF-8, no
// empty levels, a top-level "Inbox" in any case is INBOX.
func FolderName(rel string) string {
	parts := strings.Split(strings.Trim(rel, "/"), "/")
	parts = slices.DeleteFunc(parts, func(s string) bool { return s == "" })
	for i, p := range parts {
		parts[i] = strings.ToValidUTF8(p, "_")
	}
	if len(parts) == 0 {
		return "INBOX"
	}
	if strings.EqualFold(parts[0], "INBOX") {
		parts[0] = "INBOX"
	}
	return strings.Join(parts, "/")
}

// addFile adds one message file, or quarantines it when it is not a message.
func addFile(snap *sources.Snapshot, path, folder, key string, fi fs.FileInfo) {
	h, fields, err := sources.ReadHeaderFile(path)
	switch {
	case err != nil:
		snap.Quarantined = append(snap.Quarantined, sources.Quarantined{Folder: folder, Key: key,
			Reason: fmt.Sprintf("%s at offset 0: unreadable: %v", path, err)})
		return
	case fi.Size() == 0 || !fields:
		snap.Quarantined = append(snap.Quarantined, sources.Quarantined{Folder: folder, Key: key,
			Reason: fmt.Sprintf("%s at offset 0: not a message (no header field)", path)})
		return
	}
	date, ok := sources.HeaderDate(h)
	if !ok {
		date = fi.ModTime()
	}
	snap.Add(folder, sources.Message{Key: key, Flags: sources.HeaderFlags(h), Date: date, Size: fi.Size(),
		Open: sources.FileOpener(path)})
}
