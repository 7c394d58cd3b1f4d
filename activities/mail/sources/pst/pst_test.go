package pst

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/activities/mail/sources"
	"github.com/cutover/cutover/activities/mail/sources/pst/psttest"
	"github.com/cutover/cutover/internal/testing/testenv"
)

func requireReadpst(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath(Readpst); err != nil {
		testenv.Require(t, "readpst", err)
	}
}

func folderNames(s *sources.Snapshot) []string {
	var out []string
	for _, f := range s.Folders {
		out = append(out, f.Name)
	}
	return out
}

func TestOutlookPST(t *testing.T) {
	requireReadpst(t)
	work := t.TempDir()
	snap, ext, fresh, err := Open(context.Background(), "testdata/outlook.pst", work)
	if err != nil {
		t.Fatal(err)
	}
	if !fresh {
		t.Fatalf("fresh is false; extraction %+v fresh %v", ext, fresh)
	}
	if ext.Root != "Personal Folders" {
		t.Fatalf("ext.Root = %v, want \"Personal Folders\"; extraction %+v fresh %v", ext.Root, ext, fresh)
	}
	if ext.Quarantined != 0 {
		t.Fatalf("ext.Quarantined = %v, want 0; extraction %+v fresh %v", ext.Quarantined, ext, fresh)
	}
	names := folderNames(snap)
	// Folder names kept, including the non-ASCII one; the PST root is the mailbox itself.
	for _, want := range []string{"INBOX", "Recovered_Group2", "Sent Items", "Deleted Items", "收件箱"} {
		if !slices.Contains(names, want) {
			t.Errorf("folder %q missing from %v", want, names)
		}
	}
	if snap.Messages() != 2 {
		t.Fatalf("want snap.Messages() == 2; %d messages, %d quarantined; want 2, 0",
			snap.Messages(), len(snap.Quarantined))
	}
	if len(snap.Quarantined) != 0 {
		t.Fatalf("len(snap.Quarantined): want 0; %d messages, %d quarantined; want 2, 0",
			snap.Messages(), len(snap.Quarantined))
	}
	m := snap.Folder("INBOX").Messages[0]
	if m.Key != "1.eml" || !slices.Equal(m.Flags, []string{`\Seen`}) || !m.Date.Equal(time.Date(2007, 4, 29, 22, 27, 33, 0, time.UTC)) {
		t.Errorf("INBOX message %+v", m)
	}
	rc, err := m.Open()
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(rc)
	rc.Close()
	if int64(len(body)) != m.Size || !bytes.Contains(body, []byte("Subject: Welcome to Microsoft Office Outlook 2003")) {
		t.Errorf("message body (%d bytes, Size %d) lacks its subject", len(body), m.Size)
	}

	// A second Open reuses the extraction.
	snap2, _, fresh, err := Open(context.Background(), "testdata/outlook.pst", work)
	if err != nil {
		t.Fatalf("err: want nil; reopen: fresh %v err %v messages %d", fresh, err, snap2.Messages())
	}
	if fresh {
		t.Fatalf("fresh is true; reopen: fresh %v err %v messages %d", fresh, err, snap2.Messages())
	}
	if snap2.Messages() != 2 {
		t.Fatalf("want snap2.Messages() == 2; reopen: fresh %v err %v messages %d", fresh, err, snap2.Messages())
	}
}

func TestDamagedPSTQuarantines(t *testing.T) {
	requireReadpst(t)
	dir := t.TempDir()
	snap, ext, _, err := Open(context.Background(), psttest.Damaged(t, dir), filepath.Join(dir, "work"))
	if err != nil {
		t.Fatal(err)
	}
	if ext.Skipped != 1 {
		t.Fatalf("ext.Skipped = %v, want 1; extraction %+v, want exactly one quarantined item", ext.Skipped, ext)
	}
	if ext.Quarantined != 1 {
		t.Fatalf("ext.Quarantined = %v, want 1; extraction %+v, want exactly one quarantined item",
			ext.Quarantined, ext)
	}
	if ext.NotMail != 0 {
		t.Fatalf("ext.NotMail = %v, want 0; extraction %+v, want exactly one quarantined item", ext.NotMail, ext)
	}
	if snap.Messages() != 1 {
		t.Fatalf("want snap.Messages() == 1; %d messages, quarantined %+v", snap.Messages(), snap.Quarantined)
	}
	if len(snap.Quarantined) != 1 {
		t.Fatalf("len(snap.Quarantined) = %v, want 1; %d messages, quarantined %+v",
			len(snap.Quarantined), snap.Messages(), snap.Quarantined)
	}
	q := snap.Quarantined[0]
	if q.Folder != "INBOX" || !strings.Contains(q.Reason, `"Inbox"`) {
		t.Errorf("quarantined %+v, want the Inbox item", q)
	}
}

func TestDistributionListIsNotMail(t *testing.T) {
	requireReadpst(t)
	snap, ext, _, err := Open(context.Background(), "testdata/dist-list.pst", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if ext.Skipped != 1 {
		t.Fatalf("ext.Skipped = %v, want 1; extraction %+v quarantined %v", ext.Skipped, ext, snap.Quarantined)
	}
	if ext.NotMail != 1 {
		t.Fatalf("ext.NotMail = %v, want 1; extraction %+v quarantined %v", ext.NotMail, ext, snap.Quarantined)
	}
	if ext.Quarantined != 0 {
		t.Fatalf("ext.Quarantined = %v, want 0; extraction %+v quarantined %v",
			ext.Quarantined, ext, snap.Quarantined)
	}
	if len(snap.Quarantined) != 0 {
		t.Fatalf("len(snap.Quarantined) = %v, want 0; extraction %+v quarantined %v",
			len(snap.Quarantined), ext, snap.Quarantined)
	}
	joined := strings.Join(snap.Warnings, "\n")
	if !strings.Contains(joined, "IPM.DistList") || !strings.Contains(joined, ".vcf") || !strings.Contains(joined, ".ics") {
		t.Errorf("warnings do not name the items left out:\n%s", joined)
	}
}

func TestNotAPST(t *testing.T) {
	requireReadpst(t)
	dir := t.TempDir()
	b, err := os.ReadFile("testdata/outlook.pst")
	if err != nil {
		t.Fatal(err)
	}
	trunc := filepath.Join(dir, "truncated.pst")
	if err := os.WriteFile(trunc, b[:10000], 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, _, err = Open(context.Background(), trunc, filepath.Join(dir, "work"))
	var fe *sources.FormatError
	if !errors.As(err, &fe) || fe.File != trunc || !strings.Contains(err.Error(), "Could not get root record") {
		t.Fatalf("err = %v, want a FormatError naming %s and readpst's reason", err, trunc)
	}
	// Nothing half-extracted is left to be reused.
	left, _ := filepath.Glob(filepath.Join(dir, "work", "pst-*"))
	if len(left) != 0 {
		t.Errorf("work dir keeps %v after a failed extraction", left)
	}
}

func TestFolderTree(t *testing.T) {
	requireReadpst(t)
	snap, _, _, err := Open(context.Background(), "testdata/outlook.pst", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"INBOX", "Calendar", "Contacts", "Content.Filter", "Deleted Items", "Drafts", "Journal",
		"Junk E-mail", "Notes", "Outbox", "Recovered_Group2", "Recovered_Group2/Inbox", "Reminders", "Sent Items",
		"Tasks", "收件箱"}
	if got := folderNames(snap); !slices.Equal(got, want) {
		t.Errorf("folders\n got %q\nwant %q", got, want)
	}
}

// readpst must never run with its attachment-dropping options, and must keep Deleted Items.
func TestArgsKeepAttachments(t *testing.T) {
	args := Args("/out", "/in.pst")
	for _, bad := range []string{"-a", "-b", "-t", "-q"} {
		if slices.Contains(args, bad) {
			t.Errorf("readpst %v: %s drops data or the progress lines the quarantine relies on", args, bad)
		}
	}
	for _, need := range []string{"-e", "-D", "-j"} {
		if !slices.Contains(args, need) {
			t.Errorf("readpst %v lacks %s", args, need)
		}
	}
}
