package testenv

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	courierStartTimeout = 20 * time.Second
	courierStopGrace    = 5 * time.Second
)

// courierEnv is the configuration Courier's imapd reads from its environment: Debian's
// /etc/courier/imapd, except that Trash is never emptied behind the test's back (Debian's
// IMAP_EMPTYTRASH=Trash:7 deletes Trash messages older than a week at every logout, and
// Courier dates an appended message's file by its INTERNALDATE).
var courierEnv = []string{
	"IMAP_CAPABILITY=IMAP4rev1 UIDPLUS CHILDREN NAMESPACE THREAD=ORDEREDSUBJECT THREAD=REFERENCES SORT QUOTA IDLE",
	"IMAP_KEYWORDS=1",
	"IMAP_ACL=1",
	"IMAP_PROXY=0",
	"IMAP_IDLE_TIMEOUT=60",
	"IMAP_MAILBOX_SANITY_CHECK=1",
	"IMAP_DISABLETHREADSORT=0",
	"IMAP_CHECK_ALL_FOLDERS=0",
	"IMAP_OBSOLETE_CLIENT=0",
	"IMAP_UMASK=022",
	"IMAP_USELOCKS=1",
	"IMAP_ENHANCEDIDLE=0",
	"IMAP_TRASHFOLDERNAME=Trash",
	"IMAP_EMPTYTRASH=",
	"IMAP_MOVE_EXPUNGE_TO_TRASH=0",
}

type courierOptions struct {
	env []string
}

// CourierOption configures StartCourier.
type CourierOption func(*courierOptions)

// WithCourierEnv sets imapd settings (what /etc/courier/imapd holds), "NAME=value", after the
// defaults, e.g. "IMAP_EMPTYTRASH=Trash:7".
func WithCourierEnv(vars ...string) CourierOption {
	return func(o *courierOptions) { o.env = append(o.env, vars...) }
}

// Courier is a Courier IMAP server (Debian's courier-imap with courier-authlib's userdb, run
// from the packages `make tools` extracts, not installed) owned by a test. Courier's paths
// are compiled in (/etc/courier, /run/courier, /usr/lib/courier-authlib), so the server runs
// in a private mount namespace where the extracted tree and the test's directory are mounted
// over them; that needs root. Mail is in Maildirs under the test's directory.
type Courier struct {
	x     extractedTree
	dir   string
	port  int
	owner mailOwner
	opts  courierOptions

	mu    sync.Mutex
	users map[string]string
	proc  *proc
}

// StartCourier starts a Courier instance on a free 127.0.0.1 port serving the users (folders
// are "INBOX.Sent", '.' separated). It skips the test if the extracted packages are missing or
// the test does not run as root (fails if CI=true).
func StartCourier(t testing.TB, users []User, opts ...CourierOption) *Courier {
	t.Helper()
	x, err := imapServersTree()
	Require(t, "courier", err)
	if os.Geteuid() != 0 {
		Require(t, "courier", errors.New("needs root: Courier runs in a private mount namespace over its compiled-in paths"))
	}
	c := &Courier{x: x, users: map[string]string{}}
	for _, o := range opts {
		o(&c.opts)
	}
	for _, u := range users {
		if err := validateMailUser(u); err != nil {
			t.Fatalf("courier: %v", err)
		}
		c.users[u.Name] = u.Password
	}
	if c.owner, err = currentMailOwner(); err != nil {
		Require(t, "courier", err)
	}
	if c.dir, err = os.MkdirTemp("", "cutover-courier-"); err != nil {
		t.Fatalf("courier: create temp dir: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(c.dir) })
	if c.port, err = freePort(); err != nil {
		t.Fatal(err)
	}
	if err := c.prepare(); err != nil {
		t.Fatalf("courier: %v", err)
	}
	c.mu.Lock()
	err = c.startLocked()
	c.mu.Unlock()
	if err != nil {
		t.Fatalf("start courier: %v\nlog (%s):\n%s", err, c.logPath(), c.LogTail())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("courier log (%s):\n%s", c.logPath(), c.LogTail())
		}
		c.Stop()
	})
	return c
}

func (c *Courier) logPath() string      { return filepath.Join(c.dir, "courier.log") }
func (c *Courier) etcDir() string       { return filepath.Join(c.dir, "etc-courier") }
func (c *Courier) scriptPath() string   { return filepath.Join(c.dir, "start.sh") }
func (c *Courier) home(u string) string { return filepath.Join(c.dir, "home", u) }

// Maildir returns the path of a user's Maildir ("INBOX.X" is its sub-directory ".X").
func (c *Courier) Maildir(user string) string { return filepath.Join(c.home(user), "Maildir") }

func (c *Courier) prepare() error {
	if err := os.Chmod(c.dir, 0o755); err != nil {
		return err
	}
	for _, sub := range []string{"etc-stub/courier", "etc-courier", "run/courier/authdaemon", "home"} {
		if err := os.MkdirAll(filepath.Join(c.dir, sub), 0o755); err != nil {
			return err
		}
	}
	rc := "authmodulelist=\"authuserdb\"\nauthmodulelistorig=\"authuserdb\"\ndaemons=2\n" +
		"authdaemonvar=/run/courier/authdaemon\nDEBUG_LOGIN=0\nDEFAULTOPTIONS=\"\"\nLOGGEROPTS=\"\"\n"
	if err := os.WriteFile(filepath.Join(c.etcDir(), "authdaemonrc"), []byte(rc), 0o644); err != nil {
		return err
	}
	for name := range c.users {
		if err := c.makeMaildir(name); err != nil {
			return err
		}
	}
	if err := c.writeUserdb(); err != nil {
		return err
	}
	return os.WriteFile(c.scriptPath(), []byte(c.script()), 0o755)
}

func (c *Courier) makeMaildir(user string) error {
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(c.Maildir(user), sub), 0o700); err != nil {
			return err
		}
	}
	return c.owner.chownTree(c.home(user))
}

// script mounts the extracted tree and the test's directories over Courier's compiled-in
// paths (in the namespace only), starts authdaemond and becomes couriertcpd.
func (c *Courier) script() string {
	q := func(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
	var b strings.Builder
	fmt.Fprintf(&b, "set -e\n")
	fmt.Fprintf(&b, "mount -t overlay overlay -o lowerdir=%s /usr\n", q(c.x.path("usr")+":/usr"))
	fmt.Fprintf(&b, "mount -t overlay overlay -o lowerdir=%s /etc\n", q(filepath.Join(c.dir, "etc-stub")+":/etc"))
	fmt.Fprintf(&b, "mount --bind %s /etc/courier\n", q(c.etcDir()))
	fmt.Fprintf(&b, "mount --bind %s /run\n", q(filepath.Join(c.dir, "run")))
	fmt.Fprintf(&b, "/usr/lib/courier/courier-authlib/authdaemond &\n")
	fmt.Fprintf(&b, "for i in $(seq 100); do [ -S /run/courier/authdaemon/socket ] && break; sleep 0.1; done\n")
	fmt.Fprintf(&b, "exec /usr/sbin/couriertcpd -address=127.0.0.1 -nodnslookup -noidentlookup "+
		"-maxprocs=100 -maxperip=100 %d /usr/lib/courier/courier/imaplogin /usr/bin/imapd Maildir\n", c.port)
	return b.String()
}

// writeUserdb builds userdb.dat and userdbshadow.dat the way makeuserdb does (through
// makedatprog); authuserdb re-reads them when they change. Passwords are stored as
// {SHA256} digests.
func (c *Courier) writeUserdb() error {
	names := make([]string, 0, len(c.users))
	for name := range c.users {
		names = append(names, name)
	}
	slices.Sort(names)
	var db, shadow strings.Builder
	for _, name := range names {
		fmt.Fprintf(&db, "%s\tuid=%d|gid=%d|home=%s|mail=%s|_=\n", name, c.owner.uid, c.owner.gid,
			c.home(name), c.Maildir(name))
		sum := sha256.Sum256([]byte(c.users[name]))
		fmt.Fprintf(&shadow, "%s\tsystempw={SHA256}%s\n", name, base64.StdEncoding.EncodeToString(sum[:]))
	}
	db.WriteString(".\n")
	shadow.WriteString(".\n")
	if err := c.makedat(db.String(), "userdb"); err != nil {
		return err
	}
	return c.makedat(shadow.String(), "userdbshadow")
}

func (c *Courier) makedat(input, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tmp, dat := filepath.Join(c.etcDir(), name+".tmp"), filepath.Join(c.etcDir(), name+".dat")
	cmd := exec.CommandContext(ctx, c.x.path("usr/lib/courier/courier-authlib/makedatprog"), "-", tmp, dat)
	cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+c.x.libPath)
	cmd.Stdin = strings.NewReader(input)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("makedatprog %s: %w: %s", name, err, strings.TrimSpace(out.String()))
	}
	return os.Chmod(dat, 0o600)
}

func (c *Courier) startLocked() error {
	attr := sysProcAttr()
	attr.Unshareflags = syscall.CLONE_NEWNS // Go makes the new namespace's mounts private
	env := append([]string{"LD_LIBRARY_PATH=" + c.x.libPath}, courierEnv...)
	env = append(env, c.opts.env...)
	p, err := startProcEnv(c.logPath(), attr, env, "/bin/sh", c.scriptPath())
	if err != nil {
		return err
	}
	if err := waitReady(p, courierStartTimeout, func() error { return imapGreets(c.Addr()) }); err != nil {
		p.stop(courierStopGrace)
		return fmt.Errorf("courier %w", err)
	}
	c.proc = p
	return nil
}

// Addr returns host:port of the IMAP listener (plain text, no TLS).
func (c *Courier) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)) }

// Account returns a user's IMAP login; the user must exist.
func (c *Courier) Account(user string) MailAccount {
	c.mu.Lock()
	defer c.mu.Unlock()
	pw, ok := c.users[user]
	if !ok {
		panic(fmt.Sprintf("testenv: courier has no user %q", user))
	}
	return MailAccount{Addr: c.Addr(), User: user, Password: pw}
}

// AddUser adds a user (userdb entry and Maildir) to the running server, or changes the
// password of an existing one.
func (c *Courier) AddUser(t testing.TB, u User) {
	t.Helper()
	if err := validateMailUser(u); err != nil {
		t.Fatalf("courier: %v", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.users[u.Name] = u.Password
	err := c.makeMaildir(u.Name)
	if err == nil {
		err = c.writeUserdb()
	}
	if err != nil {
		t.Fatalf("courier: add user: %v", err)
	}
}

// ForgetUIDs removes the UID database (courierimapuiddb) of a user's folder, as a Maildir
// restored from a backup without it. Until Courier writes a new one (a read-write session),
// every session sees a new UIDVALIDITY. folder is "INBOX" or "INBOX.<name>".
func (c *Courier) ForgetUIDs(t testing.TB, user, folder string) {
	t.Helper()
	dir := c.Maildir(user)
	if folder != "INBOX" {
		sub, ok := strings.CutPrefix(folder, "INBOX.")
		if !ok {
			t.Fatalf("courier: folder %q is not under INBOX.", folder)
		}
		dir = filepath.Join(dir, "."+sub)
	}
	if err := os.Remove(filepath.Join(dir, "courierimapuiddb")); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("courier: %v", err)
	}
}

// Dir returns the instance directory.
func (c *Courier) Dir() string { return c.dir }

// Pid returns the pid of couriertcpd (the process group leader), or 0 when stopped.
func (c *Courier) Pid() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc == nil {
		return 0
	}
	return c.proc.pid()
}

// Stop terminates couriertcpd, authdaemond and every session; stopping twice is a no-op.
func (c *Courier) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc != nil {
		c.proc.stop(courierStopGrace)
		c.proc = nil
	}
}

// Restart stops the server and starts it again with the same port, mail and users.
func (c *Courier) Restart(t testing.TB) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc != nil {
		c.proc.stop(courierStopGrace)
		c.proc = nil
	}
	if err := c.startLocked(); err != nil {
		t.Fatalf("restart courier: %v\nlog (%s):\n%s", err, c.logPath(), c.LogTail())
	}
}

// LogTail returns the end of the server's output (authdaemond, couriertcpd and imapd).
func (c *Courier) LogTail() string { return tailFile(c.logPath(), 16<<10) }
