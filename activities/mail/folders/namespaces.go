package folders

import "strings"

// Namespace kinds (RFC 2342). A job migrates the personal namespace; other users' folders
// (Cyrus "user.bob.Trash", Dovecot "Other Users/…") and shared folders (Cyrus "shared-news",
// Courier "#shared.…") belong to other accounts and are left out unless a mailbox's spec
// names their kind.
const (
	NamespacePersonal = "personal"
	NamespaceOther    = "other"
	NamespaceShared   = "shared"
)

// Namespaces are all of a server's namespaces, as NAMESPACE lists them.
type Namespaces struct {
	Personal, Other, Shared []Namespace
}

// Of returns the kind of namespace a folder belongs to: the one whose prefix is the longest
// that the name starts with (a hierarchy node named like a prefix without its separator,
// "user" for "user.", counts as inside). INBOX is always personal, and so is a name no
// prefix matches (a server without NAMESPACE, or one listing only a personal namespace).
func (n Namespaces) Of(name string) string {
	if strings.EqualFold(name, "INBOX") {
		return NamespacePersonal
	}
	kind, best := NamespacePersonal, -1
	try := func(k string, nss []Namespace) {
		for _, ns := range nss {
			if l := len(ns.Prefix); l > best && inside(name, ns) {
				kind, best = k, l
			}
		}
	}
	try(NamespacePersonal, n.Personal) // first: it wins ties
	try(NamespaceOther, n.Other)
	try(NamespaceShared, n.Shared)
	return kind
}

func inside(name string, ns Namespace) bool {
	p := ns.Prefix
	if p == "" {
		return true
	}
	if hasPrefixFold(name, p, strings.HasPrefix(strings.ToUpper(p), "INBOX")) {
		return true
	}
	// The prefix's own hierarchy node ("user" for "user.", "Other Users" for "Other Users/").
	return ns.Delim != "" && strings.HasSuffix(p, ns.Delim) && name == strings.TrimSuffix(p, ns.Delim)
}

// hasPrefixFold is strings.HasPrefix, case-insensitive when fold (INBOX's case never matters).
func hasPrefixFold(s, prefix string, fold bool) bool {
	if !fold {
		return strings.HasPrefix(s, prefix)
	}
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
