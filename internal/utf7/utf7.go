// Package utf7 is IMAP's modified UTF-7 (RFC 3501 section 5.1.3), the one codec of the module:
// printable ASCII stands for itself except '&', written "&-"; anything else is UTF-16BE in
// modified base64 (',' instead of '/', no padding) between '&' and '-'.
package utf7

import (
	"encoding/base64"
	"errors"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

var b64 = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").
	WithPadding(base64.NoPadding)

// ErrInvalid means a name is not valid modified UTF-7.
var ErrInvalid = errors.New("invalid modified UTF-7 mailbox name")

// Encode encodes a UTF-8 mailbox name for the wire of a server without UTF8=ACCEPT (or for a
// Maildir++ folder name on disk).
func Encode(s string) string {
	var b strings.Builder
	var pending []rune
	flush := func() {
		if len(pending) == 0 {
			return
		}
		u := utf16.Encode(pending)
		raw := make([]byte, 2*len(u))
		for i, c := range u {
			raw[2*i], raw[2*i+1] = byte(c>>8), byte(c)
		}
		b.WriteByte('&')
		b.WriteString(b64.EncodeToString(raw))
		b.WriteByte('-')
		pending = pending[:0]
	}
	for _, r := range s {
		switch {
		case r == '&':
			flush()
			b.WriteString("&-")
		case r >= 0x20 && r <= 0x7e:
			flush()
			b.WriteRune(r)
		default:
			pending = append(pending, r)
		}
	}
	flush()
	return b.String()
}

// Decode decodes a modified UTF-7 mailbox name into UTF-8, refusing anything RFC 3501 does not
// allow (raw 8-bit bytes, unterminated or misaligned shifts, printable ASCII or unpaired
// surrogates hidden in a shift).
func Decode(s string) (string, error) {
	return decode(s, true)
}

// DecodeLenient decodes what it can: a name that is not valid modified UTF-7 comes back
// unchanged, since some servers write UTF-8 folder names directly (Maildir++ on disk). Within
// a valid shift it does not insist on the canonical form.
func DecodeLenient(s string) string {
	if !strings.Contains(s, "&") {
		return s
	}
	out, err := decode(s, false)
	if err != nil {
		return s
	}
	return out
}

func decode(s string, strict bool) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if strict && (c < 0x20 || c > 0x7e) {
			return "", ErrInvalid
		}
		if c != '&' {
			b.WriteByte(c)
			i++
			continue
		}
		end := strings.IndexByte(s[i+1:], '-')
		if end < 0 {
			return "", ErrInvalid
		}
		enc := s[i+1 : i+1+end]
		i += end + 2
		if enc == "" {
			b.WriteByte('&')
			continue
		}
		raw, err := b64.DecodeString(enc)
		if err != nil || len(raw)%2 != 0 {
			return "", ErrInvalid
		}
		u := make([]uint16, len(raw)/2)
		for j := range u {
			u[j] = uint16(raw[2*j])<<8 | uint16(raw[2*j+1])
		}
		for _, r := range utf16.Decode(u) {
			// A shifted run must not hide printable ASCII, and surrogates must pair up.
			if strict && ((r >= 0x20 && r <= 0x7e) || r == utf8.RuneError) {
				return "", ErrInvalid
			}
			b.WriteRune(r)
		}
	}
	return b.String(), nil
}
