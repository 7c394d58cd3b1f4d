package testenv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/codec"
	"github.com/cutover/cutover/internal/devtools/devstack"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
)

// Temporal is a `temporal server start-dev` process owned by a test.
type Temporal struct {
	bin       string
	dir       string // holds temporal.db and temporal.log; kept across Restart
	namespace string
	port      int
	httpPort  int
	metrics   int
	uiPort    int // 0 when headless
	extraArgs []string
	shared    bool

	mu   sync.Mutex
	proc *proc
}

type temporalOptions struct {
	ui        bool
	extraArgs []string
}

// TemporalOption configures StartTemporal.
type TemporalOption func(*temporalOptions)

// WithUI serves the Web UI (on UIURL) instead of running headless.
func WithUI() TemporalOption {
	return func(o *temporalOptions) { o.ui = true }
}

// WithDynamicConfig sets a server dynamic config value; value is JSON,
// e.g. WithDynamicConfig("limit.maxIDLength", "255").
func WithDynamicConfig(key, value string) TemporalOption {
	return func(o *temporalOptions) {
		o.extraArgs = append(o.extraArgs, "--dynamic-config-value", key+"="+value)
	}
}

const (
	temporalStartTimeout = 60 * time.Second
	temporalStopGrace    = 10 * time.Second
)

// unavailableError marks a missing component, which skips (rather than
// fails) tests outside CI.
type unavailableError struct{ err error }

func (e unavailableError) Error() string { return e.err.Error() }
func (e unavailableError) Unwrap() error { return e.err }

// StartTemporal starts a dev server on free ports with a fresh SQLite
// database and the cutover search attributes, and stops it when the test
// ends. It skips the test if the temporal CLI is missing (fails if CI=true).
func StartTemporal(t testing.TB, opts ...TemporalOption) *Temporal {
	t.Helper()
	s, err := newTemporal(opts...)
	if errors.As(err, new(unavailableError)) {
		Require(t, "temporal dev server", err)
	}
	if err != nil {
		t.Fatalf("start temporal: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("temporal server log (%s):\n%s", s.logPath(), s.LogTail())
		}
		s.Stop()
		_ = os.RemoveAll(s.dir)
	})
	return s
}

var shared struct {
	once     sync.Once
	temporal *Temporal
	err      error
}

// SharedTemporal returns a dev server shared by all tests of the test binary,
// started on first use. Tests must not Stop or Restart it, and should use
// unique task queues and workflow IDs. The package's TestMain must call Main,
// which stops the server after all tests ran.
func SharedTemporal(t testing.TB) *Temporal {
	t.Helper()
	shared.once.Do(func() {
		shared.temporal, shared.err = newTemporal()
		if shared.err == nil {
			shared.temporal.shared = true
		}
	})
	if errors.As(shared.err, new(unavailableError)) {
		Require(t, "temporal dev server", shared.err)
	}
	if shared.err != nil {
		t.Fatalf("start shared temporal: %v", shared.err)
	}
	return shared.temporal
}

func stopShared() {
	if s := shared.temporal; s != nil {
		s.Stop()
		_ = os.RemoveAll(s.dir)
	}
}

func newTemporal(opts ...TemporalOption) (*Temporal, error) {
	var o temporalOptions
	for _, opt := range opts {
		opt(&o)
	}
	bin, err := temporalBin()
	if err != nil {
		return nil, unavailableError{err}
	}
	// The dev server also binds ports of its own choosing (its internal
	// services), which another process can take first: start again on new
	// ports when a bind is refused.
	for attempt := 1; ; attempt++ {
		s, err := startTemporal(bin, o)
		if err == nil || attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			return s, err
		}
	}
}

func startTemporal(bin string, o temporalOptions) (*Temporal, error) {
	s := &Temporal{bin: bin, namespace: "default", extraArgs: o.extraArgs}
	var err error
	for _, p := range []*int{&s.port, &s.httpPort, &s.metrics} {
		if *p, err = freePort(); err != nil {
			return nil, err
		}
	}
	if o.ui {
		if s.uiPort, err = freePort(); err != nil {
			return nil, err
		}
	}
	// Not t.TempDir: the shared server outlives the test that started it.
	if s.dir, err = os.MkdirTemp("", "cutover-temporal-"); err != nil {
		return nil, fmt.Errorf("create temp dir: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.startLocked(); err != nil {
		err = fmt.Errorf("%w\nserver log (%s):\n%s", err, s.logPath(), s.LogTail())
		_ = os.RemoveAll(s.dir)
		return nil, err
	}
	return s, nil
}

// temporalBin finds the CLI: $CUTOVER_TEMPORAL_BIN, else <repo>/bin/temporal.
func temporalBin() (string, error) {
	bin := os.Getenv("CUTOVER_TEMPORAL_BIN")
	if bin == "" {
		root, err := RepoRoot()
		if err != nil {
			return "", err
		}
		bin = filepath.Join(root, "bin", "temporal")
	}
	st, err := os.Stat(bin)
	if err != nil {
		return "", fmt.Errorf("temporal CLI not found (run `make tools`): %w", err)
	}
	if st.IsDir() || st.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("temporal CLI %s is not an executable file (run `make tools`)", bin)
	}
	return bin, nil
}

func (s *Temporal) logPath() string { return filepath.Join(s.dir, "temporal.log") }

// server describes this instance for devstack, which owns the dev-server command line.
func (s *Temporal) server() devstack.TemporalServer {
	return devstack.TemporalServer{Port: s.port, HTTPPort: s.httpPort, MetricsPort: s.metrics, UIPort: s.uiPort,
		DBFile: filepath.Join(s.dir, "temporal.db"), Namespace: s.namespace, Extra: s.extraArgs}
}

func (s *Temporal) startLocked() error {
	args := s.server().Args()
	p, err := startProc(s.logPath(), s.bin, args...)
	if err != nil {
		return err
	}
	if err := s.waitReady(p); err != nil {
		p.stop(temporalStopGrace)
		return err
	}
	s.proc = p
	return nil
}

// waitReady polls until the frontend is healthy and reports all our search
// attributes, or the process dies, or temporalStartTimeout passes.
func (s *Temporal) waitReady(p *proc) error {
	deadline := time.Now().Add(temporalStartTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		if exited, err := p.exited(); exited {
			return fmt.Errorf("temporal server exited during startup: %v", err)
		}
		if lastErr = s.probe(); lastErr == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("temporal server not ready after %s: %w", temporalStartTimeout, lastErr)
}

func (s *Temporal) probe() error {
	// A plain TCP dial first keeps the SDK from retrying (and logging)
	// against a port nobody listens on yet.
	conn, err := net.DialTimeout("tcp", s.Address(), time.Second)
	if err != nil {
		return err
	}
	conn.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return devstack.ProbeTemporal(ctx, s.Address(), s.namespace)
}

// Address returns the frontend gRPC host:port.
func (s *Temporal) Address() string { return s.server().Address() }

// Namespace returns the namespace tests should use.
func (s *Temporal) Namespace() string { return s.namespace }

// UIURL returns the Web UI base URL, or "" when running headless.
func (s *Temporal) UIURL() string { return s.server().UIURL() }

// LogTail returns the end of the server's stdout/stderr log.
func (s *Temporal) LogTail() string { return tailFile(s.logPath(), 16<<10) }

// Client returns a client for Namespace, closed when the test ends. SDK
// warnings and errors go to the test log.
func (s *Temporal) Client(t testing.TB) client.Client {
	t.Helper()
	w := &testLogWriter{t: t}
	t.Cleanup(w.detach) // registered first, so it runs after Close
	// The same payload codec as the worker under test (CUTOVER_PAYLOAD_KEYS), so the whole
	// suite can run with payload encryption on.
	pc, err := codec.FromEnv(os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(client.Options{
		HostPort:      s.Address(),
		Namespace:     s.namespace,
		Logger:        log.NewStructuredLogger(slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))),
		DataConverter: codec.DataConverter(pc),
	})
	if err != nil {
		t.Fatalf("dial temporal at %s: %v", s.Address(), err)
	}
	t.Cleanup(c.Close)
	return c
}

// Stop terminates the server (SIGTERM, then SIGKILL after a grace period)
// and waits for it to exit. Stopping a stopped server is a no-op.
func (s *Temporal) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *Temporal) stopLocked() {
	if s.proc != nil {
		s.proc.stop(temporalStopGrace)
		s.proc = nil
	}
}

// Restart stops the server and starts it again on the same ports with the
// same database file, so workflow state survives. Existing clients reconnect
// on their own.
func (s *Temporal) Restart(t testing.TB) {
	t.Helper()
	if s.shared {
		t.Fatal("Restart of the shared Temporal server would disrupt other tests; use StartTemporal")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
	if err := s.startLocked(); err != nil {
		t.Fatalf("restart temporal: %v\nserver log (%s):\n%s", err, s.logPath(), s.LogTail())
	}
}

// testLogWriter forwards log lines to t.Log while the test runs, and to
// stderr afterwards (t.Log panics once a test has completed).
type testLogWriter struct {
	mu       sync.Mutex
	t        testing.TB
	detached bool
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.detached {
		return os.Stderr.Write(p)
	}
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func (w *testLogWriter) detach() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.detached = true
}
