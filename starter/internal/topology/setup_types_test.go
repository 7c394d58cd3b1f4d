package topology

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"

	"github.com/cutover/cutover/internal/testing/testenv"
)

// TestSetupNamesAnAttributeOfAnotherType: on a real server, a namespace where one of cutover's
// search attributes is registered with another type (MigrationKind as Text, not Keyword) makes
// the worker exit at once naming the attribute and both types, and `cutover temporal setup`
// refuse, naming it, instead of registering the others over it.
func TestSetupNamesAnAttributeOfAnotherType(t *testing.T) {
	srv := testenv.SharedTemporalServer(t)
	ctx := context.Background()
	conn, c := bareNamespace(t, srv, "typed")
	testenv.WaitFor(t, "the new namespace on the frontend", 30*time.Second, func() bool {
		_, err := c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
			Namespace:        conn.Namespace,
			SearchAttributes: map[string]enumspb.IndexedValueType{"MigrationKind": enumspb.INDEXED_VALUE_TYPE_TEXT},
		})
		return err == nil
	})
	env := append(conn.Env(), "DATABASE_URL="+testenv.NewDatabase(t), "CUTOVER_TASK_QUEUE=typed-test",
		"CUTOVER_METRICS_ADDR=127.0.0.1:0")
	const want = "MigrationKind is Text, want Keyword"

	cmd := exec.Command(testenv.WorkerBinary(t))
	cmd.Env = append(os.Environ(), env...)
	began := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(began)
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("worker on a namespace with MigrationKind as Text did not exit non-zero: %v\n%s", err, out)
	}
	if took > 10*time.Second {
		t.Errorf("worker took %s to exit, want at most 10 s:\n%s", took, out)
	}
	if !strings.Contains(string(out), want) {
		t.Errorf("worker output does not say %q:\n%s", want, out)
	}
	t.Logf("worker exited %d after %s", exit.ExitCode(), took.Round(time.Millisecond))

	r := runCLI(t, env, "temporal", "setup")
	if r.code == 0 {
		t.Fatalf("temporal setup over MigrationKind as Text exited 0: %s", r)
	}
	if !strings.Contains(r.stderr, want) {
		t.Errorf("temporal setup does not say %q: %s", want, r)
	}
	if !strings.Contains(r.stderr, "temporal operator search-attribute remove") {
		t.Errorf("temporal setup does not say how to remove it: %s", r)
	}
}
