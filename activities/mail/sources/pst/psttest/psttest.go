// Package psttest gives tests the PST files of sources/pst/testdata, including a damaged copy
// readpst cannot fully convert.
package psttest

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/cutover/cutover/internal/testing/testenv"
)

// Path returns the path of a file in sources/pst/testdata ("outlook.pst", "dist-list.pst").
func Path(t testing.TB, name string) string {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "activities", "mail", "sources", "pst", "testdata", name)
}

// Damaged writes into dir a copy of outlook.pst whose Inbox message readpst cannot convert
// (32 bytes of its data block overwritten): readpst reports it skipped and converts the rest.
func Damaged(t testing.TB, dir string) string {
	t.Helper()
	b, err := os.ReadFile(Path(t, "outlook.pst"))
	if err != nil {
		t.Fatal(err)
	}
	copy(b[173568:173568+32], bytes.Repeat([]byte{0xff}, 32))
	p := filepath.Join(dir, "damaged.pst")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
