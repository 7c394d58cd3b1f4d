package mail

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cutover/cutover/activities/mail/folders"
	"github.com/cutover/cutover/activities/mail/mailtest"
	"github.com/cutover/cutover/internal/devtools/corpus"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/testenv"
)

// The job-wide filters through the engine on Dovecot: special uses left out (Trash,
// Spam as a well-known Junk name), a regex rename carrying a subtree to another parent, an
// exclude regex, and the size limit quarantining what is larger; verification judges under
// the same filters and finds nothing missing.
func TestFiltersSkipRenameSize(t *testing.T) {
	e := newEnv(t, nil, nil)
	at := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	msg := func(folder string, i, size int) mailtest.Message {
		body := strings.Repeat("x", size) + "\n"
		id := fmt.Sprintf("filters-%s-%d@example.org", strings.ReplaceAll(folder, "/", "-"), i)
		return mailtest.Message{Folder: folder, Date: at.Add(time.Duration(i) * time.Hour),
			Raw: corpus.Text(id, "a@example.org", "filters "+folder, at, body)}
	}
	src := testenv.MailAccount{Addr: e.src.Addr(), User: "alice", Password: srcPassword}
	mailtest.SeedIMAP(t, src, []mailtest.Message{
		msg("INBOX", 1, 100), msg("INBOX", 2, 40_000), // the second is over the limit
		msg("Trash", 1, 100), msg("Spam", 1, 100),
		msg("Old/2019", 1, 100), msg("Old/2019/Q1", 1, 100), msg("Projects", 1, 100),
	})
	e.spec.SkipSpecialUse = []string{"trash", "JUNK"}
	e.spec.Renames = []folders.Rename{{Match: `^Old/(.*)$`, To: "Archive/$1"}}
	e.spec.Exclude = []string{`^Projects$`}
	e.spec.MaxMessageSize = 20_000

	st := e.sync(model.ModeCopy)
	if st.Transferred != 3 {
		t.Fatalf("st.Transferred: want 3; transferred %d, quarantined %d, pending %d; want 3, 1, 0",
			st.Transferred, st.Quarantined, st.Pending)
	}
	if st.Quarantined != 1 {
		t.Fatalf("st.Quarantined: want 1; transferred %d, quarantined %d, pending %d; want 3, 1, 0",
			st.Transferred, st.Quarantined, st.Pending)
	}
	if st.Pending != 0 {
		t.Fatalf("st.Pending: want 0; transferred %d, quarantined %d, pending %d; want 3, 1, 0",
			st.Transferred, st.Quarantined, st.Pending)
	}
	type moved struct{ Source, Dest string }
	var got []moved
	for _, f := range st.Folders {
		got = append(got, moved{f.Source, f.Dest})
	}
	// "Old" itself (empty) does not match the rule and keeps its path.
	want := []moved{{"INBOX", "INBOX"}, {"Old", "INBOX.Old"}, {"Old/2019", "INBOX.Archive.2019"},
		{"Old/2019/Q1", "INBOX.Archive.2019.Q1"}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("folders synced (-want +got):\n%s", d)
	}
	// Read the destination ourselves: nothing of Trash, Spam or Projects, the renamed subtree there.
	dst := testenv.MailAccount{Addr: e.dst.Addr(), User: "alice", Password: dstPassword}
	var names []string
	for _, f := range dst.Folders(t) {
		if slices.ContainsFunc(f.Attrs, func(a string) bool { return a == `\Noselect` || a == `\NonExistent` }) {
			continue
		}
		if n := len(dst.Messages(t, f.Name).Messages); n > 0 {
			names = append(names, fmt.Sprintf("%s:%d", f.Name, n))
		}
	}
	if d := cmp.Diff([]string{"INBOX:1", "INBOX.Archive.2019:1", "INBOX.Archive.2019.Q1:1"}, names); d != "" {
		t.Errorf("destination folders with mail (-want +got):\n%s", d)
	}
	e.requireClean(1)
}
