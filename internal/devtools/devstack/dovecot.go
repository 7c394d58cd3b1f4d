package devstack

import (
	"bufio"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Paths of the Debian dovecot-core binaries.
const (
	DovecotBin = "/usr/sbin/dovecot"
	DoveadmBin = "/usr/bin/doveadm"
)

// DovecotIdentity holds the accounts a Dovecot instance's processes run as.
type DovecotIdentity struct {
	LoginUser     string // imap-login; Dovecot refuses root here
	InternalUser  string // auth, anvil, stats, ...
	InternalGroup string
	MailUID       int // imap and doveadm mail access; Dovecot refuses uid 0
	MailGID       int
}

// CurrentDovecotIdentity runs everything as the current user when not root (Dovecot settings
// take names, so the uid needs a passwd entry). As root, login processes run as dovenull (or
// nobody) and mail is owned by nobody, because Dovecot refuses root for both.
func CurrentDovecotIdentity() (DovecotIdentity, error) {
	cur, err := user.Current()
	if err != nil {
		return DovecotIdentity{}, fmt.Errorf("look up current user: %w", err)
	}
	group, err := user.LookupGroupId(cur.Gid)
	if err != nil {
		return DovecotIdentity{}, fmt.Errorf("look up current group: %w", err)
	}
	id := DovecotIdentity{LoginUser: cur.Username, InternalUser: cur.Username, InternalGroup: group.Name}
	mail := cur
	if os.Geteuid() == 0 {
		id.LoginUser = "nobody"
		if _, err := user.Lookup("dovenull"); err == nil {
			id.LoginUser = "dovenull"
		}
		if mail, err = user.Lookup("nobody"); err != nil {
			return DovecotIdentity{}, fmt.Errorf("look up user nobody (mail owner when running as root): %w", err)
		}
	}
	if id.MailUID, err = strconv.Atoi(mail.Uid); err != nil {
		return DovecotIdentity{}, fmt.Errorf("parse uid %q: %w", mail.Uid, err)
	}
	if id.MailGID, err = strconv.Atoi(mail.Gid); err != nil {
		return DovecotIdentity{}, fmt.Errorf("parse gid %q: %w", mail.Gid, err)
	}
	return id, nil
}

// Dovecot is one standalone Dovecot IMAP instance: its configuration, sockets, logs, users
// and Maildirs all live under Dir. The test harness (internal/testing/testenv) owns the process of
// its instances; `cutover demo` runs them detached (StartDetached). Both render the same
// configuration from here, so there is one way to run Dovecot.
type Dovecot struct {
	Dir      string
	Port     int // plain IMAP (STARTTLS too when TLS)
	TLSPort  int // implicit TLS; used only with TLS
	TLS      bool
	Identity DovecotIdentity
	// Users maps lower-cased login names to passwords.
	Users          map[string]string
	MasterName     string
	MasterPassword string
	Extra          []string // appended to dovecot.conf; later settings override earlier ones
	// Listen is the IPv4 address the listeners bind; "" is 127.0.0.1. A benchmark sets the
	// address of a network namespace the server runs in.
	Listen string

	passwdMtime time.Time // last mtime given to the passwd-file
}

// ValidateDovecotUser rejects what would corrupt the passwd-file (':' separates fields, one
// line per user) or clash with the master login syntax ("*").
func ValidateDovecotUser(name, password string) error {
	bad := func(r rune) bool { return r == ':' || r < 0x20 || r == 0x7f }
	switch {
	case name == "":
		return errors.New("dovecot user with empty name")
	case strings.ContainsAny(name, "*/") || strings.ContainsFunc(name, bad):
		return fmt.Errorf("dovecot user %q: name must not contain '*', '/', ':' or control characters", name)
	case strings.ContainsFunc(password, bad):
		return fmt.Errorf("dovecot user %q: password must not contain ':' or control characters", name)
	}
	return nil
}

// ConfPath is the generated dovecot.conf.
func (d *Dovecot) ConfPath() string { return filepath.Join(d.Dir, "dovecot.conf") }

// LogPath is where Dovecot logs.
func (d *Dovecot) LogPath() string { return filepath.Join(d.Dir, "dovecot.log") }

// CertPath and KeyPath are where a TLS instance expects its certificate and key (PEM).
func (d *Dovecot) CertPath() string { return filepath.Join(d.Dir, "cert.pem") }
func (d *Dovecot) KeyPath() string  { return filepath.Join(d.Dir, "key.pem") }

func (d *Dovecot) passwdPath() string { return filepath.Join(d.Dir, "passwd") }
func (d *Dovecot) homeRoot() string   { return filepath.Join(d.Dir, "home") }

// Addr is host:port of the plain listener.
func (d *Dovecot) Addr() string { return net.JoinHostPort(d.listen(), strconv.Itoa(d.Port)) }

func (d *Dovecot) listen() string {
	if d.Listen == "" {
		return "127.0.0.1"
	}
	return d.Listen
}

// TLSAddr is host:port of the implicit-TLS listener, "" without TLS.
func (d *Dovecot) TLSAddr() string {
	if !d.TLS || d.TLSPort == 0 {
		return ""
	}
	return net.JoinHostPort(d.listen(), strconv.Itoa(d.TLSPort))
}

// Maildir is the path of user's Maildir (created on first login, or by seeding it).
func (d *Dovecot) Maildir(user string) string {
	return filepath.Join(d.homeRoot(), strings.ToLower(user), "Maildir")
}

// Args are the dovecot arguments: -F keeps the master in the foreground, so whoever starts
// it owns (and can stop) its pid.
func (d *Dovecot) Args() []string { return []string{"-F", "-c", d.ConfPath()} }

// Prepare lays out Dir (which must exist): sub-directories, users, master user and the
// configuration. Certificates, when TLS, are the caller's to write first.
func (d *Dovecot) Prepare() error {
	// As root, the unprivileged login and mail processes must be able to traverse it.
	if err := os.Chmod(d.Dir, 0o755); err != nil {
		return err
	}
	for _, sub := range []string{"run", "state", "home"} {
		if err := os.MkdirAll(filepath.Join(d.Dir, sub), 0o755); err != nil {
			return err
		}
	}
	// Mail processes create each user's home on first login.
	if err := os.Chown(d.homeRoot(), d.Identity.MailUID, d.Identity.MailGID); err != nil {
		return fmt.Errorf("chown home root: %w", err)
	}
	for name, pw := range d.Users {
		if err := ValidateDovecotUser(name, pw); err != nil {
			return err
		}
	}
	if d.MasterName != "" {
		if err := ValidateDovecotUser(d.MasterName, d.MasterPassword); err != nil {
			return fmt.Errorf("master user: %w", err)
		}
		line := d.MasterName + ":{PLAIN}" + d.MasterPassword + "\n"
		if err := os.WriteFile(filepath.Join(d.Dir, "masters"), []byte(line), 0o600); err != nil {
			return err
		}
	}
	if err := d.WritePasswd(); err != nil {
		return err
	}
	return os.WriteFile(d.ConfPath(), []byte(d.Config()), 0o644)
}

// Config renders a standalone dovecot.conf (the system conf.d is not included, so host
// configuration cannot leak in).
func (d *Dovecot) Config() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	id := d.Identity
	p("# Generated by internal/devtools/devstack.")
	p("instance_name = cutover-%s", randomHex(4))
	p("base_dir = %s", filepath.Join(d.Dir, "run"))
	p("state_dir = %s", filepath.Join(d.Dir, "state"))
	p("protocols = imap")
	p("listen = %s", d.listen())
	p("log_path = %s", d.LogPath())
	p("info_log_path = %s", d.LogPath())
	p(`log_timestamp = "%%Y-%%m-%%d %%H:%%M:%%S "`)
	p("default_login_user = %s", id.LoginUser)
	p("default_internal_user = %s", id.InternalUser)
	p("default_internal_group = %s", id.InternalGroup)
	p("first_valid_uid = %d", id.MailUID)
	p("first_valid_gid = %d", id.MailGID)
	p("disable_plaintext_auth = no")
	p("auth_mechanisms = plain login")
	p("auth_verbose = yes")
	// Failed logins are expected in tests: don't delay them (Dovecot still answers after
	// ~0.5 s). The per-IP auth penalty is disabled below.
	p("auth_failure_delay = 0")
	p("mail_location = maildir:~/Maildir")
	if d.TLS {
		p("ssl = yes")
		p("ssl_cert = <%s", d.CertPath())
		p("ssl_key = <%s", d.KeyPath())
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
	if d.MasterName != "" {
		// result_success = continue makes the regular passdb check that the target user exists.
		p("auth_master_user_separator = *")
		p("passdb {\n  driver = passwd-file\n  args = %s\n  master = yes\n  result_success = continue\n}",
			filepath.Join(d.Dir, "masters"))
	}
	p("passdb {\n  driver = passwd-file\n  args = %s\n}", d.passwdPath())
	p("userdb {\n  driver = static\n  args = uid=%d gid=%d home=%s/%%u\n}", id.MailUID, id.MailGID, d.homeRoot())
	tlsPort := 0
	if d.TLS {
		tlsPort = d.TLSPort
	}
	p(`service imap-login {
  chroot =
  inet_listener imap {
    address = %s
    port = %d
  }
  inet_listener imaps {
    address = %s
    port = %d
    ssl = yes
  }
}`, d.listen(), d.Port, d.listen(), tlsPort)
	// chroot needs root; without it these services work for any user.
	for _, svc := range []string{"aggregator", "director", "imap-urlauth-login", "ipc", "old-stats", "pop3-login", "submission-login"} {
		p("service %s {\n  chroot =\n}", svc)
	}
	// Without the penalty socket, auth skips anvil's per-IP penalty, which would otherwise
	// delay every login (even successful ones) after a failure from 127.0.0.1 by 2 s, 4 s, ...
	// up to 15 s.
	p(`service anvil {
  chroot =
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}`)
	if len(d.Extra) > 0 {
		p("\n# extra configuration")
		for _, line := range d.Extra {
			p("%s", line)
		}
	}
	return b.String()
}

// WritePasswd replaces the passwd-file atomically. Dovecot re-reads it when its mtime or size
// changed, checking at most once per second, so every version gets a distinct whole-second
// mtime and the caller must let the clock tick into the next second before relying on the
// change.
func (d *Dovecot) WritePasswd() error {
	names := make([]string, 0, len(d.Users))
	for name := range d.Users {
		names = append(names, name)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, name := range names {
		b.WriteString(name + ":{PLAIN}" + d.Users[name] + "\n")
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

// FixOwnership hands everything under the mail homes to the mail owner: needed after seeding
// Maildirs as root, since mail processes then run as nobody; a no-op otherwise.
func (d *Dovecot) FixOwnership() error {
	if os.Geteuid() != 0 {
		return nil
	}
	// A file may move (tmp → new → cur) while the tree is walked: Dovecot's doing or another
	// seeder's, which fixes its own files afterwards.
	return filepath.WalkDir(d.homeRoot(), func(path string, _ fs.DirEntry, err error) error {
		if err == nil {
			err = os.Lchown(path, d.Identity.MailUID, d.Identity.MailGID)
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	})
}

// Ready checks that the listeners greet with "* OK", which also means the auth process is up.
// tlsConfig is used for the implicit-TLS listener when TLS is on.
func (d *Dovecot) Ready(tlsConfig *tls.Config) error {
	conn, err := net.DialTimeout("tcp", d.Addr(), time.Second)
	if err != nil {
		return err
	}
	if err := readGreeting(conn); err != nil {
		return err
	}
	if d.TLSAddr() == "" {
		return nil
	}
	dialer := &tls.Dialer{NetDialer: &net.Dialer{Timeout: time.Second}, Config: tlsConfig}
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
		// Sent while the auth process is still starting; the real greeting follows once it is up.
		if !strings.Contains(line, "Waiting for authentication") {
			return nil
		}
	}
}

// StartDetached starts the instance as a background process (its own session, pid recorded
// in pidPath, output appended to the instance's log) and waits until it greets. StopPidFile
// stops it with every child it forked.
func (d *Dovecot) StartDetached(pidPath string, timeout time.Duration) (int, error) {
	if _, err := os.Stat(DovecotBin); err != nil {
		return 0, fmt.Errorf("dovecot not installed (run 'make tools' as root): %w", err)
	}
	pid, err := Spawn(DovecotBin, d.Args(), nil, filepath.Join(d.Dir, "dovecot.out"), pidPath)
	if err != nil {
		return 0, err
	}
	deadline := time.Now().Add(timeout)
	for {
		err := d.Ready(nil)
		if err == nil {
			return pid, nil
		}
		if !Alive(pid) {
			return pid, fmt.Errorf("dovecot exited during startup (see %s): %w", d.LogPath(), err)
		}
		if time.Now().After(deadline) {
			return pid, fmt.Errorf("dovecot not ready after %s (see %s): %w", timeout, d.LogPath(), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
