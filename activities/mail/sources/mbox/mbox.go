// Package mbox reads mbox files as a source: the mboxo, mboxrd, mboxcl and mboxcl2 variants,
// with bare-LF and CRLF lines mixed, From_ quoting undone as the variant says, and
// Content-Length honoured where it is consistent.
//
// A file is one folder. A directory is a tree of folders: each mbox file is a folder named by
// its path (Thunderbird's "Name.sbd/" directories hold the children of "Name"), "Inbox" is
// INBOX. Messages are never loaded whole: the listing keeps byte ranges, Open streams them.
package mbox

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cutover/cutover/activities/mail/sources"
)

// Format is an mbox variant (see mbox(5) and "mboxrd" by Rahul Dhesi).
type Format string

const (
	// Auto trusts Content-Length where it points exactly at the next From_ line or the end of
	// the file (then nothing is unquoted, as in mboxcl2) and otherwise reads mboxrd.
	Auto Format = ""
	// MboxO: body lines "From " were written as ">From "; only that one level is undone.
	MboxO Format = "mboxo"
	// MboxRD: every ">*From " body line got one more '>'; one is removed from each.
	MboxRD Format = "mboxrd"
	// MboxCL: mboxo quoting plus a Content-Length header giving the body's length.
	MboxCL Format = "mboxcl"
	// MboxCL2: Content-Length and no quoting at all.
	MboxCL2 Format = "mboxcl2"
)

// ParseFormat accepts the variant names (and "" or "auto").
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(strings.TrimSpace(s))); f {
	case "auto", Auto:
		return Auto, nil
	case MboxO, MboxRD, MboxCL, MboxCL2:
		return f, nil
	}
	return "", fmt.Errorf("unknown mbox format %q (want mboxo, mboxrd, mboxcl, mboxcl2 or auto)", s)
}

// FormatFromName picks the variant from a file name's extension (".mboxrd", ".mboxcl2", ...),
// Auto otherwise.
func FormatFromName(name string) Format {
	if f, err := ParseFormat(strings.TrimPrefix(strings.ToLower(filepath.Ext(name)), ".")); err == nil {
		return f
	}
	return Auto
}

// Open reads path: an mbox file (one folder, INBOX) or a directory tree of them.
func Open(path string, format Format) (*sources.Snapshot, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("mbox %s: %w", path, err)
	}
	snap := &sources.Snapshot{}
	if !fi.IsDir() {
		if format == Auto {
			format = FormatFromName(path)
		}
		if err := ReadFile(snap, path, "INBOX", format); err != nil {
			return nil, err
		}
		snap.Sort()
		return snap, nil
	}
	if err := readDir(snap, path, "", format); err != nil {
		return nil, err
	}
	snap.Sort()
	return snap, nil
}

// readDir adds every mbox file under dir; prefix is the folder name of dir ("" at the top).
func readDir(snap *sources.Snapshot, dir, prefix string, format Format) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("mbox directory %s: %w", dir, err)
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if strings.HasPrefix(e.Name(), ".") {
			snap.Warnings = append(snap.Warnings, fmt.Sprintf("%s: hidden file ignored", p))
			continue
		}
		if e.IsDir() {
			name := strings.TrimSuffix(e.Name(), ".sbd")
			if err := readDir(snap, p, join(prefix, name), format); err != nil {
				return err
			}
			continue
		}
		if !e.Type().IsRegular() {
			return sources.Malformed(p, -1, nil, "not a regular file (%s)", e.Type())
		}
		ext := strings.ToLower(filepath.Ext(e.Name()))
		if ext == ".msf" || ext == ".dat" || ext == ".json" || ext == ".html" {
			snap.Warnings = append(snap.Warnings, fmt.Sprintf("%s: index or metadata file, not mail, ignored", p))
			continue
		}
		ok, err := looksLikeMbox(p)
		if err != nil {
			return err
		}
		if !ok {
			snap.Warnings = append(snap.Warnings, fmt.Sprintf("%s: does not start with a From_ line, not an mbox, ignored", p))
			continue
		}
		name := e.Name()
		for _, x := range []string{".mbox", ".mbx", ".mboxrd", ".mboxo", ".mboxcl", ".mboxcl2"} {
			if strings.HasSuffix(strings.ToLower(name), x) {
				name = name[:len(name)-len(x)]
				break
			}
		}
		folder := join(prefix, name)
		if strings.EqualFold(folder, "INBOX") {
			folder = "INBOX"
		}
		f := format
		if f == Auto {
			f = FormatFromName(e.Name())
		}
		if err := ReadFile(snap, p, folder, f); err != nil {
			return err
		}
	}
	return nil
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "/" + name
}

// looksLikeMbox: empty, or the first non-blank line is a From_ line.
func looksLikeMbox(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("mbox %s: %w", path, err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	for {
		line, err := br.ReadSlice('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			return bytes.HasPrefix(line, []byte("From ")), nil
		}
		if err != nil {
			return true, nil // empty (or blank) file: an empty folder
		}
	}
}

// message is one message found by the scan.
type message struct {
	fromOff    int64 // offset of the From_ line
	start, end int64 // the message's bytes (after the From_ line, before the separator)
	quoted     int64 // lines the variant's unquoting shortens by one byte
	fromDate   time.Time
	fromZone   bool // the From_ date carried a zone
	header     bytes.Buffer
	headerDone bool
	unquote    bool
}

// scanner walks an mbox line by line, keeping offsets; lines longer than its buffer are
// handled as one line (only their start matters).
type scanner struct {
	br   *bufio.Reader
	err  error // a read error other than the end of the file
	off  int64 // offset of the next line
	line []byte
	n    int64 // full length of the current line, terminator included
}

const linePrefix = 4096

func (s *scanner) next() bool {
	s.line = s.line[:0]
	s.n = 0
	for {
		chunk, err := s.br.ReadSlice('\n')
		if len(s.line) < linePrefix {
			s.line = append(s.line, chunk[:min(len(chunk), linePrefix-len(s.line))]...)
		}
		s.n += int64(len(chunk))
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil && err != io.EOF {
			s.err = err
			return false
		}
		if s.n == 0 {
			return false
		}
		s.off += s.n
		return true
	}
}

// blank reports whether the current line is empty (LF or CRLF only).
func (s *scanner) blank() bool { return len(bytes.TrimRight(s.line, "\r\n")) == 0 }

// ReadFile lists one mbox file's messages into folder.
func ReadFile(snap *sources.Snapshot, path, folder string, format Format) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("mbox %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("mbox %s: %w", path, err)
	}
	size := fi.Size()
	snap.EnsureFolder(folder)
	s := &scanner{br: bufio.NewReaderSize(f, 64<<10)}

	var msgs []*message
	var cur *message
	prevBlank := true // the start of the file counts as after a blank line
	var blankStart int64 = -1
	var skipUntil int64 = -1 // Content-Length: no boundary inside the body
	first := true
	for {
		lineOff := s.off
		if !s.next() {
			break
		}
		if first && s.blank() {
			continue // tolerate blank lines before the first From_ line
		}
		isFrom := bytes.HasPrefix(s.line, []byte("From ")) && lineOff >= skipUntil
		if isFrom && cur != nil && cur.end < 0 {
			// Inside a message a "From " line only separates when it parses as a From_ line
			// (sender and date); otherwise it is body text an mboxo writer failed to quote.
			if _, _, ok := parseFromLine(s.line); !ok {
				isFrom = false
			}
		}
		if first {
			if !isFrom {
				return sources.Malformed(path, lineOff, nil, "not an mbox: the first line is not a From_ line")
			}
			first = false
		}
		if isFrom {
			if cur != nil {
				end := lineOff
				if prevBlank && blankStart >= cur.start {
					end = blankStart // the blank line before a From_ line is the separator
				}
				if cur.end < 0 {
					cur.end = end
				}
				msgs = append(msgs, cur)
			}
			cur = &message{fromOff: lineOff, start: s.off, end: -1, unquote: format != MboxCL2}
			cur.fromDate, cur.fromZone, _ = parseFromLine(s.line)
			prevBlank, blankStart = false, -1
			continue
		}
		if quotedFrom(s.line, format) {
			cur.quoted++ // used only when the message turns out to need unquoting
		}
		if lineOff < skipUntil {
			// Body bytes counted by Content-Length.
			prevBlank = false
			if s.off >= skipUntil {
				skipUntil = -1
			}
			continue
		}
		if cur.end >= 0 {
			// After a Content-Length body: only separator blank lines may follow.
			if s.blank() {
				prevBlank, blankStart = true, lineOff
				continue
			}
			return sources.Malformed(path, lineOff, nil, "text after the Content-Length of the message at offset %d", cur.fromOff)
		}
		if !cur.headerDone {
			if s.blank() {
				cur.headerDone = true
				if cl, ok := contentLength(&cur.header); ok && format != MboxO && format != MboxRD {
					bodyEnd := s.off + cl
					if validCL(f, bodyEnd, size) {
						cur.end = bodyEnd
						cur.unquote = format == MboxCL
						if bodyEnd > s.off {
							skipUntil = bodyEnd
						}
					} else if format == MboxCL || format == MboxCL2 {
						return sources.Malformed(path, cur.fromOff, nil, "Content-Length %d of this message does not end at a From_ line or the end of the file", cl)
					}
				} else if format == MboxCL || format == MboxCL2 {
					return sources.Malformed(path, cur.fromOff, nil, "message without a Content-Length in a %s file", format)
				}
			} else if cur.header.Len() < sources.MaxHeaderBytes {
				cur.header.Write(s.line)
				if !bytes.HasSuffix(s.line, []byte("\n")) {
					cur.header.WriteByte('\n')
				}
			}
		}
		if s.blank() {
			prevBlank, blankStart = true, lineOff
		} else {
			prevBlank, blankStart = false, -1
		}
	}
	if s.err != nil {
		return fmt.Errorf("mbox %s at offset %d: %w", path, s.off, s.err)
	}
	if cur != nil {
		if cur.end < 0 {
			cur.end = s.off
			if prevBlank && blankStart >= cur.start {
				cur.end = blankStart // the final separator
			}
		}
		msgs = append(msgs, cur)
	}

	for _, m := range msgs {
		key := "o" + strconv.FormatInt(m.fromOff, 10)
		h, fields, _ := sources.ReadHeader(bytes.NewReader(append(m.header.Bytes(), '\n')))
		if m.end <= m.start || !fields {
			snap.Quarantined = append(snap.Quarantined, sources.Quarantined{Folder: folder, Key: key,
				Reason: fmt.Sprintf("%s at offset %d: message without a header", path, m.fromOff)})
			continue
		}
		var transform func(io.Reader) io.Reader
		if !m.unquote {
			m.quoted = 0
		}
		if m.quoted > 0 {
			rd := format == MboxRD || format == Auto
			transform = func(r io.Reader) io.Reader { return newUnquoter(r, rd) }
		}
		snap.Add(folder, sources.Message{
			Key:   key,
			Flags: sources.HeaderFlags(h),
			Date:  messageDate(m, h, fi.ModTime()),
			Size:  m.end - m.start - m.quoted,
			Open:  sources.SectionOpener(path, m.start, m.end-m.start, transform),
		})
	}
	return nil
}

// messageDate: the From_ line's date is when the mbox's owner received the message. Without a
// zone it is the writer's local time, so a Received date within a day of it (the same event,
// with its zone) is more exact.
func messageDate(m *message, h sources.Header, mtime time.Time) time.Time {
	hd, hok := sources.HeaderDate(h)
	switch {
	case !m.fromDate.IsZero() && m.fromZone:
		return m.fromDate
	case !m.fromDate.IsZero():
		if hok && absDur(hd.Sub(m.fromDate)) <= 26*time.Hour {
			return hd
		}
		return m.fromDate
	case hok:
		return hd
	}
	return mtime
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

func contentLength(h *bytes.Buffer) (int64, bool) {
	hdr, _, _ := sources.ReadHeader(bytes.NewReader(append(h.Bytes(), '\n')))
	v := hdr.Get("content-length")
	if v == "" {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// validCL: the body ends at the end of the file, or at a From_ line, possibly after separator
// blank lines.
func validCL(f *os.File, bodyEnd, size int64) bool {
	if bodyEnd > size {
		return false
	}
	buf := make([]byte, 64)
	n, err := f.ReadAt(buf, bodyEnd)
	if err != nil && !errors.Is(err, io.EOF) {
		return false
	}
	rest := buf[:n]
	skipped := 0
	for {
		switch {
		case bytes.HasPrefix(rest, []byte("\n")):
			rest, skipped = rest[1:], skipped+1
			continue
		case bytes.HasPrefix(rest, []byte("\r\n")):
			rest, skipped = rest[2:], skipped+2
			continue
		}
		break
	}
	if len(rest) == 0 {
		return bodyEnd+int64(skipped) == size
	}
	return bytes.HasPrefix(rest, []byte("From "))
}

// quotedFrom reports whether unquoting shortens line: ">+From " for mboxrd (and Auto),
// exactly ">From " for mboxo and mboxcl.
func quotedFrom(line []byte, format Format) bool {
	if len(line) == 0 || line[0] != '>' {
		return false
	}
	i := 1
	if format == MboxRD || format == Auto {
		for i < len(line) && line[i] == '>' {
			i++
		}
	}
	return bytes.HasPrefix(line[i:], []byte("From "))
}

// unquoter removes one '>' from quoted From_ lines as it streams.
type unquoter struct {
	br  *bufio.Reader
	rd  bool
	buf []byte
	bol bool // at the beginning of a line
	err error
}

func newUnquoter(r io.Reader, rd bool) io.Reader {
	return &unquoter{br: bufio.NewReaderSize(r, 32<<10), rd: rd, bol: true}
}

func (u *unquoter) Read(p []byte) (int, error) {
	for len(u.buf) == 0 {
		if u.err != nil {
			return 0, u.err
		}
		chunk, err := u.br.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			u.err = err
		}
		if u.bol && len(chunk) > 0 && chunk[0] == '>' {
			// Peeking is enough: a quoted From_ line's prefix always fits the buffer.
			format := MboxO
			if u.rd {
				format = MboxRD
			}
			if quotedFrom(chunk, format) {
				chunk = chunk[1:]
			}
		}
		u.bol = err == nil
		u.buf = append(u.buf[:0], chunk...)
	}
	n := copy(p, u.buf)
	u.buf = u.buf[n:]
	return n, nil
}

// parseFromLine parses "From <sender> <date>" and reports whether it is a From_ line; the
// sender may be quoted ("From "Outlook Team" Sun Apr 29 ...", as readpst writes).
func parseFromLine(line []byte) (time.Time, bool, bool) {
	s := strings.TrimRight(string(line), "\r\n")
	s = strings.TrimPrefix(s, "From ")
	s = strings.TrimLeft(s, " ")
	if strings.HasPrefix(s, `"`) {
		j := strings.IndexByte(s[1:], '"')
		if j < 0 {
			return time.Time{}, false, false
		}
		s = s[j+2:]
	} else {
		i := strings.IndexByte(s, ' ')
		if i < 0 {
			return time.Time{}, false, false
		}
		s = s[i:]
	}
	fields := strings.Fields(s)
	if len(fields) < 4 {
		return time.Time{}, false, false
	}
	// "remote from host" trails some UUCP-era From_ lines.
	if i := indexOf(fields, "remote"); i > 0 {
		fields = fields[:i]
	}
	d := strings.Join(fields, " ")
	for _, l := range []struct {
		layout string
		zone   bool
	}{
		{"Mon Jan 2 15:04:05 2006", false},
		{"Mon Jan 2 15:04:05 -0700 2006", true},
		{"Mon Jan 2 15:04:05 2006 -0700", true},
		{"Mon Jan 2 15:04:05 MST 2006", false},
		{"Mon Jan 2 15:04 2006", false},
		{"Mon, 2 Jan 2006 15:04:05 -0700", true},
		{"Mon Jan 2 15:04:05.000000 2006", false},
	} {
		if t, err := time.Parse(l.layout, d); err == nil {
			return t, l.zone, true
		}
	}
	return time.Time{}, false, false
}

func indexOf(ss []string, s string) int {
	for i, x := range ss {
		if x == s {
			return i
		}
	}
	return -1
}
