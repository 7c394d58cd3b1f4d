package testenv

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Paths of the Debian dovecot-core binaries.
const (
	DovecotBin = "/usr/sbin/dovecot"
	DoveadmBin = "/usr/bin/doveadm"
)

const (
	dovecotStartTimeout = 15 * time.Second
	dovecotStopGrace    = 5 * time.Second
)

// User is an IMAP account. Names are case-insensitive (Dovecot lower-cases
// them), and neither field may contain ':' or control characters.
type User struct {
	Name     string
	Password string
}

type dovecotOptions struct {
	extraConfig    []string
	masterName     string
	masterPassword string
	tls            bool
}

// DovecotOption configures StartDovecot.
type DovecotOption func(*dovecotOptions)

// WithDovecotConfig appends lines to the generated dovecot.conf; later
// settings override earlier ones, e.g. "mail_max_userip_connections = 2".
func WithDovecotConfig(lines ...string) DovecotOption {
	return func(o *dovecotOptions) { o.extraConfig = append(o.extraConfig, lines...) }
}

// WithMasterUser adds a master user, who can log in as any user U with the
// login name "U*<name>" and the master password.
func WithMasterUser(name, password string) DovecotOption {
	return func(o *dovecotOptions) { o.masterName, o.masterPassword = name, password }
}

// WithTLS enables STARTTLS on the plain port and an implicit-TLS (imaps)
// listener on TLSAddr, with a certificate signed by a throwaway CA
// (CACertPEM).
func WithTLS() DovecotOption {
	return func(o *dovecotOptions) { o.tls = true }
}

// Dovecot is a Dovecot IMAP server owned by a test, with its configuration,
// sockets, logs and mail under one temporary directory.
type Dovecot struct {
	dir     string
	opts    dovecotOptions
	id      dovecotIdentity
	port    int
	tlsPort int // 0 without WithTLS
	pki     *testPKI

	mu          sync.Mutex
	users       map[string]string // lower-cased name -> password
	passwdMtime time.Time         // last mtime given to the passwd-file
	proc        *proc
}

// StartDovecot starts a Dovecot instance on a free 127.0.0.1 port serving
// the given users (Maildir storage, plaintext auth allowed) and stops it when
// the test ends. It skips the test if Dovecot is not installed (fails if
// CI=true). Several instances may run at once.
func StartDovecot(t testing.TB, users []User, opts ...DovecotOption) *Dovecot {
	t.Helper()
	if _, err := os.Stat(DovecotBin); err != nil {
		Require(t, "dovecot", fmt.Errorf("%s not found (run `make tools`): %w", DovecotBin, err))
	}
	d := &Dovecot{users: map[string]string{}}
	for _, opt := range opts {
		opt(&d.opts)
	}
	for _, u := range users {
		if err := validateUser(u); err != nil {
			t.Fatal(err)
		}
		d.users[strings.ToLower(u.Name)] = u.Password
	}
	if d.opts.masterName != "" {
		if err := validateUser(User{d.opts.masterName, d.opts.masterPassword}); err != nil {
			t.Fatalf("master user: %v", err)
		}
	}

	var err error
	d.id, err = currentDovecotIdentity()
	Require(t, "dovecot", err) // e.g. a uid without a passwd entry
	// Not t.TempDir: with a long test name its path would overflow the
	// 108-byte unix socket path limit, and as root the unprivileged login and
	// mail processes must be able to traverse it (t.TempDir is 0700).
	if d.dir, err = os.MkdirTemp("", "cutover-dovecot-"); err != nil {
		t.Fatalf("dovecot: create temp dir: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(d.dir) })
	if err := d.prepare(); err != nil {
		t.Fatalf("dovecot: %v", err)
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.startLocked(); err != nil {
		t.Fatalf("start dovecot: %v\nlog (%s):\n%s", err, d.logPath(), d.LogTail())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dovecot log (%s):\n%s", d.logPath(), d.LogTail())
		}
		d.Stop()
	})
	return d
}

// validateUser rejects what would corrupt the passwd-file (':' separates
// fields, one line per user) or clash with the master login syntax ("*").
func validateUser(u User) error {
	bad := func(r rune) bool { return r == ':' || r < 0x20 || r == 0x7f }
	switch {
	case u.Name == "":
		return errors.New("dovecot user with empty name")
	case strings.ContainsAny(u.Name, "*/") || strings.ContainsFunc(u.Name, bad):
		return fmt.Errorf("dovecot user %q: name must not contain '*', '/', ':' or control characters", u.Name)
	case strings.ContainsFunc(u.Password, bad):
		return fmt.Errorf("dovecot user %q: password must not contain ':' or control characters", u.Name)
	}
	return nil
}

// dovecotIdentity holds the accounts Dovecot's processes run as.
type dovecotIdentity struct {
	loginUser     string // imap-login; Dovecot refuses root here
	internalUser  string // auth, anvil, stats, ...
	internalGroup string
	mailUID       int // imap and doveadm mail access; Dovecot refuses uid 0
	mailGID       int
}

// currentDovecotIdentity runs everything as the current user when not root
// (Dovecot settings take names, so the uid needs a passwd entry). As root,
// login processes run as dovenull (or nobody) and mail is owned by nobody,
// because Dovecot refuses root for both.
func currentDovecotIdentity() (dovecotIdentity, error) {
	cur, err := user.Current()
	if err != nil {
		return dovecotIdentity{}, fmt.Errorf("look up current user: %w", err)
	}
	group, err := user.LookupGroupId(cur.Gid)
	if err != nil {
		return dovecotIdentity{}, fmt.Errorf("look up current group: %w", err)
	}
	id := dovecotIdentity{loginUser: cur.Username, internalUser: cur.Username, internalGroup: group.Name}
	mail := cur
	if os.Geteuid() == 0 {
		id.loginUser = "nobody"
		if _, err := user.Lookup("dovenull"); err == nil {
			id.loginUser = "dovenull"
		}
		if mail, err = user.Lookup("nobody"); err != nil {
			return dovecotIdentity{}, fmt.Errorf("look up user nobody (mail owner when running as root): %w", err)
		}
	}
	if id.mailUID, err = strconv.Atoi(mail.Uid); err != nil {
		return dovecotIdentity{}, fmt.Errorf("parse uid %q: %w", mail.Uid, err)
	}
	if id.mailGID, err = strconv.Atoi(mail.Gid); err != nil {
		return dovecotIdentity{}, fmt.Errorf("parse gid %q: %w", mail.Gid, err)
	}
	return id, nil
}

func (d *Dovecot) confPath() string   { return filepath.Join(d.dir, "dovecot.conf") }
func (d *Dovecot) logPath() string    { return filepath.Join(d.dir, "dovecot.log") }
func (d *Dovecot) passwdPath() string { return filepath.Join(d.dir, "passwd") }
func (d *Dovecot) homeRoot() string   { return filepath.Join(d.dir, "home") }

// prepare lays out the instance directory: ports, certificates, users and
// the configuration.
func (d *Dovecot) prepare() error {
	if err := os.Chmod(d.dir, 0o755); err != nil {
		return err
	}
	for _, sub := range []string{"run", "state", "home"} {
		if err := os.Mkdir(filepath.Join(d.dir, sub), 0o755); err != nil {
			return err
		}
	}
	// Mail processes create each user's home on first login.
	if err := os.Chown(d.homeRoot(), d.id.mailUID, d.id.mailGID); err != nil {
		return fmt.Errorf("chown home root: %w", err)
	}

	var err error
	if d.port, err = freePort(); err != nil {
		return err
	}
	if d.opts.tls {
		if d.tlsPort, err = freePort(); err != nil {
			return err
		}
		if d.pki, err = newTestPKI(); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(d.dir, "cert.pem"), d.pki.certPEM, 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(d.dir, "key.pem"), d.pki.keyPEM, 0o600); err != nil {
			return err
		}
	}
	if d.opts.masterName != "" {
		line := d.opts.masterName + ":{PLAIN}" + d.opts.masterPassword + "\n"
		if err := os.WriteFile(filepath.Join(d.dir, "masters"), []byte(line), 0o600); err != nil {
			return err
		}
	}
	if err := d.writePasswd(); err != nil {
		return err
	}
	return os.WriteFile(d.confPath(), []byte(d.config()), 0o644)
}

// config renders a standalone dovecot.conf (the system conf.d is not
// included, so host configuration cannot leak in).
func (d *Dovecot) config() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("# Generated by internal/testenv.")
	p("instance_name = cutover-%s", randomHex(4))
	p("base_dir = %s", filepath.Join(d.dir, "run"))
	p("state_dir = %s", filepath.Join(d.dir, "state"))
	p("protocols = imap")
	p("listen = 127.0.0.1")
	p("log_path = %s", d.logPath())
	p("info_log_path = %s", d.logPath())
	p(`log_timestamp = "%%Y-%%m-%%d %%H:%%M:%%S "`)
	p("default_login_user = %s", d.id.loginUser)
	p("default_internal_user = %s", d.id.internalUser)
	p("default_internal_group = %s", d.id.internalGroup)
	p("first_valid_uid = %d", d.id.mailUID)
	p("first_valid_gid = %d", d.id.mailGID)
	p("disable_plaintext_auth = no")
	p("auth_mechanisms = plain login")
	p("auth_verbose = yes")
	// Failed logins are expected in tests: don't delay them (Dovecot still
	// answers after ~0.5 s). The per-IP auth penalty is disabled below.
	p("auth_failure_delay = 0")
	p("mail_location = maildir:~/Maildir")
	if d.opts.tls {
		p("ssl = yes")
		p("ssl_cert = <%s", filepath.Join(d.dir, "cert.pem"))
		p("ssl_key = <%s", filepath.Join(d.dir, "key.pem"))
	} else {
		p("ssl = no")
	}
	p(`namespace inbox {
  inbox = yes
  mailbox Drafts {
    special_use = \Drafts
  }
  mailbox Junk {
    special_use = \Junk
  }
  mailbox Trash {
    special_use = \Trash
  }
  mailbox Sent {
    special_use = \Sent
  }
}`)
	if d.opts.masterName != "" {
		// result_success = continue makes the regular passdb check that the
		// target user exists.
		p("auth_master_user_separator = *")
		p("passdb {\n  driver = passwd-file\n  args = %s\n  master = yes\n  result_success = continue\n}",
			filepath.Join(d.dir, "masters"))
	}
	p("passdb {\n  driver = passwd-file\n  args = %s\n}", d.passwdPath())
	p("userdb {\n  driver = static\n  args = uid=%d gid=%d home=%s/%%u\n}", d.id.mailUID, d.id.mailGID, d.homeRoot())
	p(`service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = %d
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = %d
    ssl = yes
  }
}`, d.port, d.tlsPort)
	// chroot needs root; without it these services work for any user.
	for _, svc := range []string{"aggregator", "director", "imap-urlauth-login", "ipc", "old-stats", "pop3-login", "submission-login"} {
		p("service %s {\n  chroot =\n}", svc)
	}
	// Without the penalty socket, auth skips anvil's per-IP penalty, which
	// would otherwise delay every login (even successful ones) after a
	// failure from 127.0.0.1 by 2 s, 4 s, ... up to 15 s.
	p(`service anvil {
  chroot =
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}`)
	if len(d.opts.extraConfig) > 0 {
		p("\n# WithDovecotConfig")
		for _, line := range d.opts.extraConfig {
			p("%s", line)
		}
	}
	return b.String()
}

// writePasswd replaces the passwd-file atomically. Dovecot re-reads it when
// its mtime or size changed, checking at most once per second, so every
// version gets a distinct whole-second mtime and the caller must let the
// clock tick into the next second before relying on the change.
func (d *Dovecot) writePasswd() error {
	var b strings.Builder
	for name, password := range d.users {
		b.WriteString(name + ":{PLAIN}" + password + "\n")
	}
	tmp := d.passwdPath() + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("write passwd-file: %w", err)
	}
	mtime := time.Now().Truncate(time.Second)
	if !mtime.After(d.passwdMtime) {
		mtime = d.passwdMtime.Add(time.Second)
	}
	if err := os.Chtimes(tmp, mtime, mtime); err != nil {
		return fmt.Errorf("set passwd-file mtime: %w", err)
	}
	d.passwdMtime = mtime
	if err := os.Rename(tmp, d.passwdPath()); err != nil {
		return fmt.Errorf("replace passwd-file: %w", err)
	}
	return nil
}

func (d *Dovecot) startLocked() error {
	// -F keeps the master in the foreground, so we own (and reap) its pid.
	p, err := startProc(d.logPath(), DovecotBin, "-F", "-c", d.confPath())
	if err != nil {
		return err
	}
	deadline := time.Now().Add(dovecotStartTimeout)
	for {
		err = d.ready()
		if err == nil {
			d.proc = p
			return nil
		}
		if exited, exitErr := p.exited(); exited {
			return fmt.Errorf("dovecot exited during startup: %v", exitErr)
		}
		if time.Now().After(deadline) {
			p.stop(dovecotStopGrace)
			return fmt.Errorf("dovecot not ready after %s: %w", dovecotStartTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ready checks that the listeners greet with "* OK", which also means the
// auth process is up.
func (d *Dovecot) ready() error {
	conn, err := net.DialTimeout("tcp", d.Addr(), time.Second)
	if err != nil {
		return err
	}
	if err := readGreeting(conn); err != nil {
		return err
	}
	if d.tlsPort == 0 {
		return nil
	}
	dialer := &tls.Dialer{NetDialer: &net.Dialer{Timeout: time.Second}, Config: d.ClientTLSConfig()}
	tlsConn, err := dialer.Dial("tcp", d.TLSAddr())
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	return readGreeting(tlsConn)
}

func readGreeting(conn net.Conn) error {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	r := bufio.NewReader(conn)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return fmt.Errorf("read greeting: %w", err)
		}
		if !strings.HasPrefix(line, "* OK") {
			return fmt.Errorf("unexpected greeting %q", strings.TrimSpace(line))
		}
		// Sent while the auth process is still starting; the real greeting
		// follows once it is up.
		if !strings.Contains(line, "Waiting for authentication") {
			return nil
		}
	}
}

// Addr returns host:port of the plain IMAP listener (STARTTLS with WithTLS).
func (d *Dovecot) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(d.port)) }

// TLSAddr returns host:port of the implicit-TLS listener, or "" without WithTLS.
func (d *Dovecot) TLSAddr() string {
	if d.tlsPort == 0 {
		return ""
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(d.tlsPort))
}

// TLSPort returns the implicit-TLS port, or 0 without WithTLS.
func (d *Dovecot) TLSPort() int { return d.tlsPort }

// CACertPEM returns the PEM certificate of the CA that signed the server
// certificate, or nil without WithTLS.
func (d *Dovecot) CACertPEM() []byte {
	if d.pki == nil {
		return nil
	}
	return bytes.Clone(d.pki.caPEM)
}

// ClientTLSConfig returns a client config trusting CACertPEM, or nil without
// WithTLS. The certificate is valid for 127.0.0.1, ::1 and localhost.
func (d *Dovecot) ClientTLSConfig() *tls.Config {
	if d.pki == nil {
		return nil
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(d.pki.caPEM)
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// Maildir returns the path of user's Maildir (created on first login).
// Files seeded into it while running as root need FixOwnership.
func (d *Dovecot) Maildir(user string) string {
	return filepath.Join(d.homeRoot(), strings.ToLower(user), "Maildir")
}

// FixOwnership hands everything under the mail homes to the mail owner.
// Needed after seeding Maildirs as root, since mail processes then run as
// nobody; a no-op otherwise.
func (d *Dovecot) FixOwnership(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		return
	}
	err := filepath.WalkDir(d.homeRoot(), func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, d.id.mailUID, d.id.mailGID)
	})
	if err != nil {
		t.Fatalf("fix maildir ownership: %v", err)
	}
}

// AddUser adds (or changes the password of) a user on the running server.
// It returns once Dovecot is certain to see the change, which can take up
// to a second (see writePasswd).
func (d *Dovecot) AddUser(t testing.TB, u User) {
	t.Helper()
	if err := validateUser(u); err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.users[strings.ToLower(u.Name)] = u.Password
	if err := d.writePasswd(); err != nil {
		t.Fatalf("add dovecot user: %v", err)
	}
	now := time.Now()
	time.Sleep(now.Truncate(time.Second).Add(time.Second).Sub(now))
}

// Pid returns the master process id, or 0 when stopped.
func (d *Dovecot) Pid() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.proc == nil {
		return 0
	}
	return d.proc.pid()
}

// Stop terminates the server and all its processes and waits for the master
// to exit. Stopping a stopped server is a no-op.
func (d *Dovecot) Stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.proc != nil {
		d.proc.stop(dovecotStopGrace)
		d.proc = nil
	}
}

// Restart stops the server and starts it again on the same ports with the
// same mail, users and configuration.
func (d *Dovecot) Restart(t testing.TB) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.proc != nil {
		d.proc.stop(dovecotStopGrace)
		d.proc = nil
	}
	if err := d.startLocked(); err != nil {
		t.Fatalf("restart dovecot: %v\nlog (%s):\n%s", err, d.logPath(), d.LogTail())
	}
}

// LogTail returns the end of the server log.
func (d *Dovecot) LogTail() string { return tailFile(d.logPath(), 16<<10) }

// ConfigPath returns the path of the generated dovecot.conf.
func (d *Dovecot) ConfigPath() string { return d.confPath() }

// Doveadm runs `doveadm -c <config> args...` and returns its stdout, e.g.
// Doveadm(t, "mailbox", "status", "-u", "alice", "messages", "INBOX").
func (d *Dovecot) Doveadm(t testing.TB, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, DoveadmBin, append([]string{"-c", d.confPath()}, args...)...)
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("doveadm %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}
