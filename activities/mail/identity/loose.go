package identity

import (
	"crypto/sha256"
	"encoding/hex"
	"mime"
	"strconv"
	"strings"
	"time"
)

// Servers rewrite what they store: Cyrus (munge8bit, its default) turns every raw 8-bit byte
// of a header into 'X' ("Grüße" becomes "GrXXXXe"), others encode raw 8-bit text as RFC 2047
// words, refold long lines or prepend a Received field. The exact identity (Of) of such a
// copy differs from the source's; Loose is a second key, equal for a message and any of those
// rewritten copies, for matching what the ledger cannot name by UID (an APPEND whose answer
// was lost, a source whose UIDVALIDITY changed, mail already on the destination). It is
// coarser than Of, so callers try Of first.

// Loose returns the rewrite-tolerant key of a message: "l" + 32 hex digits over the
// Message-ID and Date and a skeleton of From and Subject (see skeleton) or, without a
// Message-ID, the skeletons of From, To, Cc, Subject and In-Reply-To, the Date and the
// INTERNALDATE. Received fields are left out: a server may add one.
func Loose(h Header, internalDate time.Time) string {
	sum := sha256.New()
	w := func(s string) { sum.Write([]byte(s)); sum.Write([]byte{0}) }
	if id := h.MessageID(); id != "" {
		w("l1")
		w(id)
		w(h.date())
		w(skeleton(h["from"]))
		w(skeleton(h["subject"]))
	} else {
		w("l1-noid")
		w(h.date())
		for _, f := range []string{"from", "to", "cc", "subject", "in-reply-to"} {
			w(skeleton(h[f]))
		}
		if !internalDate.IsZero() {
			w(strconv.FormatInt(internalDate.Unix(), 10))
		}
	}
	return "l" + hex.EncodeToString(sum.Sum(nil)[:16])
}

var wordDecoder = mime.WordDecoder{}

// skeleton reduces a header value to what survives the rewritings above: RFC 2047 words are
// decoded, whitespace is dropped, and every run of non-ASCII bytes, 'X' and '?' (the
// replacement characters servers use) becomes one marker. A value and its munged copy share
// their skeleton; values that differ only inside such a run collide, which the Message-ID and
// Date beside it make harmless.
func skeleton(v string) string {
	if d, err := wordDecoder.DecodeHeader(v); err == nil {
		v = d
	}
	var b strings.Builder
	marked := false
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c >= 0x80 || c == 'X' || c == '?':
			if !marked {
				b.WriteByte(0)
			}
			marked = true
			continue
		case c == ' ' || c == '\t':
			continue
		}
		marked = false
		b.WriteByte(c)
	}
	return b.String()
}

// fieldNames are the identity fields as headers spell them, for reports.
var fieldNames = map[string]string{"message-id": "Message-ID", "date": "Date", "from": "From", "to": "To", "cc": "Cc",
	"subject": "Subject", "in-reply-to": "In-Reply-To", "received": "Received"}

// Rewritten lists the identity fields whose (normalised) values differ between a message as
// the source has it and as the destination stored it, in Fields order ("Subject", "From").
func Rewritten(src, dst Header) []string {
	var out []string
	for _, f := range Fields {
		k := strings.ToLower(f)
		if src[k] != dst[k] {
			out = append(out, fieldNames[k])
		}
	}
	return out
}
