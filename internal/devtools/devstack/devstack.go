// Package devstack runs the local stack behind `make dev`, `make demo` and the test harness:
// the Temporal dev server with cutover's search attributes, and detached background processes
// tracked by pid files so `make down` can stop exactly what `make dev` started.
package devstack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/cutover/cutover/internal/searchattr"
)

// TemporalVersion is the temporal CLI release `make tools` installs.
const TemporalVersion = "v1.5.1"

// TemporalServer describes a `temporal server start-dev` invocation.
type TemporalServer struct {
	IP          string // default 127.0.0.1
	Port        int    // frontend gRPC
	HTTPPort    int
	MetricsPort int
	UIPort      int    // 0 = headless
	DBFile      string // "" = in memory; a file keeps state across restarts
	Namespace   string // default "default"
	LogLevel    string // default warn
	Extra       []string
}

// Args returns the command-line arguments after the binary name.
func (s TemporalServer) Args() []string {
	ip := orDefault(s.IP, "127.0.0.1")
	args := []string{"server", "start-dev", "--ip", ip, "--port", strconv.Itoa(s.Port),
		"--namespace", orDefault(s.Namespace, "default"), "--log-level", orDefault(s.LogLevel, "warn")}
	if s.HTTPPort != 0 {
		args = append(args, "--http-port", strconv.Itoa(s.HTTPPort))
	}
	if s.MetricsPort != 0 {
		args = append(args, "--metrics-port", strconv.Itoa(s.MetricsPort))
	}
	if s.UIPort != 0 {
		args = append(args, "--ui-ip", ip, "--ui-port", strconv.Itoa(s.UIPort))
	} else {
		args = append(args, "--headless")
	}
	if s.DBFile != "" {
		// SQLite's default rollback journal syncs every write twice: a wave of child workflows
		// cost 70-100 ms per child on the dev server. A write-ahead log with NORMAL sync is
		// still safe against a killed or restarted server process (only an OS crash may lose
		// the last writes) and took it to about 30 ms.
		args = append(args, "--db-filename", s.DBFile, "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal")
	}
	args = append(args, searchattr.DevServerFlags()...)
	return append(args, s.Extra...)
}

// Address is the frontend's host:port.
func (s TemporalServer) Address() string {
	return fmt.Sprintf("%s:%d", orDefault(s.IP, "127.0.0.1"), s.Port)
}

// UIURL is the Web UI's address, "" when headless.
func (s TemporalServer) UIURL() string {
	if s.UIPort == 0 {
		return ""
	}
	return fmt.Sprintf("http://%s:%d", orDefault(s.IP, "127.0.0.1"), s.UIPort)
}

// WaitTemporal waits until the frontend at addr answers health checks and namespace has every
// cutover search attribute registered.
func WaitTemporal(ctx context.Context, addr, namespace string) error {
	var last error
	for {
		last = ProbeTemporal(ctx, addr, namespace)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("temporal at %s not ready: %w", addr, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// ProbeTemporal checks once that the frontend answers and has every search attribute.
func ProbeTemporal(ctx context.Context, addr, namespace string) error {
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := client.DialContext(pctx, client.Options{HostPort: addr, Namespace: namespace, Logger: quietLogger{}})
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.CheckHealth(pctx, &client.CheckHealthRequest{}); err != nil {
		return err
	}
	resp, err := c.OperatorService().ListSearchAttributes(pctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return err
	}
	for _, d := range searchattr.All {
		if got, ok := resp.GetCustomAttributes()[d.Name]; !ok || got != d.Type {
			return fmt.Errorf("search attribute %s not registered as %s", d.Name, d.CLIType())
		}
	}
	return nil
}

// Spawn starts a detached process (own session, so it outlives the caller and can be stopped
// as a group), appending its output to logPath and recording its pid in pidPath.
func Spawn(name string, args, env []string, logPath, pidPath string) (int, error) {
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return 0, err
	}
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", logPath, err)
	}
	defer logFile.Close()
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", name, err)
	}
	pid := cmd.Process.Pid
	// Not waited for: the process belongs to the session now; Release frees our handle.
	_ = cmd.Process.Release()
	if err := os.WriteFile(pidPath, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		return pid, fmt.Errorf("write %s: %w", pidPath, err)
	}
	return pid, nil
}

// ReadPid returns the pid recorded in pidPath and whether that process is alive.
func ReadPid(pidPath string) (int, bool) {
	b, err := os.ReadFile(pidPath)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, Alive(pid)
}

// Alive reports whether pid is a live (non-zombie) process.
func Alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	// A zombie still answers kill(0); its state in /proc says Z.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	if i := strings.LastIndexByte(string(b), ')'); i > 0 && i+2 < len(b) {
		return b[i+2] != 'Z'
	}
	return true
}

// StopPidFile stops the process group recorded in pidPath: SIGTERM, then SIGKILL after grace.
// A missing file or dead process is not an error. The pid file is removed.
func StopPidFile(pidPath string, grace time.Duration) (stopped bool, err error) {
	pid, alive := ReadPid(pidPath)
	defer os.Remove(pidPath)
	if !alive {
		return false, nil
	}
	if err := syscall.Kill(-pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return false, fmt.Errorf("stop pid %d: %w", pid, err)
	}
	deadline := time.Now().Add(grace)
	for Alive(pid) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if Alive(pid) {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		for i := 0; Alive(pid) && i < 50; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	}
	return true, nil
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
