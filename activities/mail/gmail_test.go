package mail

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cutover/cutover/activities/mail/sources/sourcetest"
	"github.com/cutover/cutover/activities/vault"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// TestGmailPreset: a Dovecot account shaped like Gmail (labels as folders, every message also
// in [Gmail]/All Mail, the Starred and Important views). Each label lands in its folder, the
// views are not copied, and only archived mail (no other label) comes from All Mail, into
// Archive: nothing duplicated, nothing lost; a second pass copies nothing.
func TestGmailPreset(t *testing.T) {
	e := newFileEnv(t, 1)
	ctx := context.Background()
	msg := func(id string, i int, flags ...string) sourcetest.Message {
		d := time.Date(2022, 3, 1+i, 10, 0, 0, 0, time.UTC)
		raw := fmt.Sprintf("From: x@example.com\r\nSubject: %s\r\nMessage-ID: <%s@gmail.example>\r\nDate: %s\r\n\r\nbody %s\r\n", id, id, d.Format(time.RFC1123Z), id)
		slices.Sort(flags)
		return sourcetest.Message{Date: d, Raw: []byte(raw), Flags: flags}
	}
	in := func(m sourcetest.Message, folder string) sourcetest.Message { m.Folder = folder; return m }
	a, b, c, d := msg("inbox-only", 1, `\Seen`), msg("work-label", 2), msg("two-labels", 3, `\Seen`), msg("archived", 4, `\Seen`)
	s, f, dup := msg("sent", 5, `\Seen`), msg("starred-archived", 6, `\Flagged`, `\Seen`), msg("dup-archived", 7)
	var src []sourcetest.Message
	for _, x := range []struct {
		m       sourcetest.Message
		folders []string
	}{
		{a, []string{"INBOX"}}, {b, []string{"Work"}}, {c, []string{"INBOX", "Work"}}, {d, nil},
		{s, []string{"[Gmail]/Sent Mail"}}, {f, []string{"[Gmail]/Starred"}}, {c, []string{"[Gmail]/Important"}},
		{dup, nil}, {dup, nil}, // an archived message twice: both copies are archived mail
	} {
		for _, fo := range x.folders {
			src = append(src, in(x.m, fo))
		}
		src = append(src, in(x.m, "[Gmail]/All Mail"))
	}
	gm := testenv.StartDovecot(t, []testenv.User{{Name: "me", Password: "gpw"}}, testenv.WithDovecotConfig("namespace inbox {", "  separator = /", "}"))
	if err := sourcetest.WriteMaildir(gm.Maildir("me"), src); err != nil {
		t.Fatal(err)
	}
	gm.FixOwnership(t)
	ref, err := e.vault.Put(ctx, vault.Secret{Password: "gpw"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec := e.mailbox(model.SourceIMAP, "")
	spec.Source = emailapi.Endpoint{Addr: gm.Addr(), Security: "plain", User: "me", CredentialsRef: ref}
	st := e.sync(spec, model.RunInitial)
	if st.Transferred != 9 {
		t.Fatalf("st.Transferred: want 9; transferred %d quarantined %d pending %d, want 9 copied",
			st.Transferred, st.Quarantined, st.Pending)
	}
	if st.Quarantined != 0 {
		t.Fatalf("st.Quarantined: want 0; transferred %d quarantined %d pending %d, want 9 copied",
			st.Transferred, st.Quarantined, st.Pending)
	}
	if st.Pending != 0 {
		t.Fatalf("st.Pending: want 0; transferred %d quarantined %d pending %d, want 9 copied",
			st.Transferred, st.Quarantined, st.Pending)
	}
	e.verify(spec, 0)
	want := []sourcetest.Message{in(a, "INBOX"), in(c, "INBOX"), in(b, "Work"), in(c, "Work"), in(s, "Sent"),
		in(d, "Archive"), in(f, "Archive"), in(dup, "Archive"), in(dup, "Archive")}
	got := e.destMessages("user0")
	for folder, n := range map[string]int{"INBOX": 2, "Work": 2, "Sent": 1, "Archive": 4} {
		if len(got[folder]) != n {
			t.Errorf("destination %s: %d messages, want %d", folder, len(got[folder]), n)
		}
	}
	for name := range got {
		if gmailLeaf(name) != "" && len(got[name]) > 0 {
			t.Errorf("destination has %d messages in Gmail folder %q", len(got[name]), name)
		}
	}
	e.requireCorpus("user0", want, raw)
	if st := e.sync(spec, model.RunDelta); st.Transferred != 0 {
		t.Fatalf("second pass transferred %d", st.Transferred)
	}
}
