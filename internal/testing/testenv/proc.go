package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// proc is a server process running in its own process group, so that stop
// also reaches the children it forks (Dovecot's login/auth/imap processes).
type proc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited and been reaped
	err  error         // exit status; valid after done is closed
}

// startProc starts name with args, appending its stdout and stderr to logPath.
func startProc(logPath, name string, args ...string) (*proc, error) {
	return startProcAttr(logPath, sysProcAttr(), name, args...)
}

// startProcAttr is startProc with the caller's process attributes (e.g. sysProcAttr() plus a
// Credential to run as another user).
func startProcAttr(logPath string, attr *syscall.SysProcAttr, name string, args ...string) (*proc, error) {
	return startProcEnv(logPath, attr, nil, name, args...)
}

// startProcEnv is startProcAttr with variables added to the environment (nil: inherit it).
func startProcEnv(logPath string, attr *syscall.SysProcAttr, env []string, name string, args ...string) (*proc, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log file: %w", err)
	}
	// The child keeps its own descriptor; ours is not needed after Start.
	defer logFile.Close()

	cmd := exec.Command(name, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = attr
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has terminated, and how.
func (p *proc) exited() (bool, error) {
	select {
	case <-p.done:
		if p.err == nil {
			return true, errors.New("exited with status 0")
		}
		return true, p.err
	default:
		return false, nil
	}
}

// stop sends SIGTERM to the process group, escalates to SIGKILL after grace,
// and returns once the leader has been reaped and the group is gone.
func (p *proc) stop(grace time.Duration) {
	pgid := p.pid()
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// Children outliving the leader could keep ports or files busy. The group
	// ID cannot be reused while any member lives, so this is safe.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}
