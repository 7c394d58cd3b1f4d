package cli_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cutover/cutover/internal/devtools/devstack"
	"github.com/cutover/cutover/internal/testing/testenv"
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

	// The first up takes the addresses and the report directory from the environment.
	reports := filepath.Join(dir, "reports")
	upEnv := map[string]string{"DATABASE_URL": env["DATABASE_URL"], "TEMPORAL_ADDRESS": fmt.Sprintf("127.0.0.1:%d", port),
		"CUTOVER_METRICS_ADDR": metrics, "CUTOVER_REPORT_DIR": reports}
	r := run(t, upEnv, "", "dev", "up", "--state-dir", state, "--temporal", temporalBin, "--worker", workerBin,
		"--ui-port", fmt.Sprint(testenv.FreePort(t)),
		"--http-port", fmt.Sprint(testenv.FreePort(t)), "--server-metrics-port", fmt.Sprint(testenv.FreePort(t)))
	if r.code != cli.ExitOK {
		t.Fatalf("dev up = %+v", r)
	}
	for _, want := range []string{"temporal: started", "worker: started", "Temporal UI:  http://127.0.0.1:",
		"metrics on http://" + metrics + "/metrics", "Reports:      " + reports} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("dev up output lacks %q:\n%s", want, r.stdout)
		}
	}
	r = run(t, env, "", "dev", "status", "--state-dir", state)
	if r.code != cli.ExitOK {
		t.Fatalf("dev status = %+v", r)
	}
	wpid, _ := devstack.ReadPid(filepath.Join(state, "worker.pid"))
	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", wpid))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(environ), "\x00CUTOVER_REPORT_DIR="+reports+"\x00") {
		t.Errorf("the worker was not given CUTOVER_REPORT_DIR=%s", reports)
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
	r = run(t, env, "", "dev", "down", "--state-dir", state)
	if r.code != cli.ExitOK {
		t.Fatalf("r.code = %v, want cli.ExitOK; dev down = %+v", r.code, r)
	}
	if strings.Count(r.stdout, ": stopped") != 2 {
		t.Fatalf("strings.Count(r.stdout, \": stopped\") = %v, want 2; dev down = %+v",
			strings.Count(r.stdout, ": stopped"), r)
	}
	if devstack.Alive(tpid) || devstack.Alive(wpid) {
		t.Fatalf("still alive after down: temporal %v, worker %v", devstack.Alive(tpid), devstack.Alive(wpid))
	}
	r = run(t, env, "", "dev", "status", "--state-dir", state)
	if r.code != cli.ExitFailure || !strings.Contains(r.stdout, "not running") {
		t.Fatalf("dev status after down = %+v", r)
	}
}

// TestDevUpSettings: dev up takes the Temporal address, the worker's metrics address and the
// report directory from TEMPORAL_ADDRESS, CUTOVER_METRICS_ADDR and CUTOVER_REPORT_DIR (a flag
// given wins), says which it uses and whence, and starts no dev server for an address on
// another machine. Nothing starts here: each case stops before a process would.
func TestDevUpSettings(t *testing.T) {
	dir := t.TempDir()
	reports := filepath.Join(dir, "reports-from-env")
	env := map[string]string{"TEMPORAL_ADDRESS": "192.0.2.1:7233", "CUTOVER_METRICS_ADDR": "127.0.0.1:19464",
		"CUTOVER_REPORT_DIR": reports, "DATABASE_URL": "postgres://nobody@127.0.0.1:1/none"}
	state := filepath.Join(dir, "state")
	r := run(t, env, "", "dev", "up", "--state-dir", state)
	if r.code != cli.ExitUsage || !strings.Contains(r.stderr, "TEMPORAL_ADDRESS 192.0.2.1:7233 does not answer") {
		t.Errorf("dev up with a remote TEMPORAL_ADDRESS: exit %d\n%s", r.code, r.stderr)
	}
	want := "using Temporal:       192.0.2.1:7233 (TEMPORAL_ADDRESS)\n" +
		"using worker metrics: 127.0.0.1:19464 (CUTOVER_METRICS_ADDR)\n" +
		"using reports:        " + reports + " (CUTOVER_REPORT_DIR)\n"
	if d := cmp.Diff(want, r.stdout); d != "" {
		t.Errorf("dev up output (-want +got):\n%s", d)
	}

	r = run(t, env, "", "dev", "up", "--state-dir", state, "--port", "17233", "--metrics", "127.0.0.1:29464",
		"--temporal", filepath.Join(dir, "no-temporal"))
	if r.code != cli.ExitFailure || !strings.Contains(r.stderr, "temporal CLI not found") {
		t.Errorf("dev up --port with no temporal CLI: exit %d\n%s", r.code, r.stderr)
	}
	for _, line := range []string{"using Temporal:       127.0.0.1:17233 (--port)",
		"using worker metrics: 127.0.0.1:29464 (--metrics)"} {
		if !strings.Contains(r.stdout, line) {
			t.Errorf("flags win over the environment: output lacks %q:\n%s", line, r.stdout)
		}
	}

	delete(env, "CUTOVER_REPORT_DIR")
	env["TEMPORAL_ADDRESS"] = "localhost"
	r = run(t, env, "", "dev", "up", "--state-dir", state)
	if r.code != cli.ExitUsage || !strings.Contains(r.stderr, `TEMPORAL_ADDRESS="localhost": want HOST:PORT`) {
		t.Errorf("dev up with a port-less TEMPORAL_ADDRESS: exit %d\n%s", r.code, r.stderr)
	}
	env["TEMPORAL_ADDRESS"] = "localhost:17234"
	r = run(t, env, "", "dev", "up", "--state-dir", state, "--temporal", filepath.Join(dir, "no-temporal"))
	if !strings.Contains(r.stdout, "using reports:        "+filepath.Join(state, "reports")+" (default)") ||
		!strings.Contains(r.stderr, "temporal CLI not found") {
		t.Errorf("dev up on a local TEMPORAL_ADDRESS starts its own server, reports under the state: exit %d\n%s%s",
			r.code, r.stdout, r.stderr)
	}
}
