package testenv

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	cyrusStartTimeout = 20 * time.Second
	cyrusStopGrace    = 5 * time.Second
	// CyrusAdmin is the login of the Cyrus administrator every instance has (its password is
	// Cyrus.Admin().Password): it creates the users' mailboxes, other users' folders and
	// shared folders.
	CyrusAdmin = "cyrus"
	// cyrusServerName is the SASL realm the users are stored under in the sasldb.
	cyrusServerName = "cutover-test"
)

// cyrusDefaults is the imapd.conf of a test instance apart from its paths: Debian's defaults
// (the same namespace a Debian Cyrus serves: "INBOX.Sent", other users as "user.bob.Trash",
// shared folders at the top), plain-text logins checked against a private sasldb.
var cyrusDefaults = [][2]string{
	{"altnamespace", "no"},
	{"unixhierarchysep", "no"},
	{"hashimapspool", "true"},
	{"umask", "077"},
	{"allowplaintext", "yes"},
	{"allowanonymouslogin", "no"},
	{"sasl_pwcheck_method", "auxprop"},
	{"sasl_auxprop_plugin", "sasldb"},
	{"sasl_mech_list", "PLAIN LOGIN"},
	{"admins", CyrusAdmin},
	{"servername", cyrusServerName},
	{"syslog_prefix", "cutover-cyrus"},
}

type cyrusOptions struct {
	config map[string]string
	order  []string
}

// CyrusOption configures StartCyrus.
type CyrusOption func(*cyrusOptions)

// WithCyrusConfig sets imapd.conf options ("key: value"), replacing the defaults of the same
// key, e.g. "munge8bit: no" or "altnamespace: yes".
func WithCyrusConfig(lines ...string) CyrusOption {
	return func(o *cyrusOptions) {
		for _, line := range lines {
			k, v, _ := strings.Cut(line, ":")
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			if _, ok := o.config[k]; !ok {
				o.order = append(o.order, k)
			}
			o.config[k] = v
		}
	}
}

// Cyrus is a Cyrus IMAP server (Debian's cyrus-imapd, run from the packages `make tools`
// extracts, not installed) owned by a test: configuration, databases, mail and sasldb under
// one temporary directory, stopped by pid when the test ends.
type Cyrus struct {
	x     extractedTree
	dir   string
	port  int
	owner mailOwner
	opts  cyrusOptions
	admin User

	mu    sync.Mutex
	users map[string]string // name -> password
	proc  *proc
}

// StartCyrus starts a Cyrus instance on a free 127.0.0.1 port with an INBOX for each user
// (Debian's namespace: altnamespace and unixhierarchysep off, so folders are "INBOX.Sent").
// It skips the test if the extracted packages are missing (fails if CI=true).
func StartCyrus(t testing.TB, users []User, opts ...CyrusOption) *Cyrus {
	t.Helper()
	x, err := imapServersTree()
	Require(t, "cyrus", err)
	c := &Cyrus{x: x, users: map[string]string{}, opts: cyrusOptions{config: map[string]string{}}}
	c.admin = User{Name: CyrusAdmin, Password: "admin-" + randomHex(6)}
	for _, o := range opts {
		o(&c.opts)
	}
	for _, u := range users {
		if err := validateMailUser(u); err != nil {
			t.Fatalf("cyrus: %v", err)
		}
		if u.Name == CyrusAdmin {
			t.Fatalf("cyrus: user %q is the administrator", u.Name)
		}
		c.users[u.Name] = u.Password
	}
	if c.owner, err = currentMailOwner(); err != nil {
		Require(t, "cyrus", err)
	}
	// Not t.TempDir: the unprivileged server processes must traverse it (t.TempDir is 0700).
	if c.dir, err = os.MkdirTemp("", "cutover-cyrus-"); err != nil {
		t.Fatalf("cyrus: create temp dir: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(c.dir) })
	if c.port, err = freePort(); err != nil {
		t.Fatal(err)
	}
	if err := c.prepare(); err != nil {
		t.Fatalf("cyrus: %v", err)
	}
	c.mu.Lock()
	err = c.startLocked()
	c.mu.Unlock()
	if err != nil {
		t.Fatalf("start cyrus: %v\nlog (%s):\n%s", err, c.logPath(), c.LogTail())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("cyrus log (%s):\n%s", c.logPath(), c.LogTail())
		}
		c.Stop()
	})
	for _, u := range users {
		c.createInbox(t, u.Name)
	}
	return c
}

func (c *Cyrus) confPath() string   { return filepath.Join(c.dir, "imapd.conf") }
func (c *Cyrus) masterPath() string { return filepath.Join(c.dir, "cyrus.conf") }
func (c *Cyrus) logPath() string    { return filepath.Join(c.dir, "cyrus.log") }
func (c *Cyrus) sasldbPath() string { return filepath.Join(c.dir, "sasldb2") }
func (c *Cyrus) bin(name string) string {
	return c.x.path(filepath.Join("usr/lib/cyrus/bin", name))
}

// prepare writes both configuration files and the sasldb, and lays out the directories.
func (c *Cyrus) prepare() error {
	if err := os.Chmod(c.dir, 0o755); err != nil {
		return err
	}
	for _, sub := range []string{"conf/socket", "part", "socket", "proc", "lock", "sieve"} {
		if err := os.MkdirAll(filepath.Join(c.dir, sub), 0o750); err != nil {
			return err
		}
	}
	if err := os.WriteFile(c.confPath(), []byte(c.imapdConf()), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(c.masterPath(), []byte(c.cyrusConf()), 0o644); err != nil {
		return err
	}
	if err := c.setPassword(c.admin); err != nil {
		return err
	}
	for name, pw := range c.users {
		if err := c.setPassword(User{Name: name, Password: pw}); err != nil {
			return err
		}
	}
	return c.owner.chownTree(c.dir)
}

func (c *Cyrus) imapdConf() string {
	var b strings.Builder
	written := map[string]bool{}
	set := func(k, v string) {
		if o, ok := c.opts.config[k]; ok {
			v = o
		}
		written[k] = true
		fmt.Fprintf(&b, "%s: %s\n", k, v)
	}
	b.WriteString("# Generated by internal/testing/testenv.\n")
	for _, kv := range [][2]string{
		{"configdirectory", filepath.Join(c.dir, "conf")},
		{"defaultpartition", "default"},
		{"partition-default", filepath.Join(c.dir, "part")},
		{"proc_path", filepath.Join(c.dir, "proc")},
		{"mboxname_lockpath", filepath.Join(c.dir, "lock")},
		{"sievedir", filepath.Join(c.dir, "sieve")},
		{"lmtpsocket", filepath.Join(c.dir, "socket", "lmtp")},
		{"idlesocket", filepath.Join(c.dir, "socket", "idle")},
		{"notifysocket", filepath.Join(c.dir, "socket", "notify")},
		{"sasl_sasldb_path", c.sasldbPath()},
		{"cyrus_user", c.owner.name},
	} {
		set(kv[0], kv[1])
	}
	for _, kv := range cyrusDefaults {
		set(kv[0], kv[1])
	}
	for _, k := range c.opts.order {
		if !written[k] {
			set(k, "")
		}
	}
	return b.String()
}

// cyrusConf is the master's configuration. The master passes no -C to the processes it
// starts, so each command names the configuration itself (and its binary by absolute path:
// the service directory is compiled in).
func (c *Cyrus) cyrusConf() string {
	conf := c.confPath()
	return fmt.Sprintf(`START {
  recover cmd="%s -C %s -r"
}
SERVICES {
  imap cmd="%s -C %s" listen="127.0.0.1:%d" prefork=0 maxchild=100
}
EVENTS {
}
`, c.bin("ctl_cyrusdb"), conf, c.bin("imapd"), conf, c.port)
}

func (c *Cyrus) env() []string { return []string{"LD_LIBRARY_PATH=" + c.x.libPath} }

// setPassword stores a user in the sasldb (the password goes through stdin).
func (c *Cyrus) setPassword(u User) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.x.path("usr/sbin/saslpasswd2"), "-p", "-c", "-f", c.sasldbPath(),
		"-u", cyrusServerName, u.Name)
	cmd.Env = append(os.Environ(), c.env()...)
	cmd.Stdin = strings.NewReader(u.Password)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("saslpasswd2 %s: %w: %s", u.Name, err, strings.TrimSpace(out.String()))
	}
	return nil
}

func (c *Cyrus) startLocked() error {
	p, err := startProcEnv(c.logPath(), sysProcAttr(), c.env(), c.bin("master"),
		"-C", c.confPath(), "-M", c.masterPath(), "-p", filepath.Join(c.dir, "master.pid"), "-D")
	if err != nil {
		return err
	}
	if err := waitReady(p, cyrusStartTimeout, func() error { return imapGreets(c.Addr()) }); err != nil {
		p.stop(cyrusStopGrace)
		return fmt.Errorf("cyrus master %w", err)
	}
	c.proc = p
	return nil
}

// createInbox creates user.<name>, the user's INBOX, as the administrator.
func (c *Cyrus) createInbox(t testing.TB, name string) {
	t.Helper()
	a := c.AdminAccount().Login(t)
	defer a.Close()
	if err := a.Create("user."+name, nil).Wait(); err != nil {
		t.Fatalf("cyrus: create INBOX of %s: %v", name, err)
	}
}

// Addr returns host:port of the IMAP listener (plain text, no TLS).
func (c *Cyrus) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)) }

// Admin returns the administrator's login.
func (c *Cyrus) Admin() User { return c.admin }

// AdminAccount is the administrator's IMAP login. The administrator sees every mailbox by its
// internal name ("user.bob.Trash", "shared-news") and may CREATE and SETACL them.
func (c *Cyrus) AdminAccount() MailAccount {
	return MailAccount{Addr: c.Addr(), User: c.admin.Name, Password: c.admin.Password}
}

// Account returns a user's IMAP login; the user must exist.
func (c *Cyrus) Account(user string) MailAccount {
	c.mu.Lock()
	defer c.mu.Unlock()
	pw, ok := c.users[user]
	if !ok {
		panic(fmt.Sprintf("testenv: cyrus has no user %q", user))
	}
	return MailAccount{Addr: c.Addr(), User: user, Password: pw}
}

// AddUser adds a user (sasldb entry and INBOX) to the running server, or changes the password
// of an existing one.
func (c *Cyrus) AddUser(t testing.TB, u User) {
	t.Helper()
	if err := validateMailUser(u); err != nil {
		t.Fatalf("cyrus: %v", err)
	}
	c.mu.Lock()
	_, existed := c.users[u.Name]
	c.users[u.Name] = u.Password
	err := c.setPassword(u)
	if err == nil {
		err = c.owner.chownTree(c.sasldbPath())
	}
	c.mu.Unlock()
	if err != nil {
		t.Fatalf("cyrus: add user: %v", err)
	}
	if !existed {
		c.createInbox(t, u.Name)
	}
}

// Dir returns the instance directory (configuration, databases under conf/, mail under part/).
func (c *Cyrus) Dir() string { return c.dir }

// Pid returns the master process id, or 0 when stopped.
func (c *Cyrus) Pid() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc == nil {
		return 0
	}
	return c.proc.pid()
}

// Stop terminates the master and every process it started; stopping twice is a no-op.
func (c *Cyrus) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc != nil {
		c.proc.stop(cyrusStopGrace)
		c.proc = nil
	}
}

// Restart stops the server and starts it again with the same port, mail and users.
func (c *Cyrus) Restart(t testing.TB) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc != nil {
		c.proc.stop(cyrusStopGrace)
		c.proc = nil
	}
	if err := c.startLocked(); err != nil {
		t.Fatalf("restart cyrus: %v\nlog (%s):\n%s", err, c.logPath(), c.LogTail())
	}
}

// LogTail returns the end of the master's output. Cyrus logs through syslog, so this holds
// startup errors only.
func (c *Cyrus) LogTail() string { return tailFile(c.logPath(), 16<<10) }
