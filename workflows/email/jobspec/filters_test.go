package jobspec

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cutover/cutover/internal/model"
)

const filtersYAML = goodYAML + `
filters:
  max_message_size: 25MB
  include: ["^INBOX", "^Archive"]
  exclude: ["^Archive/Old$"]
  rename: [{match: "^Archive/(.*)$", to: "Old Archive/$1"}]
  since: 2020-01-01T00:00:00Z
  skip_special_use: [trash, junk]
`

// The job's filters reach every mailbox's engine spec: lists added to the mailbox's own, the
// mailbox's own date window winning, sizes with units; the workflow input round-trips them.
func TestFiltersReachMailboxes(t *testing.T) {
	s, err := Parse([]byte(filtersYAML))
	if err != nil {
		t.Fatal(err)
	}
	since := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	alice := s.Selection(s.Mailboxes[0])
	type view struct {
		Include, Exclude, Skip []string
		Renames                []model.FolderRename
		Since                  *time.Time
		Max                    int64
	}
	want := view{Include: []string{"^INBOX", "^Archive"}, Exclude: []string{"^Archive/Old$", "^Junk$"},
		Skip: []string{"trash", "junk"}, Renames: []model.FolderRename{{Match: "^Archive/(.*)$", To: "Old Archive/$1"}},
		Since: &since, Max: 25_000_000}
	got := view{alice.Include, alice.Exclude, alice.SkipSpecialUse, alice.Renames, alice.Since, alice.MaxMessageSize}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("alice's engine spec (-want +got):\n%s", d)
	}
	own := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
	s.Mailboxes[1].Before = &own
	if bob := s.Selection(s.Mailboxes[1]); bob.Since != nil {
		t.Errorf("bob.Since: want nil; bob's own window should replace the job's: since %v before %v",
			bob.Since, bob.Before)
	} else if bob.Before == nil {
		t.Errorf("bob.Before is nil; bob's own window should replace the job's: since %v before %v",
			bob.Since, bob.Before)
	} else if !bob.Before.Equal(own) {
		t.Errorf("bob.Before.Equal(own) is false; bob's own window should replace the job's: since %v before %v",
			bob.Since, bob.Before)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back Spec
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(s.Filters, back.Filters); d != "" {
		t.Errorf("filters after a JSON round trip (-want +got):\n%s", d)
	}
}

func TestFiltersRefused(t *testing.T) {
	bad := goodYAML + `
filters:
  max_message_size: 12 parsecs
`
	if _, err := Parse([]byte(bad)); err == nil || !strings.Contains(err.Error(), `unknown unit "parsecs"`) {
		t.Errorf("bad size: %v", err)
	}
	bad = goodYAML + `
filters:
  include: ["(["]
  rename: [{match: "^A$"}]
  since: 2024-01-01T00:00:00Z
  before: 2023-01-01T00:00:00Z
  skip_special_use: [spam]
`
	_, err := Parse([]byte(bad))
	for _, want := range []string{"filters.include[0]", "filters.rename[0].to: required", "filters.since: must be before",
		`filters.skip_special_use[0]: "spam": want trash, junk`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
	for in, want := range map[string]ByteSize{"1024": 1024, "1.5 KiB": 1536, "2MB": 2_000_000, "1GiB": 1 << 30} {
		if got, err := ParseByteSize(in); err != nil {
			t.Errorf("err: want nil; ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		} else if got != want {
			t.Errorf("got: want want; ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}
