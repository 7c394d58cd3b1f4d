package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// ImapServersEnv names the directory holding the extracted Cyrus and Courier packages (its
// "root" sub-directory), when not the repository's bin/imap-servers (`make tools` fills that).
const ImapServersEnv = "CUTOVER_IMAP_SERVERS"

// extractedTree is the root of the Cyrus and Courier packages extracted by
// internal/testing/testenv/imapservers.sh, with the directories of its shared libraries.
type extractedTree struct {
	root    string
	libPath string // LD_LIBRARY_PATH value
}

var (
	treeOnce sync.Once
	tree     extractedTree
	treeErr  error
)

// imapServersTree finds the extracted tree once per test binary.
func imapServersTree() (extractedTree, error) {
	treeOnce.Do(func() { tree, treeErr = findImapServersTree() })
	return tree, treeErr
}

func findImapServersTree() (extractedTree, error) {
	dir := os.Getenv(ImapServersEnv)
	if dir == "" {
		repo, err := RepoRoot()
		if err != nil {
			return extractedTree{}, err
		}
		dir = filepath.Join(repo, "bin", "imap-servers")
	}
	root := filepath.Join(dir, "root")
	if _, err := os.Stat(filepath.Join(root, ".complete")); err != nil {
		return extractedTree{}, fmt.Errorf("cyrus and courier are not extracted in %s (run `make tools`): %w", dir, err)
	}
	var dirs []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.Contains(d.Name(), ".so") && !slices.Contains(dirs, filepath.Dir(path)) {
			dirs = append(dirs, filepath.Dir(path))
		}
		return nil
	})
	if err != nil {
		return extractedTree{}, fmt.Errorf("list libraries of %s: %w", root, err)
	}
	slices.Sort(dirs)
	return extractedTree{root: root, libPath: strings.Join(dirs, ":")}, nil
}

func (x extractedTree) path(rel string) string { return filepath.Join(x.root, rel) }

// mailOwner is the account a server's mail processes run as: the current user, or nobody when
// running as root (the servers refuse root for mail access, and nobody exists everywhere).
type mailOwner struct {
	name     string
	uid, gid int
}

func currentMailOwner() (mailOwner, error) {
	u, err := user.Current()
	if err != nil {
		return mailOwner{}, fmt.Errorf("look up current user: %w", err)
	}
	if os.Geteuid() == 0 {
		if u, err = user.Lookup("nobody"); err != nil {
			return mailOwner{}, fmt.Errorf("look up user nobody (mail owner when running as root): %w", err)
		}
	}
	o := mailOwner{name: u.Username}
	if o.uid, err = strconv.Atoi(u.Uid); err != nil {
		return mailOwner{}, fmt.Errorf("parse uid %q: %w", u.Uid, err)
	}
	if o.gid, err = strconv.Atoi(u.Gid); err != nil {
		return mailOwner{}, fmt.Errorf("parse gid %q: %w", u.Gid, err)
	}
	return o, nil
}

// chownTree hands dir and everything under it to the owner (a no-op unless root).
func (o mailOwner) chownTree(dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	return filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
		if err == nil {
			err = os.Lchown(path, o.uid, o.gid)
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	})
}

// imapGreets checks that addr answers with an IMAP "* OK" greeting.
func imapGreets(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Errorf("read greeting: %w", err)
	}
	if !strings.HasPrefix(line, "* OK") {
		return fmt.Errorf("unexpected greeting %q", strings.TrimSpace(line))
	}
	return nil
}

// waitReady polls ready until it succeeds, the process exits or timeout passes.
func waitReady(p *proc, timeout time.Duration, ready func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		if exited, exitErr := p.exited(); exited {
			return fmt.Errorf("exited during startup: %v", exitErr)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s: %w", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// validateMailUser rejects names the servers' user databases or hierarchy separators would
// misread ('.' is Cyrus's separator in user.<name>) and passwords that would break a line.
func validateMailUser(u User) error {
	bad := func(r rune) bool { return r < 0x20 || r == 0x7f }
	switch {
	case u.Name == "":
		return errors.New("user with empty name")
	case strings.ContainsAny(u.Name, "*/.:@|\t ") || strings.ContainsFunc(u.Name, bad):
		return fmt.Errorf("user %q: name must be a plain word (no '.', '/', ':', '@', '|', '*', space)", u.Name)
	case u.Password == "" || strings.ContainsFunc(u.Password, bad) || strings.Contains(u.Password, "|"):
		return fmt.Errorf("user %q: password must be non-empty, without '|' or control characters", u.Name)
	}
	return nil
}

// Server kinds StartServer starts.
const (
	KindDovecot = "dovecot"
	KindCyrus   = "cyrus"
	KindCourier = "courier"
)

// IMAPServer is a running test IMAP server of any kind, as tests that run against each of them
// see it.
type IMAPServer interface {
	Kind() string
	Addr() string
	Account(user string) MailAccount
	AddUser(t testing.TB, u User)
	Restart(t testing.TB)
	Stop()
}

// StartServer starts a server of the given kind (KindDovecot, KindCyrus, KindCourier) with
// the users, with that kind's defaults.
func StartServer(t testing.TB, kind string, users []User) IMAPServer {
	t.Helper()
	switch kind {
	case KindDovecot:
		return StartDovecot(t, users)
	case KindCyrus:
		return StartCyrus(t, users)
	case KindCourier:
		return StartCourier(t, users)
	}
	t.Fatalf("testenv: unknown server kind %q", kind)
	return nil
}

// Kind names the implementation.
func (d *Dovecot) Kind() string { return KindDovecot }

// Kind names the implementation.
func (c *Cyrus) Kind() string { return KindCyrus }

// Kind names the implementation.
func (c *Courier) Kind() string { return KindCourier }
