// Package corpus builds mail corpora (edge cases and realistic bulk mail) and writes them into
// Dovecot Maildirs, for the sync engine's tests and benchmarks (through mailtest) and for
// `cutover demo`. Writing Maildir files directly is orders of magnitude faster than APPENDing
// 20,000 messages.
package corpus

import (
	"bufio"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cutover/cutover/internal/utf7"
)

// Message is one message of a corpus.
type Message struct {
	Folder string    // UTF-8 name, "/" between hierarchy levels; "" or "INBOX" is the inbox
	Flags  []string  // system flags (\Seen, \Answered, \Flagged, \Deleted, \Draft) and keywords
	Date   time.Time // INTERNALDATE
	Raw    []byte    // the whole message, unless Gen is set
	// Gen streams a large message of GenSize bytes without holding it in memory.
	Gen     func(w io.Writer) error
	GenSize int64
}

// Size is the message's length in bytes as stored.
func (m Message) Size() int64 {
	if m.Gen != nil {
		return m.GenSize
	}
	return int64(len(m.Raw))
}

// WriteTo writes the message.
func (m Message) WriteTo(w io.Writer) (int64, error) {
	if m.Gen == nil {
		n, err := w.Write(m.Raw)
		return int64(n), err
	}
	cw := &countWriter{w: w}
	err := m.Gen(cw)
	return cw.n, err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// maildir letters of the system flags (Maildir "info 2"), in the ASCII order the spec asks for.
var systemLetters = map[string]byte{`\Draft`: 'D', `\Flagged`: 'F', `\Answered`: 'R', `\Seen`: 'S', `\Deleted`: 'T'}

// FolderDir is where Dovecot's Maildir++ layout keeps a folder: the root for INBOX, else
// ".a.b" with each level in modified UTF-7 (the layout always uses '.', whatever the
// namespace separator).
func FolderDir(maildir, folder string) string {
	if folder == "" || strings.EqualFold(folder, "INBOX") {
		return maildir
	}
	parts := strings.Split(folder, "/")
	for i, p := range parts {
		parts[i] = utf7.Encode(p)
	}
	return filepath.Join(maildir, "."+strings.Join(parts, "."))
}

// WriteMaildir writes msgs into a Maildir (creating folders, keyword files and subscriptions).
// Messages keep their order within a folder, so Dovecot assigns UIDs in slice order. Call it
// before the user's first login or while nothing else touches those folders; as root, hand the
// files to the mail owner afterwards (devstack.Dovecot.FixOwnership).
func WriteMaildir(maildir string, msgs []Message) error {
	return WriteMaildirSeq(maildir, slices.Values(msgs))
}

// WriteMaildirSeq writes a sequence of messages into a Maildir.
func WriteMaildirSeq(maildir string, msgs iter.Seq[Message]) error {
	type folderState struct {
		dir      string
		keywords []string
	}
	state := map[string]*folderState{}
	var subscribed []string
	seq := 0
	for m := range msgs {
		name := m.Folder
		if name == "" || strings.EqualFold(name, "INBOX") {
			name = "INBOX"
		}
		fs, ok := state[name]
		if !ok {
			fs = &folderState{dir: FolderDir(maildir, name)}
			if err := ensureFolder(maildir, fs.dir, name != "INBOX"); err != nil {
				return err
			}
			if kw, err := readKeywords(fs.dir); err == nil {
				fs.keywords = kw
			}
			state[name] = fs
			if name != "INBOX" {
				subscribed = append(subscribed, name)
			}
		}
		var letters []byte
		for _, f := range m.Flags {
			if l, ok := systemLetters[f]; ok {
				letters = append(letters, l)
				continue
			}
			if strings.HasPrefix(f, `\`) {
				continue // \Recent and unknown system flags cannot be stored
			}
			i := slices.Index(fs.keywords, f)
			if i < 0 {
				if len(fs.keywords) == 26 {
					return fmt.Errorf("folder %s: more than 26 keywords", name)
				}
				fs.keywords = append(fs.keywords, f)
				i = len(fs.keywords) - 1
			}
			letters = append(letters, byte('a'+i))
		}
		slices.Sort(letters)
		letters = slices.Compact(letters)
		seq++
		date := m.Date
		if date.IsZero() {
			date = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
		}
		base := fmt.Sprintf("%d.M%07dP1.seed,S=%d:2,%s", date.Unix(), seq, m.Size(), letters)
		// Write into tmp/ then rename, as a delivery agent would.
		tmp := filepath.Join(fs.dir, "tmp", base)
		if err := writeFile(tmp, m); err != nil {
			return err
		}
		if err := os.Chtimes(tmp, date, date); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(fs.dir, "cur", base)); err != nil {
			return err
		}
	}
	for _, fs := range state {
		if len(fs.keywords) == 0 {
			continue
		}
		var b strings.Builder
		for i, k := range fs.keywords {
			fmt.Fprintf(&b, "%d %s\n", i, k)
		}
		if err := os.WriteFile(filepath.Join(fs.dir, "dovecot-keywords"), []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	return addSubscriptions(maildir, subscribed)
}

func writeFile(path string, m Message) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 256<<10)
	if _, err := m.WriteTo(w); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func ensureFolder(maildir, dir string, sub bool) error {
	for _, d := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(maildir, "tmp"), 0o755); err != nil {
		return err
	}
	if sub {
		return os.WriteFile(filepath.Join(dir, "maildirfolder"), nil, 0o644)
	}
	return nil
}

func readKeywords(dir string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "dovecot-keywords"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if _, kw, ok := strings.Cut(line, " "); ok {
			out = append(out, kw)
		}
	}
	return out, nil
}

// addSubscriptions appends to Dovecot's Maildir++ subscriptions file (one mUTF-7 name per
// line, '.' between levels as on disk).
func addSubscriptions(maildir string, names []string) error {
	if len(names) == 0 {
		return nil
	}
	path := filepath.Join(maildir, "subscriptions")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	for _, n := range names {
		parts := strings.Split(n, "/")
		for i, p := range parts {
			parts[i] = utf7.Encode(p)
		}
		if _, err := fmt.Fprintln(f, strings.Join(parts, ".")); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}
