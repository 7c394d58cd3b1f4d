package sources_test

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cutover/cutover/activities/mail/sources"
)

// zipOf builds a zip of (name, data) pairs, deflated.
func zipOf(t testing.TB, entries ...[2]string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, e := range entries {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: e[0], Method: zip.Deflate})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(w, e[1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// lieAboutSize rewrites every size field of a zip (local headers and central directory) to
// claim n bytes uncompressed, as a bomb hiding its real size would.
func lieAboutSize(b []byte, n uint32) []byte {
	b = bytes.Clone(b)
	for i := 0; i+30 <= len(b); i++ {
		switch binary.LittleEndian.Uint32(b[i:]) {
		case 0x04034b50: // local file header: uncompressed size at +22
			binary.LittleEndian.PutUint32(b[i+22:], n)
		case 0x02014b50: // central directory header: uncompressed size at +24
			binary.LittleEndian.PutUint32(b[i+24:], n)
		}
	}
	return b
}

// TestZipBombs: archives that unpack to far more than they weigh — one entry of 64 MB of
// zeros (a few tens of KB deflated), the same entry lying about its size in every header, and
// many entries each under the entry limit whose sum is not — end in a FormatError naming the
// entry and the limit, leave nothing beside the work directory and write at most the limit.
func TestZipBombs(t *testing.T) {
	zeros := strings.Repeat("\x00", 64<<20)
	lim := sources.Limits{MaxEntries: 100, MaxEntryBytes: 1 << 20, MaxTotalBytes: 4 << 20}
	var many [][2]string
	for i := range 8 {
		many = append(many, [2]string{filepath.Join("INBOX", string(rune('a'+i))+".eml"), "Subject: x\n\n" + zeros[:900<<10]})
	}
	for _, tc := range []struct {
		name, entry, text string
		zip               []byte
	}{
		{"64 MB of zeros", "big.eml", "exceeds the 1048576-byte limit", zipOf(t, [2]string{"big.eml", zeros})},
		{"size lie", "big.eml", "", lieAboutSize(zipOf(t, [2]string{"big.eml", zeros}), 100)},
		{"total", "INBOX/e.eml", "more than 4194304 bytes", zipOf(t, many...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			z := filepath.Join(base, "bomb.zip")
			if err := os.WriteFile(z, tc.zip, 0o600); err != nil {
				t.Fatal(err)
			}
			work := filepath.Join(base, "work")
			_, err := sources.ExtractZip(z, work, lim)
			var fe *sources.FormatError
			if !errors.As(err, &fe) || fe.Entry != tc.entry || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("err = %v, want a FormatError for entry %q saying %q", err, tc.entry, tc.text)
			}
			t.Logf("%d-byte zip refused: %v", len(tc.zip), err)
			var written int64
			_ = filepath.Walk(work, func(_ string, fi os.FileInfo, err error) error {
				if err == nil && fi.Mode().IsRegular() {
					written += fi.Size()
				}
				return nil
			})
			if written > lim.MaxTotalBytes+lim.MaxEntryBytes+1 {
				t.Errorf("%d bytes written before the refusal", written)
			}
			if entries, _ := os.ReadDir(base); len(entries) > 2 {
				t.Errorf("something was written beside the work directory: %v", entries)
			}
		})
	}
}

// FuzzExtractZip: any bytes as a zip give files inside the work directory or an error;
// nothing is written beside it and nothing panics. `go test` replays testdata/fuzz.
func FuzzExtractZip(f *testing.F) {
	f.Add(zipOf(f, [2]string{"INBOX/1.eml", "Subject: x\n\nbody\n"}))
	f.Add(zipOf(f, [2]string{"../escape.eml", "x"}))
	f.Add(zipOf(f, [2]string{"/abs.eml", "x"}, [2]string{"a/../../b.eml", "y"}))
	f.Add(lieAboutSize(zipOf(f, [2]string{"big.eml", strings.Repeat("\x00", 1<<16)}), 10))
	lim := sources.Limits{MaxEntries: 50, MaxEntryBytes: 1 << 20, MaxTotalBytes: 4 << 20}
	f.Fuzz(func(t *testing.T, data []byte) {
		base := t.TempDir()
		z := filepath.Join(base, "in.zip")
		if err := os.WriteFile(z, data, 0o600); err != nil {
			t.Fatal(err)
		}
		work := filepath.Join(base, "work")
		out, err := sources.ExtractZip(z, work, lim)
		if err == nil {
			for _, x := range out {
				if rel, rerr := filepath.Rel(work, x.Path); rerr != nil {
					t.Fatalf("rerr = %v, want nil; extracted %q outside the work directory", rerr, x.Path)
				} else if rel == ".." {
					t.Fatalf("rel = %v, want != \"..\"; extracted %q outside the work directory", rel, x.Path)
				} else if strings.HasPrefix(rel, "../") {
					t.Fatalf("strings.HasPrefix(rel, \"../\") is true; extracted %q outside the work directory", x.Path)
				}
			}
		}
		entries, _ := os.ReadDir(base)
		for _, e := range entries {
			if e.Name() != "in.zip" && e.Name() != "work" {
				t.Fatalf("%s was written beside the work directory", e.Name())
			}
		}
	})
}
