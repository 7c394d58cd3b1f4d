package folders

import "testing"

func TestNamespacesOf(t *testing.T) {
	cyrus := Namespaces{Personal: []Namespace{{"INBOX.", "."}}, Other: []Namespace{{"user.", "."}},
		Shared: []Namespace{{"", "."}}}
	dovecot := Namespaces{Personal: []Namespace{{"", "/"}}, Other: []Namespace{{"Other Users/", "/"}},
		Shared: []Namespace{{"Shared/", "/"}}}
	courier := Namespaces{Personal: []Namespace{{"INBOX.", "."}}, Shared: []Namespace{{"#shared.", "."}, {"shared.", "."}}}
	plain := Namespaces{Personal: []Namespace{{"", "."}}}
	cases := []struct {
		ns         Namespaces
		name, want string
	}{
		{cyrus, "INBOX", NamespacePersonal},
		{cyrus, "inbox.Sent", NamespacePersonal},
		{cyrus, "INBOX.Sent", NamespacePersonal},
		{cyrus, "user.bob.Trash", NamespaceOther},
		{cyrus, "user", NamespaceOther},
		{cyrus, "shared-news", NamespaceShared},
		{dovecot, "Sent", NamespacePersonal},
		{dovecot, "Other Users/bob/INBOX", NamespaceOther},
		{dovecot, "Other Users", NamespaceOther},
		{dovecot, "Shared/news", NamespaceShared},
		{dovecot, "Shared Things", NamespacePersonal},
		{courier, "INBOX.Drafts", NamespacePersonal},
		{courier, "#shared.news.today", NamespaceShared},
		{courier, "shared.x", NamespaceShared},
		{plain, "anything", NamespacePersonal},
		{Namespaces{}, "anything", NamespacePersonal},
	}
	for _, c := range cases {
		if got := c.ns.Of(c.name); got != c.want {
			t.Errorf("%+v.Of(%q) = %s, want %s", c.ns, c.name, got, c.want)
		}
	}
}
