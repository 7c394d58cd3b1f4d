package identity

import (
	"bytes"
	"net/mail"
	"strings"
	"testing"
	"time"
)

func TestParseNormalises(t *testing.T) {
	crlf := "Received: from a by b; Mon, 1 Jan 2001 00:00:00 +0000\r\nReceived: second\r\n" +
		"Message-ID:\r\n <abc@example.com>\r\nSubject: Hello\r\n\t  world\r\nFROM: A <a@example.com>\r\n" +
		"X-Other: ignored\r\nDate: Mon, 02 Jan 2006 15:04:05 +0000\r\n\r\nSubject: body, not header\r\n"
	h := Parse([]byte(crlf))
	want := map[string]string{
		"message-id": "<abc@example.com>", "subject": "Hello world", "from": "A <a@example.com>",
		"date": "Mon, 02 Jan 2006 15:04:05 +0000", "received": "from a by b; Mon, 1 Jan 2001 00:00:00 +0000",
	}
	for k, v := range want {
		if h[k] != v {
			t.Errorf("%s = %q, want %q", k, h[k], v)
		}
	}
	if _, ok := h["x-other"]; ok {
		t.Error("unwanted field kept")
	}
	// Bare LF, a header-fields fetch answer and the full message agree.
	lf := strings.ReplaceAll(crlf, "\r\n", "\n")
	fields := "Message-ID:\r\n <abc@example.com>\r\nSubject: Hello\r\n\t  world\r\nFROM: A <a@example.com>\r\nDate: Mon, 02 Jan 2006 15:04:05 +0000\r\n" +
		"Received: from a by b; Mon, 1 Jan 2001 00:00:00 +0000\r\nReceived: second\r\n\r\n"
	id := Of(h, time.Time{})
	if got := Of(Parse([]byte(lf)), time.Time{}); got != id {
		t.Errorf("bare LF identity %s != %s", got, id)
	}
	if got := Of(Parse([]byte(fields)), time.Time{}); got != id {
		t.Errorf("HEADER.FIELDS identity %s != %s", got, id)
	}
}

func TestIdentity(t *testing.T) {
	base := "Message-ID: <x@y>\r\nDate: Mon, 02 Jan 2006 15:04:05 +0000\r\nFrom: a@b\r\nSubject: s\r\n\r\nbody"
	id := Of(Parse([]byte(base)), time.Time{})
	if !strings.HasPrefix(id, "m") || len(id) != 33 {
		t.Fatalf("identity %q: want m + 32 hex digits", id)
	}
	same := []string{
		strings.Replace(base, "body", "a different, longer body", 1),                        // size-independent
		strings.Replace(base, "+0000", "GMT", 1),                                            // same instant
		strings.Replace(base, "Message-ID: <x@y>", "Message-ID:   <x@y>  (comment)", 1),     // token extracted
		strings.Replace(base, "Subject: s", "Subject: s\r\nX-Spam: added by the server", 1), // other fields ignored
		strings.Replace(base, "From: a@b", "From:\r\n  a@b", 1),                             // folding
	}
	for _, s := range same {
		if got := Of(Parse([]byte(s)), time.Now()); got != id {
			t.Errorf("identity changed for %q", s)
		}
	}
	differ := []string{
		strings.Replace(base, "<x@y>", "<x2@y>", 1),
		strings.Replace(base, "Subject: s", "Subject: t", 1),
		strings.Replace(base, "From: a@b", "From: c@d", 1),
		strings.Replace(base, "15:04:05", "15:04:06", 1),
	}
	for _, s := range differ {
		if got := Of(Parse([]byte(s)), time.Time{}); got == id {
			t.Errorf("identity unchanged for %q", s)
		}
	}
}

func TestNoMessageIDFallback(t *testing.T) {
	msg := []byte("Date: Mon, 02 Jan 2006 15:04:05 +0000\r\nFrom: a@b\r\nTo: c@d\r\nSubject: s\r\n\r\nbody")
	d1 := time.Date(2006, 1, 2, 15, 4, 5, 0, time.UTC)
	id := Of(Parse(msg), d1)
	if !strings.HasPrefix(id, "h") {
		t.Fatalf("identity %q: want the h fallback", id)
	}
	if Of(Parse(msg), d1.In(time.FixedZone("x", 3600))) != id {
		t.Error("INTERNALDATE zone must not matter")
	}
	if Of(Parse(msg), d1.Add(time.Second)) == id {
		t.Error("INTERNALDATE must distinguish messages without Message-ID")
	}
	if Of(Parse(bytes.Replace(msg, []byte("To: c@d"), []byte("To: e@f"), 1)), d1) == id {
		t.Error("To must distinguish messages without Message-ID")
	}
}

func TestSniffer(t *testing.T) {
	msg := "Subject: hi\r\nMessage-ID: <s@t>\r\n\r\n" + strings.Repeat("body ", 100000)
	var s Sniffer
	// Feed in awkward chunks so the blank line straddles writes.
	for i := 0; i < len(msg); i += 7 {
		end := min(i+7, len(msg))
		if n, err := s.Write([]byte(msg[i:end])); n != end-i {
			t.Fatalf("n: want end-i; Write = %d, %v", n, err)
		} else if err != nil {
			t.Fatalf("err: want nil; Write = %d, %v", n, err)
		}
	}
	if got := s.Header().MessageID(); got != "<s@t>" {
		t.Errorf("MessageID = %q", got)
	}
	if len(s.buf) > 64 {
		t.Errorf("kept %d bytes, want only the header", len(s.buf))
	}
	s.Reset()
	s.Write([]byte("Subject: no end of header " + strings.Repeat("x", MaxHeader)))
	if len(s.buf) != MaxHeader {
		t.Errorf("len(s.buf): want MaxHeader; unterminated header: kept %d bytes", len(s.buf))
	} else if s.Header()["subject"] == "" {
		t.Errorf("want s.Header()[\"subject\"] != \"\"; unterminated header: kept %d bytes", len(s.buf))
	}
	s.Reset()
	s.Write([]byte("Message-ID: <lf@x>\n\nbody\n"))
	if s.Header().MessageID() != "<lf@x>" || !s.done {
		t.Error("bare LF header end not found")
	}
}

// TestCommonDateReadsWhatParseDateReads: the common Date layout gives the instant
// mail.ParseDate gives, and anything else goes to ParseDate.
func TestCommonDateReadsWhatParseDateReads(t *testing.T) {
	for _, v := range []string{
		"Tue, 7 Dec 2021 09:15:00 +0100", "Tue, 07 Dec 2021 09:15:00 +0100", "Sun, 31 Dec 1999 23:59:59 -1130",
		"Mon, 1 Jan 2024 00:00:00 +0000", "Fri, 29 Feb 2008 12:00:00 -0000", "Wed, 12 Oct 2022 7:05:09 +0200",
	} {
		got, ok := commonDate(v)
		if !ok {
			t.Errorf("commonDate(%q) took the slow path, want the common layout", v)
			continue
		}
		want, err := mail.ParseDate(v)
		if err != nil {
			t.Fatalf("mail.ParseDate(%q): %v", v, err)
		}
		if !got.Equal(want) {
			t.Errorf("commonDate(%q) = %v, want %v (mail.ParseDate)", v, got, want)
		}
	}
	for _, v := range []string{
		"7 Dec 2021 09:15:00 +0100", " Tue, 7 Dec 2021 09:15:00 +0100", "Tue, 7 Dec 2021 09:15:00 +0100 (CET)",
		"Tue, 7 Dec 21 09:15:00 +0100", "Tue, 7 Dec 2021 09:15 +0100", "Tue, 7 Dec 2021 09:15:00 GMT", "", "garbage",
	} {
		if _, ok := commonDate(v); ok {
			t.Errorf("commonDate(%q) took the common layout, want mail.ParseDate's", v)
		}
	}
}

// TestCommonDateIsCheap: an identity's Date in the common layout is read without the failed
// layouts of mail.ParseDate (24 errors built and dropped before it gets there).
func TestCommonDateIsCheap(t *testing.T) {
	h := Header{"date": "Tue, 7 Dec 2021 09:15:00 +0100"}
	if n := testing.AllocsPerRun(100, func() { h.date() }); n > 2 {
		t.Fatalf("reading a common Date allocated %.0f times, want at most 2", n)
	}
}
