package jobspec

import (
	"strings"
	"testing"

	"github.com/cutover/cutover/internal/model"
)

func accountsSpec(extra string) string {
	return `
job_id: 42
tenant_id: 7
domain: example.com
source: {host: imap.old.example}
destination: {host: mail.example.com, credentials_ref: ` + refB + `, auth_user: master}
mailboxes:
  - {email: alice@example.com, credentials_ref: ` + refA + `}
` + extra
}

// Two entries writing into one destination account (or reading one source account) would
// copy every message twice and each mirror would see the other's copies: refused, naming
// both, unless both say they merge on purpose; merged entries may not use strict_mirror.
func TestSharedAccountsRefusedUnlessMerged(t *testing.T) {
	for _, tc := range []struct {
		name, extra string
		want        []string // problems; empty = accepted
	}{
		{"same destination user", `  - {email: bob@example.com, dest_user: ALICE@example.com, credentials_ref: ` + refA + `}`,
			[]string{"mailboxes[1]: bob@example.com (mailboxes[1]) uses the same destination account mail.example.com:993/alice@example.com as mailboxes[0] (alice@example.com)"}},
		{"same source user", `  - {email: carol@example.com, user: alice@example.com, credentials_ref: ` + refA + `}`,
			[]string{"uses the same source account imap.old.example:993/alice@example.com as mailboxes[0] (alice@example.com)"}},
		{"same user on another source host", `  - {email: dave@example.com, user: alice@example.com, source_host: other.example, credentials_ref: ` + refA + `}`, nil},
		{"merge on one side only", `  - {email: bob@example.com, dest_user: alice@example.com, merge: true, credentials_ref: ` + refA + `}`,
			[]string{"set merge: true on both"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(accountsSpec(tc.extra)))
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
	merged := strings.Replace(accountsSpec(`  - {email: bob@example.com, dest_user: alice@example.com, merge: true, credentials_ref: `+refA+`}`),
		"{email: alice@example.com,", "{email: alice@example.com, merge: true,", 1)
	s, err := Parse([]byte(merged))
	if err != nil {
		t.Fatalf("merged entries refused: %v", err)
	}
	if a, b := s.Accounts(s.Mailboxes[0]), s.Accounts(s.Mailboxes[1]); a.Dest != b.Dest {
		t.Errorf("merged entries: %+v %+v", a, b)
	}
	strict := strings.Replace(merged, "merge: true, credentials_ref", "merge: true, presync_mode: strict_mirror, credentials_ref", 1)
	if _, err := Parse([]byte(strict)); err == nil || !strings.Contains(err.Error(), "strict_mirror would delete") {
		t.Errorf("strict_mirror on a merged entry: %v", err)
	}
	one := accountsSpec(`  - {email: bob@example.com, presync_mode: strict_mirror, credentials_ref: ` + refA + `}`)
	if s, err := Parse([]byte(one)); err != nil {
		t.Errorf("err: want nil; per-mailbox strict_mirror: %v", err)
	} else if s.Mailboxes[1].PresyncMode != model.ModeStrictMirror {
		t.Errorf("s.Mailboxes[1].PresyncMode = %v, want model.ModeStrictMirror; per-mailbox strict_mirror: %v",
			s.Mailboxes[1].PresyncMode, err)
	}
}
