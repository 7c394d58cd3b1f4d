package topology

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	sdk "go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/cutover/cutover/internal/searchattr"
	"github.com/cutover/cutover/internal/temporalconn"
	"github.com/cutover/cutover/internal/testing/testenv"
)

// TestTemporalSetupOnARealServer: on a real server, a namespace without cutover's search
// attributes makes the worker exit at once naming `cutover temporal setup`, and `cutover
// health` say so; `cutover temporal setup` registers them (and creates a namespace that does
// not exist), idempotently, printing what it did.
func TestTemporalSetupOnARealServer(t *testing.T) {
	srv := testenv.SharedTemporalServer(t)
	ctx := context.Background()
	conn, c := bareNamespace(t, srv, "bare")
	// A namespace reaches the frontend's cache within its refresh interval.
	testenv.WaitFor(t, "the new namespace on the frontend", 30*time.Second, func() bool {
		_, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: conn.Namespace})
		return err == nil
	})
	dbURL := testenv.NewDatabase(t)
	env := append(conn.Env(), "DATABASE_URL="+dbURL, "CUTOVER_TASK_QUEUE=setup-test", "CUTOVER_METRICS_ADDR=127.0.0.1:0")

	// The worker refuses the bare namespace, within seconds, saying what to run.
	cmd := exec.Command(testenv.WorkerBinary(t))
	cmd.Env = append(os.Environ(), env...)
	began := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(began)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("worker on a namespace without search attributes: %v\n%s", err, out)
	}
	if took > 10*time.Second || !strings.Contains(string(out), "cutover temporal setup --namespace "+conn.Namespace) ||
		!strings.Contains(string(out), "temporal operator search-attribute create --namespace "+conn.Namespace+" --name MigrationKind --type Keyword") {
		t.Fatalf("worker exited after %s with:\n%s\nwant within 10 s a message naming `cutover temporal setup` and the temporal CLI lines", took, out)
	}
	t.Logf("worker exited %d after %s: %s", exit.ExitCode(), took.Round(time.Millisecond), lastLine(string(out)))

	r := runCLI(t, env, "health", "--timeout", "20s")
	if r.code != 1 || !strings.Contains(r.stderr, "not set up for cutover") || !strings.Contains(r.stderr, "cutover temporal setup") {
		t.Fatalf("health on the bare namespace: %s", r)
	}

	r = runCLI(t, env, "temporal", "setup")
	if r.code != 0 || !strings.Contains(r.stdout, "namespace "+conn.Namespace+": exists, retention 24h0m0s") ||
		!strings.Contains(r.stdout, "search attributes: registered "+strings.Join(sortedNames(), ", ")) {
		t.Fatalf("temporal setup: %s", r)
	}
	problems, err := searchattr.Check(ctx, c.OperatorService(), conn.Namespace)
	if err != nil {
		t.Fatalf("err: want nil; after setup the server lists %v (%v)", problems, err)
	}
	if len(problems) != 0 {
		t.Fatalf("len(problems) = %v, want 0; after setup the server lists %v (%v)", len(problems), problems, err)
	}
	r = runCLI(t, env, "temporal", "setup")
	if r.code != 0 || strings.Contains(r.stdout, "search attributes: registered") || !strings.Contains(r.stdout, fmt.Sprintf("%d already registered", len(searchattr.All))) {
		t.Fatalf("temporal setup again: %s", r)
	}

	// A namespace that does not exist is created with the retention asked for.
	fresh := fmt.Sprintf("fresh-%d", time.Now().UnixNano())
	r = runCLI(t, env, "temporal", "setup", "--namespace", fresh, "--retention", "72h", "-o", "json")
	if r.code != 0 || !strings.Contains(r.stdout, `"namespace_created": true`) || !strings.Contains(r.stdout, `"retention": "72h0m0s"`) {
		t.Fatalf("temporal setup of a new namespace: %s", r)
	}
	d, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: fresh})
	if err != nil {
		t.Fatalf("err: want nil; the new namespace: %v (%v)", d.GetConfig(), err)
	}
	if d.GetConfig().GetWorkflowExecutionRetentionTtl().AsDuration() != 72*time.Hour {
		t.Fatalf("want d.GetConfig().GetWorkflowExecutionRetentionTtl().AsDuration() == 72*time.Hour; the new namespace: %v (%v)",
			d.GetConfig(), err)
	}
	r = runCLI(t, env, "health", "--namespace", "missing-namespace", "--timeout", "20s")
	if r.code != 1 || !strings.Contains(r.stderr, "namespace missing-namespace does not exist") {
		t.Fatalf("health on a namespace that does not exist: %s", r)
	}
}

func sortedNames() []string {
	var out []string
	for _, d := range searchattr.All {
		out = append(out, d.Name)
	}
	slices.Sort(out)
	return out
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// bareNamespace registers a new namespace with none of cutover's search attributes on srv,
// and returns a connection to it and a client of the server's default connection.
func bareNamespace(t *testing.T, srv *testenv.TemporalServer, prefix string) (temporalconn.Options, sdk.Client) {
	t.Helper()
	conn := srv.Connection()
	conn.Namespace = fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano())
	c := dial(t, srv.Connection())
	if _, err := c.WorkflowService().RegisterNamespace(context.Background(), &workflowservice.RegisterNamespaceRequest{
		Namespace: conn.Namespace, WorkflowExecutionRetentionPeriod: durationpb.New(24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	return conn, c
}
