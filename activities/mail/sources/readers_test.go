package sources_test

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cutover/cutover/activities/mail/sources"
	"github.com/cutover/cutover/activities/mail/sources/eml"
	"github.com/cutover/cutover/activities/mail/sources/maildir"
	"github.com/cutover/cutover/activities/mail/sources/mbox"
	"github.com/cutover/cutover/activities/mail/sources/sourcetest"
	"github.com/cutover/cutover/activities/mail/sources/tgz"
	"github.com/cutover/cutover/activities/mail/sources/zimbra"
)

func raw(m sourcetest.Message) []byte { return m.Raw }

func TestReadersAgainstCorpus(t *testing.T) {
	corpus := sourcetest.Corpus()
	for _, tc := range []struct {
		name  string
		make  func(t *testing.T, dir string) (*sources.Snapshot, error)
		want  func(sourcetest.Message) []byte
		flags bool
	}{
		{"mbox tree mboxrd", func(t *testing.T, dir string) (*sources.Snapshot, error) {
			p := filepath.Join(dir, "mail")
			if err := sourcetest.WriteMboxTree(p, corpus, sourcetest.MboxRD); err != nil {
				t.Fatal(err)
			}
			return mbox.Open(p, mbox.Auto)
		}, sourcetest.WithFlagHeaders, true},
		{"mbox tree mboxcl2", func(t *testing.T, dir string) (*sources.Snapshot, error) {
			p := filepath.Join(dir, "mail")
			if err := sourcetest.WriteMboxTree(p, corpus, sourcetest.MboxCL2); err != nil {
				t.Fatal(err)
			}
			return mbox.Open(p, mbox.MboxCL2)
		}, sourcetest.WithContentLength, true},
		{"eml directory", func(t *testing.T, dir string) (*sources.Snapshot, error) {
			p := filepath.Join(dir, "eml")
			if err := sourcetest.WriteEMLTree(p, corpus); err != nil {
				t.Fatal(err)
			}
			return eml.Open(p, filepath.Join(dir, "work"), sources.Limits{})
		}, sourcetest.WithFlagHeaders, true},
		{"eml zip", func(t *testing.T, dir string) (*sources.Snapshot, error) {
			p := filepath.Join(dir, "eml")
			if err := sourcetest.WriteEMLTree(p, corpus); err != nil {
				t.Fatal(err)
			}
			z := filepath.Join(dir, "export.zip")
			if err := sourcetest.Zip(z, p); err != nil {
				t.Fatal(err)
			}
			return eml.Open(z, filepath.Join(dir, "work"), sources.Limits{})
		}, sourcetest.WithFlagHeaders, true},
		{"maildir", func(t *testing.T, dir string) (*sources.Snapshot, error) {
			p := filepath.Join(dir, "Maildir")
			if err := sourcetest.WriteMaildir(p, corpus); err != nil {
				t.Fatal(err)
			}
			return maildir.Read(p)
		}, raw, true},
		{"tgz of a maildir", func(t *testing.T, dir string) (*sources.Snapshot, error) {
			p := filepath.Join(dir, "Maildir")
			if err := sourcetest.WriteMaildir(p, corpus); err != nil {
				t.Fatal(err)
			}
			a := filepath.Join(dir, "alice.tgz")
			if err := sourcetest.Tar(a, p, "home/alice/Maildir"); err != nil {
				t.Fatal(err)
			}
			snap, layout, err := tgz.Open(a, filepath.Join(dir, "work"), sources.Limits{})
			if err == nil && layout != tgz.LayoutMaildir {
				t.Errorf("layout %s", layout)
			}
			return snap, err
		}, raw, true},
		{"tgz of an eml tree", func(t *testing.T, dir string) (*sources.Snapshot, error) {
			p := filepath.Join(dir, "eml")
			if err := sourcetest.WriteEMLTree(p, corpus); err != nil {
				t.Fatal(err)
			}
			a := filepath.Join(dir, "alice.tar.gz")
			if err := sourcetest.Tar(a, p, ""); err != nil {
				t.Fatal(err)
			}
			snap, layout, err := tgz.Open(a, filepath.Join(dir, "work"), sources.Limits{})
			if err == nil && layout != tgz.LayoutEML {
				t.Errorf("layout %s", layout)
			}
			return snap, err
		}, sourcetest.WithFlagHeaders, true},
		{"zimbra export", func(t *testing.T, dir string) (*sources.Snapshot, error) {
			a := filepath.Join(dir, "alice.tgz")
			if err := sourcetest.WriteZimbra(a, corpus, sourcetest.ZimbraOptions{Batch: 2, Tags: true}); err != nil {
				t.Fatal(err)
			}
			snap, err := zimbra.Open(a, filepath.Join(dir, "work"), sources.Limits{})
			if err == nil {
				w := strings.Join(snap.Warnings, "\n")
				if !strings.Contains(w, "1 contact") || !strings.Contains(w, "1 appointment") {
					t.Errorf("warnings do not count the items that are not mail: %q", w)
				}
			}
			return snap, err
		}, raw, true},
		{"zimbra export, Path with subject", func(t *testing.T, dir string) (*sources.Snapshot, error) {
			a := filepath.Join(dir, "alice.tgz")
			if err := sourcetest.WriteZimbra(a, corpus, sourcetest.ZimbraOptions{Batch: 500, Tags: true, PathWithSubject: true}); err != nil {
				t.Fatal(err)
			}
			return zimbra.Open(a, filepath.Join(dir, "work"), sources.Limits{})
		}, raw, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snap, err := tc.make(t, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if len(snap.Quarantined) != 0 {
				t.Fatalf("quarantined: %+v", snap.Quarantined)
			}
			if snap.Messages() != len(corpus) {
				t.Fatalf("%d messages, want %d", snap.Messages(), len(corpus))
			}
			if err := sourcetest.Check(snap, corpus, tc.want, tc.flags); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// hostile tarballs and zips: each must fail with a FormatError naming the entry, and nothing
// may appear outside the work directory.
func TestArchiveSafety(t *testing.T) {
	small := sources.Limits{MaxEntries: 5, MaxEntryBytes: 1 << 20, MaxTotalBytes: 3 << 20}
	msg := []byte("Subject: x\n\nbody\n")
	for _, tc := range []struct {
		name    string
		entries []sourcetest.TarEntry
		entry   string
		text    string
	}{
		{"dot-dot", []sourcetest.TarEntry{{Name: "ok/1.eml", Data: msg}, {Name: "ok/../../evil.eml", Data: msg}}, "ok/../../evil.eml", "escapes"},
		{"absolute", []sourcetest.TarEntry{{Name: "/tmp/evil.eml", Data: msg}}, "/tmp/evil.eml", "absolute"},
		{"symlink", []sourcetest.TarEntry{{Name: "INBOX", Type: tar.TypeSymlink, Linkname: "/etc"}}, "INBOX", "links"},
		{"hard link", []sourcetest.TarEntry{{Name: "a.eml", Data: msg}, {Name: "b.eml", Type: tar.TypeLink, Linkname: "/etc/passwd"}}, "b.eml", "links"},
		{"device", []sourcetest.TarEntry{{Name: "null", Type: tar.TypeChar}}, "null", "not a file"},
		{"entry bomb", []sourcetest.TarEntry{{Name: "big.eml", Size: 2 << 20}}, "big.eml", "limit"},
		{"total bomb", []sourcetest.TarEntry{{Name: "1.eml", Size: 1 << 20}, {Name: "2.eml", Size: 1 << 20}, {Name: "3.eml", Size: 1 << 20}, {Name: "4.eml", Size: 1 << 20}}, "4.eml", "more than"},
		{"too many entries", []sourcetest.TarEntry{{Name: "1", Data: msg}, {Name: "2", Data: msg}, {Name: "3", Data: msg}, {Name: "4", Data: msg}, {Name: "5", Data: msg}, {Name: "6", Data: msg}}, "6", "more than 5 entries"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			a := filepath.Join(base, "in", "hostile.tgz")
			if err := os.MkdirAll(filepath.Dir(a), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := sourcetest.RawTar(a, tc.entries); err != nil {
				t.Fatal(err)
			}
			work := filepath.Join(base, "deep", "work")
			for _, open := range []func() error{
				func() error { _, _, err := tgz.Open(a, work, small); return err },
				func() error { _, err := zimbra.Open(a, work, small); return err },
			} {
				err := open()
				var fe *sources.FormatError
				if !errors.As(err, &fe) {
					t.Fatalf("errors.As(err, &fe) is false; err = %v, want a FormatError for entry %q with an offset",
						err, tc.entry)
				}
				if fe.Entry != tc.entry {
					t.Fatalf("fe.Entry = %v, want %v (tc.entry); err = %v, want a FormatError for entry %q with an offset",
						fe.Entry, tc.entry, err, tc.entry)
				}
				if fe.File != a {
					t.Fatalf("fe.File = %v, want %v (a); err = %v, want a FormatError for entry %q with an offset",
						fe.File, a, err, tc.entry)
				}
				if fe.Offset < 0 {
					t.Fatalf("fe.Offset = %v, want >= 0; err = %v, want a FormatError for entry %q with an offset",
						fe.Offset, err, tc.entry)
				}
				if !strings.Contains(err.Error(), tc.text) || !strings.Contains(err.Error(), "offset") {
					t.Errorf("message %q lacks %q or the offset", err, tc.text)
				}
			}
			if _, err := os.Stat(filepath.Join(base, "evil.eml")); err == nil {
				t.Fatal("an entry was written outside the work directory")
			}
			left, _ := filepath.Glob(filepath.Join(work, "*"))
			if len(left) != 0 {
				t.Errorf("failed extraction left %v", left)
			}
		})
	}
}

func TestTruncatedArchives(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "eml")
	if err := sourcetest.WriteEMLTree(p, sourcetest.Corpus()); err != nil {
		t.Fatal(err)
	}
	a := filepath.Join(dir, "full.tgz")
	if err := sourcetest.Tar(a, p, ""); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(a)
	cut := filepath.Join(dir, "cut.tgz")
	if err := os.WriteFile(cut, b[:len(b)*2/3], 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := tgz.Open(cut, filepath.Join(dir, "work"), sources.Limits{})
	var fe *sources.FormatError
	if !errors.As(err, &fe) {
		t.Fatalf("errors.As(err, &fe) is false; truncated tgz: %v, want a FormatError with file and offset", err)
	}
	if fe.File != cut {
		t.Fatalf("fe.File = %v, want %v (cut); truncated tgz: %v, want a FormatError with file and offset",
			fe.File, cut, err)
	}
	if fe.Offset < 0 {
		t.Fatalf("fe.Offset = %v, want >= 0; truncated tgz: %v, want a FormatError with file and offset",
			fe.Offset, err)
	}
	_, err = zimbra.Open(cut, filepath.Join(dir, "work"), sources.Limits{})
	if !errors.As(err, &fe) || fe.File != cut {
		t.Fatalf("truncated zimbra export: %v, want a FormatError", err)
	}

	z := filepath.Join(dir, "full.zip")
	if err := sourcetest.Zip(z, p); err != nil {
		t.Fatal(err)
	}
	zb, _ := os.ReadFile(z)
	zcut := filepath.Join(dir, "cut.zip")
	if err := os.WriteFile(zcut, zb[:len(zb)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := eml.Open(zcut, filepath.Join(dir, "work"), sources.Limits{}); !errors.As(err, &fe) || fe.File != zcut {
		t.Fatalf("truncated zip: %v, want a FormatError", err)
	}
}

func TestZipSafety(t *testing.T) {
	for _, tc := range []struct {
		name, entry string
		mode        os.FileMode
		text        string
	}{
		{"dot-dot", "../../evil.eml", 0o600, "escapes"},
		{"symlink", "link.eml", os.ModeSymlink | 0o777, "links"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var b bytes.Buffer
			zw := zip.NewWriter(&b)
			h := &zip.FileHeader{Name: tc.entry, Method: zip.Deflate}
			h.SetMode(tc.mode)
			w, _ := zw.CreateHeader(h)
			_, _ = w.Write([]byte("Subject: x\n\n/etc/passwd\n"))
			_ = zw.Close()
			z := filepath.Join(dir, "in", "x.zip")
			_ = os.MkdirAll(filepath.Dir(z), 0o700)
			if err := os.WriteFile(z, b.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := eml.Open(z, filepath.Join(dir, "a", "work"), sources.Limits{})
			var fe *sources.FormatError
			if !errors.As(err, &fe) || fe.Entry != tc.entry || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("err = %v, want a FormatError for %q", err, tc.entry)
			}
			if _, err := os.Stat(filepath.Join(dir, "evil.eml")); err == nil {
				t.Fatal("written outside the work directory")
			}
		})
	}
}

func TestMaildirLiveRename(t *testing.T) {
	// A Dovecot on the same host renames a file (flag change) between listing and reading.
	dir := t.TempDir()
	corpus := sourcetest.Corpus()[:3]
	if err := sourcetest.WriteMaildir(dir, corpus); err != nil {
		t.Fatal(err)
	}
	snap, err := maildir.Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := snap.Folder("INBOX").Messages[0]
	files, _ := filepath.Glob(filepath.Join(dir, "cur", m.Key+"*"))
	if len(files) != 1 {
		t.Fatalf("files %v", files)
	}
	if err := os.Rename(files[0], filepath.Join(dir, "cur", m.Key+":2,FS")); err != nil {
		t.Fatal(err)
	}
	rc, err := m.Open()
	if err != nil {
		t.Fatalf("open after rename: %v", err)
	}
	rc.Close()
}
