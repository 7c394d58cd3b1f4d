package cutover_test

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/cutover/cutover/"

// goList runs `go list` with args and returns its output lines (fields).
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list"}, args...)...).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, ee.Stderr)
		}
		t.Fatalf("go list %s: %v", strings.Join(args, " "), err)
	}
	return strings.Fields(string(out))
}

// TestClientLinksOnlyContracts: the SDK client (starter/client) links the workflows' contracts
// (emailapi, dbmigrateapi, the specs), never the workflows, the activities, the IMAP library, a
// database driver or the store, so an upstream service importing it stays small.
func TestClientLinksOnlyContracts(t *testing.T) {
	forbidden := []string{
		"github.com/emersion/go-imap", "github.com/jackc/pgx", "modernc.org/sqlite",
		module + "activities/", module + "worker/", module + "starter/cli/",
	}
	whole := map[string]bool{module + "workflows/email": true, module + "workflows/dbmigrate": true,
		module + "worker": true, module + "starter/cli": true}
	deps := goList(t, "-deps", "./starter/client")
	if len(deps) < 10 {
		t.Fatalf("go list -deps ./starter/client listed %d packages: %v", len(deps), deps)
	}
	for _, d := range deps {
		for _, f := range forbidden {
			if strings.HasPrefix(d, f) {
				t.Errorf("starter/client links %s", d)
			}
		}
		if whole[d] {
			t.Errorf("starter/client links %s (it needs only the contracts)", d)
		}
	}
}

// TestInternalIsTheBottomFloor: no package under internal/ imports the floors above it
// (starter/, worker/, workflows/), so vocabulary and helpers never depend on what uses them.
func TestInternalIsTheBottomFloor(t *testing.T) {
	lines := goList(t, "-f", `{{.ImportPath}}:{{join .Imports ","}}`, "./internal/...")
	if len(lines) < 5 {
		t.Fatalf("go list ./internal/... listed %d packages", len(lines))
	}
	for _, line := range lines {
		pkg, imports, _ := strings.Cut(line, ":")
		for _, imp := range strings.Split(imports, ",") {
			rel, ok := strings.CutPrefix(imp, module)
			if !ok {
				continue
			}
			for _, up := range []string{"starter", "worker", "workflows"} {
				if rel == up || strings.HasPrefix(rel, up+"/") {
					t.Errorf("%s imports %s", pkg, imp)
				}
			}
		}
	}
}
