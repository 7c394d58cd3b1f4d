package sources

import (
	"bufio"
	"bytes"
	"io"
	"net/mail"
	"strconv"
	"strings"
	"time"
)

// MaxHeaderBytes bounds how much of a message is read to find its header: a header larger than
// this is treated as ending there (the message itself is still copied whole).
const MaxHeaderBytes = 256 << 10

// Header is a message header, field names lower-cased, values unfolded, in order.
type Header map[string][]string

// Get returns the first value of a field.
func (h Header) Get(name string) string {
	if v := h[strings.ToLower(name)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// ReadHeader reads the header of a message from r, tolerating bare LF, CRLF, 8-bit bytes and
// lines that are not fields (which real mail has). It reports whether at least one field line
// was seen, which is what tells a message from something that is not one.
func ReadHeader(r io.Reader) (Header, bool, error) {
	br := bufio.NewReaderSize(io.LimitReader(r, MaxHeaderBytes), 32<<10)
	h := Header{}
	var name string
	var value strings.Builder
	fields := 0
	flush := func() {
		if name != "" {
			h[name] = append(h[name], strings.TrimSpace(value.String()))
			fields++
		}
		name = ""
		value.Reset()
	}
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// An absurdly long line: keep what fits, skip the rest of it.
			for err == bufio.ErrBufferFull {
				_, err = br.ReadSlice('\n')
			}
		}
		trimmed := bytes.TrimRight(line, "\r\n")
		if len(trimmed) == 0 && (err == nil || len(line) > 0) {
			break // end of header
		}
		if len(line) > 0 {
			switch {
			case trimmed[0] == ' ' || trimmed[0] == '\t':
				if name != "" {
					value.WriteByte(' ')
					value.Write(bytes.TrimSpace(trimmed))
				}
			default:
				flush()
				if i := bytes.IndexByte(trimmed, ':'); i > 0 && validFieldName(trimmed[:i]) {
					name = strings.ToLower(string(trimmed[:i]))
					value.Write(trimmed[i+1:])
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return h, fields > 0, err
		}
	}
	flush()
	return h, fields > 0, nil
}

func validFieldName(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 127 {
			return false
		}
	}
	return true
}

// HeaderDate is the message's delivery time from its header: the topmost Received field (the
// last hop, i.e. when the mailbox got it), else the Date field. ok is false when neither parses.
func HeaderDate(h Header) (time.Time, bool) {
	// Only the topmost hop says when this mailbox received it.
	if rcvd := h["received"]; len(rcvd) > 0 {
		if i := strings.LastIndexByte(rcvd[0], ';'); i >= 0 {
			if t, ok := ParseDate(rcvd[0][i+1:]); ok {
				return t, true
			}
		}
	}
	return ParseDate(h.Get("date"))
}

// ParseDate parses an RFC 5322 date and the common ways real mail gets it wrong.
func ParseDate(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, false
	}
	if t, err := mail.ParseDate(s); err == nil {
		return t, true
	}
	// Drop comments such as "(PST)" and retry, then try a few non-standard layouts.
	if i := strings.IndexByte(s, '('); i > 0 {
		s = strings.TrimSpace(s[:i])
		if t, err := mail.ParseDate(s); err == nil {
			return t, true
		}
	}
	for _, layout := range []string{
		"Mon, 2 Jan 2006 15:04:05 MST",
		"Mon, 2 Jan 2006 15:04 -0700",
		"2 Jan 2006 15:04:05 -0700",
		"Mon, 2 Jan 2006 15:04:05",
		"Mon Jan 2 15:04:05 2006",
		"Mon Jan 2 15:04:05 -0700 2006",
		"Mon Jan 2 15:04:05 MST 2006",
		time.RFC3339,
	} {
		if t, err := time.Parse(layout, strings.Join(strings.Fields(s), " ")); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// Status and X-Status (mutt, Dovecot mbox, readpst), X-Keywords and X-Mozilla-Status carry
// flags inside mbox and eml files.
func HeaderFlags(h Header) []string {
	var flags []string
	add := func(f string) {
		for _, g := range flags {
			if strings.EqualFold(g, f) {
				return
			}
		}
		flags = append(flags, f)
	}
	for _, c := range h.Get("status") {
		if c == 'R' {
			add(`\Seen`)
		}
	}
	for _, c := range h.Get("x-status") {
		switch c {
		case 'A':
			add(`\Answered`)
		case 'F':
			add(`\Flagged`)
		case 'T':
			add(`\Draft`)
		case 'D':
			add(`\Deleted`)
		}
	}
	if v := h.Get("x-mozilla-status"); v != "" {
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 32); err == nil {
			if n&0x1 != 0 {
				add(`\Seen`)
			}
			if n&0x2 != 0 {
				add(`\Answered`)
			}
			if n&0x4 != 0 {
				add(`\Flagged`)
			}
			if n&0x8 != 0 {
				add(`\Deleted`)
			}
		}
	}
	for _, kw := range strings.FieldsFunc(h.Get("x-keywords"), func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		if k := Keyword(kw); k != "" {
			add(k)
		}
	}
	return flags
}

// Keyword makes name a valid IMAP keyword (an atom without '\'), or "" when nothing is left.
// Zimbra tags and X-Keywords may hold spaces and specials that IMAP forbids.
func Keyword(name string) string {
	var b strings.Builder
	for _, r := range strings.TrimSpace(name) {
		switch {
		case r <= ' ' || r >= 0x7f || strings.ContainsRune(`(){%*"\]`, r):
			b.WriteByte('_')
		default:
			b.WriteRune(r)
		}
	}
	k := strings.Trim(b.String(), "_")
	if k == "" {
		return ""
	}
	return b.String()
}
