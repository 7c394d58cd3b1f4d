package testenv

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Seeds returns the seeds of a randomised fault test: CUTOVER_FAULT_SEED=<n> replays that one,
// otherwise n seeds from the clock. They are logged so a failure can be replayed.
func Seeds(t testing.TB, n int) []uint64 {
	t.Helper()
	if v := os.Getenv("CUTOVER_FAULT_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("CUTOVER_FAULT_SEED=%q: want an unsigned integer", v)
		}
		t.Logf("seed %d (CUTOVER_FAULT_SEED)", s)
		return []uint64{s}
	}
	base := uint64(time.Now().UnixNano()) % 1_000_000_000
	out := make([]uint64, n)
	for i := range out {
		out[i] = base + uint64(i)
	}
	t.Logf("seeds %d..%d (replay one with CUTOVER_FAULT_SEED=<seed>)", out[0], out[n-1])
	return out
}

// WaitFor polls cond every 20 ms until it holds; past timeout the test fails.
func WaitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// PeakRSS is a process's peak resident set size (VmHWM) in bytes.
func PeakRSS(t testing.TB, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read VmHWM: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("parse VmHWM %q: %v", l, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}

var workerBinary struct {
	once sync.Once
	bin  string
	err  error
}

// WorkerBinary compiles the worker once per test binary (removed when the tests end).
func WorkerBinary(t testing.TB) string {
	t.Helper()
	workerBinary.once.Do(func() {
		dir, err := os.MkdirTemp("", "cutover-worker-")
		if err != nil {
			workerBinary.err = err
			return
		}
		AtExit(func() { _ = os.RemoveAll(dir) })
		workerBinary.bin = filepath.Join(dir, "cutover-worker")
		if out, err := exec.Command("go", "build", "-o", workerBinary.bin, "github.com/cutover/cutover/worker").CombinedOutput(); err != nil {
			workerBinary.err = fmt.Errorf("build worker: %v\n%s", err, out)
		}
	})
	if workerBinary.err != nil {
		t.Fatal(workerBinary.err)
	}
	return workerBinary.bin
}

// syncBuffer collects a worker's output across restarts.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// WorkerProcess is the cutover worker binary as its own process, as deployed: killable with
// SIGKILL, restartable with the same environment.
type WorkerProcess struct {
	t    testing.TB
	bin  string
	env  []string
	logs syncBuffer

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	runs int
}

// StartWorkerProcess runs the worker binary with the test's environment plus env ("K=V":
// TEMPORAL_ADDRESS, DATABASE_URL, CUTOVER_TASK_QUEUE, keys…; a short shutdown grace and warn
// logging by default), waits for its /healthz, and kills it when the test ends (its log is
// printed if the test failed).
func StartWorkerProcess(t testing.TB, env ...string) *WorkerProcess {
	t.Helper()
	w := &WorkerProcess{t: t, bin: WorkerBinary(t),
		env: append(append(os.Environ(), "CUTOVER_SHUTDOWN_GRACE=2s", "CUTOVER_LOG_LEVEL=warn"), env...)}
	w.start()
	t.Cleanup(func() {
		w.Stop(syscall.SIGKILL)
		if t.Failed() {
			t.Logf("worker log (%d runs):\n%s", w.runs, w.LogTail(8000))
		}
	})
	return w
}

func (w *WorkerProcess) start() {
	w.t.Helper()
	port := FreePort(w.t)
	cmd := exec.Command(w.bin)
	cmd.Env = append(w.env, fmt.Sprintf("CUTOVER_METRICS_ADDR=127.0.0.1:%d", port))
	cmd.Stdout, cmd.Stderr = &w.logs, &w.logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the test binary
	fmt.Fprintf(&w.logs, "--- worker run %d\n", w.runs+1)
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	w.mu.Lock()
	w.cmd, w.done = cmd, done
	w.runs++
	w.mu.Unlock()
	WaitFor(w.t, "worker /healthz", time.Minute, func() bool {
		select {
		case <-done:
			w.t.Fatalf("worker exited at start:\n%s", w.LogTail(3000))
		default:
		}
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", port))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// Pid is the running worker's process id.
func (w *WorkerProcess) Pid() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cmd.Process.Pid
}

// Stop signals the worker and waits for it to exit (SIGKILL after 10 s).
func (w *WorkerProcess) Stop(sig syscall.Signal) {
	w.mu.Lock()
	cmd, done := w.cmd, w.done
	w.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// KillAndRestart SIGKILLs the worker (no grace, no deferred cleanup, connections cut
// mid-command) and starts a new one with the same environment.
func (w *WorkerProcess) KillAndRestart() {
	w.t.Helper()
	w.Stop(syscall.SIGKILL)
	w.start()
}

// Log is everything the worker printed, over all its runs.
func (w *WorkerProcess) Log() string { return w.logs.String() }

// LogTail is the last n bytes of Log.
func (w *WorkerProcess) LogTail(n int) string {
	out := w.Log()
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}
