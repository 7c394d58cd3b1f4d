// Package identity names a message independently of the server it sits on, so the engine can
// tell whether a destination already holds it (adopted mail, an APPEND whose OK was lost, a
// source whose UIDVALIDITY changed) and verify can compare two folders.
//
// An identity is "m" + 32 hex digits of SHA-256 over the Message-ID and the normalised Date,
// From and Subject. It is size-independent on purpose: servers rewrite line endings and some
// add headers, so the same message rarely has the same size everywhere.
//
// A message without a Message-ID gets "h" + 32 hex digits over Date, From, To, Cc, Subject,
// In-Reply-To, the first Received header and the INTERNALDATE (to the second, UTC), which an
// APPEND preserves. Two byte-identical messages share their identity; callers match
// identities by count, never as a set, so both copies arrive.
package identity

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/mail"
	"strconv"
	"strings"
	"time"
)

// Fields are the header fields an identity reads, for
// BODY.PEEK[HEADER.FIELDS (...)] when bodies are not needed.
var Fields = []string{"Message-ID", "Date", "From", "To", "Cc", "Subject", "In-Reply-To", "Received"}

// MaxHeader bounds how much of a message Sniffer keeps while looking for the end of the header.
const MaxHeader = 256 << 10

// Header holds the first occurrence of each identity field, unfolded and whitespace-normalised.
type Header map[string]string

// Parse reads identity fields from a header block (CRLF or bare LF line endings; the body, if
// present, is ignored). Lines that are neither a field nor a continuation are skipped.
func Parse(b []byte) Header {
	h := Header{}
	var name string
	var val []byte
	flush := func() {
		if name == "" {
			return
		}
		if _, seen := h[name]; !seen {
			h[name] = normalise(val)
		}
		name, val = "", nil
	}
	for len(b) > 0 {
		var line []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			line, b = b, nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break // end of header
		}
		if line[0] == ' ' || line[0] == '\t' {
			if name != "" {
				val = append(append(val, ' '), line...)
			}
			continue
		}
		flush()
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			continue
		}
		field := strings.ToLower(string(bytes.TrimRight(line[:colon], " \t")))
		if !wanted(field) {
			continue
		}
		name, val = field, append([]byte(nil), line[colon+1:]...)
	}
	flush()
	return h
}

func wanted(field string) bool {
	for _, f := range Fields {
		if strings.EqualFold(f, field) {
			return true
		}
	}
	return false
}

// normalise collapses whitespace runs (folding included) into one space and trims.
func normalise(v []byte) string {
	return strings.Join(strings.Fields(string(v)), " ")
}

// MessageID is the normalised Message-ID: its first <...> token, else the trimmed value.
func (h Header) MessageID() string {
	v := h["message-id"]
	if i := strings.IndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j > 0 {
			return v[i : i+j+1]
		}
	}
	return v
}

// date renders Date as UTC seconds when it parses, so that "+0000" and "GMT" agree.
func (h Header) date() string {
	v := h["date"]
	if t, ok := commonDate(v); ok {
		return strconv.FormatInt(t.Unix(), 10)
	}
	if t, err := mail.ParseDate(v); err == nil {
		return strconv.FormatInt(t.Unix(), 10)
	}
	return v
}

// commonDateLayout is the Date most mail carries ("Tue, 7 Dec 2021 09:15:00 +0100").
// mail.ParseDate tries 24 layouts without a day of the week before it (each failure an error
// built and dropped, most of the CPU an identity costs); a value this layout takes whole starts
// with a day name, so no earlier layout of ParseDate takes it and both read the same instant.
const commonDateLayout = "Mon, 2 Jan 2006 15:04:05 -0700"

// commonDate parses v when it is exactly in commonDateLayout.
func commonDate(v string) (time.Time, bool) {
	if len(v) < len(commonDateLayout) || len(v) > len(commonDateLayout)+1 ||
		v[3] != ',' {
		return time.Time{}, false
	}
	t, err := time.Parse(commonDateLayout, v)
	return t, err == nil
}

// Of returns the identity of a message with header h and the given INTERNALDATE.
func Of(h Header, internalDate time.Time) string {
	sum := sha256.New()
	w := func(s string) { sum.Write([]byte(s)); sum.Write([]byte{0}) }
	prefix := "m"
	if id := h.MessageID(); id != "" {
		w("v1")
		w(id)
		w(h.date())
		w(h["from"])
		w(h["subject"])
	} else {
		prefix = "h"
		w("v1-noid")
		w(h.date())
		for _, f := range []string{"from", "to", "cc", "subject", "in-reply-to", "received"} {
			w(h[f])
		}
		if !internalDate.IsZero() {
			w(strconv.FormatInt(internalDate.Unix(), 10))
		}
	}
	return prefix + hex.EncodeToString(sum.Sum(nil)[:16])
}

// Describe is a short human description for reports: Message-ID or Subject and Date.
func (h Header) Describe() string {
	if id := h.MessageID(); id != "" {
		return id
	}
	s := h["subject"]
	if len(s) > 60 {
		s = s[:60] + "…"
	}
	return strconv.Quote(s) + " " + h["date"]
}

// Sniffer is an io.Writer that keeps the beginning of a message until the end of its header
// (or MaxHeader bytes), so the identity can be computed while the message streams past.
type Sniffer struct {
	buf  []byte
	done bool
}

// Write never fails; it copies only what the header needs.
func (s *Sniffer) Write(p []byte) (int, error) {
	if s.done {
		return len(p), nil
	}
	start := len(s.buf) - 3
	if start < 0 {
		start = 0
	}
	room := MaxHeader - len(s.buf)
	chunk := p
	if len(chunk) > room {
		chunk = chunk[:room]
	}
	s.buf = append(s.buf, chunk...)
	if i := headerEnd(s.buf[start:]); i >= 0 {
		s.buf = s.buf[:start+i]
		s.done = true
	} else if len(s.buf) >= MaxHeader {
		s.done = true
	}
	return len(p), nil
}

// headerEnd returns the offset just past the blank line ending a header, or -1.
func headerEnd(b []byte) int {
	for i := 0; i < len(b); i++ {
		if b[i] != '\n' {
			continue
		}
		j := i + 1
		if j < len(b) && b[j] == '\r' {
			j++
		}
		if j < len(b) && b[j] == '\n' {
			return j + 1
		}
	}
	return -1
}

// Header parses what was sniffed.
func (s *Sniffer) Header() Header { return Parse(s.buf) }

// Reset prepares the sniffer for the next message, keeping its buffer.
func (s *Sniffer) Reset() { s.buf, s.done = s.buf[:0], false }
