package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cutover/cutover/starter/cli"
)

// Bad arguments and bad specs are refused before any server is contacted (exit 2, reason named).
func TestEmailCommandsRefuseBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("tenant_id: 1\ndomain: example.com\nmailboxes: [{email: a@example.com, password: hunter2}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	invalid := filepath.Join(dir, "invalid.yaml")
	if err := os.WriteFile(invalid, []byte("tenant_id: 0\ndomain: example\nsource: {host: a.example}\ndestination: {host: b.example}\nmailboxes: [{email: nope}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Nothing listens here: reaching a server would be a different error.
	env := map[string]string{"TEMPORAL_ADDRESS": "127.0.0.1:1", "DATABASE_URL": "postgres://nobody@127.0.0.1:1/none", "USER": "ops"}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"email", "start", filepath.Join(dir, "missing.yaml")}, []string{"job spec:", "no such file"}},
		{[]string{"email", "start", bad}, []string{"mailboxes[0].password: secrets do not belong in a job spec"}},
		{[]string{"email", "start", invalid}, []string{"tenant_id: required", `domain: "example" is not a domain name`, `mailboxes[0].email: "nope"`}},
		{[]string{"email", "start"}, []string{"want 1 argument(s), got 0"}},
		{[]string{"email", "approve", "forty-two"}, []string{`job id "forty-two": want a positive integer`}},
		{[]string{"email", "approve", "42", "43"}, []string{"want 1 argument(s), got 2"}},
		{[]string{"email", "cutover", "42", "--at", "yesterday"}, []string{`"yesterday" is not an RFC 3339 time`}},
		{[]string{"email", "schedule", "42"}, []string{"give --cutover-at or --clear"}},
		{[]string{"email", "schedule", "42", "--clear", "--cutover-at", "2026-06-01T22:00:00Z"}, []string{"give --cutover-at or --clear"}},
		{[]string{"email", "status", "0"}, []string{"want a positive integer"}},
	} {
		r := run(t, env, "", tc.args...)
		if r.code != cli.ExitUsage {
			t.Errorf("%v: exit %d, want %d\n%s", tc.args, r.code, cli.ExitUsage, r.stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%v: stderr lacks %q:\n%s", tc.args, w, r.stderr)
			}
		}
		if strings.Contains(r.stdout+r.stderr, "hunter2") {
			t.Errorf("%v: output echoes a secret", tc.args)
		}
	}
	if r := run(t, env, "", "email", "approve", "42"); r.code != cli.ExitFailure || !strings.Contains(r.stderr, "127.0.0.1:1") {
		t.Errorf("approve without a server: exit %d\n%s", r.code, r.stderr)
	}
	r := run(t, env, "", "help")
	for _, c := range []string{"email start", "email approve", "email cutover", "email retry", "email abort", "email status"} {
		if !strings.Contains(r.stderr, c) {
			t.Errorf("help lacks %q", c)
		}
	}
}
