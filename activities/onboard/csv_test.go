package onboard

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/email/jobspec"
)

// projected is what a test compares of a row: the mailbox and which secrets it carries.
type projected struct {
	Line                int
	Mailbox             jobspec.Mailbox
	SourcePw, SourceTok string
	DestPw              string
}

func project(rows []Row) []projected {
	out := make([]projected, len(rows))
	for i, r := range rows {
		out[i] = projected{Line: r.Line, Mailbox: r.Mailbox, SourcePw: r.Source.Password, SourceTok: r.Source.RefreshToken,
			DestPw: r.Dest.Password}
	}
	return out
}

func TestParseCSVLayouts(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		csv  string
		want []projected
	}{{
		name: "MigrationWiz bulk add",
		csv: "Source Email,Source Login Name,Source Password,Destination Email,Destination Login Name,Destination Password\n" +
			"Alice@Old.example,alice,s3cret pw ,alice@new.example,,d-pw\n" +
			"bob@old.example,,pw2,bob@new.example,bob.b,\n",
		want: []projected{
			{Line: 2, Mailbox: jobspec.Mailbox{Email: "alice@new.example", User: "alice"}, SourcePw: "s3cret pw ", DestPw: "d-pw"},
			{Line: 3, Mailbox: jobspec.Mailbox{Email: "bob@new.example", User: "bob@old.example", DestUser: "bob.b"}, SourcePw: "pw2"},
		},
	}, {
		name: "Microsoft 365 IMAP batch, BOM and semicolons",
		csv:  "\ufeffEmailAddress;UserName;Password\r\ncarol@new.example;carol;\"p;w\"\r\n\r\n",
		want: []projected{{Line: 2, Mailbox: jobspec.Mailbox{Email: "carol@new.example", User: "carol"}, SourcePw: "p;w"}},
	}, {
		name: "cutover columns: OAuth, file source, folder maps",
		csv: "source_email,source_refresh_token,source_type,source_path,folder_map,merge\n" +
			"dave@x.example,1//tok,,,Sent Items->Sent; Deleted Items->Trash,\n" +
			"erin@x.example,,pst,/uploads/erin.pst,\"{\"\"Posteingang\"\": \"\"INBOX\"\"}\",yes\n",
		want: []projected{
			{Line: 2, Mailbox: jobspec.Mailbox{Email: "dave@x.example", SourceType: model.SourceIMAPOAuth,
				FolderMap: map[string]string{"Sent Items": "Sent", "Deleted Items": "Trash"}}, SourceTok: "1//tok"},
			{Line: 3, Mailbox: jobspec.Mailbox{Email: "erin@x.example", SourceType: model.SourcePST, SourcePath: "/uploads/erin.pst",
				FolderMap: map[string]string{"Posteingang": "INBOX"}, Merge: true}},
		},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			rows, err := ParseCSV(strings.NewReader(c.csv), "m.csv")
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(c.want, project(rows)); d != "" {
				t.Errorf("rows (-want +got):\n%s", d)
			}
		})
	}
}

func TestParseCSVBadLines(t *testing.T) {
	t.Parallel()
	const secret = "Hunter2-do-not-print"
	csv := "Source Email,Source Password,Source Refresh Token,Source Type,Folder Map\n" +
		"ok@x.example," + secret + ",,,\n" +
		"," + secret + ",,,\n" + // line 3: no email
		"two@x.example," + secret + "," + secret + ",,\n" + // line 4: both secrets
		"pst@x.example," + secret + ",,pst,\n" + // line 5: file source with a password
		"map@x.example," + secret + ",,,Inbox\n" + // line 6: bad folder map
		"short@x.example\n" // line 7: field count
	_, err := ParseCSV(strings.NewReader(csv), "m.csv")
	var ce *CSVError
	if !errors.As(err, &ce) {
		t.Fatalf("want a *CSVError, got %v", err)
	}
	var lines []int
	for _, l := range ce.Lines {
		lines = append(lines, l.Line)
	}
	if d := cmp.Diff([]int{3, 4, 5, 6, 7}, lines); d != "" {
		t.Errorf("bad lines (-want +got):\n%s\n%v", d, err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("the error quotes a secret:\n%v", err)
	}
	if !strings.Contains(err.Error(), "line 3: no email") {
		t.Errorf("error does not say what line 3 lacks:\n%v", err)
	}
}

func TestParseCSVHeader(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ csv, want string }{
		{"Source Email,Pasword\nx@y.example,z\n", `column 2 "Pasword": unknown`},
		{"Source Email,Email Address,Destination Email\n", `both give the destination_email`},
		{"Source Login Name,Password\nu,p\n", "no email column"},
		{"", "empty file"},
		{"Source Email\n", "no mailboxes"},
	} {
		_, err := ParseCSV(strings.NewReader(c.csv), "m.csv")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: want an error with %q, got %v", c.csv, c.want, err)
		}
	}
}

func TestParseSecretsCSV(t *testing.T) {
	t.Parallel()
	got, err := ParseSecretsCSV(strings.NewReader("name,password,refresh_token,expiry\n"+
		"alice,pw1,,\nbob,,1//rt,2030-01-02T03:04:05Z\n"), "stdin")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Errorf("len(got): want 2; parsed %d secrets: %+v", len(got), got)
	} else if got[0].Secret.Password != "pw1" {
		t.Errorf("got[0].Secret.Password = %v, want \"pw1\"; parsed %d secrets: %+v",
			got[0].Secret.Password, len(got), got)
	} else if got[1].Secret.RefreshToken != "1//rt" {
		t.Errorf("got[1].Secret.RefreshToken = %v, want \"1//rt\"; parsed %d secrets: %+v",
			got[1].Secret.RefreshToken, len(got), got)
	} else if got[1].Secret.TokenExpiry.Year() != 2030 {
		t.Errorf("want got[1].Secret.TokenExpiry.Year() == 2030; parsed %d secrets: %+v", len(got), got)
	} else if got[1].Line != 3 {
		t.Errorf("got[1].Line = %v, want 3; parsed %d secrets: %+v", got[1].Line, len(got), got)
	}
	_, err = ParseSecretsCSV(strings.NewReader("name,password\nalice,pw1\nalice,pw2\n,pw3\ncarol,\n"), "stdin")
	var ce *CSVError
	if !errors.As(err, &ce) {
		t.Fatalf("errors.As(err, &ce) is false; want lines 3, 4, 5 refused, got %v", err)
	}
	if len(ce.Lines) != 3 {
		t.Fatalf("len(ce.Lines) = %v, want 3; want lines 3, 4, 5 refused, got %v", len(ce.Lines), err)
	}
	if ce.Lines[0].Line != 3 {
		t.Fatalf("ce.Lines[0].Line = %v, want 3; want lines 3, 4, 5 refused, got %v", ce.Lines[0].Line, err)
	}
	if ce.Lines[2].Line != 5 {
		t.Fatalf("ce.Lines[2].Line = %v, want 5; want lines 3, 4, 5 refused, got %v", ce.Lines[2].Line, err)
	}
	for _, pw := range []string{"pw1", "pw2", "pw3"} {
		if strings.Contains(err.Error(), pw) {
			t.Errorf("the error quotes secret %q: %v", pw, err)
		}
	}
}
