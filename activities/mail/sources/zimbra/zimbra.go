// Package zimbra reads a Zimbra mailbox export, the tarball that Zimbra's REST interface
// returns for "?fmt=tgz" (what `zmmailbox getRestURL "//?fmt=tgz"` saves), as a source.
//
// Each item is a "<folder>/<id>-<subject>.eml" entry preceded by a ".meta" entry holding the
// item's JSON metadata (ItemData: type, folder Path, date in seconds, FlagStr, unread count,
// TagNames). Zimbra splits big folders into batches of 500 as "Name!1/", "Name!2/"...; the
// folder comes from the metadata's Path, so they join again (without metadata the "!N" suffix
// is stripped from the directory). Zimbra flags map to IMAP: u = not \Seen, r = \Answered,
// f = \Flagged, d = \Draft, x = \Deleted, w = $Forwarded; tags become keywords. Contacts,
// appointments, tasks and documents are not mail: they are counted in the warnings.
//
// The export is fetched over HTTPS with the vault's credentials (Fetch) or read from a file.
package zimbra

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cutover/cutover/activities/mail/sources"
)

// Zimbra item types (MailItem.Type bytes) an export holds.
const (
	typeFolder  = 1
	typeMessage = 5
)

var typeNames = map[int]string{2: "search folder", 3: "tag", 6: "contact", 8: "document", 9: "note",
	11: "appointment", 13: "mountpoint", 14: "wiki page", 15: "task", 16: "chat", 17: "comment", 18: "link"}

// Meta is the part of Zimbra's ItemData an import needs.
type Meta struct {
	ID       int     `json:"id"`
	Type     int     `json:"type"`
	FolderID int     `json:"folder_id"`
	Date     int64   `json:"date"` // seconds (milliseconds in some versions; told apart by size)
	Size     int64   `json:"size"`
	Unread   int     `json:"unread"`
	FlagStr  string  `json:"FlagStr"`
	Path     string  `json:"Path"`
	TagNames string  `json:"TagNames"`
	TagStr   string  `json:"TagStr"`
	Ver      float64 `json:"Ver"`
}

// Time is the item's date.
func (m Meta) Time() time.Time {
	if m.Date > 100_000_000_000 { // beyond year 5138 in seconds: milliseconds
		return time.UnixMilli(m.Date).UTC()
	}
	return time.Unix(m.Date, 0).UTC()
}

// Flags maps Zimbra's flag characters and tags onto IMAP flags and keywords.
func (m Meta) Flags() []string {
	var flags []string
	if !strings.ContainsRune(m.FlagStr, 'u') && m.Unread == 0 {
		flags = append(flags, `\Seen`)
	}
	for _, c := range m.FlagStr {
		switch c {
		case 'r':
			flags = append(flags, `\Answered`)
		case 'f':
			flags = append(flags, `\Flagged`)
		case 'd':
			flags = append(flags, `\Draft`)
		case 'x':
			flags = append(flags, `\Deleted`)
		case 'w':
			flags = append(flags, "$Forwarded")
		}
	}
	tags := m.TagNames
	if tags == "" && !digitsAndCommas(m.TagStr) {
		tags = m.TagStr // 6.0.6 format ":name:name"; older numeric ids carry no names
	}
	for _, t := range TagNames(tags) {
		if k := sources.Keyword(t); k != "" && !slices.Contains(flags, k) {
			flags = append(flags, k)
		}
	}
	return flags
}

func digitsAndCommas(s string) bool {
	for _, c := range s {
		if (c < '0' || c > '9') && c != ',' && c != '-' {
			return false
		}
	}
	return true
}

// TagNames splits Zimbra's colon-separated tag list ('\' escapes ':' and '\').
func TagNames(s string) []string {
	var out []string
	var cur strings.Builder
	esc := false
	for _, c := range s + ":" {
		switch {
		case esc:
			cur.WriteRune(c)
			esc = false
		case c == '\\':
			esc = true
		case c == ':':
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(c)
		}
	}
	return out
}

// FolderName turns a Zimbra path ("/Inbox/Sub") into a folder name ("INBOX/Sub").
func FolderName(p string) string {
	p = strings.Trim(p, "/")
	if p == "" {
		return "INBOX"
	}
	parts := strings.Split(p, "/")
	if strings.EqualFold(parts[0], "Inbox") {
		parts[0] = "INBOX"
	}
	return strings.ToValidUTF8(strings.Join(parts, "/"), "_")
}

var batchSuffix = regexp.MustCompile(`!\d+$`)

// entryDir is an entry's directory with the "!N" batch suffix removed ("Inbox/Sub").
func entryDir(entry string) string {
	dir := strings.Trim(path.Dir(path.Clean("/"+entry)), "/")
	return batchSuffix.ReplaceAllString(dir, "")
}

// dirFolder is the folder of an entry without metadata.
func dirFolder(entry string) string { return FolderName(entryDir(entry)) }

// illegalFolderChars are what Zimbra replaces with '_' in the archive's directory names.
var illegalFolderChars = regexp.MustCompile(`[:*?"<>|\x00]`)

// messageFolder finds a message's folder. Zimbra versions write a message's Path as
// "/Folder/" or as "/Folder/<subject>" (and a subject may hold '/'), so the folder is the
// prefix of Path that, sanitised as Zimbra does for directory names, is the entry's directory;
// Path keeps the exact spelling the directory name lost.
func messageFolder(m *Meta, entry string) string {
	dir := entryDir(entry)
	p := strings.TrimPrefix(m.Path, "/")
	if strings.HasSuffix(p, "/") && illegalFolderChars.ReplaceAllString(strings.TrimSuffix(p, "/"), "_") == dir {
		return FolderName(p)
	}
	for i := len(p); i > 0; i-- {
		if i < len(p) && p[i] != '/' {
			continue
		}
		if illegalFolderChars.ReplaceAllString(p[:i], "_") == dir {
			return FolderName(p[:i])
		}
	}
	return FolderName(dir)
}

// nonMailRoots are Zimbra's system folders for other item kinds; their sub-folders are not mail.
var nonMailRoots = []string{"Contacts", "Emailed Contacts", "Calendar", "Tasks", "Briefcase", "Chats", "Notebook"}

func mailFolder(m Meta) bool {
	p := strings.Trim(m.Path, "/")
	if p == "" || m.ID == 1 || m.ID == 11 { // ROOT, USER_ROOT
		return false
	}
	top, _, _ := strings.Cut(p, "/")
	return !slices.Contains(nonMailRoots, top)
}

// record is one message of the index written next to the unpacked messages.
type record struct {
	Folder string    `json:"folder"`
	Key    string    `json:"key"`
	File   string    `json:"file"`
	Size   int64     `json:"size"`
	Date   time.Time `json:"date"`
	Flags  []string  `json:"flags,omitempty"`
}

type index struct {
	Messages    []record              `json:"messages"`
	Folders     []string              `json:"folders"`
	Quarantined []sources.Quarantined `json:"quarantined"`
	Warnings    []string              `json:"warnings"`
}

const indexFile = "zimbra-index.json"

// Open unpacks the export at path once under workRoot and lists it.
func Open(path, workRoot string, lim sources.Limits) (*sources.Snapshot, error) {
	dir, _, err := sources.Prepared(workRoot, "zimbra", path, func(dir string) error {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("zimbra export %s: %w", path, err)
		}
		defer f.Close()
		idx, err := unpack(f, path, dir, lim)
		if err != nil {
			return err
		}
		b, err := json.Marshal(idx)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, indexFile), b, 0o600)
	})
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(dir, indexFile))
	if err != nil {
		return nil, fmt.Errorf("zimbra export %s index: %w", path, err)
	}
	var idx index
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("zimbra export %s index: %w", path, err)
	}
	snap := &sources.Snapshot{Quarantined: idx.Quarantined, Warnings: idx.Warnings}
	for _, f := range idx.Folders {
		snap.EnsureFolder(f)
	}
	for _, r := range idx.Messages {
		snap.Add(r.Folder, sources.Message{Key: r.Key, Flags: r.Flags, Date: r.Date, Size: r.Size,
			Open: sources.FileOpener(filepath.Join(dir, r.File))})
	}
	snap.Sort()
	return snap, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// unpack streams the export: metadata entries are held until their item's entry arrives;
// message bodies are written to numbered files in dir (never under their archive names).
func unpack(r io.Reader, name, dir string, lim sources.Limits) (*index, error) {
	if lim.MaxEntries <= 0 {
		lim.MaxEntries = sources.DefaultMaxEntries
	}
	if lim.MaxEntryBytes <= 0 {
		lim.MaxEntryBytes = sources.DefaultMaxEntryBytes
	}
	if lim.MaxTotalBytes <= 0 {
		lim.MaxTotalBytes = sources.DefaultMaxTotalBytes
	}
	br := bufio.NewReaderSize(r, 64<<10)
	var stream io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, sources.Malformed(name, 0, err, "not a valid gzip stream")
		}
		defer gz.Close()
		stream = gz
	}
	cr := &countingReader{r: stream}
	tr := tar.NewReader(cr)
	idx := &index{}
	folders := map[string]bool{}
	skipped := map[string]int{}
	var pending *Meta
	var pendingEntry string
	var pendingOff int64
	var total int64
	entries, n := 0, 0

	for {
		start := cr.n
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, sources.Malformed(name, start, err, "corrupt tar stream (offset in the uncompressed stream)")
		}
		entries++
		if entries > lim.MaxEntries {
			return nil, &sources.FormatError{File: name, Entry: h.Name, Offset: start, Msg: fmt.Sprintf("more than %d entries", lim.MaxEntries), Err: sources.ErrLimit}
		}
		if _, _, err := sources.SafeJoin(dir, h.Name); err != nil {
			return nil, &sources.FormatError{File: name, Entry: h.Name, Offset: start, Msg: "unsafe entry name", Err: err}
		}
		switch h.Typeflag {
		case tar.TypeDir:
			continue
		case tar.TypeReg: // the reader reports the old TypeRegA as TypeReg
		case tar.TypeSymlink, tar.TypeLink:
			return nil, &sources.FormatError{File: name, Entry: h.Name, Offset: start, Msg: "links are not accepted in a Zimbra export"}
		default:
			return nil, &sources.FormatError{File: name, Entry: h.Name, Offset: start, Msg: fmt.Sprintf("entry type %q is not a file", h.Typeflag)}
		}
		if h.Size > lim.MaxEntryBytes {
			return nil, &sources.FormatError{File: name, Entry: h.Name, Offset: start, Msg: fmt.Sprintf("entry of %d bytes exceeds the %d-byte limit", h.Size, lim.MaxEntryBytes), Err: sources.ErrLimit}
		}
		if total += h.Size; total > lim.MaxTotalBytes {
			return nil, &sources.FormatError{File: name, Entry: h.Name, Offset: start, Msg: fmt.Sprintf("export unpacks to more than %d bytes", lim.MaxTotalBytes), Err: sources.ErrLimit}
		}
		if strings.HasPrefix(h.Name, "__MACOSX/") {
			continue
		}

		// A metadata entry without its item (Zimbra writes folders' metadata alone).
		flushMeta := func() {
			if pending != nil {
				if pending.Type == typeFolder && mailFolder(*pending) {
					folders[FolderName(pending.Path)] = true
				} else if pending.Type == typeMessage {
					idx.Quarantined = append(idx.Quarantined, sources.Quarantined{Folder: messageFolder(pending, pendingEntry),
						Key: "z" + strconv.Itoa(pending.ID), Reason: fmt.Sprintf("%s[%s] at offset %d: metadata of message %d without its content", name, pendingEntry, pendingOff, pending.ID)})
				}
				pending = nil
			}
		}

		switch {
		case strings.HasSuffix(h.Name, ".meta"):
			flushMeta()
			b, err := io.ReadAll(io.LimitReader(tr, 16<<20))
			if err != nil {
				return nil, sources.Malformed(name, start, err, "truncated metadata entry %s", h.Name)
			}
			var m Meta
			if err := json.Unmarshal(b, &m); err != nil {
				// The item after it cannot be placed or flagged faithfully: quarantine it.
				idx.Quarantined = append(idx.Quarantined, sources.Quarantined{Folder: dirFolder(h.Name),
					Key: strings.TrimSuffix(h.Name, ".meta"), Reason: fmt.Sprintf("%s[%s] at offset %d: unreadable metadata: %v", name, h.Name, start, err)})
				pending = &Meta{Type: -1}
			} else {
				pending = &m
			}
			pendingEntry, pendingOff = h.Name, start
			continue
		case strings.HasSuffix(h.Name, ".err"):
			// Zimbra's marker that the previous item's blob had the wrong size.
			idx.Quarantined = append(idx.Quarantined, sources.Quarantined{Folder: dirFolder(h.Name),
				Key: strings.TrimSuffix(h.Name, ".err"), Reason: fmt.Sprintf("%s[%s] at offset %d: Zimbra reports the item's content had the wrong size", name, h.Name, start)})
			continue
		}

		m := pending
		pending = nil
		if m != nil && m.Type == -1 {
			continue // quarantined above with its unreadable metadata
		}
		isMessage := m != nil && m.Type == typeMessage || m == nil && strings.EqualFold(path.Ext(h.Name), ".eml")
		if !isMessage {
			kind := "file " + path.Ext(h.Name)
			if m != nil {
				kind = typeNames[m.Type]
				if kind == "" {
					kind = "item type " + strconv.Itoa(m.Type)
				}
			}
			skipped[kind]++
			continue
		}
		n++
		file := fmt.Sprintf("m%07d.eml", n)
		dst := filepath.Join(dir, file)
		f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, fmt.Errorf("zimbra export %s: %w", name, err)
		}
		size, err := io.Copy(f, io.LimitReader(tr, lim.MaxEntryBytes+1))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, gzip.ErrChecksum) {
				return nil, &sources.FormatError{File: name, Entry: h.Name, Offset: start, Msg: "truncated or corrupt entry data", Err: err}
			}
			return nil, fmt.Errorf("zimbra export %s[%s]: %w", name, h.Name, err)
		}
		rec := record{File: file, Size: size}
		if m != nil {
			rec.Folder = messageFolder(m, h.Name)
			rec.Key = "z" + strconv.Itoa(m.ID)
			rec.Date = m.Time()
			rec.Flags = m.Flags()
		} else {
			rec.Folder = dirFolder(h.Name)
			rec.Key = h.Name
			rec.Date = h.ModTime
			if hd, fields, _ := sources.ReadHeaderFile(dst); fields {
				if d, ok := sources.HeaderDate(hd); ok {
					rec.Date = d
				}
				rec.Flags = sources.HeaderFlags(hd)
			}
		}
		if size == 0 {
			idx.Quarantined = append(idx.Quarantined, sources.Quarantined{Folder: rec.Folder, Key: rec.Key,
				Reason: fmt.Sprintf("%s[%s] at offset %d: empty message", name, h.Name, start)})
			continue
		}
		idx.Messages = append(idx.Messages, rec)
	}
	if pending != nil && pending.Type == typeFolder && mailFolder(*pending) {
		folders[FolderName(pending.Path)] = true
	} else if pending != nil && pending.Type == typeMessage {
		idx.Quarantined = append(idx.Quarantined, sources.Quarantined{Folder: messageFolder(pending, pendingEntry),
			Key: "z" + strconv.Itoa(pending.ID), Reason: fmt.Sprintf("%s[%s] at offset %d: metadata of message %d without its content", name, pendingEntry, pendingOff, pending.ID)})
	}
	for f := range folders {
		idx.Folders = append(idx.Folders, f)
	}
	sort.Strings(idx.Folders)
	kinds := make([]string, 0, len(skipped))
	for k := range skipped {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		idx.Warnings = append(idx.Warnings, fmt.Sprintf("%s: %d %s item(s) are not mail and were not imported", name, skipped[k], k))
	}
	return idx, nil
}
