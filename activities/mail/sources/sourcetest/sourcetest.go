// Package sourcetest generates real source files for tests — mbox files of every variant, eml
// trees, Maildirs, tarballs, zips and Zimbra exports — from one corpus full of the cases that
// break importers: From_ lines in bodies, CRLF/LF mixes, non-ASCII folder names, broken MIME,
// 8-bit headers, messages without Message-ID, exact duplicates, every flag and a keyword.
package sourcetest

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cutover/cutover/activities/mail/sources"
)

// Message is one corpus message.
type Message struct {
	Folder string    // UTF-8, "/" between levels; "INBOX" is the inbox
	Flags  []string  // IMAP flags as the source must yield them
	Date   time.Time // INTERNALDATE (second precision)
	Raw    []byte
}

// Keyword is the corpus's IMAP keyword.
const Keyword = "$Label1"

func text(id, subject string, date time.Time, body string, crlf bool) []byte {
	nl := "\n"
	if crlf {
		nl = "\r\n"
	}
	var b strings.Builder
	b.WriteString("From: Sender <sender@example.com>" + nl + "To: user@example.org" + nl)
	b.WriteString("Subject: " + subject + nl + "Date: " + date.Format(time.RFC1123Z) + nl)
	if id != "" {
		b.WriteString("Message-ID: <" + id + ">" + nl)
	}
	b.WriteString("MIME-Version: 1.0" + nl + "Content-Type: text/plain; charset=utf-8" + nl + nl)
	b.WriteString(strings.ReplaceAll(body, "\n", nl))
	return []byte(b.String())
}

// Corpus returns the nasty corpus: 24 messages in 6 folders (three with non-ASCII names, one
// nested), dates from 1999 to 2024.
func Corpus() []Message {
	var msgs []Message
	flagSets := [][]string{nil, {`\Seen`}, {`\Answered`, `\Seen`}, {`\Flagged`}, {`\Draft`}, {Keyword, `\Seen`}}
	folderNames := []string{"INBOX", "Sent", "Entwürfe", "Ñoño/Año", "Projects", "日本語"}
	for i := range 18 {
		d := time.Date(1999+i, time.Month(1+i%12), 1+i, i%24, 7, 9, 0, time.UTC)
		body := fmt.Sprintf("Message %d.\n\nFrom here on the body has a From_ line.\nFrom someone@example.com Tue Jan  2 03:04:05 2001\n>From already quoted\n>>From twice\nend\n", i)
		msgs = append(msgs, Message{Folder: folderNames[i%len(folderNames)], Flags: flagSets[i%len(flagSets)], Date: d,
			Raw: text(fmt.Sprintf("corpus-%d@example.com", i), fmt.Sprintf("Corpus %d", i), d, body, i%2 == 0)})
	}
	d := time.Date(2011, 5, 6, 7, 8, 9, 0, time.UTC)
	dup := text("dup@example.com", "Exact duplicate", d, "twice\n", true)
	msgs = append(msgs,
		// Exact duplicates: both must arrive.
		Message{Folder: "INBOX", Flags: []string{`\Seen`}, Date: d, Raw: dup},
		Message{Folder: "INBOX", Flags: []string{`\Seen`}, Date: d, Raw: dup},
		// No Message-ID.
		Message{Folder: "Projects", Date: d.Add(time.Hour), Raw: text("", "No Message-ID", d.Add(time.Hour), "no id\n", false)},
		// CRLF and LF mixed in one message, 8-bit header.
		Message{Folder: "INBOX", Flags: []string{`\Deleted`, `\Seen`}, Date: d.Add(2 * time.Hour),
			Raw: []byte("From: Jürgen Müller <jm@example.de>\r\nSubject: Grüße – mixed endings\nDate: " + d.Add(2*time.Hour).Format(time.RFC1123Z) +
				"\r\nMessage-ID: <mixed@example.com>\n\r\nline one CRLF\r\nline two LF\nFrom the middle\r\n")},
		// Broken MIME: a multipart that never closes and bogus base64.
		Message{Folder: "Entwürfe", Date: d.Add(3 * time.Hour), Raw: []byte("From: broken@example.com\nSubject: Broken MIME\nMessage-ID: <broken@example.com>\nDate: " +
			d.Add(3*time.Hour).Format(time.RFC1123Z) + "\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"nope\"\n\n--nope\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n!!!not base64!!!\n")},
		// Every flag.
		Message{Folder: "Sent", Flags: []string{Keyword, `\Answered`, `\Deleted`, `\Draft`, `\Flagged`, `\Seen`}, Date: d.Add(4 * time.Hour),
			Raw: text("all-flags@example.com", "All flags", d.Add(4*time.Hour), "all\n", true)},
	)
	for i := range msgs {
		slices.Sort(msgs[i].Flags)
	}
	return msgs
}

// Folders lists the corpus's folder names.
func Folders(msgs []Message) []string {
	var out []string
	for _, m := range msgs {
		if !slices.Contains(out, m.Folder) {
			out = append(out, m.Folder)
		}
	}
	return out
}

// ByFolder groups messages by folder, keeping their order.
func ByFolder(msgs []Message) map[string][]Message {
	out := map[string][]Message{}
	for _, m := range msgs {
		out[m.Folder] = append(out[m.Folder], m)
	}
	return out
}

// statusHeaders adds the Status/X-Status/X-Keywords headers mbox writers (mutt, Dovecot) use
// for flags.
func statusHeaders(m Message) []byte {
	var status, xstatus string
	var kws []string
	for _, f := range m.Flags {
		switch f {
		case `\Seen`:
			status = "RO"
		case `\Answered`:
			xstatus += "A"
		case `\Flagged`:
			xstatus += "F"
		case `\Draft`:
			xstatus += "T"
		case `\Deleted`:
			xstatus += "D"
		default:
			kws = append(kws, f)
		}
	}
	nl := "\n"
	if bytes.Contains(m.Raw[:bytes.IndexByte(m.Raw, '\n')+1], []byte("\r\n")) {
		nl = "\r\n"
	}
	var h string
	if status != "" {
		h += "Status: " + status + nl
	}
	if xstatus != "" {
		h += "X-Status: " + xstatus + nl
	}
	if len(kws) > 0 {
		h += "X-Keywords: " + strings.Join(kws, " ") + nl
	}
	return append([]byte(h), m.Raw...)
}

// WithFlagHeaders is the message as an mbox or eml writer stores it: flags as headers.
func WithFlagHeaders(m Message) []byte { return statusHeaders(m) }

var quoteRD = regexp.MustCompile(`(?m)^(>*From )`)

// MboxFormat is an mbox variant to write.
type MboxFormat string

const (
	MboxRD  MboxFormat = "mboxrd"
	MboxO   MboxFormat = "mboxo"
	MboxCL2 MboxFormat = "mboxcl2"
)

// WriteMbox writes msgs (one folder) as an mbox file of the given variant. mboxo cannot hold
// a body line ">From " faithfully; tests of it use messages without one.
func WriteMbox(path string, msgs []Message, format MboxFormat) error {
	var b bytes.Buffer
	for _, m := range msgs {
		raw := statusHeaders(m)
		fmt.Fprintf(&b, "From sender@example.com %s\n", m.Date.UTC().Format("Mon Jan _2 15:04:05 2006"))
		switch format {
		case MboxRD:
			raw = quoteRD.ReplaceAll(raw, []byte(">$1"))
		case MboxO:
			raw = regexp.MustCompile(`(?m)^From `).ReplaceAll(raw, []byte(">From "))
		case MboxCL2:
			raw = addContentLength(raw)
		}
		b.Write(raw)
		if !bytes.HasSuffix(raw, []byte("\n")) {
			b.WriteByte('\n')
		}
		b.WriteByte('\n')
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o600)
}

// addContentLength inserts mboxcl2's Content-Length field before the blank line ending the
// header ("\n" then "\n" or "\r\n", whatever the header's line endings).
func addContentLength(raw []byte) []byte {
	k := 0
	for ; k < len(raw)-1; k++ {
		if raw[k] == '\n' && (raw[k+1] == '\n' || bytes.HasPrefix(raw[k+1:], []byte("\r\n"))) {
			break
		}
	}
	blank := 1
	if raw[k+1] == '\r' {
		blank = 2
	}
	nl := "\n"
	if k > 0 && raw[k-1] == '\r' {
		nl = "\r\n"
	}
	body := raw[k+1+blank:]
	return slices.Concat(raw[:k+1], []byte("Content-Length: "+strconv.Itoa(len(body))+nl), raw[k+1:k+1+blank], body)
}

// WithContentLength is the message as an mboxcl2 writer stores it.
func WithContentLength(m Message) []byte { return addContentLength(statusHeaders(m)) }

// WriteMboxTree writes one mbox file per folder under dir (Thunderbird layout: "Parent.sbd/").
func WriteMboxTree(dir string, msgs []Message, format MboxFormat) error {
	for folder, ms := range ByFolder(msgs) {
		parts := strings.Split(folder, "/")
		for i := range len(parts) - 1 {
			parts[i] += ".sbd"
		}
		if folder == "INBOX" {
			parts = []string{"Inbox"}
		}
		if err := WriteMbox(filepath.Join(dir, filepath.Join(parts...)), ms, format); err != nil {
			return err
		}
	}
	return nil
}

// WriteEMLTree writes one .eml file per message under dir/<folder>/ ("INBOX" at the root's
// "INBOX" directory), flags as headers, file mtimes at the message dates.
func WriteEMLTree(dir string, msgs []Message) error {
	n := map[string]int{}
	for _, m := range msgs {
		n[m.Folder]++
		p := filepath.Join(dir, filepath.FromSlash(m.Folder), fmt.Sprintf("%03d.eml", n[m.Folder]))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(p, statusHeaders(m), 0o600); err != nil {
			return err
		}
		if err := os.Chtimes(p, m.Date, m.Date); err != nil {
			return err
		}
	}
	return nil
}

// WriteMaildir writes msgs as a Dovecot Maildir++ under dir: folders ".A.B" in modified UTF-7,
// flags in the info suffix, the keyword as letter 'a' through dovecot-keywords, mtimes at the
// message dates.
func WriteMaildir(dir string, msgs []Message) error {
	letters := map[string]string{`\Draft`: "D", `\Flagged`: "F", `\Answered`: "R", `\Seen`: "S", `\Deleted`: "T", Keyword: "a"}
	for i, m := range msgs {
		fdir := dir
		if m.Folder != "INBOX" {
			parts := strings.Split(m.Folder, "/")
			for j, p := range parts {
				parts[j] = encodeMUTF7(p)
			}
			fdir = filepath.Join(dir, "."+strings.Join(parts, "."))
		}
		for _, sub := range []string{"cur", "new", "tmp"} {
			if err := os.MkdirAll(filepath.Join(fdir, sub), 0o700); err != nil {
				return err
			}
		}
		if err := os.WriteFile(filepath.Join(fdir, "dovecot-keywords"), []byte("0 "+Keyword+"\n"), 0o600); err != nil {
			return err
		}
		var info []string
		for _, f := range m.Flags {
			info = append(info, letters[f])
		}
		// Maildir wants the letters in ASCII order: upper-case flags, then keywords.
		slices.Sort(info)
		name := fmt.Sprintf("%d.M%dP1.corpus,S=%d:2,%s", 1_600_000_000+i, i, len(m.Raw), strings.Join(info, ""))
		p := filepath.Join(fdir, "cur", name)
		if err := os.WriteFile(p, m.Raw, 0o600); err != nil {
			return err
		}
		if err := os.Chtimes(p, m.Date, m.Date); err != nil {
			return err
		}
	}
	return nil
}

// Tar packs dir into a gzip-compressed tarball at path (paths relative to dir, prefixed by
// prefix), keeping mtimes.
func Tar(path, dir, prefix string) error {
	var b bytes.Buffer
	gz := gzip.NewWriter(&b)
	tw := tar.NewWriter(gz)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		h, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(filepath.Join(prefix, rel))
		if d.IsDir() {
			h.Name += "/"
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	if err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := gz.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o600)
}

// Zip packs dir into a zip file at path.
func Zip(path, dir string) error {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		h, err := zip.FileInfoHeader(fi)
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(rel)
		h.Method = zip.Deflate
		w, err := zw.CreateHeader(h)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	})
	if err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o600)
}

// TarEntry is one raw entry for hostile tarballs.
type TarEntry struct {
	Name     string
	Type     byte
	Linkname string
	Data     []byte
	Size     int64 // declared size when Data is nil (a bomb), else len(Data)
}

// RawTar writes entries as given (no sanitising), gzip-compressed; a declared size without
// data streams zeros, so a "bomb" is small on disk.
func RawTar(path string, entries []TarEntry) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		size := int64(len(e.Data))
		if e.Data == nil {
			size = e.Size
		}
		typ := e.Type
		if typ == 0 {
			typ = tar.TypeReg
		}
		h := &tar.Header{Name: e.Name, Typeflag: typ, Linkname: e.Linkname, Size: size, Mode: 0o600, ModTime: time.Unix(1_600_000_000, 0)}
		if typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if typ == tar.TypeReg {
			if e.Data != nil {
				if _, err := tw.Write(e.Data); err != nil {
					return err
				}
			} else if _, err := io.CopyN(tw, zeros{}, size); err != nil {
				return err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// ZimbraOptions shape a generated Zimbra export.
type ZimbraOptions struct {
	Batch int  // messages per "Name!N" directory (Zimbra uses 500); 0 = 500
	Tags  bool // carry the keyword as a Zimbra tag instead of dropping it
	// PathWithSubject writes messages' Path as "/Folder/<subject>" (some Zimbra versions)
	// instead of "/Folder/".
	PathWithSubject bool
}

// WriteZimbra writes msgs as Zimbra's "?fmt=tgz" export: folder items, then for each message
// a ".meta" JSON entry followed by its ".eml", folders split into "Name!N" batches.
func WriteZimbra(path string, msgs []Message, o ZimbraOptions) error {
	if o.Batch == 0 {
		o.Batch = 500
	}
	var b bytes.Buffer
	gz := gzip.NewWriter(&b)
	tw := tar.NewWriter(gz)
	add := func(name string, data []byte, mtime time.Time) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Size: int64(len(data)), Mode: 0o644, ModTime: mtime}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	zpath := func(folder string) string {
		if folder == "INBOX" {
			return "/Inbox"
		}
		return "/" + folder
	}
	// Folder items (metadata only), as Zimbra lists them first.
	ids := map[string]int{}
	for i, f := range Folders(msgs) {
		ids[f] = 257 + i
		meta, _ := json.Marshal(map[string]any{"id": ids[f], "type": 1, "parent_id": 1, "folder_id": 1, "date": 0,
			"size": 0, "unread": 0, "flags": 0, "imap_id": ids[f], "mod_metadata": 1, "change_date": 0, "mod_content": 1,
			"name": f, "Path": zpath(f), "Ver": 10})
		if err := add(strings.TrimPrefix(zpath(f), "/")+".meta", meta, time.Unix(0, 0)); err != nil {
			return err
		}
	}
	// A contact and an appointment: items that are not mail.
	for _, x := range []struct {
		typ  int
		name string
	}{{6, "Contacts/0000000400-Jane.vcf"}, {11, "Calendar/0000000401-Meeting.appt"}} {
		meta, _ := json.Marshal(map[string]any{"id": 400 + x.typ, "type": x.typ, "Path": "/" + strings.Split(x.name, "/")[0], "Ver": 10})
		if err := add(x.name+".meta", meta, time.Unix(0, 0)); err != nil {
			return err
		}
		if err := add(x.name, []byte("BEGIN:VCARD\r\nEND:VCARD\r\n"), time.Unix(0, 0)); err != nil {
			return err
		}
	}
	count := map[string]int{}
	for i, m := range msgs {
		id := 1000 + i
		count[m.Folder]++
		dir := strings.TrimPrefix(zpath(m.Folder), "/")
		if n := count[m.Folder] / o.Batch; n > 0 {
			dir += "!" + strconv.Itoa(n)
		}
		var fl, tags string
		unread := 1
		for _, f := range m.Flags {
			switch f {
			case `\Seen`:
				unread = 0
			case `\Answered`:
				fl += "r"
			case `\Flagged`:
				fl += "f"
			case `\Draft`:
				fl += "d"
			case `\Deleted`:
				fl += "x"
			case Keyword:
				if o.Tags {
					tags = Keyword
				}
			}
		}
		if unread == 1 {
			fl += "u"
		}
		p := zpath(m.Folder) + "/"
		if o.PathWithSubject {
			p += "Subject / with slash " + strconv.Itoa(i)
		}
		meta, _ := json.Marshal(map[string]any{"id": id, "type": 5, "parent_id": -id, "folder_id": ids[m.Folder],
			"date": m.Date.Unix(), "size": len(m.Raw), "unread": unread, "flags": 0, "FlagStr": fl, "TagNames": tags,
			"Path": p, "imap_id": id, "mod_metadata": 1, "change_date": m.Date.Unix(), "mod_content": 1, "Ver": 10})
		name := fmt.Sprintf("%s/%010d-Corpus %d.eml", dir, id, i)
		if err := add(name+".meta", meta, m.Date); err != nil {
			return err
		}
		if err := add(name, m.Raw, m.Date); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := gz.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o600)
}

// Check compares a source listing with the corpus it was made from, message by message: the
// same folders, and per folder the same messages in order with the same bytes (want maps a
// corpus message to the bytes the source must yield), flags and date.
func Check(snap *sources.Snapshot, msgs []Message, want func(Message) []byte, checkFlags bool) error {
	by := ByFolder(msgs)
	for _, f := range snap.Folders {
		if _, ok := by[f.Name]; !ok && len(f.Messages) > 0 {
			return fmt.Errorf("unexpected folder %q with %d messages", f.Name, len(f.Messages))
		}
	}
	for folder, ms := range by {
		f := snap.Folder(folder)
		if f == nil {
			return fmt.Errorf("folder %q missing", folder)
		}
		if len(f.Messages) != len(ms) {
			return fmt.Errorf("folder %q: %d messages, want %d", folder, len(f.Messages), len(ms))
		}
		// Order within a folder follows the source's keys; match by content instead.
		used := make([]bool, len(ms))
		for _, got := range f.Messages {
			rc, err := got.Open()
			if err != nil {
				return err
			}
			data, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				return err
			}
			if int64(len(data)) != got.Size {
				return fmt.Errorf("folder %q message %s: Size %d, %d bytes read", folder, got.Key, got.Size, len(data))
			}
			found := false
			for i, m := range ms {
				if used[i] || !bytes.Equal(data, want(m)) {
					continue
				}
				flags := slices.Clone(got.Flags)
				slices.Sort(flags)
				if checkFlags && !slices.Equal(flags, m.Flags) {
					continue
				}
				if !got.Date.Equal(m.Date) {
					continue
				}
				used[i], found = true, true
				break
			}
			if !found {
				return fmt.Errorf("folder %q message %s (flags %v, date %v): no corpus message matches its bytes, flags and date", folder, got.Key, got.Flags, got.Date)
			}
		}
	}
	return nil
}

// encodeMUTF7 is IMAP's modified UTF-7 (only what the corpus needs).
func encodeMUTF7(s string) string {
	var b strings.Builder
	var pending []rune
	flush := func() {
		if len(pending) == 0 {
			return
		}
		var raw []byte
		for _, r := range pending {
			if r > 0xffff {
				r -= 0x10000
				hi, lo := 0xd800+(r>>10), 0xdc00+(r&0x3ff)
				raw = append(raw, byte(hi>>8), byte(hi), byte(lo>>8), byte(lo))
				continue
			}
			raw = append(raw, byte(r>>8), byte(r))
		}
		enc := b64.EncodeToString(raw)
		b.WriteString("&" + enc + "-")
		pending = pending[:0]
	}
	for _, r := range s {
		switch {
		case r == '&':
			flush()
			b.WriteString("&-")
		case r >= 0x20 && r <= 0x7e:
			flush()
			b.WriteRune(r)
		default:
			pending = append(pending, r)
		}
	}
	flush()
	return b.String()
}

var b64 = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").WithPadding(base64.NoPadding)
