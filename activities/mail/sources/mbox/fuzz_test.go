package mbox

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/cutover/cutover/activities/mail/sources"
)

// FuzzReadFile: any bytes give either a listing whose every message streams exactly its Size,
// or a FormatError naming the file; never a panic.
func FuzzReadFile(f *testing.F) {
	f.Add([]byte("From a@b Tue Jan  2 03:04:05 2001\nSubject: x\n\nbody\n>From quoted\n\nFrom c@d Wed Jan  3 03:04:05 2001\nSubject: y\nContent-Length: 3\n\nabc\n"))
	f.Add([]byte("From x Mon Jan 1 00:00:00 2000\r\n\r\n\r\nFrom \n>>From \nContent-Length: 99999999999\n"))
	f.Add([]byte("not an mbox"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "fuzz.mbox")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, format := range []Format{Auto, MboxO, MboxRD, MboxCL, MboxCL2} {
			snap := &sources.Snapshot{}
			err := ReadFile(snap, p, "INBOX", format)
			if err != nil {
				var fe *sources.FormatError
				if !errors.As(err, &fe) || fe.File != p {
					t.Fatalf("%s: error %v is not a FormatError naming the file", format, err)
				}
				continue
			}
			for _, m := range snap.Folders[0].Messages {
				rc, err := m.Open()
				if err != nil {
					t.Fatal(err)
				}
				n, err := io.Copy(io.Discard, rc)
				rc.Close()
				if err != nil {
					t.Fatalf("err: want nil; %s: message %s streamed %d bytes (%v), Size %d", format, m.Key, n, err, m.Size)
				}
				if n != m.Size {
					t.Fatalf("n: want m.Size; %s: message %s streamed %d bytes (%v), Size %d", format, m.Key, n, err, m.Size)
				}
			}
		}
	})
}
