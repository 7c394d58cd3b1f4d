// Package datasets hands tests real application databases as they are shipped (Chinook,
// Northwind; testdata/README.md has their origin and licences), each copied to a test's
// temporary directory so nothing writes to the originals.
package datasets

import (
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// Chinook is a fresh copy of the Chinook SQLite database (11 tables; PlaylistTrack has a
// composite key, Employee.ReportsTo references Employee).
func Chinook(t testing.TB) string { return fresh(t, "chinook.sqlite") }

// Northwind is a fresh copy of the Northwind SQLite database (13 tables; `Order Details`
// has a space in its name and a composite key, CHECK constraints and column defaults;
// Employees.ReportsTo references Employees; Customers has a key with a trailing space).
func Northwind(t testing.TB) string { return fresh(t, "northwind.sqlite") }

func fresh(t testing.TB, name string) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("datasets: cannot locate testdata")
	}
	src, err := os.Open(filepath.Join(filepath.Dir(file), "testdata", name))
	if err != nil {
		t.Fatalf("datasets: %v", err)
	}
	defer src.Close()
	path := filepath.Join(t.TempDir(), name)
	dst, err := os.Create(path)
	if err != nil {
		t.Fatalf("datasets: %v", err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		t.Fatalf("datasets: copy %s: %v", name, err)
	}
	if err := dst.Close(); err != nil {
		t.Fatalf("datasets: copy %s: %v", name, err)
	}
	return path
}
