package cli_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cutover/cutover/internal/devstack"
	"github.com/cutover/cutover/internal/testenv"
	"github.com/cutover/cutover/starter/cli"
)

// TestDevUpHealthDown is `make demo` / `make down` in miniature, on free ports: the dev server
// and worker start detached, the health workflow runs through them, and down stops both.
func TestDevUpHealthDown(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the Temporal dev server and a worker binary")
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	temporalBin := filepath.Join(root, "bin", "temporal")
	_, err = os.Stat(temporalBin)
	testenv.Require(t, "temporal CLI (run 'make tools')", err)
	dir := t.TempDir()
	workerBin := filepath.Join(dir, "cutover-worker")
	if out, err := exec.Command("go", "build", "-o", workerBin, "github.com/cutover/cutover/worker").CombinedOutput(); err != nil {
		t.Fatalf("build worker: %v\n%s", err, out)
	}
	env := map[string]string{"DATABASE_URL": testenv.NewDatabase(t)}
	state := filepath.Join(dir, "state")
	port := testenv.FreePort(t)
	metrics := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	t.Cleanup(func() { run(t, env, "", "dev", "down", "--state-dir", state, "--quiet") })

	r := run(t, env, "", "dev", "up", "--state-dir", state, "--temporal", temporalBin, "--worker", workerBin,
		"--port", fmt.Sprint(port), "--ui-port", fmt.Sprint(testenv.FreePort(t)),
		"--http-port", fmt.Sprint(testenv.FreePort(t)), "--server-metrics-port", fmt.Sprint(testenv.FreePort(t)),
		"--metrics", metrics)
	if r.code != cli.ExitOK {
		t.Fatalf("dev up = %+v", r)
	}
	for _, want := range []string{"temporal: started", "worker: started", "Temporal UI:  http://127.0.0.1:"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("dev up output lacks %q:\n%s", want, r.stdout)
		}
	}
	r = run(t, env, "", "dev", "status", "--state-dir", state)
	if r.code != cli.ExitOK {
		t.Fatalf("dev status = %+v", r)
	}
	// Idempotent: a second up reuses what runs.
	r = run(t, env, "", "dev", "up", "--state-dir", state, "--temporal", temporalBin, "--worker", workerBin,
		"--port", fmt.Sprint(port), "--metrics", metrics)
	if r.code != cli.ExitOK || !strings.Contains(r.stdout, "temporal: already running") || !strings.Contains(r.stdout, "worker: already running") {
		t.Fatalf("second dev up = %+v", r)
	}

	r = run(t, env, "", "health", "--address", fmt.Sprintf("127.0.0.1:%d", port))
	if r.code != cli.ExitOK || !strings.HasPrefix(r.stdout, "healthy: worker ") {
		t.Fatalf("health = %+v", r)
	}

	tpid, _ := devstack.ReadPid(filepath.Join(state, "temporal.pid"))
	wpid, _ := devstack.ReadPid(filepath.Join(state, "worker.pid"))
	r = run(t, env, "", "dev", "down", "--state-dir", state)
	if r.code != cli.ExitOK || strings.Count(r.stdout, ": stopped") != 2 {
		t.Fatalf("dev down = %+v", r)
	}
	if devstack.Alive(tpid) || devstack.Alive(wpid) {
		t.Fatalf("still alive after down: temporal %v, worker %v", devstack.Alive(tpid), devstack.Alive(wpid))
	}
	r = run(t, env, "", "dev", "status", "--state-dir", state)
	if r.code != cli.ExitFailure || !strings.Contains(r.stdout, "not running") {
		t.Fatalf("dev status after down = %+v", r)
	}
}
