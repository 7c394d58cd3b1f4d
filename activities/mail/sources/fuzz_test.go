package sources_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cutover/cutover/activities/mail/sources"
	"github.com/cutover/cutover/activities/mail/sources/sourcetest"
)

// FuzzExtractTar: any bytes give extracted files inside the directory or an error; nothing is
// ever written outside it and nothing panics.
func FuzzExtractTar(f *testing.F) {
	dir := f.TempDir()
	for i, entries := range [][]sourcetest.TarEntry{
		{{Name: "Maildir/cur/1:2,S", Data: []byte("Subject: x\n\nbody\n")}},
		{{Name: "../escape", Data: []byte("x")}},
		{{Name: "link", Type: '2', Linkname: "/etc"}},
	} {
		p := filepath.Join(dir, "seed"+string(rune('0'+i))+".tgz")
		if err := sourcetest.RawTar(p, entries); err != nil {
			f.Fatal(err)
		}
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	lim := sources.Limits{MaxEntries: 50, MaxEntryBytes: 1 << 20, MaxTotalBytes: 4 << 20}
	f.Fuzz(func(t *testing.T, data []byte) {
		base := t.TempDir()
		work := filepath.Join(base, "work")
		if err := os.Mkdir(work, 0o700); err != nil {
			t.Fatal(err)
		}
		out, err := sources.ExtractTar(bytes.NewReader(data), "fuzz.tgz", work, lim)
		if err != nil && !sources.IsFormatError(err) && !errors.Is(err, os.ErrExist) {
			// File-system errors (a file where a directory must go) are allowed, but must not
			// come from writing outside work.
			t.Logf("non-format error: %v", err)
		}
		entries, _ := os.ReadDir(base)
		if len(entries) != 1 {
			t.Fatalf("len(entries) = %v, want 1; something was written beside the work directory: %v",
				len(entries), entries)
		}
		if entries[0].Name() != "work" {
			t.Fatalf("want entries[0].Name() == \"work\"; something was written beside the work directory: %v", entries)
		}
		for _, x := range out {
			if rel, err := filepath.Rel(work, x.Path); err != nil {
				t.Fatalf("err = %v, want nil; extracted %q outside the work directory", err, x.Path)
			} else if rel == ".." {
				t.Fatalf("rel = %v, want != \"..\"; extracted %q outside the work directory", rel, x.Path)
			} else if len(rel) > 1 && rel[:2] == ".." {
				t.Fatalf("len(rel) > 1 && rel[:2] == \"..\"; extracted %q outside the work directory", x.Path)
			}
		}
	})
}

// FuzzReadHeader: header parsing never panics and HeaderDate/HeaderFlags accept what it yields.
func FuzzReadHeader(f *testing.F) {
	f.Add([]byte("Received: by x; Tue, 2 Jan 2001 03:04:05 +0100\r\nDate: junk\r\nStatus: RO\r\nX-Keywords: a b\r\n\r\nbody"))
	f.Add([]byte(" continuation first\nno colon\n:\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, _, _ := sources.ReadHeader(bytes.NewReader(data))
		sources.HeaderDate(h)
		sources.HeaderFlags(h)
	})
}
