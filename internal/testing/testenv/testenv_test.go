package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// recordingTB captures Skipf/Fatalf instead of ending the test.
type recordingTB struct {
	testing.TB
	skipped, failed string
}

func (r *recordingTB) Helper()                        {}
func (r *recordingTB) Skipf(format string, a ...any)  { r.skipped = fmt.Sprintf(format, a...) }
func (r *recordingTB) Fatalf(format string, a ...any) { r.failed = fmt.Sprintf(format, a...) }

func TestRequireOrSkip(t *testing.T) {
	unavailable := errors.New("connection refused")
	for _, tc := range []struct {
		ci          string
		err         error
		skip, fatal bool
	}{
		{ci: "", err: nil},
		{ci: "true", err: nil},
		{ci: "", err: unavailable, skip: true},
		{ci: "false", err: unavailable, skip: true},
		{ci: "true", err: unavailable, fatal: true},
	} {
		t.Run(fmt.Sprintf("CI=%q/err=%v", tc.ci, tc.err), func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			r := &recordingTB{TB: t}
			Require(r, "widget", tc.err)
			if got := r.skipped != ""; got != tc.skip {
				t.Errorf("skipped = %t (%q), want %t", got, r.skipped, tc.skip)
			}
			if got := r.failed != ""; got != tc.fatal {
				t.Errorf("failed = %t (%q), want %t", got, r.failed, tc.fatal)
			}
			for _, msg := range []string{r.skipped, r.failed} {
				if msg != "" && !strings.Contains(msg, "widget") {
					t.Errorf("message %q does not name the component", msg)
				}
			}
		})
	}
}

func TestFreePortUnique(t *testing.T) {
	t.Parallel()
	seen := map[int]bool{}
	for range 200 {
		p := FreePort(t)
		if p <= 0 {
			t.Fatalf("p: want > 0; FreePort returned %d (seen before: %t)", p, seen[p])
		}
		if p > 65535 {
			t.Fatalf("p: want <= 65535; FreePort returned %d (seen before: %t)", p, seen[p])
		}
		if seen[p] {
			t.Fatalf("seen[p] is true; FreePort returned %d (seen before: %t)", p, seen[p])
		}
		seen[p] = true
	}
}

func TestRepoRoot(t *testing.T) {
	t.Parallel()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Errorf("RepoRoot() = %s without go.mod: %v", root, err)
	}
	if _, err := os.Stat(filepath.Join(root, "internal", "testing", "testenv")); err != nil {
		t.Errorf("RepoRoot() = %s is not this repository: %v", root, err)
	}
}
