package testenv

import "syscall"

// sysProcAttr puts the server in its own process group and kills it if the
// test binary dies without running cleanups (e.g. on a timeout panic).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
