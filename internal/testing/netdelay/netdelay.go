// Package netdelay puts a server behind a long link inside the kernel: a network namespace
// joined to the host by a veth pair on a private /30, whose incoming packets an NFQUEUE rule
// on the namespace's INPUT hands to this package, which accepts each after the delay. Only
// incoming packets wait (the delay is the whole round trip): holding both directions
// throttled TCP far below what a real link of that round trip carries.
//
// It needs root, the ip and iptables commands and the kernel's nfnetlink_queue; Available says
// what is missing, so a benchmark can fall back to an in-process delaying proxy
// (internal/testing/faultproxy). Nothing touches lo or the host's own rules: the rule lives in
// the namespace and goes with it.
package netdelay

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// namePrefix starts every namespace this package creates; the pid of the creating process
// follows, so leftovers of a process that died before cleaning up can be recognised.
const namePrefix = "cutover-nd-"

// netnsDir is where `ip netns` keeps its named namespaces.
const netnsDir = "/run/netns"

var serial atomic.Uint32

// Link is a network namespace on the far side of a delayed veth pair.
type Link struct {
	Name     string     // the namespace, for `ip netns exec`
	HostAddr netip.Addr // the host's end of the pair
	Addr     netip.Addr // the namespace's end: where its servers listen

	hostIf, nsIf string
	q            *queue

	mu     sync.Mutex
	delay  time.Duration
	ruleOn bool // the NFQUEUE rule is in place (only while the delay is not zero)
}

// Available reports why a kernel-level delay cannot be set up here, or nil.
func Available() error {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, cmd := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(cmd); err != nil {
			missing = append(missing, "the "+cmd+" command")
		}
	}
	if _, err := os.Stat("/proc/net/netfilter/nfnetlink_queue"); err != nil {
		missing = append(missing, "the kernel's nfnetlink_queue")
	}
	if len(missing) > 0 {
		return fmt.Errorf("kernel-level delay needs %s", strings.Join(missing, ", "))
	}
	return nil
}

// New creates the namespace, the veth pair and the rule, and starts holding the namespace's
// incoming packets for delay (zero: none held until SetDelay). On failure nothing it created
// is left behind; otherwise Close removes it all.
func New(delay time.Duration) (l *Link, err error) {
	if err := Available(); err != nil {
		return nil, err
	}
	removeStale()
	n := serial.Add(1)
	l = &Link{
		Name:   fmt.Sprintf("%s%d-%d", namePrefix, os.Getpid(), n),
		hostIf: fmt.Sprintf("nd%06x%02xh", os.Getpid()&0xffffff, n&0xff),
		nsIf:   fmt.Sprintf("nd%06x%02xn", os.Getpid()&0xffffff, n&0xff),
	}
	if l.HostAddr, l.Addr, err = freeSubnet(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, l.Close())
			l = nil
		}
	}()
	steps := [][]string{
		{"netns", "add", l.Name},
		{"link", "add", l.hostIf, "type", "veth", "peer", "name", l.nsIf, "netns", l.Name},
		{"addr", "add", l.HostAddr.String() + "/30", "dev", l.hostIf},
		{"link", "set", l.hostIf, "up"},
		{"-n", l.Name, "addr", "add", l.Addr.String() + "/30", "dev", l.nsIf},
		{"-n", l.Name, "link", "set", l.nsIf, "up"},
		{"-n", l.Name, "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if err := run("ip", s...); err != nil {
			return l, err
		}
	}
	// The queue is bound before the rule exists, so no packet waits for a reader.
	if err := l.inNamespace(func() error {
		var err error
		l.q, err = openQueue(delay)
		return err
	}); err != nil {
		return l, err
	}
	if err := l.SetDelay(delay); err != nil {
		return l, err
	}
	return l, nil
}

// SetDelay changes how long the namespace's incoming packets are held from now on. At zero
// the rule is removed, so packets cross the veth pair without visiting the queue; packets
// already held keep their time.
func (l *Link) SetDelay(d time.Duration) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.q.delay.Store(int64(d))
	l.delay = d
	rule := []string{"INPUT", "-i", l.nsIf, "-j", "NFQUEUE", "--queue-num", "0"}
	switch {
	case d > 0 && !l.ruleOn:
		if err := run("ip", l.Exec("iptables", append([]string{"-w", "-A"}, rule...)...)...); err != nil {
			return err
		}
		l.ruleOn = true
	case d == 0 && l.ruleOn:
		if err := run("ip", l.Exec("iptables", append([]string{"-w", "-D"}, rule...)...)...); err != nil {
			return err
		}
		l.ruleOn = false
	}
	return nil
}

// Delay is how long incoming packets are held now.
func (l *Link) Delay() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.delay
}

// ForBench returns a link for a benchmark, removed by its cleanup (so create it before the
// servers that run inside it), or nil and why there is none: what Available reports, or
// CUTOVER_BENCH_DELAY=proxy asking for the in-process proxy instead.
func ForBench(tb testing.TB, delay time.Duration) (*Link, error) {
	tb.Helper()
	if os.Getenv("CUTOVER_BENCH_DELAY") == "proxy" {
		return nil, errors.New("CUTOVER_BENCH_DELAY=proxy")
	}
	l, err := New(delay)
	if err != nil {
		return nil, err
	}
	tb.Cleanup(func() {
		if err := l.Close(); err != nil {
			tb.Errorf("remove the delayed link: %v", err)
		}
	})
	return l, nil
}

// Exec returns the arguments of `ip` that run name with args inside the namespace (the
// command replaces ip, so its pid is the server's).
func (l *Link) Exec(name string, args ...string) []string {
	return append([]string{"netns", "exec", l.Name, name}, args...)
}

// Listen opens a listener on the namespace's address (port 0: any free one) from inside the
// namespace, so whatever connects to it crosses the delayed link.
func (l *Link) Listen(network string) (net.Listener, error) {
	var ln net.Listener
	err := l.inNamespace(func() error {
		var err error
		ln, err = net.Listen(network, net.JoinHostPort(l.Addr.String(), "0"))
		return err
	})
	return ln, err
}

// Held is how many packets the link has held so far.
func (l *Link) Held() int64 {
	if l.q == nil {
		return 0
	}
	return l.q.count.Load()
}

// String says what the link is, for a benchmark's log.
func (l *Link) String() string {
	return fmt.Sprintf("kernel delay: namespace %s at %s behind veth %s, incoming packets held %s by NFQUEUE",
		l.Name, l.Addr, l.hostIf, l.Delay())
}

// Close removes the veth pair and the namespace (its rule goes with it) and stops the queue.
// Whatever still runs inside the namespace must be stopped first, or the namespace outlives
// its name. It returns the first failure of the queue, if any, and any left-over piece.
func (l *Link) Close() error {
	var errs []error
	if _, err := net.InterfaceByName(l.hostIf); err == nil {
		errs = append(errs, run("ip", "link", "del", l.hostIf))
	}
	if _, err := os.Stat(filepath.Join(netnsDir, l.Name)); err == nil {
		errs = append(errs, run("ip", "netns", "del", l.Name))
	}
	if l.q != nil {
		errs = append(errs, l.q.Err())
		l.q.close()
	}
	errs = append(errs, l.Gone())
	return errors.Join(errs...)
}

// Gone reports any piece of the link still present: its namespace or either end of the veth
// pair (the namespace's end and its rule can only live on with the namespace).
func (l *Link) Gone() error {
	var left []string
	if _, err := os.Stat(filepath.Join(netnsDir, l.Name)); err == nil {
		left = append(left, "namespace "+l.Name)
	}
	if _, err := net.InterfaceByName(l.hostIf); err == nil {
		left = append(left, "interface "+l.hostIf)
	}
	if len(left) > 0 {
		return fmt.Errorf("left behind: %s", strings.Join(left, ", "))
	}
	return nil
}

// inNamespace runs fn on a thread moved into the namespace; sockets fn opens stay there.
func (l *Link) inNamespace(fn func() error) error {
	runtime.LockOSThread()
	home, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open own network namespace: %w", err)
	}
	defer home.Close()
	target, err := os.Open(filepath.Join(netnsDir, l.Name))
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open namespace %s: %w", l.Name, err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter namespace %s: %w", l.Name, err)
	}
	ferr := fn()
	if err := unix.Setns(int(home.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread stays locked and dies with this goroutine rather than serve others from
		// the wrong namespace.
		return errors.Join(ferr, fmt.Errorf("leave namespace %s: %w", l.Name, err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// freeSubnet picks a /30 of 10.231.0.0/16 that no host interface uses; the host takes .1, the
// namespace .2.
func freeSubnet() (host, ns netip.Addr, err error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return host, ns, fmt.Errorf("list host addresses: %w", err)
	}
	for range 64 {
		i := rand.IntN(1 << 14)
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 231, byte(i >> 6), byte(i&63) << 2}), 30)
		if !overlaps(p, addrs) {
			return p.Addr().Next(), p.Addr().Next().Next(), nil
		}
	}
	return host, ns, errors.New("no free /30 in 10.231.0.0/16")
}

func overlaps(p netip.Prefix, addrs []net.Addr) bool {
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		q, err := netip.ParsePrefix(ipn.String())
		if err == nil && q.Overlaps(p) {
			return true
		}
	}
	return false
}

// removeStale deletes the namespaces of processes that died before removing them (a killed
// test binary runs no cleanup); deleting the namespace takes its veth pair along.
func removeStale() {
	entries, err := os.ReadDir(netnsDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), namePrefix)
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid == os.Getpid() || syscall.Kill(pid, 0) == nil || errors.Is(syscall.Kill(pid, 0), syscall.EPERM) {
			continue
		}
		_ = run("ip", "netns", "del", e.Name())
	}
}

func run(name string, args ...string) error {
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}
