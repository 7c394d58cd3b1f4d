package email_test

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cutover/cutover/internal/testing/testenv"
)

// This file compares two servers directly (IMAP only), for the interoperability matrix: it
// knows nothing of the engine's ledger, identities or verification.

// account is one login with its personal namespace.
type account struct {
	testenv.MailAccount
	prefix, delim string
}

func openAccount(t *testing.T, a testenv.MailAccount) account {
	t.Helper()
	c := a.Login(t)
	defer c.Close()
	out := account{MailAccount: a, delim: "/"}
	ns, err := c.Namespace().Wait()
	if err != nil {
		t.Fatal(err)
	}
	if len(ns.Personal) > 0 {
		out.prefix = ns.Personal[0].Prefix
		if ns.Personal[0].Delim != 0 {
			out.delim = string(ns.Personal[0].Delim)
		}
	}
	return out
}

// personal lists the account's selectable folders in its personal namespace.
func (a account) personal(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, f := range a.Folders(t) {
		if slices.ContainsFunc(f.Attrs, func(x string) bool { return strings.EqualFold(x, `\Noselect`) }) {
			continue
		}
		if strings.EqualFold(f.Name, "INBOX") || strings.HasPrefix(f.Name, a.prefix) {
			out = append(out, f.Name)
		}
	}
	return out
}

// levels splits a folder name below the personal prefix.
func (a account) levels(name string) []string {
	if strings.EqualFold(name, "INBOX") {
		return []string{"INBOX"}
	}
	return strings.Split(strings.TrimPrefix(name, a.prefix), a.delim)
}

func (a account) join(levels []string) string {
	if len(levels) == 1 && levels[0] == "INBOX" {
		return "INBOX"
	}
	return a.prefix + strings.Join(levels, a.delim)
}

// wellKnown are the corpus's folder names every server convention maps to its own name.
var wellKnown = map[string]string{"Sent Items": "Sent", "Entwürfe": "Drafts"}

// destName is where a source folder's mail belongs on the destination.
func destName(src, dst account, name string) string {
	l := src.levels(name)
	if w, ok := wellKnown[l[0]]; ok && len(l) == 1 {
		l = []string{w}
	}
	return dst.join(l)
}

// compareServers checks that alice's personal mail on the destination is the source's: every
// message, in the folder its path maps to, with the same body and INTERNALDATE, the same
// system flags and its keywords (a keyword may be missing only in a folder holding 100, Cyrus's
// limit; none the source does not have, so removals count), header bytes changed only by Cyrus and only where the source has raw 8-bit bytes,
// no other message in those folders, and no folder beyond them except the old names of folders
// renamed on the source (kept, and reported by the job).
func compareServers(t *testing.T, srcSrv, dstSrv testenv.IMAPServer) {
	t.Helper()
	src, dst := openAccount(t, srcSrv.Account("alice")), openAccount(t, dstSrv.Account("alice"))
	mapped := map[string]bool{}
	var rewritten, dropped int
	for _, name := range src.personal(t) {
		dn := destName(src, dst, name)
		mapped[dn] = true
		sm, dm := src.Messages(t, name).Messages, dst.Messages(t, dn).Messages
		key := func(m testenv.StoredMessage) string {
			return fmt.Sprintf("%s %d", m.BodySHA256[:12], m.InternalDate.Unix())
		}
		pool := map[string][]testenv.StoredMessage{}
		for _, m := range dm {
			pool[key(m)] = append(pool[key(m)], m)
		}
		keywords := map[string]bool{}
		for _, m := range dm {
			for _, f := range m.Flags {
				if !strings.HasPrefix(f, `\`) {
					keywords[f] = true
				}
			}
		}
		var missing []string
		for _, m := range sm {
			k := key(m)
			if len(pool[k]) == 0 {
				missing = append(missing, fmt.Sprintf("%s %q", k, firstLine(m.Header, "Subject")))
				continue
			}
			// Among copies of the same body and date (exact duplicates), prefer the same flags.
			i := max(0, slices.IndexFunc(pool[k], func(d testenv.StoredMessage) bool { return slices.Equal(d.Flags, m.Flags) }))
			d := pool[k][i]
			pool[k] = slices.Delete(pool[k], i, i+1)
			sys := func(fs []string) []string {
				return slices.DeleteFunc(slices.Clone(fs), func(f string) bool { return !strings.HasPrefix(f, `\`) })
			}
			kw := func(fs []string) []string {
				return slices.DeleteFunc(slices.Clone(fs), func(f string) bool { return strings.HasPrefix(f, `\`) })
			}
			if diff := cmp.Diff(sys(m.Flags), sys(d.Flags)); diff != "" {
				t.Errorf("%s → %s %q: system flags (-source +destination):\n%s", name, dn, firstLine(m.Header, "Subject"), diff)
			}
			if gained := slices.DeleteFunc(kw(d.Flags), func(f string) bool { return slices.Contains(m.Flags, f) }); len(gained) > 0 {
				t.Errorf("%s → %s %q: keywords %v on the destination, not on the source", name, dn, firstLine(m.Header, "Subject"),
					gained)
			}
			if lost := slices.DeleteFunc(kw(m.Flags), func(f string) bool { return slices.Contains(d.Flags, f) }); len(lost) > 0 {
				dropped++
				if len(keywords) < 100 {
					t.Errorf("%s → %s %q: keywords %v missing, in a folder holding %d", name, dn, firstLine(m.Header, "Subject"),
						lost, len(keywords))
				}
			}
			if !bytes.Equal(m.Header, d.Header) {
				rewritten++
				if dstSrv.Kind() != testenv.KindCyrus || !has8bit(m.Header) {
					t.Errorf("%s → %s: header changed on the way:\nsource      %q\ndestination %q", name, dn, m.Header, d.Header)
				}
			}
		}
		var extra []string
		for k, ms := range pool {
			for _, m := range ms {
				extra = append(extra, fmt.Sprintf("%s %q", k, firstLine(m.Header, "Subject")))
			}
		}
		if len(missing)+len(extra) > 0 {
			t.Errorf("%s → %s: %d missing on the destination %v, %d extra %v", name, dn, len(missing), missing, len(extra), extra)
		}
	}
	var unexpected []string
	for _, name := range dst.personal(t) {
		if !mapped[name] && !strings.Contains(name, "Projects") { // the renamed folder's old name
			unexpected = append(unexpected, name)
		}
	}
	if len(unexpected) > 0 {
		t.Errorf("destination folders with no source folder: %v", unexpected)
	}
	t.Logf("compared %d source folders: %d message(s) with headers rewritten by the destination, %d stored without "+
		"some keywords", len(mapped), rewritten, dropped)
	if dstSrv.Kind() == testenv.KindCyrus && (rewritten == 0 || dropped == 0) {
		t.Errorf("Cyrus rewrote %d header(s) and dropped keywords of %d message(s): the corpus should make it do both",
			rewritten, dropped)
	}
}

// checkSpecialUse checks that the destination folders carry their SPECIAL-USE attribute (the
// engine created them on a server with CREATE-SPECIAL-USE, from the source's attribute or the
// folder's well-known name).
func checkSpecialUse(t *testing.T, a testenv.MailAccount, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	for _, f := range a.Folders(t) {
		if _, ok := want[f.Name]; !ok {
			continue
		}
		for _, attr := range f.Attrs {
			if slices.ContainsFunc([]string{`\Sent`, `\Drafts`, `\Trash`, `\Junk`, `\Archive`}, func(u string) bool {
				return strings.EqualFold(u, attr)
			}) {
				got[f.Name] = attr
			}
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("destination folders' special use (-want +got):\n%s", diff)
	}
}

func has8bit(b []byte) bool { return slices.ContainsFunc(b, func(c byte) bool { return c >= 0x80 }) }

// firstLine returns a header field's value (unfolded no further), for messages in failures.
func firstLine(header []byte, field string) string {
	for _, l := range strings.Split(string(header), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(k, field) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
