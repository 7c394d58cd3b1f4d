package gate

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/cutover/cutover/internal/model"
)

// MaxUnlisted bounds the mailboxes a Summary keeps in compact form beyond the MaxFindings
// each check lists (about 40 bytes each), so a Summary stays well under Temporal's payload
// limit. Past it a skip of a mailbox that is neither listed nor kept here leaves the gate at
// the next pass, as before.
const MaxUnlisted = 10000

// Unlisted is one mailbox's verdicts on the checks whose tallies count it without listing it
// (Tally.Truncated), in compact form: "CODES SOURCE EMAIL", CODES one letter a mailbox check
// in mailboxChecks order, 'w' warn, 'f' fail, '-' listed in the check or passing it. A skipped
// mailbox's verdicts are taken out of every check from them, with no new pass (apply).
// Each (mailbox, check) that did not pass is in exactly one place: listed, or here.
type Unlisted = string

func statusCode(s model.CheckStatus) byte {
	switch s {
	case model.CheckFail:
		return 'f'
	case model.CheckWarn:
		return 'w'
	}
	return '-'
}

// addUnlisted records findings the tallies could not list, one entry a mailbox.
func (s *Summary) addUnlisted(byCheck map[model.CheckID][]MailboxFinding) {
	var order []string
	codes := map[string][]byte{}
	source := map[string]int64{}
	for i, id := range mailboxChecks {
		for _, f := range byCheck[id] {
			c, ok := codes[f.Email]
			if !ok {
				c = []byte(strings.Repeat("-", len(mailboxChecks)))
				order = append(order, f.Email)
			}
			c[i] = statusCode(f.Status)
			codes[f.Email], source[f.Email] = c, f.Source
		}
	}
	for _, e := range order {
		s.keepUnlisted(fmt.Sprintf("%s %d %s", codes[e], source[e], e))
	}
}

func (s *Summary) keepUnlisted(u ...Unlisted) {
	for _, e := range u {
		if len(s.Unlisted) >= MaxUnlisted {
			s.UnlistedDropped = true
			return
		}
		s.Unlisted = append(s.Unlisted, e)
	}
}

// unlisted returns the findings of check id that the summary keeps for the given mailboxes
// outside the check's list.
func (s Summary) unlisted(id model.CheckID, emails []string) []MailboxFinding {
	if len(emails) == 0 {
		return nil
	}
	return s.unlistedWhere(id, -1, func(e string) bool { return slices.Contains(emails, e) })
}

// unlistedWhere returns up to limit (< 0: all) findings of check id kept outside its list,
// of the mailboxes pick selects; their Message says only the status.
func (s Summary) unlistedWhere(id model.CheckID, limit int, pick func(string) bool) []MailboxFinding {
	i := slices.Index(mailboxChecks, id)
	if i < 0 {
		return nil
	}
	var out []MailboxFinding
	for _, e := range s.Unlisted {
		if limit >= 0 && len(out) >= limit {
			break
		}
		codes, rest, _ := strings.Cut(e, " ")
		src, email, _ := strings.Cut(rest, " ")
		if len(codes) != len(mailboxChecks) || !pick(email) {
			continue
		}
		n, _ := strconv.ParseInt(src, 10, 64)
		f := MailboxFinding{Email: email, Source: n}
		switch codes[i] {
		case 'f':
			f.Status = model.CheckFail
		case 'w':
			f.Status = model.CheckWarn
		default:
			continue
		}
		f.Message = fmt.Sprintf("%s: %ss (not listed; the report has every mailbox)", email, f.Status)
		out = append(out, f)
	}
	return out
}
