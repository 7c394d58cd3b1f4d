package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres is a private PostgreSQL cluster owned by one test (initdb into a temporary
// directory, postgres on a free 127.0.0.1 port, trust auth for user postgres). Unlike the
// machine's shared server, a test may restart or crash it (Restart, Crash) to prove that
// what runs on it survives.
type Postgres struct {
	bin  string // directory of initdb and postgres
	dir  string // holds data/, the socket and postgres.log; kept across restarts
	port int
	cred *syscall.Credential // nil: run as the current user
	// settings are extra server settings (name=value), kept across restarts.
	settings []string

	mu   sync.Mutex
	proc *proc
}

const (
	pgStartTimeout = 60 * time.Second
	pgStopGrace    = 30 * time.Second
)

// StartPostgres initialises and starts a private cluster and removes it when the test ends.
// It skips the test if the PostgreSQL server binaries are missing (fails if CI=true). As
// root the cluster runs as the postgres OS user (initdb refuses root).
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	return StartPostgresWith(t)
}

// StartPostgresWith is StartPostgres with extra server settings, e.g. "wal_level=logical" for
// a cluster that logical replication can follow (the shared server runs with replica).
func StartPostgresWith(t testing.TB, settings ...string) *Postgres {
	t.Helper()
	p, err := newPostgres(settings...)
	if errors.As(err, new(unavailableError)) {
		Require(t, "PostgreSQL server binaries", err)
	}
	if err != nil {
		t.Fatalf("start private postgres: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("private postgres log (%s):\n%s", p.logPath(), p.LogTail())
		}
		p.Stop()
		_ = os.RemoveAll(p.dir)
	})
	return p
}

// postgresBin finds initdb and postgres: $CUTOVER_PG_BIN, else the newest
// /usr/lib/postgresql/*/bin (Debian), else the directory of initdb on PATH.
func postgresBin() (string, error) {
	if d := os.Getenv("CUTOVER_PG_BIN"); d != "" {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("initdb not found (Debian package postgresql, or set CUTOVER_PG_BIN)")
}

func newPostgres(settings ...string) (*Postgres, error) {
	bin, err := postgresBin()
	if err != nil {
		return nil, unavailableError{err}
	}
	p := &Postgres{bin: bin, settings: settings}
	if p.port, err = freePort(); err != nil {
		return nil, err
	}
	// Not t.TempDir: its parents are private to root, and the server may run as postgres.
	if p.dir, err = os.MkdirTemp("", "cutover-pg-"); err != nil {
		return nil, fmt.Errorf("create temp dir: %w", err)
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			_ = os.RemoveAll(p.dir)
			return nil, unavailableError{fmt.Errorf("running as root needs the postgres OS user: %w", err)}
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(p.dir, uid, gid); err != nil {
			_ = os.RemoveAll(p.dir)
			return nil, fmt.Errorf("chown %s: %w", p.dir, err)
		}
	}
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", p.dataDir(), "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync")
	initdb.Dir = p.dir
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		_ = os.RemoveAll(p.dir)
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.startLocked(); err != nil {
		err = fmt.Errorf("%w\nserver log (%s):\n%s", err, p.logPath(), p.LogTail())
		_ = os.RemoveAll(p.dir)
		return nil, err
	}
	return p, nil
}

func (p *Postgres) dataDir() string { return filepath.Join(p.dir, "data") }
func (p *Postgres) logPath() string { return filepath.Join(p.dir, "postgres.log") }

// LogTail returns the end of the server's log.
func (p *Postgres) LogTail() string { return tailFile(p.logPath(), 16<<10) }

// URL is the cluster's postgres database; DatabaseURL names another one.
func (p *Postgres) URL() string { return p.DatabaseURL("postgres") }

// DatabaseURL is the URL of database name on the cluster (which may not exist yet:
// store.Open creates it, as the worker does with DATABASE_URL).
func (p *Postgres) DatabaseURL(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.port, name)
}

// Port is the TCP port the cluster listens on.
func (p *Postgres) Port() int { return p.port }

func (p *Postgres) startLocked() error {
	attr := sysProcAttr()
	attr.Credential = p.cred
	// fsync off: the tests kill processes, not the machine, so the OS cache keeps every
	// committed page; synchronous_commit stays on so a COMMIT that returned is in the WAL.
	args := []string{"-D", p.dataDir(),
		"-p", strconv.Itoa(p.port), "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=" + p.dir,
		"-c", "fsync=off", "-c", "full_page_writes=off", "-c", "shared_buffers=32MB", "-c", "max_connections=100"}
	for _, s := range p.settings {
		args = append(args, "-c", s)
	}
	proc, err := startProcAttr(p.logPath(), attr, filepath.Join(p.bin, "postgres"), args...)
	if err != nil {
		return err
	}
	if err := p.waitReady(proc); err != nil {
		p.kill(proc)
		return err
	}
	p.proc = proc
	return nil
}

func (p *Postgres) waitReady(proc *proc) error {
	deadline := time.Now().Add(pgStartTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		if exited, err := proc.exited(); exited {
			return fmt.Errorf("postgres exited during startup: %v", err)
		}
		if lastErr = p.ping(); lastErr == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("postgres not ready after %s: %w", pgStartTimeout, lastErr)
}

func (p *Postgres) ping() error {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p.port), time.Second)
	if err != nil {
		return err
	}
	c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.URL())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return conn.Ping(ctx)
}

// stopLocked asks for a fast shutdown (SIGINT: sessions are terminated, open transactions
// roll back, a checkpoint is written) and escalates to SIGKILL after pgStopGrace.
func (p *Postgres) stopLocked() {
	if p.proc == nil {
		return
	}
	_ = syscall.Kill(p.proc.pid(), syscall.SIGINT)
	select {
	case <-p.proc.done:
	case <-time.After(pgStopGrace):
	}
	p.kill(p.proc)
	p.proc = nil
}

// kill SIGKILLs the postmaster's process group (its backends included) and reaps it.
func (p *Postgres) kill(proc *proc) {
	_ = syscall.Kill(-proc.pid(), syscall.SIGKILL)
	<-proc.done
}

// Stop shuts the cluster down (fast mode). Stopping a stopped cluster is a no-op.
func (p *Postgres) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopLocked()
}

// Restart shuts the cluster down in fast mode (every connection is cut, open transactions
// roll back) and starts it again on the same port and data.
func (p *Postgres) Restart(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopLocked()
	if err := p.startLocked(); err != nil {
		t.Fatalf("restart private postgres: %v\nserver log (%s):\n%s", err, p.logPath(), p.LogTail())
	}
}

// Crash SIGKILLs the postmaster and every backend at once, then starts the cluster again,
// which recovers from its WAL (what an OOM kill of the server looks like to clients;
// committed transactions survive, open ones are gone).
func (p *Postgres) Crash(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc != nil {
		// Backends call setsid(), so the process group holds only the postmaster: find its
		// children first, then kill them all.
		children, err := childPids(p.proc.pid())
		if err != nil {
			// No /proc: an immediate shutdown (SIGQUIT) also leaves WAL recovery to the next start.
			_ = syscall.Kill(p.proc.pid(), syscall.SIGQUIT)
			select {
			case <-p.proc.done:
			case <-time.After(pgStopGrace):
			}
		}
		p.kill(p.proc)
		for _, c := range children {
			_ = syscall.Kill(c, syscall.SIGKILL)
		}
		deadline := time.Now().Add(pgStopGrace)
		for _, c := range children {
			for alive(c) && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
		}
		p.proc = nil
	}
	if err := p.startLocked(); err != nil {
		t.Fatalf("restart private postgres after crash: %v\nserver log (%s):\n%s", err, p.logPath(), p.LogTail())
	}
}

// childPids lists the processes whose parent is pid (Linux /proc).
func childPids(pid int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range entries {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, _, ok := procStat(c); ok && ppid == pid {
			out = append(out, c)
		}
	}
	return out, nil
}

// alive reports whether pid exists and is not a zombie waiting to be reaped.
func alive(pid int) bool {
	_, state, ok := procStat(pid)
	return ok && state != 'Z' && state != 'X'
}

// procStat reads the parent pid and the state of a process from /proc/<pid>/stat.
func procStat(pid int) (ppid int, state byte, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses, so cut at the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+2:]))
	if len(f) < 2 {
		return 0, 0, false
	}
	ppid, err = strconv.Atoi(f[1])
	return ppid, f[0][0], err == nil
}
