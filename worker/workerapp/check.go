package workerapp

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/cutover/cutover/internal/searchattr"
	"github.com/cutover/cutover/internal/temporalconn"
)

// ErrNotSetUp means the namespace is missing or lacks cutover's search attributes: every
// workflow task would fail (BadSearchAttributes) while the worker looked healthy, so the worker
// refuses to start and names the command that fixes it.
var ErrNotSetUp = errors.New("the Temporal namespace is not set up for cutover")

// checkNamespace verifies, before polling, that the namespace exists and holds every search
// attribute workflows upsert with its type.
func checkNamespace(ctx context.Context, c client.Client, conn temporalconn.Options) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	flags := conn.CLIFlags()
	if conn.Namespace != temporalconn.DefaultNamespace {
		flags = strings.TrimSpace("--namespace " + conn.Namespace + " " + flags)
	}
	setup := "run `cutover temporal setup`"
	if flags != "" {
		setup = "run `cutover temporal setup " + flags + "`"
	}
	_, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: conn.Namespace})
	var nf *serviceerror.NamespaceNotFound
	if errors.As(err, &nf) {
		return fmt.Errorf("%w: namespace %s does not exist; %s (or `temporal operator namespace create --namespace %s`)",
			ErrNotSetUp, conn.Namespace, setup, conn.Namespace)
	}
	if err != nil {
		return fmt.Errorf("describe namespace %s: %w", conn.Namespace, err)
	}
	problems, err := searchattr.Check(ctx, c.OperatorService(), conn.Namespace)
	if errors.As(err, &nf) { // created moments ago: not yet on this frontend
		return fmt.Errorf("%w: namespace %s is not known to the frontend yet; %s and start the worker again",
			ErrNotSetUp, conn.Namespace, setup)
	}
	if err != nil {
		return err
	}
	if len(problems) == 0 {
		return nil
	}
	var what []string
	for _, p := range problems {
		what = append(what, p.String())
	}
	return fmt.Errorf("%w: namespace %s: search attribute %s; %s, or with the temporal CLI:\n  %s",
		ErrNotSetUp, conn.Namespace, strings.Join(what, ", "), setup,
		strings.Join(searchattr.CLICommands(problems, conn.Namespace, conn.CLIFlags()), "\n  "))
}
