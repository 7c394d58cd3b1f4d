package mbox

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/activities/mail/sources"
)

// Nasty originals: From_ lines in bodies (bare, already quoted, doubly quoted), CRLF and LF
// mixed within one message, a body ending in blank lines, 8-bit text, broken MIME.
var originals = []string{
	"From: a@example.com\r\nSubject: crlf\r\nDate: Tue, 02 Jan 2001 03:04:05 +0100\r\nStatus: RO\r\nX-Status: AF\r\n\r\nFrom here on, CRLF.\r\n>From quoted already\r\n\r\nFrom the end\r\n",
	"From: b@example.com\nSubject: lf with mixed\r\nDate: Wed, 03 Jan 2001 04:05:06 +0000\n\nline\r\n>>From deep\nFrom me Tue Jan  2 03:04:05 2001\n\n\n",
	"From: c@example.com\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\nX-Keywords: $Label1 project-x\nContent-Type: multipart/mixed; boundary=\"never\"\n\n--never\nbroken MIME, no closing boundary, Grüße\n",
	"From: d@example.com\nSubject: no trailing newline\n\nlast line without LF",
}

var fromDates = []time.Time{
	time.Date(2001, 1, 2, 2, 4, 5, 0, time.UTC),
	time.Date(2001, 1, 3, 4, 5, 6, 0, time.UTC),
	time.Date(2015, 7, 8, 9, 10, 11, 0, time.UTC),
	time.Date(1999, 12, 31, 23, 59, 59, 0, time.UTC),
}

var quoteRD = regexp.MustCompile(`(?m)^(>*From )`)
var quoteO = regexp.MustCompile(`(?m)^(From )`)

func fromLine(i int) string {
	return "From sender" + strconv.Itoa(i) + "@example.com " + fromDates[i].Format("Mon Jan _2 15:04:05 2006") + "\n"
}

// write builds an mbox of the given variant the way its writers do.
func write(t *testing.T, format Format, msgs []string) string {
	t.Helper()
	var b strings.Builder
	for i, m := range msgs {
		b.WriteString(fromLine(i))
		body := m
		switch format {
		case MboxRD:
			body = quoteRD.ReplaceAllString(m, ">$1")
		case MboxO:
			body = quoteO.ReplaceAllString(m, ">$1")
		case MboxCL2:
			hdr, rest, _ := strings.Cut(m, "\n\n")
			if strings.Contains(hdr, "\r\n\r\n") {
				hdr, rest, _ = strings.Cut(m, "\r\n\r\n")
				body = hdr + "\r\nContent-Length: " + strconv.Itoa(len(rest)) + "\r\n\r\n" + rest
			} else {
				body = hdr + "\nContent-Length: " + strconv.Itoa(len(rest)) + "\n\n" + rest
			}
		}
		b.WriteString(body)
		if !strings.HasSuffix(body, "\n") {
			b.WriteString("\n")
		}
		b.WriteString("\n")
	}
	p := filepath.Join(t.TempDir(), "box")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func read(t *testing.T, m sources.Message) string {
	t.Helper()
	rc, err := m.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) != m.Size {
		t.Errorf("message %s: Size %d, read %d bytes", m.Key, m.Size, len(b))
	}
	return string(b)
}

// expected is what survives the mbox round trip: the message, with a final newline when it
// had none (an mbox cannot tell that newline from the separator).
func expected(m string) string {
	if !strings.HasSuffix(m, "\n") {
		return m + "\n"
	}
	return m
}

func TestVariantsRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		write, read Format
		// mboxo cannot represent a body line ">From " (it reads back as "From "): skip the
		// originals that have one when the variant is lossy.
		lossy bool
	}{
		{MboxRD, MboxRD, false},
		{MboxRD, Auto, false},
		{MboxO, MboxO, true},
		{MboxCL2, MboxCL2, false},
		{MboxCL2, Auto, false},
	} {
		t.Run(string(tc.write)+"/"+string(tc.read), func(t *testing.T) {
			snap, err := Open(write(t, tc.write, originals), tc.read)
			if err != nil {
				t.Fatal(err)
			}
			if len(snap.Folders) != 1 {
				t.Fatalf("len(snap.Folders) = %v, want 1; folders = %+v", len(snap.Folders), snap.Folders)
			}
			if snap.Folders[0].Name != "INBOX" {
				t.Fatalf("snap.Folders[0].Name = %v, want \"INBOX\"; folders = %+v", snap.Folders[0].Name, snap.Folders)
			}
			msgs := snap.Folders[0].Messages
			if len(msgs) != len(originals) {
				t.Fatalf("len(msgs): want len(originals); %d messages, %d quarantined, want %d",
					len(msgs), len(snap.Quarantined), len(originals))
			}
			if len(snap.Quarantined) != 0 {
				t.Fatalf("len(snap.Quarantined): want 0; %d messages, %d quarantined, want %d",
					len(msgs), len(snap.Quarantined), len(originals))
			}
			for i, m := range msgs {
				got := read(t, m)
				want := expected(originals[i])
				if tc.write == MboxCL2 {
					hdr, rest, _ := strings.Cut(want, "\n\n")
					if strings.Contains(hdr, "\r\n\r\n") {
						hdr, rest, _ = strings.Cut(want, "\r\n\r\n")
						want = hdr + "\r\nContent-Length: " + strconv.Itoa(len(strings.SplitN(originals[i], "\r\n\r\n", 2)[1])) + "\r\n\r\n" + rest
					} else {
						want = hdr + "\nContent-Length: " + strconv.Itoa(len(strings.SplitN(originals[i], "\n\n", 2)[1])) + "\n\n" + rest
					}
					if !strings.HasSuffix(originals[i], "\n") {
						want = strings.TrimSuffix(want, "\n")
					}
				}
				if tc.lossy && strings.Contains(originals[i], "\n>From") {
					want = strings.ReplaceAll(want, "\n>From", "\nFrom")
				}
				if got != want {
					t.Errorf("message %d:\n got %q\nwant %q", i, got, want)
				}
				if !m.Date.Equal(wantDate(i)) {
					t.Errorf("message %d date %v, want %v", i, m.Date, wantDate(i))
				}
			}
			if f := msgs[0].Flags; !slices.Equal(f, []string{`\Seen`, `\Answered`, `\Flagged`}) {
				t.Errorf("flags of message 0 = %v", f)
			}
			if f := msgs[2].Flags; !slices.Equal(f, []string{"$Label1", "project-x"}) {
				t.Errorf("flags of message 2 = %v", f)
			}
		})
	}
}

// wantDate: the From_ line has no zone, so a Received/Date within a day wins (message 0 is
// "+0100" and an hour off the From_ line's wall clock), else the From_ line.
func wantDate(i int) time.Time {
	switch i {
	case 0:
		return time.Date(2001, 1, 2, 3, 4, 5, 0, time.FixedZone("", 3600))
	case 1:
		return time.Date(2001, 1, 3, 4, 5, 6, 0, time.UTC)
	}
	return fromDates[i]
}

func TestUnquotedFromInCL2AutoDetected(t *testing.T) {
	// mboxcl2 does not quote, so a body From_ line that even parses as one must not split.
	msg := "Subject: tricky\n\nbody\n\nFrom evil@example.com Tue Jan  2 03:04:05 2001\nstill body\n"
	p := write(t, MboxCL2, []string{msg, originals[3]})
	snap, err := Open(p, Auto)
	if err != nil {
		t.Fatal(err)
	}
	if n := snap.Messages(); n != 2 {
		t.Fatalf("%d messages, want 2", n)
	}
	if got := read(t, snap.Folders[0].Messages[0]); !strings.Contains(got, "\nFrom evil@example.com") {
		t.Errorf("body From_ line altered: %q", got)
	}
}

func TestBrokenContentLengthFallsBack(t *testing.T) {
	// A Content-Length that lies is ignored in auto mode (mboxrd) and an error in cl2 mode.
	data := fromLine(0) + "Subject: liar\nContent-Length: 3\n\nmuch longer body\n\n" + fromLine(1) + "Subject: two\n\nx\n"
	p := filepath.Join(t.TempDir(), "liar.mbox")
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	snap, err := Open(p, Auto)
	if err != nil {
		t.Fatal(err)
	}
	if n := snap.Messages(); n != 2 {
		t.Fatalf("%d messages, want 2", n)
	}
	_, err = Open(p, MboxCL2)
	var fe *sources.FormatError
	if !errors.As(err, &fe) {
		t.Fatalf("errors.As(err, &fe) is false; cl2 with a lying Content-Length: %v, want a FormatError at offset 0 of %s",
			err, p)
	}
	if fe.File != p {
		t.Fatalf("fe.File = %v, want %v (p); cl2 with a lying Content-Length: %v, want a FormatError at offset 0 of %s",
			fe.File, p, err, p)
	}
	if fe.Offset != 0 {
		t.Fatalf("fe.Offset = %v, want 0; cl2 with a lying Content-Length: %v, want a FormatError at offset 0 of %s",
			fe.Offset, err, p)
	}
}

func TestMalformed(t *testing.T) {
	dir := t.TempDir()
	notMbox := filepath.Join(dir, "notmbox")
	if err := os.WriteFile(notMbox, []byte("\n\nSubject: hello\n\nbody\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(notMbox, Auto)
	var fe *sources.FormatError
	if !errors.As(err, &fe) {
		t.Fatalf("errors.As(err, &fe) is false; err = %v, want FormatError naming %s at offset 2", err, notMbox)
	}
	if fe.File != notMbox {
		t.Fatalf("fe.File = %v, want %v (notMbox); err = %v, want FormatError naming %s at offset 2",
			fe.File, notMbox, err, notMbox)
	}
	if fe.Offset != 2 {
		t.Fatalf("fe.Offset = %v, want 2; err = %v, want FormatError naming %s at offset 2", fe.Offset, err, notMbox)
	}
	if !strings.Contains(err.Error(), notMbox) || !strings.Contains(err.Error(), "offset 2") {
		t.Errorf("message %q does not name the file and offset", err)
	}

	// A message without any header is quarantined with its offset, the others still come.
	headless := filepath.Join(dir, "headless")
	data := fromLine(0) + "no header here, just text\n\n" + fromLine(1) + "Subject: fine\n\nok\n"
	if err := os.WriteFile(headless, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	snap, err := Open(headless, Auto)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Messages() != 1 {
		t.Fatalf("want snap.Messages() == 1; messages %d, quarantined %+v", snap.Messages(), snap.Quarantined)
	}
	if len(snap.Quarantined) != 1 {
		t.Fatalf("len(snap.Quarantined) = %v, want 1; messages %d, quarantined %+v",
			len(snap.Quarantined), snap.Messages(), snap.Quarantined)
	}
	if !strings.Contains(snap.Quarantined[0].Reason, headless+" at offset 0") {
		t.Fatalf("strings.Contains(snap.Quarantined[0].Reason, headless+\" at offset 0\") is false; messages %d, quarantined %+v",
			snap.Messages(), snap.Quarantined)
	}
}

func TestDirectoryTree(t *testing.T) {
	dir := t.TempDir()
	one := fromLine(0) + "Subject: one\n\n1\n"
	files := map[string]string{
		"Inbox":                  one,
		"Inbox.msf":              "// index, not mail",
		"Sent.mbox":              one + "\n" + fromLine(1) + "Subject: two\n\n2\n",
		"Archive.sbd/2023":       one,
		"Archive.sbd/Größe.mbox": one,
		"Archive":                "",
		"notes.txt":              "not mail",
	}
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	snap, err := Open(dir, Auto)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range snap.Folders {
		names = append(names, f.Name+":"+strconv.Itoa(len(f.Messages)))
	}
	want := []string{"INBOX:1", "Archive:0", "Archive/2023:1", "Archive/Größe:1", "Sent:2"}
	if !slices.Equal(names, want) {
		t.Errorf("folders %v, want %v", names, want)
	}
	if len(snap.Warnings) != 2 {
		t.Errorf("warnings %v, want the .msf and the .txt named", snap.Warnings)
	}
}

func TestLongLinesAndBigMessage(t *testing.T) {
	// A line far longer than the scanner's buffer, starting like a quoted From_ line.
	long := ">From " + strings.Repeat("x", 200<<10) + "\n"
	msg := "Subject: long\n\n" + long + "end\n"
	p := write(t, MboxRD, []string{msg})
	snap, err := Open(p, MboxRD)
	if err != nil {
		t.Fatal(err)
	}
	if got := read(t, snap.Folders[0].Messages[0]); got != msg {
		t.Errorf("long line altered (len %d vs %d)", len(got), len(msg))
	}
	if !bytes.Equal([]byte(quoteRD.ReplaceAllString(msg, ">$1"))[:20], []byte("Subject: long\n\n>>Fro")) {
		t.Fatal("test writer did not quote")
	}
}
