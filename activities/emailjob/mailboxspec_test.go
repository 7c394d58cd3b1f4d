package emailjob_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cutover/cutover/activities/emailjob"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/email/emailapi"
	"github.com/cutover/cutover/workflows/email/jobspec"
)

func TestMailboxSpec(t *testing.T) {
	since := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	s, err := jobspec.Parse([]byte(`
job_id: 42
tenant_id: 7
domain: example.com
source: {host: imap.old.example}
destination: {host: "mail.example.com:1993", security: starttls, auth_user: master, credentials_ref: ` + refB + `}
mailboxes:
  - email: alice@example.com
    credentials_ref: ` + refA + `
    folder_map: {"Sent Items": "Sent"}
    exclude: ["^Junk$"]
    since: 2020-01-01T00:00:00Z
    presync_mode: strict_mirror
    namespaces: [shared]
  - {email: carol@example.com, source_type: imap_oauth, credentials_ref: ` + refA + `}
`))
	if err != nil {
		t.Fatal(err)
	}
	s = s.WithDefaults()
	got := emailjob.MailboxSpec(s, 42, 1, s.Mailboxes[0])
	want := emailapi.MailboxSpec{JobID: 42, MailboxID: 1, Email: "alice@example.com", SourceType: model.SourceIMAP,
		Source:    emailapi.Endpoint{Addr: "imap.old.example:993", Security: "tls", User: "alice@example.com", Auth: "login", CredentialsRef: refA},
		Dest:      emailapi.Endpoint{Addr: "mail.example.com:1993", Security: "starttls", User: "alice@example.com", AuthUser: "master", Auth: "login", CredentialsRef: refB},
		FolderMap: map[string]string{"Sent Items": "Sent"}, Exclude: []string{"^Junk$"}, Since: &since,
		PresyncMode: model.ModeStrictMirror, Namespaces: []string{"shared"}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("alice (-want +got):\n%s", d)
	}
	if got := emailjob.MailboxSpec(s, 42, 2, s.Mailboxes[1]).Source.Auth; got != "xoauth2" {
		t.Errorf("OAuth source auth = %q, want xoauth2", got)
	}
	// An entry merging into an account with others carries it: its passes take turns with theirs.
	merged := s.Mailboxes[1]
	merged.Merge = true
	if !emailjob.MailboxSpec(s, 42, 2, merged).Merge {
		t.Error("a merged entry's MailboxSpec.Merge is false")
	}
}
