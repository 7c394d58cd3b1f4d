package testenv

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/devtools/devstack"
	"github.com/cutover/cutover/internal/testing/netdelay"
)

// Paths of the Debian dovecot-core binaries.
const (
	DovecotBin = devstack.DovecotBin
	DoveadmBin = devstack.DoveadmBin
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
	link           *netdelay.Link
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

// WithLink runs the server inside the link's network namespace, listening on its address, so
// every client reaches it across the delayed link. The link must outlive the server (create
// it first: cleanups run in reverse).
func WithLink(l *netdelay.Link) DovecotOption {
	return func(o *dovecotOptions) { o.link = l }
}

// Dovecot is a Dovecot IMAP server owned by a test, with its configuration,
// sockets, logs and mail under one temporary directory. The configuration is
// devstack's (the same `cutover demo` runs); this harness owns the process.
type Dovecot struct {
	opts dovecotOptions
	pki  *testPKI

	mu   sync.Mutex
	inst devstack.Dovecot // Users: lower-cased name -> password
	proc *proc
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
	d := &Dovecot{inst: devstack.Dovecot{Users: map[string]string{}}}
	for _, opt := range opts {
		opt(&d.opts)
	}
	for _, u := range users {
		if err := validateUser(u); err != nil {
			t.Fatal(err)
		}
		d.inst.Users[strings.ToLower(u.Name)] = u.Password
	}
	if d.opts.masterName != "" {
		if err := validateUser(User{d.opts.masterName, d.opts.masterPassword}); err != nil {
			t.Fatalf("master user: %v", err)
		}
	}

	var err error
	d.inst.Identity, err = devstack.CurrentDovecotIdentity()
	Require(t, "dovecot", err) // e.g. a uid without a passwd entry
	// Not t.TempDir: with a long test name its path would overflow the
	// 108-byte unix socket path limit, and as root the unprivileged login and
	// mail processes must be able to traverse it (t.TempDir is 0700).
	if d.inst.Dir, err = os.MkdirTemp("", "cutover-dovecot-"); err != nil {
		t.Fatalf("dovecot: create temp dir: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(d.inst.Dir) })
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

// validateUser rejects what would corrupt the passwd-file or clash with the
// master login syntax.
func validateUser(u User) error { return devstack.ValidateDovecotUser(u.Name, u.Password) }

func (d *Dovecot) confPath() string { return d.inst.ConfPath() }
func (d *Dovecot) logPath() string  { return d.inst.LogPath() }

// prepare picks ports, writes certificates and lays out the instance
// directory with devstack.
func (d *Dovecot) prepare() error {
	var err error
	if d.inst.Port, err = freePort(); err != nil {
		return err
	}
	if d.opts.tls {
		d.inst.TLS = true
		if d.inst.TLSPort, err = freePort(); err != nil {
			return err
		}
		if d.pki, err = newTestPKI(); err != nil {
			return err
		}
		if err := os.WriteFile(d.inst.CertPath(), d.pki.certPEM, 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(d.inst.KeyPath(), d.pki.keyPEM, 0o600); err != nil {
			return err
		}
	}
	d.inst.MasterName, d.inst.MasterPassword = d.opts.masterName, d.opts.masterPassword
	d.inst.Extra = d.opts.extraConfig
	if d.opts.link != nil {
		d.inst.Listen = d.opts.link.Addr.String()
	}
	return d.inst.Prepare()
}

func (d *Dovecot) startLocked() error {
	// -F keeps the master in the foreground, so we own (and reap) its pid.
	name, args := DovecotBin, d.inst.Args()
	if d.opts.link != nil {
		name, args = "ip", d.opts.link.Exec(DovecotBin, args...)
	}
	p, err := startProc(d.logPath(), name, args...)
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

// ready checks that the listeners greet with "* OK".
func (d *Dovecot) ready() error { return d.inst.Ready(d.ClientTLSConfig()) }

// Addr returns host:port of the plain IMAP listener (STARTTLS with WithTLS).
func (d *Dovecot) Addr() string { return d.inst.Addr() }

// TLSAddr returns host:port of the implicit-TLS listener, or "" without WithTLS.
func (d *Dovecot) TLSAddr() string { return d.inst.TLSAddr() }

// TLSPort returns the implicit-TLS port, or 0 without WithTLS.
func (d *Dovecot) TLSPort() int {
	if !d.inst.TLS {
		return 0
	}
	return d.inst.TLSPort
}

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
func (d *Dovecot) Maildir(user string) string { return d.inst.Maildir(user) }

// FixOwnership hands everything under the mail homes to the mail owner.
// Needed after seeding Maildirs as root, since mail processes then run as
// nobody; a no-op otherwise.
func (d *Dovecot) FixOwnership(t testing.TB) {
	t.Helper()
	if err := d.inst.FixOwnership(); err != nil {
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
	d.inst.Users[strings.ToLower(u.Name)] = u.Password
	if err := d.inst.WritePasswd(); err != nil {
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

// MessageIDs lists a user's messages on the server as "folder <message-id>", sorted: what a
// test compares to tell that each message arrived exactly once.
func (d *Dovecot) MessageIDs(t testing.TB, user string) []string {
	t.Helper()
	out, err := d.Doveadm(t, "-f", "tab", "fetch", "-u", user, "mailbox hdr.message-id", "all")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if i == 0 || line == "" { // header
			continue
		}
		folder, id, _ := strings.Cut(line, "\t")
		ids = append(ids, folder+" "+id)
	}
	slices.Sort(ids)
	return ids
}

// Account returns a user's IMAP login; the user must exist.
func (d *Dovecot) Account(user string) MailAccount {
	d.mu.Lock()
	defer d.mu.Unlock()
	pw, ok := d.inst.Users[strings.ToLower(user)]
	if !ok {
		panic(fmt.Sprintf("testenv: dovecot has no user %q", user))
	}
	return MailAccount{Addr: d.Addr(), User: user, Password: pw}
}
