package mail

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/activities/mail/mailtest"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// malformed is one hostile message of the source.
type malformed struct {
	id, what string
	raw      []byte
}

func malformedCorpus() []malformed {
	hdr := func(id, extra string) string {
		return "From: x@example.org\r\nTo: alice@example.org\r\nSubject: malformed " + id + "\r\nDate: Mon, 2 Jan 2006 15:04:05 +0000\r\nMessage-ID: <" + id + "@malformed.example>\r\n" + extra
	}
	return []malformed{
		{"nul", "NUL bytes in the body", []byte(hdr("nul", "") + "\r\nbefore\x00after\x00\x00 binary\r\n")},
		{"nul-header", "a NUL byte in a header", []byte(hdr("nul-header", "X-Broken: a\x00b\r\n") + "\r\nbody\r\n")},
		{"long-header", "a 2 MB header line", []byte(hdr("long-header", "X-Long: "+strings.Repeat("y", 2<<20)+"\r\n") + "\r\nbody\r\n")},
		{"charset", "Latin-1 bytes declared UTF-8, 8-bit headers, an unknown charset",
			[]byte(hdr("charset", "Content-Type: text/plain; charset=x-no-such-charset\r\nX-Name: Jos\xe9 M\xfcller\r\n") + "\r\nna\xefve caf\xe9 \xff\xfe\r\n")},
		{"truncated-mime", "a multipart cut before its closing boundary", []byte(hdr("truncated-mime",
			"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"zz\"\r\n") +
			"\r\n--zz\r\nContent-Type: text/plain\r\n\r\nfirst part\r\n--zz\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA")},
		{"no-body", "headers only, no blank line", []byte(strings.TrimSuffix(hdr("no-body", ""), "\r\n"))},
		{"bare-lf", "bare LF line endings and a 100 KB line", []byte(strings.ReplaceAll(hdr("bare-lf", ""), "\r\n", "\n") + "\n" + strings.Repeat("z", 100<<10) + "\n")},
		{"bare-cr", "bare CRs", []byte(hdr("bare-cr", "") + "\r\nline\rwith\r\rcarriage returns\r\n")},
	}
}

// TestFaultMalformedMessages copies a source full of malformed messages: NUL bytes in a body
// and a header, a 2 MB header line, wrong and unknown charsets, a multipart cut short, a
// message without a body, bare LF and bare CR line endings. The pass must not fail or panic;
// each message either arrives exactly once — byte-identical to what the source serves, or as
// the destination's own normalisation of it — or is quarantined with a reason that says why;
// nothing is left pending, and verification counts nothing missing.
func TestFaultMalformedMessages(t *testing.T) {
	e := newEnv(t, nil, nil)
	ms := malformedCorpus()
	var corpus []mailtest.Message
	d := time.Date(2006, 1, 2, 15, 4, 5, 0, time.UTC)
	for i, m := range ms {
		corpus = append(corpus, mailtest.Message{Folder: "INBOX", Date: d.Add(time.Duration(i) * time.Hour), Raw: m.raw})
	}
	corpus = append(corpus, mailtest.Bulk(mailtest.BulkOptions{Messages: 20, Seed: 3})...) // ordinary mail beside them
	mailtest.SeedMaildir(t, e.src, "alice", corpus)

	st, err := e.eng.Sync(context.Background(), emailapi.PassRequest{Spec: e.spec, Mode: model.ModeCopy}, SyncOptions{})
	if err != nil {
		t.Fatalf("the pass failed on malformed input: %v", err)
	}
	t.Logf("pass: transferred %d quarantined %d pending %d errors %v", st.Transferred, st.Quarantined, st.Pending, st.ErrorsByClass)
	if st.Pending != 0 {
		t.Errorf("%d messages left pending", st.Pending)
	}
	qs, err := e.db.ListMailQuarantine(context.Background(), e.spec.MailboxID, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]string{}
	for _, q := range qs {
		reasons[q.Description] = q.ErrorClass + ": " + q.Reason
	}
	// Compared with what the source serves: Dovecot sends NULs as 0x80 and bare LFs as CRLF.
	src := rawMessages(t, client(t, e.src, srcPassword))
	dst := rawMessages(t, client(t, e.dst, dstPassword))
	for _, m := range ms {
		key := "INBOX <" + m.id + "@malformed.example>"
		got, want := dst[key], src[key]
		why, quarantined := reasons["<"+m.id+"@malformed.example>"]
		switch {
		case quarantined && len(got) == 0:
			if len(strings.TrimSpace(why)) < 10 {
				t.Errorf("%s (%s): quarantined without a clear reason: %q", m.id, m.what, why)
			}
			t.Logf("%-15s quarantined — %s", m.id, why)
		case quarantined:
			t.Errorf("%s (%s): quarantined (%s) and also on the destination %d times", m.id, m.what, why, len(got))
		case len(got) != 1:
			t.Errorf("%s (%s): %d copies on the destination, want 1 (or a quarantine)", m.id, m.what, len(got))
		case len(want) == 1 && bytes.Equal(got[0], want[0]):
			t.Logf("%-15s copied byte-identical (%d bytes)", m.id, len(got[0]))
		case m.id == "bare-cr" && bytes.Equal(got[0], bareCR.ReplaceAll(want[0], []byte("\r\n"))):
			t.Logf("%-15s copied; the destination stored its bare CRs as line breaks", m.id)
		default:
			t.Errorf("%s (%s): the destination copy differs from the source (%d vs %d bytes)", m.id, m.what, len(got[0]), len(want[0]))
		}
	}
	rep := e.verify()
	if rep.Missing != 0 || !rep.OK {
		t.Errorf("verify: missing %d ok %v", rep.Missing, rep.OK)
	}
	if st := e.sync(model.ModeCopy); st.Transferred != 0 {
		t.Errorf("st.Transferred: want 0; second pass: transferred %d pending %d, want 0, 0",
			st.Transferred, st.Pending)
	} else if st.Pending != 0 {
		t.Errorf("st.Pending: want 0; second pass: transferred %d pending %d, want 0, 0", st.Transferred, st.Pending)
	}
}

// TestFaultUnreadableSourceMessage: a message the source cannot send — a Maildir file shorter
// than the size its name records, which Dovecot answers with "* BYE FETCH failed" every time —
// is quarantined as unreadable with the reason after a few dropped connections, and the rest
// of its folder is copied: one broken message no longer fails its whole mailbox (retried by
// every Temporal attempt until the mailbox failed). Later passes try it again.
func TestFaultUnreadableSourceMessage(t *testing.T) {
	e := newEnv(t, nil, nil)
	d := time.Date(2006, 1, 2, 15, 4, 5, 0, time.UTC)
	corpus := mailtest.Bulk(mailtest.BulkOptions{Messages: 30, Seed: 4})
	liar := mailtest.Message{Folder: "INBOX", Date: d, Raw: mailtest.Text("size-lie@malformed.example", "x@example.org", "a lie",
		d, strings.Repeat("this message lies about its size\n", 100))}
	corpus = slices.Insert(corpus, 10, liar)
	mailtest.SeedMaildir(t, e.src, "alice", corpus)
	announced := shrinkMaildirFile(t, e, "size-lie", 600)

	st, err := e.eng.Sync(context.Background(), emailapi.PassRequest{Spec: e.spec, Mode: model.ModeCopy}, SyncOptions{})
	if err != nil {
		t.Fatalf("one unreadable message failed the pass: %v", err)
	}
	if st.Transferred != 30 {
		t.Errorf("st.Transferred: want 30; transferred %d quarantined %d pending %d errors %v, want 30, 1, 0 and one unreadable",
			st.Transferred, st.Quarantined, st.Pending, st.ErrorsByClass)
	} else if st.Quarantined != 1 {
		t.Errorf("st.Quarantined: want 1; transferred %d quarantined %d pending %d errors %v, want 30, 1, 0 and one unreadable",
			st.Transferred, st.Quarantined, st.Pending, st.ErrorsByClass)
	} else if st.Pending != 0 {
		t.Errorf("st.Pending: want 0; transferred %d quarantined %d pending %d errors %v, want 30, 1, 0 and one unreadable",
			st.Transferred, st.Quarantined, st.Pending, st.ErrorsByClass)
	} else if st.ErrorsByClass["unreadable"] != 1 {
		t.Errorf("st.ErrorsByClass[\"unreadable\"] = %v, want 1; transferred %d quarantined %d pending %d errors %v, want 30, 1, 0 and one unreadable",
			st.ErrorsByClass["unreadable"], st.Transferred, st.Quarantined, st.Pending, st.ErrorsByClass)
	}
	qs, err := e.db.ListMailQuarantine(context.Background(), e.spec.MailboxID, 0, false)
	if err != nil {
		t.Fatalf("err: want nil; quarantine: %+v %v", qs, err)
	}
	if len(qs) != 1 {
		t.Fatalf("len(qs) = %v, want 1; quarantine: %+v %v", len(qs), qs, err)
	}
	if q := qs[0]; q.ErrorClass != "unreadable" || !q.Retry || !strings.Contains(q.Reason, "connection dropped 3 times") {
		t.Errorf("quarantine row: %+v", q)
	}
	// The quarantined UID is the liar's (the source's index still knows its Message-ID).
	out, err := e.src.Doveadm(t, "search", "-u", "alice", "mailbox", "INBOX", "header", "message-id", "size-lie@malformed.example")
	if f := strings.Fields(out); err != nil {
		t.Errorf("err: want nil; quarantined UID %d; the source says the liar is %q (%v)", qs[0].SourceUID, out, err)
	} else if len(f) != 2 {
		t.Errorf("len(f) = %v, want 2; quarantined UID %d; the source says the liar is %q (%v)",
			len(f), qs[0].SourceUID, out, err)
	} else if f[1] != fmt.Sprint(qs[0].SourceUID) {
		t.Errorf("f[1] = %v, want %v (fmt.Sprint(qs[0].SourceUID)); quarantined UID %d; the source says the liar is %q (%v)",
			f[1], fmt.Sprint(qs[0].SourceUID), qs[0].SourceUID, out, err)
	}
	t.Logf("stored 600 bytes announced as %d: quarantined as %s — %s", announced, qs[0].ErrorClass, qs[0].Reason)
	dc := client(t, e.dst, dstPassword)
	if n := count(t, dc, "INBOX"); n != 30 {
		t.Errorf("destination INBOX holds %d messages, want the 30 readable ones", n)
	}
	// The next pass tries it again (the source may have been repaired) and copies nothing twice.
	st, err = e.eng.Sync(context.Background(), emailapi.PassRequest{Spec: e.spec, Mode: model.ModeCopy}, SyncOptions{})
	if err != nil {
		t.Errorf("err: want nil; second pass: %v, transferred %d quarantined %d pending %d",
			err, st.Transferred, st.Quarantined, st.Pending)
	} else if st.Transferred != 0 {
		t.Errorf("st.Transferred: want 0; second pass: %v, transferred %d quarantined %d pending %d",
			err, st.Transferred, st.Quarantined, st.Pending)
	} else if st.Quarantined != 1 {
		t.Errorf("st.Quarantined: want 1; second pass: %v, transferred %d quarantined %d pending %d",
			err, st.Transferred, st.Quarantined, st.Pending)
	} else if st.Pending != 0 {
		t.Errorf("st.Pending: want 0; second pass: %v, transferred %d quarantined %d pending %d",
			err, st.Transferred, st.Quarantined, st.Pending)
	}
	if n := count(t, dc, "INBOX"); n != 30 {
		t.Errorf("after the second pass the destination INBOX holds %d messages", n)
	}
}

// bareCR is a CR not followed by LF.
var bareCR = regexp.MustCompile(`\r(?:[^\n]|$)`)

// shrinkMaildirFile cuts the message with the id to keep bytes while its file name keeps the
// size it was written with (",S=..."): Dovecot announces that size and then has less to send.
// It returns the announced size.
func shrinkMaildirFile(t *testing.T, e *env, id string, keep int) int {
	t.Helper()
	dir := filepath.Join(e.src.Maildir("alice"), "cur")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range entries {
		p := filepath.Join(dir, en.Name())
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte("<"+id+"@malformed.example>")) {
			continue
		}
		if err := os.Truncate(p, int64(keep)); err != nil {
			t.Fatal(err)
		}
		var size int
		if _, err := fmt.Sscanf(en.Name()[strings.Index(en.Name(), ",S=")+3:], "%d", &size); err != nil {
			t.Fatalf("no size in %s", en.Name())
		}
		return size
	}
	t.Fatalf("message %s not found", id)
	return 0
}
