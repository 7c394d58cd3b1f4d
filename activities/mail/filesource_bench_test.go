package mail

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/activities/mail/sources/sourcetest"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// BenchmarkMboxImport copies a 2,000-message mbox tree (about 9 MB, 4 folders) into a real
// Dovecot through the engine: listing, identity, MULTIAPPEND, ledger. Each iteration lands in
// a fresh destination account.
func BenchmarkMboxImport(b *testing.B) {
	const n = 2000
	msgs := make([]sourcetest.Message, n)
	fs := []string{"INBOX", "Sent", "Archive", "Projects/2024"}
	body := strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit.\n", 70)
	var size int64
	for i := range msgs {
		d := time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Hour)
		raw := fmt.Sprintf("From: s%d@example.com\nSubject: bench %d\nMessage-ID: <bench-%d@example.com>\nDate: %s\n\n%s", i%50, i, i, d.Format(time.RFC1123Z), body)
		msgs[i] = sourcetest.Message{Folder: fs[i%len(fs)], Date: d, Flags: []string{`\Seen`}, Raw: []byte(raw)}
		size += int64(len(raw))
	}
	dir := filepath.Join(b.TempDir(), "mbox")
	if err := sourcetest.WriteMboxTree(dir, msgs, sourcetest.MboxRD); err != nil {
		b.Fatal(err)
	}
	e := newFileEnv(b, 64) // accounts for up to 64 iterations
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		spec := e.mailbox(model.SourceMbox, dir)
		st, err := e.acts.SyncMailbox(context.Background(), emailapi.PassRequest{Spec: spec, Mode: model.ModeCopy, RunType: model.RunInitial})
		if err != nil {
			b.Fatalf("err: want nil; transferred %d: %v", st.Transferred, err)
		}
		if st.Transferred != n {
			b.Fatalf("st.Transferred: want n; transferred %d: %v", st.Transferred, err)
		}
		b.ReportMetric(float64(n)/st.Duration.Seconds(), "msgs/s")
	}
}
