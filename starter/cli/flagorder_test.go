package cli_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cutover/cutover/starter/cli"
)

// commandArgs are the positional arguments of every command (none for most). A command
// missing here fails TestFlagsBeforeOrAfterArguments: a new command must say what it takes.
var commandArgs = map[string][]string{
	"version": nil, "schema apply": nil, "health": nil, "temporal setup": nil, "demo": nil,
	"vault put": nil, "vault rotate": nil, "vault genkey": nil, "codec-server": nil, "codec genkey": nil,
	"dev up": nil, "dev down": nil, "dev status": nil,
	"list": nil, "email list": nil, "db list": nil,
	"email start": {"job.yaml"}, "email import": {"job.yaml"}, "email dry-run": {"job.yaml"},
	"email status": {"42"}, "email approve": {"42"}, "email cutover": {"42"}, "email retry": {"42"},
	"email abort": {"42"}, "email close": {"42"}, "email presync": {"42"}, "email schedule": {"42"},
	"email report": {"42"}, "email watch": {"42"},
	"email logs": {"42", "bob@example.com"}, "email skip": {"42", "bob@example.com"},
	"email unskip": {"42", "bob@example.com"}, "email set-credentials": {"42", "bob@example.com"},
	"db start": {"migration.yaml"}, "db status": {"db-migration-1"}, "db approve-op": {"db-migration-1", "op-1"},
	"db rollback": {"db-migration-1"}, "db cutover": {"db-migration-1"}, "db close": {"db-migration-1"},
	"db retry-failed": {"db-migration-1"}, "db retry": {"db-migration-1"}, "db accept-errors": {"db-migration-1"},
	"db report": {"db-migration-1"}, "db watch": {"db-migration-1"},
}

// TestFlagsBeforeOrAfterArguments runs every command with a flag before its arguments and the
// same flag after them: both read the flag the same way (-h prints the command's help and
// exits 0; an unknown flag is named as such), so no command takes "JOB --flag" for two
// arguments. Nothing runs: both probes end in flag parsing.
func TestFlagsBeforeOrAfterArguments(t *testing.T) {
	paths := cli.CommandPaths()
	for _, p := range paths {
		if _, ok := commandArgs[p]; !ok {
			t.Errorf("command %q is not in commandArgs: add its positional arguments", p)
		}
	}
	for p := range commandArgs {
		if !slices.Contains(paths, p) {
			t.Errorf("commandArgs names %q, which is no command", p)
		}
	}
	env := map[string]string{"TEMPORAL_ADDRESS": "127.0.0.1:1", "DATABASE_URL": "postgres://nobody@127.0.0.1:1/none"}
	probes := []struct {
		flag string
		code int
		want string
	}{
		{"-h", cli.ExitOK, "Usage of cutover "},
		{"--no-such-flag", cli.ExitUsage, "flag provided but not defined: -no-such-flag"},
	}
	for _, p := range paths {
		words := strings.Fields(p)
		pos := commandArgs[p]
		for _, pr := range probes {
			before := run(t, env, "", slices.Concat(words, []string{pr.flag}, pos)...)
			after := run(t, env, "", slices.Concat(words, pos, []string{pr.flag})...)
			if before.code != pr.code {
				t.Errorf("%s %s before the arguments: exit %d, want %d\n%s", p, pr.flag, before.code, pr.code, before.stderr)
			}
			if !strings.Contains(after.stderr, pr.want) {
				t.Errorf("%s with %s after the arguments: stderr lacks %q:\n%s", p, pr.flag, pr.want, after.stderr)
			}
			if d := cmp.Diff(before, after, cmp.AllowUnexported(result{})); d != "" {
				t.Errorf("%s: %s before and after the arguments differ (-before +after):\n%s", p, pr.flag, d)
			}
		}
	}
	// --reason takes a value (words with spaces) before or after the arguments alike: neither
	// the value nor the flag is taken for an argument.
	for _, p := range reasonCommands {
		words, pos := strings.Fields(p), commandArgs[p]
		flags := []string{"--reason", "why: the window opens", "-h"}
		before := run(t, env, "", slices.Concat(words, flags, pos)...)
		after := run(t, env, "", slices.Concat(words, pos, flags)...)
		if before.code != cli.ExitOK || !strings.Contains(before.stderr, "  -reason string") {
			t.Errorf("%s --reason … -h before the arguments: exit %d\n%s", p, before.code, before.stderr)
		}
		if d := cmp.Diff(before, after, cmp.AllowUnexported(result{})); d != "" {
			t.Errorf("%s: --reason before and after the arguments differ (-before +after):\n%s", p, d)
		}
	}
}

// A flag's value after the arguments is used, and "--" ends the flags: what follows it is an
// argument even when it starts with a dash.
func TestFlagAfterArgumentsIsUsed(t *testing.T) {
	env := map[string]string{"TEMPORAL_ADDRESS": "127.0.0.1:1", "USER": "ops"}
	r := run(t, env, "", "email", "schedule", "42", "--cutover-at", "tomorrow")
	if r.code != cli.ExitUsage || !strings.Contains(r.stderr, `"tomorrow" is not an RFC 3339 time`) {
		t.Errorf("email schedule 42 --cutover-at tomorrow: exit %d\n%s", r.code, r.stderr)
	}
	r = run(t, env, "", "email", "skip", "42", "bob@example.com", "--by", "ops")
	if r.code != cli.ExitUsage || !strings.Contains(r.stderr, "--reason is required") {
		t.Errorf("email skip without --reason: exit %d\n%s", r.code, r.stderr)
	}
	r = run(t, env, "", "email", "status", "--", "-42")
	if r.code != cli.ExitUsage || !strings.Contains(r.stderr, `job id "-42"`) {
		t.Errorf("email status -- -42: exit %d\n%s", r.code, r.stderr)
	}
}
