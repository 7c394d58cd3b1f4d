// Package testenv starts the external services integration tests need —
// throwaway PostgreSQL databases, Temporal dev servers and IMAP servers
// (Dovecot installed; Cyrus and Courier run from Debian packages `make tools`
// extracts) — and tears them down when the test ends.
//
// A missing service skips the test, except when CI=true, where it fails:
// CI must never silently skip integration coverage.
package testenv

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Require skips the test when a component is unavailable (err != nil),
// or fails it when running under CI=true.
func Require(t testing.TB, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s unavailable (required because CI=true): %v", what, err)
		return
	}
	t.Skipf("%s unavailable, skipping (set CI=true to fail instead): %v", what, err)
}

// Main runs the tests of a package and then stops the servers shared by them
// (see SharedTemporal). Call it from TestMain:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	atExit.Lock()
	fns := atExit.fns
	atExit.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
	stopShared()
	os.Exit(code)
}

var atExit struct {
	sync.Mutex
	fns []func()
}

// AtExit registers fn to run once all tests of the binary ran (last registered first), for
// what outlives single tests, e.g. a binary built once and shared by them. Needs Main.
func AtExit(fn func()) {
	atExit.Lock()
	defer atExit.Unlock()
	atExit.fns = append(atExit.fns, fn)
}

// RepoRoot returns the directory holding go.mod, searching upwards from the
// working directory (go test runs in the package directory).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("get working directory: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found in any parent of the working directory")
		}
		dir = parent
	}
}

// handedOut records every port FreePort returned, so servers started
// concurrently in one test binary never get the same port even if the kernel
// hands it out twice before the first server binds it.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago and
// that no other FreePort caller in this process has received.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// freePort picks ports below the kernel's ephemeral range (32768 and up on
// Linux): between our probe and the server's bind, any process's outgoing
// connection or listen(":0") may take an ephemeral port, never one of these.
// Below 32768 also fits the real Temporal server's membership ports (smallint).
func freePort() (int, error) {
	handedOut.Lock()
	defer handedOut.Unlock()
	for range 200 {
		port := 20000 + rand.IntN(12768)
		if handedOut.ports[port] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		l.Close()
		handedOut.ports[port] = true
		return port, nil
	}
	return 0, errors.New("find free port: no free port in 20000-32767 after 200 attempts")
}

// tailFile returns the last n bytes of a log file, for failure messages.
func tailFile(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(cannot stat %s: %v)", path, err)
	}
	off := max(st.Size()-n, 0)
	buf := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	s := string(buf)
	if off > 0 {
		// Drop the partial first line.
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			s = s[i+1:]
		}
		s = "...\n" + s
	}
	return s
}
