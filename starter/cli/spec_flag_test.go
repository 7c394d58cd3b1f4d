package cli_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/cutover/cutover/starter/cli"
)

// Start commands take the spec as --spec FILE or as their argument, not both.
func TestStartSpecFlag(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"TEMPORAL_ADDRESS": "127.0.0.1:1", "DATABASE_URL": "postgres://nobody@127.0.0.1:1/none"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"email", "start", "--spec", filepath.Join(dir, "missing.yaml")}, "no such file"},
		{[]string{"email", "start", "--spec", "a.yaml", "b.yaml"}, "give the spec once: --spec a.yaml or b.yaml"},
		{[]string{"db", "start", "--spec", filepath.Join(dir, "missing.yaml"), "--type", "incremental"}, "no such file"},
		{[]string{"db", "start", "--type", "sideways", "--spec", "x.yaml"}, "want full_migration, incremental or schema_cleanup"},
		{[]string{"db", "start"}, "want 1 argument(s), got 0"},
	} {
		r := run(t, env, "", tc.args...)
		if r.code != cli.ExitUsage || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, r.code, r.stderr, cli.ExitUsage, tc.want)
		}
	}
}
