package workerapp_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/cutover/cutover/activities/dbping"
	"github.com/cutover/cutover/internal/codec"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/schema"
	"github.com/cutover/cutover/worker/workerapp"
	healthwf "github.com/cutover/cutover/workflows/health"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestWorkerRunsHealthCheckVisibleBySearchAttributes is the foundation's end-to-end proof: dev
// server from the harness, worker in-process, a workflow through it, our search attributes in a
// visibility query, SDK metrics on the Prometheus endpoint.
func TestWorkerRunsHealthCheckVisibleBySearchAttributes(t *testing.T) {
	srv := testenv.SharedTemporal(t)
	dbURL := testenv.NewDatabase(t)
	queue := fmt.Sprintf("health-%d", time.Now().UnixNano())

	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan workerapp.Info, 1)
	done := make(chan error, 1)
	go func() {
		done <- workerapp.Run(ctx, workerapp.Config{
			TemporalAddress: srv.Address(), Namespace: srv.Namespace(), TaskQueue: queue, DatabaseURL: dbURL,
			MetricsAddr: "127.0.0.1:0", ShutdownGrace: 5 * time.Second,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		}, func(i workerapp.Info) { ready <- i })
	}()
	var info workerapp.Info
	select {
	case info = <-ready:
	case err := <-done:
		t.Fatalf("worker exited before ready: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("worker not ready in 60s")
	}

	c := srv.Client(t)
	id := "health-" + queue
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue}, healthwf.Name)
	if err != nil {
		t.Fatal(err)
	}
	var res dbping.PingResult
	if err := run.Get(ctx, &res); err != nil {
		t.Fatalf("health workflow: %v", err)
	}
	if res.SchemaVersion != schema.Latest() {
		t.Fatalf("res.SchemaVersion = %v, want schema.Latest(); ping result = %+v", res.SchemaVersion, res)
	}
	if res.Worker == "" {
		t.Fatalf("res.Worker = %v, want != \"\"; ping result = %+v", res.Worker, res)
	}

	query := fmt.Sprintf("WorkflowId = '%s' AND MigrationKind = 'health' AND MigrationStatus = 'ok'", id)
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query})
		if err != nil {
			t.Fatalf("visibility query: %v", err)
		}
		if len(resp.Executions) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("visibility query %q found %d executions", query, len(resp.Executions))
		}
		time.Sleep(250 * time.Millisecond)
	}

	body := httpGet(t, "http://"+info.MetricsAddr+"/metrics")
	for _, want := range []string{"temporal_workflow_completed", "temporal_activity_execution_latency", "go_goroutines"} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics endpoint lacks %s", want)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("worker stop: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("worker did not stop in 30s")
	}
}

// TestWorkerBinaryStopsGracefullyOnSIGTERM runs the real binary and stops it as an orchestrator
// would.
func TestWorkerBinaryStopsGracefullyOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the worker binary")
	}
	srv := testenv.SharedTemporal(t)
	dbURL := testenv.NewDatabase(t)
	bin := filepath.Join(t.TempDir(), "cutover-worker")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/cutover/cutover/worker").CombinedOutput(); err != nil {
		t.Fatalf("build worker: %v\n%s", err, out)
	}
	port := testenv.FreePort(t)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "TEMPORAL_ADDRESS="+srv.Address(), "DATABASE_URL="+dbURL,
		fmt.Sprintf("CUTOVER_METRICS_ADDR=127.0.0.1:%d", port), "CUTOVER_TASK_QUEUE=sigterm-"+t.Name(),
		"CUTOVER_SHUTDOWN_GRACE=5s", "CUTOVER_VAULT_KEYS=")
	logs := &lockedBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// /healthz answers as soon as the process serves metrics (liveness); the stop under test is
	// that of a worker polling Temporal, which it logs as started.
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", port))
		if err == nil {
			resp.Body.Close()
			if strings.Contains(logs.String(), "worker started") {
				break
			}
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("worker not started (/healthz: %v)\n%s", err, logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("worker exit after SIGTERM: %v\n%s", err, logs.String())
	}
	for _, want := range []string{"worker started", "worker stopping", "worker stopped"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("worker log lacks %q:\n%s", want, logs.String())
		}
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestPayloadCodecKeepsHistoryEncrypted runs a workflow with payload encryption on and reads the
// raw history without the codec: every payload must be ciphertext, and the codec client must
// still read the result.
func TestPayloadCodecKeepsHistoryEncrypted(t *testing.T) {
	srv := testenv.SharedTemporal(t)
	key, err := codec.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pc, err := codec.ParseKeys(key)
	if err != nil {
		t.Fatal(err)
	}
	queue := fmt.Sprintf("codec-%d", time.Now().UnixNano())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan workerapp.Info, 1)
	done := make(chan error, 1)
	go func() {
		done <- workerapp.Run(ctx, workerapp.Config{
			TemporalAddress: srv.Address(), Namespace: srv.Namespace(), TaskQueue: queue,
			DatabaseURL: testenv.NewDatabase(t), PayloadCodec: pc, ShutdownGrace: time.Second,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		}, func(i workerapp.Info) { ready <- i })
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("worker exited: %v", err)
	}

	enc, err := client.Dial(client.Options{HostPort: srv.Address(), DataConverter: codec.DataConverter(pc)})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	run, err := enc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "codec-" + queue, TaskQueue: queue}, healthwf.Name)
	if err != nil {
		t.Fatal(err)
	}
	var res dbping.PingResult
	if err := run.Get(ctx, &res); err != nil {
		t.Fatalf("err: want nil; result through codec: %+v, %v", res, err)
	} else if res.Worker == "" {
		t.Fatalf("res.Worker = %v, want != \"\"; result through codec: %+v, %v", res.Worker, res, err)
	}

	plain := srv.Client(t) // no codec unless the environment sets one
	it := plain.GetWorkflowHistory(ctx, run.GetID(), run.GetRunID(), false, 0)
	payloads := 0
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		raw, err := protojson.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(raw), res.Worker) {
			t.Fatalf("event %d %s carries the result in clear", ev.EventId, ev.EventType)
		}
		for _, p := range eventPayloads(ev) {
			payloads++
			if string(p.GetMetadata()["encoding"]) != "binary/encrypted" {
				t.Fatalf("event %d %s has a %q payload", ev.EventId, ev.EventType, p.GetMetadata()["encoding"])
			}
		}
	}
	if payloads == 0 {
		t.Fatal("history carried no payloads: the check above proved nothing")
	}
}

// eventPayloads returns the payloads of the events the health workflow produces.
func eventPayloads(ev *historypb.HistoryEvent) []*commonpb.Payload {
	var ps []*commonpb.Payload
	if a := ev.GetActivityTaskCompletedEventAttributes(); a != nil {
		ps = append(ps, a.GetResult().GetPayloads()...)
	}
	if a := ev.GetWorkflowExecutionCompletedEventAttributes(); a != nil {
		ps = append(ps, a.GetResult().GetPayloads()...)
	}
	return ps
}

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A worker stopped while it is still connecting to Temporal (an orchestrator scaling down a
// worker that just started, or Temporal not up yet) stops cleanly: nothing ran, so no error.
func TestRunStoppedWhileConnecting(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	// A listener that accepts and never answers: the gRPC dial waits.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- workerapp.Run(ctx, workerapp.Config{TemporalAddress: ln.Addr().String(), Namespace: "default",
			TaskQueue: "never", DatabaseURL: testenv.NewDatabase(t), ShutdownGrace: time.Second,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, nil)
	}()
	select {
	case err := <-done:
		t.Fatalf("Run returned before it was stopped: %v", err)
	case <-time.After(2 * time.Second):
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("stopped while connecting: %v, want a clean stop", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}
