package jobspec

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/model"
)

const (
	refA = "0b7f6a52-5d0c-4b0e-9a57-6f1b7f0f3c11"
	refB = "5c1f2e3d-9a8b-4c7d-8e6f-123456789abc"
)

const goodYAML = `
job_id: 42
tenant_id: 7
ticket_id: 1234
domain: Example.COM
source:
  label: cPanel HostGator
  host: imap.old.example
destination:
  host: mail.example.com:1993
  security: starttls
  auth_user: master
  credentials_ref: ` + refB + `
mailboxes:
  - email: Alice@Example.com
    credentials_ref: ` + refA + `
    folder_map: {"Sent Items": "Sent"}
    exclude: ["^Junk$"]
  - email: bob@example.com
    user: bob
    source_host: other.old.example:143
    credentials_ref: ` + refA + `
    dest_credentials_ref: ` + refA + `
schedule:
  presync_at: "02:30"
  timezone: Europe/Lisbon
  cutover_at: 2026-06-01T22:00:00Z
  final_sync_delay: 1m
concurrency: {mailboxes: 8}
gate: {count_ratio_pass: 0.999}
`

func TestParseYAMLFillsDefaults(t *testing.T) {
	s, err := Parse([]byte(goodYAML))
	if err != nil {
		t.Fatal(err)
	}
	if s.JobID != 42 {
		t.Errorf("s.JobID = %v, want 42; ids/domain = %+v", s.JobID, s)
	} else if s.TenantID != 7 {
		t.Errorf("s.TenantID = %v, want 7; ids/domain = %+v", s.TenantID, s)
	} else if s.TicketID != 1234 {
		t.Errorf("s.TicketID = %v, want 1234; ids/domain = %+v", s.TicketID, s)
	} else if s.Domain != "example.com" {
		t.Errorf("s.Domain = %v, want \"example.com\"; ids/domain = %+v", s.Domain, s)
	}
	if s.Source.Host != "imap.old.example:993" {
		t.Errorf("s.Source.Host = %v, want \"imap.old.example:993\"; source = %+v", s.Source.Host, s.Source)
	} else if s.Source.Security != "tls" {
		t.Errorf("s.Source.Security = %v, want \"tls\"; source = %+v", s.Source.Security, s.Source)
	} else if s.Source.Auth != "login" {
		t.Errorf("s.Source.Auth = %v, want \"login\"; source = %+v", s.Source.Auth, s.Source)
	}
	if s.Mailboxes[0].Email != "alice@example.com" {
		t.Errorf("s.Mailboxes[0].Email = %v, want \"alice@example.com\"; mailbox 0 = %+v",
			s.Mailboxes[0].Email, s.Mailboxes[0])
	} else if s.Mailboxes[0].SourceType != model.SourceIMAP {
		t.Errorf("s.Mailboxes[0].SourceType = %v, want model.SourceIMAP; mailbox 0 = %+v",
			s.Mailboxes[0].SourceType, s.Mailboxes[0])
	}
	sc := s.Schedule
	if sc.PresyncInterval != 0 {
		t.Errorf("sc.PresyncInterval = %v, want 0; schedule = %+v", sc.PresyncInterval, sc)
	} else if sc.PresyncAt != "02:30" {
		t.Errorf("sc.PresyncAt = %v, want \"02:30\"; schedule = %+v", sc.PresyncAt, sc)
	} else if sc.PresyncMode != model.ModeMirror {
		t.Errorf("sc.PresyncMode = %v, want model.ModeMirror; schedule = %+v", sc.PresyncMode, sc)
	} else if sc.FinalSyncDelay.D() != time.Minute {
		t.Errorf("want sc.FinalSyncDelay.D() == time.Minute; schedule = %+v", sc)
	} else if sc.Soak.D() != DefaultSoak {
		t.Errorf("want sc.Soak.D() == DefaultSoak; schedule = %+v", sc)
	} else if sc.CutoverAt == nil {
		t.Errorf("sc.CutoverAt is nil; schedule = %+v", sc)
	} else if !sc.CutoverAt.Equal(time.Date(2026, 6, 1, 22, 0, 0, 0, time.UTC)) {
		t.Errorf("sc.CutoverAt.Equal(time.Date(2026, 6, 1, 22, 0, 0, 0, time.UTC)) is false; schedule = %+v", sc)
	}
	if s.Concurrency.Mailboxes != 8 {
		t.Errorf("s.Concurrency.Mailboxes = %v, want 8; limits = %+v %+v %+v",
			s.Concurrency.Mailboxes, s.Concurrency, s.Gate, s.Retry)
	} else if s.Gate.CountRatioPass != 0.999 {
		t.Errorf("s.Gate.CountRatioPass = %v, want 0.999; limits = %+v %+v %+v",
			s.Gate.CountRatioPass, s.Concurrency, s.Gate, s.Retry)
	} else if s.Gate.CountRatioWarn != 0.98 {
		t.Errorf("s.Gate.CountRatioWarn = %v, want 0.98; limits = %+v %+v %+v",
			s.Gate.CountRatioWarn, s.Concurrency, s.Gate, s.Retry)
	} else if s.Retry.MaxAttempts != DefaultRetryMaxAttempts {
		t.Errorf("s.Retry.MaxAttempts = %v, want %v (DefaultRetryMaxAttempts); limits = %+v %+v %+v",
			s.Retry.MaxAttempts, DefaultRetryMaxAttempts, s.Concurrency, s.Gate, s.Retry)
	}

	// JSON round trip (the workflow input) gives the same spec, and JSON parses like YAML.
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"final_sync_delay":"1m0s"`) {
		t.Errorf("durations not written as strings: %s", b)
	}
	s2, err := Parse(b)
	if err != nil {
		t.Fatalf("parse own JSON: %v\n%s", err, b)
	}
	if !reflect.DeepEqual(s, s2) {
		t.Errorf("JSON round trip differs:\n%+v\n%+v", s, s2)
	}
}

func TestLogins(t *testing.T) {
	s, err := Parse([]byte(goodYAML))
	if err != nil {
		t.Fatal(err)
	}
	src, dest := s.Logins(s.Mailboxes[0])
	if want := (Login{Addr: "imap.old.example:993", Security: "tls", User: "alice@example.com", Auth: "login", CredentialsRef: refA}); src != want {
		t.Errorf("alice's source =\n%+v\nwant\n%+v", src, want)
	}
	if want := (Login{Addr: "mail.example.com:1993", Security: "starttls", User: "alice@example.com", AuthUser: "master", Auth: "login", CredentialsRef: refB}); dest != want {
		t.Errorf("alice's destination =\n%+v\nwant\n%+v", dest, want)
	}
	src, dest = s.Logins(s.Mailboxes[1])
	if want := (Login{Addr: "other.old.example:143", Security: "tls", User: "bob", Auth: "login", CredentialsRef: refA}); src != want {
		t.Errorf("bob's source =\n%+v\nwant\n%+v", src, want)
	}
	if dest.CredentialsRef != refA {
		t.Errorf("bob's destination credentials_ref = %q, want %q", dest.CredentialsRef, refA)
	}
	if dest.AuthUser != "" {
		t.Errorf("bob's destination auth_user = %q, want none (own credentials)", dest.AuthUser)
	}
}

func TestParseRejects(t *testing.T) {
	base := func(extra string) string {
		return "tenant_id: 1\ndomain: example.com\nsource: {host: a.example}\ndestination: {host: b.example, credentials_ref: " + refB + "}\n" + extra
	}
	tests := []struct {
		name, spec string
		want       []string
	}{
		{"empty", "  ", []string{"empty spec"}},
		{"garbage", "{{{", []string{"not YAML or JSON"}},
		{"password in spec", base("mailboxes: [{email: a@example.com, password: hunter2}]"),
			[]string{"mailboxes[0].password: secrets do not belong in a job spec"}},
		{"token in JSON", `{"tenant_id":1,"source":{"oauth_token":"x"}}`, []string{"source.oauth_token: secrets do not belong"}},
		{"unknown field", base("mailboxes: [{email: a@example.com, credentials_ref: " + refA + ", colour: red}]"),
			[]string{"field colour not found"}},
		{"unknown JSON field", `{"tenant_id":1,"domian":"x"}`, []string{`unknown field "domian"`}},
		// PostgreSQL text cannot hold NUL; NaN cannot be a workflow input (found by FuzzParse).
		{"NUL bytes", base(`mailboxes: [{email: a@example.com, user: "al\0ice", credentials_ref: ` + refA + `, folder_map: {"Sent\0": Sent}}]`),
			[]string{`mailboxes[0].user: contains a NUL byte`, `mailboxes[0].folder_map["Sent\x00"]: contains a NUL byte`}},
		{"NaN ratio", base("gate: {count_ratio_pass: .nan}\nmailboxes: [{email: a@example.com, credentials_ref: " + refA + "}]"),
			[]string{"gate: count_ratio_pass NaN"}},
		{"bad duration", base("schedule: {presync_interval: soon}\nmailboxes: [{email: a@example.com, credentials_ref: " + refA + "}]"),
			[]string{`duration "soon"`}},
		{"missing basics", "mailboxes: []", []string{"tenant_id: required", `domain: "" is not a domain name`,
			"source.host: required" /* absent: no mailbox needs it */, "destination.host: required", "mailboxes: at least one mailbox"}},
		{"mailbox problems", base(`mailboxes:
  - {email: not-an-email, credentials_ref: "S3cret-pasted!"}
  - {email: b@example.com, source_type: fax}
  - {email: c@example.com, source_type: pst}
  - {email: B@example.com, credentials_ref: ` + refA + `, include: ["(unclosed"], since: 2026-02-01T00:00:00Z, before: 2026-01-01T00:00:00Z}
  - {email: e@example.com, source_host: "x:99999", credentials_ref: ` + refA + `, folder_map: {"": Sent}, namespaces: [other, personal]}`),
			[]string{
				`mailboxes[0].email: "not-an-email" is not an email address`,
				"mailboxes[0].credentials_ref: is not a vault reference (the id `cutover vault put` prints); the value is not shown",
				`mailboxes[1].source_type: "fax": want one of imap, imap_oauth, pst`,
				"mailboxes[2].source_path: required for source_type pst",
				"mailboxes[3].email: b@example.com is listed twice (also mailboxes[1])",
				`mailboxes[3].include[0]: "(unclosed" is not a regular expression`,
				"mailboxes[3].since: must be before before",
				`mailboxes[4].source_host: "x:99999": port must be 1..65535`,
				`mailboxes[4].namespaces[1]: "personal": want other or shared`,
				`mailboxes[4].folder_map: "": "Sent": folder names must not be empty`,
			}},
		{"no credentials anywhere", "tenant_id: 1\ndomain: example.com\nsource: {host: a.example}\ndestination: {host: b.example}\nmailboxes: [{email: a@example.com}]",
			[]string{"mailboxes[0].credentials_ref: required (or a job-wide source.credentials_ref)",
				"mailboxes[0].dest_credentials_ref: required (or a job-wide destination.credentials_ref)"}},
		{"endpoint values", "tenant_id: 1\ndomain: example.com\nsource: {host: a.example, security: ssl, auth: ntlm, auth_user: admin}\ndestination: {host: ':143', credentials_ref: " + refB + "}\nmailboxes: [{email: a@example.com, credentials_ref: " + refA + "}]",
			[]string{`source.security: "ssl": want tls, starttls or plain`, `source.auth: "ntlm"`,
				"source.credentials_ref: auth_user logs in with job-wide credentials", `destination.host: ":143": want host or host:port`}},
		{"schedule and limits", base(`mailboxes: [{email: a@example.com, credentials_ref: ` + refA + `}]
schedule: {presync_interval: 1h, presync_at: "25:00", presync_mode: delete, final_sync_delay: -1m}
concurrency: {mailboxes: 5000, folders: -1}
retry: {max_attempts: -2}
gate: {count_ratio_pass: 2}`),
			[]string{"schedule: set presync_interval or presync_at, not both", `schedule.presync_at: "25:00"`,
				`schedule.presync_mode: "delete": want mirror, copy or strict_mirror (destructive)`, "schedule.final_sync_delay: must not be negative",
				"concurrency.mailboxes: 5000: want 1..1000", "concurrency.folders: -1", "retry.max_attempts: must be at least 1",
				"gate: count_ratio_pass 2"}},
		{"webhooks", base(`mailboxes: [{email: a@example.com, credentials_ref: ` + refA + `}]
webhooks:
  - {url: "https://user:pw@desk.example/h", secret_ref: ` + refA + `}
  - {url: "ftp://desk.example/h", secret_ref: ` + refA + `}
  - {url: "https://desk.example/h", secret_ref: "hunter2"}
  - {url: "https://desk.example/h"}`),
			[]string{"webhooks[0]: url must not carry credentials", "webhooks[1]: url must be an http or https URL",
				"webhooks[2]: secret_ref is not a vault reference", "webhooks[3]: secret_ref is required"}},
		{"registered count without job id", base("mailbox_count: 3"), []string{"mailbox_count: registered mailboxes need the job_id"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.spec))
			if err == nil {
				t.Fatal("accepted")
			}
			if !IsProblems(err) {
				t.Fatalf("error %T is not a *ProblemsError", err)
			}
			for _, w := range tc.want {
				if strings.HasPrefix(w, "source.host: required") && tc.name == "missing basics" {
					if strings.Contains(err.Error(), w) {
						t.Errorf("source.host demanded though no mailbox needs it:\n%v", err)
					}
					continue
				}
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			for _, secret := range []string{"hunter2", "S3cret-pasted"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error echoes the secret %q", secret)
				}
			}
		})
	}
}

func TestValidateIsDeterministic(t *testing.T) {
	m := Mailbox{Email: "a@example.com", CredentialsRef: refA, FolderMap: map[string]string{}, Include: []string{"(", "["}, Exclude: []string{")"}}
	for i := range 20 {
		m.FolderMap[strings.Repeat("x", i)] = ""
	}
	s := Spec{TenantID: 1, Domain: "example.com", Source: Endpoint{Host: "a.example"}, Destination: Endpoint{Host: "b.example", CredentialsRef: refB},
		Mailboxes: []Mailbox{m}, Schedule: Schedule{FinalSyncDelay: -1, Soak: -1, PostSyncInterval: -1}}.WithDefaults()
	first := s.Validate().Error()
	for range 50 {
		if got := s.Validate().Error(); got != first {
			t.Fatalf("Validate output changes between calls:\n%s\n---\n%s", first, got)
		}
	}
}

func TestWithDefaultsDoesNotModifyReceiver(t *testing.T) {
	s := Spec{Mailboxes: []Mailbox{{Email: " A@X.Y "}}}
	_ = s.WithDefaults()
	if s.Mailboxes[0].Email != " A@X.Y " {
		t.Fatalf("s.Mailboxes[0].Email = %v, want \" A@X.Y \"; receiver modified: %+v",
			s.Mailboxes[0].Email, s.Mailboxes[0])
	}
	if s.Mailboxes[0].SourceType != "" {
		t.Fatalf("s.Mailboxes[0].SourceType = %v, want \"\"; receiver modified: %+v",
			s.Mailboxes[0].SourceType, s.Mailboxes[0])
	}
}

func TestNextPresync(t *testing.T) {
	lisbon := time.FixedZone("WEST", 3600)
	tests := []struct {
		sc   Schedule
		last time.Time
		loc  *time.Location
		want time.Time
	}{
		{Schedule{PresyncInterval: Duration(6 * time.Hour)}, time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC), time.UTC, time.Date(2026, 3, 1, 16, 0, 0, 0, time.UTC)},
		{Schedule{PresyncAt: "02:30"}, time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC), time.UTC, time.Date(2026, 3, 2, 2, 30, 0, 0, time.UTC)},
		{Schedule{PresyncAt: "02:30"}, time.Date(2026, 3, 1, 1, 0, 0, 0, time.UTC), time.UTC, time.Date(2026, 3, 1, 2, 30, 0, 0, time.UTC)},
		{Schedule{PresyncAt: "02:30"}, time.Date(2026, 3, 1, 2, 30, 0, 0, time.UTC), time.UTC, time.Date(2026, 3, 2, 2, 30, 0, 0, time.UTC)},
		// 01:00 UTC is 02:00 in UTC+1: the 02:30 local run is 30 minutes away.
		{Schedule{PresyncAt: "02:30"}, time.Date(2026, 3, 1, 1, 0, 0, 0, time.UTC), lisbon, time.Date(2026, 3, 1, 1, 30, 0, 0, time.UTC)},
	}
	for _, tc := range tests {
		if got := tc.sc.NextPresync(tc.last, tc.loc); !got.Equal(tc.want) {
			t.Errorf("NextPresync(%+v, %s) = %s, want %s", tc.sc, tc.last, got.UTC(), tc.want)
		}
	}
}

func TestCheckFiles(t *testing.T) {
	s, err := Parse([]byte(goodYAML))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CheckFiles(); err != nil {
		t.Fatalf("Europe/Lisbon: %v", err)
	}
	s.Schedule.Timezone = "Mars/Olympus_Mons"
	s.Source.CAFile = "/nonexistent/ca.pem"
	err = s.CheckFiles()
	if err == nil || !strings.Contains(err.Error(), `schedule.timezone: "Mars/Olympus_Mons"`) || !strings.Contains(err.Error(), "source.ca_file:") {
		t.Fatalf("CheckFiles = %v", err)
	}
}

// The documented example parses as it says.
func TestExampleSpec(t *testing.T) {
	b, err := os.ReadFile("testdata/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CheckFiles(); err != nil {
		t.Fatal(err)
	}
	if len(s.Mailboxes) != 3 {
		t.Errorf("len(s.Mailboxes) = %v, want 3; example = %+v", len(s.Mailboxes), s)
	} else if s.Mailboxes[2].SourceType != model.SourcePST {
		t.Errorf("s.Mailboxes[2].SourceType = %v, want model.SourcePST; example = %+v", s.Mailboxes[2].SourceType, s)
	} else if s.Schedule.PresyncAt != "02:00" {
		t.Errorf("s.Schedule.PresyncAt = %v, want \"02:00\"; example = %+v", s.Schedule.PresyncAt, s)
	} else if s.Destination.AuthUser != "migration-admin" {
		t.Errorf("s.Destination.AuthUser = %v, want \"migration-admin\"; example = %+v", s.Destination.AuthUser, s)
	} else if s.Concurrency.Mailboxes != 8 {
		t.Errorf("s.Concurrency.Mailboxes = %v, want 8; example = %+v", s.Concurrency.Mailboxes, s)
	}
	src, dest := s.Logins(s.Mailboxes[1])
	if dest.AuthUser != "migration-admin" {
		t.Errorf("bob's destination auth_user = %q", dest.AuthUser)
	}
	if dest.User != "bob@example.com" {
		t.Errorf("bob's destination user = %q", dest.User)
	}
	if src.Addr != "imap.old-host.example:993" {
		t.Errorf("bob's source = %q", src.Addr)
	}
	if s.Mailboxes[1].Since == nil {
		t.Errorf("bob's since is not set")
	}
}
