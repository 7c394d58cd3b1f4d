package jobspec

import (
	"strings"
	"testing"

	"github.com/cutover/cutover/internal/model"
)

// A zimbra export or a dovecot Maildir may be given as a file on the worker instead of a server.
func TestSourcePathForZimbraAndDovecot(t *testing.T) {
	const ref = "0b7f6a52-5d0c-4b0e-9a57-6f1b7f0f3c11"
	base := Spec{TenantID: 1, Domain: "example.com", Destination: Endpoint{Host: "new.example", CredentialsRef: ref}}
	for _, tc := range []struct {
		m       Mailbox
		problem string
	}{
		{Mailbox{Email: "a@example.com", SourceType: model.SourceZimbra, SourcePath: "/uploads/a.tgz"}, ""},
		{Mailbox{Email: "b@example.com", SourceType: model.SourceDovecot, SourcePath: "/var/mail/b/Maildir"}, ""},
		{Mailbox{Email: "c@example.com", SourceType: model.SourceZimbra}, "source.host"},
		{Mailbox{Email: "d@example.com", SourceType: model.SourceIMAP, SourcePath: "/x"}, "only for file sources"},
	} {
		s := base
		s.Mailboxes = []Mailbox{tc.m}
		err := s.WithDefaults().Validate()
		switch {
		case tc.problem == "" && err != nil:
			t.Errorf("%s: %v", tc.m.Email, err)
		case tc.problem != "" && (err == nil || !strings.Contains(err.Error(), tc.problem)):
			t.Errorf("%s: %v, want a problem naming %s", tc.m.Email, err, tc.problem)
		}
	}
}
