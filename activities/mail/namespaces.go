package mail

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/cutover/cutover/activities/mail/folders"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// A source account may list other users' folders it has rights on (Cyrus "user.bob.Trash",
// Dovecot "Other Users/bob/…") and shared folders (Cyrus "shared-news", Courier "#shared.…").
// They belong to other accounts: copied as this user's folders they would end up twice on the
// destination, or in the wrong mailbox. A job migrates the personal namespace; the others are
// left out and reported (preflight, every pass), unless the mailbox's spec names their kind
// (MailboxSpec.Namespaces).
//
// A destination folder no source folder maps to is reported too: one the job filled from a
// source folder since renamed or deleted keeps its copies (nothing deletes a folder), so the
// same mail may now be in two destination folders; the others are the destination's own.

// namespaced is a source that knows its server's namespaces.
type namespaced interface {
	Namespaces() folders.Namespaces
}

func (s *imapSource) Namespaces() folders.Namespaces { _, all, _ := s.nsq.get(); return all }

// Namespaces passes the wrapped IMAP source's namespaces through.
func (g *gmailSource) Namespaces() folders.Namespaces {
	if n, ok := g.Source.(namespaced); ok {
		return n.Namespaces()
	}
	return folders.Namespaces{}
}

// sourceNamespace is the kind of namespace a source folder is in (personal for sources that
// have no namespaces: files).
func sourceNamespace(src Source, name string) string {
	if n, ok := src.(namespaced); ok {
		return n.Namespaces().Of(name)
	}
	return folders.NamespacePersonal
}

// validNamespaces checks MailboxSpec.Namespaces.
func validNamespaces(kinds []string) error {
	for _, k := range kinds {
		if k != folders.NamespaceOther && k != folders.NamespaceShared {
			return fmt.Errorf("namespaces: %q: want %q or %q (the personal namespace is always migrated)", k,
				folders.NamespaceOther, folders.NamespaceShared)
		}
	}
	return nil
}

// destOnlyFolders lists the destination's selectable personal folders, INBOX aside, that no
// mapping lands in.
func destOnlyFolders(d *dest, listed []SourceFolder, mappings []folders.Mapping) []emailapi.DestOnlyFolder {
	mapped := map[string]bool{}
	for _, m := range mappings {
		mapped[strings.ToUpper(m.Dest)] = true
	}
	var out []emailapi.DestOnlyFolder
	for _, f := range listed {
		if f.NoSelect || strings.EqualFold(f.Name, "INBOX") || mapped[strings.ToUpper(f.Name)] ||
			d.namespaces().Of(f.Name) != folders.NamespacePersonal {
			continue
		}
		out = append(out, emailapi.DestOnlyFolder{Name: f.Name, Messages: f.Messages})
	}
	slices.SortFunc(out, func(a, b emailapi.DestOnlyFolder) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// staleFolders names, for destination-only folders, the source folder this job synced into
// them that the source no longer lists (renamed or deleted there).
func (e *Engine) staleFolders(ctx context.Context, mailboxID int64, listed []SourceFolder, destOnly []emailapi.DestOnlyFolder) error {
	if e.Store == nil || len(destOnly) == 0 {
		return nil
	}
	lfs, err := e.Store.ListMailFolders(ctx, mailboxID)
	if err != nil {
		return err
	}
	onSource := map[string]bool{}
	for _, f := range listed {
		onSource[f.Name] = true
	}
	for i := range destOnly {
		for _, lf := range lfs {
			if lf.DestName == destOnly[i].Name && !onSource[lf.SourceName] {
				destOnly[i].FromSource = lf.SourceName
				break
			}
		}
	}
	return nil
}

// namespaceWarnings are the preflight's lines about folders left out and destination-only
// folders.
func namespaceWarnings(pl *plan) []string {
	var out []string
	if len(pl.outside) > 0 {
		var names []string
		for _, f := range pl.outside {
			names = append(names, fmt.Sprintf("%s (%s, %d messages)", f.Name, f.Namespace, f.Messages))
		}
		out = append(out, fmt.Sprintf("%d source folder(s) outside the personal namespace are left out: %s; "+
			"the mailbox's namespaces option (other, shared) includes them", len(pl.outside), strings.Join(names, ", ")))
	}
	for _, f := range pl.destOnly {
		if f.FromSource != "" {
			out = append(out, fmt.Sprintf("destination folder %q (%d messages) holds this job's copies of source folder %q, "+
				"which the source no longer has (renamed or deleted): kept", f.Name, f.Messages, f.FromSource))
		} else {
			out = append(out, fmt.Sprintf("destination folder %q (%d messages) has no source folder", f.Name, f.Messages))
		}
	}
	return out
}
