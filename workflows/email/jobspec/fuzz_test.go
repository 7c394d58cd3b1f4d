package jobspec

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParse: arbitrary bytes through Parse (the CLI's files) and, when accepted, through the
// path a workflow input takes (JSON encode, decode, WithDefaults, Validate). Never a panic; a
// refusal is a *ProblemsError with a readable message; an accepted spec is valid, encodes to
// JSON (the workflow input) and round-trips unchanged, and builds every mailbox's engine spec.
// `go test` replays the checked-in corpus in testdata/fuzz/FuzzParse; `go test -fuzz FuzzParse`
// explores further.
func FuzzParse(f *testing.F) {
	example, err := os.ReadFile("testdata/example.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	// The example with hostile values where the grammar allows them: NaN and infinite ratios,
	// a NUL in a name, a path out of the upload directory, a regex bomb.
	for _, r := range [][2]string{
		{"count_ratio_pass: 1.0", "count_ratio_pass: .nan"},
		{"quarantine_fail_ratio: 0.01", "quarantine_fail_ratio: .inf"},
		{"count_ratio_warn: 0.98", "count_ratio_warn: -.inf"},
		{"user: alice", "user: \"al\\0ice\""},
		{"source_path: /uploads/carol.pst", "source_path: ../../../../etc/shadow"},
		{`exclude: ["^Junk$", "^Spam"]`, `exclude: ["(a*)*b", "((((((((((x))))))))))+"]`},
		{"max_attempts: 10", "max_attempts: 9223372036854775807"},
	} {
		f.Add(bytes.Replace(example, []byte(r[0]), []byte(r[1]), 1))
	}
	for _, s := range []string{
		`{"job_id":1,"tenant_id":1,"domain":"example.com","source":{"host":"a.example"},"destination":{"host":"b.example","credentials_ref":"5c1f2e3d-9a8b-4c7d-8e6f-123456789abc"},"mailboxes":[{"email":"a@example.com","credentials_ref":"0b7f6a52-5d0c-4b0e-9a57-6f1b7f0f3c11"}]}`,
		"tenant_id: 1\ndomain: example.com\nsource: {host: a.example, password: hunter2}\n",
		"tenant_id: 1\ndomain: example.com\nmailboxes: [{email: a@example.com, source_type: mbox, source_path: ../../../etc/passwd}]\ndestination: {host: 'b.example:0'}\n",
		"a: &a [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n",
		strings.Repeat("[", 5000) + strings.Repeat("]", 5000),
		"tenant_id: 1\ndomain: \"exa\\u0000mple.com\"\n",
		"tenant_id: 1\ndomain: example.com\ngate: {count_ratio_pass: .nan, quarantine_fail_ratio: .inf}\n",
		"tenant_id: 9223372036854775807\njob_id: -1\ndomain: xn--bcher-kva.example\nconcurrency: {mailboxes: 1000000}\n",
		"tenant_id: 1\ndomain: example.com\nmailboxes: [{email: a@example.com, include: ['(a+)+$', '[']}]\n",
		"tenant_id: 1\ndomain: example.com\nschedule: {presync_at: '25:99', presync_interval: -1h, timezone: ../../etc/localtime}\n",
		"{\"tenant_id\":1}{\"tenant_id\":2}",
		"\xff\xfe\x00t\x00e\x00n\x00a\x00n\x00t",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err != nil {
			var pe *ProblemsError
			if !IsProblems(err) || !asProblems(err, &pe) || len(pe.Problems) == 0 {
				t.Fatalf("refusal %T %q is not a ProblemsError listing problems", err, err)
			}
			for _, p := range pe.Problems {
				if strings.TrimSpace(p) == "" {
					t.Fatalf("empty problem in %q", err)
				}
			}
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("Parse accepted a spec Validate refuses: %v", err)
		}
		if !reflect.DeepEqual(s, s.WithDefaults()) {
			t.Fatal("an accepted spec changes under WithDefaults again")
		}
		// The workflow input: the SDK's JSON converter must encode it, and the workflow must
		// read back the same spec and accept it.
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("an accepted spec cannot be a workflow input: %v", err)
		}
		if !utf8.Valid(b) || bytes.Contains(b, []byte(`\u0000`)) {
			t.Fatalf("an accepted spec carries invalid UTF-8 or NUL into PostgreSQL text: %s", b)
		}
		var back Spec
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("decode the workflow input: %v", err)
		}
		back = back.WithDefaults()
		if err := back.Validate(); err != nil {
			t.Fatalf("the workflow refuses what Parse accepted: %v", err)
		}
		b2, _ := json.Marshal(back)
		if !bytes.Equal(b, b2) {
			t.Fatalf("JSON round trip changed the spec:\n%s\n%s", b, b2)
		}
		// Parse reads its own JSON back.
		if _, err := Parse(b); err != nil {
			t.Fatalf("Parse refuses the JSON of a spec it accepted: %v\n%s", err, b)
		}
		for i, m := range s.Mailboxes {
			src, dest := s.Logins(m)
			if dest.Addr == "" {
				t.Fatalf("mailbox %d: no destination address: %+v", i, dest)
			}
			if src.CredentialsRef == "" && !readsFiles(m) {
				t.Fatalf("mailbox %d: no source credentials_ref", i)
			}
		}
	})
}

func asProblems(err error, pe **ProblemsError) bool {
	p, ok := err.(*ProblemsError)
	*pe = p
	return ok
}
