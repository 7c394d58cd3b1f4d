package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	sdk "go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/cutover/cutover/internal/searchattr"
)

func init() {
	register("temporal setup", "create the Temporal namespace if absent and register cutover's search attributes (idempotent)", runTemporalSetup)
}

// setupResult is what 'temporal setup' did, for --output json.
type setupResult struct {
	Namespace        string   `json:"namespace"`
	NamespaceCreated bool     `json:"namespace_created"`
	Retention        string   `json:"retention"`
	Registered       []string `json:"search_attributes_registered"`
	Present          int      `json:"search_attributes_present"`
}

func runTemporalSetup(ctx context.Context, e *Env, args []string) error {
	fs, tf, out := commandFlags(e, "temporal setup")
	retention := fs.Duration("retention", 30*24*time.Hour,
		"how long a closed migration's history is kept, when the namespace is created (an existing namespace keeps its own)")
	timeout := fs.Duration("timeout", time.Minute, "give up after this long")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	if *retention < 24*time.Hour {
		return usagef("--retention %s: Temporal wants at least 24h", *retention)
	}
	c, err := tf.client(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	res, err := setupNamespace(ctx, c.Temporal(), tf.conn.Namespace, *retention)
	if err != nil {
		return err
	}
	if out.json() {
		return writeJSON(e.Stdout, res)
	}
	if res.NamespaceCreated {
		fmt.Fprintf(e.Stdout, "namespace %s: created, retention %s\n", res.Namespace, res.Retention)
	} else {
		fmt.Fprintf(e.Stdout, "namespace %s: exists, retention %s (unchanged)\n", res.Namespace, res.Retention)
	}
	if len(res.Registered) > 0 {
		fmt.Fprintf(e.Stdout, "search attributes: registered %s\n", strings.Join(res.Registered, ", "))
	}
	if res.Present > 0 {
		fmt.Fprintf(e.Stdout, "search attributes: %d already registered\n", res.Present)
	}
	fmt.Fprintf(e.Stdout, "namespace %s is ready for cutover workers\n", res.Namespace)
	return nil
}

// setupNamespace creates the namespace when absent and registers the missing search
// attributes. A namespace just created reaches every frontend within seconds (their caches
// refresh), so the attribute calls retry while they still answer NamespaceNotFound.
func setupNamespace(ctx context.Context, tc sdk.Client, ns string, retention time.Duration) (setupResult, error) {
	res := setupResult{Namespace: ns}
	desc, err := tc.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: ns})
	var nf *serviceerror.NamespaceNotFound
	switch {
	case errors.As(err, &nf):
		_, err = tc.WorkflowService().RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
			Namespace:                        ns,
			Description:                      "cutover migrations",
			WorkflowExecutionRetentionPeriod: durationpb.New(retention),
		})
		if err != nil && !errors.As(err, new(*serviceerror.NamespaceAlreadyExists)) {
			return res, fmt.Errorf("create namespace %s: %w", ns, err)
		}
		res.NamespaceCreated, res.Retention = err == nil, retention.String()
	case err != nil:
		return res, fmt.Errorf("describe namespace %s: %w", ns, err)
	default:
		res.Retention = desc.GetConfig().GetWorkflowExecutionRetentionTtl().AsDuration().String()
	}
	for {
		res.Registered, err = searchattr.Register(ctx, tc.OperatorService(), ns)
		if err == nil || !errors.As(err, new(*serviceerror.NamespaceNotFound)) && !errors.As(err, new(*serviceerror.NotFound)) {
			break
		}
		select {
		case <-ctx.Done():
			return res, fmt.Errorf("namespace %s created but not yet visible to the frontend: %w", ns, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
	if err != nil {
		return res, err
	}
	res.Present = len(searchattr.All) - len(res.Registered)
	// Done when the frontend lists them all: a worker started next passes its check.
	for {
		problems, err := searchattr.Check(ctx, tc.OperatorService(), ns)
		if err == nil && len(problems) == 0 {
			return res, nil
		}
		select {
		case <-ctx.Done():
			return res, fmt.Errorf("search attributes registered in namespace %s but not yet listed (%v %v): %w", ns, problems, err, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// diagnose says what keeps a worker from running cutover's workflows on this namespace and
// task queue, in the words of the fix; nil when nothing is found wrong. pollers also asks the
// task queue who polls it (after a failed check: a worker that just started may not be listed
// yet).
func diagnose(ctx context.Context, tc sdk.Client, tf *temporalFlags, pollers bool) error {
	ns := tf.conn.Namespace
	_, err := tc.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: ns})
	if errors.As(err, new(*serviceerror.NamespaceNotFound)) {
		return fmt.Errorf("namespace %s does not exist on %s: run `cutover temporal setup`", ns, tf.conn.Address)
	}
	if err != nil {
		return fmt.Errorf("no answer from Temporal at %s: %w", tf.conn.Describe(), err)
	}
	problems, err := searchattr.Check(ctx, tc.OperatorService(), ns)
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		var what []string
		for _, p := range problems {
			what = append(what, p.String())
		}
		return fmt.Errorf("namespace %s is not set up for cutover (search attribute %s): run `cutover temporal setup`; "+
			"workflow tasks fail until then", ns, strings.Join(what, ", "))
	}
	if !pollers {
		return nil
	}
	for _, kind := range []struct {
		t    enumspb.TaskQueueType
		name string
	}{{enumspb.TASK_QUEUE_TYPE_WORKFLOW, "workflow"}, {enumspb.TASK_QUEUE_TYPE_ACTIVITY, "activity"}} {
		d, err := tc.DescribeTaskQueue(ctx, tf.taskQueue, kind.t)
		if err != nil {
			return fmt.Errorf("describe task queue %s: %w", tf.taskQueue, err)
		}
		if len(d.GetPollers()) == 0 {
			return fmt.Errorf("no worker polls task queue %q for %s tasks in namespace %s: start cutover-worker with "+
				"CUTOVER_TASK_QUEUE=%s and the same Temporal address, namespace and TLS settings", tf.taskQueue, kind.name, ns, tf.taskQueue)
		}
	}
	return nil
}
