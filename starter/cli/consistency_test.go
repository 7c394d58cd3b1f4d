package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cutover/cutover/starter/cli"
)

// `list --phase` refuses a phase no migration has, naming the known ones, before any server is
// contacted; `demo --state-dir` makes a missing directory before it starts anything, and
// refuses one it cannot make.
func TestListPhaseAndDemoStateDir(t *testing.T) {
	env := map[string]string{"TEMPORAL_ADDRESS": "127.0.0.1:1", "DATABASE_URL": "postgres://nobody@127.0.0.1:1/none"}
	for _, args := range [][]string{{"email", "list", "--phase", "delta-sync"}, {"db", "list", "--phase", "delta_sync"},
		{"list", "--phase", "Verified"}} {
		r := run(t, env, "", args...)
		if r.code != cli.ExitUsage || !strings.Contains(r.stderr, "want one of") {
			t.Errorf("%v: exit %d\n%s", args, r.code, r.stderr)
		}
	}
	if r := run(t, env, "", "db", "list", "--phase", "delta_sync"); !strings.Contains(r.stderr, "loading") ||
		strings.Contains(r.stderr, "verified") {
		t.Errorf("db list names the database phases only:\n%s", r.stderr)
	}

	dir := t.TempDir()
	state := filepath.Join(dir, "new", "state")
	run(t, env, "", "demo", "--state-dir", state, "--timeout", "5s")
	if st, err := os.Stat(state); err != nil || !st.IsDir() {
		t.Errorf("demo did not make its state directory: %v", err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := run(t, env, "", "demo", "--state-dir", filepath.Join(file, "state")); r.code != cli.ExitUsage ||
		!strings.Contains(r.stderr, "--state-dir") {
		t.Errorf("an impossible state directory: exit %d\n%s", r.code, r.stderr)
	}
}
