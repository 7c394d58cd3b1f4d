package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cutover/cutover/starter/cli"
)

// reasonCommands are the commands whose reason is recorded: the email job's write it in the
// job's notes (workflows/email TestCommandReasonsInNotes); the database migration's in its
// ledger's requests, recovery records and acceptances, and its events (db_reasons_test.go).
var reasonCommands = []string{"email approve", "email cutover", "email retry", "email abort", "email close",
	"email presync", "email schedule", "email skip", "email unskip", "email set-credentials",
	"db approve-op", "db cutover", "db close", "db retry-failed", "db rollback", "db retry", "db accept-errors"}

// TestReasonOnRecordingCommands: every command whose reason is recorded takes --reason.
func TestReasonOnRecordingCommands(t *testing.T) {
	for _, c := range reasonCommands {
		r := run(t, nil, "", append(strings.Fields(c), "-h")...)
		if r.code != cli.ExitOK || !strings.Contains(r.stderr, "  -reason string") {
			t.Errorf("%s takes no --reason: exit %d\n%s", c, r.code, r.stderr)
		}
	}
}

// TestCredentialsRefNeverEchoed: a secret pasted where a credentials_ref belongs is refused
// before any server is contacted, and the refusal never repeats it.
func TestCredentialsRefNeverEchoed(t *testing.T) {
	const secret = "Sup3r-Secret-Passw0rd"
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	emailSpec := write("job.yaml", "tenant_id: 1\ndomain: example.com\nsource: {host: a.example.com}\n"+
		"destination: {host: b.example.com, credentials_ref: 3f2504e0-4f89-11d3-9a0c-0305e82c3301}\n"+
		"mailboxes: [{email: a@example.com, source_type: imap, credentials_ref: "+secret+"}]\n")
	dbTarget := write("target.yaml", "name: m\nversion: \"1\"\nsources:\n  s: {driver: sqlite, path: x.sqlite}\n"+
		"target: {credentials_ref: "+secret+"}\nentities:\n  - {name: A, source_table: a, target_table: a, "+
		"key: {source: id, target: id, mode: keep, type: bigint}, columns: [{source: n, type: text}]}\n")
	dbSource := write("source.yaml", "name: m\nversion: \"1\"\nsources:\n  s: {driver: postgres, dsn: "+
		"\"postgres://u@127.0.0.1/db\", credentials_ref: "+secret+"}\ntarget: {}\nentities:\n  - {name: A, "+
		"source_table: a, target_table: a, key: {source: id, target: id, mode: keep, type: bigint}, columns: "+
		"[{source: n, type: text}]}\n")
	env := map[string]string{"TEMPORAL_ADDRESS": "127.0.0.1:1", "DATABASE_URL": "postgres://nobody@127.0.0.1:1/none", "USER": "ops"}
	for _, args := range [][]string{
		{"email", "set-credentials", "42", "bob@example.com", "--source", secret},
		{"email", "set-credentials", "42", "bob@example.com", "--dest", secret},
		{"email", "start", emailSpec},
		{"email", "dry-run", emailSpec},
		{"db", "start", dbTarget},
		{"db", "start", dbSource},
	} {
		r := run(t, env, "", args...)
		if r.code != cli.ExitUsage || !strings.Contains(r.stderr, "is not a vault reference") {
			t.Errorf("%v: exit %d\n%s", args[:2], r.code, r.stderr)
		}
		if strings.Contains(r.stdout+r.stderr, secret) {
			t.Errorf("%v echoes the value pasted into credentials_ref:\n%s%s", args[:2], r.stdout, r.stderr)
		}
	}
}
