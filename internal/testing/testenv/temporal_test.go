package testenv

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// upsertKindWorkflow tags itself with MigrationKind = kind, like the real
// migration workflows do.
func upsertKindWorkflow(ctx workflow.Context, kind string) (string, error) {
	err := workflow.UpsertTypedSearchAttributes(ctx, temporal.NewSearchAttributeKeyKeyword("MigrationKind").ValueSet(kind))
	if err != nil {
		return "", err
	}
	return "done:" + kind, nil
}

func TestStartTemporal(t *testing.T) {
	t.Parallel()
	srv := StartTemporal(t)
	if srv.UIURL() != "" {
		t.Errorf("UIURL() = %q for a headless server", srv.UIURL())
	}
	c := srv.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// All seven attributes, spelled out rather than read from SearchAttributes.
	resp, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: srv.Namespace()})
	if err != nil {
		t.Fatalf("ListSearchAttributes: %v", err)
	}
	for name, typ := range map[string]enumspb.IndexedValueType{
		"MigrationKind":   enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		"MigrationPhase":  enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		"MigrationGate":   enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		"MigrationDomain": enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		"MigrationStatus": enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		"SyncPercent":     enumspb.INDEXED_VALUE_TYPE_DOUBLE,
		"TenantID":        enumspb.INDEXED_VALUE_TYPE_INT,
	} {
		if got, ok := resp.GetCustomAttributes()[name]; !ok || got != typ {
			t.Errorf("search attribute %s = %v (present: %t), want %v", name, got, ok, typ)
		}
	}

	taskQueue := "testenv-" + randomHex(6)
	w := worker.New(c, taskQueue, worker.Options{})
	w.RegisterWorkflowWithOptions(upsertKindWorkflow, workflow.RegisterOptions{Name: "testenv.UpsertKind"})
	if err := w.Start(); err != nil {
		t.Fatalf("start worker: %v", err)
	}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: taskQueue + "-wf", TaskQueue: taskQueue}, "testenv.UpsertKind", "test")
	if err != nil {
		w.Stop()
		t.Fatalf("start workflow: %v", err)
	}
	var result string
	err = run.Get(ctx, &result)
	w.Stop() // before Restart, so the worker doesn't poll a dead server
	if err != nil {
		t.Fatalf("err: want nil; workflow result = %q, %v; want done:test", result, err)
	}
	if result != "done:test" {
		t.Fatalf("result: want \"done:test\"; workflow result = %q, %v; want done:test", result, err)
	}

	query := fmt.Sprintf("MigrationKind = 'test' AND WorkflowId = '%s'", run.GetID())
	waitVisible(ctx, t, c, srv.Namespace(), query, run.GetRunID())

	// State survives a restart on the same ports and database file; the
	// existing client reconnects by itself.
	addr := srv.Address()
	srv.Restart(t)
	if srv.Address() != addr {
		t.Errorf("Address() changed across Restart: %s -> %s", addr, srv.Address())
	}
	desc, err := c.DescribeWorkflowExecution(ctx, run.GetID(), run.GetRunID())
	if err != nil {
		t.Fatalf("DescribeWorkflowExecution after restart: %v", err)
	}
	if st := desc.GetWorkflowExecutionInfo().GetStatus(); st != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		t.Errorf("status after restart = %v, want COMPLETED", st)
	}
	waitVisible(ctx, t, c, srv.Namespace(), query, run.GetRunID())
}

// waitVisible polls ListWorkflow (visibility is eventually consistent) until
// query returns exactly the run runID.
func waitVisible(ctx context.Context, t *testing.T, c client.Client, namespace, query, runID string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: namespace, Query: query})
		var runs []string
		for _, e := range resp.GetExecutions() {
			runs = append(runs, e.GetExecution().GetRunId())
		}
		if err == nil && len(runs) == 1 && runs[0] == runID {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ListWorkflow(%q) = runs %v, err %v; want [%s]", query, runs, err, runID)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestSharedTemporal(t *testing.T) {
	t.Parallel()
	var first *Temporal
	// The shared server must outlive the cleanup of the test that started it.
	for i := range 2 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			srv := SharedTemporal(t)
			if first == nil {
				first = srv
			} else if srv != first {
				t.Fatalf("SharedTemporal returned a second server (%s, first %s)", srv.Address(), first.Address())
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := srv.Client(t).CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
				t.Fatalf("CheckHealth: %v", err)
			}
		})
	}
	if first == nil {
		t.Fatal("shared Temporal server unavailable")
	}
	if !strings.HasPrefix(first.Address(), "127.0.0.1:") {
		t.Errorf("Address() = %q, want 127.0.0.1:<port>", first.Address())
	}
}

func TestStartTemporalWithUI(t *testing.T) {
	t.Parallel()
	srv := StartTemporal(t, WithUI())
	if !strings.HasPrefix(srv.UIURL(), "http://127.0.0.1:") {
		t.Fatalf("UIURL() = %q", srv.UIURL())
	}
	srv.Stop()
	srv.Stop() // idempotent
}
