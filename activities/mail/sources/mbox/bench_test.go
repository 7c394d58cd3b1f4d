package mbox

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cutover/cutover/activities/mail/sources"
)

// BenchmarkScan lists a 10,000-message mboxrd file (about 60 MB): the one pass over the file
// that finds boundaries, quoting and headers.
func BenchmarkScan(b *testing.B) {
	p := filepath.Join(b.TempDir(), "big.mbox")
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	body := strings.Repeat("The quick brown fox jumps over the lazy dog, again and again.\n", 100)
	for i := range 10000 {
		fmt.Fprintf(f, "From s%d@example.com Tue Jan  2 03:04:05 2001\nFrom: s%d@example.com\nSubject: m %d\nMessage-ID: <m%d@x>\nDate: Tue, 02 Jan 2001 03:04:05 +0000\n\n%s>From quoted\n\n", i, i, i, i, body)
	}
	f.Close()
	fi, _ := os.Stat(p)
	b.SetBytes(fi.Size())
	b.ResetTimer()
	for b.Loop() {
		snap := &sources.Snapshot{}
		if err := ReadFile(snap, p, "INBOX", Auto); err != nil {
			b.Fatal(err)
		}
		if snap.Messages() != 10000 {
			b.Fatalf("%d messages", snap.Messages())
		}
	}
}
