package folders

import (
	"slices"
	"testing"
)

func TestNamespaceTranslation(t *testing.T) {
	slash := Namespace{Delim: "/"}
	courier := Namespace{Prefix: "INBOX.", Delim: "."}
	dot := Namespace{Delim: "."}
	cases := []struct {
		from, to Namespace
		name     string
		want     string
	}{
		{slash, courier, "Ñoño/Año", "INBOX.Ñoño.Año"},
		{slash, dot, "Projects/2023/Q1", "Projects.2023.Q1"},
		{courier, slash, "INBOX.Projects.2023", "Projects/2023"},
		{courier, slash, "INBOX", "INBOX"},
		{slash, courier, "INBOX", "INBOX"},
		{slash, courier, "INBOX/Sub", "INBOX.Sub"},
		{slash, dot, "v1.2/notes", "v1_2.notes"},
		{dot, slash, "a/b.c", "a_b/c"},
		{Namespace{}, slash, "flat", "flat"},
	}
	for _, c := range cases {
		if got := c.to.Join(c.from.Levels(c.name)); got != c.want {
			t.Errorf("%q from %+v to %+v = %q, want %q", c.name, c.from, c.to, got, c.want)
		}
	}
	if got := courier.Parents("INBOX.a.b.c"); !slices.Equal(got, []string{"INBOX.a", "INBOX.a.b"}) {
		t.Errorf("Parents = %q", got)
	}
}

func TestFilter(t *testing.T) {
	f, err := NewFilter([]string{`^INBOX$`, `^Projects(/|$)`}, []string{`/Q1$`})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		"INBOX": true, "Projects": true, "Projects/2023": true, "Projects/2023/Q1": false, "Sent": false, "INBOXES": false,
	} {
		if got := f.Match(name); got != want {
			t.Errorf("Match(%q) = %v, want %v", name, got, want)
		}
	}
	all, _ := NewFilter(nil, []string{"^Junk$"})
	if !all.Match("anything") || all.Match("Junk") {
		t.Error("empty include must select all but excluded")
	}
	if _, err := NewFilter([]string{"("}, nil); err == nil {
		t.Error("bad regex accepted")
	}
}

func TestMapper(t *testing.T) {
	src := Namespace{Delim: "/"}
	dest := Namespace{Prefix: "INBOX.", Delim: "."}
	destFolders := []Folder{
		{Name: "INBOX", Delim: "."},
		{Name: "INBOX.Sent", Delim: ".", SpecialUse: Sent},
		{Name: "INBOX.Deleted Items", Delim: "."}, // Trash by name only
		{Name: "INBOX.Spam", Delim: ".", SpecialUse: Junk},
	}
	source := []Folder{
		{Name: "INBOX", Delim: "/"},
		{Name: "Sent Items", Delim: "/"},
		{Name: "Gesendete Elemente", Delim: "/"},
		{Name: "Entwürfe", Delim: "/"},
		{Name: "Trash", Delim: "/", SpecialUse: Trash},
		{Name: "Junk E-Mail", Delim: "/"},
		{Name: "Archive", Delim: "/"},
		{Name: "Projects/Sent", Delim: "/"}, // not top level: no automap
		{Name: "Ñoño/Año", Delim: "/"},
		{Name: "Ñoño", Delim: "/", NoSelect: true},
		{Name: "Old", Delim: "/"},
		{Name: "Skip/Me", Delim: "/"},
	}
	filter, _ := NewFilter(nil, []string{`^Skip/`})
	m := NewMapper(src, dest, map[string]string{"Gesendete Elemente": "Archive/Sent 2019", "Old": "INBOX.Legacy"}, filter, destFolders)
	got := map[string]Mapping{}
	for _, mp := range m.Map(source) {
		got[mp.Source.Name] = mp
	}
	want := []struct {
		src, dest, use, by string
		exists             bool
	}{
		{"INBOX", "INBOX", Inbox, "special-use", true},
		{"Sent Items", "INBOX.Sent", Sent, "special-use", true},
		{"Gesendete Elemente", "INBOX.Archive.Sent 2019", Sent, "map", false}, // the explicit map wins over automap
		{"Entwürfe", "INBOX.Drafts", Drafts, "special-use", false},            // created under the canonical name
		{"Trash", "INBOX.Deleted Items", Trash, "special-use", true},
		{"Junk E-Mail", "INBOX.Spam", Junk, "special-use", true},
		{"Archive", "INBOX.Archive", Archive, "special-use", false},
		{"Projects/Sent", "INBOX.Projects.Sent", "", "path", false},
		{"Ñoño/Año", "INBOX.Ñoño.Año", "", "path", false},
		{"Old", "INBOX.Legacy", "", "map", false},
	}
	if len(got) != len(want) {
		t.Errorf("mapped %d folders, want %d: %+v", len(got), len(want), got)
	}
	for _, w := range want {
		mp, ok := got[w.src]
		if !ok {
			t.Errorf("%q not mapped", w.src)
			continue
		}
		if mp.Dest != w.dest {
			t.Errorf("mp.Dest: want w.dest; %q → %q use %q by %s exists %v; want %q use %q by %s exists %v",
				w.src, mp.Dest, mp.SpecialUse, mp.By, mp.Exists, w.dest, w.use, w.by, w.exists)
		} else if mp.SpecialUse != w.use {
			t.Errorf("mp.SpecialUse: want w.use; %q → %q use %q by %s exists %v; want %q use %q by %s exists %v",
				w.src, mp.Dest, mp.SpecialUse, mp.By, mp.Exists, w.dest, w.use, w.by, w.exists)
		} else if mp.By != w.by {
			t.Errorf("mp.By: want w.by; %q → %q use %q by %s exists %v; want %q use %q by %s exists %v",
				w.src, mp.Dest, mp.SpecialUse, mp.By, mp.Exists, w.dest, w.use, w.by, w.exists)
		} else if mp.Exists != w.exists {
			t.Errorf("mp.Exists: want w.exists; %q → %q use %q by %s exists %v; want %q use %q by %s exists %v",
				w.src, mp.Dest, mp.SpecialUse, mp.By, mp.Exists, w.dest, w.use, w.by, w.exists)
		}
	}

	// A plain "Sent Items" → "Sent" map onto a destination without that prefix.
	m2 := NewMapper(Namespace{Delim: "."}, Namespace{Delim: "/"}, map[string]string{"Sent Items": "Sent"}, nil, nil)
	if mp := m2.One(Folder{Name: "Sent Items"}); mp.Dest != "Sent" {
		t.Errorf("mp.Dest = %v, want \"Sent\"; explicit Sent Items → %+v", mp.Dest, mp)
	} else if mp.By != "map" {
		t.Errorf("mp.By = %v, want \"map\"; explicit Sent Items → %+v", mp.By, mp)
	} else if mp.SpecialUse != Sent {
		t.Errorf("mp.SpecialUse = %v, want %v (Sent); explicit Sent Items → %+v", mp.SpecialUse, Sent, mp)
	}
}
