package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/google/go-cmp/cmp"

	"github.com/cutover/cutover/internal/devtools/corpus"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/starter/cli"
	"github.com/cutover/cutover/starter/internal/stacktest"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// TestEmailDryRun: `cutover email dry-run` reports per mailbox what a pass would copy, refuse
// (over the spec's max_message_size) and, in the mirror modes after a first sync, delete, while
// both servers stay exactly as they were (read over IMAP by the test before and after).
func TestEmailDryRun(t *testing.T) {
	if testing.Short() {
		t.Skip("real servers: Temporal, PostgreSQL, two Dovecots")
	}
	const job, limit = 921, 100_000
	s := stacktest.Start(t, stacktest.Options{Users: 2, Messages: 6})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	env := s.Env()
	bob := s.Users[1]
	src := testenv.MailAccount{Addr: s.Src.Addr(), User: bob.Name, Password: bob.SrcPassword}
	dst := testenv.MailAccount{Addr: s.Dst.Addr(), User: bob.Name, Password: bob.DstPassword}
	at := time.Date(2025, 5, 1, 9, 0, 0, 0, time.UTC)
	src.Append(t, "INBOX", corpus.Text("big@demo.example", "a@example.com", "big", at, strings.Repeat("y", 2*limit)), nil, at)

	spec := s.EmailSpec(job)
	spec.Filters.MaxMessageSize = limit
	raw, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	specPath := filepath.Join(t.TempDir(), "job.json")
	if err := os.WriteFile(specPath, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	// What bob's source holds, counted by the test.
	var bobMsgs, bobBig int
	for _, f := range src.Folders(t) {
		if !selectable(f) {
			continue
		}
		for _, m := range src.Messages(t, f.Name).Messages {
			bobMsgs++
			if m.Size > limit {
				bobBig++
			}
		}
	}
	if bobBig != 1 {
		t.Fatalf("bob's source has %d messages over the limit, want the one appended", bobBig)
	}
	dryRun := func(mode string) emailapi.MailboxResult {
		t.Helper()
		before := snapshot(t, s)
		r := run(t, env, "", "email", "dry-run", specPath, "--mode", mode, "-o", "json")
		if r.code != cli.ExitOK {
			t.Fatalf("dry-run %s: exit %d\n%s%s", mode, r.code, r.stdout, r.stderr)
		}
		var res emailapi.WaveResult
		if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
			t.Fatalf("dry-run output: %v\n%s", err, r.stdout)
		}
		if d := cmp.Diff(before, snapshot(t, s)); d != "" {
			t.Fatalf("the %s dry run changed a server (-before +after):\n%s", mode, d)
		}
		if res.Mailboxes != 2 {
			t.Fatalf("res.Mailboxes: want 2; dry run %s: %d mailboxes, %d failed, %d results: %+v",
				mode, res.Mailboxes, res.Failed, len(res.Results), res)
		}
		if res.Failed != 0 {
			t.Fatalf("res.Failed: want 0; dry run %s: %d mailboxes, %d failed, %d results: %+v",
				mode, res.Mailboxes, res.Failed, len(res.Results), res)
		}
		if len(res.Results) != 2 {
			t.Fatalf("len(res.Results): want 2; dry run %s: %d mailboxes, %d failed, %d results: %+v",
				mode, res.Mailboxes, res.Failed, len(res.Results), res)
		}
		i := slices.IndexFunc(res.Results, func(m emailapi.MailboxResult) bool { return strings.HasPrefix(m.Email, bob.Name+"@") })
		return res.Results[i]
	}
	type counts struct{ Copy, Delete, Refuse int64 }
	got := dryRun("copy")
	if d := cmp.Diff(counts{int64(bobMsgs - 1), 0, 1}, counts{got.Transferred, got.Deleted, got.Facts.Quarantined}); d != "" {
		t.Errorf("bob before any sync (-want +got):\n%s", d)
	}
	r := run(t, env, "", "email", "dry-run", specPath)
	for _, want := range []string{"WOULD COPY", "WOULD DELETE", "WOULD REFUSE", "nothing changed on either server",
		fmt.Sprintf("%s@", bob.Name)} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("the table lacks %q:\n%s", want, r.stdout)
		}
	}

	// A first sync, then the job stopped: bob deletes one message at the source and keeps one
	// of his own at the destination.
	if r := run(t, env, "", "email", "start", specPath); r.code != cli.ExitOK {
		t.Fatalf("start: exit %d\n%s", r.code, r.stderr)
	}
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer wcancel()
	if _, err := s.Client.WaitEmail(wctx, job, 200*time.Millisecond, func(st emailapi.Status) bool {
		return st.Phase == model.PhaseDeltaSync
	}); err != nil {
		t.Fatal(err)
	}
	if r := run(t, env, "", "email", "abort", fmt.Sprint(job), "--reason", "dry run next"); r.code != cli.ExitOK {
		t.Fatalf("abort: exit %d\n%s", r.code, r.stderr)
	}
	for running := true; running; {
		if running, err = s.Client.EmailRunning(ctx, job); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	expungeFirst(t, src, "INBOX")
	dst.Append(t, "INBOX", corpus.Text("own@demo.example", "b@example.com", "mine", at, "the user's own\n"), nil, at)

	got = dryRun("mirror")
	if got.Deleted != 1 {
		t.Errorf("got.Deleted: want 1; bob, mirror: would copy %d, delete %d; want 0 and 1 (the copy whose source is gone)",
			got.Transferred, got.Deleted)
	} else if got.Transferred != 0 {
		t.Errorf("got.Transferred: want 0; bob, mirror: would copy %d, delete %d; want 0 and 1 (the copy whose source is gone)",
			got.Transferred, got.Deleted)
	}
	got = dryRun("strict_mirror")
	if got.Deleted != 2 {
		t.Errorf("got.Deleted: want 2; bob, strict_mirror: would copy %d, delete %d; want 0 and 2 (also his own message)",
			got.Transferred, got.Deleted)
	} else if got.Transferred != 0 {
		t.Errorf("got.Transferred: want 0; bob, strict_mirror: would copy %d, delete %d; want 0 and 2 (also his own message)",
			got.Transferred, got.Deleted)
	}
}

// snapshot is every folder's body digests on both servers for every user.
func snapshot(t *testing.T, s *stacktest.Stack) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, u := range s.Users {
		for side, a := range map[string]testenv.MailAccount{
			"src": {Addr: s.Src.Addr(), User: u.Name, Password: u.SrcPassword},
			"dst": {Addr: s.Dst.Addr(), User: u.Name, Password: u.DstPassword}} {
			for _, f := range a.Folders(t) {
				if !selectable(f) {
					continue
				}
				out[side+" "+u.Name+" "+f.Name] = bodies(a.Messages(t, f.Name))
			}
		}
	}
	return out
}

func selectable(f testenv.ListedFolder) bool {
	return !slices.ContainsFunc(f.Attrs, func(x string) bool { return strings.EqualFold(x, `\Noselect`) || x == `\NonExistent` })
}

// expungeFirst removes the lowest UID of a folder, as a mail client deleting it would.
func expungeFirst(t *testing.T, a testenv.MailAccount, folder string) {
	t.Helper()
	c := a.Login(t)
	defer c.Close()
	if _, err := c.Select(folder, nil).Wait(); err != nil {
		t.Fatal(err)
	}
	set := imap.SeqSetNum(1)
	if err := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}, Silent: true},
		nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
}
