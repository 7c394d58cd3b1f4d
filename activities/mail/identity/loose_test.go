package identity

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestLooseSurvivesServerRewriting: a message and the copies servers make of it share Loose
// (while Of tells them apart), and Rewritten names the fields that changed.
func TestLooseSurvivesServerRewriting(t *testing.T) {
	date := time.Date(2009, 9, 9, 9, 9, 9, 0, time.UTC)
	src := "Message-ID: <8bit@example.org>\r\nDate: Wed, 09 Sep 2009 09:09:09 +0000\r\n" +
		"From: J\xc3\xbcrgen M\xc3\xbcller <jm@example.de>\r\nSubject: Gr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln\r\n\r\nbody"
	noID := strings.Replace(src, "Message-ID: <8bit@example.org>\r\n", "", 1)
	cases := []struct {
		name, src, dst string
		rewritten      []string
	}{
		{"cyrus munge8bit", src, strings.NewReplacer("\xc3\xbc", "XX", "\xc3\x9f", "XX", "\xc3\xb6", "XX").Replace(src),
			[]string{"From", "Subject"}},
		{"latin-1 munged", "Message-ID: <l1@x>\r\nSubject: Caf\xe9 cr\xe8me\r\n\r\n", "Message-ID: <l1@x>\r\nSubject: CafX crXme\r\n\r\n",
			[]string{"Subject"}},
		{"rfc 2047", src, strings.Replace(src, "Gr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln", "=?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=", 1),
			[]string{"Subject"}},
		{"refolded", src, strings.Replace(src, "Subject: Gr", "Subject:\r\n  Gr", 1), nil},
		{"received added, no message-id", noID, "Received: from mx by store\r\n" + noID, []string{"Received"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, d := Parse([]byte(c.src)), Parse([]byte(c.dst))
			if Loose(s, date) != Loose(d, date) {
				t.Errorf("Loose differs between the source and the rewritten copy")
			}
			if got := Rewritten(s, d); !slices.Equal(got, c.rewritten) {
				t.Errorf("Rewritten = %v, want %v", got, c.rewritten)
			}
			if len(c.rewritten) > 0 && c.rewritten[0] != "Received" && Of(s, date) == Of(d, date) {
				t.Errorf("Of does not see the rewriting (the test case is wrong)")
			}
		})
	}
	other := Parse([]byte(strings.Replace(src, "<8bit@example.org>", "<other@example.org>", 1)))
	if Loose(Parse([]byte(src)), date) == Loose(other, date) {
		t.Error("two Message-IDs share a loose key")
	}
	if Loose(Parse([]byte(noID)), date) == Loose(Parse([]byte(noID)), date.Add(time.Second)) {
		t.Error("messages without Message-ID and different INTERNALDATEs share a loose key")
	}
}
