package imapx

import (
	"strings"

	"github.com/cutover/cutover/internal/utf7"
)

// quotable reports whether s fits an IMAP quoted string (no CR, LF, NUL or 8-bit bytes).
func quotable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\r' || c == '\n' || c == 0 || c >= 0x80 {
			return false
		}
	}
	return true
}

// quote renders an IMAP quoted string; callers check quotable first (mailbox names are
// modified UTF-7, hence 7-bit).
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// quoteMailbox encodes a UTF-8 mailbox name in modified UTF-7 (INBOX is case-insensitive).
func quoteMailbox(name string) string {
	if strings.EqualFold(name, "INBOX") {
		return "INBOX"
	}
	return quote(utf7.Encode(name))
}

// validFlag accepts system flags and keywords that are valid IMAP atoms; anything else would
// break the command.
func validFlag(f string) bool {
	if f == "" || strings.EqualFold(f, `\Recent`) || f == `\*` {
		return false
	}
	for i := 0; i < len(f); i++ {
		c := f[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`(){%*"]`, c) >= 0 || (c == '\\' && i > 0) {
			return false
		}
	}
	return true
}
